"""The Lightning side: the :class:`TopologyMonitor` callback (hooks only), DDP, the measurement queue, publishing."""

from lightning_topo.monitor.callback import TopologyMonitor

__all__ = ["TopologyMonitor"]
