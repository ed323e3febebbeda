"""Persistence engine and intrinsic dimension against the reference libraries, as ratios in one run.

Run: ``python benchmarks/bench_engine.py [--quick] [--repeats R]``. Prints Markdown tables (pasted into
``benchmarks/RESULTS.md``). Every configuration also checks that the diagrams agree (bottleneck distance
per dimension relative to the cloud's diameter) and that the ID estimates agree.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import cloud, timed

from lightning_topo.functional import intrinsic_dimension, vietoris_rips


def _finite(d: np.ndarray) -> np.ndarray:
    return d[np.isfinite(d[:, 1])]


def bench_rips(sizes: list[int], dims: list[int], repeats: int) -> None:
    import gudhi
    import ripser
    from gph import ripser_parallel
    from gudhi.sklearn.rips_persistence import RipsPersistence

    print(f"## Vietoris-Rips, maxdim = 1 (seconds, minimum over at least {repeats} interleaved rounds)\n")
    print(
        "| cloud | N | D | ours (default) | ours (n_threads=1) | ours (backend=gudhi) | giotto-ph | ripser.py | GUDHI "
        "| ratio default / fastest peer | ratio best of ours / fastest peer | max bottleneck / diameter |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for kind in ("gaussian", "circle"):
        for n in sizes:
            for dim in dims:
                x = cloud(kind, n, dim)
                xt = torch.from_numpy(x)
                runs = {
                    "ours": lambda xt=xt: vietoris_rips(xt, maxdim=1),
                    "ours1": lambda xt=xt: vietoris_rips(xt, maxdim=1, n_threads=1),
                    "ours-gudhi": lambda xt=xt: vietoris_rips(xt, maxdim=1, backend="gudhi"),
                    "giotto-ph": lambda x=x: ripser_parallel(x, maxdim=1)["dgms"],
                    "ripser.py": lambda x=x: ripser.ripser(x, maxdim=1)["dgms"],
                    "gudhi": lambda x=x: RipsPersistence(homology_dimensions=[0, 1], n_jobs=1).fit_transform([x])[0],
                }
                # interleaved rounds (every library once per round), the minimum per library; small clouds get
                # more rounds so that each configuration runs for about three seconds (giotto-ph alone varies
                # up to 2x from one call to the next on the same cloud)
                first = {name: timed(fn, 1) for name, fn in runs.items()}
                outs = {name: out for name, (_, out) in first.items()}
                rounds = min(15, max(repeats, int(3.0 / max(sum(t for t, _ in first.values()), 1e-3))))
                times = {name: t for name, (t, _) in first.items()}
                for _ in range(rounds - 1):
                    for name, fn in runs.items():
                        times[name] = min(times[name], timed(fn, 1)[0])
                diameter = float(np.max(np.linalg.norm(x[:, None] - x[None], axis=-1))) if n <= 1024 else 1.0
                worst = 0.0
                for peer in ("giotto-ph", "ripser.py", "gudhi"):
                    for q in range(2):
                        b = gudhi.bottleneck_distance(_finite(outs["ours"][q]), _finite(np.asarray(outs[peer][q])))
                        worst = max(worst, b / diameter)
                    b = gudhi.bottleneck_distance(_finite(outs["ours"][q]), _finite(outs["ours-gudhi"][q]))
                    worst = max(worst, b / diameter)
                fastest = min(times["giotto-ph"], times["ripser.py"], times["gudhi"])
                best_ours = min(times["ours"], times["ours1"], times["ours-gudhi"])
                print(
                    f"| {kind} | {n} | {dim} | {times['ours']:.3f} | {times['ours1']:.3f} | {times['ours-gudhi']:.3f} "
                    f"| {times['giotto-ph']:.3f} | {times['ripser.py']:.3f} | {times['gudhi']:.3f} "
                    f"| {times['ours'] / fastest:.2f} | {best_ours / fastest:.2f} | {worst:.1e} |",
                    flush=True,
                )
    print()


def bench_id(sizes: list[int], repeats: int) -> None:
    import skdim

    print(f"## Intrinsic dimension: 10-ball in R^64 (seconds, median of {repeats})\n")
    print(
        "| N | ours TwoNN | skdim TwoNN | ratio | ours MLE (k=10..20) | ours MLE (k=20) | skdim MLE (k=20) | "
        "ratio (k=20) | TwoNN ours / skdim | MLE ours / skdim |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for n in sizes:
        z = rng.normal(size=(n, 10))
        z *= (rng.uniform(size=(n, 1)) ** 0.1) / np.linalg.norm(z, axis=1, keepdims=True)
        x = z @ np.linalg.qr(rng.normal(size=(64, 64)))[0][:10]
        xt = torch.from_numpy(x)
        t_two, v_two = timed(lambda xt=xt: intrinsic_dimension(xt, "twonn"), repeats)
        t_sk2, v_sk2 = timed(lambda x=x: skdim.id.TwoNN().fit(x).dimension_, repeats)
        t_mle, _ = timed(lambda xt=xt: intrinsic_dimension(xt, "mle"), repeats)
        t_mle20, v_mle20 = timed(lambda xt=xt: intrinsic_dimension(xt, "mle", k1=20, k2=20), repeats)
        t_skm, v_skm = timed(lambda x=x: skdim.id.MLE().fit(x, n_neighbors=20, comb="mle").dimension_, repeats)
        print(
            f"| {n} | {t_two:.3f} | {t_sk2:.3f} | {t_two / t_sk2:.2f} | {t_mle:.3f} | {t_mle20:.3f} | {t_skm:.3f} "
            f"| {t_mle20 / t_skm:.2f} | {v_two:.3f} / {v_sk2:.3f} | {v_mle20:.3f} / {v_skm:.3f} |",
            flush=True,
        )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes only (a smoke run)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-id", action="store_true")
    parser.add_argument("--skip-rips", action="store_true")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}\n")
    if not args.skip_rips:
        bench_rips([256] if args.quick else [256, 512, 1024], [16, 128], args.repeats)
    if not args.skip_id:
        bench_id([1000] if args.quick else [1000, 5000, 8192], args.repeats)


if __name__ == "__main__":
    main()
