"""Where a report goes: scalars to every logger, figures to those that show images, the Topology dashboard's summary
to each TensorBoard writer, files to disk.

Scalars go through ``pl_module.log`` when the report belongs to the validation that just ended (so
``EarlyStopping``/``ModelCheckpoint`` and every logger see them), or straight to the loggers at the report's step
when it arrives later (``compute="async"``). Figures and files are rank zero's job. A report's step is
:func:`logger_step`, the step Lightning writes that validation's own metrics at, so images, scalars and
``val_loss`` line up in every logger.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import warnings
from collections.abc import Callable, Hashable, Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np

# mlflow itself is imported by its logger
from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger

from lightning_topo import plotting
from lightning_topo._warnings import TopologyWarning, WarningLedger
from lightning_topo.dashboard import add_report
from lightning_topo.engine import FigureRequest, LayerResult
from lightning_topo.report import TopologyReport

__all__ = ["Publisher", "custom_scalars_layout", "image_sinks", "logger_step"]

ImageSink = Callable[[str, Any, int], None]


def logger_step(trainer: pl.Trainer) -> int:
    """The step at which Lightning's logger connector writes the metrics of the validation running now.

    That is the count of training batches that stepped the optimizers so far (``trainer.global_step`` counts
    optimizer steps, and is one ahead during the validation at the end of a training epoch). Lightning exposes it
    only as ``fit_loop.epoch_loop._batches_that_stepped``, which its own ``LearningRateMonitor`` and
    ``DeviceStatsMonitor`` log at too; without it (a future Lightning), ``global_step``.
    """
    epoch_loop = getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None)
    step = getattr(epoch_loop, "_batches_that_stepped", None)
    return int(step) if isinstance(step, int) else int(trainer.global_step)


def image_sinks(loggers: Sequence[Any]) -> tuple[list[ImageSink], list[str]]:
    """Functions putting an RGB image into each logger able to show images, and the names of those that cannot.

    TensorBoard through its ``SummaryWriter``, MLflow through its client's ``log_image`` (stepped images, MLflow
    2.16 and later), any other logger with a ``log_image(key, images, step)`` method (Weights & Biases, Neptune,
    Comet) through it.
    """
    sinks: list[ImageSink] = []
    unable: list[str] = []
    for logger in loggers:
        experiment = _tensorboard_writer(logger)
        if experiment is not None and hasattr(experiment, "add_image"):
            sinks.append(_tensorboard_sink(experiment))
        elif isinstance(logger, MLFlowLogger) and hasattr(getattr(logger, "experiment", None), "log_image"):
            sinks.append(_mlflow_sink(logger))
        elif callable(getattr(logger, "log_image", None)):
            sinks.append(_log_image_sink(logger))
        else:
            unable.append(type(logger).__name__)
    return sinks, unable


def _tensorboard_writer(logger: Any) -> Any:
    """The ``SummaryWriter`` of a ``TensorBoardLogger`` (or a subclass), else ``None``."""
    return getattr(logger, "experiment", None) if isinstance(logger, TensorBoardLogger) else None


def _tensorboard_sink(writer: Any) -> ImageSink:
    def sink(tag: str, image: np.ndarray, step: int) -> None:
        file_writer = getattr(writer, "file_writer", None)  # created with the first scalar, before any image
        if file_writer is None or not callable(getattr(file_writer, "add_summary", None)):
            writer.add_image(tag, image, global_step=step, dataformats="HWC")
            return
        file_writer.add_summary(_image_summary(tag, image), step)

    return sink


def _image_summary(tag: str, image: np.ndarray) -> Any:
    """What ``add_image`` writes, with the PNG compressed at zlib level 1: about three times faster to encode than
    ``add_image``'s default, for files about 20% larger (flat-coloured figures compress well either way)."""
    import io

    from PIL import Image
    from tensorboard.compat.proto.summary_pb2 import Summary

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    height, width = image.shape[:2]
    png = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=buf.getvalue())
    return Summary(value=[Summary.Value(tag=tag, image=png)])


def _mlflow_sink(logger: Any) -> ImageSink:
    def sink(tag: str, image: np.ndarray, step: int) -> None:
        logger.experiment.log_image(logger.run_id, image, key=tag, step=step)

    return sink


def _log_image_sink(logger: Any) -> ImageSink:
    def sink(tag: str, image: np.ndarray, step: int) -> None:
        logger.log_image(key=tag, images=[image], step=step)

    return sink


