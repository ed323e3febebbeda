"""Regenerate ``docs/demo_report.png`` (the README picture) from the bundled example.

    python docs/make_figures.py

Trains the digits CNN for 10 epochs with the default TopologyMonitor and draws, from its last report, the
Betti curves of four layers, the depth profile and the evolution of beta_1 of the first dense layer.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from lightning_topo import TopologyReport
from lightning_topo.demo import run


def main() -> None:
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        run(tmp, max_epochs=10, enable_progress_bar=False)  # saves every measurement under topology/
        saved = sorted(Path(tmp).rglob("epoch_*.json"), key=lambda p: int(p.stem.split("_")[1]))
        history = [TopologyReport.load(p) for p in saved]
    report = history[-1]
    layers = ["input", "conv2", "fc1", "output"]
    fig = plt.figure(figsize=(13, 6.4), dpi=90, layout="constrained")
    grid = fig.add_gridspec(2, 4)
    for i, layer in enumerate(layers):
        ax = fig.add_subplot(grid[0, i])
        curves = report.betti_curves[layer]
        for q, color in zip(range(len(curves)), ("#1f77b4", "#d62728"), strict=True):
            ax.step(report.grid, curves[q], where="post", color=color, label=f"beta_{q}")
        ax.set_yscale("symlog")
        ax.set_title(f"{layer}: Betti curves (epoch {report.epoch})", fontsize=9)
        ax.set_xlabel("scale (distances / 0.9 quantile)", fontsize=8)
        ax.legend(fontsize=7)
    x = np.arange(len(report.layers))
    for j, key in enumerate(("total_persistence_0", "total_persistence_1", "id_twonn")):
        ax = fig.add_subplot(grid[1, j])
        ax.plot(x, report.profile(key), "o-")
        ax.set_xticks(x, report.layers, rotation=45, fontsize=7)
        ax.set_title(f"depth profile: {key}", fontsize=9)
    ax = fig.add_subplot(grid[1, 3])
    image = np.stack([r.betti_curves["fc1"][1] for r in history])
    ax.imshow(image, aspect="auto", origin="lower", extent=(0, 1, -0.5, len(history) - 0.5))
    ax.set_title("fc1: beta_1(t) over epochs", fontsize=9)
    ax.set_xlabel("scale", fontsize=8)
    ax.set_ylabel("epoch", fontsize=8)
    out = Path(__file__).with_name("demo_report.png")
    fig.savefig(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
