import math

import numpy as np
import pytest
import torch
from gudhi.representations import BettiCurve

from lightning_topo import PersistenceDiagrams, datasets
from lightning_topo.functional import (
    amplitude,
    betti_curve,
    betti_numbers,
    lifetime_statistics,
    persistence_entropy,
    total_persistence,
    vietoris_rips,
)

INF = math.inf


@pytest.fixture
def torus_dgms():
    x = datasets.torus(200, noise=0.05, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    return vietoris_rips(x, maxdim=1)


def test_betti_curves_equal_gudhi(torus_dgms):
    grid = np.linspace(0.0, torus_dgms.max_finite_value() * 1.1, 257)
    ours = betti_curve(torus_dgms, grid)
    for q in range(2):
        # gudhi's curve: births <= t < deaths, essential bars counted
        ref = BettiCurve(predefined_grid=grid)(torus_dgms.to_numpy()[q])
        np.testing.assert_array_equal(ours[q], ref)


def test_betti_numbers_count_essential_bars_and_are_half_open():
    d = PersistenceDiagrams([[[0.0, 1.0], [0.0, 2.0], [0.0, INF]], [[0.5, 1.5]]])
    assert betti_numbers(d, 0.0).tolist() == [3, 0]
    assert betti_numbers(d, 0.5).tolist() == [3, 1]
    assert betti_numbers(d, 1.0).tolist() == [2, 1]
    assert betti_numbers(d, 1.5).tolist() == [2, 0]
    assert betti_numbers(d, 100.0).tolist() == [1, 0]


def test_betti_curve_of_empty_dimension_is_zero():
    d = PersistenceDiagrams([[[0.0, INF]], []])
    assert betti_curve(d, [0.0, 1.0]).tolist() == [[1, 1], [0, 0]]


@pytest.mark.parametrize("grid", [[], [[0.0, 1.0]], [1.0, 0.0], [0.0, INF]])
def test_betti_curve_rejects_bad_grids(grid):
    with pytest.raises(ValueError, match="`grid`"):
        betti_curve(PersistenceDiagrams([[[0.0, 1.0]]]), grid)


def test_total_persistence_is_the_lifespan_sum_without_essential_bars():
    d = PersistenceDiagrams([[[0.0, 1.0], [0.0, 2.0], [0.0, INF]], [[0.5, 1.5]]])
    assert total_persistence(d, 0) == 3.0
    assert total_persistence(d, 0, half=True) == 1.5
    assert total_persistence(d, 0, p=2) == 5.0
    assert total_persistence(d, 1) == 1.0
    assert total_persistence(PersistenceDiagrams([[[0.0, INF]]]), 0) == 0.0


def test_total_persistence_scales_linearly(torus_dgms):
    scaled = PersistenceDiagrams([3.0 * d for d in torus_dgms])
    assert total_persistence(scaled, 1) == pytest.approx(3.0 * total_persistence(torus_dgms, 1))


def test_amplitude_matches_the_distance_to_the_diagonal():
    d = PersistenceDiagrams([[[0.0, 3.0], [0.0, 4.0], [0.0, INF]]])
    assert amplitude(d, 0, p=2) == pytest.approx(math.sqrt(0.5 * 9 + 0.5 * 16))
    assert amplitude(d, 0, p=1) == pytest.approx(math.sqrt(0.5) * 7)
    assert amplitude(d, 0, metric="bottleneck") == pytest.approx(math.sqrt(0.5) * 4)
    assert amplitude(PersistenceDiagrams([[]]), 0) == 0.0


def test_entropy_of_equal_bars_is_log2_of_their_count_and_normalised_to_one():
    d = PersistenceDiagrams([[[0.0, 2.0]] * 8])
    assert persistence_entropy(d, 0, normalize=False) == pytest.approx(3.0)
    assert persistence_entropy(d, 0) == pytest.approx(1.0)


def test_entropy_degenerate_cases_are_zero():
    assert persistence_entropy(PersistenceDiagrams([[]]), 0) == 0.0
    assert persistence_entropy(PersistenceDiagrams([[[0.0, 1.0], [0.0, INF]]]), 0) == 0.0
    # zero-length bars are dropped before the entropy
    assert persistence_entropy(PersistenceDiagrams([[[0.0, 1.0], [1.0, 1.0], [2.0, 2.0]]]), 0) == 0.0


def test_normalised_entropy_is_scale_invariant_and_bounded(torus_dgms):
    scaled = PersistenceDiagrams([7.0 * d for d in torus_dgms])
    for q in range(2):
        e = persistence_entropy(torus_dgms, q)
        assert 0.0 <= e <= 1.0
        assert persistence_entropy(scaled, q) == pytest.approx(e)


def test_lifetime_statistics():
    d = PersistenceDiagrams([[[0.0, 1.0], [0.0, 3.0], [0.0, INF]]])
    s = lifetime_statistics(d, 0, long_fraction=0.5)
    assert s == {"count": 2.0, "max": 3.0, "mean": 2.0, "std": 1.0, "n_long": 1.0, "n_essential": 1.0}
    s = lifetime_statistics(d, 0, long_fraction=0.1, filtration_range=100.0)
    assert s["n_long"] == 0.0
    empty = lifetime_statistics(PersistenceDiagrams([[]]), 0)
    assert empty["count"] == 0.0
    assert empty["max"] == 0.0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda d: total_persistence(d, 2), "`dim`"),
        (lambda d: total_persistence(d, 0, p=0), "`p`"),
        (lambda d: amplitude(d, 0, p=0.5), "`p`"),
        (lambda d: amplitude(d, 0, metric="l2"), "`metric`"),
        (lambda d: persistence_entropy(d, -1), "`dim`"),
        (lambda d: lifetime_statistics(d, 0, long_fraction=2.0), "`long_fraction`"),
        (lambda d: betti_numbers([[0.0, 1.0]], 0.5), "PersistenceDiagrams"),
    ],
)
def test_invalid_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call(PersistenceDiagrams([[[0.0, 1.0]], []]))
