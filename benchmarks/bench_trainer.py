"""The monitor inside a real Trainer: the overlap of measurement with validation, and DDP ranks sharing the layers.

Run: ``python benchmarks/bench_trainer.py [--only 1,2] [--repeats R]``. Prints Markdown tables for
``benchmarks/RESULTS.md``:

1. **Overlap.** A convolutional network with 8 monitored layers validates 5,120 images (ten times
   ``n_samples=512``). The monitor's sample is full after 4 of 40 batches and goes to the worker pool at once, so its
   8 layers are measured while the other 36 batches run; ``on_validation_epoch_end`` then waits only for what is
   left. Without overlap (the same 512 images as the whole validation set: the sample is full at the last batch) it
   waits for the whole measurement; ``workers=0`` measures in the main process at the epoch end. The measured
   values are compared too: the overlap must not change them.
2. **DDP.** The same network validates 512 images in 2 CPU processes (gloo) and in 1; the ranks share the 8 layers
   (each measures 4 with its own cores). The wait inside ``on_validation_epoch_end`` on rank 0 (gathers included).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lightning_topo import TopologyMonitor

VALIDATIONS = 3
LAYERS = ["block1", "block2", "block3", "block4", "fc1", "fc2", "fc3", "head"]


class Net(pl.LightningModule):
    """Four conv blocks and four linear layers on 3 x 32 x 32 images: a validation forward of 5,120 images takes a
    few seconds on 2 cores, several times the measurement of its 8 layers."""

    def __init__(self) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> nn.Module:
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))

        self.block1, self.block2, self.block3, self.block4 = block(3, 32), block(32, 64), block(64, 96), block(96, 128)
        self.fc1 = nn.Sequential(nn.Flatten(), nn.Linear(128 * 2 * 2, 256), nn.ReLU())
        self.fc2 = nn.Sequential(nn.Linear(256, 128), nn.ReLU())
        self.fc3 = nn.Sequential(nn.Linear(128, 64), nn.ReLU())
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.block4(self.block3(self.block2(self.block1(x))))
        return self.head(self.fc3(self.fc2(self.fc1(h))))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return nn.functional.cross_entropy(self(batch[0]), batch[1])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)  # the weights stay: values comparable

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val_loss", nn.functional.cross_entropy(self(batch[0]), batch[1]))


def images(n: int) -> TensorDataset:
    """Class-dependent smooth images (every class a different low-frequency pattern plus noise)."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 10
    patterns = torch.nn.functional.interpolate(torch.randn(10, 3, 4, 4, generator=g), size=32, mode="bilinear")
    return TensorDataset(patterns[y] + 0.5 * torch.randn(n, 3, 32, 32, generator=g), y)


class TimedMonitor(TopologyMonitor):
    """The monitor, with the time spent in its ``on_validation_epoch_end`` recorded."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.waits: list[float] = []
        self.elapsed: list[float] = []  # topo/time_s of each measurement

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        start = time.perf_counter()
        super().on_validation_epoch_end(trainer, pl_module)
        self.waits.append(time.perf_counter() - start)
        if self.last_report is not None:
            self.elapsed.append(self.last_report.elapsed_s)


def _trainer(monitor: TopologyMonitor | None, **kwargs: Any) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[] if monitor is None else [monitor],
        **kwargs,
    )


def _load() -> str:
    return "load average " + ", ".join(f"{v:.1f}" for v in os.getloadavg())


def bench_overlap(repeats: int) -> None:
    torch.manual_seed(0)
    model = Net()
    big = DataLoader(images(5120), batch_size=128)
    small = DataLoader(images(512), batch_size=128)  # the same first 512 images
    configs = {
        "5,120 images, defaults (sample full after 4 of 40 batches: overlap)": (big, {}),
        "512 images (sample full at the last batch: no overlap)": (small, {}),
        "5,120 images, workers=0 (measured in the main process when the sample is full: the loop waits there)": (
            big,
            {"workers": 0},
        ),
    }
    rows: dict[str, list[tuple[float, float, float]]] = {name: [] for name in configs}
    values: dict[str, Any] = {}
    plain: list[float] = []
    for _ in range(repeats):  # interleaved
        start = time.perf_counter()
        _trainer(None).validate(model, big, verbose=False)
        plain.append(time.perf_counter() - start)
        for name, (loader, kwargs) in configs.items():
            monitor = TimedMonitor(layers=LAYERS, n_samples=512, log_figures=False, **kwargs)
            start = time.perf_counter()
            _trainer(monitor).validate(model, loader, verbose=False)
            total = time.perf_counter() - start
            report = monitor.last_report
            assert report is not None
            rows[name].append((monitor.waits[-1], total, report.elapsed_s))
            values[name] = report.metrics
    same = all(v == values[next(iter(values))] for v in values.values())
    print(f"## Overlap: the epoch-end wait with a validation set ten times the sample ({_load()})\n")
    print(
        "8 monitored layers (4 conv blocks, 4 linear), n_samples=512, batches of 128, figures off; median of "
        f"{repeats} interleaved runs (`trainer.validate`, a fresh Trainer and worker pool each). Validation of the "
        f"5,120 images without the monitor: {statistics.median(plain):.2f} s.\n"
    )
    print("| validation | wait in on_validation_epoch_end (s) | whole validate (s) | measurement (topo/time_s) |")
    print("|---|---|---|---|")
    for name, runs in rows.items():
        wait, total, elapsed = (statistics.median(r[i] for r in runs) for i in range(3))
        print(f"| {name} | {wait:.3f} | {total:.2f} | {elapsed:.2f} |")
    print(f"\nSame values in every row (the same 512 images): {same}.\n")


# -- DDP ------------------------------------------------------------------------------------------------------------


def ddp_child(out: str, devices: int) -> None:
    """One validation run under ``devices`` CPU processes; rank 0 writes its wait and the report's values."""
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    model = Net()
    monitor = TimedMonitor(layers=LAYERS, n_samples=512, log_figures=False)
    strategy: Any = "ddp" if devices > 1 else "auto"
    # one training batch per epoch: the worker pool stays warm from epoch to epoch, as in a real run; the first
    # measurement splits the layers blindly, later ones by their last cost
    trainer = _trainer(
        monitor,
        devices=devices,
        strategy=strategy,
        max_epochs=VALIDATIONS,
        limit_train_batches=1,
        num_sanity_val_steps=0,
    )
    loader = DataLoader(images(512), batch_size=64)
    trainer.fit(model, DataLoader(images(128), batch_size=64), loader)
    if trainer.global_rank == 0:
        assert monitor.last_report is not None
        payload = {"waits": monitor.waits, "elapsed": monitor.elapsed, "metrics": monitor.last_report.metrics}
        Path(out).write_text(json.dumps(payload))


