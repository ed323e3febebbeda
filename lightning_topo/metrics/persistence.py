"""``PersistenceDescriptors``: the callback's per-layer descriptors as a torchmetrics metric."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from lightning_topo.engine import LayerSample, measure_layer
from lightning_topo.functional.registry import DEFAULT_DESCRIPTORS
from lightning_topo.metrics._base import PointCloudMetric
from lightning_topo.options import Normalize, build_options

__all__ = ["PersistenceDescriptors"]


class PersistenceDescriptors(PointCloudMetric):
    """Betti numbers, total persistence, entropy and intrinsic dimension of the representations seen.

    ``update(x)`` stores a batch ``(B, ...)`` (flattened per example); ``compute()`` concatenates every batch
    (across processes too: the state is a list reduced with ``cat``), keeps a seeded uniform subsample of
    ``max_points`` when there are more, and returns ``{descriptor: tensor}`` with the same keys and values as
    ``TopologyMonitor`` logs for a layer, ready for ``self.log_dict``. It only delegates to the engine's
    :func:`~lightning_topo.engine.measure_layer`, with options validated as everywhere else.

    Args:
        maxdim: highest homology dimension.
        descriptors: as ``TopologyMonitor(descriptors=...)``.
        normalize: distance normalisation (``"quantile"``, ``"median"``, ``"max"`` or ``None``).
        betti_scale: filtration value of the Betti numbers (normalised units).
        max_points: cap on the points used by ``compute``.
        seed: seed of that cap.
        prefix: prepended to every key of the result (e.g. ``"val/encoder/"``).

    Example:
        >>> metric = PersistenceDescriptors(maxdim=1, prefix="val/")
        >>> metric.update(torch.randn(50, 4, generator=torch.Generator().manual_seed(0)))
        >>> sorted(metric.compute())[:2]
        ['val/betti_0', 'val/betti_1']
    """

    def __init__(
        self,
        maxdim: int = 1,
        descriptors: Sequence[str] = DEFAULT_DESCRIPTORS,
        normalize: Normalize = "quantile",
        betti_scale: float = 0.2,
        max_points: int = 1000,
        seed: int = 0,
        prefix: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(max_points=max_points, seed=seed, **kwargs)
        self.options = build_options(
            maxdim=maxdim, descriptors=descriptors, normalize=normalize, betti_scale=betti_scale, seed=seed
        ).measure
        self.prefix = prefix

    def compute(self) -> dict[str, torch.Tensor]:
        result = measure_layer(LayerSample(self.points()), self.options)
        device = self.device
        return {
            f"{self.prefix}{k}": torch.tensor(v, dtype=torch.float32, device=device) for k, v in result.metrics.items()
        }
