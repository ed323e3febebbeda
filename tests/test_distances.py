import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from lightning_topo import datasets
from lightning_topo.functional import distance_scale, pairwise_distances
from lightning_topo.functional import distances as distances_module


def test_euclidean_distances_match_scipy_in_float64(rng):
    x = rng.normal(size=(50, 7))
    d = pairwise_distances(torch.from_numpy(x))
    assert d.dtype == torch.float64
    np.testing.assert_allclose(d.numpy(), cdist(x, x), rtol=1e-12, atol=1e-12)


def test_diagonal_is_exactly_zero_and_matrix_exactly_symmetric(rng):
    x = torch.from_numpy(rng.normal(size=(300, 40)).astype(np.float32) + 1000.0)
    d = pairwise_distances(x)
    assert torch.all(d.diagonal() == 0)
    assert torch.equal(d, d.T)
    assert not torch.isnan(d).any()


def test_nearest_neighbour_distances_of_a_noiseless_circle_are_exact():
    """float32 matmul distances get these wrong by orders of magnitude; ours stay exact."""
    t = np.linspace(0, 2 * np.pi, 2001)[:-1]
    x = np.stack([np.cos(t), np.sin(t)], axis=1) * 100 + 50
    d = pairwise_distances(torch.from_numpy(x.astype(np.float32)))
    ref = cdist(x.astype(np.float32).astype(np.float64), x.astype(np.float32).astype(np.float64))
    nn = torch.topk(d + torch.eye(len(x), dtype=torch.float64) * 1e9, 1, largest=False).values.squeeze(1).numpy()
    np.fill_diagonal(ref, np.inf)
    np.testing.assert_allclose(nn, ref.min(axis=1), rtol=1e-6)


def test_wide_input_is_processed_in_feature_blocks(monkeypatch, rng):
    monkeypatch.setattr(distances_module, "BLOCK_ELEMENTS", 64)
    x = rng.normal(size=(16, 100))
    d = pairwise_distances(torch.from_numpy(x))
    np.testing.assert_allclose(d.numpy(), cdist(x, x), atol=1e-10)


def test_cosine_distances_match_scipy_and_treat_zero_vectors_as_sklearn(rng):
    x = rng.normal(size=(20, 5))
    d = pairwise_distances(torch.from_numpy(x), metric="cosine")
    np.testing.assert_allclose(d.numpy(), np.clip(cdist(x, x, metric="cosine"), 0, 2), atol=1e-12)
    x[3] = 0.0
    x[7] = 0.0
    d = pairwise_distances(torch.from_numpy(x), metric="cosine")
    assert d[3, 7] == 0.0
    assert d[3, 0] == pytest.approx(1.0)


def test_integer_and_half_inputs_are_upcast():
    x = torch.tensor([[0, 0], [3, 4], [6, 8]])
    assert pairwise_distances(x)[0, 1].item() == 5.0
    assert pairwise_distances(x.half())[0, 2].item() == 10.0


@pytest.mark.parametrize("method", ["quantile", "median", "max"])
def test_normalised_distances_are_scale_invariant(method, gen):
    x = datasets.torus(200, generator=gen, dtype=torch.float64)
    a = pairwise_distances(x, normalize=method)
    b = pairwise_distances(37.5 * x, normalize=method)
    torch.testing.assert_close(a, b)


def test_distance_scale_matches_torch_quantile(rng):
    x = torch.from_numpy(rng.normal(size=(60, 3)))
    d = pairwise_distances(x)
    iu = torch.triu_indices(60, 60, offset=1)
    upper = d[iu[0], iu[1]]
    for q in (0.0, 0.1, 0.9, 1.0):
        assert distance_scale(d, "quantile", quantile=q) == pytest.approx(float(torch.quantile(upper, q)), rel=1e-12)
    assert distance_scale(d, "median") == pytest.approx(float(torch.quantile(upper, 0.5)))
    assert distance_scale(d, "max") == float(upper.max())


def test_constant_points_keep_a_zero_matrix_when_normalised():
    d = pairwise_distances(torch.ones(10, 3), normalize="quantile")
    assert torch.all(d == 0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"x": torch.zeros(5)}, "2-D"),
        ({"x": torch.zeros(1, 3)}, "at least 2 points"),
        ({"x": torch.zeros(4, 0)}, "at least one feature"),
        ({"x": torch.tensor([[0.0, float("nan")], [1.0, 1.0]])}, "1 NaN"),
        ({"x": torch.tensor([[0.0, float("inf")], [1.0, 1.0]])}, "1 infinite"),
        ({"x": torch.zeros(3, 2, dtype=torch.complex64)}, "real numbers"),
        ({"x": "points"}, "torch.Tensor or numpy array"),
        ({"x": torch.zeros(3, 2), "metric": "manhattan"}, "`metric`"),
        ({"x": torch.zeros(3, 2), "normalize": "std"}, "`normalize`"),
    ],
)
def test_invalid_inputs_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pairwise_distances(**kwargs)


@pytest.mark.parametrize(
    ("d", "match"),
    [
        (torch.zeros(3, 4), "square"),
        (torch.tensor([[0.0, -1.0], [-1.0, 0.0]]), "non-negative"),
        (torch.tensor([[1.0, 1.0], [1.0, 0.0]]), "zero diagonal"),
        (torch.tensor([[0.0, 1.0], [2.0, 0.0]]), "symmetric"),
    ],
)
def test_distance_scale_validates_the_matrix(d, match):
    with pytest.raises(ValueError, match=match):
        distance_scale(d)


def test_a_non_finite_or_asymmetric_entry_far_from_the_first_tile_is_found():
    d = pairwise_distances(torch.randn(300, 3, generator=torch.Generator().manual_seed(0)))
    lopsided = d.clone()
    lopsided[10, 290] += 0.5
    with pytest.raises(ValueError, match="symmetric"):
        distance_scale(lopsided)
    for bad, count in ((math.nan, "1 NaN and 0 infinite"), (math.inf, "0 NaN and 1 infinite")):
        broken = d.clone()
        broken[299, 298] = bad
        with pytest.raises(ValueError, match=count):
            distance_scale(broken)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_upper_order_statistics_are_the_exact_order_statistics_of_the_upper_triangle(monkeypatch, dtype, rng):
    """The bisection over bit patterns (the device path of ``distance_scale``) against NumPy's sort."""
    monkeypatch.setattr(distances_module, "BLOCK_ELEMENTS", 64)  # many row blocks
    ties = pairwise_distances(torch.from_numpy(rng.integers(0, 4, size=(50, 2)).astype(np.float64)))
    lopsided = torch.from_numpy(rng.exponential(size=(50, 50)))  # not symmetric: only the upper triangle counts
    for d in (ties.to(dtype), lopsided.to(dtype)):
        upper = np.sort(d.numpy()[np.triu_indices(50, k=1)])
        ranks = [0, 1, 17, len(upper) // 2, len(upper) - 2, len(upper) - 1]
        assert distances_module.upper_order_statistics(d, ranks).tolist() == upper[ranks].tolist()


def test_distance_scale_rejects_bad_quantile():
    with pytest.raises(ValueError, match="`quantile`"):
        distance_scale(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), quantile=1.5)
    with pytest.raises(ValueError, match="`method`"):
        distance_scale(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), "mean")  # type: ignore[arg-type]
