"""Figures in TensorBoard (tags, steps, sizes, ranges, labels, colours, reused figures), the custom-scalars
layout, saved diagrams."""

import json
import re
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

from lightning_topo import PersistenceDiagrams, TopologyMonitor, TopologyReport, TopologyWarning, plotting
from lightning_topo import functional as F
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


def test_custom_scalars_layout_is_registered_once_with_one_tag_per_chart(run):
    """TensorBoard colours a chart's lines by run: one tag per chart keeps every line of a run distinguishable."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.custom_scalar import layout_pb2

    _, logger, _ = run
    acc = EventAccumulator(logger.log_dir)
    acc.Reload()
    layouts = acc.Tensors("custom_scalars__config__")
    assert len(layouts) == 1
    layout = layout_pb2.Layout()
    layout.ParseFromString(layouts[0].tensor_proto.string_val[0])
    categories = {category.title: category for category in layout.category}
    assert next(iter(categories)) == "topo: score and validation metrics"
    assert [c.title for c in categories["topo: score and validation metrics"].chart] == ["topo/score", "val_loss"]
    for d in DESCRIPTORS:
        charts = categories[f"topo: {d}"].chart
        assert [c.title for c in charts] == LAYERS  # depth order
        assert [list(c.multiline.tag) for c in charts] == [[f"^topo/{layer}/{d}$"] for layer in LAYERS]
    scalars = set(acc.Tags()["scalars"])
    for category in layout.category:
        for chart in category.chart:
            (regex,) = chart.multiline.tag
            assert sum(bool(re.match(regex, tag)) for tag in scalars) == 1, regex


def test_images_are_logged_at_the_step_of_the_validation_scalars(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, logger, _ = run
    acc = EventAccumulator(logger.log_dir, size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    steps = [e.step for e in acc.Scalars("val_loss")]
    assert len(steps) == 3
    assert [e.step for e in acc.Scalars("topo/hidden/id_twonn")] == steps
    assert [e.step for e in acc.Images("topo/depth_profile")] == steps
    assert [e.step for e in acc.Images("topo/hidden/diagram")] == steps
    assert [e.step for e in acc.Images("topo/hidden/betti_evolution")] == steps[1:]


def test_async_images_and_scalars_share_the_step_of_their_validation(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(tmp_path, name="async")
    monitor = TopologyMonitor(layers=["hidden"], n_samples=48, compute="async", workers=1)
    trainer(max_epochs=2, logger=logger, callbacks=[monitor]).fit(TinyNet())
    acc = EventAccumulator(logger.log_dir, size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    steps = [e.step for e in acc.Scalars("val_loss")]
    assert len(steps) == 2
    assert [e.step for e in acc.Scalars("topo/hidden/id_twonn")] == steps
    assert [e.step for e in acc.Images("topo/hidden/betti_curves")] == steps


def test_figures_have_at_least_twice_the_former_resolution(run):
    """Former sizes: Betti curves 256 x 192, diagram 224 x 224, heat map 448 x 192, depth profile 1280 x 208."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, logger, _ = run
    acc = EventAccumulator(logger.log_dir, size_guidance={"images": 0})
    acc.Reload()
    size = {tag: (acc.Images(tag)[-1].width, acc.Images(tag)[-1].height) for tag in acc.Tags()["images"]}
    for layer in LAYERS[:-1]:
        width, height = size[f"topo/{layer}/betti_curves"]
        assert width >= 2 * 256
        assert height >= 2 * 192
        width, height = size[f"topo/{layer}/diagram"]
        assert width >= 2 * 224
        assert height >= 2 * 224
        width, height = size[f"topo/{layer}/betti_evolution"]
        assert width >= 2 * 448
        assert height >= 2 * 192
    width, height = size["topo/depth_profile"]
    assert width >= 1280
    assert height >= 2 * 208


