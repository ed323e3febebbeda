"""Outside training: measure a model on a dataloader (``analyze``) or rank several models (``rank_models``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn

from lightning_topo._compute import DEFAULT_DESCRIPTORS, ComputeConfig, compute_report
from lightning_topo.capture import ActivationCapture, LayerSpec, first_tensor, resolve_layers
from lightning_topo.functional._checks import check_maxdim, check_positive_int
from lightning_topo.report import TopologyReport
from lightning_topo.scores import resolve_score

__all__ = ["analyze", "rank_models"]


@torch.no_grad()
def analyze(
    model: nn.Module,
    dataloader: Iterable[Any],
    layers: LayerSpec = None,
    *,
    n_samples: int = 512,
    maxdim: int = 1,
    reduce: Literal["auto", "flatten", "mean", "project"] = "auto",
    max_features: int = 256,
    descriptors: Sequence[str] = DEFAULT_DESCRIPTORS,
    normalize: Literal["quantile", "median", "max"] | None = "quantile",
    ph_samples: int | None = None,
    score: str | Callable[[TopologyReport], float] | None = None,
    forward: Callable[[nn.Module, Any], Any] | None = None,
    device: torch.device | str | None = None,
    seed: int = 0,
) -> TopologyReport:
    """Per-layer topology of ``model``'s representations of the first ``n_samples`` examples of ``dataloader``.

    The same measurement as :class:`~lightning_topo.TopologyMonitor` makes at a validation epoch, for a model
    outside a Trainer: the model runs in eval mode under ``torch.no_grad`` and its mode is restored afterwards;
    hooks are removed also when the forward pass raises.

    Args:
        model: any ``nn.Module`` (a LightningModule included).
        dataloader: batches; the first tensor of a batch is the input.
        layers: as in ``TopologyMonitor``.
        n_samples: examples measured.
        maxdim: highest homology dimension.
        reduce: per-example reduction, as in ``TopologyMonitor``.
        max_features: target width of ``reduce="project"``.
        descriptors: as in ``TopologyMonitor``.
        normalize: distance normalisation.
        ph_samples: persistence on a farthest-point subsample of this size.
        score: a named score or callable, stored in ``report.score``.
        forward: ``f(model, batch)`` running the model; default ``model(first tensor of batch)``.
        device: where to run; default the device of the model's first parameter.
        seed: seed of projections and subsamples.

    Returns:
        A :class:`~lightning_topo.TopologyReport` (``.to_dict()``, ``.diagrams``).

    Example:
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> x = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
        >>> data = DataLoader(TensorDataset(x), batch_size=16)
        >>> report = analyze(net, data, layers=["0", "2"], n_samples=48)
        >>> sorted(report.to_dict()["0"])[:3], report.n_samples
        (['betti_0', 'betti_1', 'entropy_0'], 48)
    """
    n_samples = check_positive_int("n_samples", n_samples, minimum=3)
    config = ComputeConfig(
        maxdim=check_maxdim(maxdim),
        normalize=normalize,
        ph_samples=ph_samples,
        descriptors=tuple(descriptors),
        seed=seed,
    )
    _, score_fn = resolve_score(score)
    capture = ActivationCapture(
        model, resolve_layers(model, layers), reduce=reduce, max_features=max_features, seed=seed
    )
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        capture.attach()
        for batch in dataloader:
            batch = _to_device(batch, device)
            inputs = first_tensor(batch)
            if inputs is None:
                raise ValueError("Expected every batch to hold a tensor (the model input).")
            keep = torch.arange(min(int(inputs.shape[0]), n_samples - capture.n_kept))
            capture.begin_batch(batch, keep)
            if forward is None:
                model(inputs)
            else:
                forward(model, batch)
            capture.end_batch()
            if capture.n_kept >= n_samples:
                break
        capture.detach()
        samples = capture.collect()
        problems = dict(capture.problems)
    finally:
        capture.detach()
        model.train(was_training)
    report = compute_report(samples, config, problems=problems)
    if score_fn is not None:
        report.score = float(score_fn(report))
    return report


def rank_models(
    models: Mapping[str, nn.Module],
    dataloader: Iterable[Any],
    *,
    score: str | Callable[[TopologyReport], float] = "decay",
    mode: Literal["min", "max"] = "min",
    **analyze_kwargs: Any,
) -> list[tuple[str, float]]:
    """Rank models by a topological score on the same data, best first (NaN scores last).

    The default, ``"decay"``, is Suresh et al.'s topological-complexity decay over the depth profile of each
    model (lower: faster simplification, reported to predict higher fine-tuning accuracy).

    Args:
        models: ``{name: model}``.
        dataloader: the data every model sees (the same examples).
        score: a named score or a callable ``f(report) -> float``.
        mode: ``"min"`` when lower scores are better, ``"max"`` otherwise.
        **analyze_kwargs: passed to :func:`analyze` (``layers``, ``n_samples``, ...).

    Returns:
        ``[(name, score), ...]`` sorted best first.
    """
    if mode not in ("min", "max"):
        raise ValueError(f"Expected `mode` to be 'min' or 'max' but got {mode!r}.")
    scored = []
    for name, model in models.items():
        report = analyze(model, dataloader, score=score, **analyze_kwargs)
        scored.append((name, float(report.score) if report.score is not None else math.nan))
    sign = 1.0 if mode == "min" else -1.0
    return sorted(scored, key=lambda item: (math.isnan(item[1]), sign * item[1] if not math.isnan(item[1]) else 0.0))


def _to_device(batch: Any, device: torch.device | str) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch
