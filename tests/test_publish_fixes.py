"""Regressions of publishing: logger subclasses, side outputs that fail."""

from __future__ import annotations

import warnings

from lightning.pytorch.loggers import TensorBoardLogger

from lightning_topo import TopologyMonitor
from lightning_topo.monitor.publish import image_sinks
from tests._models import TinyNet, trainer


class _MyTensorBoard(TensorBoardLogger):
    """A user's subclass (a custom name or version)."""


def test_a_tensorboard_logger_subclass_gets_figures_without_a_warning(tmp_path):
    sinks, unable = image_sinks([_MyTensorBoard(tmp_path)])
    assert len(sinks) == 1
    assert unable == []
    logger = _MyTensorBoard(tmp_path)
    monitor = TopologyMonitor(layers=["hidden"], n_samples=48, maxdim=0)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*cannot show images.*")
        trainer(max_epochs=1, logger=logger, callbacks=[monitor]).fit(TinyNet())
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(logger.log_dir).Reload()
    assert "topo/hidden/betti_curves" in events.Tags()["images"]
