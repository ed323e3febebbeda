"""Shared helpers of the benchmarks: timing and reproducible clouds."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median wall time of ``repeats`` calls and the last result."""
    times = []
    out: object = None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def cloud(kind: str, n: int, dim: int, seed: int = 0) -> np.ndarray:
    """A Gaussian cloud, or a noisy unit circle rotated into ``dim`` dimensions."""
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        return rng.normal(size=(n, dim))
    t = rng.uniform(0, 2 * np.pi, n)
    x = np.zeros((n, dim))
    x[:, 0], x[:, 1] = np.cos(t), np.sin(t)
    x += 0.05 * rng.normal(size=(n, dim))
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    return x @ q
