"""Per-layer computation shared by the callback and ``analyze``: samples in, ``TopologyReport`` out.

Pure torch and ``functional``; never imports lightning.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from lightning_topo import functional as F
from lightning_topo.diagrams import PersistenceDiagrams
from lightning_topo.functional.intrinsic_dimension import id_from_distances
from lightning_topo.functional.persistence import rips_from_distances
from lightning_topo.report import TopologyReport

PER_DIM_DESCRIPTORS = ("betti", "total_persistence", "entropy", "max_persistence", "amplitude", "n_long")
GLOBAL_DESCRIPTORS = ("id_twonn", "id_mle", "id_phdim")
DEFAULT_DESCRIPTORS = ("betti", "total_persistence", "entropy", "id_twonn")


@dataclass(frozen=True)
class ComputeConfig:
    """How each layer's sample becomes numbers (see ``TopologyMonitor`` for the meaning of each field)."""

    maxdim: int = 1
    metric: Literal["euclidean", "cosine"] = "euclidean"
    normalize: Literal["quantile", "median", "max"] | None = "quantile"
    ph_samples: int | None = None
    betti_scale: float = 0.2
    grid_max: float = 1.0
    n_bins: int = 100
    long_fraction: float = 0.1
    descriptors: tuple[str, ...] = DEFAULT_DESCRIPTORS
    n_threads: int = -1
    seed: int = 0
    thresh: float = math.inf
    h0_tree_from: int = 4096
    backend: Literal["giotto", "gudhi"] = "giotto"
    grid: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "grid", np.linspace(0.0, self.grid_max, self.n_bins))

    def metric_keys(self) -> list[str]:
        """Descriptor names a layer logs, in a fixed order."""
        out: list[str] = []
        for name in self.descriptors:
            if name in PER_DIM_DESCRIPTORS:
                out.extend(f"{name}_{q}" for q in range(self.maxdim + 1))
            else:
                out.append(name)
        return out


@dataclass
class LayerResult:
    metrics: dict[str, float]
    diagrams: PersistenceDiagrams | None = None
    betti_curve: np.ndarray | None = None
    problem: str | None = None
    seconds: float = 0.0
    images: dict[str, np.ndarray] | None = None


@dataclass
class FigureRequest:
    """Ask a worker to draw a layer's figures right after computing it (in parallel, off the main process)."""

    title: str
    epoch: int
    epochs: list[int]  # earlier measured epochs, for the evolution heat map
    curves: list[np.ndarray]


def layer_images(result: LayerResult, request: FigureRequest, grid: np.ndarray) -> dict[str, np.ndarray]:
    """RGB images (``H x W x 3`` uint8) of a layer's Betti curves, diagram and Betti-curve evolution."""
    from lightning_topo import plotting

    figures = {}
    if result.betti_curve is not None:
        figures["betti_curves"] = plotting.plot_betti_curves(result.betti_curve, grid, request.title)
        if request.epochs:
            figures["betti_evolution"] = plotting.plot_betti_evolution(
                [*request.epochs, request.epoch], [*request.curves, result.betti_curve], grid, request.title
            )
    if result.diagrams is not None:
        figures["diagram"] = plotting.plot_diagram(result.diagrams, request.title)
    return {name: plotting.figure_to_rgb(fig) for name, fig in figures.items()}


def nan_metrics(config: ComputeConfig) -> dict[str, float]:
    return dict.fromkeys(config.metric_keys(), math.nan)


def check_sample(x: torch.Tensor | None) -> str | None:
    """Why a layer sample cannot be measured, or ``None`` when it can."""
    if x is None:
        return "no activations were captured"
    if x.shape[0] < 3:
        return f"only {x.shape[0]} examples were captured (at least 3 are needed)"
    n_nan = int(torch.isnan(x).sum())
    n_inf = int(torch.isinf(x).sum())
    if n_nan or n_inf:
        return f"its activations hold {n_nan} NaN and {n_inf} infinite values"
    return None


@dataclass
class Prepared:
    """The device part of a layer's computation, ready for the CPU persistence call (picklable)."""

    ph_dist: np.ndarray | None  # float32 distance matrix for H>=1 (giotto-ph computes in float32 anyway)
    h0: np.ndarray | None  # H0 diagram from the spanning tree on the full sample, when computed separately
    metrics: dict[str, float]  # intrinsic-dimension descriptors, from the full sample
    notes: list[str]
    seconds: float


