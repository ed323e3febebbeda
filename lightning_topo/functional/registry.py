"""The registry of descriptors: every name a layer can log, the function that computes it, and what it needs.

A descriptor is either *per homology dimension* (computed from the persistence diagrams, logged once per
dimension as ``{name}_{q}``) or *global* (computed from the distance matrix, logged as ``{name}``). The callback,
``analyze``, ``rank_models`` and the metrics all evaluate descriptors through :func:`diagram_descriptors` and
:func:`distance_descriptors`, so a name means the same number in every entry point.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

from lightning_topo.diagrams import PersistenceDiagrams
from lightning_topo.functional.descriptors import (
    amplitude,
    betti_numbers,
    lifetime_statistics,
    persistence_entropy,
    total_persistence,
)
from lightning_topo.functional.intrinsic_dimension import id_estimates, id_from_distances

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

    ``fn`` takes ``(diagrams, q, params)`` for per-dimension descriptors and ``(distances, params)`` for global
    ones; ``params`` is a mapping with ``betti_scale``, ``long_fraction`` and ``seed``.
    """

    name: str
    per_dim: bool
    fn: Callable[..., float]
    doc: str


def _betti(dgms: PersistenceDiagrams, q: int, params: Any) -> float:
    return float(betti_numbers(dgms, params["betti_scale"])[q])


def _max_persistence(dgms: PersistenceDiagrams, q: int, params: Any) -> float:
    life = dgms.lifetimes(q)
    return float(life.max()) if life.size else 0.0


def _n_long(dgms: PersistenceDiagrams, q: int, params: Any) -> float:
    return lifetime_statistics(dgms, q, long_fraction=params["long_fraction"])["n_long"]


def _id(method: str) -> Callable[[torch.Tensor, Any], float]:
    def fn(dist: torch.Tensor, params: Any) -> float:
        generator = torch.Generator().manual_seed(params["seed"]) if method == "phdim" else None
        return id_from_distances(dist, method, generator=generator)  # type: ignore[arg-type]

    return fn


DESCRIPTORS: dict[str, Descriptor] = {
    d.name: d
    for d in (
        Descriptor("betti", True, _betti, "Betti number at `betti_scale` (essential bars count)"),
        Descriptor("total_persistence", True, lambda d, q, p: total_persistence(d, q), "sum of finite lifetimes"),
        Descriptor("entropy", True, lambda d, q, p: persistence_entropy(d, q), "normalised persistence entropy"),
        Descriptor("max_persistence", True, _max_persistence, "longest finite lifetime"),
        Descriptor("amplitude", True, lambda d, q, p: amplitude(d, q), "Wasserstein-2 amplitude"),
        Descriptor("n_long", True, _n_long, "bars longer than `long_fraction` of the range"),
        Descriptor("id_twonn", False, _id("twonn"), "TwoNN intrinsic dimension"),
        Descriptor("id_mle", False, _id("mle"), "MLE intrinsic dimension (k = 10..20)"),
        Descriptor("id_phdim", False, _id("phdim"), "PH-dimension (H0, alpha = 1)"),
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
        if d.per_dim:
            for q in range(len(dgms)):
                out[f"{name}_{q}"] = float(d.fn(dgms, q, params))
    return out


def distance_descriptors(
    dist: torch.Tensor, names: Iterable[str], params: Any, *, distinct: bool = False
) -> dict[str, float]:
    """Every global descriptor of ``names`` on a valid float64 distance matrix.

    The intrinsic-dimension estimators share their work (:func:`~lightning_topo.functional.intrinsic_dimension.
    id_estimates`): the same numbers as one call each. ``distinct=True``: the caller knows that no two points are at
    distance 0 (no duplicate scan).
    """
    wanted = [name for name in names if not DESCRIPTORS[name].per_dim]
    methods = [name.removeprefix("id_") for name in wanted if name in _ID_METHODS]
    out: dict[str, float] = {}
    if methods:
        generator = torch.Generator().manual_seed(params["seed"]) if "phdim" in methods else None
        estimates = id_estimates(dist, methods, distinct=distinct, generator=generator)  # type: ignore[arg-type]
        out = {f"id_{method}": value for method, value in estimates.items()}
    return {name: float(out[name]) if name in out else float(DESCRIPTORS[name].fn(dist, params)) for name in wanted}


_ID_METHODS = ("id_twonn", "id_mle", "id_phdim")
