"""Per-layer computation shared by the callback and ``analyze``: samples in, ``TopologyReport`` out.

Pure torch and ``functional``; never imports lightning.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from lightning_topo import functional as F
from lightning_topo.diagrams import PersistenceDiagrams
from lightning_topo.functional.intrinsic_dimension import id_from_distances
from lightning_topo.functional.persistence import rips_from_distances
from lightning_topo.report import TopologyReport

PER_DIM_DESCRIPTORS = ("betti", "total_persistence", "entropy", "max_persistence", "amplitude", "n_long")
GLOBAL_DESCRIPTORS = ("id_twonn", "id_mle", "id_phdim")
DEFAULT_DESCRIPTORS = ("betti", "total_persistence", "entropy", "id_twonn")


@dataclass(frozen=True)
class ComputeConfig:
    """How each layer's sample becomes numbers (see ``TopologyMonitor`` for the meaning of each field)."""

    maxdim: int = 1
    metric: Literal["euclidean", "cosine"] = "euclidean"
    normalize: Literal["quantile", "median", "max"] | None = "quantile"
    ph_samples: int | None = None
    betti_scale: float = 0.2
    grid_max: float = 1.0
    n_bins: int = 100
    long_fraction: float = 0.1
    descriptors: tuple[str, ...] = DEFAULT_DESCRIPTORS
    n_threads: int = -1
    seed: int = 0
    grid: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "grid", np.linspace(0.0, self.grid_max, self.n_bins))

    def keys(self) -> list[str]:
        """Descriptor names a layer logs, in a fixed order."""
        out: list[str] = []
        for name in self.descriptors:
            if name in PER_DIM_DESCRIPTORS:
                out.extend(f"{name}_{q}" for q in range(self.maxdim + 1))
            else:
                out.append(name)
        return out


@dataclass
class LayerResult:
    metrics: dict[str, float]
    diagrams: PersistenceDiagrams | None = None
    betti_curve: np.ndarray | None = None
    problem: str | None = None


def nan_metrics(config: ComputeConfig) -> dict[str, float]:
    return dict.fromkeys(config.keys(), math.nan)


def check_sample(x: torch.Tensor | None) -> str | None:
    """Why a layer sample cannot be measured, or ``None`` when it can."""
    if x is None:
        return "no activations were captured"
    if x.shape[0] < 3:
        return f"only {x.shape[0]} examples were captured (at least 3 are needed)"
    n_nan = int(torch.isnan(x).sum())
    n_inf = int(torch.isinf(x).sum())
    if n_nan or n_inf:
        return f"its activations hold {n_nan} NaN and {n_inf} infinite values"
    return None


def compute_layer(x: torch.Tensor, config: ComputeConfig) -> LayerResult:
    """Distances, normalisation, subsample, persistence, descriptors and ID for one layer's sample."""
    problem = check_sample(x)
    if problem is not None:
        return LayerResult(nan_metrics(config), problem=problem)
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        dist = F.pairwise_distances(x, metric=config.metric, normalize=config.normalize)
        ph_dist = dist
        if config.ph_samples is not None and config.ph_samples < dist.shape[0]:
            gen = torch.Generator().manual_seed(config.seed)
            idx = F.subsample(dist, config.ph_samples, "farthest", generator=gen, distance_matrix=True)
            ph_dist = dist[idx][:, idx]
        dgms = rips_from_distances(ph_dist, config.maxdim, n_threads=config.n_threads)
        metrics = _descriptors(dgms, dist, config)
    notes = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    result = LayerResult(metrics, dgms, F.betti_curve(dgms, config.grid))
    if notes:
        result.problem = "; ".join(notes)
    return result


def _descriptors(dgms: PersistenceDiagrams, dist: torch.Tensor, config: ComputeConfig) -> dict[str, float]:
    out: dict[str, float] = {}
    bettis = F.betti_numbers(dgms, config.betti_scale)
    for name in config.descriptors:
        for q in range(config.maxdim + 1) if name in PER_DIM_DESCRIPTORS else ():
            key = f"{name}_{q}"
            if name == "betti":
                out[key] = float(bettis[q])
            elif name == "total_persistence":
                out[key] = F.total_persistence(dgms, q)
            elif name == "entropy":
                out[key] = F.persistence_entropy(dgms, q)
            elif name == "max_persistence":
                life = dgms.lifetimes(q)
                out[key] = float(life.max()) if life.size else 0.0
            elif name == "amplitude":
                out[key] = F.amplitude(dgms, q)
            elif name == "n_long":
                stats = F.lifetime_statistics(dgms, q, long_fraction=config.long_fraction)
                out[key] = stats["n_long"]
        if name == "id_twonn":
            out[name] = id_from_distances(dist, "twonn")
        elif name == "id_mle":
            out[name] = id_from_distances(dist, "mle")
        elif name == "id_phdim":
            out[name] = id_from_distances(dist, "phdim", generator=torch.Generator().manual_seed(config.seed))
    return out


def compute_report(
    samples: Mapping[str, torch.Tensor | None],
    config: ComputeConfig,
    *,
    problems: Mapping[str, str] | None = None,
    epoch: int | None = None,
    on_error: Literal["warn", "raise"] = "warn",
    executor: Any = None,
) -> TopologyReport:
    """Compute every layer (in parallel when ``executor`` is given) and assemble a report.

    A failure inside one layer's computation becomes that layer's problem (NaN metrics) under
    ``on_error="warn"``; other layers are unaffected.
    """
    start = time.perf_counter()
    problems = dict(problems or {})
    layers = list(samples)
    results: dict[str, LayerResult] = {}

    def run(alias: str) -> LayerResult:
        if alias in problems:
            return LayerResult(nan_metrics(config), problem=problems[alias])
        try:
            return compute_layer(samples[alias], config)  # type: ignore[arg-type]
        except Exception as err:
            if on_error == "raise":
                raise
            return LayerResult(nan_metrics(config), problem=f"its computation failed: {type(err).__name__}: {err}")

    if executor is None:
        for alias in layers:
            results[alias] = run(alias)
    else:
        futures = {alias: executor.submit(run, alias) for alias in layers}
        results = {alias: fut.result() for alias, fut in futures.items()}

    n = max((x.shape[0] for x in samples.values() if x is not None), default=0)
    report = TopologyReport(layers=layers, metrics={}, grid=config.grid, n_samples=n, epoch=epoch)
    for alias in layers:
        res = results[alias]
        report.metrics[alias] = res.metrics
        if res.diagrams is not None:
            report.diagrams[alias] = res.diagrams
        if res.betti_curve is not None:
            report.betti_curves[alias] = res.betti_curve
        if res.problem is not None:
            report.problems[alias] = res.problem
    report.elapsed_s = time.perf_counter() - start
    return report


def class_lifespans(
    samples: torch.Tensor, labels: torch.Tensor, config: ComputeConfig, per_class_max: int = 250
) -> dict[int, float]:
    """H0 total persistence per class on normalised distances (Magai & Ayzenberg's local lifespan sum)."""
    out: dict[int, float] = {}
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).reshape(-1)[:per_class_max]
        if len(members) < 3:
            continue
        dist = F.pairwise_distances(
            samples[members.to(samples.device)], metric=config.metric, normalize=config.normalize
        )
        out[int(c)] = F.total_persistence(F.vietoris_rips(dist, maxdim=0, distance_matrix=True), 0)
    return out
