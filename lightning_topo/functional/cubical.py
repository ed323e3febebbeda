"""Cubical persistence of a single sample's feature map, and Suresh et al.'s Betti numbers and complexity.

Suresh et al. read each image's ``(C, H, W)`` feature map as a 3-D grayscale volume and compute the persistence of
its sublevel-set filtration with CubicalRipser (``cripser.computePH``), then count the bars alive at a threshold
(:func:`cubical_betti`) and sum them over the homology dimensions (:func:`topological_complexity`, averaged over
images). :func:`normalize_volumes` puts the volumes of different layers on one scale, so that one threshold means
the same thing at every depth.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, Literal, get_args

import numpy as np
import torch

from lightning_topo._warnings import TopologyWarning
from lightning_topo.diagrams import PersistenceDiagrams
from lightning_topo.functional._checks import as_tensor, check_choice, check_diagrams

__all__ = [
    "CubicalBackend",
    "CubicalConstruction",
    "cubical_betti",
    "cubical_persistence",
    "normalize_volumes",
    "topological_complexity",
]

CubicalConstruction = Literal["vertex", "top"]
"""How the array's values become a cubical filtration (see :func:`cubical_persistence`)."""
CubicalBackend = Literal["auto", "cripser", "gudhi"]
"""Which library computes the persistence: ``"auto"`` is CubicalRipser when installed, else GUDHI."""

_INSTALL = 'pip install "lightning-topo[cubical]" (or pip install cripser)'


def cubical_persistence(
    volume: Any,
    maxdim: int | None = None,
    *,
    construction: CubicalConstruction = "vertex",
    backend: CubicalBackend = "auto",
) -> PersistenceDiagrams:
    """Persistence of the sublevel-set filtration of a 1-, 2- or 3-D array on its voxel grid.

    Two cubical complexes can carry an array's values, and they give different diagrams:

    - ``construction="vertex"`` (the V-construction, default): every value is a vertex of the grid and a cube enters
      with its largest vertex. Neighbours along an axis are joined by an edge (6-connectivity of the sublevel sets
      in 3-D). This is CubicalRipser's ``computePH``, hence the complex of Suresh et al. (who call
      ``cripser.computePH(vol, maxdim=2, location="birth")``), and GUDHI's ``CubicalComplex(vertices=...)``.
    - ``construction="top"`` (the T-construction): every value is a top-dimensional cell (pixel, voxel) and a face
      enters with its lowest cofacet, so voxels sharing a corner touch (26-connectivity). GUDHI's
      ``CubicalComplex(top_dimensional_cells=...)`` and CubicalRipser's ``tcripser``.

    Both libraries give identical diagrams for the same construction (the same pairs, as float64); CubicalRipser
    is 4-10x faster (``benchmarks/RESULTS.md`` section 10) and is used when installed. Suresh et al. transpose a
    feature map to ``(W, H, C)`` first; neither the homology nor the cost depends on the axis order. Essential
    classes have ``death = inf`` (one, in H0: a grid is connected); zero-length bars are dropped (CubicalRipser
    drops them too, so Suresh et al.'s Betti numbers never counted them).

    Args:
        volume: array or tensor with 1 to 3 dimensions (any device; it is copied to the CPU as float64).
        maxdim: highest homology dimension (default ``volume.ndim - 1``, the highest that can be non-zero).
        construction: ``"vertex"`` or ``"top"``, see above.
        backend: ``"auto"`` (CubicalRipser when installed, else GUDHI with a warning), ``"cripser"`` or
            ``"gudhi"`` (the reference).

    Returns:
        :class:`~lightning_topo.PersistenceDiagrams` with ``maxdim + 1`` dimensions.

    Raises:
        ValueError: for an empty volume, more than 3 dimensions, NaN/Inf values, a bad ``maxdim``, ``construction``
            or ``backend``.
        ImportError: when the library asked for (or, for ``"auto"``, both) is not installed.

    References:
        Suresh, Das, Abrol, Dutta Roy, "On characterizing the evolution of embedding space of neural networks using
        algebraic topology", Pattern Recognition Letters 2024, arXiv:2311.04592; Kaji, Sudo, Ahara, "Cubical
        Ripser: software for computing persistent homology of image and volume data", arXiv:2005.12692; Wagner,
        Chen, Vucini, "Efficient computation of persistent homology for cubical data", 2012.

    Example:
        >>> ring = torch.ones(9, 9)
        >>> ring[2:7, 2:7] = 0.0
        >>> ring[4, 4] = 1.0
        >>> cubical_persistence(ring)[1].tolist()
        [[0.0, 1.0]]
        >>> diagonal = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # two minima touching at a corner
        >>> cubical_persistence(diagonal)[0].tolist(), cubical_persistence(diagonal, construction="top")[0].tolist()
        ([[0.0, 1.0], [0.0, inf]], [[0.0, inf]])
    """
    arr = as_tensor(volume, "volume").detach().to("cpu", torch.float64).numpy()
    if arr.ndim < 1 or arr.ndim > 3 or arr.size == 0:
        raise ValueError(f"Expected a non-empty 1-D, 2-D or 3-D volume but got shape {arr.shape}.")
    if not np.isfinite(arr).all():
        raise ValueError("Expected `volume` to hold only finite values.")
    if maxdim is None:
        maxdim = arr.ndim - 1
    if isinstance(maxdim, bool) or not isinstance(maxdim, int | np.integer) or not 0 <= maxdim <= arr.ndim:
        raise ValueError(f"Expected `maxdim` to be an integer in [0, {arr.ndim}] but got {maxdim!r}.")
    check_choice("construction", construction, get_args(CubicalConstruction))
    check_choice("backend", backend, get_args(CubicalBackend))
    library = _resolve_backend(backend)
    arr = np.ascontiguousarray(arr)
    compute = _cripser if library == "cripser" else _gudhi
    dgms = compute(arr, int(maxdim), construction)
    return PersistenceDiagrams([d[d[:, 1] > d[:, 0]] for d in dgms])


