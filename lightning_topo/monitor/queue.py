"""The measurements in flight and the worker pool they run on.

Every measurement is queued: ``compute="sync"`` waits for it at once, ``compute="async"`` collects it at a later
hook. The pool is started once per fit (warm across measurements) and falls back to the main process, with one
warning, if its workers die.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED
from concurrent.futures import wait as wait_any
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from lightning_topo._warnings import warn_once
from lightning_topo.engine import (
    FigureRequest,
    LayerResult,
    LayerSample,
    Measurement,
    WorkerPool,
    auto_workers,
    start_measurement,
)
from lightning_topo.options import MeasureOptions, MonitorOptions, Options
from lightning_topo.report import TopologyReport

__all__ = ["Finished", "MeasurementQueue", "to_cpu"]


def to_cpu(sample: LayerSample) -> LayerSample:
    """A copy of ``sample`` on the CPU."""

    def cpu(t: Any) -> Any:
        return None if t is None else t.cpu()

    return LayerSample(
        cpu(sample.points), cpu(sample.labels), dict(sample.problems), cpu(sample.volumes), sample.is_output
    )


@dataclass
class Finished:
    """A measurement whose report is complete."""

    report: TopologyReport
    images: dict[str, dict[str, np.ndarray]]
    requests: dict[str, FigureRequest] | None


class MeasurementQueue:
    """Starts measurements on the pool (or here) and hands them back, oldest first, once complete."""

    def __init__(self, options: Options, settings: MonitorOptions) -> None:
        self.options = options
        self.settings = settings
        self._pool: WorkerPool | None = None
        self._serial = False  # the pool broke once: compute here from now on
        self._pending: list[tuple[Measurement, dict[str, FigureRequest] | None]] = []
        self.cores: int | None = None  # the cores of this process (DDP ranks on one machine share the machine's)
        self.costs: dict[str, float] = {}  # DDP: each layer's seconds at its last measurement, the same on every rank
        # how far past its H1 horizon each layer's deaths went at its last measurement (the engine's speed hint)
        self.reaches: dict[str, float | None] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def workers(self, n_layers: int) -> int:
        """How many worker processes a measurement of ``n_layers`` layers uses."""
        if self._serial:
            return 0
        return auto_workers(
            self.settings.workers,
            n_layers=n_layers,
            n_samples=self.options.n_samples,
            maxdim=self.options.measure.maxdim,
            background=self.settings.compute == "async",
            cores=self.cores,
        )

    def open(self, n_layers: int) -> None:
        """Start the pool now (when it will be used), so that its workers are ready by the first measurement."""
        workers = self.workers(n_layers)
        if workers and self._pool is None:
            self._pool = WorkerPool(workers, cores=self.cores)
            self._pool.warm_up()
        elif not workers:
            import gph  # noqa: F401  # measured here: giotto-ph's imports (scikit-learn) now, not in the first measurement

    def submit(
        self,
        samples: dict[str, LayerSample],
        epoch: int | None,
        step: int | None,
        requests: dict[str, FigureRequest] | None,
    ) -> None:
        """Start measuring ``samples`` (on the pool when there is one).

        With ``compute="async"`` the samples go to the workers as CPU copies, so the training loop never waits for
        device work (distances, ID) either; synchronously, samples on an accelerator are prepared there first.
        """
        self.open(len(samples))
        if self.settings.compute == "async":
            samples = {alias: to_cpu(sample) for alias, sample in samples.items()}
        measurement = start_measurement(
            samples,
            self._measure_options(),
            score=self.options.score,
            pool=self._pool,
            figures=requests,
            epoch=epoch,
            step=step,
            reaches=self.reaches,
        )
        self._pending.append((measurement, requests))

    def measure_share(
        self, samples: dict[str, LayerSample], requests: dict[str, FigureRequest] | None
    ) -> tuple[dict[str, LayerResult], float]:
        """Measure ``samples`` (a DDP rank's share of the layers) now: per-layer results and the elapsed time.

        A layer whose computation fails gets a ``failed`` problem, whatever ``on_error``: raising here would raise
        on this rank only and leave the others waiting for it in the gather. With ``on_error="raise"``,
        ``check_problems`` raises on every rank once the results are shared."""
        self.open(len(samples))
        measurement = start_measurement(
            samples, self._measure_options(), pool=self._pool, figures=requests, reaches=self.reaches
        )
        results = measurement.results("warn")
        self._check_pool(measurement)
        return results, measurement.elapsed_s

    def measure_taken(
        self,
        take: Callable[[], tuple[str, LayerSample] | None],
        requests: dict[str, FigureRequest] | None,
        n_layers: int,
    ) -> tuple[dict[str, LayerResult], float]:
        """Measure the layers that ``take`` hands out (``None``: no more), as many at once as this process has
        workers, taking the next one as soon as one finishes: DDP ranks that draw from one shared counter finish
        together, whatever each layer costs. Failures are problems, as in :meth:`measure_share`."""
        self.open(n_layers)
        start = time.perf_counter()
        capacity = self._pool.workers if self._pool is not None else 1
        running: list[Measurement] = []
        results: dict[str, LayerResult] = {}
        exhausted = False
        while True:
            while not exhausted and len(running) < capacity:
                taken = take()
                if taken is None:
                    exhausted = True
                    break
                alias, sample = taken
                request = {alias: requests[alias]} if requests and alias in requests else None
                running.append(
                    start_measurement(
                        {alias: sample}, self._measure_options(), pool=self._pool, figures=request, reaches=self.reaches
                    )
                )
            if not running:
                break
            if len(running) > 1:
                wait_any([f for m in running for f in m.futures], return_when=FIRST_COMPLETED)
            finished = next((m for m in running if m.done()), running[0])
            running.remove(finished)
            results.update(finished.results("warn"))
            self._check_pool(finished)
        return results, time.perf_counter() - start

    def _measure_options(self) -> MeasureOptions:
        # this process's share of the cores: in its workers, or here under DDP (giotto-ph would take every core)
        threads = self._pool.threads if self._pool is not None else self.cores
        return self.options.measure if threads is None else replace(self.options.measure, n_threads=threads)

    def _check_pool(self, measurement: Measurement) -> None:
        if measurement.pool_broke and self._pool is not None:
            warn_once(
                "TopologyMonitor's worker processes stopped working; the layers were computed in the main "
                "process and will be from now on."
            )
            self.close()
            self._serial = True

    def ready(self, wait: bool) -> Iterator[Finished]:
        """The complete measurements, oldest first (all of them, waiting, with ``wait=True``)."""
        while self._pending and (wait or self._pending[0][0].done()):
            measurement, requests = self._pending.pop(0)
            try:
                report = measurement.report(self.options.on_error)
            except BaseException:
                self._pending.clear()
                raise
            self._check_pool(measurement)
            yield Finished(report, measurement.images, requests)

    def wait_oldest(self) -> Finished:
        """Wait for the oldest measurement (there must be one: a bare ``next()`` would raise StopIteration,
        which Lightning's loops read as "stop the epoch")."""
        if not self._pending:
            raise RuntimeError("TopologyMonitor: no measurement is pending (an internal ordering error).")
        return next(self.ready(wait=True))

    def close(self) -> None:
        """Shut the pool down (pending measurements are kept; they finish in the main process if needed)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    @property
    def pool(self) -> WorkerPool | None:
        return self._pool
