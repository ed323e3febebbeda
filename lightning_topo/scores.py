"""Named topological scores: one float per report, logged as ``topo/score``."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from lightning_topo.capture import INPUT, OUTPUT
from lightning_topo.functional.scores import topological_complexity_decay
from lightning_topo.report import TopologyReport

__all__ = ["SCORES", "resolve_score"]


def _hidden(report: TopologyReport) -> list[str]:
    hidden = [layer for layer in report.layers if layer not in (INPUT, OUTPUT)]
    return hidden or list(report.layers)


def _last_value(report: TopologyReport, key: str, layers: list[str]) -> float:
    return float(report.metrics[layers[-1]].get(key, math.nan))


def id_last(report: TopologyReport) -> float:
    """TwoNN ID of the last monitored hidden layer (Ansuini et al. 2019; lower generalises better)."""
    return _last_value(report, "id_twonn", _hidden(report))


def lifespan_sum(report: TopologyReport) -> float:
    """H0 total persistence of the last monitored layer on normalised distances (Magai & Ayzenberg)."""
    return _last_value(report, "total_persistence_0", list(report.layers))


def decay(report: TopologyReport) -> float:
    """Suresh et al.'s decay of the per-layer complexity profile (sum of total persistence over dimensions)."""
    keys = [k for k in report.metrics[report.layers[0]] if k.startswith("total_persistence_")]
    profile = np.array([sum(report.metrics[layer][k] for k in keys) for layer in report.layers])
    if len(profile) < 4 or not np.isfinite(profile).all() or not profile.any():
        return math.nan
    return topological_complexity_decay(profile)


SCORES: dict[str, tuple[Callable[[TopologyReport], float], str]] = {
    "id_last": (id_last, "min"),
    "lifespan_sum": (lifespan_sum, "min"),
    "decay": (decay, "min"),
}


def resolve_score(
    score: str | Callable[[TopologyReport], float] | None,
) -> tuple[str | None, Callable[[TopologyReport], float] | None]:
    if score is None:
        return None, None
    if callable(score):
        return getattr(score, "__name__", "custom"), score
    if score not in SCORES:
        raise ValueError(f"Expected `score` to be one of {sorted(SCORES)}, a callable or None but got {score!r}.")
    return score, SCORES[score][0]