def prepare_layer(x: torch.Tensor, config: ComputeConfig) -> Prepared | LayerResult:
    """On ``x``'s device: distances, normalisation, intrinsic dimension, farthest-point subsample, the H0 tree.

    Only the (subsampled) distance matrix leaves the device, as float32.
    """
    start = time.perf_counter()
    problem = check_sample(x)
    if problem is not None:
        return LayerResult(nan_metrics(config), problem=problem)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        dist = F.pairwise_distances(x, metric=config.metric, normalize=config.normalize)
        metrics = _id_descriptors(dist, config)
        n = dist.shape[0]
        subsample = config.ph_samples is not None and config.ph_samples < n
        ph = dist
        if subsample:
            gen = torch.Generator().manual_seed(config.seed)
            idx = F.subsample(dist, config.ph_samples, "farthest", generator=gen, distance_matrix=True)  # type: ignore[arg-type]
            ph = dist[idx][:, idx]
        h0 = None
        if config.maxdim == 0 or subsample or n >= config.h0_tree_from:
            h0 = rips_from_distances(dist, 0, thresh=config.thresh)[0]
        ph_dist = ph.to(torch.float32).cpu().numpy() if config.maxdim >= 1 else None
    notes = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    return Prepared(ph_dist, None if h0 is None else np.array(h0), metrics, notes, time.perf_counter() - start)


