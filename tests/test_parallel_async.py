"""Layers computed in worker processes, and compute='async': same numbers as the serial, synchronous path."""

import math
import multiprocessing
import os
import signal
from typing import Any

import pytest
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

from lightning_topo import TopologyMonitor, TopologyWarning
from lightning_topo.engine import LayerSample, WorkerPool, auto_workers, available_cores, measure
from lightning_topo.options import MeasureOptions
from tests._models import RecordingLogger, TinyNet, trainer


def _samples() -> dict[str, LayerSample]:
    g = torch.Generator().manual_seed(0)
    return {
        "a": LayerSample(torch.randn(120, 5, generator=g)),
        "b": LayerSample(torch.randn(120, 30, generator=g).relu()),
        "bad": LayerSample(torch.full((120, 4), float("nan"))),
        "none": LayerSample(None),
    }


def _equal_reports(a: Any, b: Any) -> None:
    assert a.layers == b.layers
    assert a.problems.keys() == b.problems.keys()
    for layer in a.layers:
        for key, value in a.metrics[layer].items():
            other = b.metrics[layer][key]
            assert (math.isnan(value) and math.isnan(other)) or value == other, (layer, key)
        if layer in a.diagrams:
            assert a.diagrams[layer].allclose(b.diagrams[layer], atol=0, rtol=0)


def test_layers_in_worker_processes_equal_the_serial_path():
    options = MeasureOptions(maxdim=1, ph_samples=80)
    serial = measure(_samples(), options)
    pool = WorkerPool(workers=2, threads=1)
    try:
        parallel = measure(_samples(), options, pool=pool)
    finally:
        pool.shutdown()
    _equal_reports(serial, parallel)
    assert "NaN" in parallel.problem_text("bad")


def _run(compute: str, **kwargs: Any) -> tuple[RecordingLogger, TopologyMonitor]:
    logger = RecordingLogger()
    monitor = TopologyMonitor(n_samples=64, compute=compute, workers=1, **kwargs)
    trainer(max_epochs=3, logger=logger, callbacks=[monitor]).fit(TinyNet())
    return logger, monitor


def _topo(logger: RecordingLogger) -> dict[str, list[float]]:
    keys = sorted(k for k in logger.logged_keys() if k.startswith("topo/") and k != "topo/time_s")
    return {k: logger.values(k) for k in keys}


def test_async_results_equal_sync_results_and_are_all_logged_by_the_end_of_fit():
    torch.manual_seed(0)
    sync_logger, sync_monitor = _run("sync")
    torch.manual_seed(0)
    async_logger, async_monitor = _run("async")
    # the same numbers (pl_module.log stores float32, async hands the loggers the float64 values)
    sync_values, async_values = _topo(sync_logger), _topo(async_logger)
    assert sync_values.keys() == async_values.keys()
    for key, values in sync_values.items():
        assert async_values[key] == pytest.approx(values, rel=1e-6, nan_ok=True), key
    strip = [{k: v for k, v in h["scalars"].items() if k != "topo/time_s"} for h in sync_monitor.history]
    assert [{k: v for k, v in h["scalars"].items() if k != "topo/time_s"} for h in async_monitor.history] == strip
    assert [h["epoch"] for h in async_monitor.history] == [0, 1, 2]
    assert not multiprocessing.active_children()  # the pool was shut down at teardown


class _Interrupt(Callback):
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if trainer.current_epoch == 2:
            raise self.exc


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_async_results_are_flushed_when_fit_dies(exc):
    logger = RecordingLogger()
    monitor = TopologyMonitor(n_samples=64, compute="async", workers=1)
    tr = trainer(max_epochs=5, logger=logger, callbacks=[monitor, _Interrupt(exc)])
    # Lightning handles a keyboard interrupt (calling on_exception) and exits with status 1
    expected = SystemExit if isinstance(exc, KeyboardInterrupt) else RuntimeError
    with pytest.raises(expected):
        tr.fit(TinyNet())
    assert [h["epoch"] for h in monitor.history] == [0, 1]
    assert len(logger.values("topo/hidden/id_twonn")) == 2
    assert not multiprocessing.active_children()


