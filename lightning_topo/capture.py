"""Capturing layer activations: layer names, batches, forward hooks, per-example reduction, the fixed sample.

- **Layer names** (:func:`get_layer_names`, :func:`resolve_layers`): module names as in ``named_modules()``,
  with ``torch.compile``'s ``_orig_mod`` wrappers left out, plus ``"input"`` and ``"output"``.
- **Batches** (:class:`BatchReader`): the input, the labels and the padding mask of any batch people write:
  a tensor, a tuple, list or namedtuple ``(x, y, ...)``, a mapping (Hugging Face style: ``input_ids``,
  ``attention_mask``, ``labels``), a dataclass or any object with those attributes.
- **Reduction** (:func:`reduce_samples`): one vector per example, on the layer's device, float32 or float64
  whatever the autocast; token reductions for ``(B, T, D)`` sequence outputs that never see padded positions.
- **The sample** (:class:`ActivationCapture`): the same examples every time (the first ``n_samples``, or equal
  shares per class), bounded memory, hooks only while the sample fills.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import re
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from lightning_topo.engine.layer import LayerSample
from lightning_topo.options import Options, Reduce
from lightning_topo.report import INPUT, OUTPUT

__all__ = [
    "CHANNELS_FIRST_1D",
    "INPUT_KEYS",
    "LABEL_KEYS",
    "MASK_KEYS",
    "ActivationCapture",
    "BatchReader",
    "LayerSpec",
    "SampleSelector",
    "channels_first_1d",
    "default_layers",
    "find_tensor",
    "get_layer_names",
    "reduce_samples",
    "resolve_layers",
]

LayerSpec = None | str | Sequence[str | type[nn.Module]] | Mapping[str, str] | type[nn.Module]

INPUT_KEYS = ("input_ids", "inputs_embeds", "pixel_values", "input_values", "input_features", "x", "input", "inputs")
"""Keys (or attributes) read as the model input of a mapping or dataclass batch, in this order."""
LABEL_KEYS = ("labels", "label", "y", "target", "targets")
"""Keys (or attributes) read as the labels of a mapping or dataclass batch, in this order."""
MASK_KEYS = ("attention_mask",)
"""Keys (or attributes) read as the padding mask (True or 1 = a real token) of a mapping or dataclass batch."""

_NOT_LAYERS: tuple[type[nn.Module], ...] = (nn.ModuleList, nn.ModuleDict, nn.modules.loss._Loss)
# modules whose output is their input in evaluation: a copy of their neighbour, never worth a default layer
_IDENTITY: tuple[type[nn.Module], ...] = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)
# modules whose 3-D output is (B, C, L), channels before length: the batch is dimension 0 whatever C, and "auto"
# averages over the length (dimension 2), as it averages a 2-d conv output over space
CHANNELS_FIRST_1D: tuple[type[nn.Module], ...] = (
    nn.Conv1d,
    nn.ConvTranspose1d,
    nn.BatchNorm1d,
    nn.InstanceNorm1d,
    nn.MaxPool1d,
    nn.AvgPool1d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveMaxPool1d,
    nn.LPPool1d,
)
# modules that keep their input's layout (element-wise): a Sequential ending in them has the layout of what precedes
_ELEMENTWISE: tuple[type[nn.Module], ...] = (
    *_IDENTITY,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Softplus,
)
_MAX_DEFAULT_LAYERS = 12
_COMPILED = "_orig_mod"


def channels_first_1d(module: nn.Module) -> bool:
    """Whether ``module``'s 3-D output is ``(B, C, L)``: a :data:`CHANNELS_FIRST_1D` module, or an ``nn.Sequential``
    whose last module other than an element-wise activation, dropout or identity is one (``Sequential(Conv1d,
    BatchNorm1d, ReLU)``).

    Example:
        >>> channels_first_1d(nn.Sequential(nn.Conv1d(3, 8, 3), nn.BatchNorm1d(8), nn.ReLU()))
        True
        >>> channels_first_1d(nn.Sequential(nn.Linear(3, 8), nn.ReLU()))
        False
    """
    while isinstance(module, nn.Sequential):
        layout = [m for m in module if not isinstance(m, _ELEMENTWISE)]
        if not layout:
            return False
        module = layout[-1]
    return isinstance(module, CHANNELS_FIRST_1D)


# layer names ---------------------------------------------------------------------------------------------------
def _display(name: str) -> str:
    """A module name without ``torch.compile``'s ``_orig_mod`` components."""
    return ".".join(part for part in name.split(".") if part != _COMPILED)


def _modules(model: nn.Module) -> dict[str, nn.Module]:
    """``{display name: module}``; a compiled module's name maps to the module it wraps."""
    out: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        out[_display(name)] = module  # the wrapped module comes after its wrapper: it wins
    return out


def is_compiled(model: nn.Module) -> bool:
    """Whether ``model`` or one of its submodules went through ``torch.compile``."""
    return (hasattr(model, "_compiler_ctx") and model._compiler_ctx is not None) or any(  # Lightning's marker
        name.split(".")[-1] == _COMPILED for name, _ in model.named_modules()
    )


