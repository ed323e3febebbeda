"""lightning-topo: the topology and geometry of layer representations, inside a Lightning training loop."""

from lightning_topo._warnings import TopologyWarning
from lightning_topo.adversarial import AdversarialResult, adversarial_geometry
from lightning_topo.analysis import analyze, rank_models
from lightning_topo.capture import get_layer_names
from lightning_topo.diagrams import PersistenceDiagrams
from lightning_topo.monitor import TopologyMonitor
from lightning_topo.report import TopologyReport

__all__ = [
    "AdversarialResult",
    "PersistenceDiagrams",
    "TopologyMonitor",
    "TopologyReport",
    "TopologyWarning",
    "adversarial_geometry",
    "analyze",
    "get_layer_names",
    "rank_models",
]

__version__ = "0.1.0.dev0"
