"""The approximate H1 paths and the faster exact numerics, checked against the exact computation and references.

Farthest-point subsamples (``ph_samples``): the subsample's diagrams are within bottleneck distance twice its
covering radius of the whole cloud's (stability of Rips persistence under the Gromov-Hausdorff distance, which the
covering radius bounds). Sparse Rips (``ph_sparse=c``): the diagrams are multiplicatively ``c``-interleaved with the
exact ones, so their log-scale diagrams are within bottleneck distance ``log c``. Both bounds are checked on clouds
with real loops (circles, a torus) and without (a Gaussian blob, class clusters). H0 and the intrinsic dimension stay
exact in both.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from gudhi import bottleneck_distance
from scipy.spatial.distance import cdist

from lightning_topo import datasets
from lightning_topo import functional as F
from lightning_topo.engine import LayerResult, LayerSample, measure, measure_layer
from lightning_topo.functional import distances as distances_module
from lightning_topo.options import MeasureOptions, auto_ph_samples, build_options

FLOAT32 = 1e-6  # giotto-ph reduces in float32: diagrams of one matrix agree to this (normalised units)


def _finite(dgm: np.ndarray) -> np.ndarray:
    return dgm[np.isfinite(dgm[:, 1])]


def _clusters(n: int, seed: int) -> torch.Tensor:
    """Class clusters on curved pieces through a ReLU layer, as the benchmarks' representation-like clouds."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 5
    t = torch.rand(n, 2, generator=gen) * 6.28
    z = 3.0 * torch.randn(5, 4, generator=gen)[labels] + torch.cat([t.cos(), t.sin()], dim=1)
    return torch.relu(z @ torch.randn(4, 32, generator=gen))


@functools.cache
def _exact(shape: str) -> tuple[torch.Tensor, LayerResult]:
    """A shape's cloud and its exact measurement (computed once for every test that compares with it)."""
    x = SHAPES[shape]()
    return x, measure_layer(LayerSample(x), MeasureOptions())


