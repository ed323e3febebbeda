"""Regressions of the activation capture: memory of kept feature maps, variable shapes, 1-d conv outputs, masks."""

from __future__ import annotations

import math
import warnings
from typing import Any

import pytest
import torch
from torch import nn

from lightning_topo.capture import ActivationCapture, reduce_samples
from lightning_topo.options import build_options


def _run(capture: ActivationCapture, model: nn.Module, batches: list[Any]) -> None:
    capture.start()
    with torch.no_grad():
        for batch in batches:
            capture.begin_batch(batch)
            model(batch if isinstance(batch, torch.Tensor) else batch[0])
            capture.end_batch()


def test_kept_feature_maps_hold_only_the_kept_examples_not_the_whole_batch():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1))
    capture = ActivationCapture(model, {"0": "conv"}, build_options(n_samples=64, cubical_samples=2), quota=64)
    _run(capture, model, [torch.rand(64, 1, 8, 8)])
    (kept,) = capture.volumes["conv"]
    assert kept.shape == (2, 4, 8, 8)
    assert kept.untyped_storage().nbytes() == kept.numel() * kept.element_size()  # 2 maps, not 64
    capture.stop()


def test_feature_maps_of_another_size_in_a_later_batch_are_left_out_with_a_warning_never_an_error():
    from lightning_topo import analyze
    from tests._models import SmallCNN

    g = torch.Generator().manual_seed(0)
    batches = [(torch.rand(4, 1, 12, 12, generator=g), torch.zeros(4, dtype=torch.long)) for _ in range(2)]
    batches.insert(1, (torch.rand(4, 1, 10, 10, generator=g), torch.zeros(4, dtype=torch.long)))
    with pytest.warns(UserWarning, match=r"feature maps have shape \(6, 10, 10\) in this batch but \(6, 12, 12\)"):
        report = analyze(SmallCNN(), batches, layers=["conv1"], n_samples=12, cubical_samples=8, maxdim=0, descriptors=["betti"])
    assert math.isfinite(report.metrics["conv1"]["cubical_complexity"])
    assert math.isfinite(report.metrics["conv1"]["betti_0"])


def test_ddp_merge_keeps_the_feature_maps_of_the_first_shape_only():
    from lightning_topo.monitor.ddp import merge_parts

    points = torch.randn(4, 3)
    parts = [
        (points, None, {}, torch.rand(2, 6, 12, 12)),
        (points, None, {}, torch.rand(2, 6, 10, 10)),
        (points, None, {}, torch.rand(1, 6, 12, 12)),
    ]
    with pytest.warns(UserWarning, match="different shapes"):
        merged = merge_parts(parts)
    assert merged.points is not None and merged.points.shape == (12, 3)
    assert merged.volumes is not None and merged.volumes.shape == (3, 6, 12, 12)
    assert not merged.problems
