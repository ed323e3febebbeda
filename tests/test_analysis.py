import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_topo import TopologyReport, analyze, rank_models
from lightning_topo.functional import intrinsic_dimension, pairwise_distances
from tests._models import DEFAULT_KEYS, TinyNet, make_data


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


def test_rank_models_orders_by_score_best_first():
    torch.manual_seed(0)
    models = {"a": TinyNet(), "b": TinyNet(), "c": TinyNet()}
    ranked = rank_models(models, _loader(), score="id_last", n_samples=64)
    assert [name for name, _ in ranked] == sorted(models, key=lambda k: dict(ranked)[k])
    assert all(math.isfinite(s) for _, s in ranked)
    descending = rank_models(models, _loader(), score="id_last", mode="max", n_samples=64)
    assert [n for n, _ in descending] == [n for n, _ in ranked][::-1]
    with pytest.raises(ValueError, match="`mode`"):
        rank_models(models, _loader(), mode="best")


def test_analyze_rejects_batches_without_a_tensor():
    with pytest.raises(ValueError, match="hold a tensor"):
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
