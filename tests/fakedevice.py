"""A strict fake accelerator for testing the device path without a GPU.

Inside :func:`fake_device`, ``"cuda"`` names a fake device whose tensors (:class:`FakeDeviceTensor`) hold CPU data
but report ``device == cuda:0`` and behave as strictly as CUDA tensors do, so that code written for an accelerator
runs its accelerator branch here and every host/device crossing is seen:

- **device mixes are refused**: an operation between a fake tensor and a CPU tensor with at least one dimension
  raises ``RuntimeError`` (0-d CPU tensors are allowed, as CUDA allows CPU scalars; a CPU index tensor may index
  a fake tensor, as on CUDA, and counts as a copy to the device);
- **``.numpy()`` (and ``__array__``, pickling) on the device is refused** with CUDA's ``TypeError``;
- **host synchronisations are counted** (``counters.syncs``, each with the line that caused it in
  ``counters.sync_sites``): ``item``, ``tolist``, ``bool()/float()/int()/index()``, printing, and the operations whose
  output size depends on the data (``nonzero``, ``argwhere``, ``masked_select``, ``unique``, ``bincount``,
  ``repeat_interleave`` without ``output_size``, ``equal``, ``allclose``, ``where(cond)``), indexing with a boolean
  mask, and indexing with a 0-d integer or boolean tensor (PyTorch turns it into a Python int with ``.item()``:
  ``x[torch.argmax(v)]`` is one sync on CUDA);
- **copies are recorded** (``counters.to_host`` / ``counters.to_device``: shape, dtype, bytes, where): ``.cpu()``,
  ``.to("cpu")``, ``copy_`` into a CPU tensor are the ways off the device. Every copy is a host synchronisation
  too, both ways: PyTorch copies between pageable host memory and the device with ``memcpy_and_sync``, which
  waits for the stream (``torch.cuda.set_sync_debug_mode`` flags it); ``counters.host_syncs`` adds them;
- **device memory is tracked**: ``counters.live_bytes`` and ``counters.peak_bytes`` over the storages of the fake
  tensors alive (``counters.reset_peak()`` starts a new high-water mark);
- **generators are device-bound**: ``torch.randperm(..., generator=g)`` with a CPU generator and a fake-device
  output is refused, as CUDA refuses it, and a :func:`fake_generator` (a generator "on" the fake device) is refused
  for CPU outputs.

Factories (``torch.zeros(..., device="cuda")``, ``torch.tensor(..., device=x.device)``, ``.to(x.device)``,
``.cuda()``) create fake tensors; the results of operations on fake tensors are fake tensors; ``nn.Module.to("cuda")``
moves parameters and buffers onto the fake device (the context turns on
``torch.__future__.set_swap_module_params_on_conversion`` so that a parameter's Python object becomes a fake tensor).

Limits (what this does not model):
    - Only Python-level torch calls are seen (a ``TorchFunctionMode``): the work inside one kernel or one composite
      torch function is invisible, so its temporaries are not in ``peak_bytes`` and its syncs are not counted
      unless the function itself is in the list above (e.g. ``torch.linalg`` error checks, ``torch.quantile`` of a
      tensor ``q``).
    - Kernel *performance* is not modelled: ``torch.kthvalue`` over one huge slice (one CUDA thread block) runs here
      at CPU speed.
    - Autocast: the fake tensors compute on the CPU, so inside the context ``torch.autocast("cuda", ...)`` (and
      ``torch.amp.autocast``, looked up at call time as Lightning and the library do) is the CPU autocast, which
      is what changes their numerics; ``torch.is_autocast_enabled("cuda")`` is not redirected.
    - No autograd on fake tensors, no streams, no events, no ``torch.cuda.*`` API, no CUDA ``torch.Generator``
      (use :func:`fake_generator`); a fake tensor that escapes the context behaves as a CPU tensor.
    - Some cross-device cases that CUDA accepts are refused (a CPU 0-d tensor is allowed everywhere, a CPU tensor
      with dimensions nowhere except ``copy_``, ``to``, basic-index assignment and as an index).
"""

