"""The registry of descriptors: every name a layer can log, the function that computes it, and what it needs.

A descriptor is either *per homology dimension* (computed from the persistence diagrams, logged once per
dimension as ``{name}_{q}``) or *global* (computed from the distance matrix, logged as ``{name}``). The callback,
``analyze``, ``rank_models`` and the metrics all evaluate descriptors through :func:`diagram_descriptors` and
:func:`distance_descriptors`, so a name means the same number in every entry point.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import torch

from lightning_topo.diagrams import PersistenceDiagrams
from lightning_topo.functional.descriptors import (
    amplitude,
    betti_numbers,
    lifetime_statistics,
    persistence_entropy,
    total_persistence,
)
from lightning_topo.functional.intrinsic_dimension import id_estimates

__all__ = [
    "DEFAULT_DESCRIPTORS",
    "DESCRIPTORS",
    "Descriptor",
    "descriptor_keys",
    "diagram_descriptors",
    "distance_descriptors",
]


@dataclass(frozen=True)
class Descriptor:
    """One descriptor: its name, whether it is per homology dimension, and how to compute it.

    Per-dimension descriptors have ``fn(diagrams, q, params)``, ``params`` a mapping with ``betti_scale``,
    ``long_fraction`` and ``seed``. The global ones are the intrinsic-dimension estimators, named by
    ``id_method`` and computed together from the distance matrix by :func:`distance_descriptors`.
    """

    name: str
    per_dim: bool
    doc: str
    fn: Callable[..., float] | None = None
    id_method: Literal["twonn", "mle", "phdim"] | None = None


def _betti(dgms: PersistenceDiagrams, q: int, params: Any) -> float:
    return float(betti_numbers(dgms, params["betti_scale"])[q])


def _max_persistence(dgms: PersistenceDiagrams, q: int, params: Any) -> float:
    life = dgms.lifetimes(q)
    return float(life.max()) if life.size else 0.0


def _n_long(dgms: PersistenceDiagrams, q: int, params: Any) -> float:
    return lifetime_statistics(dgms, q, long_fraction=params["long_fraction"])["n_long"]


DESCRIPTORS: dict[str, Descriptor] = {
    d.name: d
    for d in (
        Descriptor("betti", True, "Betti number at `betti_scale` (essential bars count)", _betti),
        Descriptor("total_persistence", True, "sum of finite lifetimes", lambda d, q, p: total_persistence(d, q)),
        Descriptor("entropy", True, "normalised persistence entropy", lambda d, q, p: persistence_entropy(d, q)),
        Descriptor("max_persistence", True, "longest finite lifetime", _max_persistence),
        Descriptor("amplitude", True, "Wasserstein-2 amplitude", lambda d, q, p: amplitude(d, q)),
        Descriptor("n_long", True, "bars longer than `long_fraction` of the range", _n_long),
        Descriptor("id_twonn", False, "TwoNN intrinsic dimension", id_method="twonn"),
        Descriptor("id_mle", False, "MLE intrinsic dimension (k = 10..20)", id_method="mle"),
        Descriptor("id_phdim", False, "PH-dimension (H0, alpha = 1)", id_method="phdim"),
    )
}

DEFAULT_DESCRIPTORS = ("betti", "total_persistence", "entropy", "id_twonn")


def descriptor_keys(names: Iterable[str], maxdim: int) -> list[str]:
    """The logged keys of ``names`` in a fixed order: ``{name}_{q}`` per dimension, or ``{name}``.

    Example:
        >>> descriptor_keys(["betti", "id_twonn"], maxdim=1)
        ['betti_0', 'betti_1', 'id_twonn']
    """
    keys: list[str] = []
    for name in names:
        keys.extend([f"{name}_{q}" for q in range(maxdim + 1)] if DESCRIPTORS[name].per_dim else [name])
    return keys


def diagram_descriptors(dgms: PersistenceDiagrams, names: Iterable[str], params: Any) -> dict[str, float]:
    """Every per-dimension descriptor of ``names`` on ``dgms``, keyed ``{name}_{q}``."""
    out: dict[str, float] = {}
    for name in names:
        d = DESCRIPTORS[name]
        if d.fn is not None:
            for q in range(len(dgms)):
                out[f"{name}_{q}"] = float(d.fn(dgms, q, params))
    return out


def distance_descriptors(
    dist: torch.Tensor,
    names: Iterable[str],
    params: Any,
    *,
    distinct: bool = False,
    duplicates: torch.Tensor | None = None,
) -> dict[str, float]:
    """Every global descriptor of ``names`` (the intrinsic-dimension estimators) on a valid float64 distance matrix.

    The estimators share their work (:func:`~lightning_topo.functional.intrinsic_dimension.id_estimates`): the same
    numbers as one call each. ``distinct=True``: the caller knows that no two points are at distance 0;
    ``duplicates``: the caller's :func:`~lightning_topo.functional.intrinsic_dimension.duplicate_mask` of ``dist``
    (either way the duplicate scan is not repeated).
    """
    methods = {name: method for name in names if (method := DESCRIPTORS[name].id_method) is not None}
    if not methods:
        return {}
    generator = torch.Generator().manual_seed(params["seed"]) if "phdim" in methods.values() else None
    estimates = id_estimates(
        dist, list(methods.values()), distinct=distinct, duplicates=duplicates, generator=generator
    )
    return {name: float(estimates[method]) for name, method in methods.items()}
