"""Choosing which points enter a (costly) persistence computation."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from lightning_topo.functional._checks import (
    as_tensor,
    check_choice,
    check_distance_matrix,
    check_points,
    check_positive_int,
    generator_device,
)

__all__ = ["farthest_point_cover", "farthest_point_indices", "subsample"]


def subsample(
    x: Any,
    n: int,
    method: Literal["random", "farthest", "stratified"] = "random",
    labels: Any = None,
    generator: torch.Generator | None = None,
    *,
    balanced: bool = False,
    distance_matrix: bool = False,
) -> torch.Tensor:
    """Indices of ``n`` points of ``x``, sorted ascending, on ``x``'s device.

    - ``"random"``: uniformly without replacement.
    - ``"farthest"``: greedy farthest-point sampling (a 2-approximation of the k-center cover): start at a
      random point (point 0 without a generator), then repeatedly add the point farthest from those chosen.
      O(n N) distance evaluations on the device, never the full N x N matrix unless it is given.
    - ``"stratified"``: random within each class of ``labels``, keeping class proportions (largest-remainder
      rounding); with ``balanced=True``, as equal a number per class as the class sizes allow.

    When ``n`` is at least the number of points every index is returned.

    Args:
        x: points ``(N, d)``, or a distance matrix ``(N, N)`` with ``distance_matrix=True``.
        n: how many points to keep.
        method: ``"random"``, ``"farthest"`` or ``"stratified"``.
        labels: integer class of each point, shape ``(N,)`` (``"stratified"`` only).
        generator: source of randomness, on the CPU or on ``x``'s device (a CUDA generator for CUDA data); results
            are deterministic given its seed.
        balanced: equal allocation per class instead of proportional (``"stratified"`` only).
        distance_matrix: whether ``x`` is a distance matrix.

    Returns:
        ``(min(n, N),)`` int64 tensor of sorted indices.

    Raises:
        ValueError: for an unknown method, a non-positive ``n``, missing or mis-shaped ``labels``.

    References:
        Gonzalez, "Clustering to minimize the maximum intercluster distance", TCS 38, 1985 (farthest point).

    Example:
        >>> x = torch.tensor([[0.0], [0.1], [5.0], [10.0]])
        >>> subsample(x, 3, "farthest").tolist()
        [0, 2, 3]
        >>> g = torch.Generator().manual_seed(0)
        >>> subsample(x, 2, "stratified", labels=torch.tensor([0, 0, 1, 1]), generator=g).shape
        torch.Size([2])
    """
    check_choice("method", method, ("random", "farthest", "stratified"))
    n = check_positive_int("n", n)
    x = check_distance_matrix(x, min_points=1) if distance_matrix else check_points(x, min_points=1)
    n_total = x.shape[0]
    device = x.device
    if method == "stratified":
        idx = _stratified(n_total, n, labels, generator, balanced)
        return idx.to(device)
    if n >= n_total:
        return torch.arange(n_total, device=device)
    if method == "random":
        perm = torch.randperm(n_total, generator=generator, device=generator_device(generator))
        return perm[:n].sort().values.to(device)
    return farthest_point_indices(x, n, generator=generator, distance_matrix=distance_matrix).sort().values


def farthest_point_indices(
    x: torch.Tensor, n: int, *, generator: torch.Generator | None = None, distance_matrix: bool = False
) -> torch.Tensor:
    """Greedy farthest-point sampling of ``n`` points of a valid cloud or distance matrix, without input checks.

    The start is a random point (point 0 without a generator); each next point is the one farthest from those
    chosen. Everything stays on ``x``'s device: the loop makes no host synchronisation (the index of each new
    point is a device tensor, never a Python int), so it costs ``n`` short kernel sequences on an accelerator.

    Args:
        x: points ``(N, d)``, or a distance matrix ``(N, N)`` with ``distance_matrix=True``, already valid
            (from :func:`~lightning_topo.functional.pairwise_distances`, or checked by :func:`subsample`).
        n: how many points, ``1 <= n <= N``.
        generator: source of the random start, on the CPU or on ``x``'s device.
        distance_matrix: whether ``x`` is a distance matrix.

    Returns:
        ``(n,)`` int64 tensor on ``x``'s device, in the order the points were chosen.

    References:
        Gonzalez, "Clustering to minimize the maximum intercluster distance", TCS 38, 1985.

    Example:
        >>> farthest_point_indices(torch.tensor([[0.0], [1.0], [10.0], [3.0], [6.0]]), 4).tolist()
        [0, 2, 4, 3]
    """
    return farthest_point_cover(x, n, generator=generator, distance_matrix=distance_matrix)[0]


def farthest_point_cover(
    x: torch.Tensor, n: int, *, generator: torch.Generator | None = None, distance_matrix: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`farthest_point_indices` and the covering radius of the sample it chose.

    The covering radius ``r`` is the largest distance from a point of the cloud to its nearest chosen point (the
    Hausdorff distance between the cloud and the sample; 0 when every point is chosen). It bounds what the sample
    gives up: the Vietoris-Rips diagrams of the sample are within bottleneck distance ``2 r`` of the cloud's, in
    every homology dimension (``d_GH <= r`` and the stability of Rips persistence, Chazal et al. 2009), and the
    greedy sample's ``r`` is at most twice the smallest covering radius of any ``n`` points (Gonzalez 1985).

    Args:
        x: points ``(N, d)``, or a distance matrix ``(N, N)`` with ``distance_matrix=True``, already valid.
        n: how many points, ``1 <= n <= N``.
        generator: source of the random start, on the CPU or on ``x``'s device.
        distance_matrix: whether ``x`` is a distance matrix.

    Returns:
        ``(indices, radius)``: ``(n,)`` int64 indices in the order chosen and a float64 0-d tensor, both on ``x``'s
        device (reading the radius is the caller's one host synchronisation).

    References:
        Gonzalez, TCS 38, 1985; Chazal, Cohen-Steiner, Guibas, Memoli, Oudot, "Gromov-Hausdorff stable signatures
        for shapes using persistence", Computer Graphics Forum 28(5), 2009.

    Example:
        >>> idx, r = farthest_point_cover(torch.tensor([[0.0], [1.0], [10.0], [3.0], [6.0]]), 3)
        >>> idx.tolist(), r.item()
        ([0, 2, 4], 3.0)
    """
    n_total = x.shape[0]
    if generator is None:
        start = torch.zeros(1, dtype=torch.long, device=x.device)
    else:
        start = torch.randint(n_total, (1,), generator=generator, device=generator_device(generator)).to(x.device)
    chosen = torch.empty(n, dtype=torch.long, device=x.device)
    chosen[:1] = start
    x64 = None if distance_matrix else x.to(torch.float64)

    def dist_to(i: torch.Tensor) -> torch.Tensor:  # i: a (1,) index tensor on the device
        if x64 is None:
            return x.index_select(0, i).to(torch.float64).reshape(-1)
        return (x64 - x64.index_select(0, i)).pow_(2).sum(dim=1)  # squared: same argmax

    min_d = dist_to(start)
    for k in range(1, n):
        nxt = torch.argmax(min_d).reshape(1)
        chosen[k : k + 1] = nxt
        min_d = torch.minimum(min_d, dist_to(nxt))
    radius = min_d.max()
    return chosen, radius if x64 is None else radius.sqrt()