def _resolve_backend(backend: str) -> str:
    if backend in ("auto", "cripser"):
        try:
            import cripser  # noqa: F401
        except ImportError as err:
            if backend == "cripser":
                raise ImportError(f"cubical_persistence(backend='cripser') needs CubicalRipser: {_INSTALL}.") from err
        else:
            return "cripser"
    try:
        import gudhi  # noqa: F401
    except ImportError as err:
        needs = "GUDHI: pip install gudhi" if backend == "gudhi" else f"CubicalRipser or GUDHI: {_INSTALL}"
        raise ImportError(f"cubical_persistence(backend={backend!r}) needs {needs}.") from err
    if backend == "auto":
        warnings.warn(
            f"CubicalRipser is not installed: cubical_persistence uses GUDHI (the same diagrams, 4-10x slower). "
            f"For speed: {_INSTALL}.",
            TopologyWarning,
            stacklevel=3,
        )
    return "gudhi"


def _cripser(arr: np.ndarray, maxdim: int, construction: str) -> list[np.ndarray]:
    import cripser

    compute = cripser.computePH if construction == "vertex" else cripser.computePH_T
    # rows: dim, birth, death, then birth and death voxel coordinates; essential classes die at DBL_MAX
    ph = np.asarray(compute(arr, maxdim=maxdim), dtype=np.float64).reshape(-1, 9)
    pairs = ph[:, 1:3].copy()
    pairs[pairs[:, 1] >= np.finfo(np.float64).max, 1] = math.inf
    dims = ph[:, 0].astype(np.int64)
    return [pairs[dims == q] for q in range(maxdim + 1)]


