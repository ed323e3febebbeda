"""Matplotlib figures of topology reports: Betti curves, persistence diagrams, depth profiles, evolution.

matplotlib is imported lazily, with the Agg backend, only when a figure is made. Every function returns a
``matplotlib.figure.Figure`` that the caller closes (``plt.close(fig)``); the callback closes each one right
after logging it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lightning_topo.diagrams import PersistenceDiagrams

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from lightning_topo.engine import FigureRequest, LayerResult
    from lightning_topo.report import TopologyReport

__all__ = [
    "figure_to_png",
    "figure_to_rgb",
    "layer_figures",
    "plot_adversarial",
    "plot_betti_curves",
    "plot_betti_evolution",
    "plot_depth_profile",
    "plot_diagram",
    "plot_history",
]

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def _figure(width: float, height: float) -> Figure:
    import matplotlib

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    # a bare Figure is not registered with pyplot: nothing to leak if a caller forgets to close it
    return Figure(figsize=(width, height), dpi=80)


def plot_betti_curves(curves: np.ndarray, grid: np.ndarray, title: str = "") -> Figure:
    """Betti curves ``beta_q(t)`` of every dimension on the shared grid, overlaid in one panel.

    Example:
        >>> fig = plot_betti_curves(np.array([[3, 2, 1], [0, 1, 0]]), np.array([0.0, 0.5, 1.0]), "layer")
        >>> [line.get_label() for line in fig.axes[0].get_lines()]
        ['beta_0', 'beta_1']
    """
    curves = np.atleast_2d(curves)
    fig = _figure(3.2, 2.4)
    ax = fig.add_subplot()
    for q, curve in enumerate(curves):
        ax.step(grid, curve, where="post", color=_COLORS[q % len(_COLORS)], label=f"beta_{q}")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_title(f"{title}: Betti curves".strip(": "), fontsize=9)
    ax.set_xlabel("scale (normalised)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="upper right")
    fig.subplots_adjust(left=0.16, bottom=0.2, right=0.97, top=0.88)
    return fig


def plot_diagram(diagrams: PersistenceDiagrams, title: str = "") -> Figure:
    """A persistence diagram: finite bars as points, essential bars as triangles on a top line.

    Example:
        >>> fig = plot_diagram(PersistenceDiagrams([[[0.0, 1.0], [0.0, np.inf]], [[0.4, 0.7]]]), "layer")
        >>> fig.axes[0].get_title()
        'layer'
    """
    fig = _figure(2.8, 2.8)
    ax = fig.add_subplot()
    top = max(diagrams.max_finite_value(), 1e-9) * 1.1
    for q, dgm in enumerate(diagrams):
        finite = dgm[np.isfinite(dgm[:, 1])]
        color = _COLORS[q % len(_COLORS)]
        ax.scatter(finite[:, 0], finite[:, 1], s=8, color=color, label=f"H{q}", alpha=0.7)
        essential = dgm[~np.isfinite(dgm[:, 1])]
        if len(essential):
            ax.scatter(essential[:, 0], np.full(len(essential), top), marker="^", s=20, color=color)
    ax.plot([0, top], [0, top], color="0.6", lw=0.8)
    ax.axhline(top, color="0.8", lw=0.6, ls="--")
    ax.set_xlim(-0.02 * top, top * 1.02)
    ax.set_ylim(-0.02 * top, top * 1.05)
    ax.set_xlabel("birth", fontsize=8)
    ax.set_ylabel("death (triangles: never)", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="lower right")
    fig.subplots_adjust(left=0.18, bottom=0.16, right=0.96, top=0.9)
    return fig


def plot_depth_profile(report: TopologyReport, descriptors: Sequence[str] | None = None, title: str = "") -> Figure:
    """Each descriptor against layer depth (one panel per descriptor), layers in monitored order."""
    keys = list(descriptors) if descriptors is not None else list(report.metrics[report.layers[0]])
    fig = _figure(min(2.4 * len(keys), 16), 2.6)
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    x = np.arange(len(report.layers))
    for ax, key in zip(axes, keys, strict=True):
        ax.plot(x, report.profile(key), "o-", ms=3)
        ax.set_title(key, fontsize=9)
        ax.set_xticks(x, report.layers, rotation=60, fontsize=6, ha="right")
        ax.tick_params(axis="y", labelsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.05, bottom=0.3, right=0.99, top=0.82, wspace=0.35)
    return fig


def plot_betti_evolution(
    epochs: Sequence[int], curves: Sequence[np.ndarray], grid: np.ndarray, title: str = ""
) -> Figure:
    """Heat maps of ``beta_q(t)`` against training epoch, one panel per homology dimension."""
    stack = np.stack([np.atleast_2d(c) for c in curves])  # (epochs, dims, grid)
    n_dims = stack.shape[1]
    fig = _figure(2.8 * n_dims, 2.4)
    axes = fig.subplots(1, n_dims, squeeze=False)[0]
    for q, ax in enumerate(axes):
        extent = (float(grid[0]), float(grid[-1]), -0.5, len(epochs) - 0.5)
        image = ax.imshow(stack[:, q, :], aspect="auto", origin="lower", extent=extent, cmap="viridis")
        ticks = np.unique(np.linspace(0, len(epochs) - 1, min(len(epochs), 6)).round().astype(int))
        ax.set_yticks(ticks, [str(epochs[i]) for i in ticks], fontsize=6)
        ax.set_xlabel("scale (normalised)", fontsize=8)
        ax.set_ylabel("epoch", fontsize=8)
        ax.set_title(f"{title}  beta_{q}".strip(), fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
        fig.colorbar(image, ax=ax, shrink=0.8)
    fig.subplots_adjust(left=0.1, bottom=0.2, right=0.98, top=0.88, wspace=0.3)
    return fig


def plot_history(epochs: Sequence[int], values: Mapping[str, Sequence[float]], title: str = "") -> Figure:
    """One descriptor over epochs, a line per layer."""
    fig = _figure(4.0, 2.6)
    ax = fig.add_subplot()
    for i, (layer, ys) in enumerate(values.items()):
        ax.plot(list(epochs), list(ys), "o-", ms=3, label=layer, color=f"C{i % 10}")
    ax.set_xlabel("epoch", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, ncol=2, loc="upper right")
    fig.subplots_adjust(left=0.12, bottom=0.16, right=0.97, top=0.9)
    return fig


def figure_to_rgb(fig: Any) -> np.ndarray:
    """An ``H x W x 3`` uint8 image of a figure (what TensorBoard's ``add_figure`` renders)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    image = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    fig.clear()
    return image


def figure_to_png(fig: Any) -> bytes:
    """PNG bytes of a figure."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def layer_figures(result: LayerResult, request: FigureRequest, grid: np.ndarray) -> dict[str, np.ndarray]:
    """RGB images (``H x W x 3`` uint8) of one layer: ``betti_curves``, ``diagram`` and, with a history of earlier
    measurements, ``betti_evolution``. The engine's workers call it through a ``FigureRequest``."""
    figures = {}
    if result.betti_curve is not None:
        figures["betti_curves"] = plot_betti_curves(result.betti_curve, grid, request.title)
        if request.history:
            epochs = [e for e, _ in request.history] + [request.epoch]
            curves = [c for _, c in request.history] + [result.betti_curve]
            figures["betti_evolution"] = plot_betti_evolution(epochs, curves, grid, request.title)
    if result.diagrams is not None:
        figures["diagram"] = plot_diagram(result.diagrams, request.title)
    return {name: figure_to_rgb(fig) for name, fig in figures.items()}


def plot_adversarial(results: Sequence[Any], descriptor: str = "total_persistence_0", title: str = "") -> Figure:
    """One descriptor against layer depth, a line per attack strength (Magai & Ayzenberg's adversarial figure).

    Args:
        results: the :class:`~lightning_topo.adversarial.AdversarialResult` list of
            :func:`~lightning_topo.adversarial_geometry` (anything with ``epsilon``, ``accuracy`` and ``report``).
        descriptor: the per-layer descriptor drawn (default the H0 lifespan sum).
        title: the figure title (default the descriptor).

    Returns:
        A figure whose legend gives each epsilon with the accuracy it leaves.

    Raises:
        ValueError: for an empty ``results`` or a descriptor no layer of the first report has.

    Example:
        >>> from types import SimpleNamespace
        >>> from lightning_topo.report import TopologyReport
        >>> report = TopologyReport(["a", "b"], {"a": {"total_persistence_0": 2.0}, "b": {"total_persistence_0": 1.0}})
        >>> fig = plot_adversarial([SimpleNamespace(epsilon=0.0, accuracy=0.9, report=report)])
        >>> [line.get_label() for line in fig.axes[0].get_lines()], fig.axes[0].get_xlabel()
        (['eps = 0 (accuracy 0.90)'], 'layer (depth order)')
    """
    if not results:
        raise ValueError("Expected at least one adversarial result to draw but got none.")
    first = results[0].report
    if not any(descriptor in first.metrics[layer] for layer in first.layers):
        known = sorted({k for layer in first.layers for k in first.metrics[layer]})
        raise ValueError(f"Expected `descriptor` to be one of {known} but got {descriptor!r}.")
    fig = _figure(4.4, 2.8)
    ax = fig.add_subplot()
    for i, result in enumerate(results):
        layers = result.report.layers
        ax.plot(
            np.arange(len(layers)),
            result.report.profile(descriptor),
            "o-",
            ms=3,
            color=f"C{i % 10}",
            label=f"eps = {result.epsilon:g} (accuracy {result.accuracy:.2f})",
        )
    ax.set_xticks(np.arange(len(first.layers)), first.layers, rotation=45, fontsize=6, ha="right")
    ax.set_xlabel("layer (depth order)", fontsize=8)
    ax.set_ylabel(descriptor, fontsize=8)
    ax.set_title(title or f"{descriptor} under FGSM", fontsize=9)
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=6, loc="best")
    fig.subplots_adjust(left=0.14, bottom=0.3, right=0.97, top=0.9)
    return fig