from __future__ import annotations

import collections
import contextlib
import sys
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

__all__ = [
    "FAKE",
    "DeviceCounters",
    "FakeDeviceGenerator",
    "FakeDeviceTensor",
    "Transfer",
    "fake_device",
    "fake_generator",
]

FAKE = torch.device("cuda", 0)
_CPU = torch.device("cpu")
_HERE = str(Path(__file__).resolve())
_TORCH_DIR = str(Path(torch.__file__).resolve().parent)


class FakeDeviceTensor(torch.Tensor):
    """A CPU tensor that says it lives on :data:`FAKE` (created only inside :func:`fake_device`)."""

    # as torch.nn.Parameter does: no subclass dispatch of its own; the mode does all the work
    __torch_function__ = torch._C._disabled_torch_function_impl  # type: ignore[assignment]

    @property
    def device(self) -> torch.device:  # type: ignore[override]
        return FAKE

    @property
    def is_cuda(self) -> bool:  # type: ignore[override]
        return True

    @property
    def is_cpu(self) -> bool:  # type: ignore[override]
        return False


class FakeDeviceGenerator(torch.Generator):
    """A CPU generator that says it lives on :data:`FAKE` (a stand-in for a CUDA generator)."""

    @property
    def device(self) -> torch.device:  # type: ignore[override]
        return FAKE


def fake_generator(seed: int) -> FakeDeviceGenerator:
    """A generator "on" the fake device, seeded."""
    g = FakeDeviceGenerator()
    g.manual_seed(seed)
    return g


@dataclass(frozen=True)
class Transfer:
    """One copy between the host and the fake device."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    nbytes: int
    site: str


@dataclass
class DeviceCounters:
    """What crossed between the host and the fake device, and what was refused."""

    syncs: int = 0
    sync_sites: collections.Counter[str] = field(default_factory=collections.Counter)
    to_host: list[Transfer] = field(default_factory=list)
    to_device: list[Transfer] = field(default_factory=list)
    mixes: list[str] = field(default_factory=list)
    numpy_calls: list[str] = field(default_factory=list)
    ops: collections.Counter[str] = field(default_factory=collections.Counter)
    live_bytes: int = 0
    peak_bytes: int = 0
    peak_site: str = ""

    @property
    def host_syncs(self) -> int:
        """Host synchronisations, the copies (both ways) included."""
        return self.syncs + len(self.to_host) + len(self.to_device)

    @property
    def bytes_to_host(self) -> int:
        return sum(t.nbytes for t in self.to_host)

    @property
    def violations(self) -> list[str]:
        """Refused operations (raised when they happened; also kept here in case the code swallowed them)."""
        return [*self.mixes, *self.numpy_calls]

    def reset(self) -> None:
        """Zero the counts (live memory stays; the peak restarts from it)."""
        self.syncs = 0
        self.sync_sites.clear()
        self.to_host.clear()
        self.to_device.clear()
        self.mixes.clear()
        self.numpy_calls.clear()
        self.ops.clear()
        self.reset_peak()

    def reset_peak(self) -> None:
        self.peak_bytes = self.live_bytes
        self.peak_site = ""


def _site() -> str:
    """``file:line`` of the innermost frame outside torch and this module (the line that caused an event)."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_code.co_filename
        if name != _HERE and not name.startswith(_TORCH_DIR) and "contextlib" not in name:
            return f"{Path(name).name}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return "?"


