import math
import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_topo import TopologyMonitor, TopologyReport, TopologyWarning, analyze, rank_models
from lightning_topo.functional import intrinsic_dimension, pairwise_distances
from lightning_topo.scores import SCORES
from tests._models import DEFAULT_KEYS, SmallCNN, TinyNet, images, make_data


def _loader() -> DataLoader:
    return DataLoader(make_data(n=80, seed=3), batch_size=16)


def test_analyze_returns_per_layer_descriptors_and_diagrams_and_restores_the_model():
    model = TinyNet()
    model.train()
    before = sum(len(m._forward_hooks) for m in model.modules())
    report = analyze(model, _loader(), n_samples=64)
    assert isinstance(report, TopologyReport)
    assert report.layers == ["input", "encoder", "hidden", "head", "output"]
    assert set(report.to_dict()["hidden"]) == set(DEFAULT_KEYS)
    assert len(report.diagrams["hidden"]) == 2
    assert report.n_samples == 64
    assert model.training
    assert sum(len(m._forward_hooks) for m in model.modules()) == before


def test_analyze_input_layer_equals_the_functional_computation_on_the_same_examples():
    data = make_data(n=80, seed=3)
    report = analyze(TinyNet(), DataLoader(data, batch_size=16), layers=["input"], n_samples=50)
    x = data.tensors[0][:50]
    expected = intrinsic_dimension(pairwise_distances(x, normalize="quantile"), "twonn", distance_matrix=True)
    assert report.to_dict()["input"]["id_twonn"] == pytest.approx(expected)


