"""``lightning-topo report LOGDIR``: a static summary (PNG figures and one self-contained HTML page) of runs trained
with ``TopologyMonitor``.

A *run* is a logger's folder: TensorBoard event files, a CSVLogger ``metrics.csv``, or the ``topology/`` folder of
saved reports (``TopologyMonitor(save_diagrams=True)``). The report shows the run's own validation metrics (every
scalar whose name starts with ``val``) beside ``topo/score``, every descriptor over epochs, the last depth profile
and, when the diagrams were saved, each layer's Betti curves, persistence diagram and their evolution. Without
saved diagrams it is built from the scalars alone.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightning_topo import plotting
from lightning_topo.report import INPUT, OUTPUT, TopologyReport

__all__ = ["Run", "find_runs", "load_run", "render_report"]

_EVENTS = "events.out.tfevents.*"
_CSV = "metrics.csv"


@dataclass
class Run:
    """What a run's folder holds.

    Attributes:
        path: the run's folder (the logger's ``log_dir``).
        prefix: the monitor's key prefix (``topo``).
        scalars: ``{key: {epoch: value}}`` of every epoch-level scalar found (the last value of an epoch wins).
        reports: one :class:`TopologyReport` per measurement, in order: the saved ones (with diagrams and Betti
            curves) when the run has a ``topology/`` folder, else one per epoch rebuilt from the scalars.
        sources: what the scalars and reports were read from (``"tensorboard"``, ``"csv"``, ``"topology"``).
    """

    path: Path
    prefix: str
    scalars: dict[str, dict[int, float]]
    reports: list[TopologyReport]
    sources: list[str] = field(default_factory=list)

    @property
    def metrics(self) -> dict[str, dict[int, float]]:
        """The run's own validation metrics and ``{prefix}/score``, each ``{epoch: value}``."""
        own = {k: v for k, v in self.scalars.items() if k.lower().startswith("val") and v}
        score = self.scalars.get(f"{self.prefix}/score") or {
            int(r.epoch or 0): float(r.score) for r in self.reports if r.score is not None
        }
        return {**dict(sorted(own.items())), **({f"{self.prefix}/score": score} if score else {})}


def _is_run(folder: Path) -> bool:
    return any(folder.glob(_EVENTS)) or (folder / _CSV).is_file() or any((folder / "topology").glob("epoch_*.json"))


def find_runs(logdir: str | Path) -> list[Path]:
    """Every run folder at or below ``logdir`` (see the module's docstring), sorted; ``logdir`` may also be a run's
    ``topology/`` folder."""
    root = Path(logdir)
    if root.name == "topology" and any(root.glob("epoch_*.json")):
        return [root.parent]
    folders = {root, *(p for p in root.rglob("*") if p.is_dir() and p.name != "topology")}
    return sorted(p for p in folders if _is_run(p))


def _check_folder(logdir: Path) -> None:
    if not logdir.exists():
        raise FileNotFoundError(
            f"Expected a log folder but {str(logdir)!r} does not exist. Pass the folder your logger wrote to "
            "(for example lightning_logs or lightning_logs/version_0)."
        )
    if not logdir.is_dir():
        raise NotADirectoryError(
            f"Expected a log folder but {str(logdir)!r} is a file. Pass the folder that holds it instead."
        )


