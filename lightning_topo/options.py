"""Every user choice, validated once, with the same messages in every entry point.

:func:`build_options` turns the keyword arguments that ``TopologyMonitor``, ``analyze``, ``rank_models`` and the
metrics share into an :class:`Options`: the capture choices, the score, and the :class:`MeasureOptions` that
travel to the worker processes (picklable: no user callables). Each score adds the descriptors it needs here, so
a score means the same thing wherever it is asked for. The ``Literal`` types below are the one place where the
option sets are spelled out.
"""

from __future__ import annotations

import difflib
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np

from lightning_topo._warnings import TopologyWarning
from lightning_topo.functional._checks import check_choice, check_fraction, check_maxdim, check_positive_int
from lightning_topo.functional.intrinsic_dimension import TWONN_MIN_POINTS
from lightning_topo.functional.registry import DEFAULT_DESCRIPTORS, DESCRIPTORS, descriptor_keys
from lightning_topo.report import TopologyReport
from lightning_topo.scores import SCORES, Score

__all__ = [
    "Backend",
    "Call",
    "Compute",
    "MeasureOptions",
    "Metric",
    "Mode",
    "MonitorOptions",
    "Normalize",
    "OnError",
    "Options",
    "Reduce",
    "Sample",
    "auto_ph_samples",
    "build_options",
    "check_workers",
]

Reduce = Literal["auto", "flatten", "mean", "project", "token_mean", "first_token", "last_token"]
Metric = Literal["euclidean", "cosine"]
Normalize = Literal["quantile", "median", "max"] | None
Sample = Literal["first", "stratified"]
OnError = Literal["warn", "raise"]
Backend = Literal["giotto", "gudhi"]
Compute = Literal["sync", "async"]
Call = Literal["first", "last"]
Mode = Literal["min", "max"]
ScoreSpec = str | Callable[[TopologyReport], float] | None

_NORMALIZE = ("quantile", "median", "max", None)


AUTO_EXACT_UP_TO = 1024
"""``ph_samples="auto"`` computes every dimension exactly on samples of up to this many examples."""

AUTO_MIN_PH_SAMPLES = 512
"""``ph_samples="auto"`` never computes H1 on fewer farthest points than this."""


