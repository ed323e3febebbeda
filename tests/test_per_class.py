"""Per-class topology (Magai & Ayzenberg's local descriptors): each class's rows of the layer, one scale per layer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import ripser
import skdim
import torch
from scipy.spatial.distance import pdist, squareform
from torch.utils.data import DataLoader

from lightning_topo import TopologyMonitor, analyze
from tests._models import RecordingLogger, TinyNet, make_data, trainer


def test_per_class_descriptors_equal_ripser_and_scikit_dimension_on_each_classs_rows():
    x, y = make_data(n=150, seed=4).tensors
    report = analyze(TinyNet(), DataLoader(make_data(n=150, seed=4), batch_size=50), layers=["input"], per_class=True)
    d = squareform(pdist(x.double().numpy()))
    d /= np.quantile(d[np.triu_indices(len(d), 1)], 0.9)  # the whole layer's scale, shared by its classes
    for c in range(3):
        rows = (y == c).numpy()
        sub = d[np.ix_(rows, rows)]
        dgms = ripser.ripser(sub, maxdim=1, distance_matrix=True)["dgms"]
        got = report.class_metrics["input"][c]
        for q, dgm in enumerate(dgms):
            life = (dgm[:, 1] - dgm[:, 0])[np.isfinite(dgm[:, 1])]
            assert got[f"total_persistence_{q}"] == pytest.approx(life.sum(), rel=1e-5), (c, q)
            assert got[f"betti_{q}"] == ((dgm[:, 0] <= 0.2) & (dgm[:, 1] > 0.2)).sum(), (c, q)
        twonn = skdim.id.TwoNN(discard_fraction=0.1).fit(x[rows].double().numpy()).dimension_
        assert got["id_twonn"] == pytest.approx(twonn, rel=1e-9)
    assert report.class_counts == {0: 50, 1: 50, 2: 50}


def test_a_trainer_run_logs_every_class_and_their_mean():
    logger = RecordingLogger()
    monitor = TopologyMonitor(layers=["hidden"], n_samples=90, per_class=True, descriptors=["total_persistence"])
    trainer(max_epochs=2, logger=logger, callbacks=[monitor]).fit(TinyNet())
    keys = logger.logged_keys()
    for c in range(3):
        assert f"topo/hidden/class_{c}/total_persistence_0" in keys
    mean = logger.values("topo/hidden/class_mean/total_persistence_1")
    per = [logger.values(f"topo/hidden/class_{c}/total_persistence_1") for c in range(3)]
    assert len(mean) == 2
    assert mean == pytest.approx(np.mean(per, axis=0).tolist(), rel=1e-6)
    assert all(math.isfinite(v) for v in mean)
    assert set(monitor.last_report.class_betti_curves["hidden"]) == {0, 1, 2}


def test_per_class_without_labels_is_a_clear_error():
    loader = DataLoader(torch.randn(32, 6), batch_size=8)
    with pytest.raises(ValueError, match="per_class=True needs one integer label per example: pass `label_fn`"):
        analyze(TinyNet(), loader, per_class=True)


def test_per_class_figures_draw_one_curve_per_class_in_tensorboard(tmp_path):
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(tmp_path, name="tb")
    monitor = TopologyMonitor(layers=["hidden"], n_samples=90, per_class=True)
    trainer(max_epochs=1, logger=logger, callbacks=[monitor]).fit(TinyNet())
    acc = EventAccumulator(logger.log_dir, size_guidance={"images": 0})
    acc.Reload()
    (image,) = acc.Images("topo/hidden/class_betti_curves")
    assert image.width >= 1000  # two panels (H0, H1) side by side
    from lightning_topo.plotting import fine_betti_curves, plot_class_betti_curves

    report = monitor.last_report
    curves = {c: fine_betti_curves(d, 0.5) for c, d in report.class_diagrams["hidden"].items()}
    fig = plot_class_betti_curves(curves, np.linspace(0, 0.5, 256))
    assert [line.get_label() for line in fig.axes[1].get_lines()] == ["class 0", "class 1", "class 2"]
