"""Intrinsic dimension from nearest-neighbour distances (TwoNN, MLE) and from H0 persistence (PH-dimension)."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

from lightning_topo.functional._checks import (
    check_choice,
    check_distance_matrix,
    check_fraction,
    check_points,
    check_positive_int,
    generator_device,
)
from lightning_topo.functional.distances import pairwise_distances
from lightning_topo.functional.persistence import h0_mst_deaths

__all__ = [
    "TWONN_MIN_POINTS",
    "distinct_points",
    "duplicate_mask",
    "id_estimates",
    "id_from_distances",
    "intrinsic_dimension",
    "nearest_neighbor_distances",
]

log = logging.getLogger(__name__)

_ROW_BLOCK_ELEMENTS = 1 << 24

TWONN_MIN_POINTS = 20
"""Below this many distinct points TwoNN returns NaN: its fit through the origin then rests on a handful of ratios
(3 points of a 16-dimensional cloud gave 27.95), a number but not an estimate."""


def intrinsic_dimension(
    x: Any,
    method: Literal["twonn", "mle", "phdim"] = "twonn",
    *,
    distance_matrix: bool = False,
    fraction: float = 0.9,
    k1: int = 10,
    k2: int = 20,
    alpha: float = 1.0,
    n_sizes: int = 8,
    n_min: int = 200,
    n_max: int = 1000,
    generator: torch.Generator | None = None,
) -> float:
    """Intrinsic dimension of a point cloud, computed on its device.

    Duplicated points (exactly equal rows: dead units, neural collapse, repeated examples) are counted once:
    every estimator runs on the distinct points (:func:`distinct_points`), as scikit-dimension on unique rows.

    - ``"twonn"`` (Facco et al. 2017, as in Ansuini et al.'s code): ``mu = r2 / r1`` per point; points with
      ``r1 = r2`` are dropped; the ``fraction`` smallest ``mu`` are kept and the dimension is the slope through
      the origin of ``-log(1 - i/N)`` against ``log mu_(i)``. NaN below :data:`TWONN_MIN_POINTS` (20) distinct
      points.
    - ``"mle"`` (Levina & Bickel 2004 with MacKay & Ghahramani's averaging): for each ``k`` in
      ``k1 .. k2``, ``m_k = 1 / mean_i[(1/(k-1)) sum_{j<k} log(T_k(x_i) / T_j(x_i))]``; the result is the mean
      of ``m_k``. NaN with ``k2`` or fewer distinct points.
    - ``"phdim"`` (Schweinhart; Birdal et al. 2021): H0 lifetime sums ``E_alpha(n)`` of random subsamples of
      ``n_sizes`` sizes from ``min(n_min, N // 4)`` to ``min(n_max, N)``; with ``m`` the least-squares slope of
      ``log E`` against ``log n``, the dimension is ``alpha / (1 - m)``.

    The nearest neighbours come from a ``topk`` over blocks of rows, not a sort of every row. Distances are
    float64 (:func:`pairwise_distances`). Degenerate data (constant, too few distinct points) give NaN
    with a warning, never an exception.

    Args:
        x: points ``(N, d)``, or a distance matrix with ``distance_matrix=True``.
        method: ``"twonn"``, ``"mle"`` or ``"phdim"``.
        distance_matrix: whether ``x`` is a distance matrix.
        fraction: TwoNN: share of the smallest ratios kept (0.9 discards the 10% largest).
        k1: MLE: smallest neighbourhood size (>= 2).
        k2: MLE: largest neighbourhood size (>= k1).
        alpha: PH-dimension: exponent of the lifetimes.
        n_sizes: PH-dimension: number of subsample sizes.
        n_min: PH-dimension: smallest subsample size.
        n_max: PH-dimension: largest subsample size.
        generator: PH-dimension: source of randomness for the subsamples, on the CPU or on ``x``'s device.

    Returns:
        The estimate, or NaN (with a warning) when it cannot be computed.

    Raises:
        ValueError: for bad input or options.

    References:
        Facco et al., Sci. Rep. 7:12140, 2017, doi:10.1038/s41598-017-11873-y; Ansuini et al., NeurIPS 2019;
        Levina & Bickel, NIPS 2004; MacKay & Ghahramani, 2005; Birdal et al., NeurIPS 2021, arXiv:2111.13171.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> plane = torch.rand(2000, 2, generator=g, dtype=torch.float64) @ torch.eye(2, 10, dtype=torch.float64)
        >>> round(intrinsic_dimension(plane, "twonn"))
        2
        >>> round(intrinsic_dimension(plane, "mle"))
        2
    """
    check_choice("method", method, ("twonn", "mle", "phdim"))
    fraction = check_fraction("fraction", fraction)
    k1 = check_positive_int("k1", k1, minimum=2)
    k2 = check_positive_int("k2", k2, minimum=k1)
    n_sizes = check_positive_int("n_sizes", n_sizes, minimum=2)
    if not alpha > 0:
        raise ValueError(f"Expected `alpha` to be positive but got {alpha!r}.")
    d = check_distance_matrix(x) if distance_matrix else pairwise_distances(check_points(x))
    return id_from_distances(
        d.to(torch.float64),
        method,
        fraction=fraction,
        k1=k1,
        k2=k2,
        alpha=alpha,
        n_sizes=n_sizes,
        n_min=n_min,
        n_max=n_max,
        generator=generator,
    )


def id_from_distances(
    d: torch.Tensor,
    method: Literal["twonn", "mle", "phdim"] = "twonn",
    *,
    fraction: float = 0.9,
    k1: int = 10,
    k2: int = 20,
    alpha: float = 1.0,
    n_sizes: int = 8,
    n_min: int = 200,
    n_max: int = 1000,
    generator: torch.Generator | None = None,
) -> float:
    """:func:`intrinsic_dimension` on a float64 distance matrix already known to be valid (no checks)."""
    return id_estimates(
        d,
        [method],
        fraction=fraction,
        k1=k1,
        k2=k2,
        alpha=alpha,
        n_sizes=n_sizes,
        n_min=n_min,
        n_max=n_max,
        generator=generator,
    )[method]


def id_estimates(
    d: torch.Tensor,
    methods: Sequence[Literal["twonn", "mle", "phdim"]],
    *,
    distinct: bool = False,
    duplicates: torch.Tensor | None = None,
    fraction: float = 0.9,
    k1: int = 10,
    k2: int = 20,
    alpha: float = 1.0,
    n_sizes: int = 8,
    n_min: int = 200,
    n_max: int = 1000,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Several estimators of :func:`intrinsic_dimension` on one valid float64 distance matrix (no checks), sharing
    the work: the distinct points are found once and TwoNN and MLE read one nearest-neighbour search.

    Args:
        d: valid float64 distance matrix.
        methods: estimators among ``"twonn"``, ``"mle"``, ``"phdim"``.
        distinct: the caller knows that no two points are at distance 0 (the duplicate scan is skipped).
        duplicates: the caller's :func:`duplicate_mask` of ``d``, when it has one (the scan is not repeated).
        fraction, k1, k2, alpha, n_sizes, n_min, n_max, generator: as in :func:`intrinsic_dimension`.

    Returns:
        ``{method: estimate}``, NaN (with a warning) where an estimate cannot be computed.
    """
    if not distinct:
        d = distinct_points(d, duplicates)
    n = d.shape[0]
    k = max([2 if "twonn" in methods and n >= TWONN_MIN_POINTS else 0, k2 if "mle" in methods and k2 < n else 0])
    knn = _knn(d, k) if k else None
    out: dict[str, float] = {}
    for method in methods:
        if method == "twonn":
            if n < TWONN_MIN_POINTS:
                _warn(f"TwoNN needs at least {TWONN_MIN_POINTS} distinct points but got {n}.")
                out[method] = math.nan
            else:
                assert knn is not None
                out[method] = _twonn(knn[:, :2], fraction)
        elif method == "mle":
            if k2 >= n:
                _warn(f"MLE needs more than k2={k2} points but got {n}.")
                out[method] = math.nan
            else:
                assert knn is not None
                out[method] = _mle(knn[:, :k2], k1, k2)
        else:
            out[method] = _phdim(d, alpha, n_sizes, n_min, n_max, generator)
    return out


def distinct_points(d: torch.Tensor, duplicates: torch.Tensor | None = None) -> torch.Tensor:
    """The distance matrix of the distinct points: every point at distance exactly 0 from an earlier one (a
    duplicate) is left out, so each duplicated example counts once. :func:`pairwise_distances` gives identical
    rows a distance of exactly 0. ``duplicates``: :func:`duplicate_mask` of ``d`` when the caller has it.

    Example:
        >>> d = torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 2.0], [2.0, 2.0, 0.0]])
        >>> distinct_points(d).tolist()
        [[0.0, 2.0], [2.0, 0.0]]
    """
    duplicate = duplicate_mask(d) if duplicates is None else duplicates
    if not bool(duplicate.any()):
        return d
    keep = torch.nonzero(~duplicate).reshape(-1)
    return d[keep[:, None], keep]  # one gather (d[keep][:, keep] would first copy k x n)


def duplicate_mask(d: torch.Tensor) -> torch.Tensor:
    """``(n,)`` booleans: True at each point at distance exactly 0 from an earlier point (a duplicate).

    Computed in blocks of columns on ``d``'s device (no ``n x n`` temporary, no host synchronisation).

    Example:
        >>> duplicate_mask(torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 2.0], [2.0, 2.0, 0.0]])).tolist()
        [False, True, False]
    """
    n = d.shape[0]
    out = torch.empty(n, dtype=torch.bool, device=d.device)
    positions = torch.arange(n, device=d.device)
    cols = max(1, _ROW_BLOCK_ELEMENTS // max(n, 1))
    for start in range(0, n, cols):
        block = d[:, start : start + cols]
        earlier = positions[:, None] < positions[None, start : start + cols]
        out[start : start + cols] = (block == 0).logical_and_(earlier).any(dim=0)
    return out


def nearest_neighbor_distances(x: Any, k: int, *, distance_matrix: bool = False) -> torch.Tensor:
    """Distances of every point to its ``k`` nearest other points, ascending, ``(N, k)`` float64.

    A point's own zero distance is excluded, duplicates are not (a duplicate is a neighbour at 0).

    Example:
        >>> nearest_neighbor_distances(torch.tensor([[0.0], [1.0], [3.0]]), 2).tolist()
        [[1.0, 3.0], [1.0, 2.0], [2.0, 3.0]]
    """
    d = check_distance_matrix(x) if distance_matrix else pairwise_distances(check_points(x))
    n = d.shape[0]
    k = check_positive_int("k", k)
    if k >= n:
        raise ValueError(f"Expected `k` to be smaller than the number of points ({n}) but got {k}.")
    return _knn(d.to(torch.float64), k)


def _knn(d: torch.Tensor, k: int) -> torch.Tensor:
    n = d.shape[0]
    # The k + 1 smallest values of a row start with a 0: the point itself, or a duplicate at the same value 0.
    # Dropping that first value leaves the k smallest distances to other points, without copying the row.
    block = max(1, _ROW_BLOCK_ELEMENTS // n)
    out = torch.empty(n, k, dtype=torch.float64, device=d.device)
    for start in range(0, n, block):
        rows = d[start : start + block]
        out[start : start + rows.shape[0]] = torch.topk(rows, k + 1, dim=1, largest=False, sorted=True).values[:, 1:]
    return out


def _warn(message: str) -> None:
    warnings.warn(f"{message} Returning NaN.", RuntimeWarning, stacklevel=3)


def _twonn(knn: torch.Tensor, fraction: float) -> float:
    r1, r2 = knn[:, 0], knn[:, 1]
    keep = (r1 > 0) & (r2 > r1)
    n = int(keep.sum())
    # the kept ratios first, in order, the dropped ones last (boolean indexing would add a host sync for its
    # size to the one of `n` above)
    mu = torch.where(keep, r2 / torch.where(keep, r1, 1.0), math.inf).sort().values
    n_fit = math.floor(fraction * n)
    if n_fit >= n:  # 1 - F would be 0 for the largest ratio
        n_fit = n - 1
    if n_fit < 2:
        _warn(f"TwoNN needs at least 3 points with distinct nearest neighbours but got {n}.")
        return math.nan
    xs = torch.log(mu[:n_fit])
    f_emp = torch.arange(1, n_fit + 1, dtype=torch.float64, device=mu.device) / n
    ys = -torch.log1p(-f_emp)
    num, denom = torch.stack([(xs * ys).sum(), (xs * xs).sum()]).tolist()
    if denom <= 0:
        _warn("TwoNN ratios are all 1.")
        return math.nan
    return num / denom


def _mle(knn: torch.Tensor, k1: int, k2: int) -> float:
    valid = knn[:, 0] > 0
    n_valid = int(valid.sum())
    if n_valid < 2:
        _warn("MLE needs at least 2 points without duplicates.")
        return math.nan
    # every k at once, averaged over the points without a duplicate (boolean indexing would add a host sync for
    # its size to the one of `n_valid` above)
    log_t = torch.log(torch.where(valid[:, None], knn, 1.0))
    cum = torch.cumsum(log_t, dim=1)  # cum[:, j-1] = sum_{i<=j} log T_i
    ks = torch.arange(k1, k2 + 1, device=knn.device)
    # (1/(k-1)) sum_{j<k} log(T_k / T_j), per point and k
    inv = ((ks - 1) * log_t[:, ks - 1] - cum[:, ks - 2]) / (ks - 1)
    mean_inv = (inv.sum(dim=0) / n_valid).tolist()
    if min(mean_inv) <= 0:
        _warn("MLE neighbourhoods have no spread.")
        return math.nan
    return float(np.mean([1.0 / m for m in mean_inv]))


def _phdim(
    d: torch.Tensor, alpha: float, n_sizes: int, n_min: int, n_max: int, generator: torch.Generator | None
) -> float:
    n = d.shape[0]
    hi = min(n_max, n)
    lo = min(n_min, max(n // 4, 3))
    if hi - lo < n_sizes:
        _warn(f"PH-dimension needs a range of sample sizes; got {n} points.")
        return math.nan
    sizes = np.unique(np.linspace(lo, hi, n_sizes).astype(np.int64)).tolist()
    where = generator_device(generator)
    # every subsample drawn first, then one copy to the device (each copy from the host waits for the device)
    drawn = [torch.randperm(n, generator=generator, device=where)[:size] for size in sizes if size < n]
    subsamples = list(torch.cat(drawn).to(d.device).split([len(i) for i in drawn])) if drawn else []
    sums = []
    for size in sizes:
        if size == n:  # every point: the tree's lengths do not depend on their order
            deaths = h0_mst_deaths(d)
        else:
            idx = subsamples.pop(0)
            # the sub-matrix in one gather (d[idx][:, idx] would first copy size x n)
            deaths = h0_mst_deaths(d[idx[:, None], idx])
        sums.append(deaths.pow(alpha).sum())  # deaths are >= 0 and 0 ** alpha = 0: the zero bars add nothing
    lifetimes = torch.stack(sums).tolist()  # one host sync for every size
    if min(lifetimes) <= 0:
        _warn("PH-dimension: a subsample has zero H0 lifetime (all points equal).")
        return math.nan
    slope = float(np.polyfit(np.log(sizes), np.log(lifetimes), 1)[0])
    if slope >= 1:
        _warn(f"PH-dimension slope {slope:.3f} >= 1.")
        return math.nan
    return alpha / (1.0 - slope)