def test_analyze_restores_hooks_and_mode_when_the_forward_pass_raises():
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(6, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("bad forward")

    model = Broken().train()
    with pytest.raises(RuntimeError, match="bad forward"):
        analyze(model, _loader(), layers=["lin"])
    assert model.training
    assert not model.lin._forward_hooks


def test_rank_models_orders_by_the_scores_own_direction_or_the_given_one():
    torch.manual_seed(0)
    models = {"a": TinyNet(), "b": TinyNet(), "c": TinyNet()}
    ranked = rank_models(models, _loader(), score="id_last", n_samples=64)
    assert [name for name, _ in ranked] == sorted(models, key=lambda k: dict(ranked)[k])  # "min": lowest first
    assert all(math.isfinite(s) for _, s in ranked)

    def hidden_id(report: TopologyReport) -> float:
        return report.metrics["hidden"]["id_twonn"]

    descending = rank_models(models, _loader(), score=hidden_id, score_mode="max", n_samples=64)
    assert [n for n, _ in descending] == [n for n, _ in ranked][::-1]  # "max": highest first
    with pytest.raises(ValueError, match="`score_mode`"):
        rank_models(models, _loader(), score=hidden_id, score_mode="best")  # type: ignore[arg-type]


@pytest.mark.parametrize("score", sorted(SCORES))
def test_every_named_score_is_finite_in_analyze_and_rank_models(score):
    # decay_cubical reads feature maps: a CNN on images; the others an MLP
    make, loader = (SmallCNN, DataLoader(images(), batch_size=16)) if score == "decay_cubical" else (TinyNet, _loader())
    with warnings.catch_warnings():
        warnings.simplefilter("error", TopologyWarning)  # no layer problem, no NaN score
        report = analyze(make(), loader, n_samples=64, score=score)
        ranked = rank_models({"a": make(), "b": make()}, loader, n_samples=64, score=score)
    assert math.isfinite(report.score)
    assert all(math.isfinite(value) for _, value in ranked)


def test_a_nan_score_in_analyze_says_which_layer_and_why():
    with pytest.warns(TopologyWarning, match=r"score 'id_last' reads layer 'dead', which is NaN: constant"):
        report = analyze(_DeadEnd(), _loader(), n_samples=40, score="id_last")
    assert math.isnan(report.score)


class _DeadEnd(nn.Module):
    """A network whose last hidden layer is dead (constant)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 8)
        self.dead = nn.Sequential(nn.Linear(8, 8), nn.ReLU())
        self.head = nn.Linear(8, 3)
        with torch.no_grad():
            self.dead[0].weight.zero_()
            self.dead[0].bias.fill_(-1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dead(self.lin(x)))


INVALID = [
    {"maxdim": 3},
    {"n_samples": 2},
    {"normalize": "std"},
    {"reduce": "max"},
    {"descriptors": ["betti", "curvature"]},
    {"metric": "l1"},
    {"ph_samples": 1},
    {"score": "accuracy"},
    {"sample": "stratified"},
    {"on_error": "ignore"},
    {"betti_scale": -1.0},
]


@pytest.mark.parametrize("kwargs", INVALID, ids=[next(iter(k)) for k in INVALID])
def test_invalid_options_raise_the_same_error_in_every_entry_point(kwargs):
    messages = []
    for call in (
        lambda: TopologyMonitor(**kwargs),
        lambda: analyze(TinyNet(), _loader(), **kwargs),
        lambda: rank_models({"a": TinyNet()}, _loader(), **{"score": "id_last", **kwargs}),
    ):
        with pytest.raises(ValueError, match=r"^Expected `") as err:
            call()
        messages.append(str(err.value))
    assert len(set(messages)) == 1, messages
    assert messages[0].startswith("Expected `")


def test_unknown_options_are_refused_with_the_close_match():
    with pytest.raises(TypeError, match=r"unknown option 'normalise'\. Did you mean 'normalize'"):
        analyze(TinyNet(), _loader(), normalise="max")


def test_analyze_moves_the_model_to_the_device_and_back():
    model = TinyNet()
    report = analyze(model, _loader(), n_samples=40, device="cpu")
    assert report.n_samples == 40
    assert next(model.parameters()).device.type == "cpu"


def test_analyze_rejects_batches_without_a_tensor():
    with pytest.raises(ValueError, match=r"hold the model input.*input_fn"):
        analyze(nn.Linear(2, 2), [["not", "tensors"]], layers=["input"])


def test_demo_command_trains_logs_and_says_where_to_point_tensorboard(tmp_path, capsys):
    from lightning_topo.cli import main

    assert main(["demo", "--epochs", "1", "--logdir", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"tensorboard --logdir {tmp_path}" in out
    assert "topo/fc1/id_twonn" in out
    assert list(tmp_path.rglob("events.out.tfevents.*"))


def test_datasets_are_loaded_without_download():
    from lightning_topo.datasets import load_digits

    images, labels = load_digits()
    assert images.shape == (1797, 1, 8, 8)
    assert float(images.max()) <= 1.0
    assert TensorDataset(images, labels)[0][0].shape == (1, 8, 8)


def test_the_callback_and_build_options_share_every_option_and_its_default():
    import inspect

    from lightning_topo.options import OPTION_NAMES, build_options

    monitor = inspect.signature(TopologyMonitor.__init__).parameters
    options = inspect.signature(build_options).parameters
    for name in OPTION_NAMES:
        assert name in monitor, name
        if name != "score":  # the monitor measures a score by default, analyze does not
            assert monitor[name].default == options[name].default, name


class _DeadHidden(TinyNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(self.encoder(x)) * 0.0)


def test_rank_models_warnings_name_the_model_they_are_about():
    with pytest.warns(TopologyWarning) as record:
        rank_models({"fine": TinyNet(), "dead": _DeadHidden()}, _loader(), score="id_last", n_samples=64)
    messages = [str(w.message) for w in record]
    assert not any(m.startswith("analyze") for m in messages)
    assert any(m.startswith("rank_models, model 'dead': layer 'head': constant") for m in messages)


class _WarnsThenFails(TinyNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        warnings.warn("context before the failure", UserWarning, stacklevel=2)
        raise RuntimeError("broken model")


def test_rank_models_keeps_the_warnings_of_a_model_that_fails_and_the_users_filters():
    with pytest.warns(UserWarning, match="context before the failure"), pytest.raises(RuntimeError, match="broken"):
        rank_models({"bad": _WarnsThenFails()}, _loader(), score="id_last", n_samples=64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=TopologyWarning)
        rank_models({"dead": _DeadHidden()}, _loader(), score="id_last", n_samples=64)
    assert not [w for w in caught if issubclass(w.category, TopologyWarning)]  # ignored stays ignored
