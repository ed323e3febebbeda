"""Topological scores: their values against independent computations, their directions, early stopping on them."""

import math
import warnings

import numpy as np
import pytest
import skdim
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial.distance import pdist, squareform

from lightning_topo import TopologyMonitor, rank_models
from lightning_topo import functional as F
from lightning_topo.scores import SCORES, decay, id_last, lifespan_sum, phdim_last
from tests._models import RecordingLogger, TinyNet, make_data, trainer


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


def _hidden_features(model: TinyNet, n: int) -> torch.Tensor:
    """The `hidden` layer's output on the first ``n`` validation examples, computed by hand."""
    x = make_data(seed=1).tensors[0][:n]
    with torch.no_grad():
        return model.hidden(model.encoder(x)).double()


def _normalised(x: np.ndarray) -> np.ndarray:
    """Euclidean distances divided by their 0.9 quantile (over distinct pairs), with scipy and numpy only."""
    d = squareform(pdist(x))
    return d / np.quantile(d[np.triu_indices(len(d), 1)], 0.9)


@pytest.fixture(scope="module")
def recorded():
    """A real run measuring every layer with lifespan_sum, PH-dimension and TwoNN; the model at its end."""
    monitor = TopologyMonitor(
        n_samples=90, score="lifespan_sum", descriptors=["total_persistence", "id_twonn", "id_phdim", "betti"]
    )
    model = TinyNet()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer(max_epochs=1, callbacks=[monitor]).fit(model)
    return monitor.last_report, model


def test_id_last_reads_the_last_hidden_layer_and_equals_scikit_dimension(recorded):
    report, model = recorded
    h = _hidden_features(model, 90).numpy()
    assert id_last(report) == report.metrics["hidden"]["id_twonn"]
    assert id_last(report) == pytest.approx(skdim.id.TwoNN(discard_fraction=0.1).fit(h).dimension_, rel=1e-6)
    assert math.isfinite(phdim_last(report))
    assert phdim_last(report) == report.metrics["hidden"]["id_phdim"]


def test_a_named_head_without_output_is_recognised_as_the_output_and_never_scored():
    """``layers=[..., "head"]`` without ``"output"``: the head's tensor is what ``forward`` returns, so ``id_last``
    reads ``hidden`` (it read the logits), in the Trainer, in ``analyze`` and in a saved and loaded report."""
    monitor = TopologyMonitor(layers=["encoder", "hidden", "head"], n_samples=48)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer(max_epochs=1, callbacks=[monitor]).fit(TinyNet())
    report = monitor.last_report
    assert report is not None
    assert report.outputs == ["head"]
    assert report.score == report.metrics["hidden"]["id_twonn"]
    assert report.metrics["head"]["id_twonn"] != report.score
    from torch.utils.data import DataLoader

    from lightning_topo import analyze

    found = analyze(TinyNet(), DataLoader(make_data(), batch_size=16), layers=["hidden", "head"], score="id_last")
    assert found.outputs == ["head"]
    assert found.score == found.metrics["hidden"]["id_twonn"]
    mine = analyze(TinyNet(), DataLoader(make_data(), batch_size=16), layers=["encoder", "hidden"], score="id_last")
    assert mine.outputs == []  # the last named layer is hidden: it is scored
    assert mine.score == mine.metrics["hidden"]["id_twonn"]


def test_a_saved_report_keeps_its_outputs(tmp_path):
    from lightning_topo import TopologyReport

    report = TopologyReport(["a", "head"], {"a": {"id_twonn": 2.0}, "head": {"id_twonn": 1.0}}, outputs=["head"])
    loaded = TopologyReport.load(report.save(tmp_path))
    assert loaded.outputs == ["head"]
    assert id_last(loaded) == 2.0


def test_lifespan_sum_is_the_mean_per_class_mst_weight_on_the_layers_normalised_distances(recorded):
    report, model = recorded
    h = _hidden_features(model, 90).numpy()
    labels = make_data(seed=1).tensors[1][:90].numpy()
    d = _normalised(h)
    # the H0 lifespans of a Rips filtration are the edges of a minimum spanning tree (scipy, no lightning-topo)
    per_class = [minimum_spanning_tree(d[np.ix_(labels == c, labels == c)]).sum() for c in np.unique(labels)]
    assert lifespan_sum(report) == pytest.approx(float(np.mean(per_class)), rel=1e-6)
    assert report.score == lifespan_sum(report)
    assert set(report.class_metrics["hidden"]) == {0, 1, 2}


def test_decay_is_the_suresh_score_of_the_total_persistence_profile(recorded):
    report, _ = recorded
    layers = [layer for layer in report.layers if layer not in report.copies]  # a copy does not count twice
    profile = [sum(report.metrics[layer][f"total_persistence_{q}"] for q in (0, 1)) for layer in layers]
    assert decay(report) == pytest.approx(F.topological_complexity_decay(profile))


def test_named_scores_rank_a_model_known_to_be_better_first():
    from tests._models import KnownOrder, labelled_loader

    loader = labelled_loader()
    for name, good, bad in KnownOrder.pairs():
        ranked = rank_models({"bad": bad, "good": good}, loader, score=name, n_samples=150)
        assert [n for n, _ in ranked] == ["good", "bad"], (name, ranked)
    assert {name: s.mode for name, s in SCORES.items()} == dict.fromkeys(SCORES, "min")


def test_score_directions_and_helpers():
    assert TopologyMonitor(score=lambda r: 1.0, score_mode="max").score_mode == "max"
    assert "id_phdim" in TopologyMonitor(score="phdim_last").options.measure.descriptors
    with pytest.raises(ValueError, match="`score_mode`"):
        TopologyMonitor(score=lambda r: 1.0, score_mode="up")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="score=None"):
        TopologyMonitor(score=None).early_stopping()
    with pytest.raises(ValueError, match="score=None"):
        TopologyMonitor(score=None).model_checkpoint()
    assert isinstance(TopologyMonitor().early_stopping(), EarlyStopping)


def test_a_nan_profile_score_says_what_its_profile_needs_and_how_many_layers_have_it():
    from torch.utils.data import DataLoader

    from lightning_topo import TopologyWarning, analyze

    loader = DataLoader(make_data(), batch_size=16)
    with pytest.warns(TopologyWarning, match=r"cubical complexity of at least 4 .*; 0 of the monitored layers"):
        report = analyze(TinyNet(), loader, score="decay_cubical", n_samples=48)  # no feature maps at all
    assert report.score is not None
    assert math.isnan(report.score)


def test_a_nan_callable_score_gets_no_message_about_depth_profiles():
    import warnings

    from torch.utils.data import DataLoader

    from lightning_topo import analyze

    def mine(report) -> float:
        return math.nan

    def decay(report) -> float:  # a user's callable with a named score's name
        return math.nan

    for fn in (mine, decay):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            analyze(TinyNet(), DataLoader(make_data(), batch_size=16), score=fn, n_samples=48)
        said = [str(w.message) for w in caught if f"score '{fn.__name__}'" in str(w.message)]
        assert said == [f"analyze: the score '{fn.__name__}' is NaN."]
