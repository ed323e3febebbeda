"""Ten times the sample: ``n_samples=4096`` on 8 layers, and what the cheaper H1 paths give up.

Run: ``python benchmarks/bench_scale.py [--only 1,2] [--repeats R]``. Prints Markdown tables for
``benchmarks/RESULTS.md``:

1. the epoch end of 8 layers x 4,096 examples with the warm worker pool (2 processes on 2 cores), with
   ``ph_samples="auto"`` (H0 and the intrinsic dimension exact on all 4,096 examples, H1 on 512 farthest points)
   and with ``ph_sparse=2``; and where one layer's time goes (serial, one core);
2. the accuracy of the approximate H1 paths against the exact H1 diagram of every example: bottleneck distance, its
   bound, the L1 distance between the H1 Betti curves, and the logged descriptors, on clouds with real loops (three
   circles, a torus) and without (Gaussian blobs, representation-like class clusters). Exact H1 is computed only
   where it takes at most about a minute: 4,096 points for the clouds without loops, 2,048 for those with loops
   (giotto-ph needs more than 100 s for a circle or a torus of 4,096 points);
3. one layer's time against its intrinsic dimension: Gaussian clouds in 4 to 64 dimensions, 512 examples exact and
   4,096 examples with ``ph_samples="auto"`` (the H1 of a subsample grows with the dimension; the exact H1 of 512
   examples hardly does).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench_callback import curved_layers

from lightning_topo import datasets
from lightning_topo import functional as F
from lightning_topo.engine import LayerSample, WorkerPool, measure, measure_layer
from lightning_topo.options import MeasureOptions, auto_ph_samples


def _load() -> str:
    return "load average " + ", ".join(f"{v:.1f}" for v in os.getloadavg())


def bench_epoch_end(repeats: int) -> None:
    n = 4096
    samples = curved_layers(8, n)
    pool = WorkerPool(2)
    rows = []
    try:
        for label, options, runs in (
            ('ph_samples="auto" (H1 on 512 farthest points)', MeasureOptions(ph_samples="auto"), repeats),
            ("ph_sparse=2 (sparse Rips, every example)", MeasureOptions(ph_sparse=2.0), 1),
        ):
            config = replace(options, n_threads=pool.threads)
            measure(samples, config, pool=pool)  # warm the workers (and their per-layer costs: longest first)
            times, cpu = [], []
            for _ in range(runs):
                start = time.perf_counter()
                report = measure(samples, config, pool=pool)
                times.append(time.perf_counter() - start)
                cpu.append(sum(pool.costs.values()))
            rows.append((label, min(times), statistics.median(times), min(cpu), report))
    finally:
        pool.shutdown()
    print(f"## Ten times the sample: 8 layers x {n} examples, widths 32-512, 2 worker processes ({_load()})\n")
    print("| H1 | epoch end: best (s) | median (s) | layers' compute, summed (s of one core) |")
    print("|---|---|---|---|")
    for label, best, median, cpu, _ in rows:
        print(f"| {label} | {best:.2f} | {median:.2f} | {cpu:.2f} |")
    bounds = rows[0][4].ph_bounds
    print(
        f"\nH0 (spanning tree) and TwoNN on all {n} examples in both; exact H1 would take about 30-40 s per layer. "
        f"Bottleneck bound of the auto subsample (2 x covering radius, normalised units): "
        f"{min(bounds.values()):.3f}-{max(bounds.values()):.3f} over the layers.\n"
    )
    _breakdown(samples["layer3"].points)


def _breakdown(x: torch.Tensor) -> None:
    """Where one layer's time goes, one core (torch single-threaded, as in a worker)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        n = x.shape[0]
        m = auto_ph_samples(n)

        def best(fn: Any, runs: int = 3) -> float:
            out = []
            for _ in range(runs):
                start = time.perf_counter()
                fn()
                out.append(time.perf_counter() - start)
            return min(out)

        from lightning_topo.functional.intrinsic_dimension import id_estimates

        d = F.pairwise_distances(x, normalize="quantile")
        idx, _ = F.farthest_point_cover(d, m, generator=torch.Generator().manual_seed(0), distance_matrix=True)
        sub = d[idx.sort().values[:, None], idx.sort().values].to(torch.float32).numpy()
        parts = {
            "distances (float64, blocks of the upper triangle)": best(lambda: F.pairwise_distances(x)),
            "0.9 quantile (exact) and the division": best(lambda: F.pairwise_distances(x, normalize="quantile"))
            - best(lambda: F.pairwise_distances(x)),
            "zero count (constancy, duplicates)": best(lambda: np.count_nonzero(d.numpy() == 0)),
            "TwoNN (exact, every example)": best(lambda: id_estimates(d, ["twonn"], distinct=True)),
            "H0: spanning tree (exact, every example)": best(lambda: F.h0_mst_deaths(d)),
            f"farthest-point subsample ({m}) and its covering radius": best(
                lambda: F.farthest_point_cover(d, m, generator=torch.Generator().manual_seed(0), distance_matrix=True)
            ),
            f"H1 on the subsample (giotto-ph, {m} points)": best(
                lambda: F.vietoris_rips(torch.from_numpy(sub), 1, distance_matrix=True, n_threads=1)
            ),
        }
        whole = best(lambda: measure_layer(LayerSample(x), MeasureOptions(ph_samples="auto", n_threads=1)))
    finally:
        torch.set_num_threads(threads)
    print(f"One layer ({n} x {x.shape[1]}), serial, one core, best of 3:\n")
    print("| part | seconds |")
    print("|---|---|")
    for name, t in parts.items():
        print(f"| {name} | {t:.3f} |")
    print(f"| whole layer (`measure_layer`, descriptors and Betti curves included) | {whole:.3f} |\n")


