"""DDP: gather every rank's samples, broadcast rank zero's report, so that every rank logs the same values."""

from __future__ import annotations

from typing import Any, TypeVar

import lightning.pytorch as pl
import torch

from lightning_topo.engine import LayerSample

__all__ = ["broadcast", "distributed", "gather_samples"]

T = TypeVar("T")


def distributed(trainer: pl.Trainer) -> bool:
    """Whether this run has several processes with an initialised process group."""
    return trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized()


def gather_samples(trainer: pl.Trainer, samples: dict[str, LayerSample]) -> dict[str, LayerSample]:
    """Every rank's samples, concatenated in rank order (labels too); the union of every rank's problems.

    A layer that some rank could not capture keeps the others' rows; a layer whose widths differ between ranks
    is a problem.
    """
    if not distributed(trainer):
        return samples
    local = {
        alias: (None if s.points is None else s.points.cpu(), None if s.labels is None else s.labels.cpu(), s.problems)
        for alias, s in samples.items()
    }
    gathered: list[Any] = [None] * trainer.world_size
    torch.distributed.all_gather_object(gathered, local)
    merged: dict[str, LayerSample] = {}
    for alias in samples:
        parts = [rank[alias] for rank in gathered]
        problems = {k: v for _, _, probs in parts for k, v in probs.items()}
        points = [p for p, _, _ in parts if p is not None]
        labels = [lab for p, lab, _ in parts if p is not None]
        widths = {p.shape[1] for p in points}
        if len(widths) > 1:
            problems["width"] = f"its reduced width differs between ranks ({sorted(widths)})"
        ok = bool(points) and len(widths) == 1 and not problems
        merged[alias] = LayerSample(
            torch.cat(points) if ok else None,
            torch.cat(labels) if ok and all(lab is not None for lab in labels) else None,
            problems,
        )
    return merged


def broadcast(trainer: pl.Trainer, obj: T) -> T:
    """Rank zero's ``obj`` on every rank."""
    if trainer.world_size <= 1:
        return obj
    return trainer.strategy.broadcast(obj, src=0)
