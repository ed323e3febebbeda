// The Topology dashboard of lightning-topo: a plain ES module drawing SVG, no dependencies, nothing fetched from the
// network. TensorBoard loads it in the plugin's iframe (base URL data/plugin/lightning_topo/) and calls render().
// Every name that comes from the data (runs, layers, descriptors) reaches the page through textContent or
// setAttribute, never through HTML.

const SVG_NS = "http://www.w3.org/2000/svg";
const DIM_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b"];
const VIRIDIS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725"];
const PREFERRED_DESCRIPTORS = ["total_persistence_1", "betti_1", "id_twonn"];
const REFRESH_MS = 30000;

const state = {
  runs: [],
  run: null,
  tag: null,
  index: null,
  pos: -1,
  layer: null,
  descriptor: null,
  logBetti: true,
  layerData: null,
  layerNote: "", // why there is no layer data (not measured at this step, a failed request)
  serial: 0,
};
const ui = {};

// DOM helpers -------------------------------------------------------------------------------------------------------
function html(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function fillSelect(select, values, chosen) {
  const current = [...select.options].map((o) => o.value);
  if (current.length !== values.length || current.some((v, i) => v !== values[i])) {
    select.replaceChildren(...values.map((v) => new Option(v, v))); // Option(text, value): text, never HTML
  }
  if (chosen !== null && chosen !== undefined) select.value = chosen;
}

function fmt(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (!Number.isFinite(value)) return value > 0 ? "∞" : "-∞";
  if (Number.isInteger(value) && Math.abs(value) < 1e6) return String(value);
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude >= 1e5 || magnitude < 1e-3)) return value.toExponential(2);
  return String(Number(value.toPrecision(4)));
}

async function getJSON(route, params) {
  const query = params ? "?" + new URLSearchParams(params).toString() : "";
  const response = await fetch(route + query);
  if (!response.ok) throw new Error(`${route}: HTTP ${response.status}: ${await response.text()}`);
  return response.json();
}

function setStatus(text, isError = false) {
  ui.status.textContent = text;
  ui.status.classList.toggle("lt-error", isError);
}

// scales and axes ---------------------------------------------------------------------------------------------------
function linear([d0, d1], [r0, r1]) {
  const slope = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
  return (v) => r0 + (v - d0) * slope;
}

function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

// A plot area with axes; returns the pixel scales. `yWarp` maps data to the drawn axis (the log option).
function frame(root, { width = 480, height = 280, margin, x, y, xTicks, yTicks, xLabel, yLabel, yWarp = (v) => v }) {
  const m = { left: 56, right: 14, top: 14, bottom: 42, ...margin };
  root.replaceChildren();
  root.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const sx = linear(x, [m.left, width - m.right]);
  const warped = linear([yWarp(y[0]), yWarp(y[1])], [height - m.bottom, m.top]);
  const sy = (v) => warped(yWarp(v));
  const axes = svg("g", { class: "lt-axes" });
  axes.append(svg("rect", { class: "lt-plot-bg", x: m.left, y: m.top, width: width - m.left - m.right, height: height - m.top - m.bottom }));
  for (const t of yTicks ?? niceTicks(y[0], y[1])) {
    axes.append(svg("line", { class: "lt-gridline", x1: m.left, x2: width - m.right, y1: sy(t), y2: sy(t) }));
    axes.append(svg("text", { class: "lt-tick", x: m.left - 6, y: sy(t) + 4, "text-anchor": "end" }, fmt(t)));
  }
  for (const t of xTicks ?? niceTicks(x[0], x[1])) {
    const [value, label] = Array.isArray(t) ? t : [t, fmt(t)];
    axes.append(svg("line", { class: "lt-gridline", x1: sx(value), x2: sx(value), y1: m.top, y2: height - m.bottom }));
    axes.append(svg("text", { class: "lt-tick", x: sx(value), y: height - m.bottom + 16, "text-anchor": "middle" }, label));
  }
  if (xLabel) axes.append(svg("text", { class: "lt-label", x: (m.left + width - m.right) / 2, y: height - 6, "text-anchor": "middle" }, xLabel));
  if (yLabel) {
    const cy = (m.top + height - m.bottom) / 2;
    axes.append(svg("text", { class: "lt-label", x: 14, y: cy, "text-anchor": "middle", transform: `rotate(-90 14 ${cy})` }, yLabel));
  }
  root.append(axes);
  return { sx, sy, m, width, height };
}

