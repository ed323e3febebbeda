"""What the device path costs in host synchronisations and device memory, counted on the fake device.

Run: ``python benchmarks/device_counts.py [--sizes 300,1000]``. Prints a Markdown table for ``benchmarks/RESULTS.md``.
Counted, not timed: ``tests/fakedevice.py`` runs every device branch on CPU data that reports ``cuda:0`` and
counts the host synchronisations (reads: ``item``/``float``/``bool``, data-dependent sizes, 0-d tensor indices;
and the copies either way, which wait for the device too) and the peak memory of the device tensors alive (in
``n x n`` float64 matrices, beyond the inputs). These counts are what a GPU would do; its timings need a GPU.

Only public functions that exist since the first release are called, so the same script measures an older
version: copy it and ``tests/fakedevice.py`` into that checkout and run it there (it imports the package of the
checkout it sits in).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from lightning_topo import datasets
from lightning_topo import functional as F
from lightning_topo.engine import LayerSample, prepare_layer
from lightning_topo.options import MeasureOptions
from tests.fakedevice import fake_device


def _cases(n: int) -> list[tuple[str, Callable[[torch.Tensor, torch.Tensor], Any]]]:
    k = min(100, n // 3)
    return [
        ("`h0_mst_deaths(d)`", lambda x, d: F.h0_mst_deaths(d)),
        (
            f"`subsample(d, {k}, 'farthest', distance_matrix=True)`",
            lambda x, d: F.subsample(d, k, "farthest", distance_matrix=True),
        ),
        (f"`subsample(x, {k}, 'farthest')`", lambda x, d: F.subsample(x, k, "farthest")),
        (
            "`intrinsic_dimension(d, 'phdim', distance_matrix=True)`",
            lambda x, d: F.intrinsic_dimension(d, "phdim", distance_matrix=True, n_min=n // 4, n_max=n),
        ),
        ("`distance_scale(d)` (quantile, validated)", lambda x, d: F.distance_scale(d)),
        ("`pairwise_distances(x, normalize='quantile')`", lambda x, d: F.pairwise_distances(x, normalize="quantile")),
        (
            "`pairwise_distances(x, 'cosine', normalize='quantile')`",
            lambda x, d: F.pairwise_distances(x, metric="cosine", normalize="quantile"),
        ),
        ("`prepare_layer`, defaults", lambda x, d: prepare_layer(LayerSample(x), MeasureOptions())),
        (
            f"`prepare_layer`, `ph_samples={k}`",
            lambda x, d: prepare_layer(LayerSample(x), MeasureOptions(ph_samples=k)),
        ),
        (
            "`prepare_layer`, + `id_mle`, `id_phdim`",
            lambda x, d: prepare_layer(
                LayerSample(x), MeasureOptions(descriptors=("betti", "id_twonn", "id_mle", "id_phdim"))
            ),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="300,1000", help="comma-separated numbers of points")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        "| call | n | reads (item, bool, sizes) | copies to host (bytes) | copies to device | host syncs in all | "
        "peak device memory beyond the inputs (n x n float64) |"
    )
    print("|---|---|---|---|---|---|---|")
    for n in sizes:
        x = datasets.torus(n, noise=0.05, ambient_dim=64, generator=torch.Generator().manual_seed(0)).double()
        d = F.pairwise_distances(x)
        for name, call in _cases(n):
            with fake_device() as counters:
                x_dev, d_dev = x.to("cuda"), d.to("cuda")
                counters.reset()
                call(x_dev, d_dev)
                extra = (counters.peak_bytes - counters.live_bytes) / (8 * n * n)
                print(
                    f"| {name} | {n} | {counters.syncs} | {len(counters.to_host)} ({counters.bytes_to_host:,}) | "
                    f"{len(counters.to_device)} | {counters.host_syncs} | {extra:.2f} |"
                )
                del x_dev, d_dev


if __name__ == "__main__":
    main()
