"""`TopologyReport.save` / `TopologyReport.load`: every saved field comes back, and the JSON file is valid JSON."""

import json
import math

import numpy as np
import pytest

from lightning_topo import PersistenceDiagrams, TopologyReport


def _report() -> TopologyReport:
    dgms = PersistenceDiagrams([[[0.0, 0.1], [0.0, np.inf]], [[0.05, 0.12]]])
    return TopologyReport(
        ["a", "b"],
        {"a": {"betti_0": 1.0, "id_twonn": math.nan}, "b": {"betti_0": 2.0, "id_twonn": math.inf}},
        {"a": dgms},
        {"a": np.ones((2, 5))},
        np.linspace(0.0, 1.0, 5),
        problems={"b": {"nan": "bad"}},
        n_samples=10,
        epoch=2,
        step=7,
        score=math.nan,
        score_problem="the last hidden layer could not be measured",
        class_metrics={"a": {0: {"betti_0": 1.0, "id_twonn": -math.inf}}},
        class_counts={0: 5, 1: 5},
        per_class=True,
        class_betti_curves={"a": {0: np.full((2, 5), 3), 1: np.arange(10).reshape(2, 5)}},
        ph_bounds={"a": math.inf},
    )


def test_a_saved_report_loads_back_its_score_problem_class_curves_and_non_finite_values(tmp_path):
    report = _report()
    loaded = TopologyReport.load(report.save(tmp_path))
    assert loaded.score_problem == "the last hidden layer could not be measured"
    assert sorted(loaded.class_betti_curves) == ["a"]
    assert sorted(loaded.class_betti_curves["a"]) == [0, 1]
    np.testing.assert_array_equal(loaded.class_betti_curves["a"][0], np.full((2, 5), 3))
    np.testing.assert_array_equal(loaded.class_betti_curves["a"][1], np.arange(10).reshape(2, 5))
    assert math.isnan(loaded.score)
    assert math.isnan(loaded.metrics["a"]["id_twonn"])
    assert loaded.metrics["b"] == {"betti_0": 2.0, "id_twonn": math.inf}
    assert loaded.class_metrics == {"a": {0: {"betti_0": 1.0, "id_twonn": -math.inf}}}
    assert loaded.ph_bounds == {"a": math.inf}
    assert (loaded.epoch, loaded.step, loaded.n_samples, loaded.class_counts) == (2, 7, 10, {0: 5, 1: 5})


def test_a_saved_report_is_valid_json_without_nan_or_infinity(tmp_path):
    path = _report().save(tmp_path)

    def refuse(name: str) -> float:
        raise ValueError(f"Expected valid JSON but got the constant {name}.")

    record = json.loads(path.read_text(), parse_constant=refuse)
    assert record["scalars"]["topo/b/id_twonn"] == "inf"
    assert record["scalars"]["topo/a/id_twonn"] is None


def test_load_reads_the_json_beside_an_npz_path_and_refuses_other_files_clearly(tmp_path):
    report = TopologyReport(["a"], {"a": {"id_twonn": 2.5}}, epoch=1)
    json_path = report.save(tmp_path)
    assert TopologyReport.load(json_path.with_suffix(".npz")).metrics["a"]["id_twonn"] == 2.5
    other = tmp_path / "other.json"
    other.write_bytes(b"\x9d\x00 not json")
    with pytest.raises(ValueError, match=r"is not a report written by TopologyReport\.save"):
        TopologyReport.load(other)
    for content in ('{"a": 1}', "[1, 2]"):  # JSON, but not a report
        other.write_text(content)
        with pytest.raises(ValueError, match="it has no layers and scalars"):
            TopologyReport.load(other)
