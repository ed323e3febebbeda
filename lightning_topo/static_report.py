"""``lightning-topo report LOGDIR``: a static summary (PNG figures and one self-contained HTML page) of the
files ``TopologyMonitor(save_diagrams=True)`` writes under ``{log_dir}/topology/``."""

from __future__ import annotations

import base64
import html
import json
import math
import re
from pathlib import Path
from typing import Any

from lightning_topo import plotting
from lightning_topo.report import TopologyReport

__all__ = ["find_runs", "render_report"]


def find_runs(logdir: str | Path) -> list[Path]:
    """Every ``topology`` folder below ``logdir`` (or ``logdir`` itself) holding ``epoch_*.json`` files."""
    root = Path(logdir)
    candidates = [root] if root.name == "topology" else []
    candidates += sorted(p for p in root.rglob("topology") if p.is_dir())
    return [p for p in candidates if any(p.glob("epoch_*.json"))]


def _load(run: Path) -> tuple[list[TopologyReport], str]:
    """Every report of a run, in measurement order, and the run's key prefix."""
    paths = sorted(run.glob("epoch_*.json"), key=lambda p: [int(part) for part in p.stem.split("_")[1::2]])
    prefix = json.loads(paths[-1].read_text()).get("prefix", "topo")
    return [TopologyReport.load(p) for p in paths], prefix


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def render_report(logdir: str | Path, out: str | Path | None = None) -> list[Path]:
    """Render one report per run found under ``logdir``; returns the HTML pages written.

    Each report folder (``{run}/report`` unless ``out`` is given) holds PNG figures (descriptors over epochs,
    the depth profile, the last epoch's Betti curves and diagram of every layer) and ``index.html``, which
    embeds them all.

    Raises:
        FileNotFoundError: when no saved topology is found below ``logdir``.
    """
    runs = find_runs(logdir)
    if not runs:
        raise FileNotFoundError(
            f"No topology files under {logdir}: train with TopologyMonitor(save_diagrams=True) to write them."
        )
    pages = []
    for i, run in enumerate(runs):
        target = Path(out) / (_slug(str(run.parent.relative_to(logdir))) if len(runs) > 1 else "") if out else None
        pages.append(_render_run(run, target or run.parent / "report", title=str(run.parent)))
        del i
    return pages


def _render_run(run: Path, out: Path, title: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    reports, _ = _load(run)
    report = reports[-1]
    epochs = [int(r.epoch or 0) for r in reports]
    descriptors = list(report.metrics[report.layers[0]]) if report.layers else []
    figures: list[tuple[str, str, Any]] = []
    for d in descriptors:
        values = {layer: [r.metrics.get(layer, {}).get(d, math.nan) for r in reports] for layer in report.layers}
        figures.append(("Over epochs", f"history_{_slug(d)}.png", plotting.plot_history(epochs, values, d)))
    figures.append(
        ("Last epoch", "depth_profile.png", plotting.plot_depth_profile(report, title=f"epoch {epochs[-1]}"))
    )
    for layer in report.layers:
        if layer in report.betti_curves:
            fig = plotting.plot_betti_curves(report.betti_curves[layer], report.grid, layer)
            figures.append((f"Layer {layer}", f"{_slug(layer)}_betti_curves.png", fig))
        if layer in report.diagrams:
            figures.append(
                (f"Layer {layer}", f"{_slug(layer)}_diagram.png", plotting.plot_diagram(report.diagrams[layer], layer))
            )
    sections: dict[str, list[str]] = {}
    for section, name, fig in figures:
        png = plotting.figure_to_png(fig)
        fig.clear()
        (out / name).write_bytes(png)
        encoded = base64.b64encode(png).decode("ascii")
        sections.setdefault(section, []).append(
            f'<img alt="{html.escape(name)}" src="data:image/png;base64,{encoded}">'
        )
    page = out / "index.html"
    page.write_text(_html(title, report, sections))
    return page


def _html(title: str, report: TopologyReport, sections: dict[str, list[str]]) -> str:
    keys = list(report.metrics[report.layers[0]]) if report.layers else []
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    rows = "".join(
        f"<tr><th>{html.escape(layer)}</th>"
        + "".join(f"<td>{report.metrics[layer].get(k, math.nan):.4g}</td>" for k in keys)
        + "</tr>"
        for layer in report.layers
    )
    problems = "".join(
        f"<li><b>{html.escape(layer)}</b>: {html.escape(report.problem_text(layer))}</li>" for layer in report.problems
    )
    body = "".join(f"<h2>{html.escape(s)}</h2><div class=row>{''.join(imgs)}</div>" for s, imgs in sections.items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>lightning-topo report: {html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:1.5em}} table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}} .row img{{margin:4px;border:1px solid #eee}}</style>
</head><body>
<h1>lightning-topo report</h1>
<p>{html.escape(title)} &middot; last epoch {report.epoch} &middot; {report.n_samples} examples per layer</p>
<h2>Descriptors at the last epoch</h2>
<table><tr><th>layer</th>{head}</tr>{rows}</table>
{f"<h2>Problems</h2><ul>{problems}</ul>" if problems else ""}
{body}
</body></html>
"""