def get_layer_names(model: nn.Module) -> list[str]:
    """Every name ``TopologyMonitor(layers=...)`` accepts for ``model``, in definition order.

    ``"input"`` is the network input (read from the batch), ``"output"`` the output of the model's own
    ``forward``, and every other name a submodule as in ``model.named_modules()``; ``torch.compile``'s
    ``_orig_mod`` wrappers are left out of the names (``encoder.layer1``, not ``encoder._orig_mod.layer1``).

    Example:
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> get_layer_names(model)
        ['input', '0', '1', '2', 'output']
    """
    names = [name for name, module in _modules(model).items() if name and not isinstance(module, _NOT_LAYERS)]
    return [INPUT, *names, OUTPUT]


def default_layers(model: nn.Module) -> list[str]:
    """The input, the model's top-level layers (descending through single containers) and its output.

    At most about a dozen, evenly spread over depth, always keeping the first and the last two (the penultimate
    representation is what the named scores read). Identity-like modules (``nn.Identity``, dropout) are left
    out: in evaluation their output is a copy of their neighbour's.
    """
    modules = _modules(model)
    prefix = ""
    children = _children(model)
    while len(children) == 1 and _children(children[0][1]):
        prefix = f"{prefix}{children[0][0]}."
        children = _children(children[0][1])
    names = [f"{prefix}{name}" for name, module in children if not _is_excluded(module)]
    names = [name for name in names if name in modules]
    if len(names) > _MAX_DEFAULT_LAYERS - 2:
        keep = _MAX_DEFAULT_LAYERS - 3
        picks = {round(i * (len(names) - 2) / (keep - 1)) for i in range(keep)} | {len(names) - 1}
        names = [names[i] for i in sorted(picks)]
    return [INPUT, *names, OUTPUT]


