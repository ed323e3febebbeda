"""Named topological scores: one float per report, logged as ``topo/score``.

Each :class:`Score` carries its function, its direction (``mode`` for ``EarlyStopping`` / ``ModelCheckpoint``),
the descriptors it needs (added to the measurement automatically, in every entry point) and the per-class
descriptors it needs (computed when labels are known). What they do and do not predict: the correlations behind
them are *between models* (Magai & Ayzenberg, Ansuini et al., Suresh et al.), not guarantees within one run,
and none is a validated drop-in replacement for the validation loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from lightning_topo.functional.scores import topological_complexity_decay
from lightning_topo.report import INPUT, OUTPUT, TopologyReport

__all__ = ["SCORES", "Score", "last_hidden"]

ScoreFn = Callable[[TopologyReport], float]


@dataclass(frozen=True)
class Score:
    """A score: ``fn(report) -> float``, its direction and what it needs.

    Attributes:
        name: the score's name (``"custom"`` or the callable's name for a user function).
        fn: computes the score from a complete report.
        mode: ``"min"`` when lower is better, ``"max"`` otherwise.
        needs: descriptor names the measurement must compute.
        class_needs: descriptor names needed per class (computed when labels are known).
        reads: which layer the score reads, for the message when it is NaN (``None``: several layers).
        cubical: whether it reads the cubical complexity of feature maps (measured on 8 images per layer unless
            ``cubical_samples`` says otherwise).
        profile: the depth profile the score reduces, for the message when it is NaN (``None``: no profile).
    """

    name: str
    fn: ScoreFn
    mode: Literal["min", "max"]
    needs: tuple[str, ...] = ()
    class_needs: tuple[str, ...] = ()
    reads: Callable[[TopologyReport], str] | None = None
    cubical: bool = False
    profile: Callable[[TopologyReport], np.ndarray] | None = None

    def __call__(self, report: TopologyReport) -> float:
        return float(self.fn(report))


def last_hidden(report: TopologyReport) -> str:
    """The last monitored hidden layer: the last one that is neither ``input`` nor the model's output.

    A layer whose sample equals the output's (the classifier head of most models: ``output`` is its copy) is
    the output, not a hidden layer; so is one whose tensor ``forward`` returns (``report.outputs``: the head
    named without ``output``), and one equal to the input. The score then reads the penultimate
    representation, as Ansuini et al. and Magai & Ayzenberg do, never the logits. Falls back to the last layer
    when no hidden layer is monitored.
    """
    ends = {INPUT, OUTPUT, *report.outputs}
    ends |= {layer for layer, original in report.copies.items() if original in ends}
    ends |= {original for layer, original in report.copies.items() if layer in ends}
    hidden = [layer for layer in report.layers if layer not in ends]
    return hidden[-1] if hidden else report.layers[-1]


def id_last(report: TopologyReport) -> float:
    """TwoNN intrinsic dimension of the last monitored hidden layer (:func:`last_hidden`).

    Ansuini et al. 2019: across trained networks, a lower last-hidden ID goes with a lower test error; it is
    high for networks trained on random labels. Lower is better.
    """
    return float(report.metrics[last_hidden(report)].get("id_twonn", math.nan))


def phdim_last(report: TopologyReport) -> float:
    """PH-dimension (H0, alpha = 1) of the last monitored hidden layer (Magai & Ayzenberg; Birdal et al.).

    Falls with depth in trained CNNs; lower is taken as simpler. Lower is better.
    """
    return float(report.metrics[last_hidden(report)].get("id_phdim", math.nan))


def lifespan_sum(report: TopologyReport) -> float:
    """H0 total persistence of the last monitored hidden layer, averaged over classes when labels are known.

    Magai & Ayzenberg's generalization descriptor: across models, a smaller per-class lifespan sum in the last
    layers goes with a higher test accuracy. Each class's lifespan sum is computed on its rows (at most 250) of
    the layer's normalised distance matrix, so the layer's scale is shared by every class (Magai & Ayzenberg
    min-max scale the whole layer, then take each class's cloud). Without labels: on the whole sample.
    Lower is better.
    """
    layer = last_hidden(report)
    per_class = report.class_metrics.get(layer)
    if per_class:
        return float(np.mean([m["total_persistence_0"] for m in per_class.values()]))
    return float(report.metrics[layer].get("total_persistence_0", math.nan))


def decay(report: TopologyReport) -> float:
    """Suresh et al.'s topological-complexity decay of the *point-cloud* profile (needs at least 4 layers).

    The profile is each monitored layer's total persistence summed over homology dimensions, in depth order, copies
    left out (a layer whose sample equals an earlier one's, as the output of a model ending in its head): a
    Vietoris-Rips analogue, **not** Suresh et al.'s own quantity (cubical Betti numbers of each image's feature
    maps; that is ``"decay_cubical"``). The score is
    :func:`~lightning_topo.functional.topological_complexity_decay` of the profile. Lower (faster decay) was
    reported to predict higher fine-tuning accuracy. Lower is better.
    """
    return _decay_of(persistence_profile(report))


def persistence_profile(report: TopologyReport) -> np.ndarray:
    """``decay``'s depth profile: each layer's total persistence summed over homology dimensions, copies left out."""
    keys = [k for k in report.metrics[report.layers[0]] if k.startswith("total_persistence_")]
    layers = [layer for layer in report.layers if layer not in report.copies]
    return np.array([sum(report.metrics[layer][k] for k in keys) for layer in layers])


def cubical_profile(report: TopologyReport) -> np.ndarray:
    """``decay_cubical``'s depth profile: the ``cubical_complexity`` of the layers with feature maps, copies left
    out."""
    return np.array(
        [
            report.metrics[layer]["cubical_complexity"]
            for layer in report.layers
            if "cubical_complexity" in report.metrics[layer] and layer not in report.copies
        ]
    )


def _decay_of(profile: np.ndarray) -> float:
    """Theta of a depth profile: NaN for fewer than 4 layers, a non-finite value or an all-zero profile."""
    if len(profile) < 4 or not np.isfinite(profile).all() or not profile.any():
        return math.nan
    return topological_complexity_decay(profile)


def decay_cubical(report: TopologyReport) -> float:
    """Suresh et al.'s own score: the decay theta of the cubical-complexity profile over the monitored layers.

    The profile is each layer's ``cubical_complexity`` (Omega = beta_0 + beta_1 + beta_2 of the sublevel-set
    filtration of each image's feature map at ``cubical_threshold``, averaged over ``cubical_samples`` images),
    over the layers with feature maps, in depth order, copies left out; theta is
    :func:`~lightning_topo.functional.topological_complexity_decay` of it (needs at least 4 such layers).
    Lower (faster decay) was reported to predict higher fine-tuning accuracy across pretrained models (Spearman
    -0.90 over nine ImageNet models). Lower is better.
    """
    return _decay_of(cubical_profile(report))


SCORES: dict[str, Score] = {
    s.name: s
    for s in (
        Score("id_last", id_last, "min", ("id_twonn",), reads=last_hidden),
        Score("phdim_last", phdim_last, "min", ("id_phdim",), reads=last_hidden),
        Score("lifespan_sum", lifespan_sum, "min", ("total_persistence",), ("total_persistence",), last_hidden),
        Score("decay", decay, "min", ("total_persistence",), profile=persistence_profile),
        Score("decay_cubical", decay_cubical, "min", cubical=True, profile=cubical_profile),
    )
}
