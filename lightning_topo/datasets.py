"""Download-free example data: point clouds of known topology and scikit-learn's bundled digits.

Every sampler takes a ``generator``: pass a seeded one for reproducible data (with ``generator=None`` PyTorch's
global generator draws). It returns an ``(n, ambient_dim)`` tensor (:func:`circles`: ``(k n, ambient_dim)``, ``n``
points per circle). With
``ambient_dim`` larger than the manifold's own coordinates, the cloud is rotated by a random orthogonal
matrix into the larger space, so that no coordinate axis is special. The two-class samplers
(:func:`entangled_rings`, :func:`linked_tori`) return ``(points, labels)``, ``2 n`` rows (``n`` per class): classes
that are entangled, so that
no network separates them without changing their topology (Naitzat et al.'s data sets D-II).
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "ball",
    "circle",
    "circles",
    "entangled_rings",
    "figure_eight",
    "linked_tori",
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


def entangled_rings(
    n: int = 200,
    *,
    pairs: int = 3,
    spacing: float = 4.0,
    noise: float = 0.0,
    ambient_dim: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``pairs`` pairs of linked unit circles in R^3 (chain links), one circle of each pair in each class.

    Pair ``i`` is centred at ``(i * spacing, 0, 0)``: class 0's circle lies in the xy-plane around the centre,
    class 1's in the xz-plane around the centre shifted by ``(1, 0, 0)``, so each passes through the other's disk
    (a Hopf link). The two circles of a pair are 1 apart at their closest; pairs are ``spacing - 3`` apart.

    Known topology, per class: ``pairs`` disjoint circles, Betti numbers ``(pairs, pairs, 0)``. The union is
    linked, so no homeomorphism of R^3 separates the classes; a network that classifies them has to change
    their topology.

    Args:
        n: points per class (split evenly over its circles), angles drawn uniformly.
        pairs: number of linked pairs.
        spacing: distance between the centres of consecutive pairs (> 3 keeps the pairs apart).
        noise: standard deviation of Gaussian noise added to every coordinate (after the rotation).
        ambient_dim: embed in this many dimensions by a random rotation (default 3).
        generator: source of randomness.
        dtype: dtype of the points.

    Returns:
        ``(points, labels)``: ``(2 n, ambient_dim)`` points (class 0 first) and int64 labels ``(2 n,)``.

    Raises:
        ValueError: for ``pairs < 1``, ``spacing <= 3`` or fewer than ``pairs`` points per class.

    References:
        Naitzat, Zhitnikov, Lim, "Topology of deep neural networks", JMLR 21(184), 2020 (data set D-II:
        linked solid tori).

    Example:
        >>> x, y = entangled_rings(60, pairs=2, generator=torch.Generator().manual_seed(0))
        >>> tuple(x.shape), y.bincount().tolist()
        ((120, 3), [60, 60])
    """
    return linked_tori(
        n,
        pairs=pairs,
        tube=0.0,
        spacing=spacing,
        noise=noise,
        ambient_dim=ambient_dim,
        generator=generator,
        dtype=dtype,
    )


