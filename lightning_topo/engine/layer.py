"""One layer: a :class:`LayerSample` in, a :class:`LayerResult` out. Pure torch and ``functional``; picklable.

The work is split in two so that a layer on an accelerator keeps everything but the persistence call on its
device: :func:`prepare_layer` (distances, normalisation, intrinsic dimension, farthest-point subsample, the H0
spanning tree, the per-class sub-matrices; on the sample's device) and :func:`finish_layer` (giotto-ph on the
CPU, descriptors, Betti curves). :func:`measure_layer` does both.
"""

from __future__ import annotations

import math
import re
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from lightning_topo import functional as F
from lightning_topo.diagrams import PersistenceDiagrams
from lightning_topo.functional._checks import all_finite
from lightning_topo.functional.intrinsic_dimension import duplicate_mask
from lightning_topo.functional.persistence import (
    h1_reach,
    horizon_applies,
    rips_below_horizon,
    rips_from_distances,
)
from lightning_topo.functional.registry import DESCRIPTORS, diagram_descriptors, distance_descriptors
from lightning_topo.options import MeasureOptions

DUPLICATE_NOTE = 0.1
"""A layer whose sample holds more than this fraction of exactly duplicated examples gets a note."""

LOCAL_ORDER = 0.9
"""Points whose consecutive distances average less than this fraction of all their distances are shuffled before the
persistence call (the diagrams are the same; giotto-ph is faster on a random order than on a sorted one)."""

LOOSE_PH_BOUND = 0.5
"""A layer whose H1 subsample bounds its bottleneck error by more than this (in units of the distance scale, e.g. half
the 0.9 quantile of the distances) gets a note: its H1 says little about every example's."""

__all__ = [
    "DUPLICATE_NOTE",
    "LOOSE_PH_BOUND",
    "LayerResult",
    "LayerSample",
    "PreparedLayer",
    "finish_layer",
    "measure_layer",
    "prepare_layer",
    "unsort_neighbourhoods",
]


@dataclass
class LayerSample:
    """What the capture hands the engine for one layer.

    Attributes:
        points: ``(n, F)`` reduced activations, one row per example (``None`` when nothing usable was captured).
        labels: ``(n,)`` integer labels of the rows, when known.
        problems: ``{kind: message}`` found while capturing (the layer is then not measured).
        volumes: ``(k, ...)`` raw feature maps of the first ``k`` examples, for cubical persistence (``None``
            when not asked for, or when the layer has no feature maps).
        is_output: the layer's output is the model's own output (the classifier head returned by ``forward``):
            never the hidden layer a score reads.
    """

    points: torch.Tensor | None
    labels: torch.Tensor | None = None
    problems: dict[str, str] = field(default_factory=dict)
    volumes: torch.Tensor | None = None
    is_output: bool = False


@dataclass
class LayerResult:
    """One layer's measurement.

    Attributes:
        metrics: ``{descriptor key: value}`` in the order of :meth:`MeasureOptions.metric_keys`.
        diagrams: the persistence diagrams (``None`` when the layer could not be measured).
        betti_curve: ``(maxdim + 1, n_bins)`` Betti curves on the options' grid.
        class_metrics: ``{class: {descriptor key: value}}`` when per-class descriptors were asked for.
        class_curves: ``{class: Betti curves}`` with ``per_class=True``.
        class_diagrams: ``{class: persistence diagrams}`` with ``per_class=True`` (for the per-class figure).
        problems: ``{kind: message}``; the affected metrics are NaN.
        seconds: compute time of this layer.
        images: RGB figures drawn by a worker process, when asked for.
        ph_bound: with ``ph_samples``, a bound on the bottleneck distance between the subsample's persistence
            diagrams and those of the whole sample, in normalised units: twice the subsample's covering radius
            (``None`` when every example entered the persistence).
        h1_reach: how far past its H1 horizon this layer's deaths went (the largest finite H1 death over the horizon;
            ``None`` when no horizon was computed): where the next measurement of the layer places its first cut.
    """

    metrics: dict[str, float]
    diagrams: PersistenceDiagrams | None = None
    betti_curve: np.ndarray | None = None
    class_metrics: dict[int, dict[str, float]] = field(default_factory=dict)
    class_curves: dict[int, np.ndarray] = field(default_factory=dict)
    class_diagrams: dict[int, PersistenceDiagrams] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    images: dict[str, np.ndarray] | None = None
    ph_bound: float | None = None
    h1_reach: float | None = None