# reading ----------------------------------------------------------------------------------------------------
def _tensorboard_scalars(run: Path) -> tuple[dict[str, dict[int, float]], list[str]]:
    """``{key: {epoch: value}}`` from the run's event files, and the layers named by its custom-scalars layout in
    order (the monitor lists them in depth order)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run), size_guidance={"scalars": 0, "tensors": 0, "images": 1})
    acc.Reload()
    tags = acc.Tags()
    epoch_at = {e.step: round(e.value) for e in acc.Scalars("epoch")} if "epoch" in tags["scalars"] else {}
    out: dict[str, dict[int, float]] = {}
    for tag in tags["scalars"]:
        if tag == "epoch":
            continue
        events = acc.Scalars(tag)
        out[tag] = {epoch_at.get(e.step, i): float(e.value) for i, e in enumerate(events)}
    order: list[str] = []
    if "custom_scalars__config__" in tags.get("tensors", []):
        from tensorboard.plugins.custom_scalar import layout_pb2

        layout = layout_pb2.Layout()
        layout.ParseFromString(acc.Tensors("custom_scalars__config__")[-1].tensor_proto.string_val[0])
        for category in layout.category:
            for chart in category.chart:
                for regex in chart.multiline.tag:
                    match = re.match(r"^\^[^/]+/((?:\\.|[^/\\])+)/", regex)
                    name = re.sub(r"\\(.)", r"\1", match.group(1)) if match else None
                    if name is not None and name not in order:
                        order.append(name)
    for tag in tags["scalars"]:  # layers the layout did not name: in the order they were first logged
        name = tag.split("/")[1] if tag.count("/") == 2 else None
        if name is not None and name not in order:
            order.append(name)
    return out, order


def _csv_scalars(path: Path) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    with path.open(newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            epoch = _number(row.get("epoch"))
            for key, value in row.items():
                number = _number(value)
                if key in ("epoch", "step") or number is None:
                    continue
                out.setdefault(key, {})[int(epoch) if epoch is not None else i] = number
    return out


def _number(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def _prefix(scalars: Iterable[str]) -> str | None:
    """The monitor's prefix: the first part of ``{prefix}/time_s``, which every measurement logs."""
    found = sorted(k[: -len("/time_s")] for k in scalars if k.endswith("/time_s") and k.count("/") == 1)
    return "topo" if "topo" in found else (found[0] if found else None)


def _reports_from_scalars(scalars: dict[str, dict[int, float]], prefix: str, order: list[str]) -> list[TopologyReport]:
    """One report per measured epoch, from the ``{prefix}/{layer}/{descriptor}`` scalars."""
    per_layer: dict[str, dict[str, dict[int, float]]] = {}
    for key, values in scalars.items():
        if not key.startswith(f"{prefix}/"):
            continue
        layer, _, descriptor = key[len(prefix) + 1 :].partition("/")
        if descriptor and "/" not in descriptor:
            per_layer.setdefault(layer, {})[descriptor] = values
    rank = {name: i for i, name in enumerate(order)}
    fallback = {INPUT: -1, OUTPUT: len(per_layer) + len(order)}
    layers = sorted(per_layer, key=lambda name: (rank.get(name, fallback.get(name, len(order))), name))
    epochs = sorted({e for by_key in per_layer.values() for values in by_key.values() for e in values})
    score = scalars.get(f"{prefix}/score", {})
    reports = []
    for epoch in epochs:
        metrics = {
            layer: {d: values.get(epoch, math.nan) for d, values in per_layer[layer].items()} for layer in layers
        }
        reports.append(TopologyReport(layers, metrics, epoch=epoch, score=score.get(epoch)))
    return reports


def _saved_reports(folder: Path) -> list[TopologyReport]:
    # epoch_{e}_step_{s}.json (epoch_{e}.json before steps were in the names)
    paths = sorted(folder.glob("epoch_*.json"), key=lambda p: [int(part) for part in p.stem.split("_")[1::2]])
    return [TopologyReport.load(p) for p in paths]


