"""When measurements happen and what they mean: validation runs, runs that follow runs, several monitors and
dataloaders, shared modules, duplicates, NaN scores under early stopping, warnings once per fit."""

from __future__ import annotations

import math
import re
import warnings
from typing import Any

import pytest
import torch
from lightning.pytorch.callbacks import EarlyStopping
from torch import nn
from torch.utils.data import DataLoader

from lightning_topo import TopologyMonitor, TopologyWarning, analyze
from lightning_topo.capture import default_layers
from lightning_topo.functional import intrinsic_dimension
from tests._models import RecordingLogger, TinyNet, make_data, trainer


def _steps(logger: RecordingLogger, key: str) -> list[int]:
    return [m["_step"] for m in logger.metrics if key in m]


class StepLogger(RecordingLogger):
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        super().log_metrics({**metrics, "_step": step})


def test_every_validation_run_within_an_epoch_is_measured_at_its_own_step():
    logger = StepLogger()
    monitor = TopologyMonitor(n_samples=32)
    trainer(max_epochs=2, val_check_interval=0.5, logger=logger, callbacks=[monitor]).fit(TinyNet())
    # a measurement's step is the one Lightning logs that validation's metrics at: global_step - 1 here
    assert [(h["epoch"], h["step"]) for h in monitor.history] == [(0, 2), (0, 5), (1, 8), (1, 11)]
    assert len(set(logger.values("topo/hidden/id_twonn"))) == 4  # four measurements, none re-logged
    assert _steps(logger, "topo/hidden/id_twonn") == [2, 5, 8, 11]


def test_step_based_validation_without_epochs_measures_each_run():
    monitor = TopologyMonitor(n_samples=32)
    tr = trainer(max_steps=12, max_epochs=-1, val_check_interval=4, check_val_every_n_epoch=None, callbacks=[monitor])
    tr.fit(TinyNet())
    assert [h["step"] for h in monitor.history] == [3, 7, 11]  # the steps their validation metrics are logged at


def test_every_n_validations_measures_every_kth_run_and_relogs_the_score_between():
    logger = RecordingLogger()
    monitor = TopologyMonitor(n_samples=32, every_n_validations=2)
    trainer(max_epochs=2, val_check_interval=0.5, logger=logger, callbacks=[monitor]).fit(TinyNet())
    assert [h["step"] for h in monitor.history] == [2, 8]
    assert len(logger.values("topo/score")) == 4  # present after every validation for ModelCheckpoint


def test_a_configuration_that_never_measures_warns_at_setup():
    monitor = TopologyMonitor(n_samples=32, every_n_epochs=2)
    with pytest.warns(TopologyWarning, match="nothing would ever be measured"):
        trainer(max_epochs=4, check_val_every_n_epoch=2, callbacks=[monitor]).fit(TinyNet())
    assert monitor.history == []


