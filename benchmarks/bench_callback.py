"""The callback's cost, as ratios measured in one run.

Run: ``python benchmarks/bench_callback.py [--repeats R]``. Prints Markdown tables for ``benchmarks/RESULTS.md``:

1. epoch-end time of ``TopologyMonitor`` against the sum of the raw giotto-ph calls on the same distance
   matrices (the irreducible persistence work): the orchestration overhead;
2. a validation epoch of the bundled digits example with and without the callback;
3. peak memory of a validation pass over 20,000 examples through a 64 x 32 x 32 conv layer, with and without
   the callback (separate processes, ``ru_maxrss``), against the documented bound;
4. the callback's epoch end against the naive pipeline (for each of 8 layers, the fastest of giotto-ph,
   ripser.py and GUDHI called serially on the same points), with defaults and with the cost controls on, and
   the accuracy the cost controls give up;
5. how long ``compute="async"`` blocks the training loop at epoch end, against ``compute="sync"``;
6. the cost curve: epoch-end time against ``n_samples``, the number of layers, layer width and ``maxdim``
   (table, and a plot written to ``benchmarks/cost_curve.png``).

7. the time to draw and log the TensorBoard figures of one measured epoch, in milliseconds per figure;
8. a padded transformer's monitored validation: the token reductions and ``torch.compile``, as ratios.

``--only 1,4`` runs a subset.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import replace
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import timed
from torch.utils.data import DataLoader

from lightning_topo import TopologyMonitor
from lightning_topo.capture import ActivationCapture, resolve_layers
from lightning_topo.demo import DigitsCNN, DigitsDataModule
from lightning_topo.engine import LayerSample, WorkerPool, auto_workers, measure, start_measurement
from lightning_topo.functional import pairwise_distances
from lightning_topo.options import build_options

Samples = dict[str, LayerSample]


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


def _trained_digits() -> tuple[DigitsCNN, DigitsDataModule, Samples]:
    """Train the digits CNN for 3 epochs; return it with the samples the monitor measures (default layers)."""
    pl.seed_everything(0, verbose=False)
    model, data = DigitsCNN(), DigitsDataModule()
    _trainer([], max_epochs=3).fit(model, datamodule=data)
    options = build_options(n_samples=500)
    capture = ActivationCapture(model, resolve_layers(model, None), options, quota=500)
    capture.start()
    model.eval()
    with torch.no_grad():
        for batch in data.val_dataloader():
            capture.begin_batch(batch)
            model(batch[0])
            capture.end_batch()
    return model, data, capture.finish()


def _epoch_end(samples: Samples, **options: Any) -> tuple[float, Any]:
    """What the callback runs at the epoch end on these samples, with the warm pool it would use."""
    opts = build_options(n_samples=max(s.points.shape[0] for s in samples.values()), **options)
    workers = auto_workers("auto", n_layers=len(samples), n_samples=opts.n_samples, maxdim=opts.measure.maxdim)
    pool = WorkerPool(workers) if workers else None
    config = opts.measure if pool is None else replace(opts.measure, n_threads=pool.threads)
    try:
        if pool is not None:
            measure(samples, config, pool=pool)  # warm the workers
        return timed(lambda: measure(samples, config, score=opts.score, pool=pool), 1)
    finally:
        if pool is not None:
            pool.shutdown()


def bench_overhead(samples: dict[str, torch.Tensor | None], repeats: int) -> None:
    from gph import ripser_parallel

    options = build_options(n_samples=500).measure
    matrices = {k: pairwise_distances(v.points, normalize="quantile").numpy() for k, v in samples.items()}

    def raw() -> None:
        for d in matrices.values():
            ripser_parallel(d, maxdim=1, metric="precomputed", n_threads=-1)

    # interleaved, so that drifts of the machine hit both alike
    t_raw, t_cb = [], []
    for _ in range(repeats):
        t_raw.append(timed(raw, 1)[0])
        t_cb.append(timed(lambda: measure(samples, options), 1)[0])
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
    import tempfile

    from lightning.pytorch.loggers import TensorBoardLogger

    data.setup()

    def run(callbacks: list[Any], tensorboard: bool = False) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            trainer = _trainer(callbacks)
            if tensorboard:
                trainer = pl.Trainer(
                    accelerator="cpu",
                    logger=TensorBoardLogger(tmp),
                    enable_checkpointing=False,
                    enable_progress_bar=False,
                    enable_model_summary=False,
                    callbacks=callbacks,
                )
            trainer.validate(model, datamodule=data, verbose=False)

    run([])  # warm-up
    rows = []
    for label, tensorboard, figures in (
        ("no logger", False, False),
        ("TensorBoardLogger, figures off", True, False),
        ("TensorBoardLogger, figures on (default)", True, True),
    ):
        t_plain, _ = timed(lambda tb=tensorboard: run([], tb), repeats)
        t_cb, _ = timed(
            lambda tb=tensorboard, f=figures: run([TopologyMonitor(n_samples=500, log_figures=f)], tb), repeats
        )
        rows.append((label, t_plain, t_cb))
    print(f"## Validation epoch of the digits example (500 validation images, 7 layers; median of {repeats})\n")
    print("| logger | without callback (s) | with TopologyMonitor defaults (s) | added per validation epoch (s) |")
    print("|---|---|---|---|")
    for label, t_plain, t_cb in rows:
        print(f"| {label} | {t_plain:.3f} | {t_cb:.3f} | {t_cb - t_plain:.3f} |")
    print()


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


def curved_layers(n_layers: int, n: int, seed: int = 0) -> Samples:
    """Representation-like clouds: class clusters on low-dimensional curved pieces, widths 32 to 512."""
    gen = torch.Generator().manual_seed(seed)
    out: Samples = {}
    for i in range(n_layers):
        width = [32, 64, 128, 256, 512][i % 5]
        labels = torch.arange(n) % 10
        centres = 3.0 * torch.randn(10, 6, generator=gen)
        t = torch.rand(n, 2, generator=gen) * 6.28
        local = torch.cat([t.cos(), t.sin(), 0.3 * torch.randn(n, 2, generator=gen)], dim=1)
        z = centres[labels] + local
        out[f"layer{i}"] = LayerSample(torch.relu(z @ torch.randn(6, width, generator=gen)))
    return out


def _naive(samples: Samples, maxdim: int = 1) -> tuple[float, list[str]]:
    """For each layer, the fastest of giotto-ph, ripser.py and GUDHI on its points (each timed once)."""
    import ripser
    from gph import ripser_parallel
    from gudhi.sklearn.rips_persistence import RipsPersistence

    total, winners = 0.0, []
    dims = list(range(maxdim + 1))
    for sample in samples.values():
        pts = sample.points.double().numpy()
        times = {
            "giotto-ph": timed(lambda pts=pts: ripser_parallel(pts, maxdim=maxdim), 1)[0],
            "ripser.py": timed(lambda pts=pts: ripser.ripser(pts, maxdim=maxdim), 1)[0],
            "gudhi": timed(lambda pts=pts: RipsPersistence(homology_dimensions=dims).fit_transform([pts]), 1)[0],
        }
        best = min(times, key=times.__getitem__)
        winners.append(best)
        total += times[best]
    return total, winners


def bench_naive(repeats: int) -> None:
    import gudhi

    from lightning_topo.functional import betti_curve

    samples = curved_layers(8, 512)
    # the same layers with their rows sorted by class, as the sample of a class-sorted validation set (ImageFolder)
    by_class = torch.argsort(torch.arange(512) % 10, stable=True)
    sorted_samples = {a: LayerSample(s.points[by_class]) for a, s in samples.items()}
    naive, t_defs, runs, naive_sorted, t_sorted = [], [], [], [], []
    for _ in range(max(1, repeats // 3)):  # interleaved rounds: naive, defaults, cost control, class-sorted
        t, winners = _naive(samples)
        naive.append(t)
        t_defs.append(_epoch_end(samples)[0])
        runs.append(_epoch_end(samples, ph_samples=192))
        naive_sorted.append(_naive(sorted_samples)[0])
        t_sorted.append(_epoch_end(sorted_samples)[0])
    t_naive, t_def = min(naive), min(t_defs)
    t_ctl, rep_ctl = min(runs, key=lambda r: r[0])
    serial, makespan, naive_layers = _serial_shares(samples)
    exact = measure(samples, build_options().measure)
    worst_b1, worst_curve = 0.0, 0.0
    for layer in samples:
        a, b = exact.diagrams[layer], rep_ctl.diagrams[layer]
        fin = [d[np.isfinite(d[:, 1])] for d in (a[1], b[1])]
        worst_b1 = max(worst_b1, gudhi.bottleneck_distance(fin[0], fin[1]))
        grid = exact.grid
        ca, cb = betti_curve(a, grid)[1], betti_curve(b, grid)[1]
        worst_curve = max(worst_curve, float(np.abs(ca - cb).sum() * (grid[1] - grid[0])))
    print("## The callback against the naive pipeline (8 layers x 512 examples, widths 32-512, maxdim 1)\n")
    print(
        f"Naive: for each layer the fastest library on its points ({', '.join(sorted(set(winners)))} won), "
        "called one after the other.\n"
    )
    print("| pipeline | epoch-end time (s) | ratio to naive |")
    print("|---|---|---|")
    print(f"| naive (fastest peer per layer, serial) | {t_naive:.2f} | 1.00 |")
    print(f"| TopologyMonitor defaults (2 worker processes) | {t_def:.2f} | {t_def / t_naive:.2f} |")
    print(
        f"| TopologyMonitor, ph_samples=192 (H1 on a farthest-point subsample; H0, ID on all 512) | {t_ctl:.2f} "
        f"| {t_ctl / t_naive:.2f} |"
    )
    print(f"| naive, rows sorted by class (a class-sorted validation set) | {min(naive_sorted):.2f} | 1.00 |")
    print(
        f"| TopologyMonitor defaults, rows sorted by class | {min(t_sorted):.2f} | "
        f"{min(t_sorted) / min(naive_sorted):.2f} |\n"
    )
    print(
        f"Load: {_load()}. Serially, one core each (minimum of 5 interleaved calls per layer and library): the "
        f"fastest peer per layer {naive_layers:.3f} s, ours (`measure_layer`, one thread) {serial:.3f} s, ratio "
        f"{serial / naive_layers:.2f}; our layers split longest first on 2 idle cores would take {makespan:.3f} s, "
        f"{makespan / naive_layers:.2f} of the naive pipeline (the floor of the defaults' ratio on a quiet machine).\n"
    )
    print(
        f"Accuracy given up by ph_samples=192 (normalised distances): H1 bottleneck distance to the exact "
        f"diagram <= {worst_b1:.3f}; L1 distance between the H1 Betti curves <= {worst_curve:.3f} "
        "(H0 and ID are exact).\n"
    )


def _serial_shares(samples: Samples, rounds: int = 5) -> tuple[float, float, float]:
    """Our layers and the fastest peer's, serially on one core: (ours summed, ours split longest first on 2 workers,
    the fastest peer per layer summed); the minimum of ``rounds`` interleaved calls each."""
    import ripser
    from gph import ripser_parallel
    from gudhi.sklearn.rips_persistence import RipsPersistence

    from lightning_topo.engine import measure_layer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a worker
    options = build_options(n_samples=512, n_threads=1).measure
    best: dict[tuple[str, str], float] = {}
    try:
        for _ in range(rounds):
            for alias, sample in samples.items():
                pts = sample.points.double().numpy()
                calls = {
                    "giotto-ph": lambda pts=pts: ripser_parallel(pts, maxdim=1),
                    "ripser.py": lambda pts=pts: ripser.ripser(pts, maxdim=1),
                    "gudhi": lambda pts=pts: RipsPersistence(homology_dimensions=[0, 1]).fit_transform([pts]),
                    "ours": lambda sample=sample: measure_layer(sample, options),
                }
                for name, call in calls.items():
                    t = timed(call, 1)[0]
                    best[(alias, name)] = min(best.get((alias, name), math.inf), t)
    finally:
        torch.set_num_threads(threads)
    ours = sorted((best[(a, "ours")] for a in samples), reverse=True)
    loads = [0.0, 0.0]
    for cost in ours:
        loads[loads.index(min(loads))] += cost
    peers = sum(min(best[(a, p)] for p in ("giotto-ph", "ripser.py", "gudhi")) for a in samples)
    return sum(ours), max(loads), peers


def bench_async(repeats: int) -> None:
    """The epoch end waits for the whole measurement in sync mode; in async mode only for starting it."""
    samples = curved_layers(8, 512, seed=1)
    options = build_options(n_samples=512).measure
    blocked: dict[str, list[float]] = {"sync": [], "async": []}
    for mode in ("sync", "async"):
        workers = auto_workers("auto", n_layers=8, n_samples=512, maxdim=1, background=mode == "async")
        pool = WorkerPool(workers)
        config = replace(options, n_threads=pool.threads)
        measure(samples, config, pool=pool)  # warm
        for _ in range(repeats):
            start = time.perf_counter()
            measurement = start_measurement(samples, config, pool=pool)
            if mode == "sync":
                measurement.report()
            blocked[mode].append(time.perf_counter() - start)
            measurement.report()
        pool.shutdown()
    t_sync, t_async = statistics.median(blocked["sync"]), statistics.median(blocked["async"])
    print("## compute='async': how long the training loop waits at epoch end (8 layers x 512 examples)\n")
    print("| mode | training loop blocked (s) | share of the sync epoch end |")
    print("|---|---|---|")
    print(f"| sync | {t_sync:.3f} | 100% |")
    print(f"| async | {t_async:.4f} | {100 * t_async / t_sync:.1f}% |\n")


def bench_cost_curve(plot_path: str) -> None:
    """Epoch-end seconds against n_samples (exact and ``ph_samples="auto"``), layers, width and maxdim.

    Exact H1 is measured only where it takes less than a minute (up to 4,096 examples of this cloud; 8,192 would
    take several minutes). The minimum of 3 runs below 4,096 examples, one run from there on.
    """
    rows: list[tuple[str, str, int, float]] = []

    def point(axis: str, line: str, value: int, samples: Samples, **kwargs: Any) -> None:
        n = max(s.points.shape[0] for s in samples.values())
        runs = 1 if n >= 4096 else 3
        t = min(_epoch_end(samples, **kwargs)[0] for _ in range(runs))
        rows.append((axis, line, value, t))
        print(f"| {axis} | {line} | {value} | {t:.3f} |", flush=True)

    print(f"## Cost curve (epoch-end seconds; defaults unless the row says otherwise; {_load()})\n")
    print("| varied | H1 | value | epoch-end time (s) |")
    print("|---|---|---|---|")
    for n in (256, 512, 1024, 2048, 4096, 8192):
        if n <= 4096:
            point("n_samples (1 layer, width 32)", "exact", n, curved_layers(1, n))
        if n >= 1024:
            point("n_samples (1 layer, width 32)", 'ph_samples="auto"', n, curved_layers(1, n), ph_samples="auto")
    for n_layers in (1, 2, 4, 8, 16, 32):
        point("layers", "512 examples, exact", n_layers, curved_layers(n_layers, 512))
    for n_layers in (1, 2, 4, 8, 16, 32):
        point("layers", '4,096 examples, ph_samples="auto"', n_layers, curved_layers(n_layers, 4096), ph_samples="auto")
    gen = torch.Generator().manual_seed(0)
    base = curved_layers(1, 512)["layer0"].points
    for width in (64, 1_000, 10_000, 100_000):
        wide = base[:, :32] @ torch.randn(32, width, generator=gen)
        point("width (1 layer, 512 examples)", "exact", width, {"layer0": LayerSample(wide)})
    for maxdim in (0, 1, 2):
        point("maxdim (1 layer, 256 examples)", "exact", maxdim, curved_layers(1, 256), maxdim=maxdim)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes_names = list(dict.fromkeys(r[0] for r in rows))
    fig, axes = plt.subplots(1, len(axes_names), figsize=(3.6 * len(axes_names), 3.2))
    for ax, name in zip(axes, axes_names, strict=False):
        for line in dict.fromkeys(r[1] for r in rows if r[0] == name):
            xs = [r[2] for r in rows if r[0] == name and r[1] == line]
            ys = [r[3] for r in rows if r[0] == name and r[1] == line]
            ax.plot(xs, ys, "o-", label=line)
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("epoch-end time (s)")
        if name.startswith(("n_samples", "width", "layers")):
            base_x = 2 if name.startswith(("n_samples", "layers")) else 10
            ax.set_xscale("log", base=base_x)
            ax.set_yscale("log")
            xs = sorted({r[2] for r in rows if r[0] == name})
            ax.set_xticks(xs, [str(x) for x in xs], fontsize=7)
            ax.minorticks_off()
        if name.startswith(("n_samples", "layers")):
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(plot_path, dpi=110)
    plt.close(fig)
    print(f"\nPlot: `{os.path.basename(plot_path)}`\n")


def _load() -> str:
    return "load average " + ", ".join(f"{v:.1f}" for v in os.getloadavg())


def bench_figures(repeats: int) -> None:
    """Drawing and logging one measurement's figures in the main process, through the monitor's publisher.

    Milliseconds per figure: the first measurement (every figure built and drawn in full) and the median of the
    next ``repeats`` (figures reused: each redraws only what changed). Three reports of different clouds take
    turns, as epochs would. The time includes writing the PNGs into the TensorBoard event file.
    """
    import tempfile

    from lightning.pytorch.loggers import TensorBoardLogger

    from lightning_topo import plotting
    from lightning_topo.engine import FigureRequest, LayerResult
    from lightning_topo.monitor.publish import Publisher

    reports = [measure(curved_layers(8, 512, seed=seed), build_options().measure) for seed in (2, 3, 4)]
    with tempfile.TemporaryDirectory() as tmp:
        logger = TensorBoardLogger(tmp)
        trainer = pl.Trainer(logger=logger, accelerator="cpu", enable_progress_bar=False)
        publisher = Publisher("topo", figure_every=1, save_diagrams=False, betti_scale=0.2)
        per_figure = []
        for epoch in range(repeats + 1):
            report = reports[epoch % 3]
            report.epoch = report.step = epoch
            requests = publisher.figure_requests(trainer, report.layers, epoch)
            n_figures = 8 * (3 if epoch else 2) + 1  # the heat maps from the second measurement on
            start = time.perf_counter()
            publisher.publish(trainer, report, {}, requests)
            per_figure.append(1000 * (time.perf_counter() - start) / n_figures)
        logger.finalize("success")
        # each kind on its own, warm, on the last report
        layer = report.layers[0]
        request = FigureRequest(
            layer, repeats, plotting.layer_figures, publisher.curves[layer][:-1], publisher.ranges[layer], 0.2
        )
        result = LayerResult({}, report.diagrams[layer], None)
        kinds = {}
        for name, draw in {
            "Betti curves + diagram + heat map (one layer)": lambda: plotting.layer_figures(
                result, request, report.grid
            ),
            "depth profile (7 descriptors x 8 layers)": lambda: plotting.figure_to_rgb(
                plotting.plot_depth_profile(report, title="x", reuse=True)
            ),
            "a new figure, not reused (Betti curves)": lambda: plotting.figure_to_rgb(
                plotting.plot_betti_curves(report.betti_curves[layer], report.grid, "x")
            ),
        }.items():
            times = []
            for _ in range(max(repeats, 3)):
                start = time.perf_counter()
                draw()
                times.append(1000 * (time.perf_counter() - start))
            kinds[name] = (statistics.median(times), min(times))
    print("## Figures: drawing and logging one measured epoch to TensorBoard in the main process (8 layers)\n")
    later = per_figure[1:]
    print("| measurement | figures | ms per figure |")
    print("|---|---|---|")
    print(f"| first (every figure built) | {8 * 2 + 1} | {per_figure[0]:.0f} |")
    median, best = statistics.median(later), min(later)
    print(f"| later, reused: median (best) of {repeats} | {8 * 3 + 1} | {median:.0f} ({best:.0f}) |\n")
    print("| one call, warm: median (best) | ms |")
    print("|---|---|")
    for name, (median, best) in kinds.items():
        print(f"| {name} | {median:.0f} ({best:.0f}) |")
    print()


def bench_sequences(repeats: int) -> None:
    """A padded transformer's monitored validation run: the token reductions and torch.compile, as ratios."""
    import tempfile

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
    from transformer_text import TextClassifier, collate, sentences

    val = DataLoader(sentences(512, seed=2), batch_size=64, collate_fn=collate)  # type: ignore[arg-type]

    def validate(model: Any, monitor: TopologyMonitor | None) -> tuple[float, float]:
        """The validation run's wall time and, with a monitor, the measurement's own (``topo/time_s``)."""
        with tempfile.TemporaryDirectory() as tmp:
            trainer = pl.Trainer(
                logger=False,
                default_root_dir=tmp,
                callbacks=[] if monitor is None else [monitor],
                enable_progress_bar=False,
                enable_model_summary=False,
                accelerator="cpu",
            )
            start = time.perf_counter()
            trainer.validate(model, val, verbose=False)
            total = time.perf_counter() - start
        measured = 0.0 if monitor is None or monitor.last_report is None else monitor.last_report.elapsed_s
        return total, measured

    import copy

    torch.manual_seed(0)
    plain = TextClassifier()
    compiled = torch.compile(copy.deepcopy(plain))  # the same weights: the same clouds, the same measurement
    validate(compiled, None)  # compile once, outside the timings
    cases = [
        ("uncompiled", plain, None),
        ("uncompiled, reduce='auto' (token_mean)", plain, {}),
        ("uncompiled, reduce='first_token'", plain, {"reduce": "first_token"}),
        ("uncompiled, reduce='last_token'", plain, {"reduce": "last_token"}),
        ("torch.compile", compiled, None),
        ("torch.compile, reduce='auto'", compiled, {}),
    ]
    runs: dict[str, list[tuple[float, float]]] = {label: [] for label, _, _ in cases}
    for _ in range(repeats):  # interleaved
        for label, model, kwargs in cases:
            monitor = None if kwargs is None else TopologyMonitor(n_samples=512, workers=0, **kwargs)
            runs[label].append(validate(model, monitor))
    best = {label: min(r, key=lambda t: t[0]) for label, r in runs.items()}
    base = best["uncompiled"][0]
    print("## Sequence models: a padded transformer's validation run with the monitor (512 sentences, 4 layers)\n")
    print(f"`--only 8`; `trainer.validate`, the fastest of {repeats} interleaved runs, `workers=0`. The capture is")
    print("the validation time beyond the same model's unmonitored run and the measurement (`topo/time_s`).\n")
    print("| run | validation (s) | ratio to uncompiled | measurement (s) | capture and logging (s) |")
    print("|---|---|---|---|---|")
    for label, (total, measured) in best.items():
        plain_total = best["torch.compile" if label.startswith("torch.compile") else "uncompiled"][0]
        extra = total - measured - plain_total if measured else 0.0
        print(f"| {label} | {total:.3f} | {total / base:.2f} | {measured:.3f} | {extra:.3f} |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--only", default="1,2,3,4,5,6,7,8", help="comma-separated section numbers")
    args = parser.parse_args()
    if args.memory_child:
        _memory_child(args.memory_child)
        return
    warnings.simplefilter("ignore")
    print(f"torch {torch.__version__}, {os.cpu_count()} cores\n")
    only = {int(x) for x in args.only.split(",")}
    if only & {1, 2}:
        model, data, samples = _trained_digits()
        if 1 in only:
            bench_overhead(samples, args.repeats)
        if 2 in only:
            bench_validation_epoch(model, data, args.repeats)
    if 3 in only:
        bench_memory()
    if 4 in only:
        bench_naive(args.repeats)
    if 5 in only:
        bench_async(args.repeats)
    if 6 in only:
        bench_cost_curve(os.path.join(os.path.dirname(os.path.abspath(__file__)), "cost_curve.png"))
    if 7 in only:
        bench_figures(args.repeats)
    if 8 in only:
        bench_sequences(args.repeats)


if __name__ == "__main__":
    main()