def test_betti_curve_range_is_fixed_at_the_first_measurement_and_covers_its_finite_deaths(run):
    _, logger, monitor = run
    folder = Path(logger.log_dir) / "topology"
    reports = [TopologyReport.load(path) for path in sorted(folder.glob("epoch_*.json"))]
    assert [r.epoch for r in reports] == [0, 1, 2]
    state = monitor.state_dict()
    ranges, curves = state["plot_ranges"], state["plotted_betti_curves"]
    assert sorted(ranges) == sorted(LAYERS[:-1])  # `output` is a copy of `head`: not drawn
    for layer, x_max in ranges.items():
        first = reports[0].diagrams[layer]
        deaths = np.concatenate([dgm[np.isfinite(dgm[:, 1]), 1] for dgm in first])
        assert x_max >= deaths.max()  # covers every finite death of its first measurement
        step = reports[0].grid[1] - reports[0].grid[0]
        assert x_max <= plotting.HEADROOM * deaths.max() + step + 1e-12  # and no more than a little past them
        assert np.isclose(reports[0].grid, x_max).any()  # snapped to the measurement grid
        assert [e for e, _ in curves[layer]] == [0, 1, 2]
        for report, (_, drawn) in zip(reports, curves[layer], strict=True):  # every epoch on the same range
            expected = F.betti_curve(report.diagrams[layer], np.linspace(0, x_max, plotting.N_POINTS))
            np.testing.assert_array_equal(np.asarray(drawn), expected)
    restored = TopologyMonitor(n_samples=48)
    restored.load_state_dict(state)
    assert restored.state_dict()["plot_ranges"] == ranges
    assert restored.state_dict()["plotted_betti_curves"] == curves


def _diagrams(scale: float, seed: int = 0) -> PersistenceDiagrams:
    rng = np.random.default_rng(seed)
    births = rng.uniform(0, 0.1 * scale, 200)
    h0 = np.r_[np.c_[np.zeros(255), rng.uniform(0.01, 0.2 * scale, 255)], [[0.0, np.inf]]]
    return PersistenceDiagrams([h0, np.c_[births, births + rng.exponential(0.03 * scale, 200)]])


def test_every_axis_is_labelled_and_each_layer_figure_names_its_epoch():
    from lightning_topo.engine import FigureRequest, LayerResult

    grid = np.linspace(0, 1, 100)
    dgms = _diagrams(1.0)
    x_max = plotting.fit_range(dgms, grid)
    curves = plotting.fine_betti_curves(dgms, x_max)
    xs = np.linspace(0, x_max, plotting.N_POINTS)
    # the reused figures are the ones layer_figures draws into in this process
    figures = {
        "betti_curves": plotting.plot_betti_curves(curves, xs, reuse=True),
        "diagram": plotting.plot_diagram(dgms, reuse=True),
        "betti_evolution": plotting.plot_betti_evolution([0, 1], [curves, curves], xs, reuse=True),
    }
    request = FigureRequest("hidden", 7, plotting.layer_figures, [(5, curves)], x_max=x_max, mark=0.2)
    images = plotting.layer_figures(LayerResult({}, dgms, None), request, grid)
    assert set(images) == set(figures)
    for name, fig in figures.items():
        for ax in (ax for ax in fig.axes if ax.get_label() != "<colorbar>"):
            assert ax.get_xlabel(), name
            assert ax.get_ylabel(), name
            assert ax.get_title().startswith("hidden: ")
        for bar in (ax for ax in fig.axes if ax.get_label() == "<colorbar>"):
            assert bar.get_ylabel()  # the colour scale says what it counts
    assert figures["betti_curves"].axes[0].get_title() == "hidden: Betti curves, epoch 7"
    assert figures["diagram"].axes[0].get_title() == "hidden: persistence diagram, epoch 7"
    stepped = plotting.betti_figures(dgms, x_max, "hidden", 7, history=[(7, curves)], steps=[40, 45])
    assert stepped["betti_curves"].axes[0].get_title() == "hidden: Betti curves, epoch 7, step 45"  # val_check_interval
    assert figures["betti_curves"].axes[0].get_xlim() == (0.0, x_max)
    metrics = {"a": {"id_twonn": 3.0, "betti_0": 1.0}, "b": {"id_twonn": 2.0, "betti_0": 2.0}}
    for fig in (
        plotting.plot_depth_profile(TopologyReport(["a", "b"], metrics), title="epoch 3"),
        plotting.plot_history([0, 1], {"a": [1.0, 2.0], "b": [2.0, 1.0]}, "id_twonn"),
        plotting.plot_metrics({"val_loss": ([0, 1], [1.0, 0.5]), "topo/score": ([0, 1], [3.0, 2.0])}),
    ):
        for ax in (ax for ax in fig.axes if ax.get_visible()):
            assert ax.get_xlabel()
            assert ax.get_ylabel()