function legend(root, entries, x, y) {
  const g = svg("g", { class: "lt-legend" });
  entries.forEach(([label, color], i) => {
    g.append(svg("rect", { x, y: y + i * 16 - 9, width: 10, height: 10, fill: color }));
    g.append(svg("text", { x: x + 14, y: y + i * 16 }, label));
  });
  root.append(g);
}

function viridis(t) {
  const clamped = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0));
  const scaled = clamped * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(scaled));
  const f = scaled - i;
  const parse = (hex) => [1, 3, 5].map((k) => parseInt(hex.slice(k, k + 2), 16));
  const [a, b] = [parse(VIRIDIS[i]), parse(VIRIDIS[i + 1])];
  return `rgb(${a.map((v, k) => Math.round(v + (b[k] - v) * f)).join(",")})`;
}

// panels ------------------------------------------------------------------------------------------------------------
function panel(id, title) {
  const section = html("section", { class: "lt-panel", id });
  const heading = html("h2", {}, title);
  const plot = svg("svg", { class: "lt-plot", role: "img" });
  const note = html("p", { class: "lt-note" });
  section.append(heading, plot, note);
  return { section, heading, plot, note };
}

function measurement() {
  return state.index && state.pos >= 0 ? state.index.measurements[state.pos] : null;
}

function measurementLabel(m) {
  return m.epoch === null || m.epoch === undefined ? `step ${m.step}` : `epoch ${m.epoch} · step ${m.step}`;
}

function drawCurves() {
  const p = ui.curves;
  const data = state.layerData;
  p.heading.textContent = data ? `Betti curves: ${data.layer}, ${measurementLabel(measurement())}` : "Betti curves";
  p.note.textContent = "";
  if (!data || !data.betti_curves || !data.grid.length) {
    p.plot.replaceChildren();
    p.note.textContent = data && data.problem ? `Not measured: ${data.problem}` : state.layerNote || "No Betti curves for this layer.";
    return;
  }
  const grid = data.grid;
  const curves = data.betti_curves;
  const top = Math.max(1, ...curves.flat());
  const warp = state.logBetti ? (v) => Math.log10(1 + v) : (v) => v;
  const yTicks = state.logBetti ? [0, 1, 10, 100, 1000, 10000, 100000].filter((t) => t <= top * 1.01) : undefined;
  const f = frame(p.plot, {
    x: [grid[0], grid[grid.length - 1]],
    y: [0, top],
    yTicks,
    yWarp: warp,
    xLabel: "scale (normalised distance)",
    yLabel: state.logBetti ? "Betti number (log)" : "Betti number",
  });
  curves.forEach((curve, q) => {
    let d = `M${f.sx(grid[0])},${f.sy(curve[0])}`;
    for (let i = 1; i < grid.length; i++) d += `H${f.sx(grid[i])}V${f.sy(curve[i])}`;
    p.plot.append(svg("path", { class: "betti-curve", "data-dim": q, d, stroke: DIM_COLORS[q % DIM_COLORS.length] }));
  });
  legend(p.plot, curves.map((_, q) => [`β${q}`, DIM_COLORS[q % DIM_COLORS.length]]), f.width - f.m.right - 50, f.m.top + 14);
  // a hover line reading every curve at the nearest scale
  const cursor = svg("line", { class: "lt-cursor", y1: f.m.top, y2: f.height - f.m.bottom, visibility: "hidden" });
  const overlay = svg("rect", {
    class: "lt-overlay",
    x: f.m.left,
    y: f.m.top,
    width: f.width - f.m.left - f.m.right,
    height: f.height - f.m.top - f.m.bottom,
  });
  overlay.addEventListener("mousemove", (event) => {
    const box = p.plot.getBoundingClientRect();
    const px = ((event.clientX - box.left) / box.width) * f.width;
    let best = 0;
    for (let i = 1; i < grid.length; i++) if (Math.abs(f.sx(grid[i]) - px) < Math.abs(f.sx(grid[best]) - px)) best = i;
    cursor.setAttribute("x1", f.sx(grid[best]));
    cursor.setAttribute("x2", f.sx(grid[best]));
    cursor.setAttribute("visibility", "visible");
    const lines = curves.map((c, q) => `β${q} = ${c[best]}`);
    showTip(event, `scale ${fmt(grid[best])}\n${lines.join("\n")}`);
  });
  overlay.addEventListener("mouseleave", () => {
    cursor.setAttribute("visibility", "hidden");
    hideTip();
  });
  p.plot.append(cursor, overlay);
}

