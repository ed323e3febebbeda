"""Shared state handling of the point-cloud metrics: list states reduced with ``cat``, a seeded cap."""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from lightning_topo.capture import reduce_samples
from lightning_topo.functional._checks import check_positive_int


class PointCloudMetric(Metric):
    """Accumulates ``(B, ...)`` batches as ``(B, F)`` points; ``points()`` returns them, capped at ``max_points``."""

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    def __init__(self, max_points: int = 1000, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_points = check_positive_int("max_points", max_points, minimum=3)
        self.seed = int(seed)
        self.add_state("cloud", default=[], dist_reduce_fx="cat")

    def update(self, x: torch.Tensor) -> None:
        """Add a batch of representations ``(B, ...)`` (flattened per example)."""
        if not isinstance(x, torch.Tensor) or x.ndim == 0:
            raise ValueError(f"Expected a tensor with a batch dimension but got {type(x).__name__}.")
        self.cloud.append(reduce_samples(x, "flatten", max_features=0))  # type: ignore[union-attr,operator]

    def points(self) -> torch.Tensor:
        """All points seen (gathered across processes), a seeded uniform subsample of ``max_points`` if more."""
        pts = dim_zero_cat(self.cloud)  # type: ignore[arg-type]
        if pts.shape[0] > self.max_points:
            gen = torch.Generator().manual_seed(self.seed)
            idx = torch.randperm(pts.shape[0], generator=gen)[: self.max_points].sort().values
            pts = pts[idx.to(pts.device)]
        return pts
