"""`lightning-topo report` and the command line: runs with and without saved diagrams, TensorBoard and CSV logs,
clear errors, help and version."""

import re
from pathlib import Path

import numpy as np
import pytest
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

import lightning_topo
from lightning_topo import PersistenceDiagrams, TopologyMonitor, TopologyReport, plotting
from lightning_topo.cli import main, parser
from lightning_topo.static_report import find_runs, load_run, render_report
from tests._models import TinyNet, trainer

LAYERS = ["input", "encoder", "hidden", "head", "output"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three runs: TensorBoard with saved diagrams; below `scalars`, TensorBoard alone (every other epoch, no figures)
    and CSV alone."""
    root = tmp_path_factory.mktemp("runs")
    saved = TopologyMonitor(n_samples=48, save_diagrams=True)
    trainer(max_epochs=3, logger=TensorBoardLogger(root, name="saved"), callbacks=[saved]).fit(TinyNet())
    plain = TopologyMonitor(n_samples=48, every_n_epochs=2, log_figures=False)
    trainer(max_epochs=3, logger=TensorBoardLogger(root / "scalars", name="plain"), callbacks=[plain]).fit(TinyNet())
    csv = TopologyMonitor(n_samples=48)
    trainer(max_epochs=2, logger=CSVLogger(root / "scalars", name="csv"), callbacks=[csv]).fit(TinyNet())
    return root, {"saved": saved, "scalars/plain": plain, "scalars/csv": csv}


def test_every_run_below_a_folder_is_found(runs):
    root, _ = runs
    expected = [root / "saved/version_0", root / "scalars/csv/version_0", root / "scalars/plain/version_0"]
    assert find_runs(root) == expected
    assert find_runs(root / "saved/version_0/topology") == [root / "saved/version_0"]


@pytest.mark.parametrize("name", ["saved", "scalars/plain", "scalars/csv"])
def test_a_run_reads_back_what_the_monitor_logged(runs, name):
    root, monitors = runs
    run = load_run(root / name / "version_0")
    history = monitors[name].history
    assert [r.epoch for r in run.reports] == [h["epoch"] for h in history]
    for report, logged in zip(run.reports, history, strict=True):
        assert report.layers == (LAYERS if "csv" not in name else sorted(LAYERS, key=_csv_order))
        assert report.scalars() | {"topo/time_s": 0.0} == pytest.approx(logged["scalars"] | {"topo/time_s": 0.0})
    assert set(run.metrics) == {"val_loss", "topo/score"}
    assert sorted(run.metrics["val_loss"]) == list(range(3 if "csv" not in name else 2))
    assert bool(run.reports[-1].diagrams) == (name == "saved")


def _csv_order(layer: str) -> tuple[int, str]:
    """Without TensorBoard's layout a run's layers come in name order, input first and output last."""
    return ({"input": -1, "output": 1}.get(layer, 0), layer)


def test_report_of_a_run_with_saved_diagrams_shows_metrics_descriptors_and_every_layer(runs, tmp_path):
    root, _ = runs
    out = tmp_path / "report"
    assert main(["report", str(root / "saved"), "--out", str(out)]) == 0
    page = (out / "index.html").read_text()
    for i, layer in enumerate(LAYERS[:-1]):  # `output` is a copy of `head`: drawn once
        for figure in ("betti_curves", "diagram", "betti_evolution"):
            assert (out / f"layer{i:02d}_{layer}_{figure}.png").stat().st_size > 1000
        assert f"<th>{layer}</th>" in page
    assert not list(out.glob("*output_diagram.png"))
    for name in ("metrics.png", "depth_profile.png", "history_id_twonn.png"):
        assert (out / name).stat().st_size > 1000
    assert "<th>val_loss</th>" in page
    assert "<th>topo/score</th>" in page
    assert page.count("data:image/png;base64,") == len(list(out.glob("*.png")))


@pytest.mark.parametrize("name", ["scalars/plain", "scalars/csv"])
def test_report_works_from_the_scalars_alone(runs, name):
    root, _ = runs
    (page,) = render_report(root / name)
    assert page == root / name / "version_0" / "report" / "index.html"
    html = page.read_text()
    assert "no saved diagrams" in html
    assert "<th>val_loss</th>" in html
    assert "<th>hidden</th>" in html
    assert (page.parent / "metrics.png").exists()
    assert (page.parent / "history_betti_0.png").exists()
    assert not list(page.parent.glob("*_diagram.png"))


def test_report_of_a_folder_above_several_runs_writes_one_page_each(runs, tmp_path):
    root, _ = runs
    pages = render_report(root / "scalars", tmp_path / "all")
    assert sorted(p.parent.name for p in pages) == ["csv_version_0", "plain_version_0"]


def test_report_errors_name_the_problem(tmp_path, capsys):
    missing = tmp_path / "missing"
    assert main(["report", str(missing)]) == 1
    assert re.search(r"Expected a log folder but .*missing' does not exist", capsys.readouterr().err)
    (tmp_path / "notes.txt").write_text("x")
    assert main(["report", str(tmp_path / "notes.txt")]) == 1
    assert "is a file" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 1
    assert "Expected a run under" in capsys.readouterr().err
    with pytest.raises(ValueError, match="holds none of them"):
        load_run(tmp_path / "empty")
    csv = CSVLogger(tmp_path, name="no_monitor")
    trainer(max_epochs=1, logger=csv).fit(TinyNet())
    assert main(["report", str(tmp_path / "no_monitor")]) == 1
    assert "was TopologyMonitor among the Trainer's callbacks?" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="does not exist"):
        render_report(missing)


def test_version_and_help_are_plain_text_with_defaults(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"lightning-topo {lightning_topo.__version__}"
    helps = [parser().format_help()]
    for command in ("demo", "report"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        helps.append(capsys.readouterr().out)
    for text in helps:
        assert "``" not in text
        assert ":func:" not in text
    assert "(default: lightning_topo_demo)" in " ".join(helps[1].split())  # wrapped to the terminal's width
    assert "(default: 10)" in helps[1]
    assert "default: None" not in helps[2]
    with pytest.raises(SystemExit) as stop:
        main([])
    assert stop.value.code == 2  # a command is required


def test_example_outputs_are_ignored_by_git():
    ignored = (Path(__file__).parents[1] / ".gitignore").read_text().split()
    for output in ("lightning_topo_demo/", "lightning_logs/", "logs/", "report/", "mlruns/", "wandb/"):
        assert output in ignored


def _save(folder: Path, names: list[str], epoch: int, step: int, deaths: list[float]) -> None:
    dgms = PersistenceDiagrams([[[0.0, d] for d in deaths] + [[0.0, np.inf]], []])
    grid = np.linspace(0.0, 1.0, 101)
    metrics = {n: {"betti_0": float(len(deaths))} for n in names}
    curves = {n: np.zeros((2, 101)) for n in names}
    TopologyReport(names, metrics, {n: dgms for n in names}, curves, grid, epoch=epoch, step=step).save(folder)


def test_report_notes_bars_beyond_the_fixed_range_and_gives_each_measurement_a_row(tmp_path, monkeypatch):
    """The range is fixed by the first measurement; a later one's longer bars are counted in a note, as in
    TensorBoard, and two measurements in one epoch (val_check_interval) are two rows of the heat map."""
    for epoch, step, deaths in ((0, 5, [0.05, 0.1]), (0, 10, [0.1, 0.5]), (1, 15, [0.1, 0.5, 0.8])):
        _save(tmp_path / "run" / "topology", ["a"], epoch, step, deaths)
    calls: dict[str, list] = {"curves": [], "evolution": []}
    curves, evolution = plotting.plot_betti_curves, plotting.plot_betti_evolution

    def spy_curves(*args, **kwargs):
        calls["curves"].append(kwargs)
        return curves(*args, **kwargs)

    def spy_evolution(*args, **kwargs):
        calls["evolution"].append((args, kwargs))
        return evolution(*args, **kwargs)

    monkeypatch.setattr(plotting, "plot_betti_curves", spy_curves)
    monkeypatch.setattr(plotting, "plot_betti_evolution", spy_evolution)
    render_report(tmp_path / "run")
    assert [c["note"] for c in calls["curves"]] == ["2 bars end beyond 0.12 →"]  # 0.5 and 0.8 > 1.2 * 0.1
    ((args, kwargs),) = calls["evolution"]
    assert list(args[0]) == [0, 0, 1]
    assert len(args[1]) == 3
    assert list(kwargs["steps"]) == [5, 10, 15]


def test_layers_whose_names_share_a_file_name_get_a_figure_each(tmp_path):
    names = ["a b", "a_b", "a$b$"]
    for epoch in range(2):
        _save(tmp_path / "run" / "topology", names, epoch, epoch, [0.3])
    (page,) = render_report(tmp_path / "run")
    files = sorted(p.name for p in page.parent.glob("*_betti_curves.png"))
    assert len(files) == 3
    assert page.read_text().count("_betti_curves.png") == 3