def load_run(path: str | Path) -> Run:
    """Read one run folder (see the module's docstring).

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: when it is not a run, or a run without any ``TopologyMonitor`` results.
    """
    run = Path(path)
    _check_folder(run)
    if run.name == "topology" and any(run.glob("epoch_*.json")):
        run = run.parent
    scalars: dict[str, dict[int, float]] = {}
    sources: list[str] = []
    order: list[str] = []
    if any(run.glob(_EVENTS)):
        found, order = _tensorboard_scalars(run)
        scalars.update(found)
        sources.append("tensorboard")
    if (run / _CSV).is_file():
        for key, values in _csv_scalars(run / _CSV).items():
            scalars.setdefault(key, {}).update(values)
        sources.append("csv")
    saved = _saved_reports(run / "topology")
    if not sources and not saved:
        raise ValueError(
            f"Expected a run folder (TensorBoard event files, a CSVLogger {_CSV}, or topology/epoch_*.json from "
            f"TopologyMonitor(save_diagrams=True)) but {str(run)!r} holds none of them."
        )
    if saved:
        sources.append("topology")
        prefix = json.loads(sorted((run / "topology").glob("epoch_*.json"))[0].read_text()).get("prefix", "topo")
        return Run(run, prefix, scalars, saved, sources)
    prefix = _prefix(scalars)
    if prefix is None:
        raise ValueError(
            f"Expected TopologyMonitor results in {str(run)!r} but its logs ({', '.join(sources)}) hold no "
            "`topo/...` scalars: was TopologyMonitor among the Trainer's callbacks?"
        )
    return Run(run, prefix, scalars, _reports_from_scalars(scalars, prefix, order), sources)


# rendering --------------------------------------------------------------------------------------------------
def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def render_report(logdir: str | Path, out: str | Path | None = None) -> list[Path]:
    """Render one report per run found at or below ``logdir``; returns the HTML pages written.

    Each report folder (``{run}/report`` unless ``out`` is given; ``out/{run name}`` when there are several runs)
    holds PNG figures and ``index.html``, which embeds them all.

    Raises:
        FileNotFoundError: when ``logdir`` does not exist.
        NotADirectoryError: when it is a file.
        ValueError: when no run with ``TopologyMonitor`` results is found below it.
    """
    root = Path(logdir)
    _check_folder(root)
    candidates = find_runs(root)
    if not candidates:
        raise ValueError(
            f"Expected a run under {str(root)!r} (TensorBoard event files, a CSVLogger {_CSV}, or "
            "topology/epoch_*.json from TopologyMonitor(save_diagrams=True)) but found none. Pass the folder your "
            "logger wrote to."
        )
    runs: list[Run] = []
    skipped: list[str] = []
    for folder in candidates:
        try:
            runs.append(load_run(folder))
        except ValueError as err:
            skipped.append(str(err))
    if not runs:
        raise ValueError(" ".join(dict.fromkeys(skipped)))
    pages = []
    for run in runs:
        if out is None:
            target = run.path / "report"
        elif len(runs) == 1:
            target = Path(out)
        else:
            target = Path(out) / _slug(str(run.path.relative_to(root)) if run.path != root else run.path.name)
        pages.append(_render_run(run, target))
    return pages


