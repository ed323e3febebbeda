"""The one result type passed between modules: a persistence diagram per homology dimension."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PersistenceDiagrams"]


@dataclass(frozen=True, eq=False)
class PersistenceDiagrams:
    """Persistence diagrams of one filtration, for homology dimensions ``0 .. maxdim``.

    ``diagrams[q]`` is a read-only ``(n_q, 2)`` float64 array of ``(birth, death)`` pairs, sorted by birth
    then death. Essential bars (classes that never die) have ``death = inf``; a Vietoris-Rips filtration
    of a point cloud with no threshold has exactly one, the ``[0, inf)`` bar of H0. Zero-length bars are
    not stored (giotto-ph and ripser drop them too), so duplicated points add nothing.

    Args:
        dgms: one array-like of shape ``(n_q, 2)`` per homology dimension, ``q = 0 .. maxdim``.

    Raises:
        ValueError: if an array is not ``(n, 2)``, holds NaN, or has a death before its birth.

    Example:
        >>> d = PersistenceDiagrams([[[0.0, 1.0], [0.0, float("inf")]], [[0.5, 0.75]]])
        >>> len(d), d.maxdim
        (2, 1)
        >>> d.finite(0)
        array([[0., 1.]])
        >>> d.lifetimes(1)
        array([0.25])
    """

    dgms: tuple[np.ndarray, ...]

    def __init__(self, dgms: Sequence[np.ndarray] | Sequence[Sequence[Sequence[float]]]) -> None:
        if len(dgms) == 0:
            raise ValueError("Expected at least one homology dimension in `dgms` but got none.")
        arrays = []
        for q, dgm in enumerate(dgms):
            arr = np.asarray(dgm, dtype=np.float64)
            if arr.size == 0:
                arr = np.empty((0, 2), dtype=np.float64)
            if arr.ndim != 2 or arr.shape[1] != 2:
                raise ValueError(f"Expected the diagram of dimension {q} to have shape (n, 2) but got {arr.shape}.")
            if np.isnan(arr).any():
                raise ValueError(f"Expected no NaN in the diagram of dimension {q}.")
            if (arr[:, 1] < arr[:, 0]).any():
                raise ValueError(f"Expected death >= birth in every pair of the diagram of dimension {q}.")
            order = np.lexsort((arr[:, 1], arr[:, 0]))
            arr = np.ascontiguousarray(arr[order])
            arr.setflags(write=False)
            arrays.append(arr)
        object.__setattr__(self, "dgms", tuple(arrays))

    def __getitem__(self, q: int) -> np.ndarray:
        return self.dgms[q]

    def __len__(self) -> int:
        return len(self.dgms)

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.dgms)

    def __repr__(self) -> str:
        counts = ", ".join(f"H{q}: {len(d)} bars ({self.n_essential(q)} essential)" for q, d in enumerate(self.dgms))
        return f"PersistenceDiagrams({counts})"

    @property
    def maxdim(self) -> int:
        """The highest homology dimension held."""
        return len(self.dgms) - 1

    def finite(self, q: int) -> np.ndarray:
        """The bars of dimension ``q`` with a finite death."""
        d = self.dgms[q]
        return d[np.isfinite(d[:, 1])]

    def essential(self, q: int) -> np.ndarray:
        """The bars of dimension ``q`` that never die (``death = inf``)."""
        d = self.dgms[q]
        return d[~np.isfinite(d[:, 1])]

    def n_essential(self, q: int) -> int:
        """How many bars of dimension ``q`` never die."""
        return int((~np.isfinite(self.dgms[q][:, 1])).sum())

    def lifetimes(self, q: int) -> np.ndarray:
        """``death - birth`` of the finite bars of dimension ``q`` (essential bars are left out)."""
        d = self.finite(q)
        return d[:, 1] - d[:, 0]

    def max_finite_value(self) -> float:
        """The largest finite birth or death over all dimensions (0.0 for diagrams without finite values)."""
        values = np.concatenate([d[np.isfinite(d)] for d in self.dgms] + [np.zeros(1)])
        return float(values.max())

    def to_numpy(self) -> list[np.ndarray]:
        """Writable copies of the arrays, one per dimension (the ``ripser`` ``dgms`` layout)."""
        return [d.copy() for d in self.dgms]

    def allclose(self, other: PersistenceDiagrams, *, atol: float = 1e-8, rtol: float = 1e-5) -> bool:
        """Whether both hold the same dimensions with the same bars, up to ``atol``/``rtol``."""
        if len(self) != len(other):
            return False
        return all(
            a.shape == b.shape and np.allclose(a, b, atol=atol, rtol=rtol) for a, b in zip(self, other, strict=False)
        )
