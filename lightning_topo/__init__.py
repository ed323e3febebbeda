"""lightning-topo: the topology and geometry of layer representations, inside a Lightning training loop.

The public names are imported on first use (PEP 562), so that importing a light submodule, as TensorBoard does with
the Topology dashboard's plugin at every start, does not import torch and Lightning.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lightning_topo._warnings import TopologyWarning

if TYPE_CHECKING:
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

_HOMES = {
    "AdversarialResult": "lightning_topo.adversarial",
    "PersistenceDiagrams": "lightning_topo.diagrams",
    "TopologyMonitor": "lightning_topo.monitor",
    "TopologyReport": "lightning_topo.report",
    "adversarial_geometry": "lightning_topo.adversarial",
    "analyze": "lightning_topo.analysis",
    "get_layer_names": "lightning_topo.capture",
    "rank_models": "lightning_topo.analysis",
}


def __getattr__(name: str) -> Any:
    """Import a public name, or a submodule (``lightning_topo.functional``), when it is first used."""
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
    elif not name.startswith("__"):
        try:
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names, ``__version__`` and the public submodules (not this file's own imports)."""
    import pkgutil

    submodules = {m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")}
    return sorted({*__all__, "__version__", *submodules})