function drawDiagram() {
  const p = ui.diagram;
  const data = state.layerData;
  p.heading.textContent = data ? `Persistence diagram: ${data.layer}, ${measurementLabel(measurement())}` : "Persistence diagram";
  p.note.textContent = "";
  if (!data || !data.diagrams) {
    p.plot.replaceChildren();
    p.note.textContent = data && data.problem ? `Not measured: ${data.problem}` : state.layerNote || "No diagram for this layer.";
    return;
  }
  let hi = 0;
  let essential = false;
  for (const dgm of data.diagrams)
    for (const [birth, death] of dgm) {
      hi = Math.max(hi, birth, death ?? 0);
      essential = essential || death === null;
    }
  hi = hi > 0 ? hi * 1.05 : 1;
  const inf = hi * 1.1;
  const f = frame(p.plot, { x: [0, hi], y: [0, essential ? inf * 1.03 : hi], yTicks: niceTicks(0, hi), xLabel: "birth", yLabel: "death" });
  p.plot.append(svg("line", { class: "lt-diagonal", x1: f.sx(0), y1: f.sy(0), x2: f.sx(hi), y2: f.sy(hi) }));
  if (essential) {
    p.plot.append(svg("line", { class: "lt-infinity", x1: f.sx(0), x2: f.sx(hi), y1: f.sy(inf), y2: f.sy(inf) }));
    p.plot.append(svg("text", { class: "lt-tick", x: f.m.left - 6, y: f.sy(inf) + 4, "text-anchor": "end" }, "∞"));
  }
  const points = svg("g", { class: "lt-points" });
  data.diagrams.forEach((dgm, q) => {
    for (const [birth, death] of dgm) {
      const lifetime = death === null ? "∞" : fmt(death - birth);
      const tip = `H${q}\nbirth ${fmt(birth)}\ndeath ${death === null ? "∞" : fmt(death)}\nlifetime ${lifetime}`;
      points.append(
        svg("circle", {
          class: "diagram-point",
          "data-dim": q,
          "data-tip": tip,
          cx: f.sx(birth),
          cy: f.sy(death === null ? inf : death),
          r: 3.2,
          fill: DIM_COLORS[q % DIM_COLORS.length],
        }),
      );
    }
  });
  p.plot.append(points);
  const counts = data.diagrams.map((dgm, q) => [`H${q} (${dgm.length})`, DIM_COLORS[q % DIM_COLORS.length]]);
  legend(p.plot, counts, f.width - f.m.right - 78, f.height - f.m.bottom - 8 - 16 * (counts.length - 1));
}

function values(descriptor) {
  return (state.index && state.index.values[descriptor]) || [];
}

