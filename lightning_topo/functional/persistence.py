"""Vietoris-Rips persistence: giotto-ph on a precomputed distance matrix, or a minimum spanning tree for H0."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch

from lightning_topo.diagrams import PersistenceDiagrams
from lightning_topo.functional._checks import check_choice, check_distance_matrix, check_maxdim
from lightning_topo.functional.distances import Metric, pairwise_distances

__all__ = [
    "h0_mst_deaths",
    "h1_reach",
    "horizon_applies",
    "insertion_radii",
    "rips_below_horizon",
    "rips_from_distances",
    "rips_horizon",
    "sparse_rips_edges",
    "vietoris_rips",
]


def vietoris_rips(
    x: Any,
    maxdim: int = 1,
    *,
    distance_matrix: bool = False,
    metric: Metric = "euclidean",
    thresh: float = math.inf,
    coeff: int = 2,
    n_threads: int = -1,
    collapse_edges: bool = False,
    h0: Literal["auto", "mst", "ripser"] = "auto",
    backend: Literal["giotto", "gudhi"] = "giotto",
    sparse: float | None = None,
) -> PersistenceDiagrams:
    """Vietoris-Rips persistence diagrams of a point cloud or a distance matrix.

    Distances are computed on the input's device in float64 (:func:`pairwise_distances`); only the
    ``n x n`` matrix crosses to the CPU, where giotto-ph's ``ripser_parallel`` runs on it. giotto-ph
    stops the filtration at the enclosing radius when no threshold is given (beyond it the complex is a
    cone and has no homology), so the result equals the full filtration's. With ``maxdim=0`` (and
    ``h0="auto"``) the diagram comes from a minimum spanning tree on the device instead: the finite H0
    deaths of a Rips filtration are exactly the MST edge lengths, all births are 0.

    With ``maxdim=1`` (coefficients in Z/2, no threshold, at least 64 points) the H1 reduction stops earlier,
    just above :func:`rips_horizon`: past it no H1 class is born, so the classes born before it that die by the
    cut are all there is. When one is still alive at the cut (a loop much larger than the gaps between points:
    a circle, a torus), the whole filtration runs after all. The diagrams are the same either way, pair for pair;
    on representation-like clouds of 512 points the reduction takes 0.6-0.9 of the time (``benchmarks/RESULTS.md``,
    section 6).

    Infinite bars: with ``thresh=inf`` the only essential bar is H0's ``[0, inf)``; with a finite
    ``thresh`` every class still alive at ``thresh`` is essential. Zero-length bars are dropped.

    Args:
        x: points ``(n, d)`` or, with ``distance_matrix=True``, a square distance matrix.
        maxdim: highest homology dimension, 0, 1 or 2 (H2 is costly: seconds at 500 points).
        distance_matrix: whether ``x`` is a distance matrix.
        metric: distance for point input, ``"euclidean"`` or ``"cosine"``.
        thresh: stop the filtration at this scale.
        coeff: prime field of coefficients.
        n_threads: giotto-ph threads for dimensions >= 1 (``-1``: all cores). Measured on 2 cores: no
            reliable gain for H1, 1.7-1.9x for H2; the callback parallelises across layers instead.
        collapse_edges: giotto-ph's edge collapse before the reduction. Off by default: measured 10x to
            100x slower on dense embedding-like clouds (see ``benchmarks/RESULTS.md``).
        h0: ``"mst"`` computes H0 with the spanning tree also when ``maxdim >= 1``; ``"ripser"`` always
            uses giotto-ph; ``"auto"`` uses the tree when ``maxdim == 0``.
        backend: ``"giotto"`` (giotto-ph, a dependency) or ``"gudhi"`` (GUDHI's Ripser fork, when GUDHI is
            installed: measured 10-20% faster on manifold-like clouds of 512-1024 points, see
            ``benchmarks/RESULTS.md``; ``n_threads`` and ``collapse_edges`` do not apply).
        sparse: compute the dimensions >= 1 from Sheehy's sparse Rips filtration with this approximation factor
            ``c > 1`` (:func:`sparse_rips_edges`) instead of the full one: each bar is within a factor ``c`` of an
            exact bar in scale (the log-scale diagrams are within bottleneck distance ``log c``), or short (death
            below ``c^2`` times birth). 10-40x faster at 2,048-4,096 points of low intrinsic dimension; less gain in
            high dimension. H0 stays exact (the spanning tree, unless ``h0="ripser"``). ``None``: exact.

    Returns:
        :class:`~lightning_topo.PersistenceDiagrams` with ``maxdim + 1`` dimensions.

    Raises:
        ValueError: for bad points or distance matrices, fewer than 3 points, or bad options.

    References:
        Bauer, "Ripser: efficient computation of Vietoris-Rips persistence barcodes", JACT 2021,
        doi:10.1007/s41468-021-00071-5; Pérez, Hess, Tauzin, "giotto-ph", arXiv:2107.05412.

    Example:
        >>> t = torch.linspace(0, 2 * math.pi, 33)[:-1]
        >>> circle = torch.stack([t.cos(), t.sin()], dim=1)
        >>> dgms = vietoris_rips(circle, maxdim=1)
        >>> dgms.n_essential(0), len(dgms[1])
        (1, 1)
    """
    maxdim = check_maxdim(maxdim)
    check_choice("h0", h0, ("auto", "mst", "ripser"))
    check_choice("backend", backend, ("giotto", "gudhi"))
    if sparse is not None and not (sparse > 1 and math.isfinite(sparse)):
        raise ValueError(f"Expected `sparse` to be a factor > 1 or None but got {sparse!r}.")
    if sparse is not None and backend != "giotto":
        raise ValueError("Expected backend='giotto' with `sparse` (GUDHI's Ripser takes no sparse matrix here).")
    if not thresh > 0:
        raise ValueError(f"Expected `thresh` to be positive but got {thresh!r}.")
    d = check_distance_matrix(x).to(torch.float64) if distance_matrix else pairwise_distances(x, metric=metric)
    if d.shape[0] < 3:
        raise ValueError(f"Expected at least 3 points but got {d.shape[0]}.")
    return rips_from_distances(
        d,
        maxdim,
        thresh=thresh,
        coeff=coeff,
        n_threads=n_threads,
        collapse_edges=collapse_edges,
        h0=h0,
        backend=backend,
        sparse=sparse,
    )


def rips_from_distances(
    d: torch.Tensor,
    maxdim: int,
    *,
    thresh: float = math.inf,
    coeff: int = 2,
    n_threads: int = -1,
    collapse_edges: bool = False,
    h0: Literal["auto", "mst", "ripser"] = "auto",
    backend: Literal["giotto", "gudhi"] = "giotto",
    sparse: float | None = None,
    horizon: bool = True,
) -> PersistenceDiagrams:
    """:func:`vietoris_rips` on a distance matrix that is already known to be valid (no checks).

    ``horizon=False`` runs the whole H1 filtration without trying :func:`rips_below_horizon` first (for a caller that
    has just tried it)."""
    # a sparse filtration's H0 would be approximate: "auto" takes the exact tree instead ("ripser": the caller's
    # choice, e.g. the engine, which has its own tree)
    use_mst = h0 == "mst" or (h0 == "auto" and (maxdim == 0 or sparse is not None))
    dgms: list[np.ndarray] = []
    if maxdim >= 1 or not use_mst:
        d_np = d.detach().cpu().numpy()
        if backend == "gudhi":
            dgms = _gudhi_rips(d_np, maxdim, thresh, coeff)
        elif sparse is not None:
            dgms = _sparse_rips(d_np, maxdim, sparse, thresh, coeff, n_threads)
        else:
            cut = None
            if horizon and horizon_applies(maxdim, thresh, coeff=coeff, collapse_edges=collapse_edges):
                d32 = d_np.astype(np.float32)
                # giotto-ph reads the upper triangle and, with a nonzero diagonal, takes it as vertex births: the
                # certificate must read what it reads (a user's matrix may be symmetric only within a tolerance)
                if not np.diagonal(d32).any():
                    upper = np.triu(d32, 1)
                    cut, _ = rips_below_horizon(upper + upper.T, n_threads)
            if cut is not None:
                dgms = cut
            else:
                from gph import ripser_parallel

                res = ripser_parallel(
                    d_np,
                    maxdim=maxdim,
                    thresh=thresh,
                    coeff=coeff,
                    metric="precomputed",
                    n_threads=n_threads,
                    collapse_edges=collapse_edges,
                )
                dgms = [np.asarray(g, dtype=np.float64).reshape(-1, 2) for g in res["dgms"]]
        dgms = [g[g[:, 1] > g[:, 0]] for g in dgms]
    if use_mst:
        dgms = [_h0_diagram(h0_mst_deaths(d).cpu().numpy(), thresh), *dgms[1:]]
    return PersistenceDiagrams(dgms)


def _h0_diagram(deaths: np.ndarray, thresh: float = math.inf) -> np.ndarray:
    """The H0 diagram of a Rips filtration from a spanning tree's edge lengths: every component born at 0, dying at
    its tree edge (zero-length ones dropped), one essential class plus one per edge beyond ``thresh``."""
    finite = deaths[(deaths > 0) & (deaths <= thresh)]
    n_essential = 1 + int((deaths > thresh).sum())
    return np.concatenate(
        [np.stack([np.zeros_like(finite), finite], axis=1), np.tile([0.0, math.inf], (n_essential, 1))]
    ).astype(np.float64)


def horizon_applies(
    maxdim: int,
    thresh: float,
    *,
    coeff: int = 2,
    backend: str = "giotto",
    sparse: float | None = None,
    collapse_edges: bool = False,
) -> bool:
    """Whether :func:`rips_below_horizon` may replace the whole filtration: H0 and H1 only, Z/2, giotto-ph on the
    full matrix, no threshold (the lune argument is about H1 births, and the cut is giotto-ph's threshold)."""
    return (
        maxdim == 1
        and coeff == 2
        and backend == "giotto"
        and sparse is None
        and thresh == math.inf
        and not (collapse_edges)
    )


def _sparse_rips(
    d: np.ndarray, maxdim: int, factor: float, thresh: float, coeff: int, n_threads: int
) -> list[np.ndarray]:
    from gph import ripser_parallel
    from scipy.sparse import coo_matrix

    rows, cols, values = sparse_rips_edges(d, factor)
    n = d.shape[0]
    matrix = coo_matrix((values.astype(np.float32), (rows, cols)), shape=(n, n))
    res = ripser_parallel(matrix, maxdim=maxdim, thresh=thresh, coeff=coeff, metric="precomputed", n_threads=n_threads)
    return [np.asarray(g, dtype=np.float64).reshape(-1, 2) for g in res["dgms"]]


def insertion_radii(d: np.ndarray) -> np.ndarray:
    """The insertion radius of every point in the greedy (farthest-point) order from point 0: its distance to the
    points chosen before it (``inf`` for point 0). ``O(n^2)``, two vectorised steps per point.

    Example:
        >>> d = np.array([[0.0, 1.0, 10.0], [1.0, 0.0, 9.0], [10.0, 9.0, 0.0]])
        >>> insertion_radii(d).tolist()
        [inf, 1.0, 10.0]
    """
    n = d.shape[0]
    radii = np.empty(n, dtype=np.float64)
    radii[0] = np.inf
    if n == 1:
        return radii
    best = d[0].astype(np.float64)  # distance to the chosen points (0 for the chosen ones themselves)
    best[0] = -1.0  # never chosen again
    for _ in range(n - 1):
        j = int(best.argmax())
        radii[j] = best[j]
        np.minimum(best, d[j], out=best)
        best[j] = -1.0
    return radii


def sparse_rips_edges(d: Any, factor: float, rows_per_block: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The edges of Sheehy's sparse Rips filtration of a distance matrix, with approximation factor ``c > 1``.

    The points are ordered greedily (:func:`insertion_radii`: each point's insertion radius ``lambda``). With
    ``p = c / (c - 1) min(lambda_i, lambda_j)``, an edge keeps its length ``d`` when ``d <= 2 p``, enters later at
    ``2 (d - p)`` when ``2 p < d <= (c + 1) p``, and never enters beyond (nor once its later point is covered by the
    earlier ones: ``d > c / (c - 1) (lambda_i + lambda_j)``). The persistence diagrams of the resulting filtration
    are multiplicatively ``c``-interleaved with the Vietoris-Rips diagrams (Cavanna, Jahanseir, Sheehy): every bar
    matches an exact bar within a factor ``c`` at both ends, or is short, and the number of edges kept grows like
    ``n`` times a constant of the intrinsic dimension, not like ``n^2``. The pairs are scanned once, in blocks of
    rows of the upper triangle.

    Args:
        d: square distance matrix (NumPy array or tensor), exactly symmetric.
        factor: the approximation factor ``c > 1`` (the smaller, the more edges and the closer to exact).
        rows_per_block: rows of the upper triangle handled at once.

    Returns:
        ``(rows, cols, values)`` of the kept edges, ``rows < cols``; ``values`` are the edges' (possibly later)
        entry scales, float64.

    References:
        Sheehy, "Linear-size approximations to the Vietoris-Rips filtration", DCG 49, 2013; Cavanna, Jahanseir,
        Sheehy, "A geometric perspective on sparse filtrations", CCCG 2015, arXiv:1506.03797.

    Example:
        >>> d = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [2.0, 1.0, 0.0]])
        >>> rows, cols, values = sparse_rips_edges(d, 2.0)
        >>> sorted(zip(rows.tolist(), cols.tolist(), values.tolist()))
        [(0, 1, 1.0), (0, 2, 2.0), (1, 2, 1.0)]
    """
    if not (factor > 1 and math.isfinite(factor)):
        raise ValueError(f"Expected the approximation factor to be > 1 but got {factor!r}.")
    dm = d.detach().cpu().numpy() if isinstance(d, torch.Tensor) else np.asarray(d)
    n = dm.shape[0]
    radii = insertion_radii(dm)
    e0 = factor / (factor - 1.0)
    # an edge is kept only within (c + 1) p of both ends: a threshold per row finds the few candidates in one
    # comparison per pair, and the exact rule runs on those only
    reach = ((factor + 1.0) * e0 * radii).astype(dm.dtype)
    out_rows, out_cols = [], []
    for start in range(0, n - 1, rows_per_block):
        stop = min(start + rows_per_block, n)
        a, b = np.nonzero(dm[start:stop, start + 1 :] <= reach[start:stop, None])
        upper = b >= a  # the block's columns start at start + 1: keep the strict upper triangle
        out_rows.append(a[upper] + start)
        out_cols.append(b[upper] + start + 1)
    rows, cols = np.concatenate(out_rows), np.concatenate(out_cols)
    values = dm[rows, cols].astype(np.float64)
    lam_i, lam_j = radii[rows], radii[cols]
    p = e0 * np.minimum(lam_i, lam_j)
    keep = (values <= (factor + 1.0) * p) & (values <= e0 * (lam_i + lam_j))
    rows, cols, values, p = rows[keep], cols[keep], values[keep], p[keep]
    values = np.where(values > 2.0 * p, 2.0 * (values - p), values)
    return rows.astype(np.int64), cols.astype(np.int64), values


def _gudhi_rips(d: np.ndarray, maxdim: int, thresh: float, coeff: int) -> list[np.ndarray]:
    try:
        from gudhi.sklearn.rips_persistence import RipsPersistence
    except ImportError as err:
        raise ValueError("backend='gudhi' needs GUDHI >= 3.11: `pip install gudhi`.") from err
    rips = RipsPersistence(
        homology_dimensions=list(range(maxdim + 1)),
        threshold=thresh,
        input_type="full distance matrix",
        homology_coeff_field=coeff,
    )
    return [np.asarray(g, dtype=np.float64).reshape(-1, 2) for g in rips.fit_transform([d])[0]]


def h0_mst_deaths(d: torch.Tensor) -> torch.Tensor:
    """Edge lengths of a minimum spanning tree of a complete graph (Prim, O(n^2), on ``d``'s device).

    These are the H0 death times of the Vietoris-Rips filtration of the distance matrix ``d``. On an accelerator
    the loop makes no host synchronisation: the vertex added at each step stays a device tensor (indexing with
    it through ``index_select``, never ``d[j]``, which would turn it into a Python int with a sync), so the tree
    costs ``n`` short kernel sequences. On the CPU the same loop runs in NumPy (3-10x faster than torch's
    per-call overhead allows).

    Args:
        d: square distance matrix.

    Returns:
        ``(n - 1,)`` tensor of edge lengths, in the order Prim adds them.

    Example:
        >>> d = torch.tensor([[0.0, 1.0, 4.0], [1.0, 0.0, 2.0], [4.0, 2.0, 0.0]])
        >>> h0_mst_deaths(d).tolist()
        [1.0, 2.0]
    """
    n = d.shape[0]
    if n < 2:
        return d.new_zeros(0)
    if d.device.type == "cpu":
        return torch.from_numpy(_prim(d.detach().numpy()))
    in_tree = torch.zeros(n, dtype=torch.bool, device=d.device)
    in_tree[0] = True
    best = d[0].clone()
    best[0] = math.inf
    deaths = torch.empty(n - 1, dtype=d.dtype, device=d.device)
    for k in range(n - 1):
        length, j = torch.min(best, dim=0)
        j = j.reshape(1)
        deaths[k : k + 1] = length
        in_tree.index_fill_(0, j, True)
        best = torch.minimum(best, d.index_select(0, j).reshape(-1)).masked_fill_(in_tree, math.inf)
    return deaths


def _prim(d: np.ndarray) -> np.ndarray:
    return _prim_tree(d, edges=False)[0]


def _prim_tree(d: np.ndarray, edges: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prim's tree on a dense matrix: its edge lengths and, with ``edges``, their ends ``(parents, children)``."""
    n = d.shape[0]
    best = d[0].copy()  # each vertex's distance to the tree
    fence = np.full(n, -np.inf, dtype=d.dtype)  # +inf for vertices in the tree: one maximum keeps them out
    fence[0] = best[0] = np.inf
    deaths = np.empty(n - 1, dtype=d.dtype)
    children = np.empty(n - 1, dtype=np.intp)
    for k in range(n - 1):
        j = int(best.argmin())
        deaths[k], children[k] = best[j], j
        fence[j] = np.inf
        np.minimum(best, d[j], out=best)
        np.maximum(best, fence, out=best)  # (a boolean mask assignment per step cost 2.5x the whole loop)
    if not edges:
        return deaths, children, children
    # each child's parent: its nearest vertex among those added before it, read in the column the loop read (one pass
    # over the matrix, not a mask per step)
    rank = np.empty(n, dtype=np.intp)
    rank[0], rank[children] = 0, np.arange(1, n)
    earlier = rank[None, :] < np.arange(1, n)[:, None]
    parents = np.where(earlier, d[:, children].T, np.inf).argmin(axis=1)
    return deaths, parents, children


HORIZON_MARGIN = 1.1
"""The H1 reduction stops at this multiple of :func:`rips_horizon` (the deaths of the classes born below it were
within 1.0-1.2x of it on representation-like clouds); a class still alive there makes it run again further."""

HORIZON_RETRY = 1.1
"""When a class is still alive at the first cut, one more is tried this much further, then the whole filtration."""

HORIZON_SPARSE = 0.35
"""Below the cut, a filtration with at most this fraction of the pairs goes to giotto-ph as a sparse matrix (measured
10-30% faster than its dense matrix there, slower above)."""

HORIZON_GAIN = 0.9
"""The horizon is used only when this much below the enclosing radius (where giotto-ph stops anyway)."""

HORIZON_MIN_POINTS = 64
"""Below this many points the full reduction takes under a millisecond: no horizon."""


def rips_horizon(d: np.ndarray, tree: tuple[np.ndarray, np.ndarray] | None = None, witnesses: int = 4) -> float:
    """A scale beyond which the Vietoris-Rips filtration of ``d`` gives birth to no H1 class of positive persistence.

    It is the length of the longest edge that is neither in a minimum spanning tree nor the strictly longest edge
    of a triangle (an edge ``uv`` with an empty lune: no ``w`` has ``max(d(u, w), d(v, w)) < d(u, v)``). Every
    longer edge ``uv`` outside the tree has such a ``w``, and the triangle ``uvw`` turns ``uv`` into the shorter
    ``uw + wv`` in homology at the scale ``uv`` enters; a tree edge joins two components and closes no cycle. So
    every 1-cycle at a larger scale is homologous to one of edges up to the horizon, and a filtration stopped at
    any ``t`` above it has every H1 bar of the full one: those that die by ``t`` exactly, the others as essential
    (which then shows that ``t`` was too early for deaths).

    Witnesses are tried among the ``witnesses`` nearest neighbours of each end first (the two nearest over the whole
    matrix, which leaves a few percent of the pairs; the others on those), then every point for the pairs left,
    longest first, until the first with an empty lune: 2-5 ms at 512 points, against 30-70 ms for the reduction.

    Args:
        d: square distance matrix (NumPy), exactly symmetric with a zero diagonal; compared as given, so pass the
            values the persistence call will see (float32 for giotto-ph).
        tree: ``(parents, children)`` of a minimum spanning tree of ``d`` (computed when ``None``).
        witnesses: nearest neighbours tried as witnesses in the vectorised passes.

    Returns:
        The horizon (``0.0`` when every edge outside the tree has a witness).

    References:
        Toussaint, "The relative neighbourhood graph of a finite planar set", Pattern Recognition 12, 1980 (empty
        lunes; the minimum spanning tree is a subgraph of that graph).

    Example:
        >>> square = np.array([[0, 1, 2, 1], [1, 0, 1, 2], [2, 1, 0, 1], [1, 2, 1, 0]], dtype=np.float32) ** 0.5
        >>> float(rips_horizon(square))  # a square: its fourth side closes the loop (the diagonals are witnessed)
        1.0
    """
    n = d.shape[0]
    if tree is None:
        _, parents, children = _prim_tree(d)
        tree = (parents, children)
    rows = np.arange(n)
    far = d.copy()
    np.fill_diagonal(far, np.inf)
    near = np.empty((n, max(1, min(witnesses, n - 2))), dtype=np.intp)
    for j in range(near.shape[1]):  # the nearest neighbours one at a time: k argmins beat a partition
        near[:, j] = far.argmin(axis=1)
        far[rows, near[:, j]] = np.inf
    # the two nearest neighbours of each end, over the whole matrix (row u: witnesses near u), leave a few percent
    # of the pairs; the further neighbours are tried on those only
    dense = min(2, near.shape[1])
    open_ = np.ones((n, n), dtype=bool)
    for j in range(dense):
        w = near[:, j]
        open_ &= (d[w] >= d) | (d[rows, w][:, None] >= d)
    open_ &= open_.T
    open_[tree[0], tree[1]] = open_[tree[1], tree[0]] = False
    pairs = np.flatnonzero(open_)  # flat indices u * n + v (a 2-D nonzero costs 6x more)
    iu, iv = np.divmod(pairs, n)
    upper = iu < iv
    iu, iv = iu[upper], iv[upper]
    flat = d.reshape(-1)
    length = flat[pairs[upper]]
    for j in range(dense, near.shape[1]):
        keep = np.ones(len(iu), dtype=bool)
        for a, b in ((iu, iv), (iv, iu)):
            w = near[a, j]
            keep &= (flat[w * n + b] >= length) | (flat[a * n + w] >= length)
        iu, iv, length = iu[keep], iv[keep], length[keep]
    order = np.argsort(-length, kind="stable")
    iu, iv, lengths = iu[order], iv[order], length[order]
    for start in range(0, len(lengths), 64):  # exact, longest first, in chunks: the first empty lune is the horizon
        u, v, length = iu[start : start + 64], iv[start : start + 64], lengths[start : start + 64]
        witnessed = (np.maximum(d[u], d[v]) < length[:, None]).any(axis=1)
        if not witnessed.all():
            return float(length[int(np.argmin(witnessed))])
    return 0.0


def rips_below_horizon(
    d: np.ndarray, n_threads: int, reach: float | None = None
) -> tuple[list[np.ndarray] | None, float]:
    """H0 and H1 of the full filtration of the float32 matrix ``d``, with the reduction stopped above its horizon.

    Args:
        d: the float32 distance matrix giotto-ph will see (zero diagonal, exactly symmetric).
        n_threads: giotto-ph's threads.
        reach: how far past the horizon the cloud's H1 deaths went at an earlier measurement (the largest finite
            death over the horizon, :func:`h1_reach`): the first cut is placed beyond it (times 1.05), so a layer
            whose deaths lie further out, or which has one large loop, does not pay for a cut that fails. Speed
            only: the diagrams are exact whatever it is.

    Returns:
        ``(diagrams, horizon)``: the diagrams are ``None`` when the horizon would save nothing (small clouds; a
        horizon near the enclosing radius) or when a class outlives every cut tried (e.g. one big loop): the caller
        then runs the whole filtration. The horizon is ``0.0`` when it was not computed.
    """
    d = np.asarray(d, dtype=np.float32)  # the values giotto-ph reduces: the certificate must compare the same ones
    n = d.shape[0]
    if n < HORIZON_MIN_POINTS:
        return None, 0.0
    try:
        from gph.modules import gph_ripser
        from scipy.spatial.distance import squareform
    except ImportError:  # another giotto-ph layout: the public call
        return None, 0.0
    deaths, parents, children = _prim_tree(d)
    enclosing = float(d.max(axis=1).min())
    horizon = rips_horizon(d, (parents, children))
    h0 = _h0_diagram(deaths)  # the tree's lengths are the H0 deaths (ripser's own, in the same float32)
    if horizon == 0.0:  # every edge outside the tree is witnessed: no cycle survives its own scale, H1 is empty
        return [h0, np.empty((0, 2))], horizon
    condensed = None
    first = max(HORIZON_MARGIN, 1.05 * reach if reach is not None and math.isfinite(reach) else 0.0) * horizon
    second = min(HORIZON_RETRY * first, HORIZON_GAIN * enclosing)
    for cut in (first, second) if second > first else (first,):
        if not 0 < cut <= HORIZON_GAIN * enclosing:
            break
        below = d <= cut
        if np.count_nonzero(below) <= HORIZON_SPARSE * n * n:  # few edges: giotto-ph's sparse matrix is faster
            rows, cols = (np.ascontiguousarray(i, dtype=np.int64) for i in np.nonzero(np.triu(below, 1)))
            edges = d[rows, cols]  # (the binding reads its arrays as contiguous: nonzero's are strided views)
            res = gph_ripser.rips_dm_sparse(rows, cols, edges, len(edges), n, 2, 1, cut, n_threads, False)
        else:
            condensed = squareform(d, checks=False) if condensed is None else condensed
            res = gph_ripser.rips_dm(condensed, np.zeros(n, dtype=np.float32), 2, 1, cut, n_threads, False)
        h1 = np.asarray(res.births_and_deaths_by_dim()[1], dtype=np.float64).reshape(-1, 2)
        if np.isfinite(h1[:, 1]).all():  # no class alive at the cut: every death is known
            return [h0, h1], horizon
    return None, horizon


def h1_reach(dgms: PersistenceDiagrams | list[np.ndarray], horizon: float) -> float | None:
    """The largest finite H1 death over ``horizon`` (``None`` without a horizon or without finite H1 bars): how far
    past the horizon the reduction had to go, the hint :func:`rips_below_horizon` takes at the next measurement."""
    if not horizon > 0 or len(dgms) < 2:
        return None
    h1 = np.asarray(dgms[1], dtype=np.float64).reshape(-1, 2)
    finite = h1[np.isfinite(h1[:, 1]), 1]
    return float(finite.max() / horizon) if len(finite) else None
