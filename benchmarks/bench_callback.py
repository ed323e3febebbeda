"""The callback's cost, as ratios measured in one run.

Run: ``python benchmarks/bench_callback.py [--repeats R]``. Prints Markdown tables for ``benchmarks/RESULTS.md``:

1. epoch-end time of ``TopologyMonitor`` against the sum of the raw giotto-ph calls on the same distance
   matrices (the irreducible persistence work): the orchestration overhead;
2. a validation epoch of the bundled digits example with and without the callback;
3. peak memory of a validation pass over 20,000 examples through a 64 x 32 x 32 conv layer, with and without
   the callback (separate processes, ``ru_maxrss``), against the documented bound.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from typing import Any

import lightning.pytorch as pl
import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import timed

from lightning_topo import TopologyMonitor
from lightning_topo._compute import compute_report
from lightning_topo.demo import DigitsCNN, DigitsDataModule
from lightning_topo.functional import pairwise_distances


def _trainer(callbacks: list[Any], max_epochs: int = 1) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        num_sanity_val_steps=0,
    )


def _trained_digits() -> tuple[DigitsCNN, DigitsDataModule, dict[str, torch.Tensor | None]]:
    """Train the digits CNN for 3 epochs; return it with the samples the monitor captured at the last epoch."""
    pl.seed_everything(0, verbose=False)
    monitor = TopologyMonitor(n_samples=500)
    captured: dict[str, Any] = {}
    original = monitor._compute

    def spy(trainer: Any, samples: Any, labels: Any, problems: Any) -> Any:
        captured.update(samples)
        return original(trainer, samples, labels, problems)

    monitor._compute = spy  # type: ignore[method-assign]
    model, data = DigitsCNN(), DigitsDataModule()
    _trainer([monitor], max_epochs=3).fit(model, datamodule=data)
    return model, data, captured


def bench_overhead(samples: dict[str, torch.Tensor | None], repeats: int) -> None:
    from gph import ripser_parallel

    monitor = TopologyMonitor(n_samples=500)
    matrices = {k: pairwise_distances(v, normalize="quantile").numpy() for k, v in samples.items() if v is not None}

    def raw() -> None:
        for d in matrices.values():
            ripser_parallel(d, maxdim=1, metric="precomputed", n_threads=-1)

    # interleaved, so that drifts of the machine hit both alike
    t_raw, t_cb = [], []
    for _ in range(repeats):
        t_raw.append(timed(raw, 1)[0])
        t_cb.append(timed(lambda: compute_report(samples, monitor.config), 1)[0])
    med_raw, med_cb = statistics.median(t_raw), statistics.median(t_cb)
    print(
        f"## Epoch-end compute on the digits CNN ({len(matrices)} layers, 500 examples, maxdim 1; "
        f"{repeats} interleaved runs)\n"
    )
    print("| | callback compute (s) | raw giotto-ph calls (s) | ratio |")
    print("|---|---|---|---|")
    print(f"| median | {med_cb:.3f} | {med_raw:.3f} | {med_cb / med_raw:.2f} |")
    print(f"| min | {min(t_cb):.3f} | {min(t_raw):.3f} | {min(t_cb) / min(t_raw):.2f} |\n")
    print(
        f"The difference buys distances, normalisation, TwoNN ID, descriptors and Betti curves for "
        f"{len(matrices)} layers.\n"
    )


def bench_validation_epoch(model: DigitsCNN, data: DigitsDataModule, repeats: int) -> None:
    data.setup()

    def run(callbacks: list[Any]) -> None:
        _trainer(callbacks).validate(model, datamodule=data, verbose=False)

    run([])  # warm-up
    t_plain, _ = timed(lambda: run([]), repeats)
    t_cb, _ = timed(lambda: run([TopologyMonitor(n_samples=500)]), repeats)
    print(f"## Validation epoch of the digits example (500 validation images; median of {repeats})\n")
    print("| without callback (s) | with TopologyMonitor defaults (s) | added per validation epoch (s) |")
    print("|---|---|---|")
    print(f"| {t_plain:.3f} | {t_cb:.3f} | {t_cb - t_plain:.3f} |\n")


class _ConvNet(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 64, 3, padding=1)
        self.head = torch.nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).mean(dim=(2, 3)))

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self(batch[0])


class _LazyImages(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        g = torch.Generator().manual_seed(i)
        return torch.randn(3, 32, 32, generator=g), i % 10


def _memory_child(mode: str) -> None:
    warnings.simplefilter("ignore")
    loader = torch.utils.data.DataLoader(_LazyImages(20_000), batch_size=500)
    model = _ConvNet()
    callbacks = [] if mode == "none" else [TopologyMonitor(layers=["conv"], n_samples=512, reduce=mode)]
    start = time.perf_counter()
    _trainer(callbacks).validate(model, loader, verbose=False)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mib": peak_mib, "seconds": time.perf_counter() - start}))


def bench_memory() -> None:
    rows = {}
    for mode in ("none", "auto", "flatten"):
        out = subprocess.run(
            [sys.executable, __file__, "--memory-child", mode], capture_output=True, text=True, check=True
        )
        rows[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    base = rows["none"]["peak_mib"]
    print("## Peak memory: 20,000 validation images through a 64 x 32 x 32 conv layer (n_samples = 512)\n")
    print("| reduce | peak RSS (MiB) | added by the callback (MiB) | bound: buffer + Gram block + matrices (MiB) |")
    print("|---|---|---|---|")
    print(f"| (no callback) | {base:.0f} | - | - |")
    for mode, width in (("auto", 64), ("flatten", 64 * 32 * 32)):
        # the sample buffer, one float64 feature block of pairwise_distances (at most 64 MiB), two n x n matrices
        bound = (512 * width * 4 + min(512 * width * 8, 2**26) + 2 * 512 * 512 * 8) / 2**20
        print(f"| {mode} | {rows[mode]['peak_mib']:.0f} | {rows[mode]['peak_mib'] - base:.0f} | {bound:.0f} |")
    print("\nA whole validation set of flattened activations would be 20,000 x 65,536 x 4 B = 5,000 MiB.\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        _memory_child(args.memory_child)
        return
    warnings.simplefilter("ignore")
    print(f"torch {torch.__version__}, {os.cpu_count()} cores\n")
    model, data, samples = _trained_digits()
    bench_overhead(samples, args.repeats)
    bench_validation_epoch(model, data, args.repeats)
    bench_memory()


if __name__ == "__main__":
    main()
