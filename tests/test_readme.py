"""Every Python block of the README runs as it stands, and its Trainer example leaves a run that
`lightning-topo report` reads."""

import re
import warnings
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def test_the_readme_has_its_examples():
    assert len(BLOCKS) >= 5
    assert any("TopologyMonitor(" in block and "trainer.fit(" in block for block in BLOCKS)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs_as_written(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # whatever a block writes (logs/) lands here
    code = BLOCKS[index]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's hints about workers and logging intervals
        exec(compile(code, f"README.md python block {index + 1}", "exec"), {"__name__": "__readme__"})
    if "trainer.fit(" in code and "logs" in code:
        from lightning_topo.static_report import load_run, render_report

        (page,) = render_report("logs")
        run = load_run(page.parent.parent)
        assert [r.epoch for r in run.reports] == [0, 1]
        assert {"val/loss", "val/acc", "topo/score"} <= set(run.metrics)
        assert len(list(page.parent.glob("layer*_fc1_betti_curves.png"))) == 1