def _render_run(run: Run, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    reports = [r for r in run.reports if r.layers]
    sections: dict[str, list[str]] = {}
    for section, name, fig in _figures(run, reports):  # each reused figure becomes a PNG before the next is drawn
        png = plotting.figure_to_png(fig)
        (out / name).write_bytes(png)
        encoded = base64.b64encode(png).decode("ascii")
        sections.setdefault(section, []).append(
            f'<img alt="{html.escape(name)}" src="data:image/png;base64,{encoded}">'
        )
    page = out / "index.html"
    page.write_text(_html(run, reports, sections))
    return page


def _figures(run: Run, reports: list[TopologyReport]) -> Iterator[tuple[str, str, Any]]:
    metrics = run.metrics
    if metrics:
        series = {k: (list(v), list(v.values())) for k, v in metrics.items()}
        yield "Validation metrics and score", "metrics.png", plotting.plot_metrics(series, _name(run), reuse=True)
    if not reports:
        return
    report = reports[-1]
    epochs = [int(r.epoch or 0) for r in reports]
    for d in report.metrics[report.layers[0]]:
        values = {layer: [r.metrics.get(layer, {}).get(d, math.nan) for r in reports] for layer in report.layers}
        fig = plotting.plot_history(epochs, values, f"{d} over epochs", ylabel=d, reuse=True)
        yield "Descriptors over epochs", f"history_{_slug(d)}.png", fig
    depth = plotting.plot_depth_profile(report, title=f"Depth profile, epoch {epochs[-1]}", reuse=True)
    yield "Depth profile", "depth_profile.png", depth
    yield from _layer_figures(reports)


def _layer_figures(reports: list[TopologyReport]) -> Iterator[tuple[str, str, Any]]:
    """Per layer with saved diagrams: the last Betti curves and diagram, and the curves over the measurements, on
    the layer's range fixed at its first saved measurement (as in TensorBoard, :func:`plotting.betti_figures`). The
    file names start with the layer's index: two names may share a slug."""
    last = reports[-1]
    for i, layer in enumerate(last.layers):
        if layer in last.copies:
            continue
        saved = [r for r in reports if layer in r.diagrams]
        if not saved:
            continue
        x_max = plotting.fit_range(saved[0].diagrams[layer], saved[0].grid)
        history = [(int(r.epoch or 0), plotting.fine_betti_curves(r.diagrams[layer], x_max)) for r in saved[:-1]]
        steps = [int(r.step) for r in saved if r.step is not None]
        figures = plotting.betti_figures(
            saved[-1].diagrams[layer],
            x_max,
            layer,
            int(saved[-1].epoch or 0),
            history=history,
            steps=steps if len(steps) == len(saved) else None,
        )
        for name in ("betti_curves", "diagram", "betti_evolution"):
            if name in figures:
                yield f"Layer {layer}", f"layer{i:02d}_{_slug(layer)}_{name}.png", figures[name]


def _name(run: Run) -> str:
    return str(run.path)


def _table(head: list[str], rows: list[tuple[str, list[float]]]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        f"<tr><th>{html.escape(name)}</th>" + "".join(f"<td>{v:.4g}</td>" for v in values) + "</tr>"
        for name, values in rows
    )
    return f"<table><tr>{cells}</tr>{body}</table>"


def _html(run: Run, reports: list[TopologyReport], sections: dict[str, list[str]]) -> str:
    parts: list[str] = []
    metrics = run.metrics
    if metrics:
        rows = [(k, [v[max(v)]]) for k, v in metrics.items()]
        parts.append(f"<h2>Run metrics at the last epoch</h2>{_table(['metric', 'value'], rows)}")
    facts = [html.escape(str(run.path)), f"read from {', '.join(run.sources)}"]
    if reports:
        report = reports[-1]
        keys = list(report.metrics[report.layers[0]])
        rows = [(layer, [report.metrics[layer].get(k, math.nan) for k in keys]) for layer in report.layers]
        parts.append(f"<h2>Descriptors at the last measured epoch</h2>{_table(['layer', *keys], rows)}")
        problems = "".join(
            f"<li><b>{html.escape(layer)}</b>: {html.escape(report.problem_text(layer))}</li>"
            for layer in report.problems
        )
        if problems:
            parts.append(f"<h2>Problems</h2><ul>{problems}</ul>")
        facts.append(f"last measured epoch {report.epoch}")
        if report.n_samples:
            facts.append(f"{report.n_samples} examples per layer")
        if not any(r.diagrams for r in reports):
            facts.append("no saved diagrams (TopologyMonitor(save_diagrams=True) adds Betti curves and diagrams)")
    body = "".join(f"<h2>{html.escape(s)}</h2><div class=row>{''.join(imgs)}</div>" for s, imgs in sections.items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>lightning-topo report: {html.escape(str(run.path))}</title>
<style>body{{font-family:sans-serif;margin:1.5em}} table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}
.row img{{margin:4px;border:1px solid #eee;max-width:100%}}</style>
</head><body>
<h1>lightning-topo report</h1>
<p>{" &middot; ".join(facts)}</p>
{"".join(parts)}
{body}
</body></html>
"""