def auto_ph_samples(n: int) -> int:
    """The farthest-point subsample size of ``ph_samples="auto"`` for ``n`` examples: all of them up to
    :data:`AUTO_EXACT_UP_TO` (1,024), then ``max(512, 2^20 / n)``.

    Where it comes from (``benchmarks/RESULTS.md``, "Ten times the sample"): on 2 cores the budget is about 0.5 s of
    one core per layer (8 layers in 2 s). The exact part of a layer (distances, quantile, spanning tree, intrinsic
    dimension, all on every example) grows like ``n^2``: about 0.25 s at 4,096 examples. H1 grows about 10x per
    doubling of its points: 0.05-0.1 s at 512 farthest points, 0.3-0.6 s at 1,024. Exact H1 fits up to 1,024
    examples; beyond, the H1 share shrinks as the ``n^2`` part grows, so the subsample shrinks with ``1 / n`` down to
    512 points (from 2,048 examples on).

    Example:
        >>> [auto_ph_samples(n) for n in (512, 1024, 1536, 2048, 8192)]
        [512, 1024, 682, 512, 512]
    """
    if n <= AUTO_EXACT_UP_TO:
        return n
    return max(AUTO_MIN_PH_SAMPLES, (1 << 20) // n)


def check_workers(workers: Any, minimum: int = 0) -> int | Literal["auto"]:
    """``workers`` is ``"auto"`` or an integer >= ``minimum`` (0: the layers are measured in this process)."""
    if isinstance(workers, str) and workers == "auto":
        return "auto"
    if isinstance(workers, bool) or not isinstance(workers, int | np.integer) or int(workers) < minimum:
        raise ValueError(f"Expected `workers` to be an integer >= {minimum} or 'auto' but got {workers!r}.")
    return int(workers)


def check_n_threads(n_threads: Any) -> int:
    """``n_threads`` is -1 (every core) or an integer >= 1."""
    if (
        isinstance(n_threads, bool)
        or not isinstance(n_threads, int | np.integer)
        or not (n_threads == -1 or n_threads >= 1)
    ):
        raise ValueError(f"Expected `n_threads` to be -1 (every core) or an integer >= 1 but got {n_threads!r}.")
    return int(n_threads)


def _real(name: str, value: Any) -> float:
    """A real number option (int or float, not bool), as a float; its range is checked by :class:`MeasureOptions`."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"Expected `{name}` to be a number but got {value!r}.")
    return float(value)


def check_ph_samples(value: Any) -> None:
    """``ph_samples`` is ``None``, ``"auto"`` or an integer >= 3."""
    if value is None or value == "auto":
        return
    if isinstance(value, str):
        raise ValueError(f"Expected `ph_samples` to be an integer >= 3, 'auto' or None but got {value!r}.")
    check_positive_int("ph_samples", value, minimum=3)


@dataclass(frozen=True)
class MeasureOptions:
    """How one layer's sample becomes numbers (see ``TopologyMonitor`` for each field's meaning).

    Picklable, so it travels to the worker processes; validated on construction.
    """

    maxdim: int = 1
    descriptors: tuple[str, ...] = DEFAULT_DESCRIPTORS
    metric: Metric = "euclidean"
    normalize: Normalize = "quantile"
    ph_samples: int | Literal["auto"] | None = None
    ph_sparse: float | None = None
    betti_scale: float = 0.2
    long_fraction: float = 0.1
    n_threads: int = -1
    seed: int = 0
    max_scale: float | None = None
    backend: Backend = "giotto"
    class_descriptors: tuple[str, ...] = ()
    class_maxdim: int = 0
    per_class: bool = False
    per_class_max: int = 250
    cubical_threshold: float = 0.5
    n_bins: int = 100
    grid_max: float = 1.0
    h0_tree_from: int = 4096
    # how far past its H1 horizon the layer's deaths went at its last measurement (set per layer by the engine, for
    # speed only: see functional.persistence.rips_below_horizon)
    horizon_reach: float | None = field(default=None, compare=False)
    grid: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_maxdim(self.maxdim)
        for name in (*self.descriptors, *self.class_descriptors):
            check_choice("descriptors", name, tuple(DESCRIPTORS))
        check_choice("metric", self.metric, get_args(Metric))
        check_choice("normalize", self.normalize, _NORMALIZE)
        check_ph_samples(self.ph_samples)
        if self.ph_sparse is not None and not (
            isinstance(self.ph_sparse, int | float)
            and not isinstance(self.ph_sparse, bool)
            and 1 < self.ph_sparse < math.inf
        ):
            raise ValueError(
                f"Expected `ph_sparse` to be an approximation factor > 1 (e.g. 2.0) or None but got {self.ph_sparse!r}."
            )
        if self.ph_sparse is not None and self.backend != "giotto":
            raise ValueError(
                "Expected backend='giotto' with `ph_sparse` (the sparse Rips filtration runs in giotto-ph)."
            )
        check_n_threads(self.n_threads)
        check_positive_int("seed", self.seed, minimum=0)
        if not self.betti_scale >= 0:
            raise ValueError(f"Expected `betti_scale` to be >= 0 but got {self.betti_scale!r}.")
        check_fraction("long_fraction", self.long_fraction)
        if self.max_scale is not None and not self.max_scale > 0:
            raise ValueError(f"Expected `max_scale` to be positive but got {self.max_scale!r}.")
        check_choice("backend", self.backend, get_args(Backend))
        if not math.isfinite(self.cubical_threshold):
            raise ValueError(f"Expected `cubical_threshold` to be a finite number but got {self.cubical_threshold!r}.")
        object.__setattr__(self, "grid", np.linspace(0.0, self.grid_max, self.n_bins))

    @property
    def thresh(self) -> float:
        """The filtration threshold (``inf`` without ``max_scale``)."""
        return math.inf if self.max_scale is None else float(self.max_scale)

    def ph_points(self, n: int) -> int:
        """How many of a layer's ``n`` examples enter the persistence of dimensions >= 1 (:func:`auto_ph_samples` for
        ``ph_samples="auto"``)."""
        if self.ph_samples is None:
            return n
        if self.ph_samples == "auto":
            return auto_ph_samples(n)
        return min(n, int(self.ph_samples))

    @property
    def params(self) -> dict[str, Any]:
        """What the descriptor functions of :mod:`lightning_topo.functional.registry` read."""
        return {"betti_scale": self.betti_scale, "long_fraction": self.long_fraction, "seed": self.seed}

    def metric_keys(self) -> list[str]:
        """Descriptor keys a layer logs, in a fixed order."""
        return descriptor_keys(self.descriptors, self.maxdim)

    def class_keys(self) -> list[str]:
        """Descriptor keys computed per class."""
        return descriptor_keys(self.class_descriptors, self.class_maxdim)


@dataclass(frozen=True)
class Options:
    """A whole measurement: what to capture and how, the measurement itself, and the score."""

    measure: MeasureOptions
    n_samples: int = 512
    reduce: Reduce = "auto"
    max_features: int = 256
    sample: Sample = "first"
    num_classes: int | None = None
    label_fn: Callable[[Any], Any] | None = None
    input_fn: Callable[[Any], Any] | None = None
    mask_fn: Callable[[Any], Any] | None = None
    output_transform: Callable[[Any], Any] | None = None
    sequence_dim: int | None = None
    call: Call = "first"
    cubical_samples: int = 0
    score: Score | None = None
    on_error: OnError = "warn"


@dataclass(frozen=True)
class MonitorOptions:
    """What only the callback has: when to measure, where the results go, how the work is scheduled."""

    every_n_epochs: int = 1
    every_n_validations: int = 1
    dataloader_idx: int = 0
    prefix: str = "topo"
    compute: Compute = "sync"
    workers: int | Literal["auto"] = "auto"
    log_figures: bool | int = True
    save_diagrams: bool = False

    def __post_init__(self) -> None:
        check_positive_int("every_n_epochs", self.every_n_epochs)
        check_positive_int("every_n_validations", self.every_n_validations)
        check_positive_int("dataloader_idx", self.dataloader_idx, minimum=0)
        check_choice("compute", self.compute, get_args(Compute))
        check_workers(self.workers, minimum=1 if self.compute == "async" else 0)
        if not isinstance(self.log_figures, bool):
            check_positive_int("log_figures", self.log_figures)
        if not isinstance(self.prefix, str) or not self.prefix or "/" in self.prefix:
            raise ValueError(f"Expected `prefix` to be a non-empty name without '/' but got {self.prefix!r}.")

    @property
    def figure_every(self) -> int:
        """Draw figures at every k-th measurement (0: never)."""
        return int(self.log_figures)


def resolve_score(score: ScoreSpec, score_mode: Mode = "min") -> Score | None:
    """A named score from :data:`~lightning_topo.scores.SCORES`, a callable with its ``score_mode``, or ``None``."""
    mode = check_choice("score_mode", score_mode, get_args(Mode))
    if score is None:
        return None
    if isinstance(score, str):
        if score not in SCORES:
            close = difflib.get_close_matches(score, list(SCORES), n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ValueError(
                f"Expected `score` to be one of {sorted(SCORES)}, a callable or None but got {score!r}.{hint}"
            )
        return SCORES[score]
    if callable(score):
        return Score(getattr(score, "__name__", "custom"), score, mode)
    raise ValueError(f"Expected `score` to be one of {sorted(SCORES)}, a callable or None but got {score!r}.")


def build_options(
    *,
    n_samples: int = 512,
    maxdim: int = 1,
    score: ScoreSpec = None,
    score_mode: Mode = "min",
    reduce: Reduce = "auto",
    max_features: int = 256,
    sample: Sample = "first",
    num_classes: int | None = None,
    label_fn: Callable[[Any], Any] | None = None,
    input_fn: Callable[[Any], Any] | None = None,
    mask_fn: Callable[[Any], Any] | None = None,
    output_transform: Callable[[Any], Any] | None = None,
    sequence_dim: int | None = None,
    call: Call = "first",
    per_class: bool = False,
    per_class_max: int = 250,
    cubical_samples: int = 0,
    cubical_threshold: float = 0.5,
    descriptors: Sequence[str] = DEFAULT_DESCRIPTORS,
    metric: Metric = "euclidean",
    normalize: Normalize = "quantile",
    ph_samples: int | Literal["auto"] | None = None,
    ph_sparse: float | None = None,
    betti_scale: float = 0.2,
    long_fraction: float = 0.1,
    n_threads: int = -1,
    on_error: OnError = "warn",
    seed: int = 0,
    max_scale: float | None = None,
    backend: Backend = "giotto",
) -> Options:
    """Validate every measurement option once; the score adds the descriptors it needs.

    Raises:
        ValueError: naming the option, what was expected and what came.
    """
    n_samples = check_positive_int("n_samples", n_samples, minimum=3)
    resolved = resolve_score(score, score_mode)
    if isinstance(descriptors, str):
        raise ValueError(f"Expected `descriptors` to be a list of names but got the string {descriptors!r}.")
    try:
        descriptors = tuple(descriptors)  # an iterator is read once
    except TypeError as err:
        raise ValueError(f"Expected `descriptors` to be a list of names but got {descriptors!r}.") from err
    needed = [] if resolved is None else [n for n in resolved.needs if n not in descriptors]
    score_class_needs = () if resolved is None else resolved.class_needs
    if not isinstance(per_class, bool):
        raise ValueError(f"Expected `per_class` to be True or False but got {per_class!r}.")
    check_choice("reduce", reduce, get_args(Reduce))
    check_choice("sample", sample, get_args(Sample))
    if sample == "stratified" and num_classes is None:
        raise ValueError("Expected `num_classes` with sample='stratified' (the number of equal shares).")
    if num_classes is not None:
        check_positive_int("num_classes", num_classes)
    for name, fn in (
        ("label_fn", label_fn),
        ("input_fn", input_fn),
        ("mask_fn", mask_fn),
        ("output_transform", output_transform),
    ):
        if fn is not None and not callable(fn):
            raise ValueError(f"Expected `{name}` to be a callable or None but got {fn!r}.")
    if sequence_dim is not None and (isinstance(sequence_dim, bool) or sequence_dim not in (0, 1)):
        raise ValueError(
            f"Expected `sequence_dim` to be 1 (batch-first outputs, (B, T, D)), 0 (sequence-first, (T, B, D)) or "
            f"None but got {sequence_dim!r}."
        )
    check_choice("call", call, get_args(Call))
    cubical_samples = check_positive_int("cubical_samples", cubical_samples, minimum=0)
    if n_samples < TWONN_MIN_POINTS and "id_twonn" in (*descriptors, *needed):
        scored = resolved is not None and "id_twonn" in resolved.needs
        warnings.warn(
            f"n_samples={n_samples} is below the {TWONN_MIN_POINTS} points TwoNN needs: `id_twonn`"
            f"{' (and the score)' if scored else ''} will be NaN at every measurement (raise n_samples, or leave "
            "id_twonn out of `descriptors`).",
            TopologyWarning,
            stacklevel=3,
        )
    if resolved is not None and resolved.cubical and cubical_samples == 0:
        cubical_samples = 8  # the score reads the cubical complexity: measure 8 images per layer
    measure = MeasureOptions(
        maxdim=check_maxdim(maxdim),
        descriptors=tuple(dict.fromkeys([*descriptors, *needed])),
        metric=metric,
        normalize=normalize,
        ph_samples=ph_samples,
        ph_sparse=ph_sparse,
        betti_scale=_real("betti_scale", betti_scale),
        long_fraction=_real("long_fraction", long_fraction),
        n_threads=check_n_threads(n_threads),
        seed=check_positive_int("seed", seed, minimum=0),
        max_scale=None if max_scale is None else _real("max_scale", max_scale),
        backend=backend,
        # per class: every descriptor (per_class=True), or what the score reads per class, H0 only
        class_descriptors=tuple(dict.fromkeys([*descriptors, *needed])) if per_class else score_class_needs,
        class_maxdim=check_maxdim(maxdim) if per_class else 0,
        per_class=bool(per_class),
        per_class_max=check_positive_int("per_class_max", per_class_max, minimum=3),
        cubical_threshold=_real("cubical_threshold", cubical_threshold),
    )
    return Options(
        measure=measure,
        n_samples=n_samples,
        reduce=reduce,
        max_features=check_positive_int("max_features", max_features),
        sample=sample,
        num_classes=num_classes,
        label_fn=label_fn,
        input_fn=input_fn,
        mask_fn=mask_fn,
        output_transform=output_transform,
        sequence_dim=sequence_dim,
        call=call,
        cubical_samples=cubical_samples,
        score=resolved,
        on_error=check_choice("on_error", on_error, get_args(OnError)),
    )


OPTION_NAMES = tuple(build_options.__code__.co_varnames[: build_options.__code__.co_kwonlyargcount])
"""The keyword arguments every entry point accepts for a measurement."""


def check_option_names(names: Sequence[str], where: str) -> None:
    """Refuse unknown option names, listing the close matches."""
    for name in names:
        if name not in OPTION_NAMES:
            close = difflib.get_close_matches(name, OPTION_NAMES, n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise TypeError(f"{where} got an unknown option {name!r}.{hint} Options: {', '.join(OPTION_NAMES)}.")
