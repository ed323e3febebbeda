"""Summaries of persistence diagrams (docs/methods.md section 5).

Infinite bars, one policy everywhere: Betti numbers and Betti curves count every bar alive at the scale,
essential ones included (so the H0 Betti number of a connected cloud is 1, never 0). Every lifetime-based
summary (total persistence, amplitude, entropy, lifetime statistics) uses the finite bars only: the
essential H0 bar of a Rips filtration has no length, and with a finite threshold the classes still alive
are cut by an arbitrary choice.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from lightning_topo.diagrams import PersistenceDiagrams
from lightning_topo.functional._checks import check_choice, check_diagrams, check_fraction

__all__ = [
    "amplitude",
    "betti_curve",
    "betti_numbers",
    "lifetime_statistics",
    "persistence_entropy",
    "total_persistence",
]


def betti_numbers(diagrams: PersistenceDiagrams, scale: float) -> np.ndarray:
    """Betti numbers at one filtration scale: ``beta_q(t) = #{bars (b, d) of dimension q : b <= t < d}``.

    Args:
        diagrams: persistence diagrams.
        scale: the filtration value ``t``.

    Returns:
        ``(maxdim + 1,)`` int64 array.

    Example:
        >>> d = PersistenceDiagrams([[[0.0, 1.0], [0.0, float("inf")]], [[0.5, 0.75]]])
        >>> betti_numbers(d, 0.6).tolist()
        [2, 1]
    """
    return betti_curve(diagrams, np.asarray([scale], dtype=np.float64))[:, 0]


def betti_curve(diagrams: PersistenceDiagrams, grid: Any) -> np.ndarray:
    """Betti curves sampled on a grid the caller fixes (so layers and epochs share it).

    ``beta_q(t) = #{(b, d) in D_q : b <= t < d}``, half-open as in giotto-tda and GUDHI; essential bars count.

    Args:
        diagrams: persistence diagrams.
        grid: 1-D increasing array of filtration values.

    Returns:
        ``(maxdim + 1, len(grid))`` int64 array.

    Raises:
        ValueError: if ``grid`` is not 1-D, finite and non-decreasing.

    Example:
        >>> d = PersistenceDiagrams([[[0.0, 1.0], [0.0, float("inf")]]])
        >>> betti_curve(d, [0.0, 0.5, 1.0, 2.0]).tolist()
        [[2, 2, 1, 1]]
    """
    check_diagrams(diagrams)
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim != 1 or g.size == 0 or not np.isfinite(g).all() or (np.diff(g) < 0).any():
        raise ValueError("Expected `grid` to be a non-empty, finite, non-decreasing 1-D array.")
    curves = np.zeros((len(diagrams), g.size), dtype=np.int64)
    for q, dgm in enumerate(diagrams):
        if len(dgm) == 0:
            continue
        births = np.sort(dgm[:, 0])
        deaths = np.sort(dgm[:, 1])
        # born at or before t, minus died at or before t
        curves[q] = np.searchsorted(births, g, side="right") - np.searchsorted(deaths, g, side="right")
    return curves


def total_persistence(diagrams: PersistenceDiagrams, dim: int, p: float = 1.0, *, half: bool = False) -> float:
    """Sum of the ``p``-th powers of the finite lifetimes, ``E_p = sum_i (d_i - b_i)^p``.

    With ``p = 1`` this is the *lifespan sum* of Magai & Ayzenberg; their code multiplies it by 0.5, which
    ``half=True`` reproduces (it changes absolute values, not correlations). It is also the
    ``alpha``-weighted sum ``E_alpha`` of the PH-dimension. For the ``p``-norm take ``** (1 / p)``, or use
    :func:`amplitude`.

    Args:
        diagrams: persistence diagrams.
        dim: homology dimension.
        p: exponent, > 0.
        half: multiply by 0.5 as Magai & Ayzenberg's code does.

    Returns:
        The sum (0.0 for a diagram without finite bars).

    References:
        Magai & Ayzenberg, "Topology and geometry of data manifold in deep learning", arXiv:2204.08624.

    Example:
        >>> d = PersistenceDiagrams([[[0.0, 1.0], [0.0, 3.0], [0.0, float("inf")]]])
        >>> total_persistence(d, 0), total_persistence(d, 0, half=True), total_persistence(d, 0, p=2)
        (4.0, 2.0, 10.0)
    """
    check_diagrams(diagrams, dim)
    if not p > 0:
        raise ValueError(f"Expected `p` to be positive but got {p!r}.")
    total = float(np.sum(diagrams.lifetimes(dim) ** p))
    return 0.5 * total if half else total


def amplitude(
    diagrams: PersistenceDiagrams,
    dim: int,
    p: float = 2.0,
    *,
    metric: Literal["wasserstein", "bottleneck"] = "wasserstein",
) -> float:
    """Distance of a diagram to the empty diagram (giotto-tda's amplitude).

    Wasserstein: ``||(sqrt(2)/2) * l||_p`` over the finite lifetimes ``l``; bottleneck:
    ``(sqrt(2)/2) * max l``. ``sqrt(2)/2 * l`` is each point's distance to the diagonal.

    Args:
        diagrams: persistence diagrams.
        dim: homology dimension.
        p: order of the Wasserstein norm (>= 1).
        metric: ``"wasserstein"`` or ``"bottleneck"``.

    Returns:
        The amplitude (0.0 for no finite bars).

    References:
        Tauzin et al., "giotto-tda", JMLR 22(39), 2021.

    Example:
        >>> d = PersistenceDiagrams([[[0.0, 3.0], [0.0, 4.0]]])
        >>> round(amplitude(d, 0) ** 2, 6), round(amplitude(d, 0, metric="bottleneck") ** 2, 6)
        (12.5, 8.0)
    """
    check_diagrams(diagrams, dim)
    check_choice("metric", metric, ("wasserstein", "bottleneck"))
    if not p >= 1:
        raise ValueError(f"Expected `p` to be >= 1 but got {p!r}.")
    life = diagrams.lifetimes(dim) * (np.sqrt(2.0) / 2.0)
    if life.size == 0:
        return 0.0
    if metric == "bottleneck":
        return float(life.max())
    return float(np.sum(life**p) ** (1.0 / p))


def persistence_entropy(diagrams: PersistenceDiagrams, dim: int, *, normalize: bool = True) -> float:
    """Shannon entropy (base 2) of the finite lifetimes: ``PE = -sum (l_i / L) log2(l_i / L)``.

    With ``normalize=True`` (default) it is divided by ``log2(#bars)``, giving a scale-free number in
    ``[0, 1]``: 1 when all bars are equally long, near 0 when one bar dominates. Zero-length bars are
    dropped. With no finite bar, or a single one, the entropy is 0.0 (nothing is uncertain): a layer whose
    H1 is empty logs 0, not NaN.

    Args:
        diagrams: persistence diagrams.
        dim: homology dimension.
        normalize: divide by ``log2(#bars)``.

    Returns:
        The entropy.

    References:
        Chintakunta et al., "An entropy-based persistence barcode", Pattern Recognition 48(2), 2015.

    Example:
        >>> d = PersistenceDiagrams([[[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]])
        >>> persistence_entropy(d, 0, normalize=False), persistence_entropy(d, 0)
        (2.0, 1.0)
    """
    check_diagrams(diagrams, dim)
    life = diagrams.lifetimes(dim)
    life = life[life > 1e-12]
    if life.size <= 1:
        return 0.0
    prob = life / life.sum()
    entropy = float(-np.sum(prob * np.log2(prob)))
    return entropy / float(np.log2(life.size)) if normalize else entropy


def lifetime_statistics(
    diagrams: PersistenceDiagrams,
    dim: int,
    *,
    long_fraction: float = 0.1,
    filtration_range: float | None = None,
) -> dict[str, float]:
    """Elementary statistics of the finite lifetimes of one dimension.

    Args:
        diagrams: persistence diagrams.
        dim: homology dimension.
        long_fraction: a bar is *long* when its lifetime exceeds ``long_fraction * filtration_range``.
        filtration_range: the range the fraction refers to; default the largest finite value in the diagrams.

    Returns:
        ``{"count", "max", "mean", "std", "n_long", "n_essential"}`` (max/mean/std are 0.0 without bars).

    Example:
        >>> d = PersistenceDiagrams([[[0.0, 0.1], [0.0, 2.0], [0.0, float("inf")]]])
        >>> s = lifetime_statistics(d, 0, long_fraction=0.5)
        >>> s["count"], s["max"], s["n_long"], s["n_essential"]
        (2.0, 2.0, 1.0, 1.0)
    """
    check_diagrams(diagrams, dim)
    long_fraction = check_fraction("long_fraction", long_fraction)
    life = diagrams.lifetimes(dim)
    t_range = diagrams.max_finite_value() if filtration_range is None else float(filtration_range)
    has = life.size > 0
    return {
        "count": float(life.size),
        "max": float(life.max()) if has else 0.0,
        "mean": float(life.mean()) if has else 0.0,
        "std": float(life.std()) if has else 0.0,
        "n_long": float((life > long_fraction * t_range).sum()) if has else 0.0,
        "n_essential": float(diagrams.n_essential(dim)),
    }