class _Gate(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.broken = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * float("nan") if self.broken else x


class NaNAfterFirst(TinyNet):
    """The last hidden layer (``gate``) gives NaN from the second validation on: topo/score turns NaN."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = _Gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.gate.broken = not self.training and self.current_epoch >= 1
        return self.head(self.gate(self.hidden(self.encoder(x))))


def test_a_nan_score_never_stops_the_run_before_patience_and_says_which_layer():
    monitor = TopologyMonitor(layers=["encoder", "gate"], n_samples=32)
    stopper = monitor.early_stopping(patience=3)
    tr = trainer(max_epochs=10, callbacks=[monitor, stopper])
    with pytest.warns(TopologyWarning, match=r"score 'id_last' reads layer 'gate', which is NaN: its activations"):
        tr.fit(NaNAfterFirst())
    # epoch 0 sets the best score; epochs 1, 2, 3 are NaN (no improvement): patience 3 stops after epoch 3
    assert stopper.stopped_epoch == 3
    assert [h["epoch"] for h in monitor.history] == [0, 1, 2, 3]
    assert [math.isnan(h["scalars"]["topo/score"]) for h in monitor.history] == [False, True, True, True]


def test_early_stopping_says_why_it_stops_the_run_and_how_many_measurements_were_nan():
    monitor = TopologyMonitor(layers=["encoder", "gate"], n_samples=32)
    stopper = monitor.early_stopping(patience=2)
    with pytest.warns(TopologyWarning) as record:
        trainer(max_epochs=10, callbacks=[monitor, stopper]).fit(NaNAfterFirst())
    stops = [str(w.message) for w in record if "stopped the run" in str(w.message)]
    assert len(stops) == 1
    assert re.fullmatch(
        r"TopologyEarlyStopping stopped the run: topo/score did not improve on [0-9.]+ in the last 2 measurements, "
        r"2 of them NaN \(a layer the score reads could not be measured\)\.",
        stops[0],
    )


class AlwaysNaN(NaNAfterFirst):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.gate.broken = not self.training
        return self.head(self.gate(self.hidden(self.encoder(x))))


def test_a_score_that_was_never_finite_never_stops_the_run():
    """Nothing to improve on: the NaN measurements are warned about by the monitor, never counted as patience."""
    monitor = TopologyMonitor(layers=["encoder", "gate"], n_samples=32)
    stopper = monitor.early_stopping(patience=1)
    tr = trainer(max_epochs=4, callbacks=[monitor, stopper])
    with pytest.warns(TopologyWarning, match="reads layer 'gate', which is NaN"):
        tr.fit(AlwaysNaN())
    assert not stopper.stopped_epoch
    assert len(monitor.history) == 4


def test_a_users_own_early_stopping_on_the_score_is_warned_at_setup():
    monitor = TopologyMonitor(n_samples=32)
    with pytest.warns(TopologyWarning, match=r"EarlyStopping\(monitor='topo/score'\) stops the run at once"):
        trainer(max_epochs=1, callbacks=[monitor, EarlyStopping("topo/score")]).fit(TinyNet())


def test_early_stopping_counts_measurements_with_several_validations_per_epoch():
    monitor = TopologyMonitor(n_samples=32, every_n_validations=2)
    stopper = monitor.early_stopping(patience=2, min_delta=100.0)  # nothing improves by 100
    tr = trainer(max_epochs=10, val_check_interval=0.5, callbacks=[monitor, stopper])
    tr.fit(TinyNet())
    # measurements at validations 1, 3, 5: the first sets the best, two more without improvement stop it
    assert len(monitor.history) == 3
    assert tr.global_step == 15


def test_two_monitors_with_one_prefix_are_refused_and_with_two_prefixes_both_log():
    twins = [TopologyMonitor(layers=["hidden"], n_samples=32), TopologyMonitor(layers=["encoder"], n_samples=32)]
    with pytest.raises(ValueError, match=r"same prefix 'topo'.*prefix="):
        trainer(callbacks=twins).fit(TinyNet())
    logger = RecordingLogger()
    first = TopologyMonitor(layers=["hidden"], n_samples=32)
    second = TopologyMonitor(layers=["encoder"], n_samples=32, prefix="topo_enc", score=None)
    trainer(max_epochs=1, logger=logger, callbacks=[first, second]).fit(TinyNet())
    assert math.isfinite(logger.values("topo/hidden/id_twonn")[0])
    assert math.isfinite(logger.values("topo_enc/encoder/id_twonn")[0])
    assert logger.values("topo/score") == logger.values("topo/hidden/id_twonn")


class TwoLoaders(TinyNet):
    def val_dataloader(self) -> list[DataLoader]:
        return [DataLoader(make_data(seed=1), batch_size=16), DataLoader(make_data(seed=7), batch_size=16)]

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        super().validation_step(batch, batch_idx)


def test_the_sample_comes_from_the_chosen_validation_dataloader():
    monitor = TopologyMonitor(layers=["input"], n_samples=48, dataloader_idx=1, score=None)
    trainer(max_epochs=1, callbacks=[monitor]).fit(TwoLoaders())
    x = make_data(seed=7).tensors[0][:48]
    assert monitor.last_report.metrics["input"]["id_twonn"] == pytest.approx(intrinsic_dimension(x, "twonn"))
    short = TopologyMonitor(layers=["input"], n_samples=500, dataloader_idx=1, score=None)
    with pytest.warns(TopologyWarning, match=r"measured 96 examples \(validation dataloader 1\)"):
        trainer(max_epochs=1, callbacks=[short]).fit(TwoLoaders())


class Shared(TinyNet):
    """Calls ``hidden`` twice per forward pass (weight sharing)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(self.hidden(self.encoder(x))))


