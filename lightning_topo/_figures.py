"""Getting figures and raw results of a report to the loggers and to disk (rank zero only)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lightning_topo import plotting
from lightning_topo._compute import FigureRequest, LayerResult, layer_images
from lightning_topo.report import TopologyReport

ImageSink = Callable[[str, Any, int], None]


def image_sinks(loggers: Sequence[Any]) -> tuple[list[ImageSink], list[str]]:
    """Functions putting an RGB image into each logger able to show images, and the names of those that cannot."""
    sinks: list[ImageSink] = []
    unable: list[str] = []
    for logger in loggers:
        experiment = tensorboard_writer(logger)
        if experiment is not None and hasattr(experiment, "add_image"):
            sinks.append(_tensorboard_sink(experiment))
        elif callable(getattr(logger, "log_image", None)):
            sinks.append(_log_image_sink(logger))
        else:
            unable.append(type(logger).__name__)
    return sinks, unable


def tensorboard_writer(logger: Any) -> Any:
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


def report_images(
    report: TopologyReport,
    prefix: str,
    curve_history: dict[str, list[tuple[int, np.ndarray]]],
) -> Iterator[tuple[str, np.ndarray]]:
    """``(tag, RGB image)`` for one measured epoch; the tag scheme is documented on ``TopologyMonitor``.

    Layers whose images were drawn by a worker process come as they are; the others are drawn here. The
    history must not yet hold this report's curves.
    """
    epoch = int(report.epoch or 0)
    for layer in report.layers:
        images = report.images.get(layer)
        if images is None and layer in report.diagrams:
            history = [(e, c) for e, c in curve_history.get(layer, []) if e != epoch]
            request = FigureRequest(layer, epoch, [e for e, _ in history], [c for _, c in history])
            result = LayerResult({}, report.diagrams[layer], report.betti_curves.get(layer))
            images = layer_images(result, request, report.grid)
        for name in ("betti_curves", "diagram", "betti_evolution"):
            if images and name in images:
                yield f"{prefix}/{layer}/{name}", images[name]
    depth = plotting.plot_depth_profile(report, title=f"epoch {report.epoch}")
    yield f"{prefix}/depth_profile", plotting.figure_to_rgb(depth)


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


def save_report(
    directory: str | os.PathLike[str], report: TopologyReport, scalars: dict[str, float], prefix: str = "topo"
) -> Path:
    """Write ``epoch_{k}.npz`` (diagrams, Betti curves, grid) and ``epoch_{k}.json`` (scalars) into ``directory``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    epoch = report.epoch if report.epoch is not None else 0
    arrays: dict[str, np.ndarray] = {"grid": np.asarray(report.grid)}
    for layer, dgms in report.diagrams.items():
        for q, dgm in enumerate(dgms):
            arrays[f"{layer}/H{q}"] = np.asarray(dgm)
    for layer, curves in report.betti_curves.items():
        arrays[f"{layer}/betti_curves"] = np.asarray(curves)
    np.savez_compressed(out / f"epoch_{epoch}.npz", **arrays)  # type: ignore[arg-type]
    payload = {
        "epoch": epoch,
        "prefix": prefix,
        "layers": report.layers,
        "n_samples": report.n_samples,
        "scalars": {k: (None if math.isnan(v) else v) for k, v in scalars.items()},
        "problems": report.problems,
    }
    (out / f"epoch_{epoch}.json").write_text(json.dumps(payload, indent=1, sort_keys=True))
    return out
