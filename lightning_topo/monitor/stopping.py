"""An ``EarlyStopping`` that counts measurements and never stops a run because a topological score is NaN."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import EarlyStopping
from typing_extensions import override

if TYPE_CHECKING:
    from lightning_topo.monitor.callback import TopologyMonitor

__all__ = ["TopologyEarlyStopping"]


class TopologyEarlyStopping(EarlyStopping):
    """``EarlyStopping`` on a :class:`~lightning_topo.TopologyMonitor`'s ``topo/score``.

    It looks at the score only after validation runs the monitor measured, so ``patience`` counts measurements
    whatever ``every_n_epochs``, ``every_n_validations`` or ``val_check_interval``; and a NaN score (a layer that
    could not be measured) counts as "no improvement" instead of stopping the run at once (``check_finite`` is
    off): the run stops only when patience runs out. Make it with :meth:`TopologyMonitor.early_stopping`.
    """

    def __init__(self, source: TopologyMonitor, **kwargs: Any) -> None:
        kwargs["check_finite"] = False
        super().__init__(**kwargs)
        self._source = source

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._source.measured:
            super().on_validation_end(trainer, pl_module)

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._source.measured:
            super().on_train_epoch_end(trainer, pl_module)
