"""The two-class samplers have the topology their docstrings state: checked with the functional core's persistence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lightning_topo import datasets
from lightning_topo.functional import betti_numbers, pairwise_distances, vietoris_rips


def _gauss_linking_number(a: np.ndarray, b: np.ndarray) -> float:
    """The Gauss linking integral of two closed polygons (midpoint rule over pairs of segments)."""
    da, db = np.roll(a, -1, axis=0) - a, np.roll(b, -1, axis=0) - b
    ma, mb = a + da / 2, b + db / 2
    r = ma[:, None, :] - mb[None, :, :]
    cross = np.cross(da[:, None, :], db[None, :, :])
    return float(np.sum(np.einsum("ijk,ijk->ij", r, cross) / np.linalg.norm(r, axis=-1) ** 3) / (4 * math.pi))


@pytest.mark.parametrize("pairs", [1, 3])
def test_each_class_of_entangled_rings_has_the_betti_numbers_of_pairs_circles(pairs):
    x, y = datasets.entangled_rings(120 * pairs, pairs=pairs, generator=torch.Generator().manual_seed(0))
    for c in (0, 1):
        dgms = vietoris_rips(x[y == c], maxdim=1)
        assert betti_numbers(dgms, 0.5).tolist() == [pairs, pairs], c
        life = np.sort(dgms.lifetimes(1))[::-1]
        assert life[pairs - 1] > 10 * (life[pairs] if life.size > pairs else 0.0)  # `pairs` loops, then noise


def test_the_circles_of_a_pair_are_linked_and_one_apart():
    x, y = datasets.entangled_rings(400, pairs=1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    a, b = x[y == 0].numpy(), x[y == 1].numpy()
    a = a[np.argsort(np.arctan2(a[:, 1], a[:, 0]))]  # class 0: the unit circle of the xy-plane around the origin
    b = b[np.argsort(np.arctan2(b[:, 2], b[:, 0] - 1.0))]  # class 1: the xz-plane, around (1, 0, 0)
    assert abs(_gauss_linking_number(a, b)) == pytest.approx(1.0, abs=0.02)
    assert float(pairwise_distances(x)[y == 0][:, y == 1].min()) == pytest.approx(1.0, abs=0.02)


def test_each_class_of_linked_tori_is_two_solid_tori_whose_classes_never_touch():
    tube = 0.25
    x, y = datasets.linked_tori(300, pairs=2, tube=tube, generator=torch.Generator().manual_seed(2))
    gap = float(pairwise_distances(x)[y == 0][:, y == 1].min())
    assert gap >= 1 - 2 * tube - 1e-6
    for c in (0, 1):
        dgms = vietoris_rips(x[y == c], maxdim=2, thresh=0.7)
        assert betti_numbers(dgms, 0.5).tolist() == [2, 2, 0], c


def test_linked_tori_are_uniform_in_volume():
    # the volume element (1 + rho cos phi) rho puts more points on the outer side: E[rho cos phi] = tube^2 / 4
    tube = 0.4
    x, y = datasets.linked_tori(40000, pairs=1, tube=tube, generator=torch.Generator().manual_seed(3))
    a = x[y == 0].double()
    radial = torch.linalg.vector_norm(a[:, :2], dim=1) - 1.0  # rho cos phi for the torus around the z axis
    dist_to_core = torch.sqrt(radial**2 + a[:, 2] ** 2)
    assert float(dist_to_core.max()) <= tube + 1e-6
    assert float(radial.mean()) == pytest.approx(tube**2 / 4, abs=0.003)
    assert float((dist_to_core <= tube / math.sqrt(2)).double().mean()) == pytest.approx(0.5, abs=0.01)


def test_samplers_are_reproducible_balanced_and_rotated_into_ambient_dimensions():
    a, ya = datasets.linked_tori(50, pairs=2, generator=torch.Generator().manual_seed(4))
    b, yb = datasets.linked_tori(50, pairs=2, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert torch.equal(ya, yb)
    assert ya.bincount().tolist() == [50, 50]
    high, _ = datasets.entangled_rings(
        60, ambient_dim=10, generator=torch.Generator().manual_seed(5), dtype=torch.float64
    )
    low, _ = datasets.entangled_rings(60, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    assert high.shape == (120, 10)
    assert torch.allclose(pairwise_distances(high), pairwise_distances(low), atol=1e-9)  # a rotation keeps distances


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"pairs": 0}, "Expected `pairs` >= 1"),
        ({"tube": 0.5}, r"Expected `tube` in \[0, 0.5\)"),
        ({"tube": -0.1}, r"Expected `tube` in \[0, 0.5\)"),
        ({"spacing": 3.2}, "Expected `spacing` > 3.5"),
        ({"n": 2, "pairs": 3}, "Expected at least one point per torus"),
    ],
)
def test_linked_tori_refuses_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        datasets.linked_tori(**kwargs)
