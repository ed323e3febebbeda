"""``TopologyReport``: what one measurement (one epoch, or one ``analyze`` call) found, layer by layer."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lightning_topo.diagrams import PersistenceDiagrams

__all__ = ["TopologyReport"]


@dataclass
class TopologyReport:
    """Per-layer descriptors and diagrams of one measurement.

    Attributes:
        layers: layer aliases in depth order (``"input"`` first when monitored).
        metrics: ``{layer: {descriptor: value}}``; a layer that could not be measured holds NaN values.
        diagrams: ``{layer: PersistenceDiagrams}`` for the layers that were measured.
        betti_curves: ``{layer: (maxdim + 1, len(grid)) array}`` on the shared ``grid``.
        grid: the filtration grid of the Betti curves (normalised distances).
        problems: ``{layer: why it could not be measured}``.
        n_samples: number of examples measured.
        epoch: the training epoch (``None`` outside training).
        score: the configured score, when one is.
        elapsed_s: wall time of the computation.
        class_metrics: ``{layer: {class: {descriptor: value}}}`` when labels are known.
    """

    layers: list[str]
    metrics: dict[str, dict[str, float]]
    diagrams: dict[str, PersistenceDiagrams] = field(default_factory=dict)
    betti_curves: dict[str, np.ndarray] = field(default_factory=dict)
    grid: np.ndarray = field(default_factory=lambda: np.zeros(0))
    problems: dict[str, str] = field(default_factory=dict)
    n_samples: int = 0
    epoch: int | None = None
    score: float | None = None
    elapsed_s: float = 0.0
    class_metrics: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)
    images: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, dict[str, float]]:
        """``{layer: {descriptor: value}}`` as plain floats."""
        return {layer: {k: float(v) for k, v in self.metrics[layer].items()} for layer in self.layers}

    def scalars(self, prefix: str = "topo") -> dict[str, float]:
        """The flat logging dict: ``{"topo/{layer}/{descriptor}": value}`` (plus ``topo/score`` when set)."""
        out = {f"{prefix}/{layer}/{name}": float(v) for layer in self.layers for name, v in self.metrics[layer].items()}
        if self.score is not None:
            out[f"{prefix}/score"] = float(self.score)
        return out

    def profile(self, descriptor: str) -> np.ndarray:
        """One descriptor across layers, in depth order (NaN where a layer was not measured)."""
        return np.array([self.metrics[layer].get(descriptor, math.nan) for layer in self.layers], dtype=np.float64)
