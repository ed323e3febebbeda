"""Regressions of the DDP paths that need no process group."""

from __future__ import annotations

import torch

from lightning_topo.engine import LayerSample
from lightning_topo.monitor.queue import MeasurementQueue
from lightning_topo.options import MonitorOptions, build_options


def test_a_failing_layer_of_a_rank_s_share_is_a_problem_not_an_exception_even_with_on_error_raise():
    """Raising on the owning rank only would leave the other ranks waiting in the gather; every rank raises later,
    in check_problems, from the shared report."""
    options = build_options(n_samples=20, maxdim=0, on_error="raise")
    queue = MeasurementQueue(options, MonitorOptions(workers=0))
    bad = LayerSample(torch.randn(20, 3), None, {}, torch.rand(3, 2, 2, 2, 2, 2))  # 5-D maps: no cubical persistence
    good = LayerSample(torch.randn(20, 3))
    results, _ = queue.measure_share({"bad": bad, "good": good}, None)
    assert "failed" in results["bad"].problems
    assert "volume" in results["bad"].problems["failed"]
    assert not results["good"].problems
    queue.close()