def test_evolution_heat_map_has_a_regular_epoch_axis():
    curves = [np.full((2, 4), e) for e in (0, 2, 4, 6, 8, 10, 12)]
    ax = plotting.plot_betti_evolution([0, 2, 4, 6, 8, 10, 12], curves, np.linspace(0, 0.3, 4)).axes[0]
    low, high = ax.get_ylim()
    # one row per epoch step of 2, centred on the epochs; the axis reaches a round 10 rows (epochs 0 to 18)
    assert (low, high) == (-1.0, 19.0)
    assert ax.get_images()[0].get_extent()[2:] == [-1.0, 13.0]
    ticks = [t for t in ax.get_yticks() if low <= t <= high]
    assert all(float(t).is_integer() for t in ticks)
    assert len(set(np.diff(ticks))) == 1  # evenly spaced
    image = ax.get_images()[0].get_array()
    assert image.shape == (7, 4)
    assert not np.ma.is_masked(image)
    skipped = plotting.plot_betti_evolution([0, 1, 5], curves[:3], np.linspace(0, 0.3, 4)).axes[0]
    rows = skipped.get_images()[0].get_array()
    assert rows.shape[0] == 6
    assert rows.mask[2:5].all()
    assert not rows.mask[[0, 1, 5]].any()


def test_several_measurements_in_an_epoch_each_get_their_own_row_labelled_by_step():
    """With ``val_check_interval`` an epoch holds several measurements: none overwrites another."""
    curves = [np.full((1, 3), v) for v in (1.0, 5.0, 2.0)]
    fig = plotting.plot_betti_evolution([0, 0, 1], curves, np.array([0.0, 0.5, 1.0]), "x", steps=[5, 10, 15])
    ax = fig.axes[0]
    assert np.asarray(ax.get_images()[0].get_array()).tolist() == [[1.0] * 3, [5.0] * 3, [2.0] * 3]
    assert ax.get_ylabel() == "step"
    plotting.figure_to_rgb(fig)
    labels = {t.get_text() for t in ax.get_yticklabels() if t.get_text()}
    assert labels <= {"5", "10", "15"}
    assert labels
    without = plotting.plot_betti_evolution([0, 0, 1], curves, np.array([0.0, 0.5, 1.0]), "x", reuse=True)
    assert np.asarray(without.axes[0].get_images()[0].get_array()).shape == (3, 3)


def test_the_callbacks_heat_map_rows_within_an_epoch_are_labelled_by_their_steps(tmp_path, monkeypatch):
    """The callback hands the heat map every measurement's step: with ``val_check_interval`` the rows of one epoch
    were labelled by the same epoch; the steps are kept in the checkpoint."""
    drawn: list[tuple[list[int], list[int] | None]] = []
    original = plotting.plot_betti_evolution

    def record(epochs, curves, xs, title, steps=None, **kwargs):
        drawn.append((list(epochs), None if steps is None else list(steps)))
        return original(epochs, curves, xs, title, steps=steps, **kwargs)

    monkeypatch.setattr(plotting, "plot_betti_evolution", record)
    logger = TensorBoardLogger(tmp_path, name="tb")
    monitor = TopologyMonitor(layers=["hidden"], n_samples=32, workers=0)
    trainer(max_epochs=2, val_check_interval=0.5, logger=logger, callbacks=[monitor]).fit(TinyNet())
    assert drawn[-1] == ([0, 0, 1, 1], [2, 5, 8, 11])  # the steps the scalars are logged at
    state = monitor.state_dict()
    assert state["plotted_steps"] == {"hidden": [2, 5, 8, 11]}
    restored = TopologyMonitor(layers=["hidden"], n_samples=32)
    restored.load_state_dict(state)
    assert restored.state_dict()["plotted_steps"] == {"hidden": [2, 5, 8, 11]}