# -- accuracy ---------------------------------------------------------------------------------------------------------


def _clouds() -> dict[str, torch.Tensor]:
    gen = torch.Generator
    rng = np.random.default_rng(0)
    centres, labels = 3.0 * rng.normal(size=(10, 16)), np.arange(4096) % 10
    return {
        "class clusters, width 64 (no real loops at large scale)": curved_layers(2, 4096)["layer1"].points,
        "class clusters, width 256": curved_layers(4, 4096)["layer3"].points,
        "10 Gaussian blobs in R^16 (no loops)": torch.from_numpy(centres[labels] + rng.normal(size=(4096, 16))),
        "3 circles in R^2 (3 loops)": datasets.circles(3, 683, noise=0.02, generator=gen().manual_seed(3)),
        "torus in R^3 (2 loops)": datasets.torus(2048, noise=0.02, generator=gen().manual_seed(2)),
    }


METHODS = {
    "auto: 512 farthest points": MeasureOptions(ph_samples="auto"),
    "1024 farthest points": MeasureOptions(ph_samples=1024),
    "sparse Rips, c = 2": MeasureOptions(ph_sparse=2.0),
    "sparse Rips, c = 3": MeasureOptions(ph_sparse=3.0),
}


def _log_bottleneck(a: np.ndarray, b: np.ndarray) -> float:
    import gudhi

    a, b = a[np.isfinite(a[:, 1]) & (a[:, 0] > 0)], b[np.isfinite(b[:, 1]) & (b[:, 0] > 0)]
    return float(gudhi.bottleneck_distance(np.log(a), np.log(b)))


