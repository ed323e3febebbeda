"""Running a model outside a Trainer: the default forward call, batches moved leaf by leaf, and a context that
puts the model in eval mode (and on a device) and restores every module afterwards.

Shared by :mod:`lightning_topo.analysis` and :mod:`lightning_topo.adversarial`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["default_forward", "map_tensors", "running"]


def map_tensors(batch: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """``batch`` with ``fn`` applied to every tensor leaf, its structure kept.

    Mappings (rebuilt as their own type where it takes a dict, else as a dict), namedtuples, lists, tuples and
    dataclass instances (frozen ones included; fields with ``init=False`` are left to the dataclass) are walked;
    any other object is returned as it is.
    """
    if isinstance(batch, torch.Tensor):
        return fn(batch)
    if isinstance(batch, Mapping):
        items = {k: map_tensors(v, fn) for k, v in batch.items()}
        if type(batch) is dict:
            return items
        try:
            return type(batch)(items)  # type: ignore[call-arg]
        except TypeError:
            return items
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a namedtuple
        return type(batch)(*(map_tensors(v, fn) for v in batch))
    if isinstance(batch, list | tuple):
        return type(batch)(map_tensors(v, fn) for v in batch)
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        changes = {f.name: map_tensors(getattr(batch, f.name), fn) for f in dataclasses.fields(batch) if f.init}
        return dataclasses.replace(batch, **changes)
    return batch


def default_forward(model: nn.Module, batch: Any, inputs: torch.Tensor) -> Any:
    """Run ``model`` on ``batch`` as ``analyze`` does without a ``forward``.

    A mapping batch is passed by keyword (``model(**entries)``, the entries ``forward`` takes by name, all of them
    when it takes ``**kwargs``, as for Hugging Face models) when those entries hold the input and cover every
    required parameter of ``forward``; otherwise, and for any other batch, ``model(inputs)``.
    """
    if isinstance(batch, Mapping):
        parameters = inspect.signature(model.forward).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            kwargs = dict(batch)
        else:
            kwargs = {k: v for k, v in batch.items() if k in parameters}
        required = [
            name
            for name, p in parameters.items()
            if p.default is inspect.Parameter.empty
            and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        ]
        positional_only = any(p.kind is inspect.Parameter.POSITIONAL_ONLY for p in parameters.values())
        holds_input = any(v is inputs for v in kwargs.values())
        if holds_input and not positional_only and all(name in kwargs for name in required):
            return model(**kwargs)
    return model(inputs)


@contextlib.contextmanager
def running(model: nn.Module, device: torch.device | str | None) -> Iterator[torch.device]:
    """``model`` in eval mode, on ``device`` when one is given; yields where the batches go.

    On exit, also when the body raises, every module gets back its own ``training`` flag (a frozen BatchNorm in
    eval mode inside a model in train mode stays in eval mode) and, when ``device`` was given, every parameter,
    gradient and buffer goes back to the device it was on (a model split across devices is restored piece by
    piece). Without ``device`` the model is not moved; the batches go to the device of its first parameter (or
    buffer; the CPU for a model without either).
    """
    modes = [(module, module.training) for module in model.modules()]
    tensors = [*model.named_parameters(), *model.named_buffers()]
    home = tensors[0][1].device if tensors else torch.device("cpu")
    target = torch.device(device) if device is not None else home
    places = {name: t.device for name, t in tensors}
    try:
        if device is not None:
            model.to(target)
        model.eval()
        yield target
    finally:
        if device is not None:
            _restore_places(model, places)
        for module, mode in modes:
            module.training = mode


def _restore_places(model: nn.Module, places: Mapping[str, torch.device]) -> None:
    homes = set(places.values())
    if len(homes) == 1:  # the common case: one device, moved back as torch moves modules
        model.to(homes.pop())
        return
    for name, param in model.named_parameters():
        place = places.get(name)
        if place is not None and param.device != place:
            param.data = param.data.to(place)
            if param.grad is not None:
                param.grad = param.grad.to(place)
    for name, buffer in list(model.named_buffers()):
        place = places.get(name)
        if place is not None and buffer.device != place:
            owner, _, attr = name.rpartition(".")
            setattr(model.get_submodule(owner), attr, buffer.to(place))