def _gudhi(arr: np.ndarray, maxdim: int, construction: str) -> list[np.ndarray]:
    import gudhi

    if construction == "vertex":
        complex_ = gudhi.CubicalComplex(vertices=arr)
    else:
        complex_ = gudhi.CubicalComplex(top_dimensional_cells=arr)
    complex_.compute_persistence(homology_coeff_field=2, min_persistence=0.0)
    return [
        np.asarray(complex_.persistence_intervals_in_dimension(q), dtype=np.float64).reshape(-1, 2)
        for q in range(maxdim + 1)
    ]


def cubical_betti(diagrams: PersistenceDiagrams | Any, threshold: float | Sequence[float] | np.ndarray) -> np.ndarray:
    """Suresh et al.'s Betti numbers at a threshold: ``beta_q(t) = #{bars (b, d) of dimension q : b <= t <= d}``.

    The interval is **closed** and essential bars count, as in Suresh et al.'s code (their ``betti`` after Dey &
    Wang, with CubicalRipser's essential class dying at ``DBL_MAX``). :func:`~lightning_topo.functional.betti_numbers`
    counts the half-open ``b <= t < d`` instead (GUDHI's and giotto-tda's Betti curves): the two differ only at a
    threshold equal to a death value, where this one still counts the dying bar.

    Args:
        diagrams: persistence diagrams, or a volume whose :func:`cubical_persistence` (with its defaults) is taken.
        threshold: a filtration value, or a 1-D array of them.

    Returns:
        ``(maxdim + 1,)`` int64 array for one threshold, ``(maxdim + 1, len(threshold))`` for an array.

    Raises:
        ValueError: for a threshold that is not finite or not a number or 1-D array.

    References:
        Suresh, Das, Abrol, Dutta Roy, arXiv:2311.04592 (code: ``Toplogy_functions.betti``); Dey & Wang,
        "Computational Topology for Data Analysis", 2022.

    Example:
        >>> from lightning_topo.functional import betti_numbers
        >>> d = PersistenceDiagrams([[[0.0, 1.0], [0.0, float("inf")]], [[0.5, 0.75]]])
        >>> cubical_betti(d, 0.75).tolist(), betti_numbers(d, 0.75).tolist()
        ([2, 1], [2, 0])
        >>> cubical_betti(d, [0.0, 1.0, 2.0]).tolist()
        [[2, 2, 1], [0, 0, 0]]
    """
    if not isinstance(diagrams, PersistenceDiagrams):
        diagrams = cubical_persistence(diagrams)
    check_diagrams(diagrams)
    t = _thresholds(threshold)
    counts = np.zeros((len(diagrams), t.size), dtype=np.int64)
    for q, dgm in enumerate(diagrams):
        born = np.searchsorted(np.sort(dgm[:, 0]), t, side="right")  # b <= t
        dead = np.searchsorted(np.sort(dgm[:, 1]), t, side="left")  # d < t
        counts[q] = born - dead
    return counts[:, 0] if np.ndim(threshold) == 0 else counts


def topological_complexity(
    diagrams: PersistenceDiagrams | Sequence[PersistenceDiagrams], threshold: float | Sequence[float] | np.ndarray
) -> float | np.ndarray:
    """Suresh et al.'s topological complexity ``Omega(t) = sum_q beta_q(t)``, averaged over images.

    ``beta_q`` is :func:`cubical_betti` (closed intervals, essential bars counted); the sum runs over every
    dimension the diagrams hold (``beta_0 + beta_1 + beta_2`` for 3-D volumes). This is Naitzat et al.'s
    ``omega`` at one scale. Its profile over depth goes into
    :func:`~lightning_topo.functional.topological_complexity_decay`.

    Args:
        diagrams: the cubical diagrams of one image, or a sequence of them (one per image of a layer).
        threshold: a filtration value, or a 1-D array of them.

    Returns:
        The mean over images: a float for one threshold, a ``(len(threshold),)`` float64 array for an array.

    Raises:
        ValueError: for an empty sequence or anything that is not ``PersistenceDiagrams``.

    References:
        Suresh, Das, Abrol, Dutta Roy, arXiv:2311.04592; Naitzat, Zhitnikov, Lim, "Topology of deep neural
        networks", JMLR 21 (2020), Eq. 2.1.

    Example:
        >>> a = PersistenceDiagrams([[[0.0, float("inf")]], [[0.2, 0.4]]])
        >>> b = PersistenceDiagrams([[[0.0, 0.5], [0.0, float("inf")]], []])
        >>> topological_complexity([a, b], 0.3)
        2.0
    """
    items = [diagrams] if isinstance(diagrams, PersistenceDiagrams) else list(diagrams)
    if not items:
        raise ValueError("Expected at least one `PersistenceDiagrams` but got an empty sequence.")
    t = _thresholds(threshold)
    totals = np.stack([cubical_betti(check_diagrams(d), t).sum(axis=0) for d in items])
    mean = totals.astype(np.float64).mean(axis=0)
    return float(mean[0]) if np.ndim(threshold) == 0 else mean


