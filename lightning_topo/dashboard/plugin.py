"""The "Topology" tab of TensorBoard: Betti curves, persistence diagrams, depth profiles and a layer-by-epoch heat map.

TensorBoard finds :class:`TopologyPluginLoader` through the ``tensorboard_plugins`` entry point that
``pip install lightning-topo`` registers. The plugin reads the summaries :mod:`lightning_topo.dashboard.summary`
writes (one per measurement, tag = the monitor's prefix) through TensorBoard's data provider, so it serves only the
runs TensorBoard itself found under ``--logdir``: a request never becomes a file path. The page is a plain ES module
and SVG (``static/``), loaded in TensorBoard's plugin iframe, with nothing fetched from the network.

Routes (under ``/data/plugin/lightning_topo``):

- ``/index.js``, ``/style.css``: the page.
- ``/runs``: ``{"runs": [{"run": name, "tags": [prefix, ...]}, ...]}``, the runs holding measurements.
- ``/index?run=R&tag=T``: the measurements of one stream, without diagrams: ``layers``, ``descriptors``,
  ``measurements`` (``step``, ``epoch``, ``wall_time``, ``n_samples``, ``score``, ``score_problem``, ``layers``
  (those the measurement holds), ``elapsed_s``, ``problems``) and
  ``values`` (``{descriptor: [[value per layer] per measurement]}``, ``null`` where not finite).
- ``/layer?run=R&tag=T&step=S&layer=L``: one layer of one measurement: ``grid``, ``betti_curves``, ``diagrams``
  (death ``null`` for an essential bar), ``metrics``, ``problem``, and ``source`` (the layer whose data it shares).

A ``run`` or ``tag`` that is not one TensorBoard lists (a path with ``..``, an absolute path, a typo) gets HTTP 400
and nothing is read; a malformed ``step`` gets 400, a step without a measurement 404, and a ``layer`` that measurement
does not hold 400 (the index lists each measurement's ``layers``).
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Callable
from importlib import resources
from typing import Any

import numpy as np
from tensorboard import errors, plugin_util
from tensorboard.backend import http_util
from tensorboard.data import provider
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from lightning_topo.dashboard.summary import PLUGIN_NAME, parse_payload

__all__ = ["DEFAULT_SAMPLES", "TopologyPlugin", "TopologyPluginLoader"]

DEFAULT_SAMPLES = 1000
"""Measurements TensorBoard keeps per run and prefix unless ``--samples_per_plugin lightning_topo=N`` says otherwise
(its own default for an unknown plugin is 10)."""

_STATIC = {"index.js": "application/javascript", "style.css": "text/css"}
_MAX_NAME = 1024
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclasses.dataclass(frozen=True)
class _Stream:
    """One run's measurements under one prefix: the index the page draws from, and each measurement's document."""

    version: tuple[Any, Any]
    index: dict[str, Any]
    documents: dict[int, bytes]


class TopologyPlugin(base_plugin.TBPlugin):
    """Serves the Topology dashboard from the summaries in the event files TensorBoard has loaded.

    Args:
        context: TensorBoard's ``TBContext``; only its ``data_provider`` and ``sampling_hints`` are used.
    """

    plugin_name = PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext) -> None:
        self._data_provider = context.data_provider
        hint = (context.sampling_hints or {}).get(PLUGIN_NAME, DEFAULT_SAMPLES)
        self._downsample = int(hint) if hint else 10**9  # 0 means "keep everything"
        self._lock = threading.Lock()
        self._streams: dict[tuple[str, str, str], _Stream] = {}

    def get_plugin_apps(self) -> dict[str, Any]:
        routes = {f"/{name}": self._static(name, kind) for name, kind in _STATIC.items()}
        routes.update({"/runs": self._runs, "/index": self._index, "/layer": self._layer})
        return {path: wrappers.Request.application(handler) for path, handler in routes.items()}

    def is_active(self) -> bool:
        return False  # TensorBoard activates the tab itself when the data provider lists this plugin's summaries

    def frontend_metadata(self) -> base_plugin.FrontendMetadata:
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name="Topology", disable_reload=True)

    # routes -----------------------------------------------------------------------------------------------
    def _static(self, name: str, content_type: str) -> Callable[[wrappers.Request], Any]:
        """The handler serving ``static/{name}``: a fixed file of the package, never a path from the request."""

        def serve(request: wrappers.Request) -> Any:
            content = (resources.files("lightning_topo.dashboard") / "static" / name).read_bytes()
            return http_util.Respond(request, content, content_type)

        return serve

    def _runs(self, request: wrappers.Request) -> Any:
        listing = self._listing(request)
        runs = [{"run": run, "tags": sorted(tags)} for run, tags in sorted(listing.items()) if tags]
        return http_util.Respond(request, {"runs": runs}, "application/json")

    def _index(self, request: wrappers.Request) -> Any:
        stream = self._stream(request)
        return http_util.Respond(request, stream.index, "application/json")

    def _layer(self, request: wrappers.Request) -> Any:
        step = _step(request.args.get("step"))  # every parameter is checked before anything is read
        layer = request.args.get("layer")
        if not layer:
            raise errors.InvalidArgumentError("Expected a `layer` parameter (see ./index) but got none.")
        stream = self._stream(request)
        document = stream.documents.get(step)
        if document is None:
            raise errors.NotFoundError(f"No measurement at step {step} in this run.")
        record = parse_payload(document)
        if layer not in record["layers"]:
            raise errors.InvalidArgumentError(
                f"Expected `layer` to be one of the measured layers {record['layers']} but got {layer[:100]!r}."
            )
        return http_util.Respond(request, _layer_view(record, stream.index, step, layer), "application/json")

    # data -------------------------------------------------------------------------------------------------
    def _listing(self, request: wrappers.Request) -> dict[str, dict[str, Any]]:
        """``{run: {tag: TensorTimeSeries}}`` for every run TensorBoard knows with summaries of this plugin."""
        ctx = plugin_util.context(request.environ)
        experiment = plugin_util.experiment_id(request.environ)
        mapping = self._data_provider.list_tensors(ctx, experiment_id=experiment, plugin_name=PLUGIN_NAME)
        return {run: dict(tags) for run, tags in mapping.items()}

    def _stream(self, request: wrappers.Request) -> _Stream:
        run, tag = _name(request, "run"), _name(request, "tag")
        listing = self._listing(request)
        if run not in listing:
            raise errors.InvalidArgumentError(
                f"Expected `run` to be one of the runs with topology summaries ({len(listing)} under the logdir, "
                f"listed by ./runs) but got {run[:100]!r}."
            )
        series = listing[run].get(tag)
        if series is None:
            raise errors.InvalidArgumentError(
                f"Expected `tag` to be one of {sorted(listing[run])} for this run but got {tag[:100]!r}."
            )
        experiment = plugin_util.experiment_id(request.environ)
        key = (experiment, run, tag)
        version = (series.max_step, series.max_wall_time)
        with self._lock:
            cached = self._streams.get(key)
        if cached is not None and cached.version == version:
            return cached
        data = self._data_provider.read_tensors(
            plugin_util.context(request.environ),
            experiment_id=experiment,
            plugin_name=PLUGIN_NAME,
            downsample=self._downsample,
            run_tag_filter=provider.RunTagFilter(runs=[run], tags=[tag]),
        )
        stream = _build_stream(run, tag, version, data.get(run, {}).get(tag, []))
        with self._lock:
            self._streams[key] = stream
        return stream


class TopologyPluginLoader(base_plugin.TBLoader):
    """Loads :class:`TopologyPlugin`; keeps :data:`DEFAULT_SAMPLES` measurements per stream unless the user set
    ``--samples_per_plugin lightning_topo=N``."""

    def fix_flags(self, flags: Any) -> None:
        samples = getattr(flags, "samples_per_plugin", None)
        if isinstance(samples, dict) and PLUGIN_NAME not in samples:
            flags.samples_per_plugin = {**samples, PLUGIN_NAME: DEFAULT_SAMPLES}

    def load(self, context: base_plugin.TBContext) -> TopologyPlugin:
        return TopologyPlugin(context)


# helpers --------------------------------------------------------------------------------------------------
def _name(request: wrappers.Request, key: str) -> str:
    """The ``run`` or ``tag`` parameter, refused (400) when missing or when it looks like a path out of the logdir."""
    value = request.args.get(key)
    if not value:
        raise errors.InvalidArgumentError(f"Expected a `{key}` parameter (see ./runs) but got none.")
    parts = re.split(r"[\\/]", value)
    if (
        len(value) > _MAX_NAME
        or "\x00" in value
        or value.startswith(("/", "\\", "~"))
        or _WINDOWS_DRIVE.match(value)
        or "://" in value
        or ".." in parts
    ):
        raise errors.InvalidArgumentError(
            f"Expected `{key}` to be a name TensorBoard lists under the logdir (see ./runs), not a path out of it, "
            f"but got {value[:100]!r}."
        )
    return value


def _step(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError:
        raise errors.InvalidArgumentError(
            f"Expected `step` to be an integer step of a measurement but got {str(value)[:40]!r}."
        ) from None


def _document(datum: Any) -> bytes:
    value = np.asarray(datum.numpy).reshape(-1)[0]
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def _build_stream(run: str, tag: str, version: tuple[Any, Any], data: list[Any]) -> _Stream:
    """Index a run's measurements: one per step (the latest when a step repeats), in step order."""
    latest: dict[int, tuple[float, bytes]] = {}
    for datum in data:
        if datum.step not in latest or datum.wall_time >= latest[datum.step][0]:
            latest[datum.step] = (datum.wall_time, _document(datum))
    layers: list[str] = []
    descriptors: list[str] = []
    records: list[tuple[int, float, dict[str, Any]]] = []
    unreadable = 0
    for step in sorted(latest):
        wall_time, document = latest[step]
        try:
            record = parse_payload(document)
        except ValueError:
            unreadable += 1
            continue
        records.append((step, wall_time, record))
        for layer in record["layers"]:
            if layer not in layers:
                layers.append(layer)
            for name in record["metrics"].get(layer, {}):
                if name not in descriptors:
                    descriptors.append(name)
    measurements = [
        {
            "step": step,
            "epoch": record.get("epoch"),
            "wall_time": wall_time,
            "n_samples": record.get("n_samples"),
            "score": record.get("score"),
            "score_problem": record.get("score_problem"),
            "layers": record["layers"],
            "elapsed_s": record.get("elapsed_s"),
            "problems": {layer: "; ".join(kinds.values()) for layer, kinds in record.get("problems", {}).items()},
        }
        for step, wall_time, record in records
    ]
    values = {
        name: [[record["metrics"].get(layer, {}).get(name) for layer in layers] for _, _, record in records]
        for name in descriptors
    }
    index = {
        "run": run,
        "tag": tag,
        "layers": layers,
        "descriptors": descriptors,
        "measurements": measurements,
        "values": values,
        "unreadable": unreadable,
    }
    documents = {step: latest[step][1] for step, _, _ in records}
    return _Stream(version, index, documents)


def _layer_view(record: dict[str, Any], index: dict[str, Any], step: int, layer: str) -> dict[str, Any]:
    source = record.get("copies", {}).get(layer, layer)
    problems = record.get("problems", {}).get(layer, {})
    return {
        "run": index["run"],
        "tag": index["tag"],
        "step": step,
        "epoch": record.get("epoch"),
        "layer": layer,
        "source": source,
        "grid": record.get("grid", []),
        "betti_curves": record.get("betti_curves", {}).get(source),
        "diagrams": record.get("diagrams", {}).get(source),
        "metrics": record["metrics"].get(layer, {}),
        "problem": "; ".join(problems.values()),
    }
