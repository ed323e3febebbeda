"""Outside training: measure a model on a dataloader (``analyze``) or rank several models (``rank_models``).

The same pipeline as the callback: :func:`~lightning_topo.options.build_options` validates the options,
:class:`~lightning_topo.capture.ActivationCapture` keeps the sample, the engine measures it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import torch
from torch import nn

from lightning_topo._running import default_forward, map_tensors, running
from lightning_topo._warnings import TopologyWarning, WarningLedger
from lightning_topo.capture import INPUT_KEYS, ActivationCapture, LayerSpec, default_layers, resolve_layers
from lightning_topo.engine import WorkerPool, auto_workers, check_problems, measure
from lightning_topo.options import Mode, build_options, check_option_names, check_workers
from lightning_topo.report import TopologyReport
from lightning_topo.scores import SCORES

__all__ = ["analyze", "rank_models"]


def analyze(
    model: nn.Module,
    dataloader: Iterable[Any],
    layers: LayerSpec = None,
    *,
    n_samples: int = 512,
    maxdim: int = 1,
    score: str | Callable[[TopologyReport], float] | None = None,
    forward: Callable[[nn.Module, Any], Any] | None = None,
    device: torch.device | str | None = None,
    workers: int | Literal["auto"] = 0,
    **options: Any,
) -> TopologyReport:
    """Per-layer topology of ``model``'s representations of ``n_samples`` examples of ``dataloader``.

    The same measurement as :class:`~lightning_topo.TopologyMonitor` makes at a validation epoch, with the same
    options and checks, for a model outside a Trainer: the examples are the first ``n_samples`` (or, with
    ``sample="stratified"``, equal shares per class, in the order the batches come); the model runs in eval mode
    under ``torch.no_grad``. Afterwards, also when the forward pass raises, every module gets back its own mode,
    the hooks are removed and, when ``device`` moved the model, every parameter and buffer goes back where it was.
    Problems (a NaN layer, a NaN score) give a :class:`~lightning_topo.TopologyWarning`, or a ``RuntimeError``
    with ``on_error="raise"``.

    Args:
        model: any ``nn.Module`` (a LightningModule included).
        dataloader: batches, read as ``TopologyMonitor`` reads them (a tensor, ``(x, y, ...)`` or a namedtuple, a
            mapping or a dataclass with ``input_ids``/``x``/..., ``labels``, ``attention_mask``).
        layers: as in ``TopologyMonitor``.
        n_samples: examples measured.
        maxdim: highest homology dimension.
        score: a named score or callable, stored in ``report.score`` (with its needs added to the descriptors).
        forward: ``f(model, batch)`` running the model. Default: ``model(**entries)`` for a mapping batch whose
            entries that ``forward`` takes by name (all of them when it takes ``**kwargs``, as Hugging Face models
            do) hold the input and cover every required parameter of ``forward``; ``model(input)`` otherwise, the
            input read from the batch as the callback does (``input_fn`` chooses it).
        device: where to run the model and the batches (the model is moved there and back afterwards); default:
            the model is not moved and the batches go to the device of its first parameter.
        workers: worker processes for the layers (0: here; ``"auto"``: as ``TopologyMonitor`` chooses).
        **options: any measurement option of ``TopologyMonitor`` (``reduce``, ``descriptors``, ``normalize``,
            ``ph_samples``, ``label_fn``, ``sample``, ``num_classes``, ``seed``, ``on_error``, ...), validated the
            same way.

    Returns:
        A :class:`~lightning_topo.TopologyReport` (``.to_dict()``, ``.diagrams``).

    Raises:
        ValueError: for an invalid option or ``workers`` (the same message as ``TopologyMonitor``), checked before
            any batch is read, or a batch without a tensor.
        TypeError: for an unknown option name.
        RuntimeError: with ``on_error="raise"``, for a layer that could not be measured (NaN metrics); a layer whose
            computation failed raises its own error.

    Example:
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> x = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
        >>> data = DataLoader(TensorDataset(x), batch_size=16)
        >>> report = analyze(net, data, layers=["0", "2"], n_samples=48)
        >>> sorted(report.to_dict()["0"])[:3], report.n_samples
        (['betti_0', 'betti_1', 'entropy_0'], 48)
    """
    check_option_names(list(options), "analyze()")
    check_workers(workers)
    opts = build_options(n_samples=n_samples, maxdim=maxdim, score=score, **options)
    ledger = WarningLedger()
    optional = default_layers(model) if layers is None else ()
    capture = ActivationCapture(model, resolve_layers(model, layers), opts, opts.n_samples, optional, ledger)
    with running(model, device) as target:
        try:
            capture.start()
            with torch.no_grad():
                for batch in dataloader:
                    batch = map_tensors(batch, lambda t: t.to(target))
                    inputs = capture.reader.inputs(batch)
                    if inputs is None:
                        raise ValueError(
                            f"Expected every batch to hold the model input: a tensor, a tuple (x, y, ...), or a "
                            f"mapping or dataclass with one of {', '.join(INPUT_KEYS)}; got a {type(batch).__name__}. "
                            "Pass `input_fn=lambda batch: ...`."
                        )
                    capture.begin_batch(batch)
                    if forward is not None:
                        forward(model, batch)
                    else:
                        default_forward(model, batch, inputs)
                    capture.end_batch()
                    if capture.full:
                        break
            samples = capture.finish()
            for alias, why in capture.skipped.items():
                ledger(("skipped", alias), f"analyze left layer {alias!r} out of the default layers: {why}.")
        finally:
            capture.stop()
    n_workers = auto_workers(workers, n_layers=len(samples), n_samples=opts.n_samples, maxdim=maxdim)
    pool = WorkerPool(n_workers) if n_workers else None
    try:
        report = measure(samples, opts.measure, score=opts.score, pool=pool, on_error=opts.on_error)
    finally:
        if pool is not None:
            pool.shutdown()
    check_problems(report, opts.on_error, ledger, source="analyze")
    return report


def rank_models(
    models: Mapping[str, nn.Module],
    dataloader: Iterable[Any],
    *,
    score: str | Callable[[TopologyReport], float] = "decay",
    score_mode: Mode = "min",
    **analyze_kwargs: Any,
) -> list[tuple[str, float]]:
    """Rank models by a topological score on the same data, best first in the score's own direction (NaN last).

    The default, ``"decay"``, is Suresh et al.'s topological-complexity decay over the depth profile of each
    model (lower: faster simplification, reported to predict higher fine-tuning accuracy). A model whose score
    is NaN gets a warning saying why.

    Args:
        models: ``{name: model}``.
        dataloader: the data every model sees (the same examples).
        score: a named score (its direction is its own) or a callable ``f(report) -> float``.
        score_mode: the direction of a callable score, ``"min"`` (lower is better) or ``"max"``.
        **analyze_kwargs: passed to :func:`analyze` (``layers``, ``n_samples``, any measurement option).

    Returns:
        ``[(name, score), ...]`` sorted best first.
    """
    direction = build_options(score=score, score_mode=score_mode).score
    if direction is None:
        raise ValueError(
            f"Expected `score` to be one of {sorted(SCORES)} or a callable but got None: rank_models ranks by a "
            "score; pass one (the default is 'decay')."
        )
    scored = []
    for name, model in models.items():
        # analyze's own warnings are said again naming the model ("analyze: layer 'x' ..." of which model?); the
        # user's filters still apply (ignored warnings are not recorded, "error" raises inside analyze)
        try:
            with warnings.catch_warnings(record=True) as caught:
                report = analyze(model, dataloader, score=score, score_mode=score_mode, **analyze_kwargs)
        finally:
            for w in caught:
                message = str(w.message)
                if issubclass(w.category, TopologyWarning) and message.startswith("analyze"):
                    message = f"rank_models, model {name!r}: {message.removeprefix('analyze').lstrip(': ')}"
                warnings.warn_explicit(message, w.category, w.filename, w.lineno)
        scored.append((name, float(report.score) if report.score is not None else math.nan))
    sign = 1.0 if direction.mode == "min" else -1.0
    return sorted(scored, key=lambda item: (math.isnan(item[1]), sign * item[1] if not math.isnan(item[1]) else 0.0))