function finiteRange(rows) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const row of rows) for (const v of row) if (v !== null && Number.isFinite(v)) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  return lo <= hi ? [lo, hi] : null;
}

function drawProfile() {
  const p = ui.profile;
  const index = state.index;
  const m = measurement();
  const descriptor = state.descriptor;
  p.heading.textContent = m ? `Depth profile: ${descriptor}, ${measurementLabel(m)}` : "Depth profile";
  p.note.textContent = "";
  const rows = values(descriptor);
  const range = finiteRange(rows);
  if (!m || !range) {
    p.plot.replaceChildren();
    p.note.textContent = "No finite values of this descriptor.";
    return;
  }
  const layers = index.layers;
  const pad = range[1] > range[0] ? (range[1] - range[0]) * 0.06 : Math.abs(range[0]) * 0.1 || 1;
  const labels = layers.map((name, i) => [i, name.length > 12 ? name.slice(0, 11) + "…" : name]);
  const f = frame(p.plot, {
    x: [-0.3, Math.max(layers.length - 0.7, 0.3)],
    y: [range[0] - pad, range[1] + pad],
    xTicks: labels,
    yLabel: descriptor,
    margin: { bottom: 30 },
  });
  const line = (row) => {
    let d = "";
    let pen = false;
    row.forEach((v, i) => {
      if (v === null) {
        pen = false;
        return;
      }
      d += `${pen ? "L" : "M"}${f.sx(i)},${f.sy(v)}`;
      pen = true;
    });
    return d;
  };
  rows.forEach((row, k) => {
    if (k !== state.pos) p.plot.append(svg("path", { class: "profile-line lt-other", d: line(row) }));
  });
  const current = rows[state.pos];
  p.plot.append(svg("path", { class: "profile-line lt-current", d: line(current) }));
  current.forEach((v, i) => {
    if (v === null) return;
    const chosen = layers[i] === state.layer;
    const dot = svg("circle", {
      class: chosen ? "profile-point lt-chosen" : "profile-point",
      cx: f.sx(i),
      cy: f.sy(v),
      r: chosen ? 5.5 : 3.5,
      "data-tip": `${layers[i]}\n${descriptor} = ${fmt(v)}`,
    });
    dot.addEventListener("click", () => selectLayer(layers[i]));
    p.plot.append(dot);
  });
  p.note.textContent = "Grey: the other measurements. Click a point to choose its layer.";
}