def finish_layer(prepared: Prepared, config: ComputeConfig) -> LayerResult:
    """On the CPU: persistence (giotto-ph), the persistence descriptors and the Betti curves."""
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        if prepared.ph_dist is not None:
            dgms_list = rips_from_distances(
                torch.from_numpy(prepared.ph_dist),
                config.maxdim,
                thresh=config.thresh,
                n_threads=config.n_threads,
                h0="ripser",
                backend=config.backend,
            ).to_numpy()
            if prepared.h0 is not None:
                dgms_list[0] = prepared.h0
        else:
            dgms_list = [prepared.h0 if prepared.h0 is not None else np.empty((0, 2))]
        dgms = PersistenceDiagrams(dgms_list)
        metrics = {**_ph_descriptors(dgms, config), **prepared.metrics}
        metrics = {k: metrics[k] for k in config.metric_keys()}
    notes = prepared.notes + [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    result = LayerResult(metrics, dgms, F.betti_curve(dgms, config.grid))
    result.seconds = prepared.seconds + time.perf_counter() - start
    if notes:
        result.problem = "; ".join(notes)
    return result


def compute_layer(x: torch.Tensor, config: ComputeConfig) -> LayerResult:
    """Everything for one layer's sample: :func:`prepare_layer` then :func:`finish_layer`."""
    prepared = prepare_layer(x, config)
    return prepared if isinstance(prepared, LayerResult) else finish_layer(prepared, config)


def run_layer_task(
    payload: torch.Tensor | Prepared, config: ComputeConfig, figures: FigureRequest | None = None
) -> LayerResult:
    """What a worker process runs: the whole layer from CPU samples, or the CPU part of a prepared layer; then,
    when asked, the layer's figures (drawing is as costly as computing a small layer)."""
    result = finish_layer(payload, config) if isinstance(payload, Prepared) else compute_layer(payload, config)
    if figures is not None and result.diagrams is not None:
        try:
            result.images = layer_images(result, figures, config.grid)
        except Exception:  # a figure is never worth a lost measurement: the main process draws it instead
            result.images = None
    return result


def _ph_descriptors(dgms: PersistenceDiagrams, config: ComputeConfig) -> dict[str, float]:
    out: dict[str, float] = {}
    bettis = F.betti_numbers(dgms, config.betti_scale)
    for name in config.descriptors:
        for q in range(config.maxdim + 1) if name in PER_DIM_DESCRIPTORS else ():
            key = f"{name}_{q}"
            if name == "betti":
                out[key] = float(bettis[q])
            elif name == "total_persistence":
                out[key] = F.total_persistence(dgms, q)
            elif name == "entropy":
                out[key] = F.persistence_entropy(dgms, q)
            elif name == "max_persistence":
                life = dgms.lifetimes(q)
                out[key] = float(life.max()) if life.size else 0.0
            elif name == "amplitude":
                out[key] = F.amplitude(dgms, q)
            elif name == "n_long":
                out[key] = F.lifetime_statistics(dgms, q, long_fraction=config.long_fraction)["n_long"]
    return out


def _id_descriptors(dist: torch.Tensor, config: ComputeConfig) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in config.descriptors:
        if name == "id_twonn":
            out[name] = id_from_distances(dist, "twonn")
        elif name == "id_mle":
            out[name] = id_from_distances(dist, "mle")
        elif name == "id_phdim":
            out[name] = id_from_distances(dist, "phdim", generator=torch.Generator().manual_seed(config.seed))
    return out


class PendingReport:
    """Layer computations in flight; :meth:`result` waits for them and assembles the report."""

    def __init__(
        self,
        layers: list[str],
        futures: dict[str, Future[LayerResult]],
        config: ComputeConfig,
        n_samples: int,
        epoch: int | None,
        on_error: Literal["warn", "raise"],
        start: float,
        payloads: dict[str, Any] | None = None,
    ) -> None:
        self.layers = layers
        self.payloads = payloads or {}
        self.pool_broke = False
        self.futures = futures
        self.config = config
        self.n_samples = n_samples
        self.epoch = epoch
        self.on_error = on_error
        self.start = start
        self.finished = start
        for fut in futures.values():
            fut.add_done_callback(self._note_time)

    def _note_time(self, _: Future[LayerResult]) -> None:
        self.finished = max(self.finished, time.perf_counter())

    def done(self) -> bool:
        return all(f.done() for f in self.futures.values())

    def result(self) -> TopologyReport:
        results: dict[str, LayerResult] = {}
        for alias in self.layers:
            try:
                results[alias] = self.futures[alias].result()
            except BrokenProcessPool:
                # a worker died (or could not start): compute this layer here rather than lose it
                self.pool_broke = True
                results[alias] = run_layer_task(self.payloads[alias], self.config)
            except Exception as err:
                if self.on_error == "raise":
                    raise
                results[alias] = LayerResult(
                    nan_metrics(self.config), problem=f"its computation failed: {type(err).__name__}: {err}"
                )
        report = TopologyReport(
            layers=self.layers, metrics={}, grid=self.config.grid, n_samples=self.n_samples, epoch=self.epoch
        )
        for alias in self.layers:
            res = results[alias]
            report.metrics[alias] = res.metrics
            if res.diagrams is not None:
                report.diagrams[alias] = res.diagrams
            if res.betti_curve is not None:
                report.betti_curves[alias] = res.betti_curve
            if res.problem is not None:
                report.problems[alias] = res.problem
            if res.images:
                report.images[alias] = res.images
        report.elapsed_s = (self.finished if self.futures else time.perf_counter()) - self.start
        return report


def _done(result: LayerResult) -> Future[LayerResult]:
    fut: Future[LayerResult] = Future()
    fut.set_result(result)
    return fut


def _failed(err: BaseException) -> Future[LayerResult]:
    fut: Future[LayerResult] = Future()
    fut.set_exception(err)
    return fut


def start_report(
    samples: Mapping[str, torch.Tensor | None],
    config: ComputeConfig,
    *,
    problems: Mapping[str, str] | None = None,
    epoch: int | None = None,
    on_error: Literal["warn", "raise"] = "warn",
    executor: Executor | None = None,
    figures: Mapping[str, FigureRequest] | None = None,
) -> PendingReport:
    """Start every layer's computation: serially here, or on ``executor`` (a process pool).

    With an executor, CPU samples go to the workers whole; samples on an accelerator are prepared on their
    device here (distances, ID, subsample, H0 tree) and only the distance matrix goes to a worker.
    A failure inside one layer becomes that layer's problem (NaN metrics) under ``on_error="warn"``.
    """
    start = time.perf_counter()
    problems = dict(problems or {})
    futures: dict[str, Future[LayerResult]] = {}
    payloads: dict[str, Any] = {}
    for alias, x in samples.items():
        if alias in problems:
            futures[alias] = _done(LayerResult(nan_metrics(config), problem=problems[alias]))
            continue
        try:
            if executor is None:
                futures[alias] = _done(compute_layer(x, config))  # type: ignore[arg-type]
                continue
            payload: torch.Tensor | Prepared | LayerResult
            if x is None:
                payload = LayerResult(nan_metrics(config), problem=check_sample(x))
            elif x.device.type == "cpu":
                payload = x  # the whole layer runs in the worker
            else:
                payload = prepare_layer(x, config)  # device work here, only the matrix travels
            if isinstance(payload, LayerResult):
                futures[alias] = _done(payload)
            else:
                payloads[alias] = payload
                request = figures.get(alias) if figures else None
                futures[alias] = executor.submit(run_layer_task, payload, config, request)
        except Exception as err:
            futures[alias] = _failed(err)
    n = max((x.shape[0] for x in samples.values() if x is not None), default=0)
    return PendingReport(list(samples), futures, config, n, epoch, on_error, start, payloads)


def compute_report(
    samples: Mapping[str, torch.Tensor | None],
    config: ComputeConfig,
    *,
    problems: Mapping[str, str] | None = None,
    epoch: int | None = None,
    on_error: Literal["warn", "raise"] = "warn",
    executor: Executor | None = None,
) -> TopologyReport:
    """:func:`start_report` and wait for it."""
    return start_report(samples, config, problems=problems, epoch=epoch, on_error=on_error, executor=executor).result()


def class_lifespans(
    samples: torch.Tensor, labels: torch.Tensor, config: ComputeConfig, per_class_max: int = 250
) -> dict[int, float]:
    """H0 total persistence per class on normalised distances (Magai & Ayzenberg's local lifespan sum)."""
    out: dict[int, float] = {}
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).reshape(-1)[:per_class_max]
        if len(members) < 3:
            continue
        dist = F.pairwise_distances(
            samples[members.to(samples.device)], metric=config.metric, normalize=config.normalize
        )
        out[int(c)] = F.total_persistence(F.vietoris_rips(dist, maxdim=0, distance_matrix=True), 0)
    return out