SHAPES = {
    "circle": lambda: datasets.circle(240, noise=0.05, ambient_dim=8, generator=torch.Generator().manual_seed(0)),
    "two circles": lambda: datasets.circles(2, 120, noise=0.05, generator=torch.Generator().manual_seed(1)),
    "torus": lambda: datasets.torus(240, noise=0.02, generator=torch.Generator().manual_seed(2)),
    "blob": lambda: torch.randn(240, 4, generator=torch.Generator().manual_seed(3)),
    "clusters": lambda: _clusters(240, 4),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("k", [60, 120])
def test_subsample_h1_is_within_twice_its_covering_radius_of_the_exact_h1(shape, k):
    x, exact = _exact(shape)
    approx = measure_layer(LayerSample(x), MeasureOptions(ph_samples=k))
    assert exact.ph_bound is None
    assert exact.diagrams is not None
    assert approx.diagrams is not None
    assert approx.ph_bound is not None
    assert approx.ph_bound > 0
    b1 = bottleneck_distance(_finite(exact.diagrams[1]), _finite(approx.diagrams[1]))
    assert b1 <= approx.ph_bound + FLOAT32
    # H0 comes from the spanning tree of every example, and the intrinsic dimension from every example: exact
    np.testing.assert_allclose(np.sort(approx.diagrams[0][:, 1]), np.sort(exact.diagrams[0][:, 1]), rtol=1e-6)
    assert approx.metrics["id_twonn"] == exact.metrics["id_twonn"]
    assert approx.metrics["betti_0"] == exact.metrics["betti_0"]


def test_the_subsample_keeps_the_loops_that_outlive_its_bound():
    """The bound is informative: a circle's loop outlives it (a bar longer than twice the bound has a partner within
    the bound at both ends), and survives a 60-point subsample."""
    x, exact = _exact("circle")
    approx = measure_layer(LayerSample(x), MeasureOptions(ph_samples=60))
    assert exact.diagrams is not None
    assert approx.diagrams is not None
    life = lambda d: np.sort(d[:, 1] - d[:, 0])[::-1]  # noqa: E731
    assert approx.ph_bound is not None
    assert life(exact.diagrams[1])[0] > 2 * approx.ph_bound
    assert abs(life(approx.diagrams[1])[0] - life(exact.diagrams[1])[0]) <= 2 * approx.ph_bound + FLOAT32


def _log_bottleneck(a: np.ndarray, b: np.ndarray) -> float:
    a, b = _finite(a), _finite(b)
    a, b = a[a[:, 0] > 0], b[b[:, 0] > 0]  # H1 bars are born at a positive scale
    return float(bottleneck_distance(np.log(a), np.log(b)))


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("factor", [1.5, 3.0])
def test_sparse_rips_h1_is_within_the_factor_of_the_exact_h1_on_a_log_scale(shape, factor):
    x, exact = _exact(shape)
    assert exact.diagrams is not None
    d = F.pairwise_distances(x, normalize="quantile")
    sparse = F.vietoris_rips(d, 1, distance_matrix=True, sparse=factor)
    assert _log_bottleneck(exact.diagrams[1], sparse[1]) <= math.log(factor) + 1e-5
    # H0: the float64 spanning tree, against giotto-ph's float32 H0
    np.testing.assert_allclose(np.sort(sparse[0][:, 1]), np.sort(exact.diagrams[0][:, 1]), rtol=1e-6)
    assert sparse.n_essential(1) == 0


def test_sparse_rips_takes_the_exact_tree_for_h0_unless_told_otherwise(monkeypatch):
    persistence = __import__("lightning_topo.functional.persistence", fromlist=["h0_mst_deaths"])
    tree, calls = persistence.h0_mst_deaths, []
    monkeypatch.setattr(persistence, "h0_mst_deaths", lambda d: calls.append(1) or tree(d))
    x = datasets.circle(200, noise=0.05, ambient_dim=3, generator=torch.Generator().manual_seed(2))
    d = F.pairwise_distances(x, normalize="quantile")
    auto = F.vietoris_rips(d, 1, distance_matrix=True, sparse=2.0)
    assert calls == [1]
    np.testing.assert_allclose(np.sort(auto[0][:, 1])[:-1], np.sort(tree(d).numpy()))  # and one essential bar
    # the engine computes its own tree: with h0="ripser" the filtration's H0 is kept and no tree is built again
    F.persistence.rips_from_distances(d, 1, sparse=2.0, h0="ripser")
    assert calls == [1]


def test_sparse_rips_keeps_few_edges_and_the_loop_of_a_circle():
    x = datasets.circle(400, noise=0.02, ambient_dim=3, generator=torch.Generator().manual_seed(5))
    d = F.pairwise_distances(x, normalize="quantile")
    rows, cols, values = F.persistence.sparse_rips_edges(d, 2.0)
    assert len(values) < 0.25 * 400 * 399 / 2
    assert np.all(rows < cols)
    assert np.all(values >= d.numpy()[rows, cols] - 1e-12)  # edges enter at their length or later, never earlier
    pers = lambda g: np.sort(g[:, 1] - g[:, 0])[::-1]  # noqa: E731
    exact, sparse = F.vietoris_rips(d, 1, distance_matrix=True), F.vietoris_rips(d, 1, distance_matrix=True, sparse=2.0)
    assert pers(sparse[1])[0] > 5 * pers(sparse[1])[1]  # one dominant loop
    assert pers(exact[1])[0] / 2 <= pers(sparse[1])[0] <= 2 * pers(exact[1])[0]


def test_insertion_radii_follow_the_greedy_order(rng):
    x = rng.normal(size=(80, 3))
    d = cdist(x, x)
    radii = F.persistence.insertion_radii(d)
    order = F.farthest_point_indices(torch.from_numpy(d), 80, distance_matrix=True).numpy()
    assert np.isinf(radii[0])
    # each point's radius is its distance to the points chosen before it, and the radii never increase
    for k in range(1, 80):
        assert radii[order[k]] == pytest.approx(d[order[k], order[:k]].min(), rel=0, abs=0)
    assert np.all(np.diff(radii[order[1:]]) <= 0)


def test_auto_is_exact_up_to_1024_examples_and_subsamples_beyond():
    assert [auto_ph_samples(n) for n in (3, 512, 1024, 1025, 2048, 4096, 8192)] == [3, 512, 1024, 1023, 512, 512, 512]
    options = MeasureOptions(ph_samples="auto")
    assert options.ph_points(700) == 700
    assert options.ph_points(4096) == 512
    x = SHAPES["clusters"]()
    exact = measure({"a": LayerSample(x)}, MeasureOptions())
    auto = measure({"a": LayerSample(x)}, options)
    assert auto.metrics == exact.metrics
    assert auto.ph_bounds == {}
    sub = measure({"a": LayerSample(x)}, MeasureOptions(ph_samples=100))
    assert set(sub.ph_bounds) == {"a"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ph_samples": "all"}, "`ph_samples`"),
        ({"ph_samples": 2}, "`ph_samples`"),
        ({"ph_sparse": 1.0}, "`ph_sparse`"),
        ({"ph_sparse": "2"}, "`ph_sparse`"),
        ({"ph_sparse": 2.0, "backend": "gudhi"}, "backend='giotto'"),
    ],
)
def test_invalid_cost_options_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_options(**kwargs)


