"""``TopologyMonitor``: per-layer topology and geometry of a network's representations, inside any Trainer.

Only the Lightning hooks live here, each a guard and a call: capture (:mod:`lightning_topo.capture`), DDP
(:mod:`.ddp`), the measurement queue and pool (:mod:`.queue`), and logging (:mod:`.publish`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_warn
from typing_extensions import override

from lightning_topo._warnings import TopologyWarning, WarningLedger
from lightning_topo.capture import ActivationCapture, LayerSpec, default_layers, resolve_layers
from lightning_topo.engine import LayerSample, available_cores, check_problems
from lightning_topo.functional.registry import DEFAULT_DESCRIPTORS
from lightning_topo.monitor.checks import check_sample_size, check_trainer
from lightning_topo.monitor.ddp import agree_skipped, distributed, gather_samples, measure_shared
from lightning_topo.monitor.publish import Publisher, logger_step
from lightning_topo.monitor.queue import Finished, MeasurementQueue
from lightning_topo.monitor.stopping import TopologyEarlyStopping
from lightning_topo.options import (
    OPTION_NAMES,
    Backend,
    Call,
    Compute,
    Metric,
    MonitorOptions,
    Normalize,
    OnError,
    Reduce,
    Sample,
    build_options,
)
from lightning_topo.report import TopologyReport

__all__ = ["TopologyMonitor"]


class TopologyMonitor(Callback):
    r"""Measure the topology and geometry of layer representations at every validation run.

    While a validation run begins (never during the sanity check), forward hooks keep the activations of a fixed
    set of validation examples (the first ``n_samples``, or ``num_classes`` equal shares by label with
    ``sample="stratified"``), one vector per example (``reduce``). Once the set is full the hooks are removed and
    the rest of the validation set runs untouched; memory stays bounded by ``n_samples`` x the reduced width per
    layer. At the end of the run, per layer: distances (normalised by their 0.9 quantile by default), optionally
    a farthest-point subsample of ``ph_samples`` points, Vietoris-Rips persistence up to ``maxdim``
    (giotto-ph), descriptors and intrinsic dimension; layers run in parallel worker processes.

    Logged scalars (through ``pl_module.log`` at the validation's step, so every logger, ``EarlyStopping`` and
    ``ModelCheckpoint`` see them):

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
    ``topo/{layer}/id_twonn``                       TwoNN intrinsic dimension (on the full sample; NaN below 20
                                                    distinct examples)
    ``topo/{layer}/id_mle``, ``id_phdim``           MLE and PH-dimension (opt-in)
    ``topo/{layer}/class_{c}/{descriptor}``         with ``per_class=True``: each class's rows of the layer, and
    ``topo/{layer}/class_mean/{descriptor}``        their mean over classes
    ``topo/{layer}/cubical_betti_{q}``              with ``cubical_samples=k``: Suresh et al.'s cubical Betti
    ``topo/{layer}/cubical_complexity``             numbers of feature maps and their sum Omega (mean over k)
    ``topo/score``                                  the configured ``score`` (stable key; re-logged after
                                                    validations without measurement so monitors never miss it)
    ``topo/time_s``                                 wall time of the computation
    ==============================================  =================================================================

    ``{layer}`` is the module name (``get_layer_names(model)``) or its alias; the network input is ``input``
    and the model's own output ``output``. A layer identical to an earlier one (``output`` after the last
    ``Linear``) is measured once and logged under both names. A layer whose output holds NaN or Inf, is
    constant, or cannot be measured logs NaN for its keys and raises one :class:`TopologyWarning` per problem
    and fit naming the layer and the cause; the other layers and the run go on (``on_error="raise"`` raises
    instead). Every rank logs the same keys and values: under DDP each layer's rows from every rank go to the rank
    that measures that layer (the ranks share the layers), and every rank assembles the same report.

    Args:
        layers: which layers: ``None`` (the input, the model's top-level layers, the penultimate one and the
            output; at most about a dozen; identity-like modules, an input of token ids and outputs not aligned
            with the batch are left out), a list of module names or module types, a dict ``{name: alias}``, a
            regular expression matched against every name, or a module type.
        n_samples: examples measured per validation run (shared across DDP ranks).
        maxdim: highest homology dimension (0, 1 or 2).
        every_n_epochs: measure in epochs 0, n, 2n, ... .
        every_n_validations: measure every k-th validation run of a fit (with ``val_check_interval`` or
            ``check_val_every_n_epoch=None`` there are several per epoch, or no epochs at all).
        score: a name in ``lightning_topo.scores.SCORES`` (``"id_last"``, default; ``"phdim_last"``,
            ``"lifespan_sum"``, ``"decay"``, ``"decay_cubical"``; each documents its direction, adds what it needs,
            and reads the last *hidden* layer, never the logits), a callable ``f(report) -> float``, or ``None``;
            logged as ``topo/score``. :meth:`early_stopping` and :meth:`model_checkpoint` return callbacks
            monitoring it in the right direction.
        score_mode: direction of a callable score (``"min"`` or ``"max"``); named scores set their own.
        reduce: per-example reduction: ``"auto"`` (global average pooling of 4-D conv outputs, the mean over the length
            of the ``(B, C, L)`` outputs of 1-d conv, norm and pool modules such as ``nn.Conv1d``, ``"token_mean"`` of
            other 3-D (sequence) outputs, flatten otherwise), ``"flatten"``, ``"mean"`` (average over every dimension
            after dimension 1), ``"project"`` (flatten, then a seeded Gaussian projection to ``max_features`` when
            wider), or a token reduction of ``(B, T, D)`` outputs over the real tokens: ``"token_mean"``,
            ``"first_token"`` (a CLS token), ``"last_token"`` (decoder models).
        max_features: target width of ``reduce="project"``.
        sample: ``"first"`` (the first ``n_samples`` validation examples) or ``"stratified"`` (the first
            ``n_samples // num_classes`` examples of each class).
        num_classes: number of classes, required by ``sample="stratified"``.
        input_fn: ``f(batch) -> Tensor``, the model input; default: a tensor batch, ``batch[0]``, or the first of
            ``input_ids``, ``inputs_embeds``, ``pixel_values``, ``input_values``, ``input_features``, ``x``,
            ``input``, ``inputs`` of a mapping or dataclass batch.
        label_fn: ``f(batch) -> (B,)`` integer labels, one per example; default ``batch[1]`` or the ``labels``,
            ``label``, ``y``, ``target``, ``targets`` entry, when it is one integer per example.
        mask_fn: ``f(batch) -> (B, T)`` padding mask, True at real tokens; default the batch's
            ``attention_mask``. Padded positions never enter a measurement.
        sequence_dim: where the tokens are in ``(B, T, D)``/``(T, B, D)`` layer outputs when the sequence length
            equals the batch size (1: batch-first, 0: sequence-first); otherwise found from the batch size.
        output_transform: ``f(layer_output) -> Tensor`` for layers returning tuples, dicts or objects; by default
            their first tensor with one row per example is used (with a one-time note).
        call: for a module called several times per forward pass, keep its ``"first"`` or ``"last"`` call.
        per_class: also measure each class's rows of every layer (needs labels) and log ``class_{c}/...`` and
            ``class_mean/...`` keys (Magai & Ayzenberg's per-class lifespan sums).
        per_class_max: each class is measured on at most its first ``per_class_max`` examples of the sample (Magai
            & Ayzenberg use 250); ``report.class_counts`` counts the examples of the sample.
        cubical_samples: also measure Suresh et al.'s cubical complexity of the feature maps of the first ``k``
            examples at every layer with ``(B, C, H, W)`` (or ``(B, H, W)``) outputs: each image's map, divided by one
            robust scale of the layer (its 0.99 quantile of absolute values), as a sublevel-set filtration;
            logged as ``cubical_betti_{q}`` (at ``cubical_threshold``, mean over the images) and
            ``cubical_complexity`` (their sum, Omega). ``0`` (default): off; the ``"decay_cubical"`` score sets 8.
        cubical_threshold: the filtration value of the cubical Betti numbers (normalised activation units).
        dataloader_idx: which validation dataloader the sample comes from.
        descriptors: which descriptors to log, among ``betti``, ``total_persistence``, ``entropy``,
            ``max_persistence``, ``amplitude``, ``n_long`` (one key per homology dimension) and ``id_twonn``,
            ``id_mle``, ``id_phdim``.
        metric: ``"euclidean"`` or ``"cosine"``.
        normalize: distance normalisation: ``"quantile"`` (0.9 quantile), ``"median"``, ``"max"`` or ``None``.
        ph_samples: compute H1 (and H2) on a farthest-point subsample of this size; H0 (a spanning tree) and the
            intrinsic dimension stay exact on every example. The subsample's diagrams are within bottleneck
            distance ``2 r`` of the exact ones (``r``: its covering radius, reported per layer in
            ``report.ph_bounds``), but its many short bars are not the whole sample's: Betti curves, lifetime sums
            and entropies count the subsample's bars (compare epochs at one setting). ``"auto"``: exact up to 1,024
            examples, then ``max(512, 2^20 / n_samples)`` points (about 0.5 s per layer on one core at 4,096
            examples; :func:`~lightning_topo.options.auto_ph_samples`). ``None`` (default): exact.
        ph_sparse: compute H1 (and H2) from Sheehy's sparse Rips filtration with this approximation factor
            ``c > 1`` (e.g. 2.0): every bar within a factor ``c`` in scale of an exact one (or short), Betti curves
            within a few percent (``benchmarks/RESULTS.md``), 10-40x faster than exact at 2,048-4,096 examples of
            low intrinsic dimension, less in high dimension. Combines with ``ph_samples``.
        betti_scale: filtration value of the logged Betti numbers (in normalised units).
        long_fraction: a bar is long when it exceeds this fraction of the filtration range (``n_long``).
        n_threads: giotto-ph threads per persistence call (-1: all cores).
        on_error: ``"warn"`` (default; NaN metrics and a warning) or ``"raise"``.
        seed: seed of the projections and subsamples.
        prefix: first part of every logged key; two monitors on one Trainer need two prefixes.
        compute: ``"sync"`` (default) computes at the end of the validation run and logs through
            ``pl_module.log``; ``"async"`` hands the work to a worker process and returns at once, and the results
            go straight to the loggers at the step they belong to when ready (all are flushed by the end of
            ``fit``, also when it stops early or fails). Async results never reach ``callback_metrics``, so
            combining it with an ``EarlyStopping``/``ModelCheckpoint`` on a ``topo/`` key is refused at set-up.
        workers: processes computing layers in parallel (giotto-ph holds the GIL, so threads would not help).
            ``"auto"``: one per core up to the number of layers when ``n_samples >= 256`` and ``maxdim >= 1``
            (below that a layer takes milliseconds and runs in the main process), at least one with
            ``compute="async"``. ``0`` computes in the main process. The pool is kept warm across epochs.
        max_scale: stop every filtration at this (normalised) scale: much cheaper, and Betti numbers and curves
            below it are exact; classes alive at ``max_scale`` become essential and leave the lifetime sums.
        backend: ``"giotto"`` or ``"gudhi"`` (GUDHI's Ripser, when installed) for the persistence call.
        log_figures: draw figures for loggers that show images (TensorBoard, MLflow, loggers with ``log_image``
            such as W&B): ``True`` at every measurement, an integer ``k`` at every k-th, ``False`` never. Tags:
            ``topo/{layer}/betti_curves``, ``topo/{layer}/diagram``, ``topo/{layer}/betti_evolution`` (from the
            second measurement) and ``topo/depth_profile``, at the step of the validation's scalars. Each layer's
            scale range is fixed at its first measurement, a little past its longest finite bar. A TensorBoard
            custom-scalars layout (``topo/score`` beside the validation metrics, then one chart per layer for
            each descriptor) is registered once.
        save_diagrams: write each measurement's diagrams and Betti curves (``topology/epoch_{e}_step_{s}.npz``)
            and scalars (``.json``) under the logger's directory, for ``lightning-topo report``.

    Raises:
        ValueError: for invalid arguments here; at set-up, for unknown layer names (listing the close matches),
            two monitors sharing a prefix, or ``compute="async"`` next to a monitor of a ``topo/`` key; at the
            first batch, for labels that are not one per example or an ambiguous sequence layout.

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
        every_n_validations: int = 1,
        score: str | Callable[[TopologyReport], float] | None = "id_last",
        score_mode: Literal["min", "max"] = "min",
        reduce: Reduce = "auto",
        max_features: int = 256,
        sample: Sample = "first",
        num_classes: int | None = None,
        input_fn: Callable[[Any], torch.Tensor] | None = None,
        label_fn: Callable[[Any], torch.Tensor] | None = None,
        mask_fn: Callable[[Any], torch.Tensor] | None = None,
        sequence_dim: int | None = None,
        output_transform: Callable[[Any], torch.Tensor] | None = None,
        call: Call = "first",
        per_class: bool = False,
        per_class_max: int = 250,
        cubical_samples: int = 0,
        cubical_threshold: float = 0.5,
        dataloader_idx: int = 0,
        descriptors: Sequence[str] = DEFAULT_DESCRIPTORS,
        metric: Metric = "euclidean",
        normalize: Normalize = "quantile",
        ph_samples: int | Literal["auto"] | None = None,
        ph_sparse: float | None = None,
        betti_scale: float = 0.2,
        long_fraction: float = 0.1,
        n_threads: int = -1,
        on_error: OnError = "warn",
        seed: int = 0,
        prefix: str = "topo",
        compute: Compute = "sync",
        workers: int | Literal["auto"] = "auto",
        max_scale: float | None = None,
        backend: Backend = "giotto",
        log_figures: bool | int = True,
        save_diagrams: bool = False,
    ) -> None:
        super().__init__()
        arguments = locals()
        self.layers = layers
        # the measurement options are validated once, the same way as in `analyze` and the metrics
        self.options = build_options(**{name: arguments[name] for name in OPTION_NAMES})
        self.settings = MonitorOptions(
            every_n_epochs, every_n_validations, dataloader_idx, prefix, compute, workers, log_figures, save_diagrams
        )
        self._warn = WarningLedger(lambda message: rank_zero_warn(message, category=TopologyWarning))
        self._publisher = Publisher(
            prefix,
            self.settings.figure_every,
            self.settings.save_diagrams,
            self.options.measure.betti_scale,
            warn=self._warn,
        )
        self._queue = MeasurementQueue(self.options, self.settings)
        self._capture: ActivationCapture | None = None
        self._run = 0  # which fit/validate call of this monitor (kept in checkpoints)
        self._validations = 0  # validation runs seen in this run
        self._measured = self._submitted = False

    @property
    def n_samples(self) -> int:
        return self.options.n_samples

    @property
    def maxdim(self) -> int:
        return self.options.measure.maxdim

    @property
    def prefix(self) -> str:
        return self.settings.prefix

    @property
    def score_mode(self) -> str:
        """The direction of ``topo/score``: ``"min"`` or ``"max"``."""
        return self.options.score.mode if self.options.score is not None else "min"

    @property
    def history(self) -> list[dict[str, Any]]:
        """One entry per measurement: ``{"run", "stage", "epoch", "step", "scalars"}`` (kept in checkpoints)."""
        return self._publisher.history

    @property
    def last_report(self) -> TopologyReport | None:
        """The most recent complete report."""
        return self._publisher.last_report

    @property
    def measured(self) -> bool:
        """Whether the validation run that ended last was measured (its results logged)."""
        return self._measured

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
        if self._capture is not None:
            self._capture.stop()
        check_trainer(self, trainer)
        if stage in ("fit", "validate"):  # the stages it measures (a resumed run takes its number from the checkpoint)
            self._run += 1
            self._publisher.start_run()
        self._validations = 0
        self._warn.reset()
        quota = -(-self.n_samples // max(trainer.world_size, 1))  # each rank's share, rounded up
        layers = resolve_layers(pl_module, self.layers)
        optional = default_layers(pl_module) if self.layers is None else ()
        self._capture = ActivationCapture(
            pl_module, layers, self.options, quota, optional, self._warn, strict_layout=False
        )
        shared = self.settings.compute == "sync" and trainer.world_size > 1  # every rank measures its share
        self._queue.cores = max(1, available_cores() // max(trainer.num_devices, 1)) if shared else None
        if (trainer.is_global_zero or shared) and stage in ("fit", "validate"):
            self._queue.open(len(layers))  # the workers start now, not at the first measurement

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._capture is not None:
            self._capture.stop()
        try:
            self._flush(trainer, wait=True)
        finally:
            self._queue.close()

    @override
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if self._capture is not None:
            self._capture.stop()
        try:
            self._flush(trainer, wait=True)  # results of finished measurements are not lost when the run dies
        except Exception as err:  # the run's own exception is the one to report
            rank_zero_warn(f"TopologyMonitor could not log pending results: {err}", category=TopologyWarning)
        finally:
            self._queue.close()  # Lightning does not call `teardown` on callbacks after an exception

    # capture ----------------------------------------------------------------------------------------------
    def _due(self, trainer: pl.Trainer) -> bool:
        """Every validation run is a measurement, subject to ``every_n_validations`` and ``every_n_epochs``."""
        if trainer.sanity_checking:
            return False
        self._validations += 1
        if trainer.state.fn != "fit":
            return True
        every = self.settings
        return (
            trainer.current_epoch % every.every_n_epochs == 0
            and (self._validations - 1) % every.every_n_validations == 0
        )

    @override
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._measured = self._submitted = False
        if self._capture is not None and self._due(trainer):
            self._capture.start()

    @override
    def on_validation_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if self._capture is not None and dataloader_idx == self.settings.dataloader_idx:
            self._capture.begin_batch(batch)

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
        if capture is None or dataloader_idx != self.settings.dataloader_idx:
            return
        capture.end_batch()
        if capture.active and capture.full and not distributed(trainer):
            # overlap: the workers measure while the rest of the validation set runs (under DDP the ranks
            # gather their samples at the end of the run)
            self._submit(trainer)

    # measure and log --------------------------------------------------------------------------------------
    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        sync = self.settings.compute == "sync"
        if not sync:
            self._flush(trainer, wait=False)
        capture = self._capture
        if capture is not None and capture.active:
            if sync and distributed(trainer):  # the ranks share the layers
                finished = measure_shared(
                    trainer, self._finish(trainer), self._queue, self._requests(trainer), pl_module.device
                )
                self._publish(trainer, finished, pl_module)
                self._measured = True
                return
            self._submit(trainer)  # a sample that never filled up (a short validation set), or async under DDP
        if not self._submitted:
            self._relog_score(trainer, pl_module)
        elif sync:
            self._publish(trainer, self._queue.wait_oldest(), pl_module)
            self._measured = True

    def _finish(self, trainer: pl.Trainer) -> dict[str, LayerSample]:
        """This validation run's sample, the capture closed; under DDP, without the default layers any rank left
        out (every rank must hold the same layers)."""
        assert self._capture is not None
        samples = self._capture.finish()
        self._submitted = True
        samples, skipped = agree_skipped(trainer, samples, self._capture.skipped)
        self._capture.skipped.update(skipped)  # no longer captured here either
        for alias, why in skipped.items():
            self._warn(("skipped", alias), f"TopologyMonitor left layer {alias!r} out of the default layers: {why}.")
        return samples

    def _requests(self, trainer: pl.Trainer) -> Callable[[list[str]], Any]:
        return lambda layers: self._publisher.figure_requests(
            trainer, layers, trainer.current_epoch, logger_step(trainer)
        )

    def _submit(self, trainer: pl.Trainer) -> None:
        """Hand this validation run's sample to the measurement queue (on rank zero, the ranks' samples gathered)."""
        samples = gather_samples(trainer, self._finish(trainer))
        if trainer.is_global_zero:
            requests = self._requests(trainer)(list(samples))
            self._queue.submit(samples, trainer.current_epoch, logger_step(trainer), requests)

    def _publish(self, trainer: pl.Trainer, finished: Finished, pl_module: pl.LightningModule | None) -> None:
        report = finished.report
        check_sample_size(trainer, report.n_samples, self.n_samples, self.settings.dataloader_idx, self._warn)
        when = f"at epoch {report.epoch} (step {report.step})"
        check_problems(report, self.options.on_error, self._warn, source="TopologyMonitor", when=when)
        stage = trainer.state.fn.value if trainer.state.fn is not None else "fit"
        self._publisher.publish(trainer, report, finished.images, finished.requests, pl_module, self._run, stage)

    def _flush(self, trainer: pl.Trainer, wait: bool) -> None:
        """Log every finished background measurement at its own step (all of them with ``wait=True``)."""
        logged = False
        for finished in self._queue.ready(wait):
            self._publish(trainer, finished, None)
            logged = True
        if logged and wait:
            for logger in trainer.loggers:
                logger.save()

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if len(self._queue):
            self._flush(trainer, wait=False)

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._flush(trainer, wait=True)

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn != "fit":  # trainer.validate(): nothing runs afterwards to wait for the results
            self._flush(trainer, wait=True)

    def _relog_score(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """On a validation without measurement, log this run's last score again so `topo/score` is never missing.

        ``ModelCheckpoint`` reads its monitor after every validation and warns when it is missing. A value from an
        earlier run (a ``validate`` before ``fit``, an earlier ``fit``) is never logged as current.
        """
        if trainer.sanity_checking or self.options.score is None or self.settings.compute == "async":
            return
        last = self.history[-1] if self.history else None
        if last is None or last.get("run") != self._run:
            return
        value = last["scalars"].get(f"{self.prefix}/score")
        if value is not None:
            sync = trainer.world_size > 1
            pl_module.log(f"{self.prefix}/score", value, on_step=False, on_epoch=True, sync_dist=sync, batch_size=1)

    # helpers for users --------------------------------------------------------------------------------------
    def early_stopping(self, patience: int = 3, **kwargs: Any) -> EarlyStopping:
        """A ready ``EarlyStopping`` on ``topo/score`` in the score's direction that counts *measurements* and
        treats a NaN score as no improvement (:class:`~lightning_topo.monitor.stopping.TopologyEarlyStopping`).

        Other keyword arguments go to ``EarlyStopping`` (e.g. ``min_delta``).

        Example:
            >>> monitor = TopologyMonitor(score="id_last", every_n_epochs=2)
            >>> stopper = monitor.early_stopping(patience=3)
            >>> stopper.monitor, stopper.mode, stopper.patience, stopper.check_finite
            ('topo/score', 'min', 3, False)
        """
        if self.options.score is None:
            raise ValueError("Expected a `score` on the monitor to stop on; it was created with score=None.")
        kwargs.setdefault("mode", self.score_mode)
        return TopologyEarlyStopping(self, monitor=f"{self.prefix}/score", patience=patience, **kwargs)

    def model_checkpoint(self, **kwargs: Any) -> ModelCheckpoint:
        """A ready ``ModelCheckpoint`` keeping the best ``topo/score`` (keyword arguments go to it; a NaN score is
        never the best)."""
        if self.options.score is None:
            raise ValueError("Expected a `score` on the monitor to checkpoint on; it was created with score=None.")
        kwargs.setdefault("mode", self.score_mode)
        return ModelCheckpoint(monitor=f"{self.prefix}/score", **kwargs)

    # checkpoints --------------------------------------------------------------------------------------------
    @override
    def state_dict(self) -> dict[str, Any]:
        return {"version": 2, "run": self._run, "validations": self._validations, **self._publisher.state_dict()}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._publisher.load_state_dict(state_dict)
        self._run = state_dict.get("run", self._run)  # a resumed run continues the checkpoint's run
        self._validations = state_dict.get("validations", self._validations)
