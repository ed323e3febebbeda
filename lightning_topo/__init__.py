"""lightning-topo: the topology and geometry of layer representations, inside a Lightning training loop."""

from lightning_topo.diagrams import PersistenceDiagrams

__all__ = ["PersistenceDiagrams"]

__version__ = "0.1.0.dev0"
