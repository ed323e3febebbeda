"""Topological scores for EarlyStopping/ModelCheckpoint, and the torchmetrics metrics."""

import math

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from lightning_topo import TopologyMonitor
from lightning_topo import functional as F
from lightning_topo._compute import ComputeConfig, compute_layer
from lightning_topo.metrics import IntrinsicDimension, PersistenceDescriptors
from lightning_topo.scores import SCORES, decay, id_last, lifespan_sum, phdim_last
from tests._models import RecordingLogger, TinyNet, record_compute, trainer


class FrozenAfterFirstEpoch(TinyNet):
    """Learns during epoch 0, then the learning rate is 0: representations stop changing."""

    def on_train_epoch_start(self) -> None:
        if self.current_epoch >= 1:
            for group in self.trainer.optimizers[0].param_groups:
                group["lr"] = 0.0


def test_early_stopping_on_the_score_stops_a_run_whose_representations_freeze():
    monitor = TopologyMonitor(n_samples=48, score="id_last")
    stopper = monitor.early_stopping(patience=2)
    tr = trainer(max_epochs=20, callbacks=[monitor, stopper])
    tr.fit(FrozenAfterFirstEpoch())
    assert tr.current_epoch < 20
    assert stopper.stopped_epoch == 2
    scores = [h["scalars"]["topo/score"] for h in monitor.history]
    assert len(set(scores)) == 1


def test_early_stopping_and_checkpointing_work_with_every_n_epochs(tmp_path):
    monitor = TopologyMonitor(n_samples=48, every_n_epochs=2)
    stopper = monitor.early_stopping(patience=2)
    ckpt = monitor.model_checkpoint(dirpath=tmp_path, save_top_k=1)
    logger = RecordingLogger()
    tr = trainer(max_epochs=20, callbacks=[monitor, stopper, ckpt], enable_checkpointing=True, logger=logger)
    tr.fit(FrozenAfterFirstEpoch())
    # measured at 0, 2, 4; the score is re-logged on 1, 3, so it is present after every validation
    assert [h["epoch"] for h in monitor.history] == [0, 2, 4]
    assert len(logger.values("topo/score")) == tr.current_epoch
    assert stopper.stopped_epoch == 4
    assert ckpt.best_model_path


def test_model_checkpoint_keeps_the_best_score(tmp_path):
    monitor = TopologyMonitor(n_samples=48, score="id_last")
    ckpt = ModelCheckpoint(dirpath=tmp_path, monitor="topo/score", mode=monitor.score_mode, save_top_k=1)
    trainer(max_epochs=4, callbacks=[monitor, ckpt], enable_checkpointing=True).fit(TinyNet(lr=0.2))
    scores = [h["scalars"]["topo/score"] for h in monitor.history]
    assert float(ckpt.best_model_score) == pytest.approx(min(scores), rel=1e-6)
    assert f"epoch={int(np.argmin(scores))}" in ckpt.best_model_path


def test_early_stopping_on_the_score_after_resuming(tmp_path):
    monitor = TopologyMonitor(n_samples=48)
    trainer(
        max_epochs=2,
        default_root_dir=tmp_path,
        callbacks=[monitor, ModelCheckpoint(dirpath=tmp_path, save_last=True)],
        enable_checkpointing=True,
    ).fit(FrozenAfterFirstEpoch())
    resumed = TopologyMonitor(n_samples=48)
    stopper = resumed.early_stopping(patience=2)
    tr = trainer(max_epochs=20, callbacks=[resumed, stopper], enable_checkpointing=True, default_root_dir=tmp_path)
    tr.fit(FrozenAfterFirstEpoch(), ckpt_path=tmp_path / "last.ckpt")
    assert tr.current_epoch < 20
    assert [h["epoch"] for h in resumed.history][:2] == [0, 1]


@pytest.fixture(scope="module")
def recorded():
    """A report recorded by a real run, with per-class lifespans and PH-dimension."""
    monitor = TopologyMonitor(
        n_samples=90, score="lifespan_sum", descriptors=["total_persistence", "id_twonn", "id_phdim", "betti"]
    )
    calls = record_compute(monitor)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer(max_epochs=1, callbacks=[monitor]).fit(TinyNet())
    return monitor.last_report, calls[-1]


