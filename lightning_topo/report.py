"""``TopologyReport``: what one measurement found, layer by layer, and its file format.

A report is complete when the engine returns it; nothing downstream mutates it. It owns its file format:
:meth:`TopologyReport.save` writes ``{name}.npz`` (diagrams, Betti curves, grid) and ``{name}.json`` (scalars,
problems, the measurement's epoch/step) and :meth:`TopologyReport.load` reads them back.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lightning_topo.diagrams import PersistenceDiagrams

__all__ = ["INPUT", "OUTPUT", "TopologyReport"]

INPUT = "input"
"""The layer name of the network input."""
OUTPUT = "output"
"""The layer name of the model's own output."""

_FORMAT_VERSION = 1


@dataclass
class TopologyReport:
    """Per-layer descriptors and diagrams of one measurement.

    Attributes:
        layers: layer aliases in depth order (``"input"`` first when monitored).
        metrics: ``{layer: {descriptor: value}}``; a layer that could not be measured holds NaN values.
        diagrams: ``{layer: PersistenceDiagrams}`` for the layers that were measured.
        betti_curves: ``{layer: (maxdim + 1, len(grid)) array}`` on the shared ``grid``.
        grid: the filtration grid of the Betti curves (normalised distances).
        problems: ``{layer: {kind: message}}``: why a layer (or some of its metrics) could not be measured.
        n_samples: number of examples measured.
        epoch: the training epoch (``None`` outside training).
        step: the global step of the measurement (``None`` outside training).
        score: the configured score, when one is.
        score_problem: why the score is NaN, when it is.
        elapsed_s: wall time of the computation.
        class_metrics: ``{layer: {class: {descriptor: value}}}`` when per-class descriptors were computed.
        class_counts: ``{class: examples}`` in the measured sample, when labels are known.
        per_class: whether per-class descriptors were asked for (``per_class=True``): then :meth:`scalars` holds
            ``{layer}/class_{c}/{descriptor}`` and ``{layer}/class_mean/{descriptor}``.
        class_betti_curves: ``{layer: {class: curves}}`` with ``per_class=True``.
        class_diagrams: ``{layer: {class: PersistenceDiagrams}}`` with ``per_class=True`` (the one field not saved
            to files).
        copies: ``{layer: earlier layer}`` for layers whose sample equalled an earlier layer's exactly: measured
            once, logged under both names, drawn once.
        outputs: layers whose output is the model's own output (the classifier head ``forward`` returns, found
            while capturing when ``output`` itself is not monitored): never the hidden layer a score reads.
        ph_bounds: ``{layer: bound}`` for the layers whose H1 came from a farthest-point subsample (``ph_samples``):
            their diagrams are within this bottleneck distance (twice the subsample's covering radius, normalised
            units) of those of every example.
    """

    layers: list[str]
    metrics: dict[str, dict[str, float]]
    diagrams: dict[str, PersistenceDiagrams] = field(default_factory=dict)
    betti_curves: dict[str, np.ndarray] = field(default_factory=dict)
    grid: np.ndarray = field(default_factory=lambda: np.zeros(0))
    problems: dict[str, dict[str, str]] = field(default_factory=dict)
    n_samples: int = 0
    epoch: int | None = None
    step: int | None = None
    score: float | None = None
    score_problem: str | None = None
    elapsed_s: float = 0.0
    class_metrics: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)
    class_counts: dict[int, int] = field(default_factory=dict)
    copies: dict[str, str] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    per_class: bool = False
    class_betti_curves: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)
    ph_bounds: dict[str, float] = field(default_factory=dict)
    class_diagrams: dict[str, dict[int, PersistenceDiagrams]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, dict[str, float]]:
        """``{layer: {descriptor: value}}`` as plain floats."""
        return {layer: {k: float(v) for k, v in self.metrics[layer].items()} for layer in self.layers}

    def scalars(self, prefix: str = "topo") -> dict[str, float]:
        """The flat logging dict: ``{"topo/{layer}/{descriptor}": value}``, the per-class keys with ``per_class``,
        ``topo/score`` when set, ``topo/time_s``."""
        out = {f"{prefix}/{layer}/{name}": float(v) for layer in self.layers for name, v in self.metrics[layer].items()}
        if self.per_class:
            for layer in self.layers:
                for key, value in self.class_scalars(layer).items():
                    out[f"{prefix}/{layer}/{key}"] = value
        if self.score is not None:
            out[f"{prefix}/score"] = float(self.score)
        out[f"{prefix}/time_s"] = float(self.elapsed_s)
        return out

    def class_scalars(self, layer: str) -> dict[str, float]:
        """``{"class_{c}/{descriptor}": value}`` and their mean over classes, ``{"class_mean/{descriptor}": value}``."""
        per_class = self.class_metrics.get(layer, {})
        out = {f"class_{c}/{k}": float(v) for c, m in sorted(per_class.items()) for k, v in m.items()}
        keys = {k for m in per_class.values() for k in m}
        for key in sorted(keys):
            values = [m[key] for m in per_class.values() if key in m]
            out[f"class_mean/{key}"] = float(np.mean(values)) if values else math.nan
        return out

    def profile(self, descriptor: str) -> np.ndarray:
        """One descriptor across layers, in depth order (NaN where a layer was not measured)."""
        return np.array([self.metrics[layer].get(descriptor, math.nan) for layer in self.layers], dtype=np.float64)

    def problem_text(self, layer: str) -> str:
        """Every problem of ``layer`` in one sentence ("" when it had none)."""
        return "; ".join(m.rstrip(". ") for m in self.problems.get(layer, {}).values())

    # file format ------------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The file stem of this report: ``epoch_{e}_step_{s}`` (``epoch_{e}`` without a step; ``epoch_0`` outside
        training). Several validations per epoch (``val_check_interval``) get their own files."""
        epoch = f"epoch_{self.epoch if self.epoch is not None else 0}"
        return epoch if self.step is None else f"{epoch}_step_{self.step}"

    def save(self, directory: str | os.PathLike[str], prefix: str = "topo") -> Path:
        """Write ``{name}.npz`` (diagrams, Betti curves, grid) and ``{name}.json`` (scalars, problems) into
        ``directory`` (created when missing); returns the JSON path."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {"grid": np.asarray(self.grid)}
        for i, layer in enumerate(self.layers):
            if layer in self.diagrams:
                for q, dgm in enumerate(self.diagrams[layer]):
                    arrays[f"L{i}/H{q}"] = np.asarray(dgm)
            if layer in self.betti_curves:
                arrays[f"L{i}/betti_curves"] = np.asarray(self.betti_curves[layer])
            for c, curves in self.class_betti_curves.get(layer, {}).items():
                arrays[f"L{i}/C{c}/betti_curves"] = np.asarray(curves)
        np.savez_compressed(out / f"{self.name}.npz", **arrays)  # type: ignore[arg-type]
        payload = {
            "format": _FORMAT_VERSION,
            "epoch": self.epoch,
            "step": self.step,
            "prefix": prefix,
            "layers": self.layers,
            "n_samples": self.n_samples,
            "scalars": _jsonable(self.scalars(prefix)),
            "score_problem": self.score_problem,
            "problems": self.problems,
            "class_counts": {str(c): n for c, n in self.class_counts.items()},
            "copies": self.copies,
            "outputs": self.outputs,
            "per_class": self.per_class,
            "ph_bounds": _jsonable(self.ph_bounds),
            "class_metrics": {
                layer: {str(c): _jsonable(m) for c, m in per_class.items()}
                for layer, per_class in self.class_metrics.items()
            },
        }
        path = out / f"{self.name}.json"
        path.write_text(json.dumps(payload, indent=1, sort_keys=True, allow_nan=False))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TopologyReport:
        """Read a report written by :meth:`save` from its ``.json`` path (the ``.npz`` beside it is optional; its
        path reads the ``.json`` beside it)."""
        path = Path(path)
        if path.suffix == ".npz":
            path = path.with_suffix(".json")
        try:
            record = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path} is not a report written by TopologyReport.save (a .json file): {err}") from err
        if not isinstance(record, dict) or "layers" not in record or "scalars" not in record:
            raise ValueError(f"{path} is not a report written by TopologyReport.save: it has no layers and scalars.")
        prefix = record.get("prefix", "topo")
        layers = list(record["layers"])
        scalars = record["scalars"]
        metrics: dict[str, dict[str, float]] = {}
        for layer in layers:
            head = f"{prefix}/{layer}/"
            metrics[layer] = {k[len(head) :]: _float(v) for k, v in scalars.items() if _owned_by(k, head)}
        report = cls(
            layers=layers,
            metrics=metrics,
            problems={k: (v if isinstance(v, dict) else {"problem": v}) for k, v in record.get("problems", {}).items()},
            n_samples=int(record.get("n_samples", 0)),
            epoch=record.get("epoch"),
            step=record.get("step"),
            score=_float(scalars[f"{prefix}/score"]) if f"{prefix}/score" in scalars else None,
            score_problem=record.get("score_problem"),
            elapsed_s=_float(scalars.get(f"{prefix}/time_s", 0.0)),
            class_metrics={
                layer: {int(c): {k: _float(v) for k, v in m.items()} for c, m in per_class.items()}
                for layer, per_class in record.get("class_metrics", {}).items()
            },
            class_counts={int(c): int(n) for c, n in record.get("class_counts", {}).items()},
            copies=dict(record.get("copies", {})),
            outputs=list(record.get("outputs", [])),
            per_class=bool(record.get("per_class", False)),
            ph_bounds={k: _float(v) for k, v in record.get("ph_bounds", {}).items()},
        )
        arrays_path = path.with_suffix(".npz")
        if arrays_path.exists():
            with np.load(arrays_path) as arrays:
                report.grid = arrays["grid"]
                for i, layer in enumerate(layers):
                    dims = [f"L{i}/H{q}" for q in range(8) if f"L{i}/H{q}" in arrays.files]
                    if dims:
                        report.diagrams[layer] = PersistenceDiagrams([arrays[k] for k in dims])
                    if f"L{i}/betti_curves" in arrays.files:
                        report.betti_curves[layer] = arrays[f"L{i}/betti_curves"]
                    head = f"L{i}/C"
                    for key in arrays.files:
                        if key.startswith(head) and key.endswith("/betti_curves"):
                            c = int(key[len(head) : -len("/betti_curves")])
                            report.class_betti_curves.setdefault(layer, {})[c] = arrays[key]
        return report


def _owned_by(key: str, head: str) -> bool:
    """Whether ``key`` is a layer-level descriptor under ``head`` (not a per-class one, which has another ``/``)."""
    return key.startswith(head) and "/" not in key[len(head) :]


def _float(v: Any) -> float:
    """A number written by :func:`_jsonable`: ``None`` is NaN, ``"inf"`` and ``"-inf"`` are infinite."""
    return math.nan if v is None else float(v)


def _jsonable(values: dict[str, float]) -> dict[str, float | str | None]:
    """Numbers as valid JSON (which has no NaN or infinity): NaN as ``null``, infinities as ``"inf"``/``"-inf"``."""
    return {k: (None if math.isnan(v) else str(float(v)) if math.isinf(v) else float(v)) for k, v in values.items()}
