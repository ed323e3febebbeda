"""Figures in TensorBoard, the custom-scalars layout, saved diagrams and the static report."""

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from lightning_topo import TopologyMonitor, TopologyReport, TopologyWarning
from tests._models import DEFAULT_KEYS, TinyNet, trainer

DESCRIPTORS = DEFAULT_KEYS
LAYERS = ["input", "encoder", "hidden", "head", "output"]


def _fit(tmp_path: Path, epochs: int = 3, **kwargs) -> tuple[TensorBoardLogger, TopologyMonitor]:
    logger = TensorBoardLogger(tmp_path, name="tb")
    monitor = TopologyMonitor(n_samples=48, **kwargs)
    trainer(max_epochs=epochs, logger=logger, callbacks=[monitor]).fit(TinyNet())
    return logger, monitor


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tb")
    logger, monitor = _fit(tmp, save_diagrams=True)
    return tmp, logger, monitor


def test_every_documented_scalar_and_image_tag_is_in_the_event_files_for_every_epoch(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, logger, _ = run
    acc = EventAccumulator(logger.log_dir, size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    for layer in LAYERS:
        for d in DESCRIPTORS:
            assert len(acc.Scalars(f"topo/{layer}/{d}")) == 3
    assert {"topo/score", "topo/time_s"} <= scalars
    images = set(acc.Tags()["images"])
    # `output` is an exact copy of `head` (TinyNet returns the head's output): measured and drawn once
    assert "topo/output/diagram" not in images
    for layer in LAYERS[:-1]:
        assert len(acc.Images(f"topo/{layer}/betti_curves")) == 3
        assert len(acc.Images(f"topo/{layer}/diagram")) == 3
        assert len(acc.Images(f"topo/{layer}/betti_evolution")) == 2  # from the second measured epoch on
    assert len(acc.Images("topo/depth_profile")) == 3
    assert all(tag.startswith("topo/") for tag in images)


def test_custom_scalars_layout_is_registered_once(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.custom_scalar import layout_pb2

    _, logger, _ = run
    acc = EventAccumulator(logger.log_dir)
    acc.Reload()
    layouts = acc.Tensors("custom_scalars__config__")
    assert len(layouts) == 1
    layout = layout_pb2.Layout()
    layout.ParseFromString(layouts[0].tensor_proto.string_val[0])
    titles = {chart.title for category in layout.category for chart in category.chart}
    assert set(DESCRIPTORS) <= titles
    assert set(LAYERS) <= titles


def test_saved_diagrams_and_scalars_cover_every_epoch_and_layer(run):
    _, logger, monitor = run
    folder = Path(logger.log_dir) / "topology"
    # one file per measurement, named by epoch and global step (6 training batches per epoch)
    names = ["epoch_0_step_6.json", "epoch_1_step_12.json", "epoch_2_step_18.json"]
    assert sorted(p.name for p in folder.glob("epoch_*.json")) == names
    record = json.loads((folder / names[-1]).read_text())
    assert record["scalars"] == pytest.approx(monitor.history[-1]["scalars"])
    loaded = TopologyReport.load(folder / names[-1])
    assert loaded.layers == LAYERS
    for layer, metrics in monitor.last_report.to_dict().items():
        assert loaded.metrics[layer] == pytest.approx(metrics)
    assert loaded.score == pytest.approx(monitor.last_report.score)
    for layer in LAYERS:
        np.testing.assert_array_equal(loaded.diagrams[layer][1], monitor.last_report.diagrams[layer][1])
        assert loaded.betti_curves[layer].shape == (2, 100)


def test_report_command_writes_png_and_html_covering_every_layer(run, tmp_path):
    from lightning_topo.cli import main

    root, _, _ = run
    out = tmp_path / "report"
    assert main(["report", str(root), "--out", str(out)]) == 0
    page = (out / "index.html").read_text()
    for layer in LAYERS:
        assert (out / f"{layer}_betti_curves.png").stat().st_size > 1000
        assert (out / f"{layer}_diagram.png").exists()
        assert f"<th>{layer}</th>" in page
    assert (out / "depth_profile.png").exists()
    assert (out / "history_id_twonn.png").exists()
    assert page.count("data:image/png;base64,") == len(list(out.glob("*.png")))


def test_report_command_fails_clearly_without_saved_files(tmp_path, capsys):
    from lightning_topo.cli import main

    assert main(["report", str(tmp_path)]) == 1
    assert "save_diagrams=True" in capsys.readouterr().err


@pytest.mark.slow
def test_figures_do_not_accumulate_over_many_epochs(tmp_path, monkeypatch):
    """100 measured epochs of a real run leave no figure open in pyplot and no figure alive in memory."""
    import gc
    import weakref

    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from lightning_topo import plotting

    created: list[weakref.ref] = []
    init = Figure.__init__

    def tracked(self, *args, **kwargs):
        init(self, *args, **kwargs)
        created.append(weakref.ref(self))

    monkeypatch.setattr(Figure, "__init__", tracked)

    def cheap_render(fig):  # rendering is exercised by the event-file tests; here only lifetimes matter
        fig.clear()
        return np.zeros((4, 4, 3), dtype=np.uint8)

    monkeypatch.setattr(plotting, "figure_to_rgb", cheap_render)
    open_before = len(plt.get_fignums())
    logger = TensorBoardLogger(tmp_path, name="leak")
    monitor = TopologyMonitor(layers=["hidden"], n_samples=32, workers=0)
    trainer(max_epochs=100, logger=logger, callbacks=[monitor], limit_train_batches=1).fit(TinyNet())
    gc.collect()
    assert len(created) == 100 * 3 + 99  # curves, diagram, depth profile; evolution from the second epoch
    assert len(plt.get_fignums()) == open_before
    assert sum(ref() is not None for ref in created) == 0
    assert matplotlib.get_backend().lower() == "agg"


def test_figures_every_k_measurements(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger, _ = _fit(tmp_path, epochs=4, log_figures=2)
    acc = EventAccumulator(logger.log_dir, size_guidance={"images": 0})
    acc.Reload()
    assert len(acc.Images("topo/depth_profile")) == 2
    with pytest.raises(ValueError, match="`log_figures`"):
        TopologyMonitor(log_figures=0)


def test_loggers_without_images_get_scalars_and_one_warning(tmp_path):
    with pytest.warns(TopologyWarning, match="CSVLogger cannot show images") as record:
        trainer(max_epochs=2, logger=CSVLogger(tmp_path), callbacks=[TopologyMonitor(n_samples=32)]).fit(TinyNet())
    assert sum("cannot show images" in str(w.message) for w in record) == 1


def test_figures_can_be_switched_off(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger, _ = _fit(tmp_path, epochs=1, log_figures=False)
    acc = EventAccumulator(logger.log_dir)
    acc.Reload()
    assert acc.Tags()["images"] == []
    assert "topo/hidden/id_twonn" in acc.Tags()["scalars"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_real_tensorboard_server_serves_the_scalar_and_image_tags(run):
    root, _, _ = run
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "tensorboard.main",
        "--logdir",
        str(root),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--load_fast",
        "false",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        scalars = images = None
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/data/plugin/scalars/tags", timeout=5) as r:
                    scalars = json.loads(r.read())
                with urllib.request.urlopen(f"{base}/data/plugin/images/tags", timeout=5) as r:
                    images = json.loads(r.read())
                if scalars and images:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert scalars, "tensorboard did not answer"
        run_name = next(iter(scalars))
        assert "topo/hidden/id_twonn" in scalars[run_name]
        assert "topo/score" in scalars[run_name]
        assert "topo/hidden/betti_curves" in images[run_name]
        assert "topo/depth_profile" in images[run_name]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
