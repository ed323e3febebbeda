"""Pairwise distances on the input's device, exact enough for nearest-neighbour work."""

from __future__ import annotations

import functools
from typing import Any, Literal

import numpy as np
import torch

from lightning_topo.functional._checks import check_choice, check_distance_matrix, check_points

__all__ = ["distance_scale", "pairwise_distances", "upper_order_statistics"]

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

    if metric == "cosine":
        # unit rows first (a zero row stays zero): their Gram matrix is the cosine itself, with no n x n temporary
        sq = torch.zeros(n, dtype=torch.float64, device=x.device)
        for start in range(0, n_features, block):
            sq += x[:, start : start + block].to(torch.float64).pow(2).sum(dim=1)
        norms = sq.sqrt()
        scale = torch.where(norms > 0, 1.0 / torch.where(norms > 0, norms, 1.0), 0.0)
    gram = torch.zeros(n, n, dtype=torch.float64, device=x.device)
    for start in range(0, n_features, block):
        xb = x[:, start : start + block].to(torch.float64)
        xb = xb - mean[start : start + block] if mean is not None else xb * scale[:, None]
        gram.addmm_(xb, xb.T)
        del xb

    if metric == "euclidean":
        sq = gram.diagonal().clone()
        dist = gram.mul_(-2.0).add_(sq[:, None]).add_(sq[None, :]).clamp_min_(0.0).sqrt_()
    else:
        dist = gram.neg_().add_(1.0).clamp_(0.0, 2.0)
        # two zero vectors are the same point: their 1 - 0 becomes 0 (a rank-one update, no n x n mask)
        zero = (norms == 0).to(torch.float64)
        dist.addr_(zero, zero, alpha=-1.0)
    _symmetrize_(dist).fill_diagonal_(0.0)
    _zero_duplicates_(dist, x)
    return _normalized(dist, normalize, quantile).to(dtype)


