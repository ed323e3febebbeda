"""The Topology dashboard: the summaries the monitor writes, the plugin's routes on a real TensorBoard, the page in a
real browser."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import urllib.parse
from argparse import Namespace
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from lightning_topo import TopologyMonitor, TopologyReport
from lightning_topo.dashboard import PLUGIN_NAME, add_report, report_payload
from lightning_topo.dashboard.plugin import DEFAULT_SAMPLES, TopologyPlugin, TopologyPluginLoader
from lightning_topo.functional import betti_curve, vietoris_rips
from tests._models import DEFAULT_KEYS, TinyNet, trainer
from tests._web import CHROMIUM, Chromium, get, get_json, in_plugin, tensorboard

LAYERS = ["input", "encoder", "hidden", "head", "output"]
# a run and layers whose names a page must show as text, never interpret
ODD_RUN = "<img src=x onerror=\"top.ltPwned=1\">&'run'"
ODD_LAYERS = ["input", "<b>bold</b>", "a&b <i>"]
N_ODD = 12  # more measurements than TensorBoard keeps by default for a plugin it does not know (10)


def _circle_report(k: int) -> TopologyReport:
    """A measurement of a noisy circle (one long H1 bar) and of a line segment (none), computed by the engine."""
    gen = torch.Generator().manual_seed(k)
    angles = torch.rand(40, generator=gen) * 2 * math.pi
    circle = torch.stack([angles.cos(), angles.sin()], dim=1) + 0.02 * torch.randn(40, 2, generator=gen)
    segment = torch.stack([torch.linspace(0, 1, 40), torch.zeros(40)], dim=1)
    grid = np.linspace(0, 2, 50)
    clouds = {"input": segment, ODD_LAYERS[1]: circle, ODD_LAYERS[2]: circle}
    diagrams = {name: vietoris_rips(x, maxdim=1) for name, x in clouds.items()}
    metrics = {name: {"n_h1_bars": float(len(d[1])), "scale": float(k)} for name, d in diagrams.items()}
    return TopologyReport(
        layers=ODD_LAYERS,
        metrics=metrics,
        diagrams=diagrams,
        betti_curves={name: betti_curve(d, grid) for name, d in diagrams.items()},
        grid=grid,
        n_samples=40,
        epoch=k,
        step=10 * k,
    )


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    """A tiny training run whose monitor saves no files (``save_diagrams=False``, the default; no figures or workers,
    which the dashboard does not use, to keep it fast), a run written outside a Trainer with odd names, and a valid
    run *outside* the logdir."""
    from torch.utils.tensorboard import SummaryWriter

    root = tmp_path_factory.mktemp("dashboard")
    logger = TensorBoardLogger(root, name="tiny")
    monitor = TopologyMonitor(n_samples=48, log_figures=False, workers=0)  # save_diagrams stays False
    trainer(max_epochs=2, logger=logger, callbacks=[monitor]).fit(TinyNet())
    reports = [_circle_report(k) for k in range(N_ODD)]
    with SummaryWriter(str(root / ODD_RUN)) as writer:
        for report in reports:
            add_report(writer, report)
    outside = tmp_path_factory.mktemp("outside")
    with SummaryWriter(str(outside / "run")) as writer:
        add_report(writer, reports[0])
    run = Path(logger.log_dir).relative_to(root).as_posix()
    return SimpleNamespace(root=root, run=run, logger=logger, monitor=monitor, reports=reports, outside=outside)


def _installed_plugin() -> None:
    points = [e for e in metadata.entry_points(group="tensorboard_plugins") if e.name == PLUGIN_NAME]
    if not points:
        pytest.fail(
            "TensorBoard finds its plugins through installed entry points, and lightning-topo's is not installed in "
            f"{sys.executable}: run `pip install -e .` (or use a virtual environment that has it)."
        )


@pytest.fixture(
    scope="module",
    params=["auto", pytest.param("false", marks=pytest.mark.slow)],
    ids=["load_fast=auto", "load_fast=false"],
)
def server(request, logdir):
    """TensorBoard as users start it (``--load_fast=auto``: the Rust data server where installed) and, in the slow
    suite, with the Python loader."""
    _installed_plugin()
    with tensorboard(logdir.root, "--load_fast", request.param, wait_for_runs=2) as base:
        yield base


def _route(base: str, name: str, **params: object) -> str:
    return f"{base}/data/plugin/{PLUGIN_NAME}/{name}?{urllib.parse.urlencode(params)}"


# the summaries ------------------------------------------------------------------------------------------------------
def test_the_monitor_writes_one_summary_per_measurement_without_save_diagrams(logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(logdir.logger.log_dir, size_guidance={"tensors": 0})
    acc.Reload()
    events = acc.Tensors("topo")
    assert acc.SummaryMetadata("topo").plugin_data.plugin_name == PLUGIN_NAME
    records = [json.loads(e.tensor_proto.string_val[0]) for e in events]
    assert [r["epoch"] for r in records] == [0, 1]
    assert [r["step"] for r in records] == [e.step for e in events]
    assert events[0].step < events[1].step
    record = records[-1]
    assert record == json.loads(json.dumps(report_payload(logdir.monitor.last_report)))
    assert not (Path(logdir.logger.log_dir) / "topology").exists()  # the dashboard does not need save_diagrams


def test_payload_keeps_the_diagrams_to_float32_precision_with_null_for_essential_bars():
    report = _circle_report(0)
    payload = json.loads(json.dumps(report_payload(report), allow_nan=False))
    for layer in ("input", ODD_LAYERS[1]):
        for q, dgm in enumerate(report.diagrams[layer]):
            stored = payload["diagrams"][layer][q]
            assert len(stored) == len(dgm)
            for (birth, death), (b, d) in zip(dgm.tolist(), stored, strict=True):
                assert b == pytest.approx(birth, rel=1e-6, abs=1e-12)
                if math.isinf(death):
                    assert d is None
                else:
                    assert d == pytest.approx(death, rel=1e-6)
    assert payload["betti_curves"]["input"] == report.betti_curves["input"].tolist()


def test_add_report_refuses_an_object_that_cannot_write_summaries():
    with pytest.raises(TypeError, match=r"Expected a torch\.utils\.tensorboard\.SummaryWriter"):
        add_report(object(), _circle_report(0))


def test_importing_the_plugin_imports_neither_torch_nor_lightning():
    """TensorBoard imports every installed plugin when it starts: the dashboard must not make that slow."""
    code = "import sys, lightning_topo.dashboard.plugin; print(sorted({'torch', 'lightning'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_loader_keeps_many_measurements_unless_the_user_says_otherwise():
    flags = Namespace(samples_per_plugin={"images": 5})
    TopologyPluginLoader().fix_flags(flags)
    assert flags.samples_per_plugin == {"images": 5, PLUGIN_NAME: DEFAULT_SAMPLES}
    flags = Namespace(samples_per_plugin={PLUGIN_NAME: 0})
    TopologyPluginLoader().fix_flags(flags)
    assert flags.samples_per_plugin == {PLUGIN_NAME: 0}


# the routes, in process: nothing is read for a refused request --------------------------------------------------
class _CountingProvider:
    """TensorBoard's own data provider over the logdir, counting the reads."""

    def __init__(self, root: Path) -> None:
        from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer

        multiplexer = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance={PLUGIN_NAME: 0})
        multiplexer.AddRunsFromDirectory(str(root))
        multiplexer.Reload()
        self._inner = data_provider.MultiplexerDataProvider(multiplexer, str(root))
        self.reads = 0

    def list_tensors(self, *args, **kwargs):
        return self._inner.list_tensors(*args, **kwargs)

    def read_tensors(self, *args, **kwargs):
        self.reads += 1
        return self._inner.read_tensors(*args, **kwargs)


