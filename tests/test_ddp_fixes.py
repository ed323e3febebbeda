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


def _drawn_one_at_a_time(samples: dict[str, LayerSample], log: list[str]):  # type: ignore[no-untyped-def]
    order = iter(list(samples))

    def take() -> tuple[str, LayerSample] | None:
        alias = next(order, None)
        log.append(str(alias))
        return None if alias is None else (alias, samples[alias])

    return take


def test_layers_drawn_one_at_a_time_equal_a_fixed_share_in_this_process_and_on_workers():
    """What a DDP rank on one machine runs: it draws the next layer when it has a free worker."""
    gen = torch.Generator().manual_seed(0)
    samples = {f"l{i}": LayerSample(torch.randn(300, 8 + i, generator=gen)) for i in range(5)}
    options = build_options(n_samples=300, maxdim=1)
    fixed = MeasurementQueue(options, MonitorOptions(workers=0))
    reference, _ = fixed.measure_share(samples, None)
    fixed.close()
    for workers in (0, 2):
        queue = MeasurementQueue(options, MonitorOptions(workers=workers))
        log: list[str] = []
        results, elapsed = queue.measure_taken(_drawn_one_at_a_time(samples, log), None, len(samples))
        queue.close()
        assert set(results) == set(samples)
        assert all(results[a].metrics == reference[a].metrics for a in samples)
        assert elapsed > 0
        # it asked for one more layer than there were, once, and never again after the "no more"
        assert log == [*samples, "None"]
