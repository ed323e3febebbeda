import math
import warnings
from typing import Any

import pytest
import torch
from torch import nn

from lightning_topo import TopologyMonitor, TopologyWarning, get_layer_names
from lightning_topo.capture import default_layers
from tests._models import DEFAULT_KEYS as EXPECTED_DESCRIPTORS
from tests._models import RecordingLogger, TinyNet, make_data, trainer


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_every_documented_key_is_logged_each_epoch_with_defaults():
    logger = RecordingLogger()
    model = TinyNet()
    monitor = TopologyMonitor(n_samples=64)
    trainer(max_epochs=2, logger=logger, log_every_n_steps=1, callbacks=[monitor]).fit(model)
    layers = ["input", "encoder", "hidden", "head", "output"]
    expected = {f"topo/{layer}/{d}" for layer in layers for d in EXPECTED_DESCRIPTORS} | {"topo/time_s"}
    assert expected <= logger.logged_keys()
    for key in expected:
        values = logger.values(key)
        assert len(values) == 2, key
        assert all(math.isfinite(v) for v in values), key
    assert [h["epoch"] for h in monitor.history] == [0, 1]
    assert monitor.last_report is not None
    assert monitor.last_report.n_samples == 64


def test_input_layer_metrics_are_identical_every_epoch_because_the_sample_is_fixed():
    monitor_logger = RecordingLogger()
    trainer(max_epochs=3, logger=monitor_logger, callbacks=[TopologyMonitor(n_samples=40)]).fit(TinyNet())
    values = monitor_logger.values("topo/input/total_persistence_0")
    assert len(values) == 3
    assert values[0] == values[1] == values[2]
    assert (
        monitor_logger.values("topo/hidden/total_persistence_0")[0]
        != monitor_logger.values("topo/hidden/total_persistence_0")[2]
    )


def test_hooks_are_removed_once_the_sample_is_full_and_after_fit():
    seen: list[int] = []

    class Spy(TinyNet):
        def validation_step(self, batch: Any, batch_idx: int) -> None:
            seen.append(_hooks(self))
            super().validation_step(batch, batch_idx)

    model = Spy()
    before = _hooks(model)
    trainer(max_epochs=1, callbacks=[TopologyMonitor(n_samples=20)]).fit(model)
    # 6 validation batches of 16: hooks during the first two (16 + 4 examples), none afterwards
    assert seen[0] > before
    assert seen[1] > before
    assert seen[2:] == [before] * 4
    assert _hooks(model) == before


def test_hooks_are_removed_after_an_exception():
    class Boom(TinyNet):
        def validation_step(self, batch: Any, batch_idx: int) -> None:
            super().validation_step(batch, batch_idx)
            if batch_idx == 1:
                raise RuntimeError("boom")

    model = Boom()
    before = _hooks(model)
    with pytest.raises(RuntimeError, match="boom"):
        trainer(max_epochs=1, callbacks=[TopologyMonitor(n_samples=64)]).fit(model)
    assert _hooks(model) == before


def test_train_and_eval_modes_are_untouched():
    modes: list[bool] = []

    class Spy(TinyNet):
        def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
            modes.append(all(m.training for m in self.modules()))

    trainer(max_epochs=2, callbacks=[TopologyMonitor(n_samples=32)]).fit(Spy())
    assert modes
    assert all(modes)


def test_memory_is_bounded_by_the_sample_whatever_the_validation_set():
    from lightning_topo.capture import ActivationCapture
    from lightning_topo.options import build_options

    # the capture keeps the first 24 rows of 96 and stops hooking once they are kept
    model = nn.Sequential(nn.Linear(6, 16))
    capture = ActivationCapture(model, {"0": "0"}, build_options(n_samples=24), quota=24)
    capture.start()
    for x in make_data().tensors[0].split(16):
        capture.begin_batch(x)
        model(x)
        capture.end_batch()
    samples = capture.finish()
    assert samples["0"].points.shape == (24, 16)
    # and in a real run, 24 examples are measured whatever the size of the validation set
    monitor = TopologyMonitor(n_samples=24)
    trainer(max_epochs=1, callbacks=[monitor]).fit(TinyNet())
    assert monitor.last_report.n_samples == 24


def test_every_n_epochs_measures_epochs_0_n_2n():
    monitor = TopologyMonitor(n_samples=32, every_n_epochs=2)
    trainer(max_epochs=5, callbacks=[monitor]).fit(TinyNet())
    assert [h["epoch"] for h in monitor.history] == [0, 2, 4]


def test_nothing_is_measured_during_the_sanity_check():
    monitor = TopologyMonitor(n_samples=32)
    trainer(max_epochs=1, num_sanity_val_steps=2, limit_train_batches=0).fit(TinyNet())
    tr = trainer(max_epochs=1, num_sanity_val_steps=2, limit_train_batches=1, callbacks=[monitor])
    tr.fit(TinyNet())
    assert [h["epoch"] for h in monitor.history] == [0]