@pytest.fixture(scope="module")
def client(logdir):
    from tensorboard.backend import application
    from tensorboard.plugins import base_plugin
    from werkzeug.test import Client
    from werkzeug.wrappers import Response

    provider = _CountingProvider(logdir.root)
    plugin = TopologyPlugin(base_plugin.TBContext(data_provider=provider, logdir=str(logdir.root)))
    app = application.TensorBoardWSGI([plugin])
    return SimpleNamespace(client=Client(app, Response), provider=provider)


def _bad_requests(logdir) -> list[tuple[str, dict[str, object], int]]:
    outside_rel = f"../{logdir.outside.name}/run"
    return [
        ("index", {"run": outside_rel, "tag": "topo"}, 400),  # a real run, but outside the logdir
        ("index", {"run": str(logdir.outside / "run"), "tag": "topo"}, 400),  # the same, as an absolute path
        ("index", {"run": f"{logdir.run}/../{logdir.run.split('/')[-1]}", "tag": "topo"}, 400),
        ("index", {"run": "..", "tag": "topo"}, 400),
        ("index", {"run": "nope", "tag": "topo"}, 400),
        ("index", {"run": logdir.run, "tag": "../topo"}, 400),
        ("index", {"run": logdir.run, "tag": "nope"}, 400),
        ("index", {"tag": "topo"}, 400),
        ("layer", {"run": outside_rel, "tag": "topo", "step": 0, "layer": "input"}, 400),
        ("layer", {"run": logdir.run, "tag": "topo", "step": "x", "layer": "input"}, 400),
        ("layer", {"run": logdir.run, "tag": "topo", "step": 0}, 400),
    ]