@dataclass
class _PreparedCloud:
    ph_dist: np.ndarray | None  # float32 distance matrix for H>=1 (giotto-ph computes in float32 anyway)
    h0: np.ndarray | None  # H0 diagram from the spanning tree, when computed on the device
    metrics: dict[str, float]  # the global descriptors (intrinsic dimension), from the full cloud
    ph_bound: float | None = None  # bottleneck bound of the subsample's diagrams (twice its covering radius)


@dataclass
class PreparedLayer:
    """The device part of a layer, ready for the CPU persistence calls (picklable: numpy arrays only)."""

    cloud: _PreparedCloud
    classes: dict[int, _PreparedCloud]
    problems: dict[str, str]
    seconds: float
    volumes: np.ndarray | None = None


def failed(options: MeasureOptions, problems: dict[str, str]) -> LayerResult:
    """The result of a layer that could not be measured: NaN for every key."""
    return LayerResult(dict.fromkeys(options.metric_keys(), math.nan), problems=dict(problems))


def sample_problems(sample: LayerSample) -> dict[str, str]:
    """Why a layer's sample cannot be measured (empty when it can)."""
    if sample.problems:
        return dict(sample.problems)
    x = sample.points
    if x is None:
        return {"not_captured": "no activations were captured"}
    if x.shape[0] < 3:
        return {"too_few": f"only {x.shape[0]} examples were captured (at least 3 are needed)"}
    if not all_finite(x):
        n_nan, n_inf = int(torch.isnan(x).sum()), int(torch.isinf(x).sum())
        return {"nonfinite": f"its activations hold {n_nan} NaN and {n_inf} infinite values"}
    return {}


def prepare_layer(sample: LayerSample, options: MeasureOptions) -> PreparedLayer | LayerResult:
    """On the sample's device: everything before the persistence call. Only float32 matrices leave the device."""
    start = time.perf_counter()
    problems = sample_problems(sample)
    if problems:
        return failed(options, problems)
    x = sample.points
    assert x is not None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        dist = F.pairwise_distances(x, metric=options.metric, normalize=options.normalize)
        n = dist.shape[0]
        zeros = _count_zeros(dist)  # one pass for two questions
        constant, distinct = zeros == n * n, zeros == n  # every distance 0; only the diagonal's
        duplicates = None if distinct or constant else duplicate_mask(dist)  # read by the note and the ID
        cloud = _prepare_cloud(
            dist, options.maxdim, options, options.descriptors, options.ph_points(n), constant, distinct, duplicates
        )
    problems = _warnings_as_problems(caught)
    classes: dict[int, _PreparedCloud] = {}
    if options.class_descriptors and sample.labels is not None:
        labels = sample.labels.reshape(-1).cpu()
        notes: dict[str, list[str]] = {}
        members = {int(c): torch.nonzero(labels == c).reshape(-1)[: options.per_class_max] for c in labels.unique()}
        measured = {c: rows for c, rows in members.items() if len(rows) >= 3}
        indices: dict[int, torch.Tensor] = {}
        if measured:  # every class's indices in one copy to the device (each copy from the host waits for it)
            on_device = torch.cat(list(measured.values())).to(dist.device).split([len(r) for r in measured.values()])
            indices = dict(zip(measured, on_device, strict=True))
        for c, rows in members.items():
            if c not in indices:
                notes.setdefault("fewer than 3 examples (left out)", []).append(f"{c} ({len(rows)} examples)")
                continue
            idx = indices[c]
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", RuntimeWarning)
                sub = dist[idx[:, None], idx]  # one gather (dist[idx][:, idx] would first copy k x n)
                classes[c] = _prepare_cloud(
                    sub, options.class_maxdim, options, options.class_descriptors, None, constant, distinct
                )
            for w in caught:  # "TwoNN needs at least 20 distinct points but got 17. Returning NaN."
                why = re.sub(r"( but got \d+)?\.( Returning NaN\.)?$", "", str(w.message)) + " (NaN)"
                notes.setdefault(why, []).append(f"{c} ({len(rows)} examples)")
        if notes:
            problems["classes"] = "per class: " + "; ".join(
                f"class{'es' if len(cs) > 1 else ''} {', '.join(cs)}: {why}" for why, cs in notes.items()
            )
    volumes = None if sample.volumes is None else sample.volumes.detach().to("cpu", torch.float32).numpy()
    n_duplicates = 0 if duplicates is None else int(duplicates.sum())
    if n_duplicates > DUPLICATE_NOTE * n:
        problems["duplicates"] = (
            f"{n_duplicates} of its {n} examples ({100 * n_duplicates / n:.0f}%) are exact duplicates of others (dead "
            "units, collapsed class features, or repeated validation examples); the intrinsic dimension counts each "
            "distinct point once"
        )
    bound = cloud.ph_bound
    if bound is not None and bound > LOOSE_PH_BOUND and options.normalize is not None:
        problems["subsample"] = (
            f"its H1 comes from {options.ph_points(n)} farthest points of {n}, which leave examples up to "
            f"{bound / 2:.2f} from the nearest chosen point (in units of the layer's distance scale), so its H1 "
            f"bars are only known within {bound:.2f} of those of every example (high intrinsic dimension?); its H1 "
            "descriptors describe the subsample. Use more `ph_samples`, fewer `n_samples`, or `ph_sparse`"
        )
    if constant:
        problems = {
            "constant": "constant: every activation is equal (a dead or saturated layer?), so its topology is "
            "trivial (one component, no bars) and its intrinsic dimension is NaN"
        }
    return PreparedLayer(cloud, classes, problems, time.perf_counter() - start, volumes)