function drawHeatmap() {
  const p = ui.heatmap;
  const index = state.index;
  const descriptor = state.descriptor;
  p.heading.textContent = descriptor ? `${descriptor}: layer × measurement` : "Heat map";
  p.note.textContent = "";
  const rows = values(descriptor);
  const range = finiteRange(rows);
  if (!index || !rows.length || !range) {
    p.plot.replaceChildren();
    p.note.textContent = "No finite values of this descriptor.";
    return;
  }
  const layers = index.layers;
  const n = rows.length;
  const width = 480;
  const height = Math.max(180, Math.min(420, 40 + layers.length * 24));
  const m = { left: 92, right: 58, top: 10, bottom: 34 };
  p.plot.replaceChildren();
  p.plot.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const cw = (width - m.left - m.right) / n;
  const ch = (height - m.top - m.bottom) / layers.length;
  const span = range[1] - range[0] || 1;
  const cells = svg("g", { class: "lt-cells" });
  rows.forEach((row, k) => {
    const meas = index.measurements[k];
    layers.forEach((layer, i) => {
      const v = row[i];
      const cell = svg("rect", {
        class: v === null ? "heatmap-cell lt-missing" : "heatmap-cell",
        x: m.left + k * cw,
        y: m.top + i * ch,
        width: Math.max(cw - 0.5, 0.5),
        height: Math.max(ch - 0.5, 0.5),
        fill: v === null ? "#e0e0e0" : viridis((v - range[0]) / span),
        "data-tip": `${layer}\n${measurementLabel(meas)}\n${descriptor} = ${fmt(v)}`,
      });
      cell.addEventListener("click", () => {
        state.layer = layer;
        ui.layer.value = layer;
        selectPosition(k);
      });
      cells.append(cell);
    });
  });
  p.plot.append(cells);
  const rowIndex = layers.indexOf(state.layer);
  if (state.pos >= 0) p.plot.append(svg("rect", { class: "lt-mark", x: m.left + state.pos * cw, y: m.top, width: cw, height: ch * layers.length }));
  if (rowIndex >= 0) p.plot.append(svg("rect", { class: "lt-mark", x: m.left, y: m.top + rowIndex * ch, width: cw * n, height: ch }));
  layers.forEach((layer, i) => {
    const label = layer.length > 14 ? layer.slice(0, 13) + "…" : layer;
    p.plot.append(svg("text", { class: "lt-tick", x: m.left - 6, y: m.top + (i + 0.5) * ch + 4, "text-anchor": "end" }, label));
  });
  const every = Math.max(1, Math.ceil(n / 8));
  const lastMultiple = Math.floor((n - 1) / every) * every;
  index.measurements.forEach((meas, k) => {
    const labelled = k % every === 0 || (k === n - 1 && k - lastMultiple >= every * 0.6);
    if (!labelled) return;
    const label = meas.epoch === null || meas.epoch === undefined ? String(meas.step) : String(meas.epoch);
    p.plot.append(svg("text", { class: "lt-tick", x: m.left + (k + 0.5) * cw, y: height - m.bottom + 15, "text-anchor": "middle" }, label));
  });
  const hasEpochs = index.measurements.some((meas) => meas.epoch !== null && meas.epoch !== undefined);
  p.plot.append(svg("text", { class: "lt-label", x: (m.left + width - m.right) / 2, y: height - 4, "text-anchor": "middle" }, hasEpochs ? "epoch" : "step"));
  // colour bar
  const barX = width - m.right + 14;
  const barH = height - m.top - m.bottom;
  for (let s = 0; s < 32; s++) {
    p.plot.append(svg("rect", { x: barX, y: m.top + barH * (1 - (s + 1) / 32), width: 12, height: barH / 32 + 0.5, fill: viridis((s + 0.5) / 32) }));
  }
  p.plot.append(svg("text", { class: "lt-tick", x: barX + 6, y: m.top - 1 + 10, "text-anchor": "middle", dy: -12 }, fmt(range[1])));
  p.plot.append(svg("text", { class: "lt-tick", x: barX + 6, y: m.top + barH + 12, "text-anchor": "middle" }, fmt(range[0])));
  p.note.textContent = "Click a cell to choose its layer and measurement.";
}

// tooltip -----------------------------------------------------------------------------------------------------------
function showTip(event, text) {
  ui.tip.textContent = text;
  ui.tip.hidden = false;
  const x = Math.min(event.clientX + 14, window.innerWidth - ui.tip.offsetWidth - 4);
  const y = Math.min(event.clientY + 14, window.innerHeight - ui.tip.offsetHeight - 4);
  ui.tip.style.left = `${Math.max(0, x)}px`;
  ui.tip.style.top = `${Math.max(0, y)}px`;
}

function hideTip() {
  ui.tip.hidden = true;
}

// data flow ---------------------------------------------------------------------------------------------------------
function drawAll() {
  drawCurves();
  drawDiagram();
  drawProfile();
  drawHeatmap();
}

function updateSlider() {
  const n = state.index ? state.index.measurements.length : 0;
  ui.pos.max = String(Math.max(0, n - 1));
  ui.pos.value = String(Math.max(0, state.pos));
  ui.pos.disabled = n < 2;
  const m = measurement();
  ui.posLabel.textContent = m ? `${measurementLabel(m)} (${state.pos + 1}/${n})` : "–";
}

