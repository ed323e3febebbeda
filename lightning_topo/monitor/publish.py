"""Where a report goes: scalars to every logger, figures to those that show images, the Topology dashboard's summary
to each TensorBoard writer, files to disk.

Scalars go through ``pl_module.log`` when the report belongs to the validation that just ended (so
``EarlyStopping``/``ModelCheckpoint`` and every logger see them), or straight to the loggers at the report's step
when it arrives later (``compute="async"``). Figures and files are rank zero's job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np

from lightning_topo import plotting
from lightning_topo._warnings import warn_once
from lightning_topo.dashboard import add_report
from lightning_topo.engine import FigureRequest, LayerResult
from lightning_topo.report import TopologyReport

__all__ = ["Publisher", "custom_scalars_layout", "image_sinks"]

ImageSink = Callable[[str, Any, int], None]


def image_sinks(loggers: Sequence[Any]) -> tuple[list[ImageSink], list[str]]:
    """Functions putting an RGB image into each logger able to show images, and the names of those that cannot."""
    sinks: list[ImageSink] = []
    unable: list[str] = []
    for logger in loggers:
        experiment = _tensorboard_writer(logger)
        if experiment is not None and hasattr(experiment, "add_image"):
            sinks.append(_tensorboard_sink(experiment))
        elif callable(getattr(logger, "log_image", None)):
            sinks.append(_log_image_sink(logger))
        else:
            unable.append(type(logger).__name__)
    return sinks, unable


def _tensorboard_writer(logger: Any) -> Any:
    """The ``SummaryWriter`` of a ``TensorBoardLogger``, else ``None``."""
    return getattr(logger, "experiment", None) if type(logger).__name__ == "TensorBoardLogger" else None


def _tensorboard_sink(writer: Any) -> ImageSink:
    def sink(tag: str, image: np.ndarray, step: int) -> None:
        writer.add_image(tag, image, global_step=step, dataformats="HWC")

    return sink


def _log_image_sink(logger: Any) -> ImageSink:
    def sink(tag: str, image: np.ndarray, step: int) -> None:
        logger.log_image(key=tag, images=[image], step=step)

    return sink


def custom_scalars_layout(report: TopologyReport, prefix: str) -> dict[str, dict[str, list[Any]]]:
    """One chart per descriptor with every layer, and one chart per layer with its Betti numbers."""
    descriptors = list(report.metrics[report.layers[0]]) if report.layers else []
    by_descriptor = {d: ["Multiline", [rf"^{prefix}/[^/]+/{d}$"]] for d in descriptors}
    by_layer = {layer: ["Multiline", [rf"^{prefix}/{_escape(layer)}/betti_\d+$"]] for layer in report.layers}
    layout: dict[str, dict[str, list[Any]]] = {f"{prefix}: descriptors across layers": by_descriptor}
    layout[f"{prefix}: Betti numbers per layer"] = by_layer
    if report.score is not None:
        layout[f"{prefix}: score"] = {"score": ["Multiline", [rf"^{prefix}/score$"]]}
    return layout


def _escape(name: str) -> str:
    return "".join("\\" + c if c in r".^$*+?{}[]\|()" else c for c in name)


class Publisher:
    """Logs reports, keeps the monitor's history and draws its figures.

    Args:
        prefix: first part of every key.
        figure_every: draw figures at every k-th measurement (0: never).
        save_diagrams: write each report's files under ``{log_dir}/topology``.
    """

    def __init__(self, prefix: str, figure_every: int, save_diagrams: bool) -> None:
        self.prefix = prefix
        self.figure_every = figure_every
        self.save_diagrams = save_diagrams
        self.history: list[dict[str, Any]] = []
        self.last_report: TopologyReport | None = None
        self.curves: dict[str, list[tuple[int, np.ndarray]]] = {}
        self._n_measured = 0
        self._layout_registered = False

    # figures ----------------------------------------------------------------------------------------------
    def figure_requests(
        self, trainer: pl.Trainer, layers: Sequence[str], epoch: int
    ) -> dict[str, FigureRequest] | None:
        """Whether this measurement gets figures (every ``figure_every``-th, rank zero, a logger that shows them)
        and, if so, what each layer's worker should draw."""
        draw = self._draw_now(trainer)
        self._n_measured += 1
        if not draw:
            return None
        return {
            layer: FigureRequest(layer, epoch, plotting.layer_figures, [*self.curves.get(layer, [])])
            for layer in layers
        }

    def _draw_now(self, trainer: pl.Trainer) -> bool:
        if not self.figure_every or not trainer.is_global_zero or self._n_measured % self.figure_every:
            return False
        sinks, unable = image_sinks(trainer.loggers)
        if unable:
            warn_once(
                f"TopologyMonitor: {', '.join(unable)} cannot show images, so its figures are skipped (the scalars "
                "are logged). TensorBoardLogger and loggers with `log_image` get them.",
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
        if trainer.is_global_zero:
            self._files(trainer, report)
            for writer in filter(None, map(_tensorboard_writer, trainer.loggers)):
                add_report(writer, report, self.prefix, step)  # the Topology dashboard's data
            if requests is not None:
                self._figures(trainer, report, images, requests, step)
        return scalars

    def _record(self, report: TopologyReport, run: int, stage: str) -> dict[str, float]:
        self.last_report = report
        scalars = report.scalars(self.prefix)
        self.history.append(
            {"run": run, "stage": stage, "epoch": report.epoch, "step": report.step, "scalars": scalars}
        )
        for layer, curves in report.betti_curves.items():
            self.curves.setdefault(layer, []).append((int(report.epoch or 0), curves))
        return scalars

    def _files(self, trainer: pl.Trainer, report: TopologyReport) -> None:
        if self.save_diagrams:
            report.save(Path(trainer.log_dir or trainer.default_root_dir) / "topology", self.prefix)

    def _figures(
        self,
        trainer: pl.Trainer,
        report: TopologyReport,
        images: dict[str, dict[str, np.ndarray]],
        requests: dict[str, FigureRequest],
        step: int,
    ) -> None:
        sinks, _ = image_sinks(trainer.loggers)
        if not self._layout_registered:
            for logger in trainer.loggers:
                writer = _tensorboard_writer(logger)
                if writer is not None and hasattr(writer, "add_custom_scalars"):
                    writer.add_custom_scalars(custom_scalars_layout(report, self.prefix))
            self._layout_registered = True
        for tag, image in self._images(report, images, requests):
            for sink in sinks:
                sink(tag, image, step)

    def _images(
        self, report: TopologyReport, images: dict[str, dict[str, np.ndarray]], requests: dict[str, FigureRequest]
    ) -> Iterator[tuple[str, np.ndarray]]:
        """``(tag, RGB image)``: what the workers drew, and the rest drawn here; a copy of an earlier layer is not
        drawn again."""
        for layer in report.layers:
            if layer in report.copies:
                continue
            drawn = images.get(layer)
            if drawn is None and layer in report.diagrams and layer in requests:
                result = LayerResult({}, report.diagrams[layer], report.betti_curves.get(layer))
                drawn = plotting.layer_figures(result, requests[layer], report.grid)
            for name in ("betti_curves", "diagram", "betti_evolution"):
                if drawn and name in drawn:
                    yield f"{self.prefix}/{layer}/{name}", drawn[name]
        depth = plotting.plot_depth_profile(report, title=f"epoch {report.epoch}")
        yield f"{self.prefix}/depth_profile", plotting.figure_to_rgb(depth)

    # checkpoints ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        curves = {layer: [(e, c.tolist()) for e, c in items] for layer, items in self.curves.items()}
        return {"history": list(self.history), "betti_curves": curves}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = list(state.get("history", []))
        curves = state.get("betti_curves", {})
        self.curves = {layer: [(e, np.asarray(c)) for e, c in items] for layer, items in curves.items()}