def _prepare_cloud(
    dist: torch.Tensor,
    maxdim: int,
    options: MeasureOptions,
    descriptors: tuple[str, ...],
    ph_points: int | None = None,
    constant: bool = False,
    distinct: bool = False,
    duplicates: torch.Tensor | None = None,
) -> _PreparedCloud:
    # a constant cloud has no intrinsic dimension: every estimator would only warn about zero distances
    metrics = distance_descriptors(
        dist, [] if constant else descriptors, options.params, distinct=distinct, duplicates=duplicates
    )
    metrics.update({name: math.nan for name in descriptors if name not in metrics and not DESCRIPTORS[name].per_dim})
    n = dist.shape[0]
    ph = dist
    bound = None
    if maxdim >= 1 and ph_points is not None and ph_points < n:
        # the engine's own matrix is valid: no re-check (that made n x n temporaries and host syncs)
        gen = torch.Generator().manual_seed(options.seed)
        idx, radius = F.farthest_point_cover(dist, ph_points, generator=gen, distance_matrix=True)
        idx = idx.sort().values
        ph = dist[idx[:, None], idx]  # one gather (dist[idx][:, idx] would first copy k x n)
        bound = 2.0 * float(radius)  # the covering radius bounds the bottleneck distance to the exact diagrams
    h0 = None
    if maxdim == 0 or ph is not dist or n >= options.h0_tree_from or options.ph_sparse is not None:
        h0 = np.array(rips_from_distances(dist, 0, thresh=options.thresh)[0])
    ph_dist = ph.to(torch.float32).cpu().numpy() if maxdim >= 1 else None
    return _PreparedCloud(ph_dist, h0, metrics, bound)


def unsort_neighbourhoods(d: np.ndarray, seed: int) -> np.ndarray:
    """``d`` with its points in a seeded random order when consecutive points are neighbours.

    The diagrams do not depend on the order of the points, but giotto-ph's reduction does: it is 2-2.5x slower on
    points sorted by neighbourhood, as the sample of a class-sorted validation set (``ImageFolder``) is, than in a
    random order (``benchmarks/RESULTS.md``, section 6). Such an order shows in consecutive points being closer than
    points in general; a random or an interleaved order is left as it is (the copy would cost 1-2 ms at 512 points
    for nothing).
    """
    n = d.shape[0]
    if n < 3 or np.diagonal(d, 1).mean(dtype=np.float64) >= LOCAL_ORDER * d.mean(dtype=np.float64) * n / (n - 1):
        return d
    order = np.random.default_rng(seed).permutation(n)
    return d[np.ix_(order, order)]


def _diagrams(
    cloud: _PreparedCloud, maxdim: int, options: MeasureOptions, reach: float | None = None
) -> tuple[PersistenceDiagrams, float | None]:
    """The cloud's diagrams, and how far past its H1 horizon the deaths went (``None`` without a horizon).

    ``reach`` is that figure at the layer's last measurement: it places the first cut (speed only)."""
    if cloud.ph_dist is None:
        return PersistenceDiagrams([cloud.h0 if cloud.h0 is not None else np.empty((0, 2))]), None
    d = unsort_neighbourhoods(cloud.ph_dist, options.seed)
    cut, horizon = None, 0.0
    if horizon_applies(maxdim, options.thresh, backend=options.backend, sparse=options.ph_sparse):
        cut, horizon = rips_below_horizon(d, options.n_threads, reach)
    if cut is not None:
        dgms = [g[g[:, 1] > g[:, 0]] for g in cut]
    else:
        dgms = rips_from_distances(
            torch.from_numpy(d),
            maxdim,
            thresh=options.thresh,
            n_threads=options.n_threads,
            h0="ripser",
            backend=options.backend,
            sparse=options.ph_sparse,
            horizon=False,  # just tried
        ).to_numpy()
    if cloud.h0 is not None:
        dgms[0] = cloud.h0
    return PersistenceDiagrams(dgms), h1_reach(dgms, horizon)


