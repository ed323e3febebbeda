"""Pairwise distances on the input's device, exact enough for nearest-neighbour work."""

from __future__ import annotations

import functools
from typing import Any, Literal

import numpy as np
import torch

from lightning_topo.functional._checks import check_choice, check_distance_matrix, check_points

__all__ = ["distance_scale", "pairwise_distances"]

Metric = Literal["euclidean", "cosine"]
Normalize = Literal["quantile", "median", "max"] | None

# Largest float64 block (in elements) materialised at once besides the n x n result: 8 Mi elements = 64 MiB.
# Public so that it can be lowered where memory is tight (and in tests of the chunked path).
BLOCK_ELEMENTS = 1 << 23


def pairwise_distances(
    x: Any,
    metric: Metric = "euclidean",
    *,
    normalize: Normalize = None,
    quantile: float = 0.9,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Distance matrix of a point cloud, on the input's device.

    Distances are accumulated in float64 from a Gram matrix of the *centred* features, one block of at most
    64 MiB of columns at a time, so a wide input (4,096 points x 100,000 features) never materialises a
    float64 copy of itself. Squared distances are clamped at zero before the square root (no NaN from
    rounding), the matrix is exactly symmetric and its diagonal exactly zero. float32 matmul distances
    (``torch.cdist``'s default mode) get nearest-neighbour distances of clean low-dimensional data wrong by
    orders of magnitude; these do not.

    Args:
        x: points, shape ``(n_points, n_features)``; integer and half-precision inputs are upcast.
        metric: ``"euclidean"`` or ``"cosine"`` (``1 - cos``; a zero vector is at distance 1 from every
            other point, as in scikit-learn).
        normalize: divide by a scale of the off-diagonal distances so that layers of different width share a
            filtration range: ``"quantile"`` (the ``quantile`` quantile, 0.9 by default, as RTD), ``"median"``
            or ``"max"`` (the diameter). ``None`` keeps raw distances. A scale of zero (all points equal)
            leaves the matrix unchanged.
        quantile: the quantile used by ``normalize="quantile"``.
        dtype: dtype of the result (computation is always float64).

    Returns:
        ``(n_points, n_points)`` tensor on ``x``'s device.

    Raises:
        ValueError: if ``x`` is not a finite 2-D cloud of at least 2 points, or an option is unknown.

    References:
        Barannikov et al., "Representation Topology Divergence", ICML 2022 (quantile normalisation).

    Example:
        >>> x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
        >>> pairwise_distances(x)
        tensor([[ 0.,  5., 10.],
                [ 5.,  0.,  5.],
                [10.,  5.,  0.]], dtype=torch.float64)
        >>> pairwise_distances(x, normalize="max").max().item()
        1.0
    """
    check_choice("metric", metric, ("euclidean", "cosine"))
    check_choice("normalize", normalize, ("quantile", "median", "max", None))
    x = check_points(x, min_points=2)
    n, n_features = x.shape
    block = max(1, min(n_features, BLOCK_ELEMENTS // max(n, 1)))

    mean = None
    if metric == "euclidean":
        mean = torch.zeros(n_features, dtype=torch.float64, device=x.device)
        for start in range(0, n_features, block):
            mean[start : start + block] = x[:, start : start + block].to(torch.float64).mean(dim=0)

    if metric == "euclidean" and n_features <= block:
        # one matmul of augmented rows [-2x, |x|^2, 1] . [x, 1, |x|^2] gives every squared distance at once
        xc = x.to(torch.float64) - mean
        sq = xc.pow(2).sum(dim=1, keepdim=True)
        ones = torch.ones_like(sq)
        left = torch.cat([xc.mul(-2.0), sq, ones], dim=1)
        right = torch.cat([xc, ones, sq], dim=1)
        dist = (left @ right.T).clamp_min_(0.0).sqrt_()
        del xc, left, right
        _symmetrize_(dist).fill_diagonal_(0.0)
        _zero_duplicates_(dist, x)
        return _normalized(dist, normalize, quantile).to(dtype)

    gram = torch.zeros(n, n, dtype=torch.float64, device=x.device)
    for start in range(0, n_features, block):
        xb = x[:, start : start + block].to(torch.float64)
        if mean is not None:
            xb = xb - mean[start : start + block]
        gram.addmm_(xb, xb.T)
        del xb
    sq = gram.diagonal().clone()

    if metric == "euclidean":
        dist = gram.mul_(-2.0).add_(sq[:, None]).add_(sq[None, :]).clamp_min_(0.0).sqrt_()
    else:
        norms = sq.sqrt()
        zero = norms == 0
        denom = torch.outer(norms, norms)
        cos = torch.where(denom > 0, gram / torch.where(denom > 0, denom, 1.0), torch.zeros_like(gram))
        dist = (1.0 - cos).clamp_(0.0, 2.0)
        # two zero vectors are the same point
        dist[zero[:, None] & zero[None, :]] = 0.0
    _symmetrize_(dist).fill_diagonal_(0.0)
    _zero_duplicates_(dist, x)
    return _normalized(dist, normalize, quantile).to(dtype)


def _zero_duplicates_(dist: torch.Tensor, x: torch.Tensor) -> None:
    """Give exactly equal rows of ``x`` a distance of exactly 0 (a Gram matrix leaves them ~1e-6 apart).

    Candidates are pairs closer than 1e-5 of the largest distance; each row is compared exactly with its first
    candidate, one vectorised pass over ``x`` in row blocks.
    """
    n = dist.shape[0]
    tol = 1e-5 * float(dist.max())
    near = dist <= tol
    if int(near.sum()) == n:  # only the diagonal: no two rows close enough to be equal
        return
    first = near.to(torch.uint8).argmax(dim=1)  # the first row within tolerance, the row itself at the latest
    equal = torch.empty(n, dtype=torch.bool, device=x.device)
    block = max(1, BLOCK_ELEMENTS // max(x.shape[1], 1))
    for start in range(0, n, block):
        stop = min(start + block, n)
        equal[start:stop] = (x[start:stop] == x[first[start:stop]]).all(dim=1)
    group = torch.where(equal, first, torch.arange(n, device=x.device))
    same = group[:, None] == group[None, :]
    dist.masked_fill_(same, 0.0)


def _normalized(dist: torch.Tensor, normalize: Normalize, quantile: float) -> torch.Tensor:
    if normalize is not None:
        scale = distance_scale(dist, normalize, quantile=quantile, validate=False)
        if scale > 0:
            dist /= scale
    return dist


def _symmetrize_(m: torch.Tensor, tile: int = 256) -> torch.Tensor:
    """Average ``m`` with its transpose in place, tile by tile (a whole ``m + m.T`` is cache-hostile: 10x slower)."""
    n = m.shape[0]
    for i in range(0, n, tile):
        for j in range(i, n, tile):
            upper = m[i : i + tile, j : j + tile]
            lower = m[j : j + tile, i : i + tile]
            avg = (upper + lower.T) * 0.5
            upper.copy_(avg)
            lower.copy_(avg.T)
    return m


@functools.lru_cache(maxsize=8)
def _upper_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.triu_indices(n, k=1)
    return rows, cols


def distance_scale(
    d: Any, method: Literal["quantile", "median", "max"] = "quantile", *, quantile: float = 0.9, validate: bool = True
) -> float:
    """A scale of the off-diagonal entries of a distance matrix (used to normalise filtrations).

    The quantile uses linear interpolation over the ``n (n - 1) / 2`` distinct pairs, like ``torch.quantile``, but
    through ``kthvalue`` on the full matrix, so it works for any ``n`` (``torch.quantile`` stops at 16 M entries).

    Args:
        d: square distance matrix.
        method: ``"quantile"``, ``"median"`` (the 0.5 quantile) or ``"max"``.
        quantile: the quantile for ``method="quantile"``, in ``[0, 1]``.
        validate: check that ``d`` is a distance matrix.

    Returns:
        The scale as a float (0.0 when every distance is zero).

    Example:
        >>> d = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 3.0], [2.0, 3.0, 0.0]])
        >>> distance_scale(d, "median"), distance_scale(d, "max")
        (2.0, 3.0)
    """
    check_choice("method", method, ("quantile", "median", "max"))
    if validate:
        d = check_distance_matrix(d, "d", min_points=2)
    if method == "max":
        return float(d.max())
    q = 0.5 if method == "median" else float(quantile)
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"Expected `quantile` to be in [0, 1] but got {quantile!r}.")
    n = d.shape[0]
    m = n * (n - 1) // 2
    flat = d.reshape(-1)
    h = q * (m - 1)
    lo, hi = int(h), min(int(h) + 1, m - 1)

    def upper_kth(j: int) -> float:
        # sorted full matrix: n diagonal zeros, then every off-diagonal value twice
        return float(torch.kthvalue(flat, n + 2 * j + 1).values)

    if d.device.type == "cpu":
        # one introselect over the strict upper triangle for both order statistics: 3x faster than two
        # torch.kthvalue calls over the full matrix
        upper = d.detach().numpy()[_upper_indices(n)]
        part = np.partition(upper, sorted({lo, hi}))
        v_lo, v_hi = float(part[lo]), float(part[hi])
    else:
        v_lo = upper_kth(lo)
        v_hi = upper_kth(hi) if hi != lo else v_lo
    return v_lo + (h - lo) * (v_hi - v_lo)