# -- the faster exact numerics ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_blocked_distances_over_many_tiles_equal_scipy_and_are_exactly_symmetric(metric, rng):
    n = 2 * distances_module.TILE + 37  # diagonal and off-diagonal tiles, a ragged last one
    x = rng.normal(size=(n, 12)) + 5.0
    x[7] = 0.0 if metric == "cosine" else x[7]
    x[11] = x[3]  # an exact duplicate: distance exactly 0
    d = F.pairwise_distances(torch.from_numpy(x), metric=metric)
    if metric == "cosine":  # a zero vector is at distance 1 from every other point (as in scikit-learn)
        with np.errstate(invalid="ignore", divide="ignore"):
            ref = np.clip(cdist(x, x, metric=metric), 0, 2)
        ref[7, :] = ref[:, 7] = 1.0
        np.fill_diagonal(ref, 0.0)
    else:
        ref = cdist(x, x)
    np.testing.assert_allclose(d.numpy(), ref, rtol=1e-10, atol=1e-10)
    assert torch.equal(d, d.T)
    assert torch.all(d.diagonal() == 0)
    assert d[3, 11] == 0
    assert d[11, 3] == 0


def test_the_quantile_of_a_large_matrix_is_the_exact_quantile(rng):
    """Above 2^16 pairs the order statistics are bracketed from a sample first: still exact, ties included."""
    for x in (rng.normal(size=(450, 5)), rng.integers(0, 3, size=(450, 3)).astype(np.float64)):
        d = F.pairwise_distances(torch.from_numpy(x))
        upper = np.sort(d.numpy()[np.triu_indices(450, k=1)])
        assert upper.size > distances_module.SELECT_SAMPLE_FROM
        for q in (0.0, 0.003, 0.5, 0.9, 0.999, 1.0):
            expected = np.quantile(upper, q, method="linear")
            assert F.distance_scale(d, "quantile", quantile=q) == pytest.approx(expected, rel=1e-15, abs=0)


def test_a_subsample_too_sparse_to_say_much_about_h1_gets_a_note_and_keeps_its_values():
    """In high intrinsic dimension 64 farthest points of 600 cover nothing (bound above the distance scale): the layer
    says so; on a circle the same subsample is dense and nothing is said."""
    gen = torch.Generator().manual_seed(7)
    options = MeasureOptions(ph_samples=64)
    sparse = measure_layer(LayerSample(torch.randn(600, 32, generator=gen)), options)
    assert sparse.ph_bound is not None
    assert sparse.ph_bound > 0.5
    assert "subsample" in sparse.problems
    assert "ph_sparse" in sparse.problems["subsample"]
    assert all(math.isfinite(v) for v in sparse.metrics.values())  # a note, not a failure
    circle = datasets.circle(600, noise=0.01, generator=gen)
    dense = measure_layer(LayerSample(circle), options)
    assert dense.ph_bound is not None
    assert dense.ph_bound < 0.5
    assert "subsample" not in dense.problems


def test_notes_do_not_raise_with_on_error_raise_but_failures_do():
    """A note (a sparse subsample here, duplicated rows alike) leaves every value measured: on_error="raise" is for
    layers that could not be measured."""
    from lightning_topo.engine import check_problems

    gen = torch.Generator().manual_seed(7)
    options = MeasureOptions(ph_samples=64)
    noted = measure({"wide": LayerSample(torch.randn(600, 32, generator=gen))}, options)
    assert "subsample" in noted.problems["wide"]
    heard: list[str] = []
    check_problems(noted, "raise", lambda key, message: heard.append(message))
    assert len(heard) == 1
    assert "NaN" not in heard[0]
    failed = measure({"nan": LayerSample(torch.full((50, 4), math.nan))}, options)
    with pytest.raises(RuntimeError, match="could not be measured"):
        check_problems(failed, "raise", lambda key, message: None)


def test_a_sample_sorted_by_neighbourhood_is_shuffled_before_persistence_and_measures_the_same():
    """Sorted points (a class-sorted validation set) go to giotto-ph in a random order, which is 2x faster there; the
    measurement is that of the same points in any order. A random order is passed as it is."""
    from lightning_topo.engine.layer import unsort_neighbourhoods

    x = _clusters(300, 9)
    labels = torch.arange(300) % 5
    by_class = torch.argsort(labels, stable=True)
    d = F.pairwise_distances(x[by_class]).numpy().astype(np.float32)
    shuffled = unsort_neighbourhoods(d, 0)
    assert shuffled is not d
    np.testing.assert_array_equal(np.sort(shuffled, axis=None), np.sort(d, axis=None))  # the same matrix, reordered
    np.testing.assert_array_equal(shuffled, shuffled.T)
    mixed = F.pairwise_distances(x).numpy().astype(np.float32)
    assert unsort_neighbourhoods(mixed, 0) is mixed
    sorted_result = measure_layer(LayerSample(x[by_class]), MeasureOptions())
    mixed_result = measure_layer(LayerSample(x), MeasureOptions())
    assert sorted_result.metrics == pytest.approx(mixed_result.metrics, rel=1e-5)
    for q in (0, 1):
        a, b = (_finite(r.diagrams[q]) for r in (sorted_result, mixed_result))
        assert bottleneck_distance(a, b) <= FLOAT32