def test_a_module_called_twice_warns_once_and_keeps_the_chosen_call():
    reports = {}
    for call in ("first", "last"):
        monitor = TopologyMonitor(layers=["hidden"], n_samples=32, call=call, score=None)
        with pytest.warns(TopologyWarning, match=f"'hidden' runs several times per forward pass.*keeps its {call}"):
            trainer(max_epochs=2, callbacks=[monitor]).fit(Shared())
        reports[call] = monitor.last_report.metrics["hidden"]
    assert reports["first"] != reports["last"]


class WithCopies(TinyNet):
    def __init__(self) -> None:
        super().__init__()
        self.same = nn.Identity()
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.same(self.hidden(self.encoder(x)))))


def test_layers_identical_to_an_earlier_one_are_computed_once_and_logged_under_both_names():
    logger = RecordingLogger()
    monitor = TopologyMonitor(layers=["hidden", "same", "head"], n_samples=32)
    trainer(max_epochs=1, logger=logger, callbacks=[monitor]).fit(WithCopies())
    report = monitor.last_report
    assert report.copies == {"same": "hidden"}
    assert report.diagrams["same"] is report.diagrams["hidden"]  # one computation
    assert logger.values("topo/same/id_twonn") == logger.values("topo/hidden/id_twonn")
    # the default layers leave identity-like modules out
    assert default_layers(WithCopies()) == ["input", "encoder", "hidden", "head", "output"]


def test_default_layers_keep_the_penultimate_representation_of_deep_models():
    deep = nn.Sequential(*[nn.Linear(4, 4) for _ in range(30)])
    layers = default_layers(deep)
    assert layers[-3:] == ["28", "29", "output"]
    assert len(layers) <= 12


def test_an_mlps_default_score_reads_the_penultimate_layer_not_the_logits():
    mlp = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 3))
    report = analyze(mlp, DataLoader(make_data(), batch_size=16), n_samples=96, score="id_last")
    assert report.copies == {"output": "4"}
    assert report.score == report.metrics["3"]["id_twonn"]  # the last ReLU, the penultimate representation
    assert report.score != report.metrics["4"]["id_twonn"]


def test_each_problem_is_warned_once_per_fit():
    from tests.test_callback import NaNNet

    monitor = TopologyMonitor(layers=["encoder", "broken"], n_samples=32)
    with pytest.warns(TopologyWarning) as record:
        trainer(max_epochs=3, callbacks=[monitor]).fit(NaNNet())
    assert sum("TopologyMonitor: layer 'broken'" in str(w.message) for w in record) == 1
    with pytest.warns(TopologyWarning) as again:  # a new fit warns again
        trainer(max_epochs=1, callbacks=[monitor]).fit(NaNNet())
    assert sum("TopologyMonitor: layer 'broken'" in str(w.message) for w in again) == 1


def test_twonn_below_twenty_points_is_nan_with_the_reason():
    x = torch.randn(10, 16, generator=torch.Generator().manual_seed(0))
    with pytest.warns(RuntimeWarning, match="TwoNN needs at least 20 distinct points but got 10"):
        assert math.isnan(intrinsic_dimension(x, "twonn"))