async function loadLayer() {
  const m = measurement();
  const serial = ++state.serial;
  state.layerNote = "";
  if (!m || !state.layer || (m.layers && !m.layers.includes(state.layer))) {
    // a layer of the run that this measurement does not hold: nothing to fetch
    state.layerData = null;
    if (m && state.layer) state.layerNote = `${state.layer} was not measured at this step.`;
    drawAll();
    if (m) document.body.dataset.ltReady = "1";
    return;
  }
  try {
    const data = await getJSON("layer", { run: state.run, tag: state.tag, step: m.step, layer: state.layer });
    if (serial !== state.serial) return; // a newer choice is on its way
    state.layerData = data;
    drawAll();
    document.body.dataset.ltReady = "1";
    setStatus("");
  } catch (error) {
    if (serial !== state.serial) return;
    state.layerData = null; // never leave another layer's or run's data drawn
    state.layerNote = "This layer could not be loaded.";
    drawAll();
    setStatus(String(error.message || error), true);
  }
}

function selectPosition(pos) {
  state.pos = pos;
  updateSlider();
  drawProfile();
  drawHeatmap();
  loadLayer();
}

function selectLayer(layer) {
  state.layer = layer;
  ui.layer.value = layer;
  drawProfile();
  drawHeatmap();
  loadLayer();
}

async function loadIndex({ follow = false } = {}) {
  if (!state.run || !state.tag) return;
  const previous = state.index;
  const wasLast = !previous || state.pos === previous.measurements.length - 1;
  const index = await getJSON("index", { run: state.run, tag: state.tag });
  const signature = (ix) => JSON.stringify(ix.measurements.map((m) => [m.step, m.wall_time]));
  if (previous && previous.run === index.run && previous.tag === index.tag && signature(previous) === signature(index)) return;
  state.index = index;
  const n = index.measurements.length;
  const step = previous && state.pos >= 0 ? previous.measurements[state.pos]?.step : undefined;
  const kept = index.measurements.findIndex((m) => m.step === step);
  state.pos = n === 0 ? -1 : (follow || wasLast || kept < 0 ? n - 1 : kept);
  if (!index.layers.includes(state.layer)) state.layer = index.layers.find((l) => l !== "input") ?? index.layers[0] ?? null;
  if (!index.descriptors.includes(state.descriptor)) {
    state.descriptor = PREFERRED_DESCRIPTORS.find((d) => index.descriptors.includes(d)) ?? index.descriptors[0] ?? null;
  }
  fillSelect(ui.layer, index.layers, state.layer);
  fillSelect(ui.descriptor, index.descriptors, state.descriptor);
  updateSlider();
  drawProfile(); // the new index's, while the layer loads
  drawHeatmap();
  if (index.unreadable) setStatus(`${index.unreadable} measurement(s) written by a newer lightning-topo were skipped.`);
  await loadLayer();
}

async function loadRuns() {
  const { runs } = await getJSON("runs");
  state.runs = runs;
  ui.empty.hidden = runs.length > 0;
  ui.main.hidden = runs.length === 0;
  if (!runs.length) {
    fillSelect(ui.run, [], null);
    fillSelect(ui.tag, [], null);
    return false;
  }
  const names = runs.map((r) => r.run);
  if (!names.includes(state.run)) state.run = names[0];
  fillSelect(ui.run, names, state.run);
  fillTags();
  return true;
}

function fillTags() {
  const tags = (state.runs.find((r) => r.run === state.run) || { tags: [] }).tags;
  if (!tags.includes(state.tag)) state.tag = tags[0] ?? null;
  fillSelect(ui.tag, tags, state.tag);
  ui.tagWrap.hidden = tags.length < 2;
}

async function refresh() {
  try {
    if (await loadRuns()) await loadIndex();
  } catch (error) {
    setStatus(String(error.message || error), true);
  }
}