def test_a_dollar_in_a_name_is_shown_as_written_not_parsed_as_mathtext():
    name = "$\\frac$ layer"
    report = TopologyReport([name, "b"], {name: {"id_twonn": 1.0}, "b": {"id_twonn": 2.0}}, epoch=0)
    dgms = PersistenceDiagrams([[[0.0, 0.2], [0.0, np.inf]]])
    figures = [
        plotting.plot_depth_profile(report, title=name),
        plotting.plot_history([0, 1], {name: [1.0, 2.0], "$b$": [2.0, 1.0]}, name, ylabel=name),
        plotting.plot_metrics({name: ([0, 1], [1.0, 2.0])}, name),
        *plotting.betti_figures(dgms, 0.5, name, 1, history=[(0, plotting.fine_betti_curves(dgms, 0.5))]).values(),
        plotting.plot_class_betti_curves({0: np.ones((1, 3))}, [0.0, 0.5, 1.0], name),
    ]
    for fig in figures:
        assert plotting.figure_to_rgb(fig).ndim == 3
    texts = [t.get_text() for t in figures[0].axes[0].get_xticklabels()]
    assert texts == [name, "b"]


def test_the_betti_scale_is_in_the_legend_only_when_its_line_is_drawn():
    xs = np.array([0.0, 0.5, 1.0])
    for mark, listed in ((2.0, False), (0.5, True), (None, False)):
        fig = plotting.plot_betti_curves(np.array([[3, 2, 1]]), xs, mark=mark, reuse=True)
        legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert ("betti_scale (the logged β)" in legend) is listed, (mark, legend)
        assert fig.axes[0].get_lines()[-1].get_visible() is listed


def test_per_class_curves_have_round_y_limits_shared_by_close_measurements():
    xs = np.linspace(0.0, 1.0, 4)
    tops = []
    for peak in (41, 44):
        fig = plotting.plot_class_betti_curves({0: np.array([[peak, 1, 0, 0]]), 1: np.ones((1, 4))}, xs, reuse=True)
        tops.append(fig.axes[0].get_ylim()[1])
    assert tops == [50.0, 50.0]


def test_layers_are_told_apart_by_colour():
    layers = [f"layer{i}" for i in range(12)]
    report = TopologyReport(layers, {layer: {"id_twonn": float(i)} for i, layer in enumerate(layers)})
    dots = plotting.plot_depth_profile(report).axes[0].collections[0]
    assert len({tuple(c) for c in dots.get_facecolors()}) == 12
    lines = plotting.plot_history([0, 1], {layer: [1.0, 2.0] for layer in layers}, "x").axes[0].get_lines()
    assert len({line.get_color() for line in lines}) == 12
    assert len(set(plotting.layer_colors(30))) == 30


