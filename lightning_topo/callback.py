"""``TopologyMonitor``: per-layer topology and geometry of a network's representations, inside any Trainer."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_warn
from typing_extensions import override

from lightning_topo._compute import (
    DEFAULT_DESCRIPTORS,
    GLOBAL_DESCRIPTORS,
    PER_DIM_DESCRIPTORS,
    ComputeConfig,
    FigureRequest,
    PendingReport,
    class_lifespans,
    start_report,
)
from lightning_topo._figures import (
    custom_scalars_layout,
    image_sinks,
    report_images,
    save_report,
    tensorboard_writer,
)
from lightning_topo._pool import LayerPool, available_cores
from lightning_topo._warnings import TopologyWarning, warn_once
from lightning_topo.capture import ActivationCapture, LayerSpec, first_tensor, resolve_layers
from lightning_topo.functional._checks import check_choice, check_fraction, check_maxdim, check_positive_int
from lightning_topo.report import TopologyReport
from lightning_topo.scores import SCORES, resolve_score

__all__ = ["TopologyMonitor"]


@dataclass
class _Pending:
    """A measurement in flight: the layer computations and what is needed to finish and log it."""

    pending: PendingReport
    epoch: int
    step: int
    last_samples: torch.Tensor | None
    labels: torch.Tensor | None
    draw: bool = False


class TopologyMonitor(Callback):
    r"""Measure the topology and geometry of layer representations at the end of validation epochs.

    At every ``every_n_epochs``-th validation epoch (never during the sanity check), forward hooks keep the
    activations of a fixed set of validation examples (the first ``n_samples``, or ``num_classes`` equal
    shares by label with ``sample="stratified"``), one vector per example (``reduce``). Once the set is full
    the hooks are removed and the rest of the validation set runs untouched; memory stays bounded by
    ``n_samples`` x the reduced width per layer. At the end of the epoch, per layer: distances (normalised by
    the 0.9 quantile by default), optionally a farthest-point subsample of ``ph_samples`` points,
    Vietoris-Rips persistence up to ``maxdim`` (giotto-ph), descriptors and intrinsic dimension.

    Logged scalars (epoch level, through ``pl_module.log``, so every logger and ``EarlyStopping`` sees them):

    ==============================================  =================================================================
    key                                             meaning
    ==============================================  =================================================================
    ``topo/{layer}/betti_{q}``                      Betti number of dimension q at ``betti_scale`` of the normalised
                                                    filtration (essential bars counted: ``betti_0 >= 1``)
    ``topo/{layer}/total_persistence_{q}``          sum of finite lifetimes of dimension q (the lifespan sum)
    ``topo/{layer}/entropy_{q}``                    normalised persistence entropy in [0, 1] (0 for < 2 bars)
    ``topo/{layer}/max_persistence_{q}``            longest finite lifetime (opt-in)
    ``topo/{layer}/amplitude_{q}``                  Wasserstein-2 amplitude (opt-in)
    ``topo/{layer}/n_long_{q}``                     bars longer than ``long_fraction`` of the range (opt-in)
    ``topo/{layer}/id_twonn``                       TwoNN intrinsic dimension (on the full sample)
    ``topo/{layer}/id_mle``, ``id_phdim``           MLE and PH-dimension (opt-in)
    ``topo/score``                                  the configured ``score`` (stable key; re-logged on epochs
                                                    without measurement so monitors never miss it)
    ``topo/time_s``                                 wall time of the epoch-end computation
    ==============================================  =================================================================

    ``{layer}`` is the module name (``get_layer_names(model)``) or its alias; the network input is ``input``
    and the model's own output ``output``. A layer whose output holds NaN or Inf, is constant, or cannot be
    measured logs NaN for its keys and raises a :class:`TopologyWarning` naming the layer and epoch; the
    other layers and the run go on (``on_error="raise"`` raises instead). Every rank logs the same keys and
    values: under DDP the samples of all ranks are gathered, rank 0 computes, and the results are broadcast.

    Args:
        layers: which layers: ``None`` (the input, the model's top-level layers, and its output; at most about
            a dozen), a list of module names or module types, a dict ``{name: alias}``, a regular expression
            matched against every name, or a module type.
        n_samples: examples measured per epoch (shared across DDP ranks).
        maxdim: highest homology dimension (0, 1 or 2).
        every_n_epochs: measure at epochs 0, n, 2n, ... .
        score: a name in ``lightning_topo.scores.SCORES`` (``"id_last"``, default; ``"phdim_last"``,
            ``"lifespan_sum"``, ``"decay"``; each documents its direction and adds the descriptors it needs), a
            callable ``f(report) -> float``, or ``None``; logged as ``topo/score``. :meth:`early_stopping` and
            :meth:`model_checkpoint` return callbacks monitoring it in the right direction.
        score_mode: direction of a callable score (``"min"`` or ``"max"``); named scores set their own.
        reduce: per-example reduction: ``"auto"`` (global average pooling of 4-D conv outputs, flatten
            otherwise), ``"flatten"``, ``"mean"`` (average over every dimension after the channels) or
            ``"project"`` (flatten, then a seeded Gaussian projection to ``max_features`` when wider).
        max_features: target width of ``reduce="project"``.
        sample: ``"first"`` (the first ``n_samples`` validation examples) or ``"stratified"`` (the first
            ``n_samples // num_classes`` examples of each class).
        num_classes: number of classes, required by ``sample="stratified"``.
        label_fn: ``f(batch) -> (B,) integer labels``; default ``batch[1]`` when it is an integer tensor.
        output_transform: ``f(layer_output) -> Tensor`` for layers returning tuples, dicts or objects; by default
            the first tensor is used (with a one-time warning).
        descriptors: which descriptors to log, among ``betti``, ``total_persistence``, ``entropy``,
            ``max_persistence``, ``amplitude``, ``n_long`` (one key per homology dimension) and ``id_twonn``,
            ``id_mle``, ``id_phdim``.
        metric: ``"euclidean"`` or ``"cosine"``.
        normalize: distance normalisation: ``"quantile"`` (0.9 quantile), ``"median"``, ``"max"`` or ``None``.
        ph_samples: compute persistence on a farthest-point subsample of this size (ID uses the full sample).
        betti_scale: filtration value of the logged Betti numbers (in normalised units).
        long_fraction: a bar is long when it exceeds this fraction of the filtration range (``n_long``).
        n_threads: giotto-ph threads per persistence call (-1: all cores).
        on_error: ``"warn"`` (default; NaN metrics and a warning) or ``"raise"``.
        seed: seed of the projections and subsamples.
        prefix: first part of every logged key.
        compute: ``"sync"`` (default) computes at the epoch end and logs through ``pl_module.log``;
            ``"async"`` hands the work to a worker process and returns at once, and the results go straight to
            the loggers at the step of the epoch they belong to when ready (all are flushed by the end of
            ``fit``, also when it stops early or fails). Async results never reach ``callback_metrics``, so
            combining it with an ``EarlyStopping``/``ModelCheckpoint`` on a ``topo/`` key is refused at set-up.
        workers: processes computing layers in parallel (giotto-ph holds the GIL, so threads would not help).
            ``"auto"``: one per core up to the number of layers when ``n_samples >= 256`` and ``maxdim >= 1``
            (below that a layer takes milliseconds and runs in the main process), at least one with
            ``compute="async"``. ``0`` computes in the main process. The pool is kept warm across epochs.
        max_scale: stop every filtration at this (normalised) scale: much cheaper, and Betti numbers and curves
            below it are exact; classes alive at ``max_scale`` become essential and leave the lifetime sums.
        backend: ``"giotto"`` or ``"gudhi"`` (GUDHI's Ripser, when installed) for the persistence call.
        log_figures: draw figures for loggers that show images (TensorBoard; loggers with ``log_image``):
            ``True`` at every measurement, an integer ``k`` at every k-th, ``False`` never. Tags:
            ``topo/{layer}/betti_curves``, ``topo/{layer}/diagram``, ``topo/{layer}/betti_evolution`` (from the
            second measurement) and ``topo/depth_profile``; about 0.2 s per layer on 2 CPU cores. A TensorBoard
            custom-scalars layout (one chart per descriptor across layers, one per layer with its Betti
            numbers) is registered once.
        save_diagrams: write each measurement's diagrams and Betti curves (``topology/epoch_{k}.npz``) and
            scalars (``topology/epoch_{k}.json``) under the logger's directory, for ``lightning-topo report``.

    Raises:
        ValueError: for invalid arguments here, or (at set-up) unknown layer names, listing the close matches.

    Example:
        >>> from lightning_topo import TopologyMonitor
        >>> monitor = TopologyMonitor(layers=["encoder", "head"], n_samples=256, maxdim=1)
        >>> monitor.state_key
        "TopologyMonitor{'layers': ['encoder', 'head'], 'n_samples': 256, 'maxdim': 1, 'prefix': 'topo'}"
    """

    def __init__(
        self,
        layers: LayerSpec = None,
        *,
        n_samples: int = 512,
        maxdim: int = 1,
        every_n_epochs: int = 1,
        score: str | Callable[[TopologyReport], float] | None = "id_last",
        score_mode: Literal["min", "max"] = "min",
        reduce: Literal["auto", "flatten", "mean", "project"] = "auto",
        max_features: int = 256,
        sample: Literal["first", "stratified"] = "first",
        num_classes: int | None = None,
        label_fn: Callable[[Any], torch.Tensor] | None = None,
        output_transform: Callable[[Any], torch.Tensor] | None = None,
        descriptors: Sequence[str] = DEFAULT_DESCRIPTORS,
        metric: Literal["euclidean", "cosine"] = "euclidean",
        normalize: Literal["quantile", "median", "max"] | None = "quantile",
        ph_samples: int | None = None,
        betti_scale: float = 0.2,
        long_fraction: float = 0.1,
        n_threads: int = -1,
        on_error: Literal["warn", "raise"] = "warn",
        seed: int = 0,
        prefix: str = "topo",
        compute: Literal["sync", "async"] = "sync",
        workers: int | Literal["auto"] = "auto",
        max_scale: float | None = None,
        backend: Literal["giotto", "gudhi"] = "giotto",
        log_figures: bool | int = True,
        save_diagrams: bool = False,
    ) -> None:
        super().__init__()
        self.layers = layers
        self.n_samples = check_positive_int("n_samples", n_samples, minimum=3)
        self.maxdim = check_maxdim(maxdim)
        self.every_n_epochs = check_positive_int("every_n_epochs", every_n_epochs)
        self.score_name, self._score_fn = resolve_score(score)
        named = SCORES.get(score) if isinstance(score, str) else None
        self.score_mode = named.mode if named is not None else check_choice("score_mode", score_mode, ("min", "max"))
        needed = [n for n in (named.needs if named is not None else ()) if n not in descriptors]
        descriptors = (*descriptors, *needed)
        self.reduce = check_choice("reduce", reduce, ("auto", "flatten", "mean", "project"))
        self.max_features = check_positive_int("max_features", max_features)
        self.sample = check_choice("sample", sample, ("first", "stratified"))
        if sample == "stratified" and num_classes is None:
            raise ValueError("Expected `num_classes` with sample='stratified' (the number of equal shares).")
        self.num_classes = None if num_classes is None else check_positive_int("num_classes", num_classes)
        self.label_fn = label_fn
        self.output_transform = output_transform
        known = (*PER_DIM_DESCRIPTORS, *GLOBAL_DESCRIPTORS)
        for name in descriptors:
            check_choice("descriptors", name, known)
        self.on_error = check_choice("on_error", on_error, ("warn", "raise"))
        if ph_samples is not None:
            ph_samples = check_positive_int("ph_samples", ph_samples, minimum=3)
        if not betti_scale >= 0:
            raise ValueError(f"Expected `betti_scale` to be >= 0 but got {betti_scale!r}.")
        check_fraction("long_fraction", long_fraction)
        self.config = ComputeConfig(
            maxdim=self.maxdim,
            metric=check_choice("metric", metric, ("euclidean", "cosine")),
            normalize=check_choice("normalize", normalize, ("quantile", "median", "max", None)),
            ph_samples=ph_samples,
            betti_scale=float(betti_scale),
            long_fraction=float(long_fraction),
            descriptors=tuple(descriptors),
            n_threads=int(n_threads),
            seed=int(seed),
            thresh=math.inf if max_scale is None else float(max_scale),
            backend=check_choice("backend", backend, ("giotto", "gudhi")),
        )
        if max_scale is not None and not max_scale > 0:
            raise ValueError(f"Expected `max_scale` to be positive but got {max_scale!r}.")
        self.seed = int(seed)
        self.prefix = prefix
        self.compute = check_choice("compute", compute, ("sync", "async"))
        if workers != "auto":
            workers = check_positive_int("workers", workers, minimum=1 if compute == "async" else 0)
        self.workers = workers
        self._pool: LayerPool | None = None
        self._pending: list[_Pending] = []
        if isinstance(log_figures, bool):
            self.figure_every = 1 if log_figures else 0
        else:
            self.figure_every = check_positive_int("log_figures", log_figures)
        self.log_figures = bool(self.figure_every)
        self.save_diagrams = bool(save_diagrams)
        self._curve_history: dict[str, list[tuple[int, np.ndarray]]] = {}
        self._layout_registered = False
        self._n_measured = 0
        self._last_draw = False
        self.history: list[dict[str, Any]] = []
        self.last_report: TopologyReport | None = None
        self._capture: ActivationCapture | None = None
        self._active = False
        self._quota = self.n_samples
        self._class_counts: dict[int, int] = {}
        self._last_epoch: int | None = None

    @property
    @override
    def state_key(self) -> str:
        layers: Any = self.layers
        if isinstance(layers, Mapping):
            layers = dict(layers)
        elif isinstance(layers, type):
            layers = layers.__name__
        elif isinstance(layers, list | tuple):
            layers = [getattr(x, "__name__", x) for x in layers]
        return self._generate_state_key(layers=layers, n_samples=self.n_samples, maxdim=self.maxdim, prefix=self.prefix)

    # set-up and tear-down ------------------------------------------------------------------------------------
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        resolved = resolve_layers(pl_module, self.layers)
        if self._capture is not None:
            self._capture.detach()
        self._capture = ActivationCapture(
            pl_module,
            resolved,
            reduce=self.reduce,
            max_features=self.max_features,
            seed=self.seed,
            output_transform=self.output_transform,
        )
        self._quota = math.ceil(self.n_samples / max(trainer.world_size, 1))
        if self.compute == "async":
            watchers = [
                type(cb).__name__
                for cb in trainer.callbacks  # type: ignore[attr-defined]
                if isinstance(getattr(cb, "monitor", None), str) and cb.monitor.startswith(f"{self.prefix}/")
            ]
            if watchers:
                raise ValueError(
                    f"TopologyMonitor(compute='async') logs its results later, at the step they belong to, so "
                    f"{', '.join(watchers)} monitoring a `{self.prefix}/...` key would never see them in time. "
                    "Use compute='sync' to stop or checkpoint on a topological score."
                )
        if trainer.is_global_zero and self._pool is None and stage in ("fit", "validate"):
            n_layers = len(self._capture.layers)
            if self._n_workers(n_layers) > 0:
                self._ensure_pool(n_layers)
                assert self._pool is not None
                self._pool.warm_up()  # the workers start now, not at the first measured epoch
        if self.config.ph_samples is not None and self.config.ph_samples >= self.n_samples:
            rank_zero_warn(
                f"`ph_samples={self.config.ph_samples}` >= `n_samples={self.n_samples}`: no subsampling happens.",
                category=TopologyWarning,
            )

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._stop_capture()
        try:
            self._drain(trainer, wait=True)
        finally:
            self._shutdown_pool()

    @override
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._stop_capture()
        try:
            self._drain(trainer, wait=True)  # results of finished epochs are not lost when the run dies
        except Exception as err:  # the run's own exception is the one to report
            rank_zero_warn(f"TopologyMonitor could not log pending results: {err}", category=TopologyWarning)
        finally:
            self._shutdown_pool()  # Lightning does not call `teardown` on callbacks after an exception

    def _shutdown_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _stop_capture(self) -> None:
        if self._capture is not None:
            self._capture.detach()
            self._capture.reset()
        self._active = False

    # capture ----------------------------------------------------------------------------------------------
    def _due(self, trainer: pl.Trainer) -> bool:
        if trainer.sanity_checking:
            return False
        if trainer.state.fn != "fit":
            return True
        epoch = trainer.current_epoch
        return epoch % self.every_n_epochs == 0 and self._last_epoch != epoch

    @override
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._capture is None or not self._due(trainer):
            return
        self._capture.reset()
        self._class_counts = {}
        self._capture.attach()
        self._active = True

    @override
    def on_validation_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        capture = self._capture
        if not self._active or capture is None or dataloader_idx != 0 or not capture.attached:
            return
        inputs = first_tensor(batch)
        batch_size = int(inputs.shape[0]) if inputs is not None and inputs.ndim > 0 else 0
        labels = self._labels(batch, batch_size)
        keep = self._rows_to_keep(batch_size, labels, capture.n_kept)
        if len(keep) == 0:
            return
        capture.begin_batch(batch, keep, labels)

    @override
    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        capture = self._capture
        if not self._active or capture is None or dataloader_idx != 0:
            return
        capture.end_batch()
        if capture.n_kept >= self._quota:
            capture.detach()  # the sample is full: later batches run without hooks

    def _labels(self, batch: Any, batch_size: int) -> torch.Tensor | None:
        if self.label_fn is not None:
            labels = self.label_fn(batch)
            if not isinstance(labels, torch.Tensor) or labels.shape[:1] != (batch_size,):
                raise ValueError(f"Expected `label_fn` to return a tensor of {batch_size} labels but got {labels!r}.")
            return labels.reshape(-1)
        if isinstance(batch, list | tuple) and len(batch) > 1 and isinstance(batch[1], torch.Tensor):
            y = batch[1]
            if not y.is_floating_point() and not y.is_complex() and y.shape == (batch_size,):
                return y
        return None

    def _rows_to_keep(self, batch_size: int, labels: torch.Tensor | None, n_kept: int) -> torch.Tensor:
        remaining = self._quota - n_kept
        if self.sample == "first" or remaining <= 0:
            return torch.arange(max(min(batch_size, remaining), 0))
        if labels is None:
            raise ValueError(
                "sample='stratified' needs labels: pass `label_fn`, or use batches whose second element is the "
                "integer class tensor."
            )
        assert self.num_classes is not None
        per_class = max(self._quota // self.num_classes, 1)
        keep: list[int] = []
        for i, c in enumerate(labels.reshape(-1).tolist()):
            if self._class_counts.get(c, 0) < per_class and len(keep) < remaining:
                self._class_counts[c] = self._class_counts.get(c, 0) + 1
                keep.append(i)
        return torch.tensor(keep, dtype=torch.long)

    # compute and log ----------------------------------------------------------------------------------------
    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._drain(trainer, wait=False)
        if not self._active or self._capture is None:
            self._relog_score(trainer, pl_module)
            return
        capture = self._capture
        self._last_epoch = trainer.current_epoch
        try:
            capture.detach()
            samples = capture.collect()
            labels = capture.collected_labels()
            problems = dict(capture.problems)
            capture.reset()  # drop the activations before computing
            samples, labels, problems = self._gather(trainer, samples, labels, problems)
            report = None
            if self.compute == "async":
                if trainer.is_global_zero:
                    self._start(trainer, samples, labels, problems)
                return
            if trainer.is_global_zero:
                report = self._compute(trainer, samples, labels, problems)
            if trainer.world_size > 1:
                report = trainer.strategy.broadcast(report, src=0)
            assert report is not None
        finally:
            self._active = False
            capture.detach()
        self._publish(trainer, pl_module, report)

    def _gather(
        self,
        trainer: pl.Trainer,
        samples: dict[str, torch.Tensor | None],
        labels: torch.Tensor | None,
        problems: dict[str, str],
    ) -> tuple[dict[str, torch.Tensor | None], torch.Tensor | None, dict[str, str]]:
        if trainer.world_size <= 1 or not torch.distributed.is_available() or not torch.distributed.is_initialized():
            return samples, labels, problems
        local = (
            {k: None if v is None else v.cpu() for k, v in samples.items()},
            None if labels is None else labels.cpu(),
            problems,
        )
        gathered: list[Any] = [None] * trainer.world_size
        torch.distributed.all_gather_object(gathered, local)
        merged: dict[str, torch.Tensor | None] = {}
        all_problems: dict[str, str] = {}
        for _, _, probs in gathered:
            all_problems.update(probs)
        for alias in samples:
            parts = [part[0][alias] for part in gathered if part[0][alias] is not None]
            widths = {p.shape[1] for p in parts}
            merged[alias] = torch.cat(parts) if parts and len(widths) == 1 else None
        label_parts = [part[1] for part in gathered]
        merged_labels = torch.cat(label_parts) if all(p is not None for p in label_parts) else None
        return merged, merged_labels, all_problems

    def _start(
        self,
        trainer: pl.Trainer,
        samples: dict[str, torch.Tensor | None],
        labels: torch.Tensor | None,
        problems: dict[str, str],
    ) -> _Pending:
        n = max((x.shape[0] for x in samples.values() if x is not None), default=0)
        if 0 < n < self.n_samples:
            rank_zero_warn(
                f"TopologyMonitor measured {n} examples, fewer than `n_samples={self.n_samples}`: the validation set "
                "(or a class, with sample='stratified') is smaller.",
                category=TopologyWarning,
            )
        pool = self._ensure_pool(len(samples))
        config = self.config if pool is None else replace(self.config, n_threads=pool.threads)
        draw = self._draw_now(trainer)
        self._n_measured += 1
        requests = None
        if draw and pool is not None:  # the workers draw each layer's figures in parallel with the others
            epoch = trainer.current_epoch
            requests = {
                layer: FigureRequest(
                    layer,
                    epoch,
                    [e for e, _ in self._curve_history.get(layer, [])],
                    [c for _, c in self._curve_history.get(layer, [])],
                )
                for layer in samples
            }
        pending = start_report(
            samples,
            config,
            problems=problems,
            epoch=trainer.current_epoch,
            on_error=self.on_error,
            executor=None if pool is None else pool.executor,
            figures=requests,
        )
        last = list(samples)[-1]
        keep = samples.get(last) if self.score_name == "lifespan_sum" and labels is not None else None
        item = _Pending(pending, trainer.current_epoch, trainer.global_step, keep, labels, draw)
        self._last_draw = draw
        if self.compute == "async":
            self._pending.append(item)
        return item

    def _compute(
        self,
        trainer: pl.Trainer,
        samples: dict[str, torch.Tensor | None],
        labels: torch.Tensor | None,
        problems: dict[str, str],
    ) -> TopologyReport:
        return self._finalize(self._start(trainer, samples, labels, problems))

    def _finalize(self, item: _Pending) -> TopologyReport:
        report = item.pending.result()
        if item.pending.pool_broke and self._pool is not None:
            rank_zero_warn(
                "TopologyMonitor's worker processes stopped working; the layers were computed in the main process "
                "and will be from now on (workers=0).",
                category=TopologyWarning,
            )
            self._shutdown_pool()
            self.workers = 0
        if item.last_samples is not None and item.labels is not None:
            last = report.layers[-1]
            if last not in report.problems:
                x = item.last_samples
                per_class = class_lifespans(x, item.labels.to(x.device), self.config)
                report.class_metrics[last] = {c: {"total_persistence_0": v} for c, v in per_class.items()}
        for alias, why in report.problems.items():
            lost = all(math.isnan(v) for v in report.metrics[alias].values())
            message = f"TopologyMonitor: layer {alias!r} at epoch {item.epoch}: {why}; " + (
                "its metrics are NaN." if lost else "the affected metrics are NaN."
            )
            if self.on_error == "raise":
                raise RuntimeError(message)
            rank_zero_warn(message, category=TopologyWarning)
        if self._score_fn is not None:
            try:
                report.score = float(self._score_fn(report))
            except Exception as err:
                if self.on_error == "raise":
                    raise
                rank_zero_warn(f"TopologyMonitor: the score failed ({err}); logging NaN.", category=TopologyWarning)
                report.score = math.nan
        return report

    # async ------------------------------------------------------------------------------------------------
    def _drain(self, trainer: pl.Trainer, wait: bool) -> None:
        """Log every finished background result at the step of its epoch (all of them with ``wait=True``)."""
        logged = False
        while self._pending and (wait or self._pending[0].pending.done()):
            item = self._pending.pop(0)
            try:
                report = self._finalize(item)
            except Exception:
                self._pending.clear()
                raise
            scalars = self._record(report)
            for logger in trainer.loggers:
                logger.log_metrics({**scalars, "epoch": float(item.epoch)}, step=item.step)
            self._visualize(trainer, report, scalars, item.step, item.draw)
            logged = True
        if logged and wait:
            for logger in trainer.loggers:
                logger.save()

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._pending:
            self._drain(trainer, wait=False)

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._drain(trainer, wait=True)

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn != "fit":  # trainer.validate(): nothing runs afterwards to wait for the results
            self._drain(trainer, wait=True)

    def _ensure_pool(self, n_layers: int) -> LayerPool | None:
        workers = self._n_workers(n_layers)
        if workers == 0:
            return None
        if self._pool is None:
            self._pool = LayerPool(workers, max(1, available_cores() // workers))
        return self._pool

    def _n_workers(self, n_layers: int) -> int:
        if self.workers != "auto":
            return int(self.workers)
        cores = available_cores()
        if self.compute == "async":
            return max(1, min(n_layers, cores - 1))
        # below ~256 examples a layer takes milliseconds: shipping it to a process costs more than it saves
        if cores < 2 or n_layers < 2 or self.maxdim == 0 or self.n_samples < 256:
            return 0
        return min(n_layers, cores)

    def _relog_score(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """On an epoch without measurement, log the last score again so `topo/score` is never missing.

        ``EarlyStopping`` and ``ModelCheckpoint`` read their monitor after every validation; ``ModelCheckpoint``
        raises when it is missing. A repeated value never counts as an improvement, so ``patience`` counts
        validation epochs: use :meth:`early_stopping`, which scales it by ``every_n_epochs``.
        """
        if trainer.sanity_checking or self._score_fn is None or not self.history or self.compute == "async":
            return
        last = self.history[-1]["scalars"].get(f"{self.prefix}/score")
        if last is not None:
            sync = trainer.world_size > 1
            pl_module.log(f"{self.prefix}/score", last, on_step=False, on_epoch=True, sync_dist=sync, batch_size=1)

    def early_stopping(self, patience: int = 3, **kwargs: Any) -> EarlyStopping:
        """A ready ``EarlyStopping`` on ``topo/score`` with the score's direction.

        ``patience`` counts *measurements*; it is multiplied by ``every_n_epochs`` since the score is re-logged
        on the epochs in between. Other keyword arguments go to ``EarlyStopping`` (e.g. ``min_delta``).

        Example:
            >>> monitor = TopologyMonitor(score="id_last", every_n_epochs=2)
            >>> stopper = monitor.early_stopping(patience=3)
            >>> stopper.monitor, stopper.mode, stopper.patience
            ('topo/score', 'min', 6)
        """
        if self._score_fn is None:
            raise ValueError("Expected a `score` on the monitor to stop on; it was created with score=None.")
        kwargs.setdefault("mode", self.score_mode)
        return EarlyStopping(monitor=f"{self.prefix}/score", patience=patience * self.every_n_epochs, **kwargs)

    def model_checkpoint(self, **kwargs: Any) -> ModelCheckpoint:
        """A ready ``ModelCheckpoint`` keeping the best ``topo/score`` (keyword arguments go to it)."""
        if self._score_fn is None:
            raise ValueError("Expected a `score` on the monitor to checkpoint on; it was created with score=None.")
        kwargs.setdefault("mode", self.score_mode)
        return ModelCheckpoint(monitor=f"{self.prefix}/score", **kwargs)

    def _record(self, report: TopologyReport) -> dict[str, float]:
        self.last_report = report
        scalars = report.scalars(self.prefix)
        scalars[f"{self.prefix}/time_s"] = report.elapsed_s
        self.history.append({"epoch": report.epoch, "scalars": scalars})
        for layer, curves in report.betti_curves.items():
            self._curve_history.setdefault(layer, []).append((int(report.epoch or 0), curves))
        return scalars

    def _visualize(
        self, trainer: pl.Trainer, report: TopologyReport, scalars: dict[str, float], step: int, draw: bool
    ) -> None:
        """Figures to the loggers that show images, the custom-scalars layout, and the raw files (rank 0)."""
        if not trainer.is_global_zero:
            return
        if self.save_diagrams:
            save_report(Path(trainer.log_dir or trainer.default_root_dir) / "topology", report, scalars, self.prefix)
        if not draw:
            return
        sinks, _ = image_sinks(trainer.loggers)
        if not self._layout_registered:
            for logger in trainer.loggers:
                experiment = tensorboard_writer(logger)
                if experiment is not None and hasattr(experiment, "add_custom_scalars"):
                    experiment.add_custom_scalars(custom_scalars_layout(report, self.prefix))
            self._layout_registered = True
        if not sinks:
            return
        history = {layer: items[:-1] for layer, items in self._curve_history.items()}  # without this epoch
        for tag, image in report_images(report, self.prefix, history):
            for sink in sinks:
                sink(tag, image, step)

    def _draw_now(self, trainer: pl.Trainer) -> bool:
        """Whether this measurement gets figures (every ``log_figures``-th, rank zero, a logger to show them)."""
        if not self.log_figures or not trainer.is_global_zero or self._n_measured % self.figure_every:
            return False
        sinks, unable = image_sinks(trainer.loggers)
        if unable:
            warn_once(
                f"TopologyMonitor: {', '.join(unable)} cannot show images, so its figures are skipped (the scalars "
                "are logged). TensorBoardLogger and loggers with `log_image` get them.",
            )
        return bool(sinks)

    def _publish(self, trainer: pl.Trainer, pl_module: pl.LightningModule, report: TopologyReport) -> None:
        scalars = self._record(report)
        self._visualize(trainer, report, scalars, trainer.global_step, self._last_draw)
        sync = trainer.world_size > 1
        for key, value in scalars.items():
            pl_module.log(key, value, on_step=False, on_epoch=True, sync_dist=sync, batch_size=1)

    # checkpoints --------------------------------------------------------------------------------------------
    @override
    def state_dict(self) -> dict[str, Any]:
        curves = {layer: [(e, c.tolist()) for e, c in items] for layer, items in self._curve_history.items()}
        return {"version": 1, "history": list(self.history), "last_epoch": self._last_epoch, "betti_curves": curves}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
        curves = state_dict.get("betti_curves", {})
        self._curve_history = {layer: [(e, np.asarray(c)) for e, c in items] for layer, items in curves.items()}
        self._last_epoch = state_dict.get("last_epoch")