def test_async_results_are_flushed_when_early_stopping_ends_fit():
    logger = RecordingLogger()
    monitor = TopologyMonitor(n_samples=64, compute="async", workers=1)
    stopper = EarlyStopping(monitor="val_loss", patience=0, min_delta=10.0)
    tr = trainer(max_epochs=10, logger=logger, callbacks=[monitor, stopper])
    tr.fit(TinyNet())
    assert tr.current_epoch < 10
    assert len(monitor.history) == tr.current_epoch
    assert len(logger.values("topo/hidden/id_twonn")) == tr.current_epoch


def test_async_results_are_logged_at_the_step_of_their_epoch():
    logger = RecordingLogger()
    monitor = TopologyMonitor(n_samples=64, compute="async", workers=1)
    trainer(max_epochs=2, logger=logger, callbacks=[monitor]).fit(TinyNet())
    rows = [m for m in logger.metrics if "topo/hidden/id_twonn" in m]
    assert [r["epoch"] for r in rows] == [0.0, 1.0]


@pytest.mark.parametrize(
    "watcher",
    [
        lambda: EarlyStopping(monitor="topo/score"),
        lambda: ModelCheckpoint(monitor="topo/hidden/id_twonn"),
    ],
)
def test_async_with_a_monitor_on_a_topo_key_is_refused_at_setup(watcher):
    monitor = TopologyMonitor(n_samples=64, compute="async", workers=1)
    with pytest.raises(ValueError, match=r"compute='async'.*compute='sync'"):
        trainer(max_epochs=1, callbacks=[monitor, watcher()], enable_checkpointing=True).fit(TinyNet())


def test_invalid_compute_and_workers_are_refused():
    with pytest.raises(ValueError, match="`compute`"):
        TopologyMonitor(compute="later")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`workers`"):
        TopologyMonitor(compute="async", workers=0)
    with pytest.raises(ValueError, match="`max_scale`"):
        TopologyMonitor(max_scale=0.0)


def test_auto_workers_stay_serial_for_small_samples_and_parallel_for_large():
    assert auto_workers("auto", n_layers=5, n_samples=64, maxdim=1) == 0
    assert auto_workers("auto", n_layers=5, n_samples=512, maxdim=0) == 0
    expected = min(5, available_cores()) if available_cores() > 1 else 0
    assert auto_workers("auto", n_layers=5, n_samples=512, maxdim=1) == expected
    assert auto_workers("auto", n_layers=5, n_samples=64, maxdim=1, background=True) >= 1
    assert auto_workers(3, n_layers=5, n_samples=64, maxdim=1) == 3


def test_max_scale_caps_the_filtration():
    logger = RecordingLogger()
    monitor = TopologyMonitor(n_samples=64, max_scale=0.3, descriptors=["betti", "total_persistence"])
    trainer(max_epochs=1, logger=logger, callbacks=[monitor]).fit(TinyNet())
    dgms = monitor.last_report.diagrams["hidden"]
    assert dgms.finite(0)[:, 1].max() <= 0.3
    assert dgms.n_essential(0) >= 1


def test_a_broken_pool_falls_back_to_the_main_process():
    options = MeasureOptions(maxdim=1)
    samples = {"a": LayerSample(torch.randn(60, 4, generator=torch.Generator().manual_seed(0)))}
    pool = WorkerPool(workers=1, threads=1)
    pool.shutdown()  # a dead pool: every submission fails
    report = measure(samples, options, pool=pool)
    assert pool.broken
    assert report.metrics["a"] == measure(samples, options).metrics["a"]


class _KillWorkers(Callback):
    """Kills the monitor's worker processes before the second validation, as an OOM killer would."""

    def on_validation_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if trainer.current_epoch == 1:
            for child in multiprocessing.active_children():
                os.kill(child.pid, signal.SIGKILL)
                child.join()


def test_workers_killed_during_fit_fall_back_to_the_main_process_with_one_warning():
    logger = RecordingLogger()
    monitor = TopologyMonitor(n_samples=64, workers=2)
    with pytest.warns(TopologyWarning, match="worker processes stopped working") as record:
        trainer(max_epochs=3, logger=logger, callbacks=[monitor, _KillWorkers()]).fit(TinyNet())
    assert sum("stopped working" in str(w.message) for w in record) == 1
    values = logger.values("topo/hidden/id_twonn")
    assert len(values) == 3
    assert all(math.isfinite(v) for v in values)
