"""The worker pool: processes that compute layers in parallel, kept warm across measurements.

giotto-ph holds the GIL while it computes (measured: two threads are no faster than one), so layers run in
parallel only in separate processes. On Linux the workers are forked, like DataLoader workers: ``spawn``
would re-import the user's training script in every worker (re-running an unguarded script) and take
seconds to import torch. Workers only ever receive CPU tensors and arrays (device work stays in the main
process), so a CUDA context in the parent does not matter. Elsewhere they are spawned. Each worker limits torch
to one thread and giotto-ph to its share of the cores.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Literal

__all__ = ["WorkerPool", "auto_workers", "available_cores"]


def available_cores() -> int:
    """Cores this process may use (its CPU affinity where the platform tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def auto_workers(
    workers: int | Literal["auto"],
    *,
    n_layers: int,
    n_samples: int,
    maxdim: int,
    background: bool = False,
    cores: int | None = None,
) -> int:
    """How many worker processes to use.

    ``"auto"``: one per core up to the number of layers when a layer is costly enough to be worth shipping to a
    process (``n_samples >= 256`` and ``maxdim >= 1``; below that a layer takes milliseconds); at least one
    when the work must leave the main process (``background``). ``cores``: the cores this process may use
    (default all it sees; DDP ranks on one machine share them).
    """
    if workers != "auto":
        return int(workers)
    cores = available_cores() if cores is None else max(1, cores)
    if background:
        return max(1, min(n_layers, cores - 1))
    if cores < 2 or n_layers < 2 or maxdim == 0 or n_samples < 256:
        return 0
    return min(n_layers, cores)


def _start_method() -> str:
    return "fork" if "fork" in multiprocessing.get_all_start_methods() and os.name == "posix" else "spawn"


def _init_worker() -> None:
    # torch stays single-threaded in a worker: a forked child must not enter the parent's OpenMP pool (GNU
    # OpenMP is not fork-safe; DataLoader workers do the same). giotto-ph starts its own threads per call and
    # gets the worker's share of the cores through `n_threads`.
    import torch

    torch.set_num_threads(1)


def _ready() -> int:
    # importing here makes the first real task fast: giotto-ph imports scikit-learn (about 0.2 s per worker)
    import gph  # noqa: F401

    import lightning_topo.engine.run  # noqa: F401

    return os.getpid()


class WorkerPool:
    """``workers`` processes with ``threads`` giotto-ph threads each.

    :meth:`submit` never raises for a broken pool: it returns a failed future, and :attr:`broken` tells the
    owner to fall back to the main process.
    """

    def __init__(self, workers: int, threads: int | None = None, cores: int | None = None) -> None:
        self.workers = workers
        cores = available_cores() if cores is None else cores
        self.threads = threads if threads is not None else max(1, cores // workers)
        self.broken = False
        # seconds of each layer's last computation (by alias): the next measurement submits the costliest first
        self.costs: dict[str, float] = {}
        # how far past its H1 horizon each layer's deaths went at its last measurement: where its next first cut goes
        self.reaches: dict[str, float | None] = {}
        self._executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context(_start_method()), initializer=_init_worker
        )

    def warm_up(self) -> None:
        """Start the processes now, without waiting for them."""
        for _ in range(self.workers):
            self.submit(_ready)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        try:
            return self._executor.submit(fn, *args)
        except (BrokenProcessPool, RuntimeError) as err:
            self.broken = True
            future: Future[Any] = Future()
            future.set_exception(BrokenProcessPool(str(err)))
            return future

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