def test_refused_requests_read_nothing(client, logdir):
    for route, params, code in _bad_requests(logdir):
        response = client.client.get(f"/data/plugin/{PLUGIN_NAME}/{route}", query_string=params)
        assert response.status_code == code, (route, params, response.get_data(as_text=True))
        assert b"layers" not in response.get_data()
    assert client.provider.reads == 0
    ok = client.client.get(f"/data/plugin/{PLUGIN_NAME}/index", query_string={"run": logdir.run, "tag": "topo"})
    assert ok.status_code == 200
    assert client.provider.reads == 1


def test_in_process_index_covers_every_measurement_of_both_runs(client, logdir):
    runs = json.loads(client.client.get(f"/data/plugin/{PLUGIN_NAME}/runs").get_data())["runs"]
    assert runs == sorted([{"run": logdir.run, "tags": ["topo"]}, {"run": ODD_RUN, "tags": ["topo"]}], key=str)
    index = json.loads(
        client.client.get(f"/data/plugin/{PLUGIN_NAME}/index", query_string={"run": ODD_RUN, "tag": "topo"}).get_data()
    )
    assert len(index["measurements"]) == N_ODD


def test_a_malformed_measurement_counts_as_unreadable_instead_of_failing_the_index(tmp_path):
    """One document whose layer entries are not objects is skipped and counted; the rest of the run is served."""
    from tensorboard.backend import application
    from tensorboard.plugins import base_plugin
    from torch.utils.tensorboard import SummaryWriter
    from werkzeug.test import Client
    from werkzeug.wrappers import Response

    from lightning_topo.dashboard import report_summary

    good = TopologyReport(["a"], {"a": {"betti_0": 1.0}}, epoch=0, step=1, score=math.nan, score_problem="why")
    bad = [
        {"version": 1, "layers": ["a"], "metrics": {"a": 5}},
        {"version": 1, "layers": ["a"], "metrics": {"a": {}}, "problems": {"a": "text"}},
        {"version": 1, "layers": ["a"], "metrics": {"a": {}}, "problems": {"a": {"kind": 3}}},
    ]
    with SummaryWriter(str(tmp_path / "r")) as writer:
        add_report(writer, good, step=1)
        for step, document in enumerate(bad, start=2):
            summary = report_summary(TopologyReport(["a"], {"a": {}}))
            summary.value[0].tensor.string_val[0] = json.dumps(document).encode()
            writer.file_writer.add_summary(summary, step)
    provider = _CountingProvider(tmp_path)
    plugin = TopologyPlugin(base_plugin.TBContext(data_provider=provider, logdir=str(tmp_path)))
    client = Client(application.TensorBoardWSGI([plugin]), Response)
    response = client.get(f"/data/plugin/{PLUGIN_NAME}/index", query_string={"run": "r", "tag": "topo"})
    assert response.status_code == 200, response.get_data(as_text=True)
    index = json.loads(response.get_data())
    assert index["unreadable"] == len(bad)
    assert [m["step"] for m in index["measurements"]] == [1]
    assert index["measurements"][0]["score_problem"] == "why"
    assert report_payload(good)["score_problem"] == "why"
    assert index["measurements"][0]["layers"] == ["a"]  # the page asks only for a layer the measurement holds


