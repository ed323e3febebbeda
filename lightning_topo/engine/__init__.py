"""The measurement engine: one layer (:mod:`.layer`), many layers serially or on the pool (:mod:`.run`), the
pool itself (:mod:`.pool`). Pure torch, numpy and ``functional``; never imports lightning or plotting."""

from lightning_topo.engine.layer import (
    LayerResult,
    LayerSample,
    PreparedLayer,
    finish_layer,
    measure_layer,
    prepare_layer,
)
from lightning_topo.engine.pool import WorkerPool, auto_workers, available_cores
from lightning_topo.engine.run import (
    FigureRequest,
    Measurement,
    assemble,
    check_problems,
    find_copies,
    measure,
    run_layer,
    start_measurement,
)

__all__ = [
    "FigureRequest",
    "LayerResult",
    "LayerSample",
    "Measurement",
    "PreparedLayer",
    "WorkerPool",
    "assemble",
    "auto_workers",
    "available_cores",
    "check_problems",
    "find_copies",
    "finish_layer",
    "measure",
    "measure_layer",
    "prepare_layer",
    "run_layer",
    "start_measurement",
]
