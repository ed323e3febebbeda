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
