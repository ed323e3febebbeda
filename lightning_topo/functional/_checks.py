"""One place for input checks, so the same mistake gets the same message everywhere."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from lightning_topo.diagrams import PersistenceDiagrams

_MAX_SUPPORTED_DIM = 3


def as_tensor(x: Any, name: str) -> torch.Tensor:
    """Accept a tensor or an array-like; never copies a tensor."""
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray | list | tuple):
        try:
            return torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError) as err:
            raise ValueError(f"Expected `{name}` to be a numeric tensor or array but got {type(x).__name__}.") from err
    raise ValueError(f"Expected `{name}` to be a torch.Tensor or numpy array but got {type(x).__name__}.")


def _as_float(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.is_complex():
        raise ValueError(f"Expected `{name}` to hold real numbers but got dtype {x.dtype}.")
    if x.dtype not in (torch.float32, torch.float64):
        # integers, booleans and half precision are upcast
        x = x.to(torch.float32)
    return x


def generator_device(generator: torch.Generator | None) -> torch.device:
    """Where ``generator`` draws (random numbers are drawn there, then moved to the data)."""
    return torch.device("cpu") if generator is None else generator.device


def all_finite(x: torch.Tensor) -> bool:
    """Whether every entry of ``x`` is finite (one host synchronisation on an accelerator).

    A finite sum proves it without a boolean copy of ``x`` (NaN and infinities propagate into a sum); only a sum that
    is not finite (one of them, or an overflow of large values) needs the elementwise check.
    """
    if x.numel() == 0 or bool(torch.isfinite(x.sum())):
        return True
    return bool(torch.isfinite(x).all())


def _check_finite(x: torch.Tensor, name: str) -> None:
    if not all_finite(x):
        n_nan = int(torch.isnan(x).sum())
        n_inf = int(torch.isinf(x).sum())
        raise ValueError(
            f"Expected `{name}` to hold only finite values but found {n_nan} NaN and {n_inf} infinite entries."
        )


def check_points(x: Any, name: str = "x", min_points: int = 3) -> torch.Tensor:
    """Validate a point cloud ``(n_points, n_features)``; return it as a float tensor on its device."""
    x = as_tensor(x, name)
    if x.ndim != 2:
        raise ValueError(f"Expected `{name}` to be 2-D (n_points, n_features) but got shape {tuple(x.shape)}.")
    if x.shape[0] < min_points:
        raise ValueError(f"Expected `{name}` to hold at least {min_points} points but got {x.shape[0]}.")
    if x.shape[1] < 1:
        raise ValueError(f"Expected `{name}` to have at least one feature but got shape {tuple(x.shape)}.")
    x = _as_float(x, name)
    _check_finite(x, name)
    return x


def check_distance_matrix(d: Any, name: str = "x", min_points: int = 3) -> torch.Tensor:
    """Validate a square, symmetric, non-negative distance matrix with a zero diagonal.

    On an accelerator this reads one small vector back (one host sync) and makes no ``n x n`` temporary: the
    extremes come from ``aminmax`` (NaN propagates), the symmetry from tiles of ``_TILE x _TILE``.
    """
    d = as_tensor(d, name)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"Expected `{name}` to be a square distance matrix but got shape {tuple(d.shape)}.")
    if d.shape[0] < min_points:
        raise ValueError(f"Expected `{name}` to hold at least {min_points} points but got {d.shape[0]}.")
    d = _as_float(d, name)
    if d.numel() == 0:
        return d
    low, high = torch.aminmax(d)
    stats = torch.stack([low, high, d.diagonal().abs().max(), _asymmetry(d)]).tolist()
    low_v, high_v, diag_v, asym_v = stats
    if not (math.isfinite(low_v) and math.isfinite(high_v)):
        _check_finite(d, name)
    if low_v < 0:
        raise ValueError(f"Expected `{name}` to hold non-negative distances but found negative entries.")
    tol = 1e-6 * max(high_v, 1.0)
    if diag_v > tol:
        raise ValueError(f"Expected `{name}` to have a zero diagonal, as a distance matrix does.")
    if asym_v > tol:
        raise ValueError(f"Expected `{name}` to be symmetric, as a distance matrix is.")
    return d


_TILE = 256


def _asymmetry(d: torch.Tensor) -> torch.Tensor:
    """``max |d - d.T|`` over tiles of the upper triangle (a whole ``d - d.T`` would be two more matrices)."""
    n = d.shape[0]
    worst = [
        (d[i : i + _TILE, j : j + _TILE] - d[j : j + _TILE, i : i + _TILE].T).abs_().max()
        for i in range(0, n, _TILE)
        for j in range(i, n, _TILE)
    ]
    return torch.stack(worst).max()


def check_maxdim(maxdim: Any, allowed: Iterable[int] = range(_MAX_SUPPORTED_DIM)) -> int:
    allowed = tuple(allowed)
    if isinstance(maxdim, bool) or not isinstance(maxdim, int | np.integer) or int(maxdim) not in allowed:
        options = ", ".join(str(a) for a in allowed[:-1]) + f" or {allowed[-1]}" if len(allowed) > 1 else str(allowed)
        raise ValueError(f"Expected `maxdim` to be {options} but got {maxdim!r}.")
    return int(maxdim)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    choices = tuple(choices)
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"Expected `{name}` to be one of {listed} but got {value!r}.")
    return value


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or int(value) < minimum:
        raise ValueError(f"Expected `{name}` to be an integer >= {minimum} but got {value!r}.")
    return int(value)


def check_fraction(name: str, value: Any) -> float:
    """Check ``0 < value <= 1``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not 0 < v <= 1:  # also rejects NaN
        raise ValueError(f"Expected `{name}` to be a number in (0, 1] but got {value!r}.")
    return v


def check_diagrams(diagrams: Any, dim: int | None = None) -> PersistenceDiagrams:
    if not isinstance(diagrams, PersistenceDiagrams):
        raise ValueError(f"Expected a `PersistenceDiagrams` but got {type(diagrams).__name__}.")
    if dim is not None and (
        isinstance(dim, bool) or not isinstance(dim, int | np.integer) or not 0 <= int(dim) <= diagrams.maxdim
    ):
        raise ValueError(f"Expected `dim` to be an integer in [0, {diagrams.maxdim}] but got {dim!r}.")
    return diagrams
