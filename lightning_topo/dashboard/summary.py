"""The Topology dashboard's summaries: one per measurement, written into the TensorBoard event file.

``TopologyMonitor`` writes one summary of this plugin at every measurement, through each ``TensorBoardLogger``'s
writer (rank zero), so the dashboard works with the default settings: no ``save_diagrams=True`` needed. A report made
outside a ``Trainer`` (:func:`lightning_topo.analyze`) can be written with :func:`add_report`.

Data format (version 1)
-----------------------
Each measurement is one ``Summary.Value`` in the run's event file:

- ``tag``: the monitor's prefix (``"topo"`` by default); one run may hold several monitors with different prefixes.
- ``step``: the measurement's global step.
- ``metadata.plugin_data``: ``plugin_name = "lightning_topo"``, ``content = b'{"version": 1}'`` (JSON); the
  ``data_class`` is ``DATA_CLASS_TENSOR``.
- ``tensor``: a scalar ``DT_STRING`` tensor whose one string is a UTF-8 JSON document::

      {
        "version": 1,
        "epoch": 3, "step": 120,               # null outside training
        "n_samples": 500, "elapsed_s": 0.81,
        "score": 1.25,                         # null when no score is configured
        "score_problem": null,                 # why the score is NaN, when it is
        "layers": ["input", "conv1", ...],     # depth order
        "metrics": {layer: {descriptor: value}},
        "problems": {layer: {kind: message}},  # why a layer, or some of its values, could not be measured
        "copies": {layer: earlier_layer},      # measured once: curves and diagrams are stored under earlier_layer
        "grid": [t_0, t_1, ...],               # filtration values of the Betti curves
        "betti_curves": {layer: [[beta_q(t_0), beta_q(t_1), ...] for q in 0..maxdim]},
        "diagrams": {layer: [[[birth, death], ...] for q in 0..maxdim]}
      }

  Non-finite numbers are ``null``: a NaN descriptor, and the death of an essential bar (``inf`` in
  :class:`~lightning_topo.PersistenceDiagrams`). Reals keep 7 significant digits (float32 precision). A layer
  without diagrams (it could not be measured) has no entry in ``betti_curves`` and ``diagrams``.

TensorBoard keeps 10 tensor summaries per tag unless told otherwise; the dashboard's plugin raises that to 1000 for
this plugin (``--samples_per_plugin lightning_topo=N`` overrides it, ``0`` keeps every measurement).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from lightning_topo.report import TopologyReport

__all__ = ["FORMAT_VERSION", "PLUGIN_NAME", "add_report", "parse_payload", "report_payload", "report_summary"]

PLUGIN_NAME = "lightning_topo"
"""The plugin's name: ``SummaryMetadata.plugin_data.plugin_name`` and the dashboard's route prefix."""
FORMAT_VERSION = 1
"""The version of the JSON document (see the module docstring)."""


def _real(value: Any) -> float | None:
    v = float(value)
    return float(f"{v:.7g}") if math.isfinite(v) else None


def _reals(values: Iterable[Any]) -> list[float | None]:
    return [_real(v) for v in values]


def report_payload(report: TopologyReport) -> dict[str, Any]:
    """The JSON document of ``report`` (see the module docstring).

    Example:
        >>> from lightning_topo import PersistenceDiagrams, TopologyReport
        >>> dgms = PersistenceDiagrams([np.array([[0.0, 0.5], [0.0, np.inf]]), np.zeros((0, 2))])
        >>> report = TopologyReport(["a"], {"a": {"betti_0": 2.0}}, {"a": dgms}, epoch=1, step=10)
        >>> payload = report_payload(report)
        >>> payload["diagrams"]["a"]
        [[[0.0, 0.5], [0.0, None]], []]
    """
    measured = [layer for layer in report.layers if layer not in report.copies]
    return {
        "version": FORMAT_VERSION,
        "epoch": report.epoch,
        "step": report.step,
        "n_samples": int(report.n_samples),
        "elapsed_s": _real(report.elapsed_s),
        "score": None if report.score is None else _real(report.score),
        "score_problem": report.score_problem,
        "layers": list(report.layers),
        "metrics": {layer: {k: _real(v) for k, v in report.metrics[layer].items()} for layer in report.layers},
        "problems": {layer: dict(kinds) for layer, kinds in report.problems.items()},
        "copies": dict(report.copies),
        "grid": _reals(np.asarray(report.grid).ravel()),
        "betti_curves": {
            layer: [[int(b) for b in row] for row in np.asarray(report.betti_curves[layer])]
            for layer in measured
            if layer in report.betti_curves
        },
        "diagrams": {
            layer: [[_reals(point) for point in np.asarray(dgm)] for dgm in report.diagrams[layer]]
            for layer in measured
            if layer in report.diagrams
        },
    }


def report_summary(report: TopologyReport, prefix: str = "topo") -> Any:
    """A ``tensorboard`` ``Summary`` proto holding ``report`` under the tag ``prefix``, for ``FileWriter.add_summary``.

    Example:
        >>> report = TopologyReport(["a"], {"a": {"betti_0": 2.0}}, epoch=0, step=5)
        >>> summary = report_summary(report)
        >>> value = summary.value[0]
        >>> value.tag, value.metadata.plugin_data.plugin_name
        ('topo', 'lightning_topo')
        >>> parse_payload(value.tensor.string_val[0])["metrics"]
        {'a': {'betti_0': 2.0}}
    """
    from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2

    document = json.dumps(report_payload(report), separators=(",", ":"), allow_nan=False).encode("utf-8")
    metadata = summary_pb2.SummaryMetadata(
        display_name=prefix,
        summary_description="lightning-topo measurement: layers, descriptors, Betti curves, persistence diagrams",
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name=PLUGIN_NAME, content=json.dumps({"version": FORMAT_VERSION}).encode("utf-8")
        ),
        data_class=summary_pb2.DATA_CLASS_TENSOR,
    )
    tensor = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING, tensor_shape=tensor_shape_pb2.TensorShapeProto(), string_val=[document]
    )
    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=prefix, metadata=metadata, tensor=tensor)])


def add_report(writer: Any, report: TopologyReport, prefix: str = "topo", step: int | None = None) -> None:
    """Write ``report`` into a TensorBoard event file, for the Topology dashboard.

    Args:
        writer: a ``torch.utils.tensorboard.SummaryWriter`` (``TensorBoardLogger.experiment``), or anything with
            ``add_summary(summary, global_step)``.
        report: the measurement, e.g. from :func:`lightning_topo.analyze`.
        prefix: the tag; the dashboard lists one stream per prefix.
        step: the event's step; defaults to ``report.step`` (0 when ``None``).

    Raises:
        TypeError: if ``writer`` has neither ``add_summary`` nor a file writer.

    Example:
        >>> import tempfile
        >>> from torch.utils.tensorboard import SummaryWriter
        >>> report = TopologyReport(["a"], {"a": {"betti_0": 2.0}})
        >>> with tempfile.TemporaryDirectory() as logdir, SummaryWriter(logdir) as writer:
        ...     add_report(writer, report, step=3)
    """
    target = writer if callable(getattr(writer, "add_summary", None)) else _file_writer(writer)
    if target is None:
        raise TypeError(
            f"Expected a torch.utils.tensorboard.SummaryWriter or an object with `add_summary` but got "
            f"{type(writer).__name__}. Pass `TensorBoardLogger.experiment`."
        )
    global_step = step if step is not None else int(report.step or 0)
    target.add_summary(report_summary(report, prefix), global_step)


def _file_writer(writer: Any) -> Any:
    """The ``FileWriter`` behind a ``SummaryWriter``; reopened after ``close()`` as its own ``add_*`` methods do."""
    file_writer = getattr(writer, "file_writer", None)
    if file_writer is None and callable(getattr(writer, "_get_file_writer", None)):
        file_writer = writer._get_file_writer()
    return file_writer if callable(getattr(file_writer, "add_summary", None)) else None


def parse_payload(document: bytes | str) -> dict[str, Any]:
    """Read a summary's JSON document back, checking what the dashboard relies on.

    Raises:
        ValueError: if it is not a JSON object of a known version with ``layers`` and ``metrics``, or a layer's
            ``metrics`` or ``problems`` entry is not an object.

    Example:
        >>> parse_payload(b'{"version": 1, "layers": ["a"], "metrics": {"a": {}}}')["layers"]
        ['a']
        >>> parse_payload(b'{"version": 9}')
        Traceback (most recent call last):
        ...
        ValueError: Expected a lightning_topo summary of version 1 but got version 9. Upgrade lightning-topo to read it.
    """
    record = json.loads(document)
    if not isinstance(record, Mapping):
        raise ValueError(f"Expected a JSON object but got {type(record).__name__}.")
    version = record.get("version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"Expected a lightning_topo summary of version {FORMAT_VERSION} but got version {version}. "
            "Upgrade lightning-topo to read it."
        )
    layers, metrics = record.get("layers"), record.get("metrics")
    if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers) or not isinstance(metrics, dict):
        raise ValueError("Expected `layers` (a list of names) and `metrics` (an object) in a lightning_topo summary.")
    problems = record.get("problems", {})
    if not isinstance(problems, dict):
        raise ValueError(f"Expected `problems` to be an object but got {type(problems).__name__}.")
    for key, entries in (("metrics", metrics), ("problems", problems)):
        wrong = sorted(layer for layer, value in entries.items() if not isinstance(value, dict))
        if key == "problems":  # {layer: {kind: message}}, the messages joined into one sentence
            wrong += sorted(layer for layer, value in entries.items() if layer not in wrong and not _texts(value))
        if wrong:
            raise ValueError(f"Expected `{key}` of every layer to be an object but got something else for {wrong}.")
    return dict(record)


def _texts(value: Mapping[str, Any]) -> bool:
    return all(isinstance(v, str) for v in value.values())