def custom_scalars_layout(
    report: TopologyReport, prefix: str, metrics: Sequence[str] = ()
) -> dict[str, dict[str, list[Any]]]:
    """TensorBoard's custom-scalars layout: every chart holds one tag.

    TensorBoard colours a chart's lines by run, so the layers of one run in one chart could only be told apart by
    hovering; with one tag per chart the colours tell runs apart, as in the Scalars tab. The first category puts
    ``{prefix}/score`` beside the run's validation ``metrics`` (for example ``val_loss``); then one category per
    descriptor holds a chart per layer, in depth order (the Scalars tab sorts them by name). Layers side by side:
    the ``{prefix}/depth_profile`` image.

    Example:
        >>> r = TopologyReport(["input", "fc"], {"input": {"id_twonn": 9.0}, "fc": {"id_twonn": 3.0}}, score=3.0)
        >>> layout = custom_scalars_layout(r, "topo", ["val_loss"])
        >>> list(layout), list(layout["topo: id_twonn"])
        (['topo: score and validation metrics', 'topo: id_twonn'], ['input', 'fc'])
        >>> layout["topo: id_twonn"]["fc"]
        ['Multiline', ['^topo/fc/id_twonn$']]
    """
    # every layer's descriptors in order of first appearance (cubical ones only exist at feature-map layers)
    descriptors = list(dict.fromkeys(d for layer in report.layers for d in report.metrics.get(layer, {})))
    first: dict[str, list[Any]] = {}
    if report.score is not None:
        first[f"{prefix}/score"] = ["Multiline", [rf"^{prefix}/score$"]]
    first.update({key: ["Multiline", [rf"^{_escape(key)}$"]] for key in metrics})
    layout: dict[str, dict[str, list[Any]]] = {f"{prefix}: score and validation metrics": first} if first else {}
    for d in descriptors:
        layout[f"{prefix}: {d}"] = {
            layer: ["Multiline", [rf"^{prefix}/{_escape(layer)}/{d}$"]]
            for layer in report.layers
            if d in report.metrics.get(layer, {})
        }
    return layout


def validation_metrics(trainer: pl.Trainer, prefix: str) -> list[str]:
    """The run's own validation metrics (``val_loss``, ``val/acc``, ...): the scalar keys starting with ``val``."""
    keys = getattr(trainer, "callback_metrics", {}) or {}
    return sorted(k for k in keys if k.lower().startswith("val") and not k.startswith(f"{prefix}/"))


def _run_dir(trainer: pl.Trainer) -> str:
    """``trainer.log_dir`` without its broadcast: that property is a collective every rank must join, and the
    report files are written on rank zero only (under DDP, reading it there hung the run)."""
    if not trainer.loggers:
        return trainer.default_root_dir
    first = trainer.loggers[0]
    folder = first.log_dir if isinstance(first, (TensorBoardLogger, CSVLogger)) else first.save_dir
    return folder or trainer.default_root_dir


def _escape(name: str) -> str:
    return "".join("\\" + c if c in r".^$*+?{}[]\|()" else c for c in name)


