"""Adversarial geometry: how an FGSM attack of growing strength changes the per-layer topology (Magai's figure).

:func:`adversarial_geometry` perturbs a fixed set of examples with the fast gradient sign method and measures the
perturbed examples with :func:`~lightning_topo.analyze`, the pipeline every entry point shares; :func:`fgsm` is
the attack alone and :func:`macro_f1` one of the two success measures.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from lightning_topo._running import default_forward, map_tensors, running
from lightning_topo.analysis import analyze
from lightning_topo.capture import BatchReader, LayerSpec, SampleSelector, find_tensor, resolve_layers
from lightning_topo.options import build_options, check_option_names, check_workers
from lightning_topo.report import TopologyReport

__all__ = ["AdversarialResult", "adversarial_geometry", "fgsm", "macro_f1"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ForwardFn = Callable[[nn.Module, Any], Any]


@dataclass(frozen=True)
class AdversarialResult:
    """One attack strength: its success and the topology of the perturbed examples.

    Attributes:
        epsilon: the L-infinity size of the perturbation, in input units.
        accuracy: the fraction of perturbed examples still classified as their true label.
        macro_f1: the macro-averaged F1 score on the true labels (:func:`macro_f1`).
        report: the :class:`~lightning_topo.TopologyReport` of the perturbed examples (at ``epsilon = 0`` the
            clean one, equal to ``analyze`` on the same data).
        predictions: the predicted class of every measured example, in order (CPU int64).
        target_rate: for a targeted attack, the fraction predicted as the target class; ``None`` otherwise.
    """

    epsilon: float
    accuracy: float
    macro_f1: float
    report: TopologyReport
    predictions: torch.Tensor
    target_rate: float | None = None


def adversarial_geometry(
    model: nn.Module,
    dataloader: Iterable[Any],
    epsilons: float | Sequence[float],
    layers: LayerSpec = None,
    *,
    target: int | None = None,
    n_samples: int = 512,
    loss_fn: LossFn | None = None,
    forward: ForwardFn | None = None,
    device: torch.device | str | None = None,
    clamp: tuple[float, float] | None = None,
    workers: int | Literal["auto"] = 0,
    **options: Any,
) -> list[AdversarialResult]:
    """Per-layer topology of FGSM adversarial examples, one measurement per attack strength.

    The examples are the ones :func:`~lightning_topo.analyze` would measure (the first ``n_samples``, or equal
    shares per class with ``sample="stratified"``), the same for every ``epsilon``. Each is moved by the fast
    gradient sign method, in the model's eval mode:

    - untargeted: ``x_adv = x + epsilon * sign(grad_x loss(f(x), y))`` (away from the true label ``y``);
    - targeted (``target=t``): ``x_adv = x - epsilon * sign(grad_x loss(f(x), t))`` (towards class ``t``);

    then clamped to ``clamp`` when given. The gradient is taken once per example, so every ``epsilon`` moves
    along the same direction; ``epsilon = 0`` keeps the clean inputs (its report equals ``analyze``'s). The
    perturbed examples go through ``analyze`` with the same options: one pipeline, the same descriptors. Every
    module's mode, the device of every parameter and buffer (when ``device`` moves the model), the ``requires_grad``
    flags and the hooks are restored afterwards, also when something raises.

    Args:
        model: a classifier: its output (or the first tensor of it) holds one logit per class.
        dataloader: batches, read as ``analyze`` reads them: the input (floating point) is the first tensor of a
            tuple, a mapping's or dataclass's ``x``/``input``/... entry, or ``input_fn(batch)`` (which must return
            the batch's own tensor, so that the attack can replace it); the labels are ``batch[1]``, a ``labels``
            entry or ``label_fn(batch)``.
        epsilons: one attack strength or several (each >= 0, in input units), in the order of the results.
        layers: as in ``analyze`` and ``TopologyMonitor``.
        target: the class a targeted attack pushes towards (``None``: untargeted).
        n_samples: examples attacked and measured.
        loss_fn: ``loss(logits, labels) -> scalar`` whose input gradient is followed (default cross-entropy).
        forward: ``f(model, batch) -> logits`` (default as in ``analyze``: ``model(**batch)`` for a mapping batch
            whose entries cover ``forward``'s parameters, ``model(input)`` otherwise); also used by ``analyze``.
        device: where the model and the examples run, the model moved back afterwards (default: the model is not
            moved and the examples go to the device of its first parameter).
        clamp: ``(low, high)`` bounds of valid inputs, e.g. ``(0.0, 1.0)`` for images in ``[0, 1]``.
        workers: worker processes for the layers of each measurement (0: here; ``"auto"`` as in ``analyze``).
        **options: any measurement option of ``analyze`` (``maxdim``, ``descriptors``, ``label_fn``,
            ``sample``, ``num_classes``, ``score``, ...), validated the same way.

    Returns:
        One :class:`AdversarialResult` per epsilon, in the given order.

    Raises:
        ValueError: for a negative or non-finite epsilon, a target outside the model's classes, a bad ``clamp``,
            batches without labels or with integer inputs, an ``input_fn`` returning a tensor that is not one of the
            batch's own, or an invalid option (the message of ``analyze``).
        TypeError: for an unknown option name.

    References:
        Goodfellow, Shlens, Szegedy, "Explaining and harnessing adversarial examples", ICLR 2015,
        arXiv:1412.6572; Magai & Ayzenberg, "Topology and geometry of data manifold in deep learning",
        arXiv:2204.08624 (adversarial examples, lifespan sums by layer).

    Example:
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> g = torch.Generator().manual_seed(0)
        >>> x, y = torch.randn(64, 3, generator=g), torch.arange(64) % 2
        >>> net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> results = adversarial_geometry(net, DataLoader(TensorDataset(x, y), batch_size=16), [0.0, 0.5],
        ...                                layers=["1"], n_samples=48)
        >>> [r.epsilon for r in results], results[0].report.n_samples
        ([0.0, 0.5], 48)
    """
    eps_list = _check_epsilons(epsilons)
    check_option_names(list(options), "adversarial_geometry()")
    check_workers(workers)
    opts = build_options(n_samples=n_samples, **options)
    if target is not None and (isinstance(target, bool) or not isinstance(target, int) or target < 0):
        raise ValueError(f"Expected `target` to be None or a class index >= 0 but got {target!r}.")
    low, high = _check_clamp(clamp)
    resolve_layers(model, layers)  # an unknown layer fails now, not after the attack
    loss = loss_fn if loss_fn is not None else nn.functional.cross_entropy
    flags = [p.requires_grad for p in model.parameters()]
    with running(model, device) as where:
        try:
            for p in model.parameters():
                p.requires_grad_(False)  # only the input gradient is needed
            reader = BatchReader(opts)
            selector = SampleSelector(opts, opts.n_samples)
            batches, labels = _select(dataloader, opts.n_samples, selector, reader, where)
            signs, clean_logits = [], []
            for batch, y in zip(batches, labels, strict=True):
                sign, clean = _gradient_sign(model, batch, y, target, loss, forward, reader)
                signs.append(sign)
                clean_logits.append(clean)
            truth = torch.cat(labels).cpu()
            results = []
            for eps in eps_list:
                if eps == 0:
                    adversarial, logits = batches, clean_logits
                else:
                    adversarial = [
                        _replace_input(reader, b, _step(_inputs(reader, b), s, eps, target, low, high))
                        for b, s in zip(batches, signs, strict=True)
                    ]
                    with torch.no_grad():
                        logits = [_logits(model, b, forward, reader) for b in adversarial]
                predictions = torch.cat([z.argmax(dim=1) for z in logits]).cpu()
                report = analyze(
                    model,
                    adversarial,
                    layers,
                    n_samples=n_samples,
                    forward=forward,
                    device=device,
                    workers=workers,
                    **options,
                )
                results.append(
                    AdversarialResult(
                        epsilon=eps,
                        accuracy=float((predictions == truth).double().mean()),
                        macro_f1=macro_f1(predictions, truth),
                        report=report,
                        predictions=predictions,
                        target_rate=None if target is None else float((predictions == target).double().mean()),
                    )
                )
            return results
        finally:
            for p, flag in zip(model.parameters(), flags, strict=True):
                p.requires_grad_(flag)


def fgsm(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    epsilon: float,
    *,
    target: int | None = None,
    loss_fn: LossFn | None = None,
    clamp: tuple[float, float] | None = None,
) -> torch.Tensor:
    """The fast gradient sign step on one batch: the adversarial inputs, detached.

    Untargeted: ``x + epsilon * sign(grad_x loss(model(x), labels))``; targeted: ``x - epsilon * sign(grad_x
    loss(model(x), target))``; then clamped to ``clamp``. The model runs as it is (set its mode first) and its
    parameters get no gradient.

    Args:
        model: a classifier returning logits.
        inputs: a floating-point batch.
        labels: the true labels (ignored by a targeted attack).
        epsilon: the L-infinity size of the step (>= 0), in input units.
        target: the class a targeted attack pushes towards.
        loss_fn: ``loss(logits, labels) -> scalar`` (default cross-entropy).
        clamp: ``(low, high)`` bounds of valid inputs.

    Returns:
        The perturbed batch (``inputs`` itself, detached, for ``epsilon = 0``).

    Raises:
        ValueError: for a negative epsilon, integer inputs or a bad ``clamp``.

    References:
        Goodfellow, Shlens, Szegedy, arXiv:1412.6572.

    Example:
        >>> net = nn.Linear(2, 2)
        >>> with torch.no_grad():
        ...     _ = net.weight.copy_(torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))
        ...     _ = net.bias.zero_()
        >>> fgsm(net, torch.tensor([[0.5, 0.0]]), torch.tensor([0]), 0.1).tolist()  # towards class 1
        [[0.4000000059604645, 0.10000000149011612]]
    """
    (eps,) = _check_epsilons(epsilon)
    low, high = _check_clamp(clamp)
    flags = [p.requires_grad for p in model.parameters()]
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        reader = BatchReader(build_options())
        loss = loss_fn or nn.functional.cross_entropy
        sign, _ = _gradient_sign(model, inputs, labels, target, loss, None, reader)
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)
    return inputs.detach() if eps == 0 else _step(inputs, sign, eps, target, low, high)


def macro_f1(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    """The unweighted mean over classes of ``F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c)``.

    The classes are those present in ``labels`` or ``predictions`` (as scikit-learn's
    ``f1_score(average="macro")``); a class with no true and no predicted example does not exist here, and a
    class that is only predicted has F1 0.

    Args:
        predictions: ``(n,)`` predicted classes.
        labels: ``(n,)`` true classes.

    Returns:
        The score in ``[0, 1]`` (NaN for empty input).

    Raises:
        ValueError: for inputs of different lengths.

    Example:
        >>> macro_f1(torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 2]))
        0.7777777777777777
    """
    pred = torch.as_tensor(predictions).reshape(-1).long().cpu()
    true = torch.as_tensor(labels).reshape(-1).long().cpu()
    if pred.shape != true.shape:
        raise ValueError(
            f"Expected as many predictions as labels but got {pred.numel()} predictions and {true.numel()} labels."
        )
    if pred.numel() == 0:
        return math.nan
    classes = torch.unique(torch.cat([pred, true]))
    hit = pred.unsqueeze(0) == classes.unsqueeze(1)  # (classes, n)
    real = true.unsqueeze(0) == classes.unsqueeze(1)
    tp = (hit & real).sum(dim=1).double()
    fp = (hit & ~real).sum(dim=1).double()
    fn = (~hit & real).sum(dim=1).double()
    return float((2 * tp / (2 * tp + fp + fn)).mean())


# --- helpers --------------------------------------------------------------------------------------------------------
def _check_epsilons(epsilons: float | Sequence[float]) -> list[float]:
    items = [epsilons] if isinstance(epsilons, int | float) else list(epsilons)
    if not items:
        raise ValueError("Expected at least one epsilon but got none.")
    out = []
    for eps in items:
        if isinstance(eps, bool) or not isinstance(eps, int | float) or not math.isfinite(eps) or eps < 0:
            raise ValueError(
                f"Expected every epsilon to be a finite number >= 0 (an L-infinity size, input units) but got {eps!r}."
            )
        out.append(float(eps))
    return out


def _check_clamp(clamp: tuple[float, float] | None) -> tuple[float | None, float | None]:
    if clamp is None:
        return None, None
    try:
        low, high = (float(v) for v in clamp)
    except (TypeError, ValueError) as err:
        raise ValueError(f"Expected `clamp` to be None or a (low, high) pair but got {clamp!r}.") from err
    if not low < high:
        raise ValueError(f"Expected `clamp` to be a (low, high) pair with low < high but got {clamp!r}.")
    return low, high


def _inputs(reader: BatchReader, batch: Any) -> torch.Tensor:
    inputs = reader.inputs(batch)
    if inputs is None or not inputs.is_floating_point():
        raise ValueError(
            f"Expected floating-point inputs for a gradient attack but got "
            f"{'no input' if inputs is None else inputs.dtype}. Pass `input_fn` to say where the input is."
        )
    return inputs


def _replace_input(reader: BatchReader, batch: Any, new: torch.Tensor) -> Any:
    """``batch`` with every tensor that *is* its input (as ``input_fn`` or the default reading finds it) replaced
    by ``new``, the structure kept."""
    old = _inputs(reader, batch)
    found = False

    def swap(t: torch.Tensor) -> torch.Tensor:
        nonlocal found
        if t is old:
            found = True
            return new
        return t

    replaced = map_tensors(batch, swap)
    if not found:
        raise ValueError(
            f"Expected the input to be one of the tensors of the batch (a {type(batch).__name__}: a mapping, "
            "sequence, namedtuple or dataclass of tensors) but found none that is the tensor `input_fn` returned. "
            "Return the batch's own tensor from `input_fn` (e.g. `batch['pixels']`, not a copy computed from it)."
        )
    return replaced


def _select(
    dataloader: Iterable[Any], quota: int, selector: SampleSelector, reader: BatchReader, device: torch.device
) -> tuple[list[Any], list[torch.Tensor]]:
    """The examples ``analyze`` would measure: the selected rows of each batch, with their labels, on ``device``."""
    batches, labels = [], []
    for raw in dataloader:
        batch = map_tensors(raw, lambda t: t.to(device))
        inputs = reader.inputs(batch)
        if inputs is None:
            raise ValueError("Expected every batch to hold the model input (a tensor); pass `input_fn`.")
        if not inputs.is_floating_point():
            raise ValueError(
                f"Expected floating-point inputs for a gradient attack but got {inputs.dtype}. "
                "Attack an embedding instead (e.g. a `forward` that takes it), not token ids."
            )
        size = int(inputs.shape[0])
        y = reader.labels(batch, size)
        if y is None:
            raise ValueError(
                "adversarial_geometry needs the true labels: pass `label_fn`, or use batches whose second element "
                "is the integer class tensor."
            )
        keep = selector.rows(size, y).to(device)
        if len(keep) == 0:
            continue
        batches.append(map_tensors(batch, functools.partial(_rows, keep=keep, size=size)))
        labels.append(y.to(device)[keep].long())
        if selector.n_kept >= quota:
            break
    if not batches:
        raise ValueError("Expected the dataloader to yield at least one example but it yielded none.")
    return batches, labels


def _rows(t: torch.Tensor, keep: torch.Tensor, size: int) -> torch.Tensor:
    return t[keep].detach() if t.ndim > 0 and t.shape[0] == size else t


def _logits(model: nn.Module, batch: Any, forward: ForwardFn | None, reader: BatchReader) -> torch.Tensor:
    out = default_forward(model, batch, _inputs(reader, batch)) if forward is None else forward(model, batch)
    logits = find_tensor(out)
    if logits is None or logits.ndim != 2:
        raise ValueError(
            f"Expected the model (or `forward`) to return (batch, classes) logits but got {type(out).__name__}"
            f"{'' if logits is None else ' of shape ' + str(tuple(logits.shape))}."
        )
    return logits


def _gradient_sign(
    model: nn.Module,
    batch: Any,
    labels: torch.Tensor,
    target: int | None,
    loss_fn: LossFn,
    forward: ForwardFn | None,
    reader: BatchReader,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``sign(grad_x loss(f(x), y or target))`` and the clean logits (detached)."""
    x = _inputs(reader, batch).detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = _logits(model, _replace_input(reader, batch, x), forward, reader)
        goal = labels if target is None else torch.full_like(labels, target)
        if target is not None and target >= logits.shape[1]:
            raise ValueError(f"Expected `target` to be a class index in [0, {logits.shape[1]}) but got {target}.")
        loss = loss_fn(logits, goal)
        (grad,) = torch.autograd.grad(loss.sum(), x)
    return grad.sign(), logits.detach()


def _step(
    inputs: torch.Tensor, sign: torch.Tensor, eps: float, target: int | None, low: float | None, high: float | None
) -> torch.Tensor:
    x = inputs.detach() + (eps if target is None else -eps) * sign
    return x.clamp(low, high) if low is not None else x
