"""Capturing layer activations: layer resolution, forward hooks, per-sample reduction, a bounded sample buffer."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from lightning_topo._warnings import warn_once
from lightning_topo.engine.layer import LayerSample
from lightning_topo.options import Options, Reduce
from lightning_topo.report import INPUT, OUTPUT

__all__ = [
    "ActivationCapture",
    "LayerSpec",
    "SampleSelector",
    "default_layers",
    "get_layer_names",
    "reduce_samples",
    "resolve_layers",
]

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
        if projection is None:
            raise ValueError("reduce='project' needs a `projection(width)` function.")
        x = x @ projection(x.shape[1]).to(device=x.device, dtype=x.dtype)
    return x


class SampleSelector:
    """Which rows of each batch join the fixed sample: the first ``quota`` examples, or equal shares by class.

    The one selection rule of every entry point (the capture, ``adversarial_geometry``), so that they measure the
    same examples.
    """

    def __init__(self, options: Options, quota: int) -> None:
        self.options = options
        self.quota = quota
        self.reset()

    def reset(self) -> None:
        self.n_kept = 0
        self.class_counts: dict[int, int] = {}

    def labels(self, batch: Any, batch_size: int) -> torch.Tensor | None:
        """``label_fn(batch)``, else ``batch[1]`` when it is one integer label per example, else ``None``."""
        if self.options.label_fn is not None:
            labels = self.options.label_fn(batch)
            if not isinstance(labels, torch.Tensor) or labels.shape[:1] != (batch_size,):
                raise ValueError(f"Expected `label_fn` to return a tensor of {batch_size} labels but got {labels!r}.")
            return labels.reshape(-1)
        if isinstance(batch, list | tuple) and len(batch) > 1 and isinstance(batch[1], torch.Tensor):
            y = batch[1]
            if not y.is_floating_point() and not y.is_complex() and y.shape == (batch_size,):
                return y
        return None

    def rows(self, batch_size: int, labels: torch.Tensor | None) -> torch.Tensor:
        """Indices of this batch's rows to keep (and count them as kept)."""
        remaining = self.quota - self.n_kept
        if self.options.sample == "first" or remaining <= 0:
            keep = torch.arange(max(min(batch_size, remaining), 0))
        else:
            if labels is None:
                raise ValueError(
                    "sample='stratified' needs labels: pass `label_fn`, or use batches whose second element is the "
                    "integer class tensor."
                )
            per_class = max(self.quota // (self.options.num_classes or 1), 1)
            chosen: list[int] = []
            for i, c in enumerate(labels.reshape(-1).tolist()):
                if self.class_counts.get(c, 0) < per_class and len(chosen) < remaining:
                    self.class_counts[c] = self.class_counts.get(c, 0) + 1
                    chosen.append(i)
            keep = torch.tensor(chosen, dtype=torch.long)
        self.n_kept += len(keep)
        return keep


class ActivationCapture:
    """Forward hooks that keep a fixed, bounded sample of reduced activations per layer.

    :meth:`start` attaches the hooks; for each batch, :meth:`begin_batch` decides which rows join the sample
    (the first ``quota`` examples, or equal shares per class) and stores the input layer, every hook keeps the
    same rows of its layer, reduced per example; :meth:`end_batch` removes the hooks once the sample is full, so
    the rest of the data runs untouched. :meth:`finish` returns one :class:`LayerSample` per layer and drops the
    buffers. Hooks never outlive :meth:`finish`, :meth:`stop` or the capture itself.

    Args:
        model: the model whose modules are hooked.
        layers: ``{module name: alias}`` as from :func:`resolve_layers`.
        options: the measurement options (reduction, sample, labels, output transform).
        quota: how many examples to keep (``n_samples``, or a rank's share of it under DDP).
    """

    def __init__(self, model: nn.Module, layers: Mapping[str, str], options: Options, quota: int) -> None:
        self.model = model
        self.layers = dict(layers)
        self.options = options
        self._selector = SampleSelector(options, quota)
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._projections: dict[int, torch.Tensor] = {}
        self._input_alias = self.layers.get(INPUT)
        self._reset()

    def _reset(self) -> None:
        self.samples: dict[str, list[torch.Tensor]] = {alias: [] for alias in self.layers.values()}
        self.problems: dict[str, dict[str, str]] = {}
        self.labels: list[torch.Tensor] = []
        self._selector.reset()
        self._keep: torch.Tensor | None = None
        self._batch_size = 0
        self._seen: set[str] = set()
        self.active = False

    @property
    def n_kept(self) -> int:
        """Examples kept so far."""
        return self._selector.n_kept

    @property
    def full(self) -> bool:
        """Whether the sample holds ``quota`` examples."""
        return self._selector.n_kept >= self._selector.quota

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    # hooks -----------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Empty the buffers and attach the hooks."""
        self._reset()
        self.active = True
        if self._handles:
            return
        modules = dict(self.model.named_modules())
        for name, alias in self.layers.items():
            if name == INPUT:
                continue
            module = self.model if name == OUTPUT else modules[name]
            self._handles.append(module.register_forward_hook(self._make_hook(alias)))

    def detach(self) -> None:
        """Remove every hook (idempotent)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def stop(self) -> None:
        """Remove the hooks and drop the buffers."""
        self.detach()
        self._reset()

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
    def begin_batch(self, batch: Any) -> None:
        """Decide which rows of the coming forward pass to keep; store the input layer from ``batch``."""
        if not self.active or self.full:
            return
        inputs = first_tensor(batch)
        self._batch_size = int(inputs.shape[0]) if inputs is not None and inputs.ndim > 0 else 0
        labels = self._selector.labels(batch, self._batch_size)
        keep = self._selector.rows(self._batch_size, labels)
        if len(keep) == 0:
            return
        self._keep = keep
        self._seen = set()
        if labels is not None:
            self.labels.append(labels[keep.to(labels.device)].detach().cpu())
        if self._input_alias is not None:
            self._seen.add(self._input_alias)
            if inputs is None:
                self._problem(self._input_alias, "no_tensor", "the batch holds no tensor")
            else:
                self._store(self._input_alias, inputs, raw=True)

    def end_batch(self) -> None:
        """Close the batch; remove the hooks once the sample is full."""
        self._keep = None
        if self.full:
            self.detach()

    def _problem(self, alias: str, kind: str, message: str) -> None:
        self.problems.setdefault(alias, {})[kind] = message

    def _store(self, alias: str, output: Any, raw: bool = False) -> None:
        if alias in self.problems:
            return
        tensor = output if raw else self._to_tensor(alias, output)
        if tensor is None:
            return
        if tensor.ndim == 0 or tensor.shape[0] != self._batch_size:
            self._problem(
                alias,
                "shape",
                f"its output has shape {tuple(tensor.shape)}, whose first dimension is not the batch size "
                f"{self._batch_size}",
            )
            return
        assert self._keep is not None
        rows = tensor[self._keep.to(tensor.device)]
        # the raw input is no conv feature map: "auto" flattens it rather than averaging its pixels away
        reduce = self.options.reduce
        reduce = "flatten" if reduce == "auto" and alias == self._input_alias else reduce
        self.samples[alias].append(reduce_samples(rows, reduce, self.options.max_features, self._projection))

    def _to_tensor(self, alias: str, output: Any) -> torch.Tensor | None:
        transform = self.options.output_transform
        if transform is not None:
            output = transform(output)
            if isinstance(output, torch.Tensor):
                return output
            self._problem(alias, "not_tensor", f"`output_transform` returned {type(output).__name__}, not a tensor")
            return None
        if isinstance(output, torch.Tensor):
            return output
        tensor = first_tensor(output)
        if tensor is None:
            self._problem(alias, "not_tensor", f"its output is a {type(output).__name__} holding no tensor")
            return None
        warn_once(
            f"Layer {alias!r} returns a {type(output).__name__}; lightning-topo uses its first tensor "
            f"(shape {tuple(tensor.shape)}). Pass `output_transform` to choose another."
        )
        return tensor

    def _projection(self, width: int) -> torch.Tensor:
        if width not in self._projections:
            seed = self.options.measure.seed
            gen = torch.Generator().manual_seed(seed + width)
            max_features = self.options.max_features
            self._projections[width] = torch.randn(width, max_features, generator=gen) / math.sqrt(max_features)
        return self._projections[width]

    # results ---------------------------------------------------------------------------------------------
    def finish(self) -> dict[str, LayerSample]:
        """One :class:`LayerSample` per alias (hooks removed, buffers dropped)."""
        self.detach()
        labels = torch.cat(self.labels) if self.labels else None
        out: dict[str, LayerSample] = {}
        for alias, parts in self.samples.items():
            problems = dict(self.problems.get(alias, {}))
            points = None
            if not problems and parts:
                widths = {p.shape[1] for p in parts}
                if len(widths) > 1:
                    problems["width"] = f"its reduced width changes between batches ({sorted(widths)})"
                else:
                    points = torch.cat(parts)
            out[alias] = LayerSample(points, labels, problems)
        self._reset()
        return out
