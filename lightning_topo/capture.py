"""Capturing layer activations: layer resolution, forward hooks, per-sample reduction, a bounded sample buffer."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn

from lightning_topo._warnings import warn_once

__all__ = ["INPUT", "OUTPUT", "ActivationCapture", "get_layer_names", "resolve_layers"]

INPUT = "input"
OUTPUT = "output"
Reduce = Literal["auto", "flatten", "mean", "project"]
LayerSpec = None | str | Sequence[str | type[nn.Module]] | Mapping[str, str] | type[nn.Module]

_NOT_LAYERS: tuple[type[nn.Module], ...] = (nn.ModuleList, nn.ModuleDict, nn.modules.loss._Loss)
_MAX_DEFAULT_LAYERS = 12


def get_layer_names(model: nn.Module) -> list[str]:
    """Every name ``TopologyMonitor(layers=...)`` accepts for ``model``, in definition order.

    ``"input"`` is the network input (the first tensor of the batch), ``"output"`` the output of the model's
    own ``forward``, and every other name a submodule as in ``model.named_modules()``.

    Example:
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> get_layer_names(model)
        ['input', '0', '1', '2', 'output']
    """
    names = [name for name, module in model.named_modules() if name and not isinstance(module, _NOT_LAYERS)]
    return [INPUT, *names, OUTPUT]


def default_layers(model: nn.Module) -> list[str]:
    """The input, the model's top-level layers (descending through single containers) and its output.

    At most about a dozen, evenly spread over depth, always keeping the first and last.
    """
    prefix, children = "", list(model.named_children())
    while len(children) == 1 and len(list(children[0][1].children())) > 0:
        prefix = f"{prefix}{children[0][0]}."
        children = list(children[0][1].named_children())
    names = [f"{prefix}{name}" for name, module in children if not _is_excluded(module)]
    if len(names) > _MAX_DEFAULT_LAYERS - 2:
        keep = _MAX_DEFAULT_LAYERS - 2
        picks = sorted({round(i * (len(names) - 1) / (keep - 1)) for i in range(keep)})
        names = [names[i] for i in picks]
    return [INPUT, *names, OUTPUT]


def _is_excluded(module: nn.Module) -> bool:
    if isinstance(module, _NOT_LAYERS):
        return True
    try:
        from torchmetrics import Metric
    except ImportError:  # pragma: no cover - torchmetrics is a dependency
        return False
    return isinstance(module, Metric)


def resolve_layers(model: nn.Module, layers: LayerSpec) -> dict[str, str]:
    """Turn a ``layers`` specification into an ordered ``{module name: alias}`` mapping.

    Args:
        model: the model whose layers are named.
        layers: ``None`` (see :func:`default_layers`), a list of names (or module types), a dict
            ``{name: alias}``, a regular expression matched in full against every name, or a module type.

    Raises:
        ValueError: for an unknown name (listing the close matches), a pattern or type matching nothing, or
            two layers sharing an alias.
    """
    known = get_layer_names(model)
    modules = dict(model.named_modules())
    if layers is None:
        chosen = {name: name for name in default_layers(model)}
    elif isinstance(layers, str):
        pattern = re.compile(layers)
        chosen = {name: name for name in known if pattern.fullmatch(name)}
        if not chosen:
            raise ValueError(
                f"The pattern `layers={layers!r}` matches no layer. "
                "Hint: use `lightning_topo.get_layer_names(model)` to list the names."
            )
    elif isinstance(layers, type):
        chosen = _by_type(modules, [layers])
    elif isinstance(layers, Mapping):
        chosen = {str(k): str(v) for k, v in layers.items()}
    elif isinstance(layers, Iterable):
        chosen = {}
        items = list(layers)
        types = [item for item in items if isinstance(item, type)]
        for item in items:
            if isinstance(item, str):
                chosen[item] = item
            elif not isinstance(item, type):
                raise ValueError(f"Expected layer names or module types in `layers` but got {item!r}.")
        chosen.update(_by_type(modules, types) if types else {})
    else:
        raise ValueError(
            f"Expected `layers` to be None, a list, a dict, a pattern or a module type but got {layers!r}."
        )
    for name in chosen:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ValueError(
                f"Unknown layer {name!r}.{hint} Hint: use `lightning_topo.get_layer_names(model)` to list the names."
            )
    aliases = list(chosen.values())
    duplicated = sorted({a for a in aliases if aliases.count(a) > 1})
    if duplicated:
        raise ValueError(f"Expected every monitored layer to have its own alias but {duplicated} are repeated.")
    if not chosen:
        raise ValueError("Expected at least one layer to monitor but `layers` selects none.")
    return chosen


def _by_type(modules: Mapping[str, nn.Module], types: Sequence[type]) -> dict[str, str]:
    found = {name: name for name, module in modules.items() if name and isinstance(module, tuple(types))}
    if not found:
        raise ValueError(
            f"No module of type {', '.join(t.__name__ for t in types)} in the model. "
            "Hint: use `lightning_topo.get_layer_names(model)` to list the names."
        )
    return found


def first_tensor(obj: Any) -> torch.Tensor | None:
    """The first tensor in a tensor, a sequence or a mapping (depth first), else ``None``."""
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, Mapping):
        obj = list(obj.values())
    if isinstance(obj, list | tuple):
        for item in obj:
            found = first_tensor(item)
            if found is not None:
                return found
    return None


def reduce_samples(
    x: torch.Tensor, reduce: Reduce, max_features: int, projection: Callable[[int], torch.Tensor] | None = None
) -> torch.Tensor:
    """One vector per sample: ``(B, ...) -> (B, F)``, on ``x``'s device, detached, float32 or float64.

    ``auto`` averages 4-D ``(B, C, H, W)`` conv outputs over space (global average pooling) and flattens the
    rest; ``mean`` averages every dimension after the channel dimension 1; ``flatten`` flattens; ``project``
    flattens and, where wider than ``max_features``, multiplies by a fixed Gaussian matrix (a
    Johnson-Lindenstrauss projection that keeps pairwise distances within ``1 +- eps``).
    """
    x = x.detach()
    if x.ndim == 1:
        x = x.unsqueeze(1)
    if not x.is_floating_point() or x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    if reduce == "mean" or (reduce == "auto" and x.ndim == 4):
        x = x.mean(dim=tuple(range(2, x.ndim))) if x.ndim > 2 else x
    x = x.reshape(x.shape[0], -1)
    if reduce == "project" and x.shape[1] > max_features:
        assert projection is not None  # set up by ActivationCapture
        x = x @ projection(x.shape[1]).to(device=x.device, dtype=x.dtype)
    return x


class ActivationCapture:
    """Forward hooks that keep a fixed, bounded sample of reduced activations per layer.

    The sample is decided batch by batch by :meth:`begin_batch` (which rows of this batch to keep); every hook
    keeps the same rows, reduces them per sample and stores them on the layer's device. Hooks exist only
    between :meth:`attach` and :meth:`detach`; :meth:`detach` is idempotent and also runs when the capture is
    garbage-collected.

    Args:
        model: the model whose modules are hooked.
        layers: ``{module name: alias}`` as from :func:`resolve_layers`.
        reduce: see :func:`reduce_samples`.
        max_features: target width of ``reduce="project"``.
        seed: seed of the projection matrices (one per layer width, created lazily on the CPU).
        output_transform: optional ``f(layer_output) -> Tensor``; else the first tensor of a tuple, list or
            dict output is taken, with a one-time warning.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Mapping[str, str],
        *,
        reduce: Reduce = "auto",
        max_features: int = 256,
        seed: int = 0,
        output_transform: Callable[[Any], torch.Tensor] | None = None,
    ) -> None:
        self.model = model
        self.layers = dict(layers)
        self.reduce = reduce
        self.max_features = max_features
        self.seed = seed
        self.output_transform = output_transform
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._projections: dict[int, torch.Tensor] = {}
        self._input_alias = self.layers.get(INPUT)
        self.reset()

    def reset(self) -> None:
        self.samples: dict[str, list[torch.Tensor]] = {alias: [] for alias in self.layers.values()}
        self.problems: dict[str, str] = {}
        self.labels: list[torch.Tensor] = []
        self.n_kept = 0
        self._keep: torch.Tensor | None = None
        self._batch_size = 0
        self._seen: set[str] = set()

    # hooks -----------------------------------------------------------------------------------------------
    def attach(self) -> None:
        if self._handles:
            return
        modules = dict(self.model.named_modules())
        for name, alias in self.layers.items():
            if name == INPUT:
                continue
            module = self.model if name == OUTPUT else modules[name]
            self._handles.append(module.register_forward_hook(self._make_hook(alias)))

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def __del__(self) -> None:
        self.detach()

    def _make_hook(self, alias: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if self._keep is None or alias in self._seen:
                return  # not a monitored batch, or a module called twice in one batch: keep its first call
            self._seen.add(alias)
            self._store(alias, output)

        return hook

    # batches ---------------------------------------------------------------------------------------------
    def begin_batch(self, batch: Any, keep: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        """Declare the rows of the coming forward pass to keep; stores the input layer from ``batch``."""
        self._keep = keep
        self._seen = set()
        inputs = first_tensor(batch)
        self._batch_size = int(inputs.shape[0]) if inputs is not None and inputs.ndim > 0 else 0
        if labels is not None:
            self.labels.append(labels[keep.to(labels.device)].detach().cpu())
        for name, alias in self.layers.items():
            if name == INPUT:
                self._seen.add(alias)
                if inputs is None:
                    self.problems[alias] = "the batch holds no tensor"
                else:
                    self._store(alias, inputs, raw=True)
        self.n_kept += len(keep)

    def end_batch(self) -> None:
        self._keep = None

    def _store(self, alias: str, output: Any, raw: bool = False) -> None:
        if alias in self.problems:
            return
        tensor = output if raw else self._to_tensor(alias, output)
        if tensor is None:
            return
        if tensor.ndim == 0 or tensor.shape[0] != self._batch_size:
            self.problems[alias] = (
                f"its output has shape {tuple(tensor.shape)}, whose first dimension is not the batch size "
                f"{self._batch_size}"
            )
            return
        assert self._keep is not None
        rows = tensor[self._keep.to(tensor.device)]
        # the raw input is no conv feature map: "auto" flattens it rather than averaging its pixels away
        reduce = "flatten" if self.reduce == "auto" and alias == self._input_alias else self.reduce
        self.samples[alias].append(reduce_samples(rows, reduce, self.max_features, self._projection))

    def _to_tensor(self, alias: str, output: Any) -> torch.Tensor | None:
        if self.output_transform is not None:
            output = self.output_transform(output)
            if isinstance(output, torch.Tensor):
                return output
            self.problems[alias] = f"`output_transform` returned {type(output).__name__}, not a tensor"
            return None
        if isinstance(output, torch.Tensor):
            return output
        tensor = first_tensor(output)
        if tensor is None:
            self.problems[alias] = f"its output is a {type(output).__name__} holding no tensor"
            return None
        warn_once(
            f"Layer {alias!r} returns a {type(output).__name__}; lightning-topo uses its first tensor "
            f"(shape {tuple(tensor.shape)}). Pass `output_transform` to choose another."
        )
        return tensor

    def _projection(self, width: int) -> torch.Tensor:
        if width not in self._projections:
            gen = torch.Generator().manual_seed(self.seed + width)
            matrix = torch.randn(width, self.max_features, generator=gen) / math.sqrt(self.max_features)
            self._projections[width] = matrix
        return self._projections[width]

    # results ---------------------------------------------------------------------------------------------
    def collect(self) -> dict[str, torch.Tensor | None]:
        """Concatenated samples per alias (``None`` where nothing usable was captured)."""
        out: dict[str, torch.Tensor | None] = {}
        for alias, parts in self.samples.items():
            if alias in self.problems or not parts:
                out[alias] = None
                continue
            widths = {p.shape[1] for p in parts}
            if len(widths) > 1:
                self.problems[alias] = f"its reduced width changes between batches ({sorted(widths)})"
                out[alias] = None
                continue
            out[alias] = torch.cat(parts)
        return out

    def collected_labels(self) -> torch.Tensor | None:
        return torch.cat(self.labels) if self.labels else None
