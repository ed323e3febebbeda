"""The examples run as written (their quick versions), within CI's time budget."""

from __future__ import annotations

import importlib.util
import math
import sys
import warnings
from pathlib import Path
from types import ModuleType

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_the_transformer_text_example_runs_and_measures_its_sequence_layers(tmp_path):
    example = _load("transformer_text")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        monitor = example.main(["--quick", "--logdir", str(tmp_path)])
    assert [h["step"] for h in monitor.history] == [1, 3]  # two validation runs per epoch, each measured
    report = monitor.last_report
    assert report.layers == ["embed", "encoder", "head", "output"]  # ids and the position table left out
    assert all(math.isfinite(v) for layer in report.layers for v in report.metrics[layer].values())
    assert list(tmp_path.rglob("events.out.tfevents.*"))
