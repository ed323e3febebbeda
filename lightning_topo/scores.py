"""Named topological scores: one float per report, logged as ``topo/score``.

Each name documents its direction (``mode`` for ``EarlyStopping`` / ``ModelCheckpoint``) and the descriptors it
needs (added to the monitor's descriptors automatically). What they do and do not predict: the correlations
behind them are *between models* (Magai & Ayzenberg, Ansuini et al., Suresh et al.), not guarantees within one
run, and none is a validated drop-in replacement for the validation loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lightning_topo.capture import INPUT, OUTPUT
from lightning_topo.functional.scores import topological_complexity_decay
from lightning_topo.report import TopologyReport

__all__ = ["SCORES", "Score", "resolve_score"]


def _hidden(report: TopologyReport) -> list[str]:
    hidden = [layer for layer in report.layers if layer not in (INPUT, OUTPUT)]
    return hidden or list(report.layers)


def id_last(report: TopologyReport) -> float:
    """TwoNN intrinsic dimension of the last monitored hidden layer (not ``input``/``output``).

    Ansuini et al. 2019: across trained networks, a lower last-hidden ID goes with a lower test error; it is
    high for networks trained on random labels. Lower is better.
    """
    return float(report.metrics[_hidden(report)[-1]].get("id_twonn", math.nan))


def phdim_last(report: TopologyReport) -> float:
    """PH-dimension (H0, alpha = 1) of the last monitored hidden layer (Magai & Ayzenberg; Birdal et al.).

    Falls with depth in trained CNNs; lower is taken as simpler. Lower is better.
    """
    return float(report.metrics[_hidden(report)[-1]].get("id_phdim", math.nan))


def lifespan_sum(report: TopologyReport) -> float:
    """H0 total persistence of the last monitored layer on normalised distances, averaged per class.

    Magai & Ayzenberg's generalization descriptor: across models, a smaller per-class lifespan sum at the
    logit layer goes with a higher test accuracy. Per class (at most 250 examples each) when labels are known,
    else on the whole sample. Lower is better.
    """
    last = report.layers[-1]
    per_class = report.class_metrics.get(last)
    if per_class:
        values = [m["total_persistence_0"] for m in per_class.values()]
        return float(np.mean(values))
    return float(report.metrics[last].get("total_persistence_0", math.nan))


def decay(report: TopologyReport) -> float:
    """Suresh et al.'s topological-complexity decay over the depth profile (needs at least 4 layers).

    The profile is each layer's total persistence summed over homology dimensions (Suresh et al. use cubical
    Betti numbers; this is its Vietoris-Rips analogue). Lower (faster decay) was reported to predict higher
    fine-tuning accuracy across pretrained models. Lower is better.
    """
    keys = [k for k in report.metrics[report.layers[0]] if k.startswith("total_persistence_")]
    profile = np.array([sum(report.metrics[layer][k] for k in keys) for layer in report.layers])
    if len(profile) < 4 or not np.isfinite(profile).all() or not profile.any():
        return math.nan
    return topological_complexity_decay(profile)


@dataclass(frozen=True)
class Score:
    fn: Callable[[TopologyReport], float]
    mode: str
    needs: tuple[str, ...]


SCORES: dict[str, Score] = {
    "id_last": Score(id_last, "min", ("id_twonn",)),
    "phdim_last": Score(phdim_last, "min", ("id_phdim",)),
    "lifespan_sum": Score(lifespan_sum, "min", ("total_persistence",)),
    "decay": Score(decay, "min", ("total_persistence",)),
}


def resolve_score(
    score: str | Callable[[TopologyReport], float] | None,
) -> tuple[str | None, Callable[[TopologyReport], float] | None]:
    if score is None:
        return None, None
    if isinstance(score, str):
        if score not in SCORES:
            raise ValueError(f"Expected `score` to be one of {sorted(SCORES)}, a callable or None but got {score!r}.")
        return score, SCORES[score].fn
    if callable(score):
        return getattr(score, "__name__", "custom"), score
    raise ValueError(f"Expected `score` to be one of {sorted(SCORES)}, a callable or None but got {score!r}.")