def bench_accuracy() -> None:
    import gudhi

    print(f"## Accuracy of the cheaper H1 paths against exact H1 ({_load()})\n")
    print(
        "Normalised units (distances divided by their 0.9 quantile). Seconds: the whole layer (`measure_layer`, one "
        "core). Bottleneck: H1 against the exact H1 diagram; its bound is twice the covering radius for a subsample "
        "(additive) and the factor c for sparse Rips (log-scale bottleneck <= log c). Betti L1: the L1 distance "
        "between the H1 Betti curves on the logged grid [0, 1], and in brackets the exact curve's own L1 norm. "
        "betti_1 (at 0.2), total_persistence_1, entropy_1: the logged descriptors, exact -> approximate.\n"
    )
    print(
        "| cloud | n | H1 | seconds | H1 bottleneck | bound | log-scale bottleneck | Betti L1 (exact norm) "
        "| betti_1 | total_persistence_1 | entropy_1 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    grid = MeasureOptions().grid
    step = float(grid[1] - grid[0])
    for name, x in _clouds().items():
        n = x.shape[0]
        start = time.perf_counter()
        exact = measure_layer(LayerSample(x), MeasureOptions(n_threads=1))
        t_exact = time.perf_counter() - start
        assert exact.diagrams is not None
        assert exact.betti_curve is not None
        ex1 = exact.diagrams[1]
        norm = float(np.abs(exact.betti_curve[1]).sum() * step)
        m = exact.metrics
        print(
            f"| {name} | {n} | exact | {t_exact:.1f} | 0 | - | 0 | 0 ({norm:.2f}) | {m['betti_1']:.0f} "
            f"| {m['total_persistence_1']:.2f} | {m['entropy_1']:.3f} |",
            flush=True,
        )
        for label, options in METHODS.items():
            start = time.perf_counter()
            approx = measure_layer(LayerSample(x), replace(options, n_threads=1))
            t = time.perf_counter() - start
            assert approx.diagrams is not None
            assert approx.betti_curve is not None
            ap1 = approx.diagrams[1]
            fin = [d[np.isfinite(d[:, 1])] for d in (ex1, ap1)]
            b1 = float(gudhi.bottleneck_distance(fin[0], fin[1]))
            logb = _log_bottleneck(ex1, ap1)
            l1 = float(np.abs(approx.betti_curve[1] - exact.betti_curve[1]).sum() * step)
            if options.ph_sparse is not None:
                bound = f"log-scale {math.log(options.ph_sparse):.3f}"
            elif approx.ph_bound is not None:
                bound = f"{approx.ph_bound:.3f}"
            else:
                bound = "exact"
            a = approx.metrics
            print(
                f"| | | {label} | {t:.2f} | {b1:.4f} | {bound} | {logb:.3f} | {l1:.2f} | {a['betti_1']:.0f} "
                f"| {a['total_persistence_1']:.2f} | {a['entropy_1']:.3f} |",
                flush=True,
            )
    print()


def bench_dimension(repeats: int) -> None:
    print(f"## One layer's time against its intrinsic dimension ({_load()})\n")
    print("Gaussian clouds, `measure_layer` in this process (giotto-ph on every core), best of the repeats.\n")
    print('| ambient dimension | TwoNN | 512 exact (s) | 4,096, `ph_samples="auto"` (s) |')
    print("|---|---|---|---|")
    exact, auto = MeasureOptions(), replace(MeasureOptions(), ph_samples="auto")
    for d in (4, 8, 16, 32, 64):
        x = torch.randn(4096, d, generator=torch.Generator().manual_seed(0))
        times = []
        for pts, opts in ((x[:512], exact), (x, auto)):
            measure_layer(LayerSample(pts), opts)  # warm
            times.append(
                min(_timed(lambda pts=pts, opts=opts: measure_layer(LayerSample(pts), opts)) for _ in range(repeats))
            )
        twonn = measure_layer(LayerSample(x), auto).metrics["id_twonn"]
        print(f"| {d} | {twonn:.1f} | {times[0]:.2f} | {times[1]:.2f} |")
    print()


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="1,2", help="comma-separated section numbers")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {os.cpu_count()} cores\n")
    only = {int(v) for v in args.only.split(",")}
    if 1 in only:
        bench_epoch_end(args.repeats)
    if 2 in only:
        bench_accuracy()
    if 3 in only:
        bench_dimension(args.repeats)


if __name__ == "__main__":
    main()
