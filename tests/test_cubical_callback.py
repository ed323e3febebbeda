"""Suresh et al.'s cubical complexity inside the training loop: against GUDHI on the same images, and its score."""

from __future__ import annotations

import math
from typing import Any

import gudhi
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from lightning_topo import TopologyMonitor, analyze, rank_models
from lightning_topo.functional import topological_complexity_decay
from tests._models import RecordingLogger, SmallCNN, trainer
from tests._models import images as _images


def _gudhi_betti(maps: np.ndarray, threshold: float) -> np.ndarray:
    """Per image: GUDHI's V-construction cubical complex of the map divided by the layer's 0.99 quantile of |x|
    (nearest rank), Betti numbers on closed intervals [b, d] at ``threshold``, essential classes counted."""
    flat = np.sort(np.abs(maps).ravel())
    scale = flat[math.ceil(0.99 * flat.size) - 1]
    out = []
    for volume in maps / scale:
        complex_ = gudhi.CubicalComplex(vertices=volume)
        complex_.compute_persistence(homology_coeff_field=2, min_persistence=0.0)
        counts = []
        for q in range(volume.ndim):
            bars = np.asarray(complex_.persistence_intervals_in_dimension(q)).reshape(-1, 2)
            bars = bars[bars[:, 1] > bars[:, 0]]
            counts.append(int(((bars[:, 0] <= threshold) & (threshold <= bars[:, 1])).sum()))
        out.append(counts)
    return np.array(out, dtype=np.float64)


def test_cubical_betti_numbers_equal_gudhi_on_the_same_feature_maps():
    data = _images()
    model = SmallCNN()
    report = analyze(model, DataLoader(data, batch_size=16), layers=["conv1", "conv3"], n_samples=48, cubical_samples=5)
    x = data.tensors[0][:5]
    with torch.no_grad():
        maps = {"conv1": model.conv1(x), "conv3": model.conv3(model.conv2(model.conv1(x)))}
    for layer, activations in maps.items():
        expected = _gudhi_betti(activations.double().numpy(), 0.5)
        got = report.metrics[layer]
        for q in range(3):
            assert got[f"cubical_betti_{q}"] == pytest.approx(expected[:, q].mean()), (layer, q)
        assert got["cubical_complexity"] == pytest.approx(expected.sum(axis=1).mean()), layer


def _lit() -> Any:
    """SmallCNN as a LightningModule (kept tiny for the default suite)."""
    import lightning.pytorch as pl

    class Lit(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = SmallCNN()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            return F.cross_entropy(self(batch[0]), batch[1])

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            self.log("val_loss", F.cross_entropy(self(batch[0]), batch[1]))

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=1e-2)

        def train_dataloader(self) -> DataLoader:
            return DataLoader(_images(seed=1), batch_size=16, shuffle=True)

        def val_dataloader(self) -> DataLoader:
            return DataLoader(_images(), batch_size=16)

    return Lit()


def test_a_trainer_run_with_cubical_samples_and_per_class_logs_both_and_decay_cubical_is_theta_of_omega():
    logger = RecordingLogger()
    monitor = TopologyMonitor(n_samples=48, cubical_samples=4, per_class=True, score="decay_cubical")
    trainer(max_epochs=2, logger=logger, callbacks=[monitor]).fit(_lit())
    report = monitor.last_report
    maps = [layer for layer in report.layers if "cubical_complexity" in report.metrics[layer]]
    assert maps == ["input", "net.conv1", "net.conv2", "net.conv3", "net.conv4"]  # 4-D outputs only
    profile = [report.metrics[layer]["cubical_complexity"] for layer in maps]
    assert report.score == pytest.approx(topological_complexity_decay(profile))
    assert logger.values("topo/score")[-1] == pytest.approx(report.score, rel=1e-6)
    keys = logger.logged_keys()
    assert "topo/net.conv2/cubical_betti_1" in keys
    assert "topo/net.conv2/class_1/betti_0" in keys
    assert all(math.isfinite(v) for v in logger.values("topo/net.conv4/cubical_complexity"))


def test_rank_models_with_suresh_s_own_score_gives_finite_thetas():
    loader = DataLoader(_images(), batch_size=16)
    ranked = rank_models({"narrow": SmallCNN(4), "wide": SmallCNN(8)}, loader, score="decay_cubical", n_samples=32)
    assert all(math.isfinite(theta) for _, theta in ranked)


class _Scramble(torch.nn.Module):
    """The same pixels in another order: the same global average, other feature maps."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        order = torch.randperm(x.shape[-1] * x.shape[-2], generator=torch.Generator().manual_seed(0))
        return x.flatten(-2)[..., order].reshape(x.shape)


def test_a_layer_whose_pooled_sample_equals_an_earlier_one_keeps_its_own_cubical_descriptors():
    """A global pooling after a feature map equals that map's pooled sample (ResNet's avgpool after layer4): it is
    measured as a copy only when its feature maps are equal too."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 4, (32, 2, 6, 6), generator=g).float()  # integers: the two global averages are equal exactly
    model = torch.nn.Sequential(torch.nn.Identity(), _Scramble())
    loader = DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(32, dtype=torch.long)), batch_size=16)
    both = analyze(model, loader, layers=["0", "1"], n_samples=32, cubical_samples=4)
    alone = analyze(model, loader, layers=["1"], n_samples=32, cubical_samples=4)
    assert both.copies == {}
    assert both.metrics["1"]["cubical_complexity"] == pytest.approx(alone.metrics["1"]["cubical_complexity"])
    assert both.metrics["1"]["cubical_complexity"] != pytest.approx(both.metrics["0"]["cubical_complexity"])
    plain = analyze(model, loader, layers=["0", "1"], n_samples=32)
    assert plain.copies == {"1": "0"}  # without feature maps the pooled samples alone decide
