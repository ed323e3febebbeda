"""torchmetrics metrics that delegate to :mod:`lightning_topo.functional`."""

from lightning_topo.metrics.intrinsic_dimension import IntrinsicDimension
from lightning_topo.metrics.persistence import PersistenceDescriptors

__all__ = ["IntrinsicDimension", "PersistenceDescriptors"]
