"""A small process pool for per-layer persistence, kept warm across epochs.

giotto-ph holds the GIL while it computes (measured: two threads are no faster than one), so layers run in
parallel only in separate processes. On Linux the workers are forked, like DataLoader workers: ``spawn``
would re-import the user's training script in every worker (re-running an unguarded script) and take
seconds to import torch. Workers only ever receive CPU tensors and arrays (device work stays in the main
process), so a CUDA context in the parent does not matter. Elsewhere they are spawned. Each worker limits torch
and giotto-ph to its share of the cores.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor


def available_cores() -> int:
    """Cores this process may use (its CPU affinity where the platform tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def _start_method() -> str:
    return "fork" if "fork" in multiprocessing.get_all_start_methods() and os.name == "posix" else "spawn"


def _init_worker(threads: int) -> None:
    # torch stays single-threaded in a worker: a forked child must not enter the parent's OpenMP pool (GNU
    # OpenMP is not fork-safe; DataLoader workers do the same). giotto-ph starts its own threads per call and
    # gets the worker's share of the cores through `n_threads`.
    import torch

    torch.set_num_threads(1)


def _ready() -> int:
    # importing here makes the first real task fast
    import lightning_topo._compute  # noqa: F401

    return os.getpid()


class LayerPool:
    """``workers`` processes with ``threads`` threads each; :meth:`warm_up` starts them without waiting."""

    def __init__(self, workers: int, threads: int) -> None:
        self.workers = workers
        self.threads = threads
        self.executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context(_start_method()),
            initializer=_init_worker,
            initargs=(threads,),
        )

    def warm_up(self) -> None:
        for _ in range(self.workers):
            self.executor.submit(_ready)

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
