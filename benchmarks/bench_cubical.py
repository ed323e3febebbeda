"""Cubical persistence of ResNet-18 feature maps: the libraries against each other, as ratios in one run.

Run: ``python benchmarks/bench_cubical.py [--quick] [--repeats R] [--only 1,2]``. Prints Markdown tables for
``benchmarks/RESULTS.md``:

1. per volume: the seconds of every cubical persistence implementation installed here on the same ReLU feature
   maps (torchvision ResNet-18 stages ``layer1`` .. ``layer4``, untrained seeded weights, smooth random images at
   112 x 112 and 224 x 224: nothing is downloaded), maxdim 2, minimum over interleaved rounds, the ratio to the
   fastest of the same construction, and whether every library gives the *same pairs* as GUDHI (sorted, float64,
   zero-length bars dropped, essential bars ``death = inf``). The axis order of Suresh et al. (``(W, H, C)``) is
   timed beside ``(C, H, W)``.
2. the callback's cubical workload: ``cubical_samples=8`` images of a ResNet-18 at 112 x 112, stages
   ``layer1`` .. ``layer4`` (32 volumes), normalised per layer, persistence and Betti numbers at one threshold,
   serially, on a warm 2-process :class:`~lightning_topo.engine.WorkerPool` (one task per volume) and on 2
   threads (CubicalRipser releases the GIL), against the 1 s target.

Optional libraries (each column shows ``n/a`` when missing): ``cripser`` (CubicalRipser, V- and T-construction),
``gudhi`` (``CubicalComplex`` with ``vertices=`` or ``top_dimensional_cells=``), ``oineus``, ``homcloud``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import timed

from lightning_topo.engine import WorkerPool
from lightning_topo.functional import cubical_betti, cubical_persistence, normalize_volumes

STAGES = ("layer1", "layer2", "layer3", "layer4")
_DBL_MAX = np.finfo(np.float64).max


def resnet_volumes(size: int, n_images: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``{stage: (n_images, C, H, W) float64}``: ResNet-18 stage outputs (ReLU maps) of smooth random images."""
    import torchvision

    torch.manual_seed(seed)
    model = torchvision.models.resnet18(weights=None).eval()
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(n_images, 3, size // 8, size // 8, generator=g)
    images = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    images = images + 0.1 * torch.randn(images.shape, generator=g)
    out: dict[str, torch.Tensor] = {}
    handles = [
        getattr(model, s).register_forward_hook(lambda m, i, o, s=s: out.__setitem__(s, o.detach())) for s in STAGES
    ]
    with torch.no_grad():
        model(images)
    for h in handles:
        h.remove()
    return {s: out[s].double().numpy() for s in STAGES}


# --- every implementation, returning sorted (n, 2) float64 pairs per dimension ---------------------------------
def _clean(pairs: np.ndarray) -> np.ndarray:
    pairs = np.asarray(pairs, dtype=np.float64).reshape(-1, 2).copy()
    pairs[pairs[:, 1] >= _DBL_MAX, 1] = np.inf
    pairs = pairs[pairs[:, 1] > pairs[:, 0]]
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def _gudhi(kind: str) -> Callable[[np.ndarray], list[np.ndarray]]:
    import gudhi

    def run(vol: np.ndarray) -> list[np.ndarray]:
        c = gudhi.CubicalComplex(**{kind: vol})
        c.compute_persistence(homology_coeff_field=2, min_persistence=0.0)
        return [_clean(c.persistence_intervals_in_dimension(q)) for q in range(3)]

    return run


def _cripser(top: bool, n_threads: int = 1, transpose: bool = False) -> Callable[[np.ndarray], list[np.ndarray]]:
    import cripser

    compute = cripser.computePH_T if top else cripser.computePH

    def run(vol: np.ndarray) -> list[np.ndarray]:
        if transpose:  # Suresh et al.: (C, H, W) -> (W, H, C), then location="birth"
            vol = np.ascontiguousarray(vol.transpose(2, 1, 0))
            ph = compute(vol, maxdim=2, location="birth", n_threads=n_threads)
        else:
            ph = compute(vol, maxdim=2, n_threads=n_threads)
        return [_clean(ph[ph[:, 0] == q][:, 1:3]) for q in range(3)]

    return run


def _oineus(values_on: str) -> Callable[[np.ndarray], list[np.ndarray]]:
    import oineus

    def run(vol: np.ndarray) -> list[np.ndarray]:
        fil = oineus.cube_filtration(vol, max_dim=3, values_on=values_on)
        dcmp = oineus.Decomposition(fil, True)  # dualize: cohomology, oineus' fast path
        dcmp.reduce(oineus.ReductionParams())
        dgm = dcmp.diagram(fil=fil, include_inf_points=True)
        return [_clean(dgm.in_dimension(q)) for q in range(3)]

    return run


def _homcloud() -> Callable[[np.ndarray], list[np.ndarray]]:
    import homcloud.interface as hc

    def run(vol: np.ndarray) -> list[np.ndarray]:
        pdl = hc.PDList.from_bitmap_levelset(vol, "sublevel", save_suppl_info=False)
        out = []
        for q in range(3):
            pd = pdl.dth_diagram(q)
            ess = np.asarray(pd.essential_births, dtype=np.float64)
            pairs = np.concatenate([np.stack([pd.births, pd.deaths], 1), np.stack([ess, np.full(len(ess), np.inf)], 1)])
            out.append(_clean(pairs))
        return out

    return run


def _ours(backend: str, construction: str) -> Callable[[np.ndarray], list[np.ndarray]]:
    def run(vol: np.ndarray) -> list[np.ndarray]:
        return list(cubical_persistence(vol, 2, construction=construction, backend=backend))  # type: ignore[arg-type]

    return run


def contenders() -> dict[str, dict[str, Callable[[np.ndarray], list[np.ndarray]]]]:
    """``{construction: {name: fn}}`` for what is installed; the GUDHI entry of each construction is the reference."""
    found: dict[str, dict[str, Callable[[np.ndarray], list[np.ndarray]]]] = {"vertex": {}, "top": {}}
    makers: list[tuple[str, str, Callable[[], Callable[[np.ndarray], list[np.ndarray]]]]] = [
        ("vertex", "GUDHI", lambda: _gudhi("vertices")),
        ("vertex", "cripser", lambda: _cripser(False)),
        ("vertex", "cripser (W,H,C)", lambda: _cripser(False, transpose=True)),
        ("vertex", "cripser 2 threads", lambda: _cripser(False, n_threads=2)),
        ("vertex", "oineus", lambda: _oineus("vertices")),
        ("vertex", "HomCloud", _homcloud),
        ("vertex", "ours", lambda: _ours("auto", "vertex")),
        ("top", "GUDHI", lambda: _gudhi("top_dimensional_cells")),
        ("top", "tcripser", lambda: _cripser(True)),
        ("top", "oineus", lambda: _oineus("cells")),
        ("top", "ours", lambda: _ours("auto", "top")),
    ]
    for construction, name, make in makers:
        try:
            found[construction][name] = make()
        except ImportError:
            print(f"<!-- {name} ({construction}): not installed -->")
    return found


def bench_libraries(repeats: int, n_images: int) -> None:
    runs = contenders()
    volumes = {size: resnet_volumes(size, n_images) for size in (112, 224)}
    for construction, fns in runs.items():
        names = list(fns)
        label = "V-construction (values on vertices)" if construction == "vertex" else "T-construction (top cells)"
        print(f"### {label}: seconds per volume, minimum over {repeats} interleaved rounds, maxdim 2\n")
        head = " | ".join(names)
        print(f"| input | stage | volume | {head} | fastest | ratios to fastest | same pairs as GUDHI |")
        print("|---|---|---|" + "---|" * (len(names) + 3))
        for size, stages in volumes.items():
            for stage, maps in stages.items():
                vol = np.ascontiguousarray(maps[0])
                times = dict.fromkeys(names, np.inf)
                outs: dict[str, list[np.ndarray]] = {}
                for _ in range(repeats):
                    for name in names:
                        t, out = timed(lambda fn=fns[name], vol=vol: fn(vol), 1)
                        times[name] = min(times[name], t)
                        outs[name] = out  # type: ignore[assignment]
                # identical diagrams on every image of the batch, not only the timed one
                same = {name: True for name in names}
                for i in range(maps.shape[0]):
                    v = np.ascontiguousarray(maps[i])
                    ref = fns["GUDHI"](v) if i else outs["GUDHI"]
                    for name in names:
                        got = fns[name](v) if i else outs[name]
                        same[name] &= all(np.array_equal(a, b) for a, b in zip(ref, got, strict=True))
                fastest = min(times, key=lambda k: times[k])
                ratios = ", ".join(f"{name} {times[name] / times[fastest]:.1f}" for name in names)
                identical = "yes" if all(same.values()) else "NO: " + ", ".join(n for n, ok in same.items() if not ok)
                print(
                    f"| {size} | {stage} | {'x'.join(map(str, vol.shape))} | "
                    + " | ".join(f"{times[n]:.4f}" for n in names)
                    + f" | {fastest} | {ratios} | {identical} ({maps.shape[0]} images) |",
                    flush=True,
                )
        print()


def volume_complexity(volume: np.ndarray, threshold: float, backend: str) -> np.ndarray:
    """A worker task: the Betti numbers of one normalised volume at the threshold (module level: picklable)."""
    return cubical_betti(cubical_persistence(volume, 2, backend=backend), threshold)  # type: ignore[arg-type]


def bench_callback_workload(repeats: int, threshold: float = 0.5) -> None:
    maps = resnet_volumes(112, 8, seed=1)
    print(
        "### The callback's workload: `cubical_samples=8`, ResNet-18 at 112 x 112, layer1..layer4 "
        f"(32 volumes; normalised per layer; Betti numbers at threshold {threshold})\n"
    )
    print("Seconds per measured validation, minimum over interleaved rounds:\n")
    pool = WorkerPool(2, threads=1)
    threads = ThreadPoolExecutor(2)
    try:
        pool.warm_up()
        # a first round warms the pool (imports, fork) and the caches
        for f in [pool.submit(volume_complexity, np.zeros((2, 2, 2)), threshold, "auto") for _ in range(4)]:
            f.result()

        def volumes() -> list[np.ndarray]:
            out = []
            for stage in STAGES:
                normed = normalize_volumes(torch.from_numpy(maps[stage])).numpy()
                out.extend(np.ascontiguousarray(v) for v in normed)
            return out

        def serial(backend: str) -> Callable[[], Any]:
            return lambda: [volume_complexity(v, threshold, backend) for v in volumes()]

        def in_pool(backend: str) -> Callable[[], Any]:
            def run() -> Any:
                futures = [pool.submit(volume_complexity, v, threshold, backend) for v in volumes()]
                return [f.result() for f in futures]

            return run

        def in_threads() -> Any:
            return list(threads.map(lambda v: volume_complexity(v, threshold, "cripser"), volumes()))

        runs: dict[str, Callable[[], Any]] = {
            "cripser, serial": serial("cripser"),
            "cripser, 2 processes (WorkerPool)": in_pool("cripser"),
            "cripser, 2 threads": in_threads,
            "GUDHI, serial": serial("gudhi"),
            "GUDHI, 2 processes (WorkerPool)": in_pool("gudhi"),
        }
        times = dict.fromkeys(runs, np.inf)
        results: dict[str, Any] = {}
        for _ in range(repeats):
            for name, fn in runs.items():
                t, out = timed(fn, 1)
                times[name] = min(times[name], t)
                results[name] = out
        reference = np.stack(results["GUDHI, serial"])
        print("| how | seconds | ratio to GUDHI serial | same Betti numbers |")
        print("|---|---|---|---|")
        for name, t in times.items():
            same = np.array_equal(np.stack(results[name]), reference)
            print(f"| {name} | {t:.3f} | {t / times['GUDHI, serial']:.2f} | {'yes' if same else 'NO'} |")
        cpu = []
        for _ in range(repeats):
            start = time.process_time()
            runs["cripser, serial"]()
            cpu.append(time.process_time() - start)
        print(
            f"\nCPU seconds of the serial cripser run (process time, less sensitive to other load on the machine): "
            f"{min(cpu):.3f}; on two free cores a 2-process pool would take about half of it."
        )
        per_stage = {}
        for stage in STAGES:
            normed = normalize_volumes(torch.from_numpy(maps[stage])).numpy()
            start = time.perf_counter()
            for v in normed:
                cubical_persistence(np.ascontiguousarray(v), 2, backend="cripser")
            per_stage[stage] = time.perf_counter() - start
        print(
            "Serial cripser time per stage (8 volumes): "
            + ", ".join(f"{s} {tuple(maps[s].shape[1:])}: {t:.3f} s" for s, t in per_stage.items())
        )
        betti = np.stack(results["cripser, serial"]).reshape(len(STAGES), 8, -1)
        omega = {s: float(betti[i].sum(axis=1).mean()) for i, s in enumerate(STAGES)}
        print("Omega per stage at the threshold: " + ", ".join(f"{s} {w:.1f}" for s, w in omega.items()))
        print()
    finally:
        pool.shutdown()
        threads.shutdown()


def bench_monitor(repeats: int) -> None:
    """What ``cubical_samples=8`` adds to a measured validation of a ResNet-18 at 112 x 112 (layer1..layer4)."""
    import tempfile
    import warnings

    import lightning.pytorch as pl
    import torchvision
    from torch.utils.data import DataLoader, TensorDataset

    from lightning_topo import TopologyMonitor

    class Net(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.net = torchvision.models.resnet18(num_classes=10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            self(batch[0])

    g = torch.Generator().manual_seed(0)
    loader = DataLoader(TensorDataset(torch.rand(256, 3, 112, 112, generator=g), torch.arange(256) % 10), batch_size=64)
    model = Net().eval()
    layers = ["net.layer1", "net.layer2", "net.layer3", "net.layer4"]

    def validate(cubical: int) -> float:
        monitor = TopologyMonitor(layers=layers, n_samples=256, cubical_samples=cubical, log_figures=False)
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer = pl.Trainer(
                logger=False, default_root_dir=tmp, callbacks=[monitor], enable_progress_bar=False, accelerator="cpu"
            )
            trainer.validate(model, loader, verbose=False)
        assert monitor.last_report is not None
        return monitor.last_report.elapsed_s

    validate(0)  # warm up
    times: dict[int, list[float]] = {0: [], 8: []}
    for _ in range(repeats):  # interleaved
        for k in times:
            times[k].append(validate(k))
    best = {k: min(v) for k, v in times.items()}
    print("#### What `cubical_samples=8` adds to a measured validation (ResNet-18, 112 x 112, layer1..layer4)\n")
    print("`--only 3`; `trainer.validate` with `TopologyMonitor(layers=layer1..layer4, n_samples=256)`, the")
    print(f"measurement's wall time (`topo/time_s`), minimum of {repeats} interleaved runs, default workers.\n")
    print("| cubical_samples | measurement (s) |")
    print("|---|---|")
    for k, t in best.items():
        print(f"| {k} | {t:.3f} |")
    print(f"\nAdded by the cubical complexity: {best[8] - best[0]:.3f} s per measured validation (target <= 1 s).\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one round, two images per shape")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="1,2,3", help="sections to run, e.g. 2")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    sections = {int(s) for s in args.only.split(",")}
    torch.set_num_threads(1)
    print(f"<!-- torch {torch.__version__}, numpy {np.__version__}, {os.cpu_count()} cores -->\n")
    if 1 in sections:
        bench_libraries(repeats, n_images=2 if args.quick else 4)
    if 2 in sections:
        bench_callback_workload(max(repeats, 3))
    if 3 in sections:
        bench_monitor(max(repeats, 3))


if __name__ == "__main__":
    main()