def _zero_duplicates_(dist: torch.Tensor, x: torch.Tensor) -> None:
    """Give exactly equal rows of ``x`` a distance of exactly 0 (a Gram matrix leaves them ~1e-6 apart).

    Candidates are pairs closer than 1e-5 of the largest distance; each row is compared exactly with its first
    candidate, one vectorised pass over ``x`` in row blocks. Every pass over ``dist`` goes in row blocks (no
    ``n x n`` temporary) and only "is there any candidate?" is read back.
    """
    n = dist.shape[0]
    tol = dist.max() * 1e-5  # on the device
    rows = max(1, BLOCK_ELEMENTS // n)
    first = torch.empty(n, dtype=torch.long, device=dist.device)
    for start in range(0, n, rows):
        # the first row within tolerance, the row itself at the latest
        first[start : start + rows] = (dist[start : start + rows] <= tol).to(torch.uint8).argmax(dim=1)
    positions = torch.arange(n, device=dist.device)
    if not bool((first != positions).any()):  # only the diagonal: no two rows close enough to be equal
        return
    equal = torch.empty(n, dtype=torch.bool, device=x.device)
    block = max(1, BLOCK_ELEMENTS // max(x.shape[1], 1))
    for start in range(0, n, block):
        stop = min(start + block, n)
        equal[start:stop] = (x[start:stop] == x[first[start:stop]]).all(dim=1)
    group = torch.where(equal, first, positions)
    for start in range(0, n, rows):
        dist[start : start + rows].masked_fill_(group[start : start + rows, None] == group[None, :], 0.0)


def _normalized(dist: torch.Tensor, normalize: Normalize, quantile: float) -> torch.Tensor:
    if normalize is not None:
        scale = _scale(dist, normalize, quantile)  # on the device: no host sync
        dist /= torch.where(scale > 0, scale, 1.0)
    return dist


def _symmetrize_(m: torch.Tensor, tile: int = 256) -> torch.Tensor:
    """Average ``m`` with its transpose in place, tile by tile (a whole ``m + m.T`` is cache-hostile: 10x slower,
    and two more matrices); only a diagonal tile needs a temporary."""
    n = m.shape[0]
    for i in range(0, n, tile):
        for j in range(i, n, tile):
            upper = m[i : i + tile, j : j + tile]
            if i == j:
                upper.copy_(torch.add(upper, upper.T).mul_(0.5))
            else:
                lower = m[j : j + tile, i : i + tile]
                upper.add_(lower.T).mul_(0.5)
                lower.copy_(upper.T)
    return m


@functools.lru_cache(maxsize=8)
def _upper_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.triu_indices(n, k=1)
    return rows, cols


def distance_scale(
    d: Any, method: Literal["quantile", "median", "max"] = "quantile", *, quantile: float = 0.9, validate: bool = True
) -> float:
    """A scale of the off-diagonal entries of a distance matrix (used to normalise filtrations).

    The quantile uses linear interpolation over the ``n (n - 1) / 2`` distinct pairs, like ``torch.quantile`` (which
    stops at 16 M entries), for any ``n``. Both order statistics are exact: on the CPU from one introselect over the
    upper triangle; on an accelerator from a bisection over the bit patterns of the distances (non-negative floats
    order like their bits), 63 passes that each count the pairs below a threshold in row blocks, parallel over the
    whole device, with no ``n x n`` temporary and no host synchronisation (``torch.kthvalue`` over the matrix would
    run in one CUDA thread block: seconds at ``n`` around 10,000).

    Args:
        d: square distance matrix.
        method: ``"quantile"``, ``"median"`` (the 0.5 quantile) or ``"max"``.
        quantile: the quantile for ``method="quantile"``, in ``[0, 1]``.
        validate: check that ``d`` is a distance matrix.

    Returns:
        The scale as a float (0.0 when every distance is zero).

    Raises:
        ValueError: for an unknown method, a quantile outside ``[0, 1]``, or (with ``validate``) a matrix that is not
            a distance matrix.

    Example:
        >>> d = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 3.0], [2.0, 3.0, 0.0]])
        >>> distance_scale(d, "median"), distance_scale(d, "max")
        (2.0, 3.0)
    """
    check_choice("method", method, ("quantile", "median", "max"))
    if validate:
        d = check_distance_matrix(d, "d", min_points=2)
    return float(_scale(d, method, quantile))


def _scale(d: torch.Tensor, method: str, quantile: float) -> torch.Tensor:
    """:func:`distance_scale` as a float64 0-d tensor on ``d``'s device."""
    if method == "max":
        return d.max().to(torch.float64)
    q = 0.5 if method == "median" else float(quantile)
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"Expected `quantile` to be in [0, 1] but got {quantile!r}.")
    n = d.shape[0]
    m = n * (n - 1) // 2
    h = q * (m - 1)
    lo, hi = int(h), min(int(h) + 1, m - 1)
    if d.device.type == "cpu":
        # one introselect over the strict upper triangle for both order statistics
        upper = d.detach().numpy()[_upper_indices(n)]
        part = np.partition(upper, sorted({lo, hi}))
        v_lo, v_hi = float(part[lo]), float(part[hi])
        return torch.tensor(v_lo + (h - lo) * (v_hi - v_lo), dtype=torch.float64)
    v = upper_order_statistics(d, sorted({lo, hi})).to(torch.float64)
    return v[0] + (h - lo) * (v[-1] - v[0])


# float dtype -> (the bits of +inf, the bits as values of that dtype)
_BITS = {
    torch.float64: (0x7FF0000000000000, lambda b: b.view(torch.float64)),
    torch.float32: (0x7F800000, lambda b: b.to(torch.int32).view(torch.float32)),
}


def upper_order_statistics(d: torch.Tensor, ranks: list[int]) -> torch.Tensor:
    """The ``ranks``-th smallest entries (0-based) of the strict upper triangle of a non-negative float32 or
    float64 matrix ``d``, exactly, on ``d``'s device without a host synchronisation.

    Non-negative floats are ordered like their bit patterns read as integers, so the ``k``-th smallest entry is
    the smallest bit pattern ``b`` with at least ``k + 1`` entries ``<= value(b)``: a bisection over ``[0, bits of
    +inf]`` finds it in 63 passes (31 for float32), all ranks at once. Each pass compares the upper triangle with
    the thresholds in blocks of rows (at most ``8 * BLOCK_ELEMENTS`` booleans, the bytes of one float64 block, at a
    time) and counts: elementwise work spread over the whole device, about ``32 n^2`` comparisons per rank. The
    loop has a fixed length, so nothing is read back until the caller reads.

    Args:
        d: square matrix, non-negative, finite.
        ranks: 0-based ranks, each below ``n (n - 1) / 2``.

    Returns:
        ``(len(ranks),)`` tensor of ``d``'s dtype on ``d``'s device.

    Example:
        >>> d = torch.tensor([[0.0, 3.0, 1.0], [3.0, 0.0, 2.0], [1.0, 2.0, 0.0]])
        >>> upper_order_statistics(d, [0, 2]).tolist()
        [1.0, 3.0]
    """
    top, as_value = _BITS[d.dtype]
    n, k = d.shape[0], len(ranks)
    need = torch.empty(k, dtype=torch.int64, device=d.device)
    for i, rank in enumerate(ranks):
        need[i] = rank + 1  # a fill, not a copy from the host (a copy would wait for the device)
    low = torch.full((k,), -1, dtype=torch.int64, device=d.device)  # count(<= value(low)) < need
    high = torch.full((k,), top, dtype=torch.int64, device=d.device)  # count(<= value(high)) >= need
    # booleans per block: the k comparisons and the triangle mask, within the 64 MiB of one float64 block
    rows = max(1, 8 * BLOCK_ELEMENTS // (n * (k + 1)))
    positions = torch.arange(n, device=d.device)
    for _ in range(top.bit_length()):
        mid = low + (high - low) // 2
        threshold = as_value(mid).view(k, 1, 1)
        count = torch.zeros(k, dtype=torch.int64, device=d.device)
        for start in range(0, n - 1, rows):
            # rows start.. and the columns right of the first row's diagonal: row i keeps the columns c >= i
            block = d[start : start + rows, start + 1 :]
            upper = positions[None, : block.shape[1]] >= positions[: block.shape[0], None]
            count += (block.unsqueeze(0) <= threshold).logical_and_(upper).sum(dim=(1, 2))
        enough = count >= need
        high = torch.where(enough, mid, high)
        low = torch.where(enough, low, mid)
    return as_value(high)
