"""analyze / adversarial_geometry on every batch structure, with the model's own modes and devices kept."""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_topo import adversarial_geometry, analyze, rank_models

Pair = collections.namedtuple("Pair", "x y")


@dataclasses.dataclass
class Batch:
    x: torch.Tensor
    labels: torch.Tensor


@dataclasses.dataclass(frozen=True)
class FrozenBatch:
    x: torch.Tensor
    labels: torch.Tensor


def _data(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    y = torch.arange(n) % 2
    x[:, 0] += 2.0 * y
    return x, y


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))


def _batches(kind: str, size: int = 16) -> list:
    x, y = _data()
    parts = [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]
    make = {
        "tuple": lambda a, b: (a, b),
        "namedtuple": Pair,
        "dict": lambda a, b: {"x": a, "y": b},
        "dataclass": Batch,
        "frozen": FrozenBatch,
    }[kind]
    return [make(a, b) for a, b in parts]


@pytest.mark.parametrize("kind", ["namedtuple", "dict", "dataclass", "frozen"])
def test_analyze_measures_the_same_examples_whatever_the_batch_structure(kind):
    """Namedtuple, mapping (a Sequential takes ``input``, the batch says ``x``) and dataclass batches give the
    report of plain ``(x, y)`` tuples."""
    net = _net()
    expected = analyze(net, _batches("tuple"), layers=["0", "2"], n_samples=40)
    report = analyze(net, _batches(kind), layers=["0", "2"], n_samples=40)
    np.testing.assert_equal(report.to_dict(), expected.to_dict())
    assert report.n_samples == 40


def test_a_mapping_batch_goes_by_keyword_when_it_covers_the_forward_parameters():
    seen = []

    class Masked(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
            seen.append(attention_mask is not None)
            return self.lin(x)

    x, _ = _data()
    batches = [{"x": x[i : i + 16], "attention_mask": torch.ones(16, 1)} for i in range(0, 64, 16)]
    analyze(Masked(), batches, layers=["lin"], n_samples=32)
    assert seen
    assert all(seen)


@pytest.mark.parametrize("kind", ["namedtuple", "dict", "dataclass", "frozen"])
def test_adversarial_geometry_attacks_the_same_examples_whatever_the_batch_structure(kind):
    net = _net()
    x, y = _data()
    expected = adversarial_geometry(net, _batches("tuple"), [0.0, 0.3], layers=["2"], n_samples=40)
    results = adversarial_geometry(net, _batches(kind), [0.0, 0.3], layers=["2"], n_samples=40)
    for got, ref in zip(results, expected, strict=True):
        assert len(got.predictions) == 40
        assert torch.equal(got.predictions, ref.predictions)
        np.testing.assert_equal(got.report.to_dict(), ref.report.to_dict())
    with torch.no_grad():
        clean = net(x[:40]).argmax(dim=1)
    assert torch.equal(results[0].predictions, clean)
    assert results[0].accuracy == pytest.approx(float((clean == y[:40]).double().mean()))


def test_adversarial_geometry_attacks_the_tensor_input_fn_returns():
    """With ``input_fn`` the attack replaces that tensor in the batch: the FGSM step computed by hand here."""
    net = _net()
    x, y = _data()
    batches = [{"pixels": x[i : i + 16], "target": y[i : i + 16]} for i in range(0, 64, 16)]
    eps = 0.4
    results = adversarial_geometry(
        net,
        batches,
        [eps],
        layers=["2"],
        n_samples=32,
        input_fn=lambda b: b["pixels"],
        label_fn=lambda b: b["target"],
        forward=lambda m, b: m(b["pixels"]),
    )
    clean = x[:32].clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(net(clean), y[:32], reduction="none").sum()
    (grad,) = torch.autograd.grad(loss, clean)
    with torch.no_grad():
        expected = net(x[:32] + eps * grad.sign()).argmax(dim=1)
    assert torch.equal(results[0].predictions, expected)


def test_adversarial_geometry_refuses_an_input_fn_that_computes_a_new_tensor():
    net = _net()
    with pytest.raises(ValueError, match="Expected the input to be one of the tensors of the batch"):
        adversarial_geometry(
            net,
            _batches("dict"),
            [0.1],
            layers=["2"],
            n_samples=32,
            input_fn=lambda b: b["x"] * 1.0,
            label_fn=lambda b: b["y"],
            forward=lambda m, b: m(b["x"]),
        )


@pytest.mark.parametrize("entry", ["analyze", "adversarial"])
def test_every_module_keeps_its_own_mode(entry):
    """A frozen BatchNorm in eval mode inside a model in train mode stays in eval mode."""
    net = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2)).train()
    net[1].eval()
    if entry == "analyze":
        analyze(net, _batches("tuple"), layers=["0"], n_samples=32)
    else:
        adversarial_geometry(net, _batches("tuple"), [0.1], layers=["0"], n_samples=32)
    assert [m.training for m in net] == [True, False, True, True]
    assert net.training


