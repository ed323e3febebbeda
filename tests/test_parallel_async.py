"""Layers computed in worker processes, and compute='async': same numbers as the serial, synchronous path."""

import math
from typing import Any

import pytest
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

from lightning_topo import TopologyMonitor
from lightning_topo._compute import ComputeConfig, compute_report
from lightning_topo._pool import LayerPool
from tests._models import RecordingLogger, TinyNet, trainer


def _samples() -> dict[str, torch.Tensor | None]:
    g = torch.Generator().manual_seed(0)
    return {
        "a": torch.randn(120, 5, generator=g),
        "b": torch.randn(120, 30, generator=g).relu(),
        "bad": torch.full((120, 4), float("nan")),
        "none": None,
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
    config = ComputeConfig(maxdim=1, ph_samples=80, descriptors=("betti", "total_persistence", "entropy", "id_twonn"))
    serial = compute_report(_samples(), config)
    pool = LayerPool(workers=2, threads=1)
    try:
        parallel = compute_report(_samples(), config, executor=pool.executor)
    finally:
        pool.shutdown()
    _equal_reports(serial, parallel)
    assert "NaN" in parallel.problems["bad"]


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
    assert not async_monitor._pending
    assert async_monitor._pool is None  # shut down at teardown


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
    assert monitor._pool is None


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
    assert TopologyMonitor(n_samples=64)._n_workers(5) == 0
    assert TopologyMonitor(n_samples=512, maxdim=0)._n_workers(5) == 0
    from lightning_topo._pool import available_cores

    expected = min(5, available_cores()) if available_cores() > 1 else 0
    assert TopologyMonitor(n_samples=512)._n_workers(5) == expected
    assert TopologyMonitor(n_samples=64, compute="async")._n_workers(5) >= 1


def test_max_scale_caps_the_filtration():
    logger = RecordingLogger()
    monitor = TopologyMonitor(n_samples=64, max_scale=0.3, descriptors=["betti", "total_persistence"])
    trainer(max_epochs=1, logger=logger, callbacks=[monitor]).fit(TinyNet())
    dgms = monitor.last_report.diagrams["hidden"]
    assert dgms.finite(0)[:, 1].max() <= 0.3
    assert dgms.n_essential(0) >= 1


def test_a_broken_pool_falls_back_to_the_main_process():
    config = ComputeConfig(maxdim=1)
    pool = LayerPool(workers=1, threads=1)
    pool.executor.shutdown(wait=True)
    pool.executor._broken = "simulated"  # type: ignore[attr-defined]  # submit now raises BrokenProcessPool
    samples = {"a": torch.randn(60, 4, generator=torch.Generator().manual_seed(0))}
    from lightning_topo._compute import start_report

    pending = start_report(samples, config, executor=pool.executor)
    report = pending.result()
    assert pending.pool_broke
    assert report.metrics["a"] == compute_report(samples, config).metrics["a"]
