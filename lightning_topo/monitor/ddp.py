"""DDP: every rank logs the same values, and the ranks share the work.

Synchronous measurements split the layers across ranks (:func:`measure_shared`). On one machine every rank gets
every layer's rows and the ranks draw the layers one at a time from a counter in the process group's store, each
measuring with its own workers on its own device until none is left: they finish together, however the layers'
costs vary. Across machines (or without a store) each layer's rows travel from every rank to the one rank that owns
the layer (``gather_object``, never every sample to every rank), which measures a fixed share, longest first. Either
way the small per-layer results are gathered so that every rank assembles the same report. ``compute="async"``
gathers every rank's samples on rank zero (:func:`gather_samples`, a ``gather_object``), which measures them all in
the background.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import lightning.pytorch as pl
import torch

from lightning_topo._warnings import warn_once
from lightning_topo.engine import FigureRequest, LayerResult, LayerSample, find_copies
from lightning_topo.engine.layer import failed
from lightning_topo.engine.run import assemble, sample_size
from lightning_topo.monitor.publish import logger_step
from lightning_topo.monitor.queue import Finished, MeasurementQueue, to_cpu
from lightning_topo.report import TopologyReport

__all__ = [
    "agree_skipped",
    "assign_layers",
    "distributed",
    "gather_samples",
    "measure_shared",
    "merge_parts",
    "work_counter",
]

_Part = tuple[torch.Tensor | None, torch.Tensor | None, dict[str, str], torch.Tensor | None]


def distributed(trainer: pl.Trainer) -> bool:
    """Whether this run has several processes with an initialised process group."""
    return trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized()


def _part(sample: LayerSample) -> _Part:
    cpu = to_cpu(sample)
    return cpu.points, cpu.labels, cpu.problems, cpu.volumes


def merge_parts(parts: Sequence[_Part], device: torch.device | None = None) -> LayerSample:
    """One layer's sample from its parts in rank order (``(points, labels, problems, volumes)`` per rank, as the
    ranks send them); the union of the ranks' problems. Feature maps of a shape other than the first rank's are
    left out, with a warning."""
    problems = {k: v for _, _, probs, _ in parts for k, v in probs.items()}
    points = [p for p, _, _, _ in parts if p is not None]
    labels = [lab for p, lab, _, _ in parts if p is not None]
    maps = [v for p, _, _, v in parts if p is not None and v is not None]
    widths = {p.shape[1] for p in points}
    if len(widths) > 1:
        problems["width"] = f"its reduced width differs between ranks ({sorted(widths)})"
    ok = bool(points) and len(widths) == 1 and not problems
    x = torch.cat(points) if ok else None
    known = [lab for lab in labels if lab is not None]
    y = torch.cat(known) if ok and len(known) == len(labels) else None
    if maps and any(v.shape[1:] != maps[0].shape[1:] for v in maps):  # ranks saw images of different sizes
        shapes = sorted({tuple(v.shape[1:]) for v in maps})
        warn_once(
            f"TopologyMonitor: the ranks' feature maps for cubical persistence have different shapes {shapes}; the "
            f"cubical descriptors use those of shape {tuple(maps[0].shape[1:])} only (resize the validation images "
            "to one size to use them all)."
        )
        maps = [v for v in maps if v.shape[1:] == maps[0].shape[1:]]
    volumes = torch.cat(maps) if ok and maps else None  # the first examples of the gathered sample come first
    if x is not None and device is not None:
        x = x.to(device)
    return LayerSample(x, y, problems, volumes)


def agree_skipped(
    trainer: pl.Trainer, samples: dict[str, LayerSample], skipped: dict[str, str]
) -> tuple[dict[str, LayerSample], dict[str, str]]:
    """The same layers on every rank: each rank leaves out the default layers that any rank left out (each rank
    decides from its own batches), so the ranks gather and share identical layers. Returns this rank's samples
    without them, and every rank's ``{alias: why}`` (the lowest rank's reason first)."""
    if not distributed(trainer):
        return samples, skipped
    union: dict[str, str] = {}
    for part in _all(trainer, skipped):
        for alias, why in part.items():
            union.setdefault(alias, why)
    return {a: s for a, s in samples.items() if a not in union}, union


def gather_samples(trainer: pl.Trainer, samples: dict[str, LayerSample]) -> dict[str, LayerSample]:
    """Every rank's samples on rank zero, concatenated in rank order (labels too); the other ranks, which neither
    measure nor publish them, get ``{}``."""
    if not distributed(trainer):
        return samples
    gathered: list[Any] | None = [None] * trainer.world_size if trainer.global_rank == 0 else None
    torch.distributed.gather_object({alias: _part(s) for alias, s in samples.items()}, gathered, dst=0)
    if gathered is None:
        return {}
    merged = {alias: merge_parts([rank[alias] for rank in gathered]) for alias in samples}
    for alias, sample in merged.items():  # the same model on every rank: this rank knows which layers are outputs
        sample.is_output = samples[alias].is_output
    return merged


def _all(trainer: pl.Trainer, obj: Any) -> list[Any]:
    gathered: list[Any] = [None] * trainer.world_size
    torch.distributed.all_gather_object(gathered, obj)
    return gathered


def _longest_first(layers: Sequence[str], costs: dict[str, float]) -> tuple[list[str], dict[str, float]]:
    """The layers longest first by their time at the last measurement (``costs``, the same on every rank), and the
    time each is counted at: a layer not measured yet counts as the costliest known (ties keep the layers' order)."""
    guess = max((costs[a] for a in layers if a in costs), default=1.0)
    counted = {a: costs.get(a, guess) for a in layers}
    return sorted(layers, key=lambda a: -counted[a]), counted


def assign_layers(layers: Sequence[str], costs: dict[str, float], world: int) -> dict[str, int]:
    """``{layer: rank}``: longest first, each layer to the rank with the least work so far, using each layer's time at
    its last measurement (``costs``, the same on every rank). Layers not measured yet count as the costliest known
    layer (one each, in order: round robin on the first measurement)."""
    order, counted = _longest_first(layers, costs)
    loads = [0.0] * world
    owners: dict[str, int] = {}
    for alias in order:
        rank = loads.index(min(loads))
        owners[alias] = rank
        loads[rank] += counted[alias]
    return owners


def work_counter(trainer: pl.Trainer) -> Any | None:
    """The process group's key-value store, through which the ranks of one machine draw the layers one at a time
    (``None``: several machines, where every rank would need every sample, or no store: each rank then measures
    a fixed share of the layers, gathered to it alone)."""
    if trainer.num_nodes != 1:
        return None
    try:
        from torch.distributed.distributed_c10d import _get_default_store

        return _get_default_store()
    except Exception:
        return None


def _measure_drawn(
    trainer: pl.Trainer,
    samples: dict[str, LayerSample],
    measured: list[str],
    queue: MeasurementQueue,
    figures: dict[str, FigureRequest] | None,
    device: torch.device,
    store: Any,
    key: str,
) -> tuple[dict[str, LayerResult], float]:
    """Every rank gets every layer's rows; then each rank draws the next layer from a shared counter as soon as it
    is free (longest first by the last measurement's times), so that the ranks finish together however the layers'
    costs vary from one measurement to the next."""
    parts = _all(trainer, {a: _part(samples[a]) for a in measured})
    order, _ = _longest_first(measured, queue.costs)  # the same on every rank (gathered costs)

    def take() -> tuple[str, LayerSample] | None:
        try:
            i = int(store.add(key, 1)) - 1
        except Exception as err:  # this rank stops drawing; the layers it leaves become problems, not a hang
            warn_once(f"TopologyMonitor: a rank could not draw layers from the shared counter ({err}).")
            return None
        if i >= len(order):
            return None
        alias = order[i]
        try:
            return alias, merge_parts([part[alias] for part in parts], device)
        except Exception as err:  # raising here would leave the other ranks waiting in the result gather
            return alias, LayerSample(None, problems={"failed": f"its rows could not be merged ({err})"})

    return queue.measure_taken(take, figures, len(measured))


def _forget(store: Any, key: str) -> None:
    with contextlib.suppress(Exception):  # a leftover key costs a few bytes
        store.delete_key(key)


def measure_shared(
    trainer: pl.Trainer,
    samples: dict[str, LayerSample],
    queue: MeasurementQueue,
    requests: Callable[[list[str]], dict[str, FigureRequest] | None],
    device: torch.device,
) -> Finished:
    """Measure a synchronous DDP measurement with the layers split across ranks; the same report on every rank.

    Args:
        trainer: the trainer (its process group).
        samples: this rank's samples of every layer.
        queue: this rank's measurement queue (its worker pool).
        requests: what figures to draw for the given layers (rank zero draws; other ranks get None).
        device: where this rank measures (its model's device).
    """
    world, rank = trainer.world_size, trainer.global_rank
    layers = list(samples)
    # layers that equal an earlier one on every rank are measured once
    local_copies = find_copies(samples)
    store = work_counter(trainer)
    agreed = _all(trainer, (local_copies, uuid.uuid4().hex if store is not None else None))
    copies = {a: o for a, o in local_copies.items() if all(c.get(a) == o for c, _ in agreed)}
    measured = [a for a in layers if a not in copies]
    local_n, local_counts = sample_size(samples)
    figures = requests(layers)
    key = f"lightning_topo/layers/{agreed[0][1]}"  # rank zero's token: one counter per measurement
    drawn = store is not None and all(token is not None for _, token in agreed)  # every rank draws, or none
    if drawn:
        results, elapsed = _measure_drawn(trainer, samples, measured, queue, figures, device, store, key)
    else:
        owners = assign_layers(measured, queue.costs, world)
        share: dict[str, LayerSample] = {}
        for dst in range(world):
            payload = {a: _part(samples[a]) for a in measured if owners[a] == dst}
            gathered: list[Any] | None = [None] * world if rank == dst else None
            torch.distributed.gather_object(payload, gathered, dst=dst)
            if gathered is not None:
                share = {a: merge_parts([part[a] for part in gathered], device) for a in payload}
        mine = {a: r for a, r in figures.items() if a in share} if figures else None
        results, elapsed = queue.measure_share(share, mine)
    # rank zero's figures stay on rank zero (it alone publishes them); the other ranks get the numbers
    images = {a: r.images for a, r in results.items() if r.images and a not in copies}
    sent = {a: replace(r, images=None) if r.images else r for a, r in results.items()}
    everything = _all(trainer, (sent, elapsed, local_n, local_counts))
    merged: dict[str, LayerResult] = {a: r for part in everything for a, r in part[0].items()}
    if drawn and rank == 0:
        _forget(store, key)
    for alias in measured:  # a counter that failed on a rank leaves its layer to no one: say so, never hang
        if alias not in merged:
            merged[alias] = failed(queue.options.measure, {"failed": "no rank measured it (the work queue failed)"})
    queue.costs.update({a: r.seconds for a, r in merged.items()})  # gathered: the same on every rank
    queue.reaches.update({a: r.h1_reach for a, r in merged.items()})
    merged.update({a: merged[o] for a, o in copies.items()})
    counts: dict[int, int] = {}
    for part in everything:
        for c, k in part[3].items():
            counts[c] = counts.get(c, 0) + k
    report = TopologyReport(
        layers=layers,
        metrics={},
        n_samples=sum(part[2] for part in everything),
        epoch=trainer.current_epoch,
        step=logger_step(trainer),
        elapsed_s=max(part[1] for part in everything),
        class_counts=counts,
        copies=copies,
        outputs=[a for a, s in samples.items() if s.is_output],
    )
    report = assemble(report, merged, queue.options.measure, queue.options.score)
    return Finished(report, images, figures)