class Publisher:
    """Logs reports, keeps the monitor's history and draws its figures.

    Each layer's plotted scale range is fixed at its first measurement (:func:`lightning_topo.plotting.fit_range`),
    and its Betti curves on that range are kept for the evolution heat map; both are in the checkpoint.

    Args:
        prefix: first part of every key.
        figure_every: draw figures at every k-th measurement (0: never).
        save_diagrams: write each report's files under ``{log_dir}/topology``.
        betti_scale: the scale of the logged Betti numbers, marked on the Betti curves.
        warn: ``warn(key, message)``, how a side output that failed (a figure, the files, the dashboard's summary,
            the layout) is reported: the scalars are logged and training goes on. By default a
            :class:`~lightning_topo.TopologyWarning` once per key (the callback passes its once-per-fit ledger).
    """

    def __init__(
        self,
        prefix: str,
        figure_every: int,
        save_diagrams: bool,
        betti_scale: float | None = None,
        warn: Callable[[Hashable, str], None] | None = None,
    ) -> None:
        self.prefix = prefix
        self._warn = warn or WarningLedger()
        self.figure_every = figure_every
        self.save_diagrams = save_diagrams
        self.betti_scale = betti_scale
        self.history: list[dict[str, Any]] = []
        self.last_report: TopologyReport | None = None
        self.ranges: dict[str, float] = {}
        self.curves: dict[str, list[tuple[int, np.ndarray]]] = {}
        self.curve_steps: dict[str, list[int]] = {}  # the step of each kept curve (heat-map rows within an epoch)
        self._n_measured = 0
        self._layout_registered = False
        self._warned_images = False

    def start_run(self) -> None:
        """A new ``fit`` or ``validate`` call draws as if it were the first: new plot ranges, heat maps from its own
        measurements only (the history keeps every run's scalars)."""
        self.ranges.clear()
        self.curves.clear()
        self.curve_steps.clear()
        self._n_measured = 0
        self._layout_registered = False  # a new run may have a new log directory

    # figures ----------------------------------------------------------------------------------------------
    def figure_requests(
        self, trainer: pl.Trainer, layers: Sequence[str], epoch: int, step: int | None = None
    ) -> dict[str, FigureRequest] | None:
        """Whether this measurement gets figures (every ``figure_every``-th, rank zero, a logger that shows them)
        and, if so, what each layer's worker should draw."""
        draw = self._draw_now(trainer)
        self._n_measured += 1
        if not draw:
            return None
        return {
            layer: FigureRequest(
                layer,
                epoch,
                plotting.layer_figures,
                [*self.curves.get(layer, [])],
                x_max=self.ranges.get(layer),
                mark=self.betti_scale,
                steps=self._steps(layer, step),
            )
            for layer in layers
        }

    def _steps(self, layer: str, step: int | None) -> list[int] | None:
        """The steps of the layer's kept curves and of this measurement, when every one is known."""
        known = self._known_steps(layer)
        return None if known is None or step is None else [*known, step]

    def _known_steps(self, layer: str) -> list[int] | None:
        """The step of each of the layer's kept curves, or None when some are unknown (a report without a step, a
        checkpoint from before the steps were kept)."""
        steps = self.curve_steps.get(layer, [])
        return list(steps) if len(steps) == len(self.curves.get(layer, [])) else None

    def _draw_now(self, trainer: pl.Trainer) -> bool:
        if not self.figure_every or not trainer.is_global_zero or self._n_measured % self.figure_every:
            return False
        sinks, unable = image_sinks(trainer.loggers)
        if unable and not self._warned_images:  # once per monitor
            self._warned_images = True
            warnings.warn(
                f"TopologyMonitor: {', '.join(unable)} cannot show images, so its figures are skipped (the scalars "
                "are logged). TensorBoardLogger, MLFlowLogger and loggers with `log_image` (W&B) get them.",
                TopologyWarning,
                stacklevel=2,
            )
        return bool(sinks)

    # publishing -------------------------------------------------------------------------------------------
    def publish(
        self,
        trainer: pl.Trainer,
        report: TopologyReport,
        images: dict[str, dict[str, np.ndarray]],
        requests: dict[str, FigureRequest] | None,
        pl_module: pl.LightningModule | None = None,
        run: int = 0,
        stage: str = "fit",
    ) -> dict[str, float]:
        """Record ``report`` (of the monitor's ``run``-th fit or validate call) and send it out: through
        ``pl_module.log`` when given, else to the loggers at the report's step. Returns the scalars."""
        scalars = self._record(report, run, stage)
        step = int(report.step or 0)
        if pl_module is not None:
            sync = trainer.world_size > 1
            for key, value in scalars.items():
                pl_module.log(key, value, on_step=False, on_epoch=True, sync_dist=sync, batch_size=1)
        elif trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics({**scalars, "epoch": float(report.epoch or 0)}, step=step)
        if trainer.is_global_zero:  # side outputs: one that fails is a warning, never the end of training
            with self._guard("files", "write the report files (save_diagrams=True)"):
                self._files(trainer, report)
            for writer in filter(None, map(_tensorboard_writer, trainer.loggers)):
                with self._guard("dashboard", "write the Topology dashboard's summary to TensorBoard"):
                    add_report(writer, report, self.prefix, step)  # the Topology dashboard's data
            with self._guard("layout", "register the TensorBoard custom-scalars layout"):
                self._layout(trainer, report)
            if requests is not None:
                self._figures(trainer, report, images, requests, step)
        return scalars

    @contextlib.contextmanager
    def _guard(self, key: str, what: str) -> Iterator[None]:
        """Run a side output; an exception becomes one warning per ``key`` (per fit, with the callback's ledger)."""
        try:
            yield
        except Exception as err:
            self._warn(
                ("publish", key),
                f"TopologyMonitor could not {what} ({type(err).__name__}: {err}); the scalars are logged and "
                "training goes on.",
            )

    def _record(self, report: TopologyReport, run: int, stage: str) -> dict[str, float]:
        self.last_report = report
        scalars = report.scalars(self.prefix)
        self.history.append(
            {"run": run, "stage": stage, "epoch": report.epoch, "step": report.step, "scalars": scalars}
        )
        for layer, diagrams in report.diagrams.items():
            if layer in report.copies:
                continue
            with self._guard("curves", f"keep the Betti curves of layer {layer!r} for its evolution figure"):
                if layer not in self.ranges:  # fixed at the layer's first measurement
                    self.ranges[layer] = plotting.fit_range(diagrams, report.grid)
                curves = plotting.fine_betti_curves(diagrams, self.ranges[layer])
                self.curves.setdefault(layer, []).append((int(report.epoch or 0), curves))
                if report.step is not None:
                    self.curve_steps.setdefault(layer, []).append(int(report.step))
        return scalars

    def _files(self, trainer: pl.Trainer, report: TopologyReport) -> None:
        """The report's files: under the run's log directory, or, when the first logger is MLflow's (whose
        ``log_dir`` is the store every run shares), as artifacts of its run under ``topology/``."""
        if not self.save_diagrams:
            return
        first = trainer.logger
        if isinstance(first, MLFlowLogger) and first.run_id is not None:
            with tempfile.TemporaryDirectory() as folder:
                report.save(folder, self.prefix)
                first.experiment.log_artifacts(first.run_id, folder, artifact_path="topology")
            return
        report.save(Path(_run_dir(trainer)) / "topology", self.prefix)

    def _layout(self, trainer: pl.Trainer, report: TopologyReport) -> None:
        """Register the custom-scalars layout with every TensorBoard logger, once (it also tells
        ``lightning-topo report`` the layers' depth order)."""
        if self._layout_registered:
            return
        for logger in trainer.loggers:
            writer = _tensorboard_writer(logger)
            if writer is not None and hasattr(writer, "add_custom_scalars"):
                metrics = validation_metrics(trainer, self.prefix)
                writer.add_custom_scalars(custom_scalars_layout(report, self.prefix, metrics))
        self._layout_registered = True

    def _figures(
        self,
        trainer: pl.Trainer,
        report: TopologyReport,
        images: dict[str, dict[str, np.ndarray]],
        requests: dict[str, FigureRequest],
        step: int,
    ) -> None:
        sinks, _ = image_sinks(trainer.loggers)
        for tag, image in self._images(report, images, requests):
            for sink in sinks:
                with self._guard("send figure", f"send the figure {tag!r} to a logger"):
                    sink(tag, image, step)

    def _images(
        self, report: TopologyReport, images: dict[str, dict[str, np.ndarray]], requests: dict[str, FigureRequest]
    ) -> Iterator[tuple[str, np.ndarray]]:
        """``(tag, RGB image)``: what the workers drew, and the rest drawn here; a copy of an earlier layer is not
        drawn again. A request made before earlier measurements were published (``compute="async"``: the next
        measurement starts before the last one is logged) lacks their curves and range: drawn here again, with
        them."""
        for layer in report.layers:
            if layer in report.copies:
                continue
            drawn = images.get(layer)
            request = requests.get(layer)
            current = None if request is None else self._current(layer, request)
            if current is not None and current is not request:
                drawn, requests = None, {**requests, layer: current}
            if drawn is None and layer in report.diagrams and layer in requests:
                result = LayerResult({}, report.diagrams[layer], report.betti_curves.get(layer))
                result.class_diagrams = report.class_diagrams.get(layer, {})
                with self._guard("draw", f"draw the figures of layer {layer!r}"):
                    drawn = plotting.layer_figures(result, requests[layer], report.grid)
            for name in ("betti_curves", "diagram", "betti_evolution", "class_betti_curves"):
                if drawn and name in drawn:
                    yield f"{self.prefix}/{layer}/{name}", drawn[name]
        profile = None
        with self._guard("depth profile", "draw the depth profile"):
            depth = plotting.plot_depth_profile(report, title=f"Depth profile, epoch {report.epoch}", reuse=True)
            profile = plotting.figure_to_rgb(depth)
        if profile is not None:
            yield f"{self.prefix}/depth_profile", profile

    def _current(self, layer: str, request: FigureRequest) -> FigureRequest:
        """``request`` with the layer's range and earlier curves as known now (``_record`` has just added this
        measurement's curves); the request itself when nothing was missing."""
        known = self.curves.get(layer, [])[:-1]
        if len(known) == len(request.history) and (request.x_max is not None or not known):
            return request
        return dataclasses.replace(
            request, history=list(known), x_max=self.ranges.get(layer), steps=self._known_steps(layer)
        )

    # checkpoints ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        curves = {layer: [(e, c.tolist()) for e, c in items] for layer, items in self.curves.items()}
        return {
            "history": list(self.history),
            "plot_ranges": dict(self.ranges),
            "plotted_betti_curves": curves,
            "plotted_steps": {layer: list(steps) for layer, steps in self.curve_steps.items()},
            "n_measured": self._n_measured,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = list(state.get("history", []))
        self._n_measured = int(state.get("n_measured", self._n_measured))  # the figure cadence goes on
        # checkpoints before the per-layer ranges kept curves on the whole grid ("betti_curves"): not comparable
        # with the ranges fixed from now on, so the heat maps start again
        self.ranges = {layer: float(x) for layer, x in state.get("plot_ranges", {}).items()}
        curves = state.get("plotted_betti_curves", {})
        self.curves = {
            layer: [(int(e), np.asarray(c, dtype=np.int32)) for e, c in items]
            for layer, items in curves.items()
            if layer in self.ranges
        }
        steps = state.get("plotted_steps", {})
        self.curve_steps = {layer: [int(t) for t in steps[layer]] for layer in self.curves if layer in steps}
