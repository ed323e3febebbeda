import math

import numpy as np
import pytest
import ripser
import torch
from gudhi import bottleneck_distance

from lightning_topo import PersistenceDiagrams, datasets
from lightning_topo.functional import h0_mst_deaths, pairwise_distances, vietoris_rips
from tests.conftest import random_rotation


def _persistence(dgm: np.ndarray) -> np.ndarray:
    finite = dgm[np.isfinite(dgm[:, 1])]
    # padded with zeros so that "the second-longest bar" exists even when there is none
    return np.concatenate([np.sort(finite[:, 1] - finite[:, 0])[::-1], np.zeros(3)])


def _bottleneck(a: np.ndarray, b: np.ndarray) -> float:
    fa, fb = a[np.isfinite(a[:, 1])], b[np.isfinite(b[:, 1])]
    return float(bottleneck_distance(fa, fb))


def test_circle_has_one_dominant_h1_bar(gen):
    dgms = vietoris_rips(datasets.circle(100, noise=0.02, generator=gen), maxdim=1)
    pers = _persistence(dgms[1])
    assert pers[0] > 10 * pers[1]
    assert dgms.n_essential(0) == 1


def test_two_circles_have_two_components_and_two_loops_at_mid_scale(gen):
    from lightning_topo.functional import betti_numbers

    x = datasets.circles(2, 60, spacing=4.0, generator=gen)
    dgms = vietoris_rips(x, maxdim=1)
    assert betti_numbers(dgms, 0.8).tolist() == [2, 2]


def test_figure_eight_has_two_loops(gen):
    dgms = vietoris_rips(datasets.figure_eight(200, generator=gen), maxdim=1)
    pers = _persistence(dgms[1])
    assert pers[1] > 5 * pers[2]


def test_torus_has_two_long_h1_bars(gen):
    dgms = vietoris_rips(datasets.torus(400, major=2.0, minor=1.0, generator=gen), maxdim=1)
    pers = _persistence(dgms[1])
    # angles drawn uniformly leave the outer rim sparse, so noise bars reach ~0.6 of the true ones
    assert pers[1] > 1.5 * pers[2]
    assert pers[1] > 1.0


def test_sphere_has_one_h2_bar(gen):
    dgms = vietoris_rips(datasets.sphere(150, generator=gen), maxdim=2)
    pers = _persistence(dgms[2])
    assert pers[0] > 0.4
    assert pers[0] > 5 * pers[1]


def test_uniform_blob_has_only_short_h1_bars(gen):
    x = torch.rand(200, 2, generator=gen, dtype=torch.float64)
    dgms = vietoris_rips(x, maxdim=1)
    diameter = float(pairwise_distances(x).max())
    assert _persistence(dgms[1]).max() < 0.2 * diameter


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("n", "dim"), [(60, 2), (120, 5), (150, 30)])
def test_diagrams_equal_ripser_on_random_clouds(seed, n, dim):
    x = np.random.default_rng(seed).normal(size=(n, dim))
    ours = vietoris_rips(torch.from_numpy(x), maxdim=2 if n <= 60 else 1)
    ref = ripser.ripser(x, maxdim=ours.maxdim)["dgms"]
    diameter = float(pairwise_distances(torch.from_numpy(x)).max())
    for q in range(ours.maxdim + 1):
        assert ours.n_essential(q) == int(np.isinf(ref[q][:, 1]).sum())
        assert _bottleneck(ours[q], ref[q]) <= 1e-5 * diameter


def test_distance_matrix_input_gives_the_same_diagrams(gen):
    x = datasets.torus(120, generator=gen, dtype=torch.float64)
    a = vietoris_rips(x, maxdim=1)
    b = vietoris_rips(pairwise_distances(x), maxdim=1, distance_matrix=True)
    assert a.allclose(b)


def test_diagrams_are_invariant_to_permutation_rotation_and_translation(gen):
    x = datasets.torus(150, noise=0.05, ambient_dim=6, generator=gen, dtype=torch.float64)
    base = vietoris_rips(x, maxdim=1)
    perm = torch.randperm(len(x), generator=gen)
    moved = x[perm] @ random_rotation(6) + torch.linspace(-3, 7, 6, dtype=torch.float64)
    other = vietoris_rips(moved, maxdim=1)
    for q in range(2):
        assert len(base[q]) == len(other[q])
        assert _bottleneck(base[q], other[q]) < 1e-5


