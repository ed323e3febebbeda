"""Download-free example data: point clouds of known topology and scikit-learn's bundled digits.

Every sampler takes a ``generator`` (never the global seed) and returns a ``(n, ambient_dim)`` tensor. With
``ambient_dim`` larger than the manifold's own coordinates, the cloud is rotated by a random orthogonal
matrix into the larger space, so that no coordinate axis is special.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "ball",
    "circle",
    "circles",
    "figure_eight",
    "load_digits",
    "sphere",
    "swiss_roll",
    "torus",
]


def _finish(
    x: torch.Tensor, ambient_dim: int | None, noise: float, generator: torch.Generator | None, dtype: torch.dtype
) -> torch.Tensor:
    n, k = x.shape
    dim = k if ambient_dim is None else int(ambient_dim)
    if dim < k:
        raise ValueError(f"Expected `ambient_dim` >= {k} for this shape but got {dim}.")
    if dim > k:
        q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
        x = torch.cat([x, torch.zeros(n, dim - k, dtype=torch.float64)], dim=1) @ q
    if noise > 0:
        x = x + noise * torch.randn(x.shape, generator=generator, dtype=torch.float64)
    return x.to(dtype)


def circle(
    n: int = 100,
    *,
    radius: float = 1.0,
    noise: float = 0.0,
    ambient_dim: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``n`` points drawn uniformly on a circle (Betti numbers 1, 1).

    Example:
        >>> circle(8, generator=torch.Generator().manual_seed(0)).norm(dim=1).allclose(torch.ones(8))
        True
    """
    t = 2 * math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
    return _finish(radius * torch.stack([t.cos(), t.sin()], dim=1), ambient_dim, noise, generator, dtype)


def circles(
    k: int = 2,
    n: int = 100,
    *,
    spacing: float = 3.0,
    noise: float = 0.0,
    ambient_dim: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``k`` disjoint unit circles of ``n`` points each, centres ``spacing`` apart on a line (Betti k, k)."""
    parts = [circle(n, generator=generator, dtype=torch.float64) + torch.tensor([i * spacing, 0.0]) for i in range(k)]
    return _finish(torch.cat(parts), ambient_dim, noise, generator, dtype)


def figure_eight(
    n: int = 200,
    *,
    noise: float = 0.0,
    ambient_dim: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Two unit circles touching at one point (Betti numbers 1, 2)."""
    left = circle(n // 2, generator=generator, dtype=torch.float64) - torch.tensor([1.0, 0.0])
    right = circle(n - n // 2, generator=generator, dtype=torch.float64) + torch.tensor([1.0, 0.0])
    return _finish(torch.cat([left, right]), ambient_dim, noise, generator, dtype)


def torus(
    n: int = 400,
    *,
    major: float = 2.0,
    minor: float = 1.0,
    noise: float = 0.0,
    ambient_dim: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """A torus in R^3 (Betti numbers 1, 2, 1), angles drawn uniformly."""
    u = 2 * math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
    v = 2 * math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
    ring = major + minor * v.cos()
    x = torch.stack([ring * u.cos(), ring * u.sin(), minor * v.sin()], dim=1)
    return _finish(x, ambient_dim, noise, generator, dtype)


def sphere(
    n: int = 200,
    *,
    dim: int = 2,
    noise: float = 0.0,
    ambient_dim: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``n`` points uniform on the unit ``dim``-sphere in R^(dim+1) (one essential class in H_dim)."""
    x = torch.randn(n, dim + 1, generator=generator, dtype=torch.float64)
    return _finish(x / x.norm(dim=1, keepdim=True), ambient_dim, noise, generator, dtype)


def ball(
    n: int = 1000,
    *,
    dim: int = 3,
    noise: float = 0.0,
    ambient_dim: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``n`` points uniform in the unit ``dim``-ball, embedded by a rotation (intrinsic dimension ``dim``)."""
    direction = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    direction = direction / direction.norm(dim=1, keepdim=True)
    radius = torch.rand(n, 1, generator=generator, dtype=torch.float64) ** (1.0 / dim)
    return _finish(direction * radius, ambient_dim, noise, generator, dtype)


def swiss_roll(
    n: int = 1000,
    *,
    noise: float = 0.0,
    ambient_dim: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The swiss roll (a rolled-up 2-D sheet in R^3, intrinsic dimension 2), as in scikit-learn."""
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator, dtype=torch.float64))
    h = 21 * torch.rand(n, generator=generator, dtype=torch.float64)
    x = torch.stack([t * t.cos(), h, t * t.sin()], dim=1)
    return _finish(x, ambient_dim, noise, generator, dtype)


def load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled 8x8 digits (1,797 images, shipped inside scikit-learn: no download).

    Returns:
        ``(images, labels)``: float32 ``(1797, 1, 8, 8)`` scaled to ``[0, 1]`` and int64 ``(1797,)``.

    Example:
        >>> images, labels = load_digits()
        >>> tuple(images.shape), int(labels.max())
        ((1797, 1, 8, 8), 9)
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    data = _sk_load_digits()
    images = torch.from_numpy(np.asarray(data.images, dtype=np.float32) / 16.0).unsqueeze(1)
    labels = torch.from_numpy(np.asarray(data.target, dtype=np.int64))
    return images, labels
