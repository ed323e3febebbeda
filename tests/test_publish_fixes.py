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


def test_side_outputs_that_raise_become_warnings_and_the_scalars_are_still_logged(tmp_path, monkeypatch):
    from lightning_topo import plotting
    from lightning_topo.monitor import publish
    from lightning_topo.report import TopologyReport
    from tests._models import RecordingLogger

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(plotting, "layer_figures", broken)
    monkeypatch.setattr(plotting, "plot_depth_profile", broken)
    monkeypatch.setattr(plotting, "fit_range", broken)
    monkeypatch.setattr(publish, "add_report", broken)
    monkeypatch.setattr(TopologyReport, "save", broken)
    recording = RecordingLogger()
    monitor = TopologyMonitor(layers=["hidden", "head"], n_samples=48, maxdim=0, save_diagrams=True)
    fit = trainer(max_epochs=2, logger=[TensorBoardLogger(tmp_path), recording], callbacks=[monitor])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit.fit(TinyNet())
    messages = [str(w.message) for w in caught if "could not" in str(w.message)]
    for what in (
        "draw the figures of layer 'hidden'",
        "draw the depth profile",
        "write the report files",
        "Topology dashboard's summary",
        "keep the Betti curves of layer 'hidden'",
    ):
        matching = [m for m in messages if what in m]
        assert len(matching) == 1, (what, messages)  # once per fit, not once per validation
        assert "RuntimeError: boom" in matching[0]
    assert len(recording.values("topo/hidden/betti_0")) == 2
    assert len(monitor.history) == 2


def test_the_custom_scalars_layout_has_a_category_for_a_descriptor_the_first_layer_lacks():
    from lightning_topo.monitor.publish import custom_scalars_layout
    from lightning_topo.report import TopologyReport

    report = TopologyReport(
        ["fc", "conv"], {"fc": {"id_twonn": 3.0}, "conv": {"id_twonn": 4.0, "cubical_complexity": 2.0}}
    )
    layout = custom_scalars_layout(report, "topo")
    assert list(layout) == ["topo: id_twonn", "topo: cubical_complexity"]
    assert list(layout["topo: cubical_complexity"]) == ["conv"]


def test_a_request_made_before_the_last_measurement_was_published_is_drawn_with_its_curves(tmp_path):
    """``compute="async"``: the next measurement is submitted before the last one is logged, so its figure request
    lacks that measurement's curves (no Betti-evolution heat map was ever drawn in short async runs)."""
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.data import DataLoader

    from lightning_topo import analyze
    from lightning_topo.monitor.publish import Publisher
    from tests._models import TinyNet, make_data

    logger = TensorBoardLogger(tmp_path, name="tb")
    trainer = pl.Trainer(logger=logger, accelerator="cpu", enable_progress_bar=False)
    publisher = Publisher("topo", figure_every=1, save_diagrams=False)
    reports = [
        analyze(TinyNet(), DataLoader(make_data(seed=s), batch_size=16), layers=["hidden"], n_samples=48)
        for s in (0, 1)
    ]
    requests = [publisher.figure_requests(trainer, ["hidden"], epoch, epoch) for epoch in (0, 1)]  # both first
    for epoch, (report, request) in enumerate(zip(reports, requests, strict=True)):
        report.epoch, report.step = epoch, epoch
        assert request is not None
        assert request["hidden"].history == []
        publisher.publish(trainer, report, {}, request)
    logger.experiment.flush()
    acc = EventAccumulator(logger.log_dir, size_guidance={"images": 0})
    acc.Reload()
    assert [e.step for e in acc.Images("topo/hidden/betti_evolution")] == [1]