# runs that follow runs -----------------------------------------------------------------------------------------
def test_validate_then_fit_measures_every_validation_and_never_relogs_a_stale_score():
    logger = RecordingLogger()
    monitor = TopologyMonitor(n_samples=32)
    tr = trainer(max_epochs=2, logger=logger, callbacks=[monitor])
    model = TinyNet()
    tr.validate(model, verbose=False)
    tr.fit(model)
    assert [(h["run"], h["stage"], h["epoch"]) for h in monitor.history] == [
        (1, "validate", 0),
        (2, "fit", 0),
        (2, "fit", 1),
    ]
    scores = [h["scalars"]["topo/score"] for h in monitor.history]
    assert len(set(scores)) == 3


class Testable(TinyNet):
    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.validation_step(batch, batch_idx)


def test_each_run_draws_its_own_heat_map_and_test_takes_no_run_number():
    monitor = TopologyMonitor(layers=["hidden"], n_samples=32)
    tr = trainer(max_epochs=2, callbacks=[monitor])
    model = Testable()
    tr.validate(model, verbose=False)
    tr.test(model, dataloaders=model.val_dataloader(), verbose=False)
    tr.validate(model, verbose=False)
    assert monitor.state_dict()["plotted_steps"] == {"hidden": [0]}  # the second validate's own measurement only
    tr.fit(model)
    assert [h["run"] for h in monitor.history] == [1, 2, 3, 3]
    state = monitor.state_dict()
    assert [e for e, _ in state["plotted_betti_curves"]["hidden"]] == [0, 1]  # the fit's two epochs, not the validates


def test_one_monitor_over_three_fits_measures_each_as_the_first():
    monitor = TopologyMonitor(n_samples=32)
    model = TinyNet()
    for _ in range(3):
        trainer(max_epochs=2, callbacks=[monitor]).fit(model)
    assert [(h["run"], h["epoch"]) for h in monitor.history] == [(r, e) for r in (1, 2, 3) for e in (0, 1)]


def test_a_second_fit_without_measurement_does_not_relog_the_first_fits_score():
    logger = RecordingLogger()
    monitor = TopologyMonitor(n_samples=32, every_n_epochs=5)
    model = TinyNet()
    trainer(max_epochs=1, callbacks=[monitor]).fit(model)
    # the second fit resumes at epoch 0 of a new trainer: measured; epochs 1-2 are not and must not re-log run 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer(max_epochs=3, logger=logger, callbacks=[monitor]).fit(model)
    scores = logger.values("topo/score")
    assert scores == pytest.approx([monitor.history[-1]["scalars"]["topo/score"]] * 3)  # logged as float32


def test_early_stopping_at_a_threshold_is_not_reported_as_patience_run_out():
    monitor = TopologyMonitor(layers=["hidden"], n_samples=32)
    stopper = monitor.early_stopping(patience=3, stopping_threshold=1e9)  # any finite score is below it: stop
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer(max_epochs=3, callbacks=[monitor, stopper]).fit(TinyNet())
    assert stopper.stopped_epoch == 0
    assert not any("stopped the run" in str(w.message) for w in caught)
    assert stopper.state_dict()["nan_waits"] == 0


class WithAuxHead(TinyNet):
    """An auxiliary head used in training only: a default layer that validation never calls."""

    def __init__(self) -> None:
        super().__init__()
        self.aux_head = nn.Linear(16, 3)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        h = self.hidden(self.encoder(x))
        return self.loss_fn(self.head(h), y) + self.loss_fn(self.aux_head(h), y)


def test_a_default_layer_never_called_in_validation_is_left_out_and_the_score_stays_finite():
    monitor = TopologyMonitor(n_samples=32)
    with pytest.warns(TopologyWarning, match="left layer 'aux_head' out of the default layers: it was not called"):
        trainer(max_epochs=2, callbacks=[monitor]).fit(WithAuxHead())
    assert monitor.last_report is not None
    assert "aux_head" not in monitor.last_report.layers
    assert all(math.isfinite(h["scalars"]["topo/score"]) for h in monitor.history)