def _stratified(n_total: int, n: int, labels: Any, generator: torch.Generator | None, balanced: bool) -> torch.Tensor:
    if labels is None:
        raise ValueError("Expected `labels` for method='stratified' but got None.")
    lab = as_tensor(labels, "labels").reshape(-1).cpu()
    if lab.shape[0] != n_total:
        raise ValueError(f"Expected one label per point ({n_total}) but got {lab.shape[0]} labels.")
    if lab.is_floating_point() and not bool((lab == lab.round()).all()):
        raise ValueError("Expected integer class labels for method='stratified'.")
    classes, counts = torch.unique(lab, return_counts=True)
    counts_np = counts.numpy().astype(np.int64)
    take = _allocate(counts_np, min(n, n_total), balanced)
    chosen = []
    for c, k in zip(classes.tolist(), take.tolist(), strict=False):
        if k == 0:
            continue
        members = torch.nonzero(lab == c).reshape(-1)
        perm = torch.randperm(len(members), generator=generator, device=generator_device(generator))[:k]
        chosen.append(members[perm.cpu()])
    return torch.cat(chosen).sort().values


def _allocate(counts: np.ndarray, n: int, balanced: bool) -> np.ndarray:
    """How many points to take from each class: proportional (largest remainder) or balanced (water filling)."""
    if balanced:
        take = np.zeros_like(counts)
        remaining = n
        while remaining > 0:
            open_ = np.nonzero(take < counts)[0]
            share = max(remaining // len(open_), 1)
            for i in open_:
                add = min(share, counts[i] - take[i], remaining)
                take[i] += add
                remaining -= add
                if remaining == 0:
                    break
        return take
    exact = counts * n / counts.sum()
    take = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - take), kind="stable")
    take[order[: n - int(take.sum())]] += 1
    return np.minimum(take, counts)