# the routes on a real TensorBoard ---------------------------------------------------------------------------------
def test_tensorboard_lists_the_topology_tab_as_an_iframe_plugin(server):
    listing = get_json(f"{server}/data/plugins_listing")[PLUGIN_NAME]
    assert listing["enabled"] is True
    assert listing["tab_name"] == "Topology"
    assert listing["loading_mechanism"] == {"type": "IFRAME", "module_path": f"/data/plugin/{PLUGIN_NAME}/index.js"}
    status, body, headers = get(f"{server}/data/plugin/{PLUGIN_NAME}/index.js")
    assert status == 200
    assert headers["Content-Type"].startswith("application/javascript")
    assert b"export async function render()" in body
    status, body, _ = get(f"{server}/data/plugin/{PLUGIN_NAME}/style.css")
    assert status == 200
    assert b".betti-curve" in body


def test_runs_route_lists_the_runs_under_the_logdir_only(server, logdir):
    runs = get_json(_route(server, "runs"))["runs"]
    assert sorted(r["run"] for r in runs) == sorted([logdir.run, ODD_RUN])
    assert all(r["tags"] == ["topo"] for r in runs)


def test_index_route_agrees_with_the_scalars_in_the_event_file(server, logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    index = get_json(_route(server, "index", run=logdir.run, tag="topo"))
    assert index["layers"] == LAYERS
    assert index["descriptors"] == DEFAULT_KEYS
    assert [m["epoch"] for m in index["measurements"]] == [0, 1]
    assert index["measurements"][-1]["score"] == pytest.approx(logdir.monitor.last_report.score, rel=1e-6)
    acc = EventAccumulator(logdir.logger.log_dir, size_guidance={"scalars": 0})
    acc.Reload()
    for d in DEFAULT_KEYS:
        for i, layer in enumerate(LAYERS):
            logged = [e.value for e in acc.Scalars(f"topo/{layer}/{d}")]  # written by pl_module.log
            served = [row[i] for row in index["values"][d]]
            assert served == pytest.approx(logged, rel=2e-6, abs=1e-9), (layer, d)


def test_layer_route_serves_the_diagrams_and_curves_of_the_measurement(server, logdir):
    report = logdir.monitor.last_report
    step = get_json(_route(server, "index", run=logdir.run, tag="topo"))["measurements"][-1]["step"]
    for layer in LAYERS:
        data = get_json(_route(server, "layer", run=logdir.run, tag="topo", step=step, layer=layer))
        assert data["layer"] == layer
        assert data["source"] == ("head" if layer == "output" else layer)  # TinyNet returns the head's output
        assert data["betti_curves"] == report.betti_curves[layer].tolist()
        assert data["grid"] == pytest.approx(report.grid.tolist(), rel=1e-6, abs=1e-9)
        for q, dgm in enumerate(report.diagrams[layer]):
            served = np.array([[b, np.inf if d is None else d] for b, d in data["diagrams"][q]]).reshape(-1, 2)
            np.testing.assert_allclose(served, dgm, rtol=1e-6, atol=1e-9)
        assert data["metrics"] == pytest.approx(report.to_dict()[layer], rel=2e-6, nan_ok=True)


def test_a_circle_written_outside_a_trainer_shows_one_long_h1_bar_and_every_measurement(server):
    """Known shapes through the whole chain (writer, event file, TensorBoard, plugin): a circle has one long-lived
    1-cycle, a segment none; all 12 measurements are served although TensorBoard's default would keep 10."""
    index = get_json(_route(server, "index", run=ODD_RUN, tag="topo"))
    assert index["layers"] == ODD_LAYERS
    assert [m["step"] for m in index["measurements"]] == [10 * k for k in range(N_ODD)]
    assert [row[0] for row in index["values"]["scale"]] == [float(k) for k in range(N_ODD)]
    circle = get_json(_route(server, "layer", run=ODD_RUN, tag="topo", step=30, layer=ODD_LAYERS[1]))
    lifetimes = sorted(d - b for b, d in circle["diagrams"][1])
    assert lifetimes[-1] > 1.0 > 5 * (lifetimes[-2] if len(lifetimes) > 1 else 0.0)
    assert max(circle["betti_curves"][1]) >= 1
    segment = get_json(_route(server, "layer", run=ODD_RUN, tag="topo", step=30, layer="input"))
    assert segment["diagrams"][1] == []
    assert [d for _, d in segment["diagrams"][0]].count(None) == 1  # one component lives forever


def test_a_run_or_tag_pointing_out_of_the_logdir_gets_400(server, logdir):
    for route, params, code in _bad_requests(logdir):
        status, body, _ = get(_route(server, route, **params))
        assert status == code, (route, params, body)
        assert b"layers" not in body


def test_a_step_or_layer_not_in_the_run_gets_404_or_400(server, logdir):
    assert get(_route(server, "layer", run=logdir.run, tag="topo", step=10**9, layer="input"))[0] == 404
    step = get_json(_route(server, "index", run=logdir.run, tag="topo"))["measurements"][0]["step"]
    assert get(_route(server, "layer", run=logdir.run, tag="topo", step=step, layer="nope"))[0] == 400


# the page in a real browser ----------------------------------------------------------------------------------------
def _choose_run(page: Chromium, run: str) -> None:
    """Pick ``run`` in the page's run menu as a user would, and wait until its curves are drawn."""
    page.evaluate(
        in_plugin(
            f"const s = d.getElementById('lt-run'); d.body.dataset.ltReady = ''; s.value = {json.dumps(run)};"
            "s.dispatchEvent(new Event('change')); return true;"
        )
    )
    page.wait_for(in_plugin("return d.body.dataset.ltReady === '1';"))


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Chromium (Debian: apt-get install chromium)")
def test_the_topology_tab_draws_curves_diagram_profile_and_heat_map_in_a_browser(server, logdir):
    index = get_json(_route(server, "index", run=logdir.run, tag="topo"))
    with Chromium(width=1400, height=1000) as page:
        page.open(f"{server}/#{PLUGIN_NAME}")
        page.wait_for(in_plugin("return d.body.dataset.ltReady === '1';"))
        _choose_run(page, logdir.run)
        counts = page.evaluate(
            in_plugin(
                "const n = (s) => d.querySelectorAll(s).length;"
                "return {curves: n('path.betti-curve'), points: n('circle.diagram-point'),"
                " cells: n('rect.heatmap-cell'), profile: n('path.profile-line'),"
                " layer: d.getElementById('lt-layer').value, run: d.getElementById('lt-run').value};"
            )
        )
        assert counts["run"] == logdir.run
        step = index["measurements"][-1]["step"]
        data = get_json(_route(server, "layer", run=logdir.run, tag="topo", step=step, layer=counts["layer"]))
        assert counts["curves"] == len(data["betti_curves"]) == 2
        assert counts["points"] == sum(len(dgm) for dgm in data["diagrams"])
        assert counts["cells"] == len(LAYERS) * len(index["measurements"])
        assert counts["profile"] == len(index["measurements"])

        # hovering a point of the diagram shows its birth, death and lifetime
        where = page.evaluate(
            in_plugin(
                "const p = d.querySelector('circle.diagram-point[data-dim=\"1\"]') ||"
                " d.querySelector('circle.diagram-point');"
                "const r = p.getBoundingClientRect(), o = f.getBoundingClientRect();"
                "return {x: o.left + r.left + r.width / 2, y: o.top + r.top + r.height / 2, tip: p.dataset.tip};"
            )
        )
        page.move_mouse(where["x"], where["y"])
        shown = page.wait_for(in_plugin("const t = d.querySelector('.lt-tip'); return !t.hidden && t.textContent;"))
        assert shown == where["tip"]
        assert all(word in shown for word in ("birth", "death", "lifetime"))

        # the odd names arrive as text: the menus read exactly the names, and no element was made from them
        _choose_run(page, ODD_RUN)
        menu = "return [...d.getElementById('lt-{}').options].map((x) => x.textContent);"
        assert page.evaluate(in_plugin(menu.format("layer"))) == ODD_LAYERS
        assert sorted(page.evaluate(in_plugin(menu.format("run")))) == sorted([logdir.run, ODD_RUN])
        assert page.evaluate(in_plugin("return d.querySelectorAll('img, b, i').length;")) == 0
        assert page.evaluate("window.ltPwned === undefined")
        texts = page.evaluate(in_plugin("return [...d.querySelectorAll('svg text')].map((t) => t.textContent);"))
        assert ODD_LAYERS[2] in texts  # the heat map's row label