def bench_ddp(repeats: int) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "CUDA_VISIBLE_DEVICES": ""}
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):  # interleaved
            for devices in (1, 2):
                out = os.path.join(tmp, f"{devices}_{i}.json")
                subprocess.run(
                    [sys.executable, __file__, "--ddp-child", out, "--devices", str(devices)],
                    check=True,
                    env=env,
                    capture_output=True,
                    timeout=600,
                )
                runs[devices].append(json.loads(Path(out).read_text()))
    one, two = runs[1], runs[2]
    worst = max(_relative_difference(r["metrics"], one[0]["metrics"]) for r in one + two)
    print(f"## DDP: 2 ranks against 1 on the same 8 layers ({_load()}, {os.cpu_count()} cores)\n")
    print(
        f"512 validation images (256 per rank under DDP), n_samples=512, gloo; {VALIDATIONS} validations per run, "
        f"median of {repeats} interleaved runs, each a fresh process group. One process: 2 worker processes; two "
        "ranks: each gets every layer's rows and takes the layers one at a time (longest first by each layer's last "
        "time) from a counter in the process group's store, measuring them with its share of the cores (1 core: in "
        "its own process).\n"
    )
    print(
        "| processes | wait in on_validation_epoch_end on rank 0, 1st validation (s) | later validations (s) "
        "| measurement, later (topo/time_s) | ratio (wait, later) |"
    )
    print("|---|---|---|---|---|")
    base = statistics.median(w for r in one for w in r["waits"][1:])
    for label, rs in (("1", one), ("2 (DDP)", two)):
        first = statistics.median(r["waits"][0] for r in rs)
        later = statistics.median(w for r in rs for w in r["waits"][1:])
        elapsed = statistics.median(e for r in rs for e in r["elapsed"][1:])
        print(f"| {label} | {first:.3f} | {later:.3f} | {elapsed:.3f} | {later / base:.2f} |")
    print(
        f"\nLargest relative difference of a logged value between any two runs (1 or 2 processes): {worst:.1e} (the "
        "ranks gather the same 512 images in another order; sums of lifetimes change in the last bits).\n"
    )


def _relative_difference(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]]) -> float:
    worst = 0.0
    for layer, values in a.items():
        for key, v in values.items():
            w = b[layer][key]
            worst = max(worst, abs(v - w) / max(abs(w), 1e-12))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", default="1,2", help="comma-separated section numbers")
    parser.add_argument("--ddp-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--devices", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ddp_child:
        ddp_child(args.ddp_child, args.devices)
        return
    warnings.simplefilter("ignore")
    print(f"torch {torch.__version__}, {os.cpu_count()} cores\n")
    only = {int(v) for v in args.only.split(",")}
    if 1 in only:
        bench_overlap(args.repeats)
    if 2 in only:
        bench_ddp(args.repeats)


if __name__ == "__main__":
    main()