// page --------------------------------------------------------------------------------------------------------------
function control(label, input, extra = {}) {
  const wrap = html("label", { class: "lt-control", ...extra });
  wrap.append(html("span", {}, label), input);
  return wrap;
}

function build() {
  document.title = "Topology";
  const link = html("link", { rel: "stylesheet", href: "style.css" });
  document.head.append(link);
  ui.run = html("select", { id: "lt-run" });
  ui.tag = html("select", { id: "lt-tag" });
  ui.layer = html("select", { id: "lt-layer" });
  ui.descriptor = html("select", { id: "lt-descriptor" });
  ui.pos = html("input", { id: "lt-pos", type: "range", min: 0, max: 0, step: 1, value: 0 });
  ui.posLabel = html("output", { for: "lt-pos", class: "lt-pos-label" });
  ui.log = html("input", { id: "lt-log", type: "checkbox" });
  ui.log.checked = state.logBetti;
  ui.reload = html("button", { type: "button", id: "lt-reload" }, "Reload");
  ui.status = html("span", { class: "lt-status", role: "status" });
  ui.tagWrap = control("Monitor", ui.tag);
  const slider = control("Measurement", ui.pos, { class: "lt-control lt-slider" });
  slider.append(ui.posLabel);
  const bar = html("header", { class: "lt-bar" });
  bar.append(
    control("Run", ui.run),
    ui.tagWrap,
    control("Layer", ui.layer),
    slider,
    control("Descriptor", ui.descriptor),
    control("Log Betti axis", ui.log, { class: "lt-control lt-check" }),
    ui.reload,
    ui.status,
  );
  ui.empty = html("p", { class: "lt-empty" }, "No topology measurements under this logdir yet. Train with " +
    "TopologyMonitor and a TensorBoardLogger; this page refreshes every 30 seconds.");
  ui.curves = panel("lt-curves", "Betti curves");
  ui.diagram = panel("lt-diagram", "Persistence diagram");
  ui.profile = panel("lt-profile", "Depth profile");
  ui.heatmap = panel("lt-heatmap", "Heat map");
  ui.main = html("main", { class: "lt-grid" });
  ui.main.append(ui.curves.section, ui.diagram.section, ui.profile.section, ui.heatmap.section);
  ui.tip = html("div", { class: "lt-tip", role: "tooltip" });
  ui.tip.hidden = true;
  document.body.replaceChildren(bar, ui.empty, ui.main, ui.tip);

  ui.run.addEventListener("change", () => {
    state.run = ui.run.value;
    state.index = null;
    fillTags();
    loadIndex({ follow: true }).catch((e) => setStatus(String(e.message || e), true));
  });
  ui.tag.addEventListener("change", () => {
    state.tag = ui.tag.value;
    state.index = null;
    loadIndex({ follow: true }).catch((e) => setStatus(String(e.message || e), true));
  });
  ui.layer.addEventListener("change", () => selectLayer(ui.layer.value));
  ui.descriptor.addEventListener("change", () => {
    state.descriptor = ui.descriptor.value;
    drawProfile();
    drawHeatmap();
  });
  ui.pos.addEventListener("input", () => selectPosition(Number(ui.pos.value)));
  ui.log.addEventListener("change", () => {
    state.logBetti = ui.log.checked;
    drawCurves();
  });
  ui.reload.addEventListener("click", refresh);
  document.addEventListener("mouseover", (event) => {
    const target = event.target.closest ? event.target.closest("[data-tip]") : null;
    if (target) showTip(event, target.getAttribute("data-tip"));
  });
  document.addEventListener("mousemove", (event) => {
    const target = event.target.closest ? event.target.closest("[data-tip]") : null;
    if (target) showTip(event, target.getAttribute("data-tip"));
  });
  document.addEventListener("mouseout", (event) => {
    if (event.target.closest && event.target.closest("[data-tip]")) hideTip();
  });
}

export async function render() {
  build();
  await refresh();
  setInterval(refresh, REFRESH_MS);
}
