"""The reproductions of the papers' findings (``examples/reproduce``): their quick versions run, and
``docs/REPRODUCTIONS.md`` quotes exactly what the full runs wrote into ``docs/reproductions/*.json``."""

from __future__ import annotations

import copy
import importlib
import json
import sys
import warnings
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "examples" / "reproduce"
RESULTS = ROOT / "docs" / "reproductions"
DOCUMENT = ROOT / "docs" / "REPRODUCTIONS.md"
FINDINGS = [
    "magai_depth",
    "magai_generalization",
    "magai_adversarial",
    "suresh_cubical",
    "naitzat_betti",
    "ansuini_id",
]


@pytest.fixture(scope="module")
def scripts():
    """The scripts as modules (their folder on the path, as when they run)."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        yield {name: importlib.import_module(name) for name in [*FINDINGS, "common", "render"]}
    finally:
        sys.path.remove(str(SCRIPTS))


@pytest.mark.parametrize("name", FINDINGS)
def test_the_quick_version_runs_end_to_end_into_the_folder_it_is_given(scripts, name, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = scripts[name].main(["--quick", "--out", str(tmp_path)])
    written = json.loads((tmp_path / f"{name}.json").read_text())
    assert written == out
    assert written["quick"] is True
    assert written["verdict"] in ("agree", "partly", "disagree")
    assert written["criteria"]
    assert all((tmp_path / figure).is_file() for figure in written["figures"])
    assert written["quote"]["verdict"] == written["verdict"]


def test_the_document_quotes_every_number_from_the_json_files(scripts):
    render = scripts["render"]
    text = DOCUMENT.read_text()
    assert render.render(text, render.loader(RESULTS)) == text, "run python examples/reproduce/render.py"
    for name in FINDINGS:
        assert f"<!-- table {name}/" in text, name
        assert f"<!-- quote {name}/verdict -->" in text, name


def test_the_committed_results_are_full_runs_with_their_figures(scripts):
    for name in FINDINGS:
        result = json.loads((RESULTS / f"{name}.json").read_text())
        assert result["quick"] is False, name
        assert result["finding"] == name
        for figure in result["figures"]:
            assert (RESULTS / figure).is_file(), figure
            assert f"reproductions/{figure}" in DOCUMENT.read_text(), figure


def test_a_changed_number_in_a_json_file_changes_the_document(scripts):
    render = scripts["render"]
    text = DOCUMENT.read_text()
    load = render.loader(RESULTS)
    original = load("magai_generalization")
    changed = copy.deepcopy(original)
    changed["tables"]["correlations"]["rows"][0][2] = "0.123456 (0.5)"
    changed["quote"]["verdict"] = "a different verdict"
    rendered = render.render(text, lambda name: changed if name == "magai_generalization" else load(name))
    assert "0.123456 (0.5)" in rendered
    assert "a different verdict" in rendered
    assert rendered != text


def test_a_marker_naming_a_missing_table_or_quote_is_an_error(scripts):
    render = scripts["render"]
    with pytest.raises(KeyError, match="has no table 'nope'"):
        render.render("<!-- table x/nope -->\n<!-- /table -->", lambda name: {"tables": {}})
    with pytest.raises(KeyError, match="has no quote 'nope'"):
        render.render("<!-- quote x/nope --><!-- /quote -->", lambda name: {"quote": {}})


def test_magai_probes_leave_the_network_unchanged_and_min_max_scale_each_block(scripts):
    common = scripts["common"]
    net = common.digits_cnn(widths=(4, 4), pool_after=(1,), dense=(8,), generator_seed=0)
    x = torch.rand(20, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    probed = common.MagaiProbes(net, x)
    seen: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k, o)) for k, m in probed.probes.items()]
    with torch.no_grad():
        assert torch.equal(probed(x), net(x))
    for h in hooks:
        h.remove()
    with torch.no_grad():
        conv = net[0](x).mean(dim=(2, 3))  # the first block's maps, averaged over space
    expected = (conv - conv.min(dim=0).values) / (conv.max(dim=0).values - conv.min(dim=0).values)
    assert torch.allclose(seen["0"], expected, atol=1e-6)
    assert seen["input"].shape == (20, 64)  # the image is flattened, not averaged to its mean intensity
    for k, v in seen.items():
        assert float(v.min()) >= -1e-6, k
        assert float(v.max()) <= 1 + 1e-6, k
