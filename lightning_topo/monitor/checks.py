"""Checks the monitor makes once: the Trainer's configuration at set-up, the size of what it measured."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.utilities import rank_zero_warn

from lightning_topo._warnings import TopologyWarning
from lightning_topo.monitor.stopping import TopologyEarlyStopping

if TYPE_CHECKING:
    from lightning_topo.monitor.callback import TopologyMonitor

__all__ = ["check_sample_size", "check_trainer", "n_loaders"]


def n_loaders(trainer: pl.Trainer) -> int:
    return max(len(trainer.num_val_batches), 1)


def check_trainer(monitor: TopologyMonitor, trainer: pl.Trainer) -> None:
    """Refuse or warn, once at set-up, about configurations that cannot work as the user expects."""
    callbacks = list(trainer.callbacks)  # type: ignore[attr-defined]
    prefix = monitor.prefix
    from lightning_topo.monitor.callback import TopologyMonitor  # the module that imports this one

    twins = [cb for cb in callbacks if isinstance(cb, TopologyMonitor) and cb is not monitor and cb.prefix == prefix]
    if twins:
        raise ValueError(
            f"Two TopologyMonitors log under the same prefix {prefix!r}: Lightning would average their "
            f"`{prefix}/score` and `{prefix}/time_s`. Give each its own, e.g. TopologyMonitor(prefix='topo_head')."
        )
    watchers = [
        cb for cb in callbacks if isinstance(getattr(cb, "monitor", None), str) and cb.monitor.startswith(f"{prefix}/")
    ]
    if monitor.settings.compute == "async" and watchers:
        raise ValueError(
            f"TopologyMonitor(compute='async') logs its results later, at the step they belong to, so "
            f"{', '.join(type(cb).__name__ for cb in watchers)} monitoring a `{prefix}/...` key would never see them "
            "in time. Use compute='sync' to stop or checkpoint on a topological score."
        )
    for cb in watchers:
        if isinstance(cb, EarlyStopping) and not isinstance(cb, TopologyEarlyStopping) and cb.check_finite:
            rank_zero_warn(
                f"EarlyStopping(monitor={cb.monitor!r}) stops the run at once when the value is NaN (a layer that "
                "could not be measured makes `topo/score` NaN), and counts validations, not measurements. "
                "`TopologyMonitor.early_stopping()` treats NaN as no improvement and counts measurements.",
                category=TopologyWarning,
            )
    every, per_epoch = monitor.settings.every_n_epochs, trainer.check_val_every_n_epoch
    if per_epoch is not None and every > 1:
        max_epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else per_epoch * every
        validated = range(per_epoch - 1, max_epochs, per_epoch)
        if not any(epoch % every == 0 for epoch in validated):
            rank_zero_warn(
                f"TopologyMonitor(every_n_epochs={every}) measures epochs 0, {every}, {2 * every}, ... but "
                f"Trainer(check_val_every_n_epoch={per_epoch}) validates after epochs {per_epoch - 1}, "
                f"{2 * per_epoch - 1}, ...: nothing would ever be measured. Use every_n_epochs=1 (every validation "
                "is measured) or every_n_validations.",
                category=TopologyWarning,
            )
    ph_samples = monitor.options.measure.ph_samples
    if isinstance(ph_samples, int) and ph_samples >= monitor.n_samples:
        rank_zero_warn(
            f"`ph_samples={ph_samples}` >= `n_samples={monitor.n_samples}`: no subsampling happens.",
            category=TopologyWarning,
        )


def check_sample_size(
    trainer: pl.Trainer, n: int, n_samples: int, dataloader_idx: int, warn: Callable[[tuple[Any, ...], str], None]
) -> None:
    """Say why fewer than ``n_samples`` examples were measured (a short set, ``limit_val_batches``, no loader)."""
    if 0 < n < n_samples:
        limit = trainer.limit_val_batches
        cause = (
            f"`Trainer(limit_val_batches={limit})` stops validation early"
            if limit != 1.0
            else "the validation set (or a class, with sample='stratified') holds fewer examples"
        )
        loader = f" (validation dataloader {dataloader_idx})" if n_loaders(trainer) > 1 else ""
        warn(("short",), f"TopologyMonitor measured {n} examples{loader}, fewer than `n_samples={n_samples}`: {cause}.")
    elif n == 0 and dataloader_idx >= n_loaders(trainer):
        warn(
            ("dataloader",),
            f"TopologyMonitor(dataloader_idx={dataloader_idx}) measured nothing: there are {n_loaders(trainer)} "
            "validation dataloaders.",
        )