def test_each_named_score_equals_its_functional_definition(recorded):
    report, captured = recorded
    config = ComputeConfig()
    assert id_last(report) == report.metrics["head"]["id_twonn"]
    x = captured["samples"]["head"]
    d = F.pairwise_distances(x, normalize="quantile")
    assert id_last(report) == pytest.approx(F.intrinsic_dimension(d, "twonn", distance_matrix=True))
    assert phdim_last(report) == report.metrics["head"]["id_phdim"]
    assert math.isfinite(phdim_last(report))
    profile = [
        report.metrics[layer]["total_persistence_0"] + report.metrics[layer]["total_persistence_1"]
        for layer in report.layers
    ]
    assert decay(report) == pytest.approx(F.topological_complexity_decay(profile))
    # lifespan_sum: per class H0 total persistence at the last layer, averaged over classes
    out, labels = captured["samples"]["output"], captured["labels"]
    per_class = []
    for c in torch.unique(labels):
        dc = F.pairwise_distances(out[labels == c], normalize=config.normalize)
        per_class.append(F.total_persistence(F.vietoris_rips(dc, maxdim=0, distance_matrix=True), 0))
    assert lifespan_sum(report) == pytest.approx(float(np.mean(per_class)))
    assert report.score == lifespan_sum(report)


def test_every_named_score_declares_a_direction():
    assert {name: s.mode for name, s in SCORES.items()} == dict.fromkeys(SCORES, "min")
    assert TopologyMonitor(score=lambda r: 1.0, score_mode="max").score_mode == "max"
    assert "id_phdim" in TopologyMonitor(score="phdim_last").config.descriptors
    with pytest.raises(ValueError, match="`score_mode`"):
        TopologyMonitor(score=lambda r: 1.0, score_mode="up")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="score=None"):
        TopologyMonitor(score=None).early_stopping()
    with pytest.raises(ValueError, match="score=None"):
        TopologyMonitor(score=None).model_checkpoint()
    assert isinstance(TopologyMonitor().early_stopping(), EarlyStopping)


def test_persistence_descriptors_metric_equals_the_functional_result_on_concatenated_batches():
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(40, 5, generator=g) for _ in range(4)]
    metric = PersistenceDescriptors(maxdim=1, prefix="val/")
    for b in batches:
        metric.update(b)
    out = metric.compute()
    expected = compute_layer(torch.cat(batches), ComputeConfig(maxdim=1)).metrics
    assert set(out) == {f"val/{k}" for k in expected}
    for k, v in expected.items():
        assert float(out[f"val/{k}"]) == pytest.approx(v, rel=1e-6)
    direct = F.vietoris_rips(F.pairwise_distances(torch.cat(batches), normalize="quantile"), distance_matrix=True)
    assert float(out["val/total_persistence_1"]) == pytest.approx(F.total_persistence(direct, 1), rel=1e-6)


def test_intrinsic_dimension_metric_equals_the_functional_result_and_caps_points():
    g = torch.Generator().manual_seed(1)
    batches = [torch.rand(100, 3, generator=g, dtype=torch.float64) for _ in range(5)]
    metric = IntrinsicDimension("mle")
    for b in batches:
        metric.update(b)
    assert float(metric.compute()["id_mle"]) == pytest.approx(
        F.intrinsic_dimension(torch.cat(batches), "mle"), rel=1e-6
    )
    capped = IntrinsicDimension("twonn", max_points=200, seed=3)
    for b in batches:
        capped.update(b)
    idx = torch.randperm(500, generator=torch.Generator().manual_seed(3))[:200].sort().values
    assert float(capped.compute()["id_twonn"]) == pytest.approx(
        F.intrinsic_dimension(torch.cat(batches)[idx], "twonn"), rel=1e-6
    )
    capped.reset()
    assert capped.cloud == []


def test_metrics_validate_their_arguments():
    with pytest.raises(ValueError, match="`method`"):
        IntrinsicDimension("pca")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`max_points`"):
        PersistenceDescriptors(max_points=1)
    with pytest.raises(ValueError, match="`maxdim`"):
        PersistenceDescriptors(maxdim=4)
    with pytest.raises(ValueError, match="batch dimension"):
        IntrinsicDimension().update(torch.tensor(1.0))
