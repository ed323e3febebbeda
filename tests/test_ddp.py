import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("ddp_script.py")


@pytest.mark.skipif(sys.platform == "win32", reason="gloo DDP test runs on POSIX")
def test_two_process_ddp_logs_identical_keys_and_values_on_every_rank(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,  # a deadlock fails here instead of hanging the suite
        env=env,
        cwd=SCRIPT.parents[1],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0 = json.loads((tmp_path / "rank0.json").read_text())
    rank1 = json.loads((tmp_path / "rank1.json").read_text())
    assert rank0["metrics"], "nothing was logged"
    assert "topo/score" in rank0["metrics"]
    assert "topo/hidden/id_twonn" in rank0["metrics"]
    assert rank0["metrics"] == rank1["metrics"]
    assert rank0["history_epochs"] == rank1["history_epochs"] == [0, 1]
    # samples of both ranks were gathered: 24 per rank requested, rank 1 only has 17
    assert rank0["n_samples"] == rank1["n_samples"] == 24 + 17