def test_the_model_is_not_moved_without_a_device():
    """A submodule on the meta device (not used by forward) is left where it is."""

    class Partly(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(3, 2)
            self.b = nn.Linear(3, 3, device="meta")

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.a(x)

    model = Partly()
    report = analyze(model, _batches("tuple"), layers=["a"], n_samples=32)
    assert report.n_samples == 32
    assert model.b.weight.is_meta
    results = adversarial_geometry(model, _batches("tuple"), [0.1], layers=["a"], n_samples=32)
    assert len(results[0].predictions) == 32
    assert model.b.weight.is_meta
    assert model.a.weight.device.type == "cpu"


def test_rank_models_refuses_no_score():
    with pytest.raises(ValueError, match=r"Expected `score` to be .* but got None"):
        rank_models({"a": _net()}, _batches("tuple"), score=None, n_samples=32)


@pytest.mark.parametrize("workers", [-1, "two", 1.5, True])
def test_invalid_workers_are_refused_before_the_capture(workers):
    class Counting(nn.Module):
        calls = 0

        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            Counting.calls += 1
            return self.lin(x)

    with pytest.raises(ValueError, match="Expected `workers` to be"):
        analyze(Counting(), _batches("tuple"), layers=["lin"], n_samples=32, workers=workers)
    assert Counting.calls == 0
    with pytest.raises(ValueError, match="Expected `workers` to be"):
        adversarial_geometry(Counting(), _batches("tuple"), [0.1], layers=["lin"], n_samples=32, workers=workers)
    assert Counting.calls == 0


def test_workers_auto_is_accepted():
    x, _ = _data()
    report = analyze(_net(), DataLoader(TensorDataset(x), batch_size=16), layers=["0"], n_samples=32, workers="auto")
    assert report.n_samples == 32


def test_decay_leaves_layer_copies_out_of_the_profile():
    """The output layer, a copy of the head, does not count twice: the score equals the one without it."""
    from tests._models import TinyNet, make_data

    torch.manual_seed(0)
    model = TinyNet()
    data = DataLoader(make_data(n=80, seed=3), batch_size=16)
    with_copy = analyze(model, data, n_samples=64, score="decay")
    assert with_copy.copies == {"output": "head"}
    without = analyze(model, data, layers=["input", "encoder", "hidden", "head"], n_samples=64, score="decay")
    assert np.isfinite(without.score)
    assert with_copy.score == pytest.approx(without.score, rel=1e-12)


def test_dir_of_the_package_lists_only_public_names_and_submodules():
    import lightning_topo

    listed = dir(lightning_topo)
    assert set(lightning_topo.__all__) <= set(listed)
    assert {"__version__", "functional", "metrics", "datasets"} <= set(listed)
    assert not {"Any", "TYPE_CHECKING", "importlib", "annotations"} & set(listed)
    assert all(not name.startswith("_") or name == "__version__" for name in listed)


def test_analyze_raises_runtime_error_with_on_error_raise():
    """A dead (constant) layer is a problem; on_error="raise" turns the warning into a RuntimeError."""

    dead = nn.Sequential(nn.Linear(3, 2))
    with torch.no_grad():
        dead[0].weight.zero_()
    with pytest.raises(RuntimeError, match="could not be measured"):
        analyze(dead, _batches("tuple"), layers=["0"], n_samples=32, on_error="raise")