def test_trainer_validate_measures_too():
    monitor = TopologyMonitor(n_samples=32)
    results = trainer(callbacks=[monitor]).validate(TinyNet(), verbose=False)
    assert "topo/hidden/id_twonn" in results[0]


class NaNLayer(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * float("nan")


class NaNNet(TinyNet):
    def __init__(self) -> None:
        super().__init__()
        self.broken = NaNLayer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.hidden(self.encoder(x))
        self.broken(h)
        return self.head(h)


def test_a_layer_emitting_nan_logs_nan_and_warns_while_the_run_goes_on():
    logger = RecordingLogger()
    monitor = TopologyMonitor(layers=["encoder", "broken", "head"], n_samples=32)
    with pytest.warns(TopologyWarning, match=r"layer 'broken' at epoch 0 \(step 5\): its activations hold 512 NaN"):
        trainer(max_epochs=2, logger=logger, callbacks=[monitor]).fit(NaNNet())
    assert all(math.isnan(v) for v in logger.values("topo/broken/betti_0"))
    assert len(logger.values("topo/broken/betti_0")) == 2
    assert all(math.isfinite(v) for v in logger.values("topo/encoder/betti_0"))


def test_on_error_raise_stops_on_a_bad_layer():
    monitor = TopologyMonitor(layers=["broken"], n_samples=32, on_error="raise")
    with pytest.raises(RuntimeError, match="layer 'broken' at epoch 0"):
        trainer(max_epochs=1, callbacks=[monitor]).fit(NaNNet())


class ConstantNet(TinyNet):
    def __init__(self) -> None:
        super().__init__()
        self.dead = nn.Sequential(nn.Linear(16, 8), nn.ReLU())
        with torch.no_grad():
            self.dead[0].weight.zero_()
            self.dead[0].bias.fill_(-1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.hidden(self.encoder(x))
        self.dead(h)
        return self.head(h)


def test_a_constant_layer_gives_trivial_topology_and_nan_id_with_a_warning():
    logger = RecordingLogger()
    monitor = TopologyMonitor(layers=["dead", "hidden"], n_samples=32)
    expected = r"layer 'dead' at epoch 0 \(step 5\): constant: every activation is equal"
    with pytest.warns(TopologyWarning, match=expected):
        trainer(max_epochs=1, logger=logger, callbacks=[monitor]).fit(ConstantNet())
    assert logger.values("topo/dead/betti_0") == [1.0]
    assert logger.values("topo/dead/total_persistence_0") == [0.0]
    assert math.isnan(logger.values("topo/dead/id_twonn")[0])


class TupleLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        h = self.lin(x)
        return h, {"aux": h.sum(dim=1)}


class TupleNet(TinyNet):
    def __init__(self) -> None:
        super().__init__()
        self.pair = TupleLayer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.pair(self.encoder(x))
        return self.head(h)


def test_tuple_outputs_use_the_first_tensor_with_a_warning():
    logger = RecordingLogger()
    expected = r"Layer 'pair' returns an object of type tuple; lightning-topo uses its first tensor with one row per"
    with pytest.warns(TopologyWarning, match=expected):
        trainer(max_epochs=1, logger=logger, callbacks=[TopologyMonitor(layers=["pair"], n_samples=32)]).fit(TupleNet())
    assert math.isfinite(logger.values("topo/pair/id_twonn")[0])


def test_output_transform_chooses_the_tensor():
    logger = RecordingLogger()
    transform = lambda out: out[1]["aux"]  # noqa: E731
    monitor = TopologyMonitor(layers=["pair"], n_samples=32, output_transform=transform, log_figures=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TopologyWarning)
        trainer(max_epochs=1, logger=logger, callbacks=[monitor]).fit(TupleNet())
    # a 1-D output is one feature per example: its H1 is empty
    assert logger.values("topo/pair/betti_1") == [0.0]


def test_a_layer_returning_no_tensor_is_reported_not_fatal():
    class Nothing(nn.Module):
        def forward(self, x: torch.Tensor) -> None:
            return None

    class NothingNet(TinyNet):
        def __init__(self) -> None:
            super().__init__()
            self.nothing = Nothing()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.nothing(x)
            return super().forward(x)

    logger = RecordingLogger()
    expected = r"'nothing' at epoch 0 \(step 5\): its output \(of type NoneType\) holds no tensor"
    with pytest.warns(TopologyWarning, match=expected):
        trainer(max_epochs=1, logger=logger, callbacks=[TopologyMonitor(layers=["nothing"], n_samples=32)]).fit(
            NothingNet()
        )
    assert math.isnan(logger.values("topo/nothing/betti_0")[0])


def test_a_layer_never_called_in_validation_is_reported():
    class Unused(TinyNet):
        def __init__(self) -> None:
            super().__init__()
            self.unused = nn.Linear(3, 3)

    with pytest.warns(TopologyWarning, match=r"'unused' at epoch 0 \(step 5\): no activations were captured"):
        trainer(max_epochs=1, callbacks=[TopologyMonitor(layers=["unused", "head"], n_samples=32)]).fit(Unused())


def test_unknown_layer_name_raises_at_setup_with_close_matches():
    with pytest.raises(ValueError, match=r"Unknown layer 'encodr'\. Did you mean 'encoder'.*get_layer_names"):
        trainer(callbacks=[TopologyMonitor(layers=["encodr"])]).fit(TinyNet())


def test_layer_specifications():
    model = TinyNet()
    # loss modules are not layers
    assert get_layer_names(model) == [
        "input",
        "encoder",
        "encoder.0",
        "encoder.1",
        "hidden",
        "hidden.0",
        "hidden.1",
        "head",
        "output",
    ]
    assert default_layers(model) == ["input", "encoder", "hidden", "head", "output"]
    from lightning_topo.capture import resolve_layers

    assert resolve_layers(model, {"encoder": "enc", "head": "logits"}) == {"encoder": "enc", "head": "logits"}
    assert list(resolve_layers(model, r"(encoder|hidden)\.0")) == ["encoder.0", "hidden.0"]
    assert list(resolve_layers(model, nn.Linear)) == ["encoder.0", "hidden.0", "head"]
    assert list(resolve_layers(model, ["input", nn.Tanh])) == ["input", "hidden.1"]
    with pytest.raises(ValueError, match="matches no layer"):
        resolve_layers(model, "conv.*")
    with pytest.raises(ValueError, match="No module of type Conv2d"):
        resolve_layers(model, nn.Conv2d)
    with pytest.raises(ValueError, match="own alias"):
        resolve_layers(model, {"encoder": "x", "head": "x"})
    with pytest.raises(ValueError, match="layer names or module types"):
        resolve_layers(model, [3])


def test_default_layers_descend_into_a_single_container_and_stay_bounded():
    class Deep(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(*[nn.Linear(4, 4) for _ in range(30)])

    layers = default_layers(Deep())
    assert layers[0] == "input"
    assert layers[-1] == "output"
    assert layers[1] == "net.0"
    assert layers[-2] == "net.29"
    assert len(layers) == 12


def test_aliases_name_the_logged_keys():
    logger = RecordingLogger()
    monitor = TopologyMonitor(layers={"encoder": "enc", "head": "logits"}, n_samples=32, descriptors=["id_twonn"])
    trainer(max_epochs=1, logger=logger, callbacks=[monitor]).fit(TinyNet())
    assert {k for k in logger.logged_keys() if k.startswith("topo/")} == {
        "topo/enc/id_twonn",
        "topo/logits/id_twonn",
        "topo/score",
        "topo/time_s",
    }


def test_optional_descriptors_and_ph_subsample():
    logger = RecordingLogger()
    monitor = TopologyMonitor(
        layers=["hidden"],
        n_samples=90,
        ph_samples=40,
        maxdim=1,
        descriptors=["max_persistence", "amplitude", "n_long", "id_mle", "id_phdim"],
        score=None,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer(max_epochs=1, logger=logger, callbacks=[monitor]).fit(TinyNet())
    keys = {k for k in logger.logged_keys() if k.startswith("topo/hidden")}
    assert keys == {f"topo/hidden/{d}_{q}" for d in ("max_persistence", "amplitude", "n_long") for q in (0, 1)} | {
        "topo/hidden/id_mle",
        "topo/hidden/id_phdim",
    }
    # H0 comes from the spanning tree of all 90 examples, H1 from the 40-point farthest-point subsample
    dgms = monitor.last_report.diagrams["hidden"]
    assert len(dgms[0]) == 90
    assert len(dgms[1]) < 40


def test_stratified_sample_takes_equal_shares_per_class():
    monitor = TopologyMonitor(layers=["hidden"], n_samples=30, sample="stratified", num_classes=3)
    trainer(max_epochs=1, callbacks=[monitor]).fit(TinyNet())
    assert monitor.last_report.class_counts == {0: 10, 1: 10, 2: 10}


def test_a_smaller_validation_set_than_n_samples_warns():
    with pytest.warns(TopologyWarning, match="measured 96 examples, fewer than `n_samples=500`"):
        trainer(max_epochs=1, callbacks=[TopologyMonitor(n_samples=500, layers=["head"])]).fit(TinyNet())


def test_a_custom_score_is_logged_at_the_stable_key():
    logger = RecordingLogger()
    monitor = TopologyMonitor(n_samples=32, score=lambda report: report.metrics["hidden"]["id_twonn"] * 2)
    trainer(max_epochs=2, logger=logger, callbacks=[monitor]).fit(TinyNet())
    assert logger.values("topo/score") == pytest.approx([2 * v for v in logger.values("topo/hidden/id_twonn")])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_samples": 2}, "`n_samples`"),
        ({"maxdim": 3}, "Expected `maxdim` to be 0, 1 or 2 but got 3"),
        ({"every_n_epochs": 0}, "`every_n_epochs`"),
        ({"score": "accuracy"}, "`score`"),
        ({"reduce": "max"}, "`reduce`"),
        ({"max_features": 0}, "`max_features`"),
        ({"sample": "random"}, "`sample`"),
        ({"sample": "stratified"}, "`num_classes`"),
        ({"descriptors": ["betti", "curvature"]}, "`descriptors`"),
        ({"metric": "l1"}, "`metric`"),
        ({"normalize": "std"}, "`normalize`"),
        ({"ph_samples": 1}, "`ph_samples`"),
        ({"betti_scale": -1.0}, "`betti_scale`"),
        ({"long_fraction": 0.0}, "`long_fraction`"),
        ({"on_error": "ignore"}, "`on_error`"),
    ],
)
def test_invalid_arguments_raise_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TopologyMonitor(**kwargs)


def test_stratified_without_labels_raises_a_clear_error():
    class NoLabels(TinyNet):
        def val_dataloader(self):
            from torch.utils.data import DataLoader

            return DataLoader(torch.randn(32, 6), batch_size=8)

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            self(batch)

    with pytest.raises(ValueError, match="needs one integer label per example: pass `label_fn`"):
        trainer(max_epochs=1, callbacks=[TopologyMonitor(sample="stratified", num_classes=3)]).fit(NoLabels())


def test_reduce_modes_give_the_documented_widths():
    from lightning_topo.capture import reduce_samples

    conv = torch.randn(6, 8, 5, 5)
    assert reduce_samples(conv, "auto", 4).shape == (6, 8)  # global average pooling
    assert reduce_samples(conv, "flatten", 4).shape == (6, 200)
    assert reduce_samples(torch.randn(6, 3, 7), "mean", 4).shape == (6, 3)
    assert reduce_samples(torch.randn(6, 3, 7), "auto", 4).shape == (6, 7)  # (B, T, D): the mean token
    assert reduce_samples(torch.arange(6), "auto", 4).dtype == torch.float32


def test_random_projection_keeps_pairwise_distances_and_is_fixed_across_epochs():
    from lightning_topo.capture import ActivationCapture
    from lightning_topo.functional import pairwise_distances
    from lightning_topo.options import build_options

    model = nn.Sequential(nn.Identity())
    options = build_options(reduce="project", max_features=256, seed=3)
    capture = ActivationCapture(model, {"0": "wide"}, options, quota=80)
    x = torch.randn(40, 5000, generator=torch.Generator().manual_seed(0))
    capture.start()
    for _ in range(2):
        capture.begin_batch(x)
        model(x)
        capture.end_batch()
    first, second = capture.finish()["wide"].points.split(40)
    assert first.shape == (40, 256)
    assert torch.equal(first, second)  # the same projection matrix every time
    ratio = (
        pairwise_distances(first)[~torch.eye(40, dtype=torch.bool)]
        / pairwise_distances(x)[~torch.eye(40, dtype=torch.bool)]
    )
    assert float((ratio - 1).abs().max()) < 0.3  # Johnson-Lindenstrauss at k = 256
    assert float(ratio.mean()) == pytest.approx(1.0, abs=0.05)


def test_label_fn_chooses_the_labels_of_a_stratified_sample():
    monitor = TopologyMonitor(
        layers=["hidden"], n_samples=20, sample="stratified", num_classes=2, label_fn=lambda batch: batch[1] % 2
    )
    trainer(max_epochs=1, callbacks=[monitor]).fit(TinyNet())
    assert monitor.last_report.class_counts == {0: 10, 1: 10}
    bad = TopologyMonitor(layers=["hidden"], n_samples=20, sample="stratified", num_classes=2, label_fn=lambda b: 3)
    with pytest.raises(ValueError, match="`label_fn` to return one label per example"):
        trainer(max_epochs=1, callbacks=[bad]).fit(TinyNet())


def test_time_s_is_the_wall_time_of_the_measurement():
    import time

    monitor = TopologyMonitor(layers=["hidden"], n_samples=96, workers=0)
    start = time.perf_counter()
    trainer(max_epochs=1, callbacks=[monitor]).fit(TinyNet())
    wall = time.perf_counter() - start
    elapsed = monitor.history[-1]["scalars"]["topo/time_s"]
    assert 1e-3 < elapsed < wall  # a 96-point layer takes milliseconds, within the whole fit
