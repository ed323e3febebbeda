"""Matplotlib figures of topology reports: Betti curves, persistence diagrams, depth profiles, evolution, history.

matplotlib is imported lazily, with the Agg backend, only when a figure is made. Every ``plot_*`` function returns
a bare ``matplotlib.figure.Figure`` (never registered with pyplot: it is freed once unreferenced, nothing to
close). With ``reuse=True`` the figure is this process's cached one of its kind and shape, redrawn in place (new
data, limits and labels on the same artists): the callback and its worker processes draw every layer at every
measurement this way, for about a third of the cost of building a figure (``benchmarks/RESULTS.md``). A reused
figure is overwritten by the next call of the same kind, so turn it into pixels (:func:`figure_to_rgb`) or a file
(:func:`figure_to_png`) at once. At most :data:`CACHE_SIZE` cached figures live in a process.

Ranges: Betti curves are drawn from ``0`` to a per-layer ``x_max`` (:func:`fit_range`: a little past the layer's
largest finite death, snapped to the measurement grid), fixed at the layer's first measurement by the caller so
epochs stay comparable; on the default grid ``[0, 1]`` a conv layer's bars often all end below 0.25.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from lightning_topo.diagrams import PersistenceDiagrams
from lightning_topo.functional import betti_curve

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from lightning_topo.engine import FigureRequest, LayerResult
    from lightning_topo.report import TopologyReport

__all__ = [
    "CACHE_SIZE",
    "DPI",
    "HEADROOM",
    "N_POINTS",
    "betti_figures",
    "figure_to_png",
    "figure_to_rgb",
    "fine_betti_curves",
    "fit_range",
    "layer_colors",
    "layer_figures",
    "plot_adversarial",
    "plot_betti_curves",
    "plot_betti_evolution",
    "plot_class_betti_curves",
    "plot_depth_profile",
    "plot_diagram",
    "plot_history",
    "plot_metrics",
]

DPI = 100
"""Dots per inch of every figure (a 6.4 x 4 inch figure is 640 x 400 pixels)."""
N_POINTS = 256
"""Points at which a layer's Betti curves are drawn and kept for the evolution heat map, across its range."""
HEADROOM = 1.2
"""A layer's range reaches this multiple of its largest finite death (then snaps up to the grid)."""
CACHE_SIZE = 12
"""Most figures kept for reuse in one process."""

_DIM_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
_LABEL = 9
_TICK = 8
_TITLE = 10

P = TypeVar("P", bound="_Plot")


# ranges and curves ------------------------------------------------------------------------------------------
def fit_range(diagrams: PersistenceDiagrams, grid: np.ndarray) -> float:
    """The plotted scale range of a layer: the first ``grid`` value at or past ``HEADROOM`` times the largest finite
    death of ``diagrams`` (``grid[-1]`` when there is none or it lies beyond the grid).

    Example:
        >>> grid = np.linspace(0.0, 1.0, 101)
        >>> fit_range(PersistenceDiagrams([[[0.0, 0.1], [0.0, np.inf]], [[0.05, 0.12]]]), grid)
        0.15
        >>> fit_range(PersistenceDiagrams([[[0.0, np.inf]]]), grid)
        1.0
    """
    grid = np.asarray(grid, dtype=np.float64)
    deaths = [dgm[np.isfinite(dgm[:, 1]), 1] for dgm in diagrams]
    largest = max((float(d.max()) for d in deaths if d.size), default=math.nan)
    if grid.size == 0:  # a report read without its arrays: no grid to snap to
        return HEADROOM * largest if largest > 0 else 1.0
    if not largest > 0:
        return float(grid[-1])
    index = int(np.searchsorted(grid, HEADROOM * largest - 1e-12, side="left"))
    return float(grid[min(index, len(grid) - 1)])


def fine_betti_curves(diagrams: PersistenceDiagrams, x_max: float) -> np.ndarray:
    """Betti curves at ``N_POINTS`` scales from 0 to ``x_max``: ``(maxdim + 1, N_POINTS)`` int32 (what is drawn).

    Example:
        >>> fine_betti_curves(PersistenceDiagrams([[[0.0, 0.5], [0.0, np.inf]]]), 1.0)[0, [0, 127, 128, 255]].tolist()
        [2, 2, 1, 1]
    """
    return betti_curve(diagrams, np.linspace(0.0, x_max, N_POINTS)).astype(np.int32)


