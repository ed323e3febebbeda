"""``IntrinsicDimension``: TwoNN, MLE or PH-dimension of the representations seen, as a torchmetrics metric."""

from __future__ import annotations

from typing import Any, Literal

import torch

from lightning_topo.functional import intrinsic_dimension
from lightning_topo.functional._checks import check_choice
from lightning_topo.metrics._base import PointCloudMetric

__all__ = ["IntrinsicDimension"]


class IntrinsicDimension(PointCloudMetric):
    """Intrinsic dimension of every representation passed to ``update``, computed on ``compute``.

    Delegates to :func:`lightning_topo.functional.intrinsic_dimension` on the concatenated batches (gathered
    across processes; a seeded subsample of ``max_points`` when there are more). Returns
    ``{f"{prefix}id_{method}": tensor}`` for ``self.log_dict``.

    Args:
        method: ``"twonn"``, ``"mle"`` or ``"phdim"``.
        max_points: cap on the points used by ``compute``.
        seed: seed of that cap (and of the PH-dimension subsamples).
        prefix: prepended to the key.
        **kwargs: torchmetrics ``Metric`` options.

    Example:
        >>> metric = IntrinsicDimension("twonn")
        >>> g = torch.Generator().manual_seed(0)
        >>> for _ in range(4):
        ...     metric.update(torch.rand(250, 2, generator=g) @ torch.eye(2, 6))
        >>> round(float(metric.compute()["id_twonn"]))
        2
    """

    def __init__(
        self,
        method: Literal["twonn", "mle", "phdim"] = "twonn",
        max_points: int = 5000,
        seed: int = 0,
        prefix: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(max_points=max_points, seed=seed, **kwargs)
        self.method = check_choice("method", method, ("twonn", "mle", "phdim"))
        self.prefix = prefix

    def compute(self) -> dict[str, torch.Tensor]:
        gen = torch.Generator().manual_seed(self.seed)
        value = intrinsic_dimension(self.points(), self.method, generator=gen)
        return {f"{self.prefix}id_{self.method}": torch.tensor(value, dtype=torch.float32, device=self.device)}