def test_reused_figures_draw_what_a_new_figure_draws():
    grid = np.linspace(0, 1, 100)

    def betti(dgms: PersistenceDiagrams, reuse: bool) -> np.ndarray:
        x_max = plotting.fit_range(dgms, grid)
        xs = np.linspace(0, x_max, plotting.N_POINTS)
        fig = plotting.plot_betti_curves(plotting.fine_betti_curves(dgms, x_max), xs, "l", mark=0.2, reuse=reuse)
        return plotting.figure_to_rgb(fig)

    a, b = _diagrams(1.0), _diagrams(2.0, seed=1)
    first, other, again, fresh = betti(a, True), betti(b, True), betti(a, True), betti(a, False)
    np.testing.assert_array_equal(first, again)  # each range's kept background is its own
    assert (first != other).any(axis=2).mean() > 0.05
    assert (first != fresh).any(axis=2).mean() < 0.01  # the same picture; only the drawing order differs
    reused = plotting.figure_to_rgb(plotting.plot_diagram(a, "l", top=0.3, reuse=True))
    new = plotting.figure_to_rgb(plotting.plot_diagram(a, "l", top=0.3))
    assert reused.shape == new.shape
    assert (reused != new).any(axis=2).mean() < 0.01
    assert plotting.figure_to_png(plotting.plot_diagram(a, reuse=True)).startswith(b"\x89PNG")


def test_saved_diagrams_and_scalars_cover_every_epoch_and_layer(run):
    _, logger, monitor = run
    folder = Path(logger.log_dir) / "topology"
    # one file per measurement, named by epoch and the step of its scalars (6 training batches per epoch)
    names = ["epoch_0_step_5.json", "epoch_1_step_11.json", "epoch_2_step_17.json"]
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


@pytest.mark.slow
def test_figures_do_not_accumulate_over_many_epochs(tmp_path, monkeypatch):
    """100 measured epochs of a real run draw into the same four reused figures (Betti curves, diagram, heat map,
    depth profile), kept in the process's bounded cache; none is ever open in pyplot."""
    import gc
    import weakref

    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    created: list[weakref.ref] = []
    init = Figure.__init__

    def tracked(self, *args, **kwargs):
        init(self, *args, **kwargs)
        created.append(weakref.ref(self))

    monkeypatch.setattr(Figure, "__init__", tracked)
    open_before = len(plt.get_fignums())
    logger = TensorBoardLogger(tmp_path, name="leak")
    monitor = TopologyMonitor(layers=["hidden"], n_samples=32, workers=0)
    trainer(max_epochs=100, logger=logger, callbacks=[monitor], limit_train_batches=1).fit(TinyNet())
    gc.collect()
    assert len(created) <= 4  # earlier tests in this process may have made some of them already
    assert sum(ref() is not None for ref in created) <= plotting.CACHE_SIZE
    assert len(plt.get_fignums()) == open_before
    assert matplotlib.get_backend().lower() == "agg"


def test_figures_every_k_measurements(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger, monitor = _fit(tmp_path, epochs=3, log_figures=2)
    acc = EventAccumulator(logger.log_dir, size_guidance={"images": 0})
    acc.Reload()
    assert [e.step for e in acc.Images("topo/depth_profile")] == [5, 17]  # measurements 1 and 3 (steps 5, 11, 17)
    state = monitor.state_dict()
    assert state["n_measured"] == 3  # a resumed run draws at measurement 5, not at its first
    restored = TopologyMonitor(n_samples=48, log_figures=2)
    restored.load_state_dict(state)
    assert restored.state_dict()["n_measured"] == 3
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


def test_a_second_fit_with_a_new_logger_gets_the_custom_scalars_layout_too(tmp_path):
    monitor = TopologyMonitor(layers=["hidden"], n_samples=32)
    for _ in range(2):
        logger = TensorBoardLogger(tmp_path, name="tb")
        trainer(max_epochs=1, logger=logger, callbacks=[monitor]).fit(TinyNet())
        events = b"".join(path.read_bytes() for path in Path(logger.log_dir).glob("events*"))
        assert b"custom_scalars" in events, logger.log_dir


def test_a_per_class_legend_of_many_classes_fits_and_counts_the_rest():
    curves = {c: np.ones((2, 3)) * (c % 4) for c in range(50)}
    fig = plotting.plot_class_betti_curves(curves, np.array([0.0, 0.5, 1.0]), "many")
    texts = [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
    assert len(texts) == 16
    assert texts[:2] == ["class 0", "class 1"]
    assert texts[-1] == "+ 35 more classes"
    assert plotting.figure_to_rgb(fig).ndim == 3