def layer_colors(n: int) -> list[str]:
    """``n`` colours that tell layers apart, in depth order (the same layer gets the same colour in every figure).

    Example:
        >>> layer_colors(3)
        ['#1f77b4', '#ff7f0e', '#2ca02c']
    """
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    if n <= 10:
        return [to_hex(colormaps["tab10"](i)) for i in range(n)]
    if n <= 20:  # the ten strong colours of tab20, then their light partners
        return [to_hex(colormaps["tab20"]((2 * i) % 20 + (2 * i) // 20)) for i in range(n)]
    return [to_hex(colormaps["turbo"](x)) for x in np.linspace(0.05, 0.95, n)]


# figure plumbing --------------------------------------------------------------------------------------------
_CACHE: OrderedDict[tuple[Any, ...], _Plot] = OrderedDict()


def _new_figure(width: float, height: float) -> Figure:
    import matplotlib

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg", force=True)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _plot(cls: type[P], key: tuple[Any, ...], reuse: bool, build: Callable[[bool], P]) -> P:
    """A new plot, or with ``reuse`` the cached one of this kind and shape (least recently used ones are dropped)."""
    if not reuse:
        return build(False)
    full = (cls.__name__, *key)
    plot = _CACHE.pop(full, None)
    if plot is None:
        plot = build(True)
    _CACHE[full] = plot
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    assert isinstance(plot, cls)
    return plot


def _plain(texts: Sequence[Any]) -> None:
    """Show ``texts`` as written: a ``$`` in a layer, run or metric name is not mathtext (which would fail on it)."""
    for text in texts:
        text.set_parse_math(False)


def _labels(ax: Axes, x: str, y: str, title: str = "", *, x_pad: float = -0.11, y_pad: float = -0.12) -> None:
    """Axis labels at fixed positions and a title at a fixed height: matplotlib then skips measuring every tick
    label to place them, about a third of the drawing time. Text is never read as mathtext (:func:`_plain`)."""
    ax.set_xlabel(x, fontsize=_LABEL, parse_math=False)
    ax.set_ylabel(y, fontsize=_LABEL, parse_math=False)
    ax.xaxis.set_label_coords(0.5, x_pad)
    ax.yaxis.set_label_coords(y_pad, 0.5)
    ax.set_title(title, fontsize=_TITLE, y=1.0, pad=6, parse_math=False)
    ax.tick_params(labelsize=_TICK)


class _Plot:
    """A figure and the artists an update changes.

    A reused plot (``blit=True``) draws in two layers: the *static* artists (frame, the axes whose limits are fixed
    by ``signature``, labels, legend) are drawn once per signature and kept as pixels (at most ``_BACKGROUNDS`` per
    plot, about 1 MB each); each render restores those pixels and draws only the *dynamic* artists (data, titles,
    the axes whose ticks move). Text is half the cost of a figure, so this is most of the saving.
    """

    _BACKGROUNDS = 16

    def __init__(self, figure: Figure, blit: bool) -> None:
        self.figure = figure
        self.blit = blit
        self.signature: Any = None
        self._dynamic: list[Any] = []
        self._backgrounds: OrderedDict[Any, Any] = OrderedDict()
        figure._lightning_topo_plot = self  # type: ignore[attr-defined]  # how figure_to_rgb finds it

    def dynamic(self, *artists: Any) -> None:
        """Artists drawn at every render (with ``blit``; a plain figure draws everything every time)."""
        for artist in artists:
            artist.set_animated(self.blit)
            self._dynamic.append(artist)

    def rgb(self) -> np.ndarray:
        canvas = self.figure.canvas
        if not self.blit:
            canvas.draw()
        else:
            background = self._backgrounds.get(self.signature)
            if background is None:
                canvas.draw()  # every artist but the dynamic ones
                self._backgrounds[self.signature] = canvas.copy_from_bbox(self.figure.bbox)  # type: ignore[attr-defined]
                while len(self._backgrounds) > self._BACKGROUNDS:
                    self._backgrounds.popitem(last=False)
            else:
                self._backgrounds.move_to_end(self.signature)
                canvas.restore_region(background)  # type: ignore[attr-defined]
            for artist in self._dynamic:
                if artist.get_visible():
                    self.figure.draw_artist(artist)
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()  # type: ignore[attr-defined]


# Betti curves -----------------------------------------------------------------------------------------------
class _BettiCurves(_Plot):
    def __init__(self, n_dims: int, blit: bool) -> None:
        from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator

        super().__init__(_new_figure(6.4, 4.0), blit)
        self.ax = ax = self.figure.add_subplot()
        self.figure.subplots_adjust(left=0.12, bottom=0.15, right=0.97, top=0.9)
        self.lines = [
            ax.plot([], [], drawstyle="steps-post", color=_DIM_COLORS[q % 4], lw=1.6, label=f"β{q} (H{q})")[0]
            for q in range(n_dims)
        ]
        self.mark = ax.axvline(0.0, color="0.45", lw=1.0, ls="--", label="betti_scale (the logged β)")
        self.note = ax.text(0.99, 0.97, "", transform=ax.transAxes, ha="right", va="top", fontsize=_TICK, color="0.3")
        ax.set_yscale("symlog", linthresh=1.0)
        ax.yaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_major_locator(MaxNLocator(nbins=8))
        ax.grid(True, color="0.92", lw=0.8)
        _labels(ax, "scale t (normalised distance)", "Betti number β_q(t)  (symlog)", x_pad=-0.1, y_pad=-0.09)
        self.legend: Any = None
        self.dynamic(*self.lines, self.mark, self.note, ax.title)

    def update(
        self, curves: np.ndarray, xs: np.ndarray, title: str, x_max: float, mark: float | None, note: str
    ) -> Figure:
        for line, curve in zip(self.lines, curves, strict=True):
            line.set_data(xs, curve)
        visible = mark is not None and 0.0 < mark < x_max
        self.mark.set_visible(visible)
        if mark is not None:
            self.mark.set_xdata([mark, mark])
        if self.legend is None or visible != self.legend.marked:  # the dashed line is listed only when drawn
            if self.legend is not None:
                self.legend.remove()
            handles = [*self.lines, self.mark] if visible else self.lines
            self.legend = self.ax.legend(
                handles=handles, fontsize=_TICK, loc="upper right", bbox_to_anchor=(1.0, 0.92), frameon=False
            )
            self.legend.marked = visible
        self.note.set_text(note)
        top = 10.0 ** math.ceil(math.log10(max(float(np.max(curves)) if curves.size else 1.0, 1.0) * 1.5))
        self.ax.set_xlim(0.0, x_max)
        self.ax.set_ylim(0.0, top)
        self.ax.set_title(title, fontsize=_TITLE, y=1.0, pad=6, parse_math=False)
        self.signature = (x_max, top, visible)
        return self.figure


def plot_betti_curves(
    curves: np.ndarray,
    grid: np.ndarray,
    title: str = "",
    *,
    x_max: float | None = None,
    mark: float | None = None,
    note: str = "",
    reuse: bool = False,
) -> Figure:
    """Betti curves ``beta_q(t)`` of every dimension, overlaid in one panel (symlog y axis).

    Args:
        curves: ``(maxdim + 1, len(grid))`` Betti numbers.
        grid: the scales of the columns of ``curves``.
        title: the figure title (for example the layer and the epoch).
        x_max: right end of the x axis (default ``grid[-1]``).
        mark: a scale to mark with a dashed line (the logged ``betti_scale``), when inside the range.
        note: a short text in the top right corner.
        reuse: redraw this process's cached figure instead of building one.

    Example:
        >>> fig = plot_betti_curves(np.array([[3, 2, 1], [0, 1, 0]]), np.array([0.0, 0.5, 1.0]), "layer")
        >>> [line.get_label() for line in fig.axes[0].get_lines()][:2]
        ['β0 (H0)', 'β1 (H1)']
    """
    curves = np.atleast_2d(np.asarray(curves))
    grid = np.asarray(grid, dtype=np.float64)
    plot = _plot(_BettiCurves, (len(curves),), reuse, lambda blit: _BettiCurves(len(curves), blit))
    return plot.update(curves, grid, title, float(grid[-1]) if x_max is None else float(x_max), mark, note)


# persistence diagram ----------------------------------------------------------------------------------------
class _Diagram(_Plot):
    def __init__(self, n_dims: int, blit: bool) -> None:
        super().__init__(_new_figure(5.0, 5.0), blit)
        self.ax = ax = self.figure.add_subplot()
        self.figure.subplots_adjust(left=0.14, bottom=0.12, right=0.97, top=0.92)
        self.diagonal = ax.plot([], [], color="0.6", lw=0.8)[0]
        self.top_line = ax.axhline(1.0, color="0.8", lw=0.8, ls="--")
        self.points = []
        self.essential = []
        for q in range(n_dims):
            color = _DIM_COLORS[q % 4]
            self.points.append(ax.scatter([], [], s=10, color=color, alpha=0.7, label=f"H{q}", linewidths=0))
            self.essential.append(ax.scatter([], [], s=28, marker="^", color=color))
        ax.grid(True, color="0.93", lw=0.8)
        _labels(ax, "birth (normalised scale)", "death (triangles on the dashed line: never dies)", x_pad=-0.08)
        ax.legend(fontsize=_TICK, loc="lower right")
        self.dynamic(*self.points, *self.essential, ax.title)

    def update(self, diagrams: PersistenceDiagrams, title: str, top: float) -> Figure:
        for q, (points, essential) in enumerate(zip(self.points, self.essential, strict=True)):
            dgm = diagrams[q] if q < len(diagrams) else np.empty((0, 2))
            finite = np.isfinite(dgm[:, 1])
            points.set_offsets(dgm[finite])
            alive = dgm[~finite, 0]
            essential.set_offsets(np.column_stack([alive, np.full(len(alive), top)]))
        self.diagonal.set_data([0.0, top], [0.0, top])
        self.top_line.set_ydata([top, top])
        self.ax.set_xlim(-0.02 * top, top * 1.02)
        self.ax.set_ylim(-0.02 * top, top * 1.05)
        self.ax.set_title(title, fontsize=_TITLE, y=1.0, pad=6, parse_math=False)
        self.signature = top
        return self.figure


def plot_diagram(
    diagrams: PersistenceDiagrams, title: str = "", *, top: float | None = None, reuse: bool = False
) -> Figure:
    """A persistence diagram: finite bars as points, essential bars as triangles on a dashed top line.

    Args:
        diagrams: the diagrams (every dimension in one panel, coloured by dimension).
        title: the figure title.
        top: the largest scale shown (default: a little past the largest finite value); a larger finite value
            widens it.
        reuse: redraw this process's cached figure instead of building one.

    Example:
        >>> fig = plot_diagram(PersistenceDiagrams([[[0.0, 1.0], [0.0, np.inf]], [[0.4, 0.7]]]), "layer")
        >>> fig.axes[0].get_title(), fig.axes[0].get_xlabel()
        ('layer', 'birth (normalised scale)')
    """
    largest = max(diagrams.max_finite_value(), 1e-9) * 1.1
    if top is None:
        top = largest
    elif largest > top:  # widen by powers of two, so that the axes (kept drawn) change only now and then
        top = float(top) * 2.0 ** math.ceil(math.log2(largest / top))
    n_dims = max(len(diagrams), 1)
    return _plot(_Diagram, (n_dims,), reuse, lambda blit: _Diagram(n_dims, blit)).update(diagrams, title, top)


# Betti curves over epochs -----------------------------------------------------------------------------------
class _Evolution(_Plot):
    def __init__(self, n_dims: int, blit: bool) -> None:
        from matplotlib import colormaps
        from matplotlib.colors import SymLogNorm
        from matplotlib.ticker import FuncFormatter, MaxNLocator

        super().__init__(_new_figure(4.8 * n_dims, 4.0), blit)
        fig = self.figure
        axes = fig.subplots(1, n_dims, squeeze=False)[0]
        fig.subplots_adjust(left=0.7 / fig.get_figwidth(), bottom=0.14, right=0.99, top=0.88, wspace=0.32)
        cmap = colormaps["viridis"].with_extremes(bad="white")
        self.axes = list(axes)
        self.images = []
        for q, ax in enumerate(axes):
            image = ax.imshow(
                np.zeros((2, 2)),
                aspect="auto",
                origin="lower",
                cmap=cmap,
                norm=SymLogNorm(1.0, vmin=0, vmax=1),
                interpolation="nearest",
            )
            bar = fig.colorbar(image, ax=ax, shrink=0.9, pad=0.02)
            bar.set_label(f"β{q}", fontsize=_LABEL)
            bar.formatter = FuncFormatter(lambda v, _: f"{v:g}")
            bar.ax.tick_params(labelsize=_TICK)
            ax.yaxis.set_major_locator(MaxNLocator(nbins=7, integer=True))
            ax.yaxis.set_major_formatter(FuncFormatter(self._row_label))
            ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
            _labels(ax, "scale t (normalised distance)", "epoch", x_pad=-0.1, y_pad=-0.12)
            self.images.append(image)
            self.dynamic(image, ax.title)
        self.row_labels: list[str] | None = None

    def _row_label(self, value: float, _: Any) -> str:
        """A y tick: the epoch, or with one row per measurement that row's step (or epoch)."""
        if self.row_labels is None:
            return f"{value:g}"
        row = round(value)
        return self.row_labels[row] if abs(value - row) < 1e-9 and 0 <= row < len(self.row_labels) else ""

    def update(
        self, epochs: Sequence[int], curves: np.ndarray, x_max: float, title: str, steps: Sequence[int] | None
    ) -> Figure:
        if len(set(epochs)) == len(epochs):
            rows, first, step = _epoch_rows(epochs)
            self.row_labels, ylabel, over = None, "epoch", "epochs"
        else:  # several measurements in an epoch (val_check_interval): one row each, in order
            rows, first, step = np.arange(len(epochs)), 0, 1
            self.row_labels = [str(s) for s in (steps if steps is not None else epochs)]
            ylabel, over = ("step", "steps") if steps is not None else ("epoch (a row per measurement)", "epochs")
        n_rows = int(rows.max()) + 1
        extent = (0.0, x_max, first - step / 2, first + step * (n_rows - 0.5))
        # the epoch axis reaches a round number of rows (1, 2, 5, 10, 20, ...): the heat map grows up an axis that
        # changes only now and then, so its ticks stay drawn
        ylim = (first - step / 2, first + step * (_nice_ceil(n_rows) - 0.5))
        tops = []
        for q, (ax, image) in enumerate(zip(self.axes, self.images, strict=True)):
            data = np.full((n_rows, curves.shape[2]), np.nan)
            data[rows] = curves[:, q, :]
            image.set_data(np.ma.masked_invalid(data))
            image.set_extent(extent)
            ax.set_ylim(*ylim)
            tops.append(_nice_ceil(float(np.nanmax(data))))  # rounded, so the colour bar rarely changes
            image.set_clim(0.0, tops[-1])
            ax.set_ylabel(ylabel, fontsize=_LABEL)
            ax.set_title(f"{title}: β{q} over {over}".strip(": "), fontsize=_TITLE, y=1.0, pad=6, parse_math=False)
        self.signature = (x_max, *ylim, *tops, ylabel, None if self.row_labels is None else tuple(self.row_labels))
        return self.figure


def _nice_ceil(value: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten that is >= ``value`` (and >= 1)."""
    if not value > 1:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= value)


def _epoch_rows(epochs: Sequence[int]) -> tuple[np.ndarray, int, int]:
    """Row of each epoch on a regular epoch axis (steps of the epochs' greatest common spacing), first epoch, step."""
    e = np.asarray(epochs, dtype=np.int64)
    gaps = np.diff(np.unique(e))
    step = max(int(np.gcd.reduce(gaps)) if gaps.size else 1, 1)
    first = int(e.min())
    return (e - first) // step, first, step


def plot_betti_evolution(
    epochs: Sequence[int],
    curves: Sequence[np.ndarray],
    grid: np.ndarray,
    title: str = "",
    *,
    steps: Sequence[int] | None = None,
    reuse: bool = False,
) -> Figure:
    """Heat maps of ``beta_q(t)`` against training epoch, one panel per homology dimension (symlog colours).

    Rows sit on a regular epoch axis (one row per epoch step; epochs between measurements stay blank), so the
    epoch ticks are regular. When an epoch holds several measurements (``val_check_interval``), each measurement
    gets its own row, in the given order, labelled by its step (by its epoch without ``steps``).

    Args:
        epochs: the epoch of each curve, in measurement order.
        curves: per measurement, ``(maxdim + 1, len(grid))`` Betti numbers on ``grid``.
        grid: the scales, from 0.
        title: the layer (each panel's title adds the dimension).
        steps: the step of each curve (labels the rows when epochs repeat).
        reuse: redraw this process's cached figure instead of building one.

    Example:
        >>> fig = plot_betti_evolution([0, 2, 4], [np.ones((2, 3))] * 3, np.array([0.0, 0.1, 0.2]), "layer")
        >>> fig.axes[0].get_ylabel(), fig.axes[0].get_title()
        ('epoch', 'layer: β0 over epochs')
        >>> fig = plot_betti_evolution([0, 0, 1], [np.ones((2, 3))] * 3, np.array([0.0, 0.1, 0.2]), steps=[5, 10, 15])
        >>> fig.axes[0].get_ylabel(), fig.axes[0].images[0].get_array().shape
        ('step', (3, 3))
    """
    stack = np.stack([np.atleast_2d(c) for c in curves]).astype(np.float64)  # (epochs, dims, grid)
    n_dims = stack.shape[1]
    x_max = float(np.asarray(grid)[-1])
    plot = _plot(_Evolution, (n_dims,), reuse, lambda blit: _Evolution(n_dims, blit))
    return plot.update(list(epochs), stack, x_max, title, None if steps is None else list(steps))


# panels: the depth profile, quantities over epochs ---------------------------------------------------------
class _Panels(_Plot):
    """One small panel per quantity, four to a row, every panel with its own axis labels.

    With ``ticks`` (layer names) each panel is a depth profile, each layer's point in its own colour; without,
    each panel holds ``n_series`` lines over epochs, coloured as the layers are.
    """

    def __init__(self, names: tuple[str, ...], ticks: tuple[str, ...] | None, n_series: int, blit: bool) -> None:
        from matplotlib.ticker import MaxNLocator

        n_panels = len(names)
        cols = min(4, n_panels)
        rows = -(-n_panels // cols)
        below = 1.0 if ticks is not None else 0.65  # inches under each row for its x tick labels and axis label
        legend = 1.7 if ticks is None and n_series > 1 else 0.0  # inches right of the panels for a legend
        super().__init__(_new_figure(3.6 * cols + legend, (2.3 + below) * rows + 0.45), blit)
        fig = self.figure
        grid = fig.subplots(rows, cols, squeeze=False)
        height = fig.get_figheight()
        fig.subplots_adjust(
            left=0.75 / fig.get_figwidth(),
            right=1 - (0.1 + legend) / fig.get_figwidth(),
            top=1 - 0.45 / height,
            bottom=below / height,
            wspace=0.42,
            hspace=(below + 0.3) / 2.3,
        )
        every = [ax for row in grid for ax in row]
        self.axes = every[:n_panels]
        for ax in every[n_panels:]:
            ax.set_visible(False)
        self.lines: list[list[Any]] = []
        self.dots: list[Any] = []
        colors = layer_colors(n_series)
        for ax, name in zip(self.axes, names, strict=True):
            if ticks is not None:
                self.lines.append([ax.plot([], [], color="0.7", lw=1.0, zorder=1)[0]])
                self.dots.append(ax.scatter(range(len(ticks)), np.zeros(len(ticks)), s=26, color=colors, zorder=2))
                ax.set_xticks(
                    range(len(ticks)), ticks, rotation=45, ha="right", rotation_mode="anchor", parse_math=False
                )
                ax.set_xlim(-0.5, len(ticks) - 0.5)
                _labels(ax, "layer", name, x_pad=-0.68 / 2.3, y_pad=-0.2)
                self.dynamic(self.lines[-1][0], self.dots[-1])
            else:
                self.lines.append([ax.plot([], [], "o-", ms=3, lw=1.3, color=c)[0] for c in colors])
                ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
                _labels(ax, "epoch", name, x_pad=-0.14, y_pad=-0.2)
                self.dynamic(ax.xaxis, ax.yaxis, *self.lines[-1])
            ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
            ax.grid(True, color="0.93", lw=0.8)
        self.title = fig.suptitle(
            " ", fontsize=_TITLE, x=0.75 / fig.get_figwidth(), ha="left", y=1 - 0.12 / height, parse_math=False
        )
        self.legend: Any = None
        self.legend_labels: list[str] = []
        self.dynamic(self.title)
        self.n_layers = len(ticks) if ticks is not None else 0

    def update_profile(self, values: Sequence[np.ndarray], title: str) -> Figure:
        x = np.arange(self.n_layers)
        limits = []
        for ax, ys, (line,), dots in zip(self.axes, values, self.lines, self.dots, strict=True):
            line.set_data(x, ys)
            dots.set_offsets(np.column_stack([x, ys]))
            limits.append(_sticky_ylim(ax, ys))
        self.title.set_text(title)
        self.signature = tuple(limits)
        return self.figure

    def update_series(
        self, names: Sequence[str], series: Sequence[Mapping[str, tuple[Sequence[float], Sequence[float]]]], title: str
    ) -> Figure:
        labels: list[str] = []
        for ax, name, by_series, lines in zip(self.axes, names, series, self.lines, strict=True):
            ax.set_ylabel(name, fontsize=_LABEL, parse_math=False)
            items = [
                (k, np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)) for k, (x, y) in by_series.items()
            ]
            for i, line in enumerate(lines):
                line.set_visible(i < len(items))
                if i < len(items):
                    line.set_data(items[i][1], items[i][2])
                    line.set_label(items[i][0])
            labels = labels or [k for k, _, _ in items]
            xs = np.concatenate([x for _, x, _ in items] or [np.zeros(1)])
            ax.set_xlim(float(np.nanmin(xs)) - 0.5, float(np.nanmax(xs)) + 0.5)
            _sticky_ylim(ax, np.concatenate([y for _, _, y in items] or [np.zeros(1)]), keep=False)
        if len(labels) > 1 and labels != self.legend_labels:
            if self.legend is not None:
                self.legend.remove()
            width = self.figure.get_figwidth()
            self.legend = self.figure.legend(
                handles=self.lines[0][: len(labels)],
                loc="center left",
                bbox_to_anchor=(1 - 1.65 / width, 0.5),
                fontsize=_TICK,
                frameon=False,
                title="layer",
                title_fontsize=_TICK,
            )
            _plain(self.legend.get_texts())
            self.legend_labels = labels
        self.title.set_text(title)
        self.signature = tuple(labels)
        return self.figure


def _sticky_ylim(ax: Axes, ys: np.ndarray, keep: bool = True) -> tuple[float, float]:
    """Round y limits around the finite ``ys``; with ``keep``, the previous update's limits while the values still
    fill at least half of them: epochs stay comparable at a glance, and the axis (its text) need not be drawn
    again."""
    from matplotlib.ticker import MaxNLocator

    finite = np.asarray(ys, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi - lo < 1e-12 * max(abs(hi), 1.0):
        lo, hi = lo - max(abs(lo) * 0.1, 0.5), hi + max(abs(hi) * 0.1, 0.5)
    low, high = ax.get_ylim()
    if not keep or ax.get_autoscaley_on() or lo < low or hi > high or (hi - lo) < 0.5 * (high - low):
        pad = 0.03 * (hi - lo)
        ticks = MaxNLocator(nbins=5).tick_values(lo - pad, hi + pad)
        low, high = float(ticks[0]), float(ticks[-1])
        ax.set_ylim(low, high)
    return low, high


def plot_depth_profile(
    report: TopologyReport, descriptors: Sequence[str] | None = None, title: str = "", *, reuse: bool = False
) -> Figure:
    """Each descriptor against layer depth (one panel per descriptor), layers in monitored order, each layer in
    its own colour (:func:`layer_colors`).

    Example:
        >>> from lightning_topo.report import TopologyReport
        >>> r = TopologyReport(["a", "b"], {"a": {"id_twonn": 3.0}, "b": {"id_twonn": 2.0}}, epoch=1)
        >>> ax = plot_depth_profile(r, title="epoch 1").axes[0]
        >>> ax.get_xlabel(), ax.get_ylabel()
        ('layer', 'id_twonn')
    """
    keys = tuple(descriptors) if descriptors is not None else tuple(report.metrics[report.layers[0]])
    layers = tuple(report.layers)
    plot = _plot(_Panels, (keys, layers), reuse, lambda blit: _Panels(keys, layers, len(layers), blit))
    return plot.update_profile([report.profile(k) for k in keys], title)


def plot_history(
    epochs: Sequence[int],
    values: Mapping[str, Sequence[float]],
    title: str = "",
    *,
    ylabel: str | None = None,
    reuse: bool = False,
) -> Figure:
    """One descriptor over epochs, a line per layer (coloured as in the depth profile).

    Example:
        >>> ax = plot_history([0, 1], {"a": [1.0, 2.0], "b": [2.0, 1.0]}, "id_twonn").axes[0]
        >>> ax.get_xlabel(), ax.get_ylabel(), len(ax.get_lines())
        ('epoch', 'id_twonn', 2)
    """
    series = {layer: (list(epochs), list(ys)) for layer, ys in values.items()}
    names = (ylabel or title,)
    plot = _plot(_Panels, (1, None, len(series)), reuse, lambda blit: _Panels(names, None, len(series), blit))
    return plot.update_series(names, [series], title)


def plot_metrics(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]], title: str = "", *, reuse: bool = False
) -> Figure:
    """Several quantities over epochs, one panel each (``{name: (epochs, values)}``): a run's validation loss and
    accuracy beside ``topo/score``.

    Example:
        >>> fig = plot_metrics({"val_loss": ([0, 1], [1.0, 0.5]), "topo/score": ([0, 1], [4.0, 3.0])})
        >>> [ax.get_ylabel() for ax in fig.axes if ax.get_visible()]
        ['val_loss', 'topo/score']
    """
    names = tuple(series)
    plot = _plot(_Panels, (len(names), None, 1), reuse, lambda blit: _Panels(names, None, 1, blit))
    return plot.update_series(names, [{name: series[name]} for name in names], title)


# pixels -----------------------------------------------------------------------------------------------------
def figure_to_rgb(fig: Any) -> np.ndarray:
    """An ``H x W x 3`` uint8 image of a figure (what TensorBoard's ``add_figure`` renders)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    plot = getattr(fig, "_lightning_topo_plot", None)
    if isinstance(plot, _Plot) and plot.figure is fig:
        return plot.rgb()
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def figure_to_png(fig: Any) -> bytes:
    """PNG bytes of a figure (of exactly what :func:`figure_to_rgb` renders)."""
    import io

    from matplotlib.image import imsave

    buf = io.BytesIO()
    imsave(buf, figure_to_rgb(fig), format="png")
    return buf.getvalue()


def layer_figures(result: LayerResult, request: FigureRequest, grid: np.ndarray) -> dict[str, np.ndarray]:
    """RGB images (``H x W x 3`` uint8) of one layer, those of :func:`betti_figures`: ``betti_curves``,
    ``diagram``, with a history of earlier measurements ``betti_evolution``, and with per-class diagrams
    ``class_betti_curves``. The engine's workers call it through a ``FigureRequest``; every figure is the process's
    reused one.

    The scale range is ``request.x_max`` (the layer's, fixed at its first measurement) or, at the first
    measurement, :func:`fit_range` of this result; ``request.history`` holds earlier :func:`fine_betti_curves` on
    that range.
    """
    diagrams = result.diagrams
    if diagrams is None:
        return {}
    x_max = request.x_max if request.x_max is not None else fit_range(diagrams, grid)
    figures = betti_figures(
        diagrams,
        x_max,
        request.title,
        request.epoch,
        history=request.history,
        mark=request.mark,
        class_diagrams=result.class_diagrams,
        steps=request.steps,
    )
    return {name: figure_to_rgb(fig) for name, fig in figures.items()}


def betti_figures(
    diagrams: PersistenceDiagrams,
    x_max: float,
    title: str,
    epoch: int,
    *,
    history: Sequence[tuple[int, np.ndarray]] = (),
    mark: float | None = None,
    class_diagrams: Mapping[int, PersistenceDiagrams] | None = None,
    steps: Sequence[int] | None = None,
) -> dict[str, Figure]:
    """One layer's figures on its scale range ``[0, x_max]``, each this process's reused figure of its kind.

    ``betti_curves`` (a note counts the bars ending beyond ``x_max``), ``diagram``, with a ``history``
    ``betti_evolution`` and with ``class_diagrams`` ``class_betti_curves``. The callback (:func:`layer_figures`) and
    ``lightning-topo report`` both draw a layer this way.

    Args:
        diagrams: the layer's diagrams at this measurement.
        x_max: the layer's range (fixed at its first measurement, :func:`fit_range`).
        title: the layer's name.
        epoch: this measurement's epoch.
        history: ``(epoch, fine_betti_curves(..., x_max))`` of earlier measurements, oldest first.
        mark: a scale to mark on the Betti curves (the logged ``betti_scale``).
        class_diagrams: ``{class: diagrams}`` of the layer's examples of each class.
        steps: the step of every measurement, ``history``'s then this one's (labels the heat map's rows when an
            epoch holds several measurements).

    Example:
        >>> dgms = PersistenceDiagrams([[[0.0, 0.1], [0.0, 0.9], [0.0, np.inf]]])
        >>> figures = betti_figures(dgms, 0.5, "fc", 3)
        >>> sorted(figures), figures["betti_curves"].axes[0].texts[0].get_text()
        (['betti_curves', 'diagram'], '1 bars end beyond 0.5 →')
    """
    curves = fine_betti_curves(diagrams, x_max)
    xs = np.linspace(0.0, x_max, N_POINTS)
    beyond = sum(int((dgm[np.isfinite(dgm[:, 1]), 1] > x_max).sum()) for dgm in diagrams)
    note = f"{beyond} bars end beyond {x_max:.3g} →" if beyond else ""
    when = f"epoch {epoch}" if not steps else f"epoch {epoch}, step {steps[-1]}"
    heading = f"{title}: Betti curves, {when}"
    figures = {"betti_curves": plot_betti_curves(curves, xs, heading, mark=mark, note=note, reuse=True)}
    heading = f"{title}: persistence diagram, {when}"
    figures["diagram"] = plot_diagram(diagrams, heading, top=x_max, reuse=True)
    if history:
        epochs = [e for e, _ in history] + [epoch]
        stack = [c for _, c in history] + [curves]
        figures["betti_evolution"] = plot_betti_evolution(epochs, stack, xs, title, steps=steps, reuse=True)
    if class_diagrams:
        per_class = {c: fine_betti_curves(d, x_max) for c, d in sorted(class_diagrams.items())}
        heading = f"{title}: Betti curves per class, {when}"
        figures["class_betti_curves"] = plot_class_betti_curves(per_class, xs, heading, reuse=True)
    return figures


_MAX_LEGEND = 16
"""Entries of a per-class legend (more classes: the last entry counts the rest)."""


class _ClassCurves(_Plot):
    def __init__(self, n_dims: int, classes: tuple[int, ...], blit: bool) -> None:
        super().__init__(_new_figure(4.6 * n_dims + 1.2, 4.0), blit)
        axes = self.figure.subplots(1, n_dims, squeeze=False)[0]
        self.figure.subplots_adjust(left=0.07, bottom=0.15, right=0.86, top=0.88, wspace=0.25)
        colors = layer_colors(len(classes))
        self.axes = list(axes)
        self.lines = {
            (q, c): ax.plot([], [], drawstyle="steps-post", color=colors[i], lw=1.2, label=f"class {c}")[0]
            for q, ax in enumerate(axes)
            for i, c in enumerate(classes)
        }
        for q, ax in enumerate(axes):
            ax.grid(True, color="0.92", lw=0.8)
            _labels(ax, "scale t (normalised distance)", f"β{q}(t)", f"H{q}", x_pad=-0.1, y_pad=-0.12)
        # as many entries as fit beside the panel; the rest counted in a last entry
        shown = [self.lines[(n_dims - 1, c)] for c in classes[:_MAX_LEGEND]]
        if len(classes) > _MAX_LEGEND:
            shown = shown[: _MAX_LEGEND - 1]
            more = axes[-1].plot([], [], color="none", label=f"+ {len(classes) - len(shown)} more classes")[0]
            shown.append(more)
        axes[-1].legend(handles=shown, fontsize=_TICK, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        self.suptitle = self.figure.suptitle("", fontsize=_TITLE, parse_math=False)
        self.dynamic(*self.lines.values(), self.suptitle)

    def update(self, curves: Mapping[int, np.ndarray], xs: np.ndarray, title: str) -> Figure:
        tops = []
        for q, ax in enumerate(self.axes):
            top = _nice_ceil(max([float(np.max(c[q])) for c in curves.values()] + [1.0]) * 1.05)  # rounded: the
            # kept background (axes, ticks) serves every measurement with the same rounded top
            for c, curve in curves.items():
                self.lines[(q, c)].set_data(xs, curve[q])
            ax.set_xlim(0.0, float(xs[-1]))
            ax.set_ylim(0.0, top)
            tops.append(top)
        self.suptitle.set_text(title)
        self.signature = (float(xs[-1]), *tops)
        return self.figure


def plot_class_betti_curves(
    curves: Mapping[int, np.ndarray], grid: np.ndarray, title: str = "", *, reuse: bool = False
) -> Figure:
    """Each class's Betti curves on its own rows of the layer, one panel per homology dimension, a line per class
    (``per_class=True``).

    Args:
        curves: ``{class: (maxdim + 1, len(grid)) Betti numbers}``.
        grid: the scales of the columns.
        title: the figure title.
        reuse: redraw this process's cached figure instead of building one.

    Example:
        >>> fig = plot_class_betti_curves({0: np.array([[2, 1], [0, 1]]), 1: np.array([[3, 1], [0, 0]])}, [0, 1])
        >>> [line.get_label() for line in fig.axes[0].get_lines()]
        ['class 0', 'class 1']
    """
    grid = np.asarray(grid, dtype=np.float64)
    classes = tuple(sorted(curves))
    n_dims = len(next(iter(curves.values())))
    plot = _plot(_ClassCurves, (n_dims, classes), reuse, lambda blit: _ClassCurves(n_dims, classes, blit))
    return plot.update({c: np.atleast_2d(curves[c]) for c in classes}, grid, title)


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
    fig = _new_figure(6.4, 4.2)
    ax = fig.add_subplot()
    colors = layer_colors(len(results))
    for i, result in enumerate(results):
        layers = result.report.layers
        ax.plot(
            np.arange(len(layers)),
            result.report.profile(descriptor),
            "o-",
            ms=3,
            color=colors[i],
            label=f"eps = {result.epsilon:g} (accuracy {result.accuracy:.2f})",
        )
    ax.set_xticks(
        np.arange(len(first.layers)), first.layers, rotation=45, ha="right", rotation_mode="anchor", parse_math=False
    )
    _labels(ax, "layer (depth order)", descriptor, title or f"{descriptor} under FGSM", x_pad=-0.25, y_pad=-0.11)
    ax.grid(True, color="0.93", lw=0.8)
    ax.legend(fontsize=_TICK, loc="best")
    fig.subplots_adjust(left=0.12, bottom=0.25, right=0.97, top=0.92)
    return fig
