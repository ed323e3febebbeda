import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).with_name("ddp_script.py")


def _run(tmp_path: Path, *args: str) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=300,  # a deadlock fails here instead of hanging the suite
        env=env,
        cwd=SCRIPT.parents[1],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def _ranks(tmp_path: Path, prefix: str = "") -> tuple[dict, dict]:
    """What ``ddp_script.py`` wrote on rank 0 and rank 1."""
    rank0, rank1 = (json.loads((tmp_path / f"{prefix}rank{r}.json").read_text()) for r in (0, 1))
    return rank0, rank1


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="gloo DDP test runs on POSIX")
def test_two_process_ddp_logs_identical_keys_and_values_on_every_rank_and_stops_together(tmp_path):
    _run(tmp_path)
    rank0, rank1 = _ranks(tmp_path)
    assert rank0["metrics"], "nothing was logged"
    assert "topo/score" in rank0["metrics"]
    assert "topo/hidden/id_twonn" in rank0["metrics"]
    assert rank0["metrics"] == rank1["metrics"]
    # EarlyStopping on topo/score stops both ranks together after one epoch without improvement
    assert rank0["history_epochs"] == rank1["history_epochs"] == [0, 1]
    assert rank0["stopped_epoch"] == rank1["stopped_epoch"] == 1
    # samples of both ranks were gathered: 24 per rank requested, rank 1 only has 17
    assert rank0["n_samples"] == rank1["n_samples"] == 24 + 17
    # the ranks shared the layers: exactly the values of the same examples measured in one process
    assert rank0["reference"] == {"same_values": True, "same_score": True}
    # drawn from the shared counter, one layer at a time: the two ranks measured every layer once between them
    assert len(rank0["drawn"]) == len(rank1["drawn"]) == 2
    every = rank0["measured_layers"]
    assert every >= 3
    assert [a + b for a, b in zip(rank0["drawn"], rank1["drawn"], strict=True)] == [every, every]


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="gloo DDP test runs on POSIX")
def test_a_fixed_share_per_rank_as_across_machines_gives_the_same_values(tmp_path):
    _run(tmp_path, "fixed")
    rank0, rank1 = _ranks(tmp_path, "fixed_")
    assert rank0["drawn"] == rank1["drawn"] == []
    assert rank0["metrics"] == rank1["metrics"]
    assert rank0["reference"] == {"same_values": True, "same_score": True}


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="gloo DDP test runs on POSIX")
def test_metrics_under_two_process_ddp_equal_the_functional_result_on_all_batches(tmp_path):
    import ripser
    import skdim
    import torch

    from tests._models import TinyNet, make_data

    _run(tmp_path, "metrics")
    rank0, rank1 = _ranks(tmp_path, "metrics_")
    assert rank0["computed"] == rank1["computed"]
    model = TinyNet()
    model.load_state_dict({k: torch.tensor(v) for k, v in rank0["state"].items()})
    with torch.no_grad():
        h = torch.cat([model.hidden(model.encoder(make_data(n=30, seed=20 + r).tensors[0])) for r in (0, 1)])
    # the metrics saw both ranks' batches: compare with ripser.py and scikit-dimension on all 60 rows
    x = h.double().numpy()
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    d /= np.quantile(d[np.triu_indices(len(d), 1)], 0.9)
    for q, dgm in enumerate(ripser.ripser(d, maxdim=1, distance_matrix=True)["dgms"]):
        life = dgm[np.isfinite(dgm[:, 1])] @ np.array([-1.0, 1.0])
        assert rank0["computed"][f"m/total_persistence_{q}"] == pytest.approx(life.sum(), rel=1e-4), q
    reference = skdim.id.TwoNN(discard_fraction=0.1).fit(x).dimension_
    assert rank0["computed"]["m/id_twonn"] == pytest.approx(reference, rel=1e-5)


def test_ranks_get_the_layers_longest_first_to_the_least_loaded_rank():
    from lightning_topo.monitor.ddp import assign_layers

    layers = ["a", "b", "c", "d", "e", "f"]
    # first measurement: nothing known, one layer each in turn
    assert assign_layers(layers, {}, 2) == {"a": 0, "b": 1, "c": 0, "d": 1, "e": 0, "f": 1}
    # round robin on these costs would give 4 + 3 + 2 = 9 against 3 + 2 + 2 = 7
    costs = {"a": 4.0, "b": 3.0, "c": 3.0, "d": 2.0, "e": 2.0, "f": 2.0}
    owners = assign_layers(layers, costs, 2)
    loads = [sum(costs[a] for a, r in owners.items() if r == rank) for rank in (0, 1)]
    assert loads == [8.0, 8.0]
    # a new layer counts as the costliest known one
    owners = assign_layers([*layers, "g"], costs, 3)
    assert sorted(owners) == sorted([*layers, "g"])
    assert owners["g"] != owners["a"]


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="gloo DDP test runs on POSIX")
@pytest.mark.parametrize("compute", ["sync", "async"])
def test_ddp_leaves_out_on_every_rank_a_default_layer_that_one_rank_leaves_out(tmp_path, compute):
    _run(tmp_path, "skipped", compute)
    assert list((tmp_path / f"tb_{compute}").glob("version_*/topology/epoch_0_step_*.json"))  # save_diagrams=True
    rank0, rank1 = _ranks(tmp_path, f"skipped_{compute}_")
    if compute == "sync":
        assert rank0["metrics"] == rank1["metrics"]
        assert "topo/hidden/betti_0" in rank0["metrics"]
        assert not any(k.startswith("topo/tokens/") for k in rank0["metrics"])
        assert rank0["layers"] == rank1["layers"]
    assert "tokens" not in rank0["layers"]
    assert "hidden" in rank0["layers"]