def linked_tori(
    n: int = 400,
    *,
    pairs: int = 3,
    tube: float = 0.25,
    spacing: float = 4.0,
    noise: float = 0.0,
    ambient_dim: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``pairs`` pairs of linked solid tori in R^3, one torus of each pair in each class (Naitzat's D-II).

    The core circles are those of :func:`entangled_rings` (radius 1, 1 apart at their closest); each torus is the
    set of points within ``tube`` of its core circle, sampled uniformly in volume (by rejection). With
    ``tube < 0.5`` the classes never touch: they are ``1 - 2 tube`` apart.

    Known topology, per class: ``pairs`` disjoint solid tori, each homotopy equivalent to a circle: Betti numbers
    ``(pairs, pairs, 0)``, as Naitzat et al.'s D-II (nine pairs there).

    Args:
        n: points per class (split evenly over its tori).
        pairs: number of linked pairs.
        tube: radius of the solid tori, in ``[0, 0.5)`` (0: the circles themselves, :func:`entangled_rings`).
        spacing: distance between the centres of consecutive pairs (> 3 + 2 tube keeps the pairs apart).
        noise: standard deviation of Gaussian noise added to every coordinate (after the rotation).
        ambient_dim: embed in this many dimensions by a random rotation (default 3).
        generator: source of randomness.
        dtype: dtype of the points.

    Returns:
        ``(points, labels)``: ``(2 n, ambient_dim)`` points (class 0 first) and int64 labels ``(2 n,)``.

    Raises:
        ValueError: for ``pairs < 1``, ``tube`` outside ``[0, 0.5)``, pairs that would touch, or fewer than
            ``pairs`` points per class.

    References:
        Naitzat, Zhitnikov, Lim, "Topology of deep neural networks", JMLR 21(184), 2020, section 6.1.

    Example:
        >>> x, y = linked_tori(100, pairs=1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> tuple(x.shape), float(x[y == 0, 2].abs().max()) <= 0.25
        ((200, 3), True)
    """
    pairs = int(pairs)
    if pairs < 1:
        raise ValueError(f"Expected `pairs` >= 1 but got {pairs}.")
    if not 0.0 <= tube < 0.5:
        raise ValueError(f"Expected `tube` in [0, 0.5) (larger tori of a pair would touch) but got {tube!r}.")
    if not spacing > 3.0 + 2.0 * tube:
        raise ValueError(f"Expected `spacing` > {3.0 + 2.0 * tube:g} (3 + 2 tube: pairs apart) but got {spacing!r}.")
    if n < pairs:
        raise ValueError(f"Expected at least one point per torus (`n` >= {pairs}) but got {n}.")
    sizes = [n // pairs + (1 if i < n % pairs else 0) for i in range(pairs)]
    parts: list[list[torch.Tensor]] = [[], []]
    for i, size in enumerate(sizes):
        centre = torch.tensor([i * spacing, 0.0, 0.0], dtype=torch.float64)
        for label in (0, 1):
            u, rho, phi = _solid_torus(size, tube, generator)
            # class 0: core circle in the xy-plane; class 1: in the xz-plane, centre shifted by (1, 0, 0)
            ring = 1.0 + rho * phi.cos()
            a, b, c = ring * u.cos(), ring * u.sin(), rho * phi.sin()
            local = torch.stack([a, b, c], dim=1) if label == 0 else torch.stack([1.0 + a, c, b], dim=1)
            parts[label].append(local + centre)
    x = torch.cat([*parts[0], *parts[1]])
    labels = torch.cat([torch.zeros(n, dtype=torch.int64), torch.ones(n, dtype=torch.int64)])
    return _finish(x, ambient_dim, noise, generator, dtype), labels


def _solid_torus(
    n: int, tube: float, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Angles ``u`` (around the core), radii ``rho`` and angles ``phi`` (in the tube's disk), uniform in volume.

    The volume element of the solid torus with core radius 1 is ``(1 + rho cos phi) rho``: ``rho = tube sqrt(U)``
    makes the disk uniform, and a rejection step with acceptance ``(1 + rho cos phi) / (1 + tube)`` the torus.
    """
    if tube == 0.0:
        u = 2 * math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
        zero = torch.zeros(n, dtype=torch.float64)
        return u, zero, zero
    kept: list[torch.Tensor] = []
    count = 0
    while count < n:
        m = 2 * (n - count) + 16
        draw = torch.rand(4, m, generator=generator, dtype=torch.float64)
        rho, phi = tube * draw[1].sqrt(), 2 * math.pi * draw[2]
        accept = draw[3] * (1.0 + tube) <= 1.0 + rho * phi.cos()
        rows = torch.stack([2 * math.pi * draw[0], rho, phi])[:, accept]
        kept.append(rows)
        count += rows.shape[1]
    u, rho, phi = torch.cat(kept, dim=1)[:, :n]
    return u, rho, phi


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
