"""An ``EarlyStopping`` that counts measurements, never stops a run whose score has never been finite, and says why
it stops."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason
from lightning.pytorch.utilities import rank_zero_warn
from typing_extensions import override

from lightning_topo._warnings import TopologyWarning

if TYPE_CHECKING:
    from lightning_topo.monitor.callback import TopologyMonitor

__all__ = ["TopologyEarlyStopping"]


class TopologyEarlyStopping(EarlyStopping):
    """``EarlyStopping`` on a :class:`~lightning_topo.TopologyMonitor`'s ``topo/score``.

    It looks at the score only after validation runs the monitor measured, so ``patience`` counts measurements
    whatever ``every_n_epochs``, ``every_n_validations`` or ``val_check_interval``. A NaN score (a layer that
    could not be measured) never stops the run at once (``check_finite`` is off): after a finite score it counts as
    "no improvement", so a score that turns NaN for good stops the run when patience runs out; before any finite
    score it is not counted (there is nothing to improve on; the monitor warns about the NaN itself). When it stops
    the run it says so, with a :class:`~lightning_topo.TopologyWarning` naming the NaN measurements among those
    counted. Make it with :meth:`TopologyMonitor.early_stopping`.
    """

    def __init__(self, source: TopologyMonitor, **kwargs: Any) -> None:
        kwargs["check_finite"] = False
        super().__init__(**kwargs)
        self._source = source
        self._nan_waits = 0  # NaN scores among the measurements counted since the last improvement

    @override
    def _evaluate_stopping_criteria(self, current: torch.Tensor) -> tuple[bool, str | None]:
        nan = not math.isfinite(float(current))
        if nan and not torch.isfinite(self.best_score):
            return False, None  # no finite score yet: nothing to improve on
        waited = self.wait_count
        should_stop, reason = super()._evaluate_stopping_criteria(current)
        if self.wait_count == 0:
            self._nan_waits = 0
        elif self.wait_count > waited and nan:
            self._nan_waits += 1
        if should_stop and self.stopping_reason == EarlyStoppingReason.PATIENCE_EXHAUSTED:
            nans = f", {self._nan_waits} of them NaN (a layer the score reads could not be measured)"
            rank_zero_warn(
                f"TopologyEarlyStopping stopped the run: {self.monitor} did not improve on "
                f"{float(self.best_score):.4g} in the last {self.wait_count} measurements"
                f"{nans if self._nan_waits else ''}.",
                category=TopologyWarning,
            )
        return should_stop, reason

    @override
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "nan_waits": self._nan_waits}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._nan_waits = int(state_dict.get("nan_waits", 0))

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._source.measured:
            super().on_validation_end(trainer, pl_module)

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._source.measured:
            super().on_train_epoch_end(trainer, pl_module)