def test_lifetimes_scale_linearly_with_the_data(gen):
    x = datasets.circle(80, noise=0.05, generator=gen, dtype=torch.float64)
    base = vietoris_rips(x, maxdim=1)
    scaled = vietoris_rips(10.0 * x, maxdim=1)
    for q in range(2):
        np.testing.assert_allclose(scaled.lifetimes(q), 10.0 * base.lifetimes(q), rtol=1e-5)


def test_h0_from_the_spanning_tree_equals_giotto_ph(gen):
    x = datasets.ball(300, dim=4, ambient_dim=10, generator=gen, dtype=torch.float64)
    tree = vietoris_rips(x, maxdim=0)
    gph = vietoris_rips(x, maxdim=0, h0="ripser")
    assert tree.n_essential(0) == gph.n_essential(0) == 1
    np.testing.assert_allclose(tree.lifetimes(0), gph.lifetimes(0), rtol=1e-6)
    mixed = vietoris_rips(x, maxdim=1, h0="mst")
    np.testing.assert_allclose(mixed.lifetimes(0), gph.lifetimes(0), rtol=1e-6)


def test_mst_deaths_sum_to_the_minimum_spanning_tree_weight(rng):
    from scipy.sparse.csgraph import minimum_spanning_tree

    x = rng.normal(size=(100, 3))
    d = pairwise_distances(torch.from_numpy(x))
    ours = h0_mst_deaths(d)
    assert ours.shape == (99,)
    assert float(ours.sum()) == pytest.approx(minimum_spanning_tree(d.numpy()).sum(), rel=1e-12)


def test_threshold_turns_late_classes_into_essential_bars(gen):
    x = datasets.circles(3, 40, spacing=5.0, generator=gen)
    for h0 in ("ripser", "mst"):
        dgms = vietoris_rips(x, maxdim=1, thresh=1.0, h0=h0)
        assert dgms.n_essential(0) == 3
        assert np.isfinite(dgms.finite(0)).all()
        assert dgms.finite(0)[:, 1].max() <= 1.0


@pytest.mark.parametrize("thresh", [math.inf, 1.0])
def test_gudhi_backend_gives_the_same_diagrams(gen, thresh):
    x = datasets.torus(150, noise=0.05, generator=gen, dtype=torch.float64)
    a = vietoris_rips(x, maxdim=1, thresh=thresh)
    b = vietoris_rips(x, maxdim=1, thresh=thresh, backend="gudhi")
    for q in range(2):
        assert a.n_essential(q) == b.n_essential(q)
        assert _bottleneck(a[q], b[q]) < 1e-5


def test_edge_collapse_gives_the_same_diagrams(gen):
    x = datasets.circle(60, noise=0.05, ambient_dim=3, generator=gen, dtype=torch.float64)
    a = vietoris_rips(x, maxdim=1)
    b = vietoris_rips(x, maxdim=1, collapse_edges=True)
    for q in range(2):
        assert _bottleneck(a[q], b[q]) < 1e-5


def test_duplicated_and_constant_points_give_documented_diagrams():
    x = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    dgms = vietoris_rips(x, maxdim=1)
    assert dgms[0].tolist() == [[0.0, 1.0], [0.0, math.inf]]
    assert len(dgms[1]) == 0
    const = vietoris_rips(torch.zeros(10, 4), maxdim=1)
    assert isinstance(const, PersistenceDiagrams)
    assert const[0].tolist() == [[0.0, math.inf]]
    assert len(const[1]) == 0
    assert vietoris_rips(torch.zeros(10, 4), maxdim=0)[0].tolist() == [[0.0, math.inf]]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"x": torch.zeros(2, 3)}, "at least 3 points"),
        ({"x": torch.zeros(2, 2), "distance_matrix": True}, "at least 3 points"),
        ({"x": torch.zeros(5, 2), "maxdim": 5}, "Expected `maxdim` to be 0, 1 or 2 but got 5"),
        ({"x": torch.zeros(5, 2), "maxdim": 1.0}, "`maxdim`"),
        ({"x": torch.zeros(5, 2), "h0": "tree"}, "`h0`"),
        ({"x": torch.zeros(5, 2), "backend": "ripser"}, "`backend`"),
        ({"x": torch.zeros(5, 2), "thresh": 0.0}, "`thresh`"),
        ({"x": torch.full((5, 2), float("nan"))}, "NaN"),
    ],
)
def test_invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        vietoris_rips(**kwargs)