def finish_layer(prepared: PreparedLayer, options: MeasureOptions) -> LayerResult:
    """On the CPU: persistence (giotto-ph), the persistence descriptors and the Betti curves."""
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        dgms, reach = _diagrams(prepared.cloud, options.maxdim, options, options.horizon_reach)
        found = {**diagram_descriptors(dgms, options.descriptors, options.params), **prepared.cloud.metrics}
        class_metrics, class_curves, class_diagrams = {}, {}, {}
        for c, cloud in prepared.classes.items():
            class_dgms, _ = _diagrams(cloud, options.class_maxdim, options)
            values = {**diagram_descriptors(class_dgms, options.class_descriptors, options.params), **cloud.metrics}
            class_metrics[c] = {k: values[k] for k in options.class_keys()}
            if options.per_class:
                class_curves[c] = F.betti_curve(class_dgms, options.grid)
                class_diagrams[c] = class_dgms
    problems = {**prepared.problems, **_warnings_as_problems(caught)}
    metrics = {k: found[k] for k in options.metric_keys()}
    if prepared.volumes is not None:
        cubical, why = cubical_descriptors(prepared.volumes, options.cubical_threshold)
        metrics.update(cubical)
        problems.update({"cubical": why} if why else {})
    return LayerResult(
        metrics=metrics,
        diagrams=dgms,
        betti_curve=F.betti_curve(dgms, options.grid),
        class_metrics=class_metrics,
        class_curves=class_curves,
        class_diagrams=class_diagrams,
        problems=problems,
        seconds=prepared.seconds + time.perf_counter() - start,
        ph_bound=prepared.cloud.ph_bound,
        h1_reach=reach,
    )


def measure_layer(sample: LayerSample, options: MeasureOptions) -> LayerResult:
    """Everything for one layer's sample: :func:`prepare_layer`, then :func:`finish_layer`."""
    prepared = prepare_layer(sample, options)
    return prepared if isinstance(prepared, LayerResult) else finish_layer(prepared, options)


def cubical_descriptors(volumes: np.ndarray, threshold: float) -> tuple[dict[str, float], str | None]:
    """Suresh et al.'s per-image cubical descriptors of one layer, averaged over its ``k`` images.

    The volumes are divided by one robust scale of the layer (:func:`~lightning_topo.functional.normalize_volumes`),
    then each image's sublevel-set filtration gives ``cubical_betti_{q}`` at ``threshold`` (closed intervals,
    essential classes counted, :func:`~lightning_topo.functional.cubical_betti`) and ``cubical_complexity`` =
    their sum (Omega). Returns the metrics and, when they could not be computed, why (the metrics are then NaN).
    """
    maxdim = volumes.ndim - 2  # (k, C, H, W): H0..H2; (k, H, W): H0..H1
    keys = [*(f"cubical_betti_{q}" for q in range(maxdim + 1)), "cubical_complexity"]
    if not np.isfinite(volumes).all():
        return dict.fromkeys(keys, math.nan), "its feature maps hold NaN or infinite values (no cubical descriptors)"
    try:
        normed = F.normalize_volumes(torch.from_numpy(volumes))
        bettis = np.stack([F.cubical_betti(F.cubical_persistence(v), threshold) for v in normed]).astype(np.float64)
    except ImportError as err:
        return dict.fromkeys(keys, math.nan), f"cubical persistence is not available ({err})"
    means = bettis.mean(axis=0)
    out = {f"cubical_betti_{q}": float(means[q]) for q in range(maxdim + 1)}
    out["cubical_complexity"] = float(bettis.sum(axis=1).mean())
    return out, None


def _count_zeros(dist: torch.Tensor) -> int:
    """How many entries of ``dist`` are exactly 0 (one pass; one host synchronisation on an accelerator)."""
    if dist.device.type == "cpu":
        return int(np.count_nonzero(dist.detach().numpy() == 0))  # NumPy's pass is 3x faster than torch's here
    return int((dist == 0).sum())


def _warnings_as_problems(caught: list[warnings.WarningMessage]) -> dict[str, str]:
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    return {"estimator": "; ".join(dict.fromkeys(messages))} if messages else {}
