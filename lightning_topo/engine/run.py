"""Many layers, serially or on the worker pool: samples in, a complete :class:`TopologyReport` out.

:func:`start_measurement` starts every layer and returns a :class:`Measurement` at once (the pool computes while
the caller goes on); :meth:`Measurement.report` waits and assembles the report, score included. :func:`measure`
does both. A failure inside one layer becomes that layer's problem (NaN metrics) unless ``on_error="raise"``.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from lightning_topo.engine.layer import LayerResult, LayerSample, PreparedLayer, failed, finish_layer, prepare_layer
from lightning_topo.engine.layer import measure_layer as _measure_layer
from lightning_topo.engine.pool import WorkerPool
from lightning_topo.options import MeasureOptions, OnError
from lightning_topo.report import TopologyReport
from lightning_topo.scores import Score

__all__ = [
    "FigureRequest",
    "Measurement",
    "assemble",
    "check_problems",
    "find_copies",
    "measure",
    "run_layer",
    "sample_size",
    "start_measurement",
]

DrawFn = Callable[[LayerResult, "FigureRequest", np.ndarray], dict[str, np.ndarray]]


@dataclass(frozen=True)
class FigureRequest:
    """Ask the worker computing a layer to draw its figures right after (in parallel, off the main process).

    ``draw`` is a module-level function (picklable by reference), e.g. :func:`lightning_topo.plotting.layer_figures`;
    the engine never imports plotting itself. The other fields are what ``draw`` reads besides the layer's result:
    ``history`` (earlier ``(epoch, Betti curves)`` of the layer, on its plotted range), ``x_max`` (the layer's
    plotted scale range, ``None`` until its first measurement fixes it), ``mark`` (a scale to mark: the logged
    ``betti_scale``) and ``steps`` (the step of each ``history`` entry and of this measurement, labelling the
    heat map's rows when an epoch holds several measurements; ``None`` when unknown).
    """

    title: str
    epoch: int
    draw: DrawFn
    history: list[tuple[int, np.ndarray]] = field(default_factory=list)
    x_max: float | None = None
    mark: float | None = None
    steps: list[int] | None = None


def run_layer(
    payload: LayerSample | PreparedLayer, options: MeasureOptions, request: FigureRequest | None
) -> LayerResult:
    """What a worker runs: the whole layer from a CPU sample, or the CPU part of a prepared layer; then, when
    asked, the layer's figures (drawing costs as much as computing a small layer)."""
    result = finish_layer(payload, options) if isinstance(payload, PreparedLayer) else _measure_layer(payload, options)
    if request is not None and result.diagrams is not None:
        try:
            result.images = request.draw(result, request, options.grid)
        except Exception:  # a figure is never worth a lost measurement: the main process draws it instead
            result.images = None
    return result


def _done(result: LayerResult) -> Future[LayerResult]:
    future: Future[LayerResult] = Future()
    future.set_result(result)
    return future


class Measurement:
    """Layer computations in flight; :meth:`report` waits for them and assembles the report."""

    def __init__(
        self,
        layers: list[str],
        futures: dict[str, Future[LayerResult]],
        payloads: dict[str, LayerSample | PreparedLayer],
        options: MeasureOptions,
        score: Score | None,
        n_samples: int,
        epoch: int | None,
        step: int | None,
        class_counts: dict[int, int] | None = None,
        started: float | None = None,
    ) -> None:
        self.layers = layers
        self.class_counts = class_counts or {}
        self.options = options
        self.score = score
        self.n_samples = n_samples
        self.epoch = epoch
        self.step = step
        self.pool_broke = False
        self.images: dict[str, dict[str, np.ndarray]] = {}
        self.copies: dict[str, str] = {}
        self.outputs: list[str] = []
        self._futures = futures
        self._payloads = payloads
        self._start = time.perf_counter() if started is None else started
        self._finished = self._start
        for future in futures.values():
            future.add_done_callback(self._note_time)

    def _note_time(self, _: Future[LayerResult]) -> None:
        self._finished = max(self._finished, time.perf_counter())

    def done(self) -> bool:
        """Whether every layer has finished (never blocks)."""
        return all(f.done() for f in self._futures.values())

    @property
    def futures(self) -> list[Future[LayerResult]]:
        """The layers' computations (one per layer measured; a copy shares its original's)."""
        return list(self._futures.values())

    @property
    def elapsed_s(self) -> float:
        """Wall time from the start to the last finished layer (so far)."""
        return (self._finished if self._futures else time.perf_counter()) - self._start

    def results(self, on_error: OnError = "warn") -> dict[str, LayerResult]:
        """Wait for every layer. A broken pool's layers are computed here instead."""
        out: dict[str, LayerResult] = {}
        for alias in self.layers:
            try:  # a failure of the re-run too is a problem: under DDP a raise would leave the other ranks waiting
                try:
                    out[alias] = self._futures[alias].result()
                except BrokenProcessPool:
                    self.pool_broke = True
                    out[alias] = run_layer(self._payloads[alias], self.options, None)
            except Exception as err:
                if on_error == "raise":
                    raise
                why = f"its computation failed ({type(err).__name__}: {err})"
                out[alias] = failed(self.options, {"failed": why})
        return out

    def report(self, on_error: OnError = "warn") -> TopologyReport:
        """Wait for every layer and assemble the report (score included)."""
        results = self.results(on_error)
        elapsed = self.elapsed_s
        self.images = {alias: r.images for alias, r in results.items() if r.images and alias not in self.copies}
        report = TopologyReport(
            layers=list(self.layers),
            metrics={},
            n_samples=self.n_samples,
            epoch=self.epoch,
            step=self.step,
            elapsed_s=elapsed,
            class_counts=dict(self.class_counts),
            copies=dict(self.copies),
            outputs=list(self.outputs),
        )
        return assemble(report, results, self.options, self.score)


def assemble(
    report: TopologyReport, results: Mapping[str, LayerResult], options: MeasureOptions, score: Score | None
) -> TopologyReport:
    """Fill ``report`` (its layers and metadata set) with per-layer results, then compute its score."""
    report.grid = options.grid
    report.per_class = options.per_class
    for alias in report.layers:
        res = results[alias]
        report.metrics[alias] = dict(res.metrics)
        if res.diagrams is not None:
            report.diagrams[alias] = res.diagrams
        if res.betti_curve is not None:
            report.betti_curves[alias] = res.betti_curve
        if res.problems:
            report.problems[alias] = dict(res.problems)
        if res.class_metrics:
            report.class_metrics[alias] = res.class_metrics
        if res.class_curves:
            report.class_betti_curves[alias] = res.class_curves
            report.class_diagrams[alias] = res.class_diagrams
        if res.ph_bound is not None:
            report.ph_bounds[alias] = res.ph_bound
    if score is not None:
        try:
            report.score = score(report)
        except Exception as err:
            report.score = math.nan
            report.score_problem = f"the score {score.name!r} failed ({type(err).__name__}: {err})"
        else:
            if math.isnan(report.score):
                report.score_problem = _why_nan(report, score)
    return report


def _why_nan(report: TopologyReport, score: Score) -> str:
    if score.profile is not None:
        finite = int(np.isfinite(score.profile(report)).sum())
        what = "cubical complexity" if score.cubical else "total persistence"
        where = " (feature maps: 4-D conv outputs)" if score.cubical else ""
        return (
            f"the score {score.name!r} is NaN: its depth profile needs the {what} of at least 4 monitored layers"
            f"{where}, other than copies, all finite and not all zero; {finite} of the monitored layers have a "
            "finite one"
        )
    if score.reads is None:
        return f"the score {score.name!r} is NaN"
    layer = score.reads(report)
    why = report.problem_text(layer) or "its value is NaN"
    return f"the score {score.name!r} reads layer {layer!r}, which is NaN: {why}"


def start_measurement(
    samples: Mapping[str, LayerSample],
    options: MeasureOptions,
    *,
    score: Score | None = None,
    pool: WorkerPool | None = None,
    figures: Mapping[str, FigureRequest] | None = None,
    epoch: int | None = None,
    step: int | None = None,
    reaches: dict[str, float | None] | None = None,
) -> Measurement:
    """Start every layer's computation: here, one after the other, or on ``pool``.

    With a pool, CPU samples go to the workers whole; samples on an accelerator are prepared on their device
    here (distances, ID, subsample, H0 tree) and only the float32 distance matrices go to a worker.

    ``reaches`` (``{layer: LayerResult.h1_reach}``, the pool's own when ``None``) holds how far past its H1 horizon
    each layer's deaths went at its last measurement; each layer's first cut is placed beyond it and the dict is
    updated as layers finish. Speed only: the numbers are the same without it.
    """
    started = time.perf_counter()
    futures: dict[str, Future[LayerResult]] = {}
    payloads: dict[str, LayerSample | PreparedLayer] = {}
    copies = find_copies(samples)
    order = list(samples)
    if pool is not None:
        # longest first (each layer's time at its last measurement; new layers first, in order): the workers
        # then finish together instead of one waiting for the other's last long layer
        order.sort(key=lambda alias: -pool.costs.get(alias, math.inf))
    if reaches is None and pool is not None:
        reaches = pool.reaches
    for alias in order:
        sample = samples[alias]
        if alias in copies:
            continue
        request = figures.get(alias) if figures else None
        reach = reaches.get(alias) if reaches is not None else None
        layer_options = options if reach is None else replace(options, horizon_reach=reach)
        try:
            if pool is None:
                futures[alias] = _done(run_layer(sample, layer_options, request))
            else:
                on_cpu = sample.points is None or sample.points.device.type == "cpu"
                payload = sample if on_cpu else prepare_layer(sample, layer_options)
                if isinstance(payload, LayerResult):
                    futures[alias] = _done(payload)
                    continue
                payloads[alias] = payload
                futures[alias] = pool.submit(run_layer, payload, layer_options, request)
                futures[alias].add_done_callback(functools.partial(_note_cost, pool.costs, alias))
            if reaches is not None:
                futures[alias].add_done_callback(functools.partial(_note_reach, reaches, alias))
        except Exception as err:
            future: Future[LayerResult] = Future()
            future.set_exception(err)
            futures[alias] = future
    for alias, original in copies.items():
        futures[alias] = futures[original]
        if original in payloads:
            payloads[alias] = payloads[original]
    n, counts = sample_size(samples)
    measurement = Measurement(list(samples), futures, payloads, options, score, n, epoch, step, counts, started)
    measurement.copies = copies
    measurement.outputs = [alias for alias, sample in samples.items() if sample.is_output]
    return measurement


def sample_size(samples: Mapping[str, LayerSample]) -> tuple[int, dict[int, int]]:
    """The number of examples in the samples (their longest layer) and ``{class: examples}`` from the first labels."""
    n = max((s.points.shape[0] for s in samples.values() if s.points is not None), default=0)
    labels = next((s.labels for s in samples.values() if s.labels is not None), None)
    counts = {} if labels is None else dict(zip(*(t.tolist() for t in labels.unique(return_counts=True)), strict=True))
    return n, counts


def _note_cost(costs: dict[str, float], alias: str, future: Future[LayerResult]) -> None:
    if not future.cancelled() and future.exception() is None:
        costs[alias] = future.result().seconds


def _note_reach(reaches: dict[str, float | None], alias: str, future: Future[LayerResult]) -> None:
    if not future.cancelled() and future.exception() is None:
        reaches[alias] = future.result().h1_reach


def find_copies(samples: Mapping[str, LayerSample]) -> dict[str, str]:
    """``{layer: earlier layer}`` for layers whose sample equals an earlier one exactly (an identity module, the
    model's output after its last layer, a pooling layer after a 1 x 1 feature map): measured once. Feature maps
    kept for cubical persistence must be equal too (a global pooling equals the pooled sample of the feature maps
    before it, not their cubical persistence)."""
    seen: list[tuple[str, LayerSample]] = []
    copies: dict[str, str] = {}
    for alias, sample in samples.items():
        if sample.points is None or sample.problems:
            continue
        match = next(
            (
                a
                for a, earlier in seen
                if _same(earlier.points, sample.points) and _same(earlier.volumes, sample.volumes)
            ),
            None,
        )
        if match is None:
            seen.append((alias, sample))
        else:
            copies[alias] = match
    return copies


def _same(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and a.device == b.device and torch.equal(a, b)


def measure(
    samples: Mapping[str, LayerSample],
    options: MeasureOptions,
    *,
    score: Score | None = None,
    pool: WorkerPool | None = None,
    on_error: OnError = "warn",
    epoch: int | None = None,
    step: int | None = None,
) -> TopologyReport:
    """:func:`start_measurement` and wait for its report."""
    return start_measurement(samples, options, score=score, pool=pool, epoch=epoch, step=step).report(on_error)


def check_problems(
    report: TopologyReport,
    on_error: OnError,
    warn: Callable[[tuple[Any, ...], str], None],
    source: str = "lightning-topo",
    when: str = "",
) -> None:
    """Raise (``on_error="raise"``) or warn about every problem of ``report``, and about a NaN score.

    ``warn(key, message)`` decides how often a message is shown (the callback: once per layer and kind per fit).
    Messages read "{source}: layer 'x' {when}: {why}; its metrics are NaN."
    """
    when = f" {when}" if when else ""
    for layer in report.layers:
        kinds = report.problems.get(layer, {})
        if not kinds or layer in report.copies:  # a copy shares its original's problems: said once
            continue
        why = report.problem_text(layer)
        nan = [math.isnan(v) for v in report.metrics[layer].values()]
        if on_error == "raise" and any(nan):  # notes (duplicates, a sparse subsample) leave the values: no error
            raise RuntimeError(f"{source}: layer {layer!r}{when} could not be measured: {why}.")
        consequence = "; its metrics are NaN" if all(nan) else "; the affected metrics are NaN" if any(nan) else ""
        for kind, message in kinds.items():
            message = message.rstrip(". ")  # a library's sentence ("... Returning NaN.") inside ours
            if kind in ("classes", "subsample"):  # the same at many layers: said once, for the first layer
                warn((kind,), f"{source}: layer {layer!r}{when} (and possibly later layers): {message}.")
            else:
                warn((layer, kind), f"{source}: layer {layer!r}{when}: {message}{consequence}.")
    if report.score_problem is not None:
        warn(("score",), f"{source}{when}: {report.score_problem.rstrip('. ')}.")