def normalize_volumes(volumes: Any, quantile: float = 0.99) -> torch.Tensor:
    """Divide one layer's feature maps by one robust scale of that layer, so thresholds compare across layers.

    The scale is the ``quantile`` of ``|x|`` over every value of every volume given (nearest rank: the smallest
    value with at least that fraction of the values at or below it); a layer whose scale is 0 (all zero) is
    returned unchanged. Dividing by a positive number keeps the order of the values, so each image's diagrams are
    only rescaled (births and deaths divided by the scale) and its Betti numbers at threshold ``t`` are the raw
    ones at ``t * scale``. One scale per layer, shared by its images, keeps the differences between images of a
    layer; the quantile (not the maximum) ignores a few outlying activations. After it, the activations of a
    ReLU layer lie in ``[0, 1]`` but for the top ``1 - quantile`` of them, at every depth, and a threshold ``t``
    reads "the sublevel set below ``t`` times this layer's high activation level".

    Suresh et al. threshold raw activations (``eta`` in ``0 .. 1.75`` on an ImageNet ResNet-18), whose scale
    changes with depth, training and the architecture: a threshold that cuts layer 1's maps in the middle can lie
    above every value of layer 4.

    Args:
        volumes: ``(k, ...)`` tensor or array: the ``k`` images' feature maps of one layer (any device).
        quantile: the fraction in ``(0, 1]`` (1: the largest absolute value).

    Returns:
        A float tensor on the same device (float64 for float64 input, else float32).

    Raises:
        ValueError: for an empty input, NaN/Inf values or a quantile outside ``(0, 1]``.

    Example:
        >>> maps = torch.tensor([[0.0, 1.0, 2.0, 4.0], [0.0, 0.5, 1.0, 2.0]])
        >>> normalize_volumes(maps, quantile=0.75).tolist()
        [[0.0, 0.5, 1.0, 2.0], [0.0, 0.25, 0.5, 1.0]]
    """
    x = as_tensor(volumes, "volumes").detach()
    if x.numel() == 0:
        raise ValueError(f"Expected a non-empty `volumes` but got shape {tuple(x.shape)}.")
    if not (isinstance(quantile, int | float) and 0 < quantile <= 1):
        raise ValueError(f"Expected `quantile` to be a number in (0, 1] but got {quantile!r}.")
    if x.dtype != torch.float64:
        x = x.to(torch.float32)
    if not bool(torch.isfinite(x).all()):
        raise ValueError("Expected `volumes` to hold only finite values.")
    flat = x.abs().reshape(-1)
    rank = max(1, math.ceil(quantile * flat.numel()))
    scale = float(torch.kthvalue(flat, rank).values)
    return x / scale if scale > 0 else x.clone()


def _thresholds(threshold: Any) -> np.ndarray:
    try:
        t = np.asarray(threshold, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"Expected `threshold` to be a number or a 1-D array but got {threshold!r}.") from err
    if t.ndim > 1 or t.size == 0 or not np.isfinite(t).all():
        raise ValueError(f"Expected `threshold` to be a finite number or a non-empty 1-D array but got {threshold!r}.")
    return t.reshape(-1)