def _is_fake_device(device: Any) -> bool:
    if device is None:
        return False
    if isinstance(device, int) and not isinstance(device, bool):
        return True  # a bare index means a CUDA device
    try:
        return torch.device(device).type == "cuda"
    except (RuntimeError, TypeError):
        return False


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, list | tuple):
        for item in obj:
            yield from _tensors(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _tensors(item)


def _is_fake(t: Any) -> bool:
    return isinstance(t, FakeDeviceTensor)


_T = torch.Tensor
_SYNC_METHODS: set[Any] = {
    _T.item,
    _T.tolist,
    _T.__bool__,
    _T.__float__,
    _T.__int__,
    _T.__index__,
    _T.__complex__,
    _T.__repr__,
    _T.__str__,
    _T.__format__,
}
_DATA_DEPENDENT: set[Any] = {
    torch.nonzero,
    _T.nonzero,
    torch.argwhere,
    _T.argwhere,
    torch.masked_select,
    _T.masked_select,
    torch.unique,
    _T.unique,
    torch.unique_consecutive,
    _T.unique_consecutive,
    torch.bincount,
    _T.bincount,
    torch.equal,
    _T.equal,
    torch.allclose,
    _T.allclose,
}
_REFUSED: set[Any] = {_T.numpy, _T.__array__, _T.__reduce_ex__}
_TO_HOST: set[Any] = {_T.cpu}
_TO_DEVICE: set[Any] = {_T.cuda}
_COPIES: set[Any] = {_T.copy_}
_INDEXING: set[Any] = {_T.__getitem__, _T.__setitem__}
_ACCESSORS: set[Any] = {
    torch._has_compatible_shallow_copy_type,  # nn.Module.to asks it of a parameter and its moved copy
    _T.device.__get__,
    _T.is_cuda.__get__,  # type: ignore[attr-defined]
    _T.is_cpu.__get__,  # type: ignore[attr-defined]
}


class _FakeDeviceMode(TorchFunctionMode):
    def __init__(self, counters: DeviceCounters) -> None:
        super().__init__()
        self.counters = counters
        self._storages: set[int] = set()  # ids of the live storages of fake tensors

    # memory --------------------------------------------------------------------------------------------------
    def _track(self, t: FakeDeviceTensor) -> None:
        # A storage's Python object lives exactly as long as the storage (PyTorch preserves it), so a finalizer
        # on it sees the device memory freed, whichever tensors or views held it (weak references to the tensors
        # themselves would stop nn.Module.to from swapping parameters).
        storage = t.untyped_storage()
        key, nbytes = id(storage), storage.nbytes()
        if nbytes == 0 or key in self._storages:
            return
        self._storages.add(key)
        self.counters.live_bytes += nbytes
        if self.counters.live_bytes > self.counters.peak_bytes:
            self.counters.peak_bytes = self.counters.live_bytes
            self.counters.peak_site = _site()
        weakref.finalize(storage, self._release, key, nbytes)

    def _release(self, key: int, nbytes: int) -> None:
        self._storages.discard(key)
        self.counters.live_bytes -= nbytes

    def _wrap(self, out: Any) -> Any:
        if isinstance(out, FakeDeviceTensor):
            self._track(out)
            return out
        if isinstance(out, torch.Tensor):
            fake = out.as_subclass(FakeDeviceTensor)
            self._track(fake)
            return fake
        if isinstance(out, list):
            return [self._wrap(o) for o in out]
        if isinstance(out, tuple):
            items = [self._wrap(o) for o in out]
            return type(out)(items) if hasattr(out, "n_fields") or hasattr(out, "_fields") else tuple(items)
        return out

    # events --------------------------------------------------------------------------------------------------
    def _sync(self, what: str) -> None:
        self.counters.syncs += 1
        self.counters.sync_sites[f"{_site()} {what}"] += 1

    def _transfer(self, t: torch.Tensor, to_host: bool) -> None:
        record = Transfer(tuple(t.shape), t.dtype, t.numel() * t.element_size(), _site())
        (self.counters.to_host if to_host else self.counters.to_device).append(record)

    def _mix(self, what: str) -> RuntimeError:
        message = (
            f"Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu! "
            f"({what} at {_site()})"
        )
        self.counters.mixes.append(message)
        return RuntimeError(message)

    # dispatch ------------------------------------------------------------------------------------------------
    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = dict(kwargs or {})
        name = getattr(func, "__name__", str(func))
        if func in _ACCESSORS:
            return func(*args, **kwargs)
        tensors = list(_tensors(args)) + list(_tensors(kwargs))
        any_fake = any(_is_fake(t) for t in tensors)
        if any_fake or _is_fake_device(kwargs.get("device")):
            self.counters.ops[name] += 1
        if func is _T.get_device and any_fake:
            return 0
        if func in _REFUSED and any_fake:
            message = (
                f"can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor to host "
                f"memory first. ({name} at {_site()})"
            )
            self.counters.numpy_calls.append(message)
            raise TypeError(message)
        if func is _T.__iter__ and any_fake:
            return iter(self._wrap(list(func(*args, **kwargs))))
        if func in _SYNC_METHODS and any_fake:
            self._sync(name)
            return func(*args, **kwargs)
        if func in _TO_HOST or func in _TO_DEVICE or func is _T.to:
            return self._move(func, args, kwargs)
        if func in _COPIES:
            return self._copy(args, kwargs)
        if func in _INDEXING:
            return self._index(func, args, kwargs)
        self._check_generator(kwargs, args, any_fake)
        device = kwargs.get("device")
        on_fake = _is_fake_device(device)
        if on_fake:
            kwargs["device"] = _CPU
            if func in (torch.tensor, torch.as_tensor, torch.from_numpy) and args:
                if isinstance(args[0], torch.Tensor) and _is_fake(args[0]):
                    return self._wrap(func(*args, **kwargs))
                out = func(*args, **kwargs)
                if isinstance(args[0], torch.Tensor) and out.untyped_storage().data_ptr() == args[0].data_ptr():
                    out = out.clone()  # a copy to the device never aliases host memory
                self._transfer(out, to_host=False)
                return self._wrap(out)
        elif device is not None:
            on_fake = False
            any_fake = any_fake and func not in (torch.empty_like, torch.zeros_like, torch.ones_like, torch.full_like)
        if any_fake and any(not _is_fake(t) and t.ndim > 0 for t in tensors):
            raise self._mix(name)
        if any_fake and self._data_dependent(func, args, kwargs):
            self._sync(name)
        out = func(*args, **kwargs)
        return self._wrap(out) if (any_fake or on_fake) else out

    def _data_dependent(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        if func in _DATA_DEPENDENT:
            return True
        if func in (torch.where, _T.where) and len(args) + len(kwargs) == 1:
            return True
        if func in (torch.repeat_interleave, _T.repeat_interleave):
            repeats = args[1] if len(args) > 1 else kwargs.get("repeats")
            return isinstance(repeats, torch.Tensor) and kwargs.get("output_size") is None
        if func in (torch.quantile, _T.quantile, torch.nanquantile, _T.nanquantile):
            q = args[1] if len(args) > 1 else kwargs.get("q")
            return isinstance(q, torch.Tensor)
        return False

    def _check_generator(self, kwargs: dict[str, Any], args: tuple[Any, ...], any_fake: bool) -> None:
        gen = kwargs.get("generator")
        if gen is None:
            return
        out_fake = _is_fake_device(kwargs.get("device")) or (any_fake and "device" not in kwargs)
        gen_fake = isinstance(gen, FakeDeviceGenerator)
        if out_fake != gen_fake:
            want, got = ("cuda", "cpu") if out_fake else ("cpu", "cuda")
            raise RuntimeError(f"Expected a '{want}' device type for generator but found '{got}' (at {_site()})")

    def _move(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        src = args[0]
        src_fake = _is_fake(src)
        if func in _TO_HOST:
            target_fake = False
        elif func in _TO_DEVICE:
            target_fake = True
        else:
            target = kwargs.get("device")
            for a in args[1:]:
                if isinstance(a, torch.Tensor):
                    target = a.device  # .to(other): other's device (and dtype)
                    kwargs.setdefault("dtype", a.dtype)
                elif isinstance(a, str | torch.device | int) and not isinstance(a, bool):
                    target = a
            target_fake = src_fake if target is None else _is_fake_device(target)
        dtype = kwargs.get("dtype") or next((a for a in args[1:] if isinstance(a, torch.dtype)), None)
        plain_kwargs = {k: v for k, v in kwargs.items() if k in ("non_blocking", "memory_format")}
        if dtype is not None:
            plain_kwargs["dtype"] = dtype
        if src_fake == target_fake:
            out = src.to(**plain_kwargs) if plain_kwargs.get("dtype") is not None or kwargs.get("copy") else src
            if kwargs.get("copy") and out is src:
                out = src.clone()
            return self._wrap(out) if src_fake else out
        out = src.to(copy=True, **plain_kwargs)
        if src_fake:
            self._transfer(src, to_host=True)
            return out.as_subclass(torch.Tensor) if type(out) is not torch.Tensor else out
        self._transfer(src, to_host=False)
        return self._wrap(out)

    def _copy(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        dst, src = args[0], args[1]
        if isinstance(src, torch.Tensor) and _is_fake(src) != _is_fake(dst):
            self._transfer(src, to_host=_is_fake(src))
        return dst.copy_(src, **kwargs)

    def _index(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self_, index = args[0], args[1]
        value = args[2] if len(args) > 2 else None
        index_tensors = list(_tensors(index if isinstance(index, tuple) else (index,)))
        self_fake = _is_fake(self_)
        scalar_value = value is not None and not isinstance(value, torch.Tensor)
        for t in index_tensors:
            mask = t.dtype in (torch.bool, torch.uint8)
            if _is_fake(t) and (mask or t.ndim == 0) and not (mask and scalar_value and len(index_tensors) == 1):
                # a 0-d index becomes a Python int (.item()); a mask becomes indices (nonzero); `x[mask] = scalar`
                # is a masked_fill_ on CUDA (no sync)
                self._sync(f"{func.__name__} with a {'mask' if mask else '0-d tensor'} index")
            if _is_fake(t) and not self_fake:
                raise self._mix(f"{func.__name__}: a cuda index into a cpu tensor")
            if self_fake and not _is_fake(t) and t.ndim > 0:
                self._transfer(t, to_host=False)  # CUDA copies a CPU index to the device
        if isinstance(value, torch.Tensor) and _is_fake(value) != self_fake and value.ndim > 0:
            if index_tensors:
                raise self._mix(f"{func.__name__}: advanced-index assignment across devices")
            self._transfer(value, to_host=_is_fake(value))
        out = func(*args, **kwargs)
        return self._wrap(out) if self_fake else out


@contextlib.contextmanager
def fake_device() -> Iterator[DeviceCounters]:
    """Within the block, ``"cuda"`` is a strict fake device; yields the counters.

    Example:
        >>> with fake_device() as counters:
        ...     x = torch.arange(4.0).to("cuda")
        ...     y = (x * 2).sum()
        ...     value = float(y)
        >>> x.device.type, value, counters.syncs
        ('cuda', 12.0, 1)
    """
    counters = DeviceCounters()
    swap = torch.__future__.get_swap_module_params_on_conversion()
    autocast = torch.autocast
    torch.__future__.set_swap_module_params_on_conversion(True)
    torch.autocast = torch.amp.autocast = _FakeAutocast  # type: ignore[misc]
    try:
        with _FakeDeviceMode(counters):
            yield counters
    finally:
        torch.__future__.set_swap_module_params_on_conversion(swap)
        torch.autocast = torch.amp.autocast = autocast  # type: ignore[misc]


class _FakeAutocast(torch.amp.autocast_mode.autocast):
    """``torch.autocast("cuda", ...)`` on the fake device is the CPU autocast, the one that reaches its kernels."""

    def __init__(self, device_type: str, *args: Any, **kwargs: Any) -> None:
        super().__init__("cpu" if device_type == "cuda" else device_type, *args, **kwargs)