def _children(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """Named children, looking through ``torch.compile`` wrappers."""
    out = []
    for name, child in module.named_children():
        if name == _COMPILED:
            out.extend(_children(child))
        else:
            while hasattr(child, _COMPILED) and isinstance(getattr(child, _COMPILED), nn.Module):
                child = getattr(child, _COMPILED)
            out.append((name, child))
    return out


def _is_excluded(module: nn.Module) -> bool:
    if isinstance(module, _NOT_LAYERS + _IDENTITY):
        return True
    from torchmetrics import Metric

    return isinstance(module, Metric)


def resolve_layers(model: nn.Module, layers: LayerSpec) -> dict[str, str]:
    """Turn a ``layers`` specification into an ordered ``{module name: alias}`` mapping.

    Args:
        model: the model whose layers are named.
        layers: ``None`` (see :func:`default_layers`), a list of names (or module types), a dict
            ``{name: alias}``, a regular expression matched in full against every name, or a module type. Names
            may include ``torch.compile``'s ``_orig_mod`` or not.

    Raises:
        ValueError: for an unknown name (listing the close matches), a pattern or type matching nothing, two
            layers sharing an alias, or an alias holding ``/``.
    """
    known = get_layer_names(model)
    modules = _modules(model)
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
        chosen = {_display(str(k)): str(v) for k, v in layers.items()}
    elif isinstance(layers, Iterable):
        chosen = {}
        items = list(layers)
        types = [item for item in items if isinstance(item, type)]
        for item in items:
            if isinstance(item, str):
                chosen[_display(item)] = _display(item)
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
    slashed = {name: alias for name, alias in chosen.items() if "/" in alias}
    if slashed:
        raise ValueError(
            f"Expected layer aliases without '/' (it separates the parts of the logged keys `topo/{{layer}}/...`) "
            f"but got {sorted(slashed.values())}. Give those layers other aliases, e.g. "
            f"`layers={ {name: alias.replace('/', '_') for name, alias in slashed.items()} }`."
        )
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


# batches and outputs -----------------------------------------------------------------------------------------
def _field(obj: Any, keys: Sequence[str]) -> Any:
    """The first of ``keys`` present in a mapping, or as an attribute of an object (a dataclass, an HF output)."""
    for key in keys:
        if isinstance(obj, Mapping):
            if key in obj:
                return obj[key]
        elif not isinstance(obj, torch.Tensor | list | tuple) and hasattr(obj, key):
            return getattr(obj, key)
    return None


def _items(obj: Any) -> list[Any]:
    """The parts of a structured value, in order: mapping values, sequence items, dataclass fields."""
    if isinstance(obj, Mapping):
        return list(obj.values())
    if isinstance(obj, list | tuple):
        return list(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [getattr(obj, f.name) for f in dataclasses.fields(obj)]
    if hasattr(obj, "to_tuple"):  # Hugging Face ModelOutput that is not a mapping
        return list(obj.to_tuple())
    return []


def _describe(tensor: torch.Tensor) -> str:
    """A tensor's shape for a message (a nested tensor has none: its number of sequences)."""
    if tensor.is_nested:
        return f"a nested tensor of {tensor.size(0)} padded sequences"
    return f"shape {tuple(tensor.shape)}"


def find_tensor(obj: Any, batch_size: int | None = None) -> torch.Tensor | None:
    """The first tensor in ``obj`` (depth first through mappings, sequences, dataclasses and Hugging Face
    outputs) whose leading dimension is ``batch_size`` (any non-scalar tensor when ``batch_size`` is None).
    A 0-d tensor (a loss) is never the answer."""
    if isinstance(obj, torch.Tensor):
        if obj.ndim == 0:
            return None
        if batch_size is None or obj.is_nested or obj.shape[0] == batch_size:
            return obj
        if obj.ndim >= 3 and obj.shape[1] == batch_size:  # a sequence-first output
            return obj
        return None
    for item in _items(obj):
        found = find_tensor(item, batch_size)
        if found is not None:
            return found
    return None


class BatchReader:
    """Reads a batch's model input, labels (one per example) and padding mask (True = a real token).

    Defaults: a tensor batch is the input; a tuple, list or namedtuple is ``(input, labels, ...)`` (labels when
    ``batch[1]`` is one integer per example); a mapping or an object is read by key or attribute: the input from
    :data:`INPUT_KEYS`, the labels from :data:`LABEL_KEYS`, the mask from :data:`MASK_KEYS`. ``input_fn``,
    ``label_fn`` and ``mask_fn`` override each. Labels from ``label_fn`` must be one per example (an error
    otherwise); default labels that are not (a language model's token labels) are left out, and so is a default
    mask that is not ``(B, T)`` (an attention mask ``(B, 1, T, T)``), with a note (``note(key, message)``).
    """

    def __init__(self, options: Options, note: Note | None = None) -> None:
        self.options = options
        self._note = note or (lambda key, message: None)

    def inputs(self, batch: Any) -> torch.Tensor | None:
        if self.options.input_fn is not None:
            x = self.options.input_fn(batch)
            if not isinstance(x, torch.Tensor):
                raise ValueError(f"Expected `input_fn` to return a tensor but got {type(x).__name__}.")
            return x
        if isinstance(batch, torch.Tensor):
            return batch
        if isinstance(batch, list | tuple):
            return find_tensor(batch[0]) if batch else None
        found = _field(batch, INPUT_KEYS)
        return found if isinstance(found, torch.Tensor) else None

    def replace_input(self, batch: Any, new: torch.Tensor) -> Any:
        """``batch`` with its model input (as :meth:`inputs` finds it) replaced by ``new``.

        Raises:
            ValueError: when the input comes from ``input_fn`` or from a batch of an unknown shape.
        """
        if self.options.input_fn is None:
            if isinstance(batch, torch.Tensor):
                return new
            if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a namedtuple
                return type(batch)(new, *batch[1:])
            if isinstance(batch, list | tuple) and batch and isinstance(batch[0], torch.Tensor):
                return type(batch)([new, *batch[1:]])
            key = next((k for k in INPUT_KEYS if isinstance(_field(batch, [k]), torch.Tensor)), None)
            if key is not None and isinstance(batch, Mapping):
                return {**batch, key: new}
            if key is not None and dataclasses.is_dataclass(batch) and not isinstance(batch, type):
                return dataclasses.replace(batch, **{key: new})
        raise ValueError(
            f"Expected a batch whose input can be replaced (a tensor, (x, y, ...), or a mapping/dataclass with one of "
            f"{', '.join(INPUT_KEYS)}) but got {type(batch).__name__}; pass a `forward` that reads the input."
        )

    def labels(self, batch: Any, batch_size: int) -> torch.Tensor | None:
        if self.options.label_fn is not None:
            y = self.options.label_fn(batch)
            if not isinstance(y, torch.Tensor) or y.ndim != 1 or y.shape[0] != batch_size:
                shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
                raise ValueError(
                    f"Expected `label_fn` to return one label per example, a tensor of shape ({batch_size},), but "
                    f"got {shape}. Token labels (B, T) are not class labels: return one class per example."
                )
            return y
        y = (batch[1] if len(batch) > 1 else None) if isinstance(batch, list | tuple) else _field(batch, LABEL_KEYS)
        if isinstance(y, torch.Tensor) and not y.is_floating_point() and not y.is_complex():
            return y if y.shape == (batch_size,) else None
        return None

    def mask(self, batch: Any) -> torch.Tensor | None:
        """The padding mask ``(B, T)``, True at real tokens, or None.

        Raises:
            ValueError: when ``mask_fn`` returns anything but a 2-D tensor.
        """
        m = self.options.mask_fn(batch) if self.options.mask_fn is not None else _field(batch, MASK_KEYS)
        if m is None:
            return None
        if isinstance(m, torch.Tensor) and m.ndim == 2:
            return m.bool()
        got = f"shape {tuple(m.shape)}" if isinstance(m, torch.Tensor) else type(m).__name__
        if self.options.mask_fn is not None:
            raise ValueError(f"Expected `mask_fn` to return a (B, T) padding mask but got {got}.")
        self._note(
            ("mask shape",),
            f"The batch's `attention_mask` has {got}, not (B, T) (True at real tokens), so lightning-topo ignores it "
            "and averages every position of sequence layers; pass `mask_fn=lambda batch: ...` returning the (B, T) "
            "padding mask to leave the padding out.",
        )
        return None


# reduction ---------------------------------------------------------------------------------------------------
_TOKEN = ("token_mean", "first_token", "last_token")


def reduce_samples(
    x: torch.Tensor,
    reduce: Reduce,
    max_features: int = 256,
    projection: Callable[[int, torch.device], torch.Tensor] | None = None,
    mask: torch.Tensor | None = None,
    channels_first: bool = False,
) -> torch.Tensor:
    """One vector per example: ``(B, ...) -> (B, F)``, on ``x``'s device, detached, float32 or float64.

    ``auto`` averages 4-D ``(B, C, H, W)`` conv outputs over space (global average pooling), reduces 3-D ``(B, T, D)``
    outputs with ``token_mean``, averages 3-D ``(B, C, L)`` outputs of 1-d conv, norm and pool modules
    (``channels_first=True``; :data:`CHANNELS_FIRST_1D`) over their length, and flattens the rest; ``mean`` averages
    every dimension after dimension 1; ``flatten`` flattens; ``project`` flattens and, where wider than
    ``max_features``, multiplies by a fixed Gaussian matrix (a Johnson-Lindenstrauss projection that keeps pairwise
    distances within ``1 +- eps``). Token reductions of ``(B, T, D)``: ``token_mean`` (mean over the real tokens),
    ``first_token`` (the first real token, a CLS token), ``last_token`` (the last real token, as for decoder models);
    ``mask`` is ``(B, T)``, True at real tokens (all real when None). Outputs that are not sequences (a classifier's
    ``(B, C)``) are reduced as with ``auto`` under a token reduction. Half precision and autocast never reach the
    result: the reduction runs in float32 (float64 inputs stay float64).

    Example:
        >>> x = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [9.0, 9.0]]])  # one example, 3 tokens, the last padded
        >>> reduce_samples(x, "token_mean", mask=torch.tensor([[True, True, False]])).tolist()
        [[2.0, 2.0]]
    """
    x = x.detach()
    if x.ndim == 1:
        x = x.unsqueeze(1)
    with _no_autocast(x.device):
        if x.dtype != torch.float64:
            x = x.float()
        if x.ndim == 3 and reduce == "auto" and channels_first:  # (B, C, L): one value per channel
            return x.mean(dim=2)
        if x.ndim == 3 and (reduce in _TOKEN or reduce == "auto"):
            return _tokens(x, "token_mean" if reduce == "auto" else reduce, mask)
        if reduce in _TOKEN:  # not a sequence (a pooled or classifier layer of a sequence model): as with "auto"
            reduce = "auto"
        if reduce == "mean" or (reduce == "auto" and x.ndim == 4):
            x = x.mean(dim=tuple(range(2, x.ndim))) if x.ndim > 2 else x
        x = x.reshape(x.shape[0], -1)
        if reduce == "project" and x.shape[1] > max_features:
            if projection is None:
                raise ValueError("reduce='project' needs a `projection(width, device)` function.")
            x = x @ projection(x.shape[1], x.device).to(x.dtype)
        return x


def _no_autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    if device.type in ("cpu", "cuda", "xpu", "mps"):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def _tokens(x: torch.Tensor, reduce: str, mask: torch.Tensor | None) -> torch.Tensor:
    if x.ndim != 3:
        raise ValueError(f"Expected a (B, T, D) output for reduce={reduce!r} but got shape {tuple(x.shape)}.")
    b, t, _ = x.shape
    real = torch.ones(b, t, dtype=torch.bool, device=x.device) if mask is None else mask.to(x.device)
    if reduce == "token_mean":
        weights = real.to(x.dtype).unsqueeze(2)
        return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
    positions = torch.arange(t, device=x.device).expand(b, t)
    if reduce == "first_token":
        index = torch.where(real, positions, t).amin(dim=1).clamp_max(t - 1)
    else:
        index = torch.where(real, positions, -1).amax(dim=1).clamp_min(0)
    return x[torch.arange(b, device=x.device), index]


# the sample --------------------------------------------------------------------------------------------------
class SampleSelector:
    """Which rows of each batch join the fixed sample: the first ``quota`` examples, or equal shares by class.

    Shared by :class:`ActivationCapture` and ``adversarial_geometry`` (which must attack the examples
    ``analyze`` measures)."""

    def __init__(self, options: Options, quota: int, note: Note | None = None) -> None:
        self.options = options
        self.quota = quota
        self._note = note
        self.reset()

    def reset(self) -> None:
        self.n_kept = 0
        self.class_counts: dict[int, int] = {}

    def rows(self, batch_size: int, labels: torch.Tensor | None) -> torch.Tensor:
        """Indices of this batch's rows to keep (and count them as kept)."""
        remaining = self.quota - self.n_kept
        if self.options.sample == "first" or remaining <= 0:
            keep = torch.arange(max(min(batch_size, remaining), 0))
        else:
            if labels is None:
                raise ValueError(
                    "sample='stratified' needs one integer label per example: pass `label_fn`, or use batches "
                    "whose second element (or 'labels' key) is the integer class tensor."
                )
            k = self.options.num_classes or 1
            per_class = max(self.quota // k, 1)
            values = labels.reshape(-1).tolist()
            outside = sorted({c for c in values if not 0 <= c < k})
            if outside and self._note is not None:
                self._note(
                    ("stratified labels",),
                    f"sample='stratified' with num_classes={k} met labels {outside[:5]} outside 0..{k - 1}: the sample "
                    f"gives every class seen {per_class} examples, so it is not split evenly over the classes; set "
                    "`num_classes` to the number of classes.",
                )
            chosen: list[int] = []
            for i, c in enumerate(values):
                if self.class_counts.get(c, 0) < per_class and len(chosen) < remaining:
                    self.class_counts[c] = self.class_counts.get(c, 0) + 1
                    chosen.append(i)
            keep = torch.tensor(chosen, dtype=torch.long)
        self.n_kept += len(keep)
        return keep


Note = Callable[[tuple[Any, ...], str], None]


@dataclasses.dataclass(frozen=True)
class _Undecided:
    """A batch's rows of a layer whose output was ``(B, B, D)``: reduced both ways (batch first, sequence first)
    until a batch of another shape tells which dimension holds the examples."""

    batch_first: torch.Tensor
    sequence_first: torch.Tensor
    shape: tuple[int, ...]

    def pick(self, dim: int) -> torch.Tensor:
        """The rows for the token dimension ``dim`` (1: ``(B, T, D)``, 0: ``(T, B, D)``)."""
        return self.batch_first if dim == 1 else self.sequence_first


class ActivationCapture:
    """Forward hooks that keep a fixed, bounded sample of reduced activations per layer.

    :meth:`start` attaches the hooks; for each batch, :meth:`begin_batch` decides which rows join the sample
    (the first ``quota`` examples, or equal shares per class) and stores the input layer; every hook keeps the
    same rows of its layer, reduced per example (with the batch's padding mask); :meth:`end_batch` commits them
    and removes the hooks once the sample is full, so the rest of the data runs untouched. :meth:`finish`
    returns one :class:`LayerSample` per layer and drops the buffers. Hooks never outlive :meth:`finish`,
    :meth:`stop` or the capture itself. While a batch is captured, compiled code runs eagerly
    (``torch.compiler.set_stance("force_eager")``), so compiled modules are measured exactly as written.

    Args:
        model: the model whose modules are hooked.
        layers: ``{module name: alias}`` as from :func:`resolve_layers`.
        options: the measurement options (reduction, sample, batch readers, output transform).
        quota: how many examples to keep (``n_samples``, or a rank's share of it under DDP).
        optional: aliases chosen by default rather than by the user: one whose output cannot be aligned with
            the batch is left out (with a note) instead of logging NaN.
        note: ``note(key, message)`` reports something to the user once per key (a warning).
        strict_layout: a named layer whose ``(B, B, D)`` layout no batch of the sample told raises ValueError in
            :meth:`finish` (``analyze``); otherwise it is a problem of that layer, NaN with a warning (the callback:
            never the end of a run, and under DDP never one rank raising while the others wait).
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Mapping[str, str],
        options: Options,
        quota: int,
        optional: Iterable[str] = (),
        note: Note | None = None,
        strict_layout: bool = True,
    ) -> None:
        self.model = model
        self.strict_layout = strict_layout
        self.layers = dict(layers)
        self.options = options
        self.optional = set(optional)
        self._note = note or (lambda key, message: None)
        self.reader = BatchReader(options, self._note)
        self._selector = SampleSelector(options, quota, self._note)
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._projections: dict[tuple[int, torch.device], torch.Tensor] = {}
        self._layout: dict[str, int] = {}  # alias -> the token dimension of its 3-D outputs, once known
        self._input_alias = self.layers.get(INPUT)
        self._compiled = is_compiled(model)
        self._eager: contextlib.AbstractContextManager[Any] | None = None
        self.skipped: dict[str, str] = {}
        self.outputs: set[str] = set()  # aliases whose tensor the model's forward returns (the classifier head)
        self._find_output = False
        self._reset()

    def _reset(self) -> None:
        self.samples: dict[str, list[torch.Tensor | _Undecided]] = {alias: [] for alias in self.layers.values()}
        self.problems: dict[str, dict[str, str]] = {}
        self.labels: list[torch.Tensor] = []
        self._selector.reset()
        self._keep: torch.Tensor | None = None
        self._batch_size = 0
        self._mask: torch.Tensor | None = None
        self._pending: dict[str, torch.Tensor | _Undecided] = {}
        self._calls: dict[str, int] = {}
        self.volumes: dict[str, list[torch.Tensor]] = {alias: [] for alias in self.layers.values()}
        self._pending_volumes: dict[str, torch.Tensor] = {}
        # this batch's layer outputs (weak: never kept alive), to recognise the one the model returns
        self._raw: dict[str, weakref.ref[torch.Tensor]] = {}
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
        modules = _modules(self.model)
        for name, alias in self.layers.items():
            if name == INPUT:
                continue
            module = self.model if name == OUTPUT else modules[name]
            self._handles.append(module.register_forward_hook(self._make_hook(alias, channels_first_1d(module))))
        self._find_output = OUTPUT not in self.layers
        if self._find_output:  # which named layer is the model's output (the head): never a score's layer
            self._handles.append(self.model.register_forward_hook(self._output_hook))

    def detach(self) -> None:
        """Remove every hook (idempotent) and leave eager mode."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._leave_eager()

    def stop(self) -> None:
        """Remove the hooks and drop the buffers."""
        self.detach()
        self._reset()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.detach()

    def _make_hook(self, alias: str, channels_first: bool) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if self._keep is None:
                return  # not a monitored batch
            calls = self._calls[alias] = self._calls.get(alias, 0) + 1
            if calls == 2:
                self._note(
                    ("called twice", alias),
                    f"Layer {alias!r} runs several times per forward pass (a shared module); lightning-topo keeps "
                    f"its {self.options.call} call (`call='first'` or `call='last'` chooses).",
                )
            if calls == 1 or self.options.call == "last":
                if self._find_output and isinstance(output, torch.Tensor):
                    self._raw[alias] = weakref.ref(output)
                try:
                    self._store(alias, output, channels_first)
                except Exception as err:  # inside the user's forward pass: a problem of this layer, never of the run
                    self._problem(alias, "capture", f"its output could not be captured ({type(err).__name__}: {err})")

        return hook

    def _output_hook(self, module: nn.Module, args: Any, output: Any) -> None:
        """A layer whose very tensor the model returns is its output. Only a plain tensor return counts: in a
        structured output (``(features, logits)``, a loss first) which tensor is "the output" is not known."""
        if self._keep is None or not self._raw or not isinstance(output, torch.Tensor):
            return
        self.outputs.update(alias for alias, ref in self._raw.items() if ref() is output)

    # batches ---------------------------------------------------------------------------------------------
    def begin_batch(self, batch: Any) -> None:
        """Decide which rows of the coming forward pass to keep; store the input layer from ``batch``."""
        if not self.active or self.full:
            return
        inputs = self.reader.inputs(batch)
        if inputs is None:
            self._note(
                ("no input",),
                f"lightning-topo cannot find the model input in a batch of type {type(batch).__name__} (expected a "
                f"tensor, a tuple (x, y, ...), or a mapping/dataclass with one of {', '.join(INPUT_KEYS)}): pass "
                "`input_fn=lambda batch: ...` to say where it is. The batch size is unknown, so nothing is measured.",
            )
            return
        self._batch_size = int(inputs.shape[0]) if inputs.ndim > 0 else 0
        labels = self.reader.labels(batch, self._batch_size)
        if labels is None and self.options.measure.per_class:
            raise ValueError(
                "per_class=True needs one integer label per example: pass `label_fn`, or use batches whose second "
                "element (or 'labels' key) is the integer class tensor."
            )
        self._mask = self.reader.mask(batch)
        keep = self._selector.rows(self._batch_size, labels)
        if len(keep) == 0:
            return
        self._keep = keep
        self._pending = {}
        self._pending_volumes = {}
        self._calls = {}
        if labels is not None:
            self.labels.append(labels[keep.to(labels.device)].detach().cpu())
        if self._input_alias is not None:
            self._store_input(inputs)
        if self._compiled and self._eager is None:
            self._eager = torch.compiler.set_stance("force_eager")
            self._eager.__enter__()

    def end_batch(self) -> None:
        """Commit the batch; remove the hooks once the sample is full."""
        if self._keep is not None:
            for alias, rows in self._pending.items():
                self.samples[alias].append(rows)
            for alias, maps in self._pending_volumes.items():
                self.volumes[alias].append(maps)
        self._keep = None
        self._pending = {}
        self._pending_volumes = {}
        self._raw = {}
        self._leave_eager()
        if self.full:
            self.detach()

    def _leave_eager(self) -> None:
        if self._eager is not None:
            self._eager.__exit__(None, None, None)
            self._eager = None

    def _problem(self, alias: str, kind: str, message: str) -> None:
        if alias in self.optional and kind in ("shape", "token_ids"):
            self.skipped[alias] = message
            return
        self.problems.setdefault(alias, {})[kind] = message

    def _store_input(self, inputs: torch.Tensor) -> None:
        alias = self._input_alias
        assert alias is not None
        if not inputs.is_floating_point():
            self._problem(
                alias,
                "token_ids",
                f"the input holds {inputs.dtype} values (token ids or class indices), which are not measured as "
                "points; the first embedding layer is the input representation",
            )
            return
        # the raw input is no conv feature map: "auto" flattens images rather than averaging their pixels away,
        # and reduces padded token sequences (B, T, D) over their real tokens
        reduce = self.options.reduce
        if reduce == "auto":
            reduce = "token_mean" if inputs.ndim == 3 and self._mask is not None else "flatten"
        self._reduce_and_keep(alias, inputs, reduce, batch_first=True)  # the batch size is read from the input

    def _store(self, alias: str, output: Any, channels_first: bool = False) -> None:
        if alias in self.problems or alias in self.skipped:
            return
        tensor = self._to_tensor(alias, output)
        if tensor is not None:
            self._reduce_and_keep(alias, tensor, self.options.reduce, channels_first)

    def _reduce_and_keep(
        self, alias: str, tensor: torch.Tensor, reduce: Reduce, channels_first: bool = False, batch_first: bool = False
    ) -> None:
        """Keep the sample's rows of ``tensor``, reduced; ``channels_first``: a ``(B, C, L)`` output of a 1-d conv,
        norm or pool module (the batch first whatever ``C``; ``auto`` averages over ``L``); ``batch_first``: the
        batch is dimension 0 for sure (the model input, whose first dimension is the batch size)."""
        mask: torch.Tensor | None = self._mask
        if tensor.is_nested:  # PyTorch's fast path for padded sequences: the real tokens of each example
            lengths = torch.tensor([t.shape[0] for t in tensor.unbind()], device=tensor.device)
            tensor = torch.nested.to_padded_tensor(tensor, 0.0)
            mask = torch.arange(tensor.shape[1], device=tensor.device)[None, :] < lengths[:, None]
        aligned = tensor if batch_first else self._batch_first(alias, tensor, channels_first)
        if aligned is None:
            return
        if isinstance(aligned, tuple):  # (B, B, D) before any batch told the layout: both ways, decided later
            both = [self._reduce(alias, t, reduce, mask, channels_first) for t in aligned]
            if both[0] is not None and both[1] is not None:
                self._pending[alias] = _Undecided(both[0][0], both[1][0], tuple(tensor.shape))
            return
        reduced = self._reduce(alias, aligned, reduce, mask, channels_first)
        if reduced is not None:
            self._pending[alias] = reduced[0]
            self._keep_volumes(alias, reduced[1], reduced[2])

    def _reduce(
        self, alias: str, tensor: torch.Tensor, reduce: Reduce, mask: torch.Tensor | None, channels_first: bool
    ) -> tuple[torch.Tensor, torch.Tensor, bool] | None:
        """The kept rows of a batch-first ``tensor`` reduced, the rows themselves and whether they are feature
        maps (for cubical persistence); None when the layer cannot be reduced (a problem of the layer)."""
        channels_first = channels_first and tensor.ndim == 3
        tokens = tensor.ndim == 3 and (reduce in _TOKEN or (reduce == "auto" and not channels_first))
        if tokens and mask is not None and mask.shape != tensor.shape[:2]:
            self._note(
                ("mask", alias),
                f"Layer {alias!r}: the padding mask has shape {tuple(mask.shape)} but the layer has "
                f"{tensor.shape[1]} positions, so all its positions are averaged, padding included; pass "
                "`mask_fn` or `output_transform` to align them.",
            )
            mask = None
        assert self._keep is not None
        keep = self._keep.to(tensor.device)
        rows = tensor[keep]
        row_mask = None if mask is None or not tokens else mask.to(tensor.device)[keep]
        try:
            reduced = reduce_samples(
                rows, reduce, self.options.max_features, self._projection, row_mask, channels_first=channels_first
            )
        except Exception as err:  # a layer that cannot be reduced is a problem of that layer, never of the run
            self._problem(alias, "reduce", f"its output of shape {tuple(tensor.shape)} could not be reduced ({err})")
            return None
        return reduced, rows, mask is None and reduce not in _TOKEN

    def _keep_volumes(self, alias: str, rows: torch.Tensor, maps: bool) -> None:
        """The raw feature maps of the first ``cubical_samples`` examples: ``(C, H, W)`` (or ``(H, W)`` for a 3-D
        output without a padding mask) per example, for cubical persistence."""
        kept = self.volumes[alias]
        need = self.options.cubical_samples - sum(len(v) for v in kept)
        if need > 0 and (rows.ndim == 4 or (rows.ndim == 3 and maps)):
            if kept and kept[0].shape[1:] != rows.shape[1:]:  # variable image sizes: maps of one shape only
                self._note(
                    ("cubical shape", alias),
                    f"Layer {alias!r}: its feature maps have shape {tuple(rows.shape[1:])} in this batch but "
                    f"{tuple(kept[0].shape[1:])} in the first batch, so its cubical descriptors use only the maps "
                    "of the first shape (fewer than `cubical_samples` when no later batch has it); resize the "
                    "validation images to one size to use every batch.",
                )
                return
            with _no_autocast(rows.device):
                # a copy of the kept maps only: a slice would hold the whole batch's rows on the device
                self._pending_volumes[alias] = rows[:need].detach().to(torch.float32, copy=True)

    def _batch_first(
        self, alias: str, tensor: torch.Tensor, channels_first: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None:
        """``tensor`` with its batch dimension first (sequence-first outputs are transposed), None, or both readings
        ``(as is, transposed)`` of a ``(B, B, D)`` output while no batch has told its layout.
        ``channels_first``: a 1-d conv, norm or pool output ``(B, C, L)``, never sequence-first."""
        b = self._batch_size
        if tensor.ndim == 0:
            self._problem(alias, "shape", "its output is a scalar, not one value per example")
            return None
        first, second = tensor.shape[0], tensor.shape[1] if tensor.ndim > 1 else None
        if channels_first and first == b:
            return tensor
        if tensor.ndim == 3 and first == b and second == b and not channels_first:  # (T, B, D) or (B, T, D), T == B
            dim = self._layout.get(alias, self.options.sequence_dim)
            if dim is None:  # padded batches change T: a later batch tells (the sample is decided in finish)
                return tensor, tensor.transpose(0, 1)
            return tensor if dim == 1 else tensor.transpose(0, 1)
        if first == b:
            if tensor.ndim == 3:
                self._decide(alias, 1)
            return tensor
        if tensor.ndim == 3 and second == b and not channels_first:
            self._decide(alias, 0)
            return tensor.transpose(0, 1)
        self._problem(
            alias,
            "shape",
            f"its output has shape {tuple(tensor.shape)}, not aligned with the batch of {b} examples (neither its "
            "first nor, for sequences, its second dimension)",
        )
        return None

    def _decide(self, alias: str, dim: int) -> None:
        """The layer's token dimension is ``dim`` (seen in a batch whose shape tells it) from now on; earlier batches
        kept both ways take their rows from it."""
        dim = self._layout.setdefault(alias, dim)
        parts = self.samples[alias]
        if any(isinstance(p, _Undecided) for p in parts):
            self.samples[alias] = [p.pick(dim) if isinstance(p, _Undecided) else p for p in parts]

    def _undecided(self, alias: str, shape: tuple[int, ...]) -> None:
        """No batch of the sample told the layout of a ``(B, B, D)`` output: a default layer is left out with a
        note; a named one raises with ``strict_layout`` (``analyze``), else it is that layer's problem."""
        why = (
            f"its output has shape {shape}: its sequence length equals the batch size {shape[0]} in every batch of "
            "the sample, so lightning-topo cannot tell which dimension holds the examples (pass `sequence_dim=1` "
            "for batch-first (B, T, D) outputs or `sequence_dim=0` for sequence-first (T, B, D) ones)"
        )
        if alias not in self.optional and self.strict_layout:
            raise ValueError(f"Layer {alias!r}: {why}.")
        self._problem(alias, "shape" if alias in self.optional else "layout", why)

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
        tensor = find_tensor(output, self._batch_size)
        if tensor is None:
            self._problem(
                alias,
                "not_tensor",
                f"its output (of type {type(output).__name__}) holds no tensor with one row per example",
            )
            return None
        self._note(
            ("structured output", alias),
            f"Layer {alias!r} returns an object of type {type(output).__name__}; lightning-topo uses its first "
            f"tensor with one row per example ({_describe(tensor)}). Pass `output_transform` to choose another.",
        )
        return tensor

    def _projection(self, width: int, device: torch.device) -> torch.Tensor:
        key = (width, device)
        if key not in self._projections:
            gen = torch.Generator().manual_seed(self.options.measure.seed + width)
            k = self.options.max_features
            matrix = torch.randn(width, k, generator=gen) / math.sqrt(k)
            self._projections[key] = matrix.to(device)  # copied to the layer's device once, not per batch
        return self._projections[key]

    # results ---------------------------------------------------------------------------------------------
    def finish(self) -> dict[str, LayerSample]:
        """One :class:`LayerSample` per measured alias (hooks removed, buffers dropped). Layers left out (see
        ``optional``) are not in it; :attr:`skipped` says why."""
        self.detach()
        labels = torch.cat(self.labels) if self.labels else None
        out: dict[str, LayerSample] = {}
        for alias, parts in self.samples.items():
            undecided = next((p for p in parts if isinstance(p, _Undecided)), None)
            if undecided is not None and alias not in self.skipped and alias not in self.problems:
                self._undecided(alias, undecided.shape)
            never_called = not parts and alias not in self.problems and alias not in self.skipped
            if (
                never_called
                and alias != self._input_alias
                and alias in self.optional
                and self.n_kept
                and not self._compiled
            ):
                self.skipped[alias] = (
                    "it was not called in the validation batches sampled (a module used only in training, such as an "
                    "auxiliary head, or a branch these examples do not take), so it has no activations to measure"
                )
            if alias in self.skipped:
                continue
            problems = dict(self.problems.get(alias, {}))
            points = None
            rows = [p for p in parts if isinstance(p, torch.Tensor)]  # all of them unless the layer has a problem
            if not problems and rows:
                widths = {p.shape[1] for p in rows}
                if len(widths) > 1:
                    problems["width"] = (
                        f"its reduced width changes between batches ({sorted(widths)}): a per-example reduction "
                        "must give every example the same width (for padded sequences use a token reduction, "
                        "reduce='token_mean')"
                    )
                else:
                    points = torch.cat(rows)
            if not problems and not parts and self._compiled and alias != self._input_alias:
                problems["not_captured"] = (
                    "no activations were captured: its module is compiled (torch.compile) and ran without its "
                    "hooks; compile the model with a mode that keeps Python hooks, or monitor a module outside "
                    "the compiled region"
                )
            volumes = torch.cat(self.volumes[alias]) if self.volumes[alias] and points is not None else None
            out[alias] = LayerSample(points, labels, problems, volumes, alias in self.outputs)
        self._reset()
        return out
