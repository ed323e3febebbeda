import math
import warnings

import numpy as np
import pytest
import skdim
import torch

from lightning_topo import datasets
from lightning_topo.functional import intrinsic_dimension, nearest_neighbor_distances, pairwise_distances
from tests.conftest import random_rotation


@pytest.mark.parametrize("seed", [0, 1])
def test_twonn_equals_scikit_dimension(seed):
    x = np.random.default_rng(seed).uniform(size=(1500, 6)) @ np.random.default_rng(seed + 10).normal(size=(6, 30))
    ours = intrinsic_dimension(torch.from_numpy(x), "twonn")
    ref = skdim.id.TwoNN(discard_fraction=0.1).fit(x).dimension_
    assert ours == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("k", [5, 20])
def test_mle_at_one_k_equals_scikit_dimension_mackay_ghahramani(k):
    x = np.random.default_rng(5).normal(size=(800, 4))
    ours = intrinsic_dimension(torch.from_numpy(x), "mle", k1=k, k2=k)
    ref = skdim.id.MLE().fit(x, n_neighbors=k, comb="mle").dimension_
    assert ours == pytest.approx(ref, rel=1e-9)


def test_mle_averages_over_k1_to_k2():
    x = torch.from_numpy(np.random.default_rng(6).normal(size=(500, 3)))
    each = [intrinsic_dimension(x, "mle", k1=k, k2=k) for k in range(10, 21)]
    assert intrinsic_dimension(x, "mle") == pytest.approx(np.mean(each))


@pytest.mark.parametrize(("dim", "ambient"), [(2, 10), (5, 50)])
@pytest.mark.parametrize("method", ["twonn", "mle", "phdim"])
def test_embedded_balls_recover_their_dimension(dim, ambient, method):
    x = datasets.ball(
        2000, dim=dim, ambient_dim=ambient, generator=torch.Generator().manual_seed(dim), dtype=torch.float64
    )
    est = intrinsic_dimension(x, method, generator=torch.Generator().manual_seed(0))
    # boundary effects bias estimators downward in higher dimension (docs/methods.md section 6)
    assert est == pytest.approx(dim, rel=0.15 if dim <= 2 else 0.2)


@pytest.mark.parametrize("method", ["twonn", "mle", "phdim"])
def test_swiss_roll_is_two_dimensional(method):
    x = datasets.swiss_roll(2000, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    assert intrinsic_dimension(x, method, generator=torch.Generator().manual_seed(0)) == pytest.approx(2.0, rel=0.15)


@pytest.mark.parametrize("method", ["twonn", "mle"])
def test_estimates_are_invariant_to_rotation_scaling_translation_and_permutation(method):
    x = datasets.ball(600, dim=3, ambient_dim=3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    base = intrinsic_dimension(x, method)
    embedded = torch.cat([x, torch.zeros(600, 97, dtype=torch.float64)], dim=1) @ random_rotation(100)
    moved = 12.5 * embedded[torch.randperm(600, generator=torch.Generator().manual_seed(0))] + 3.0
    assert intrinsic_dimension(moved, method) == pytest.approx(base, rel=1e-6)


def test_distance_matrix_input_gives_the_same_estimate(gen):
    x = datasets.swiss_roll(500, generator=gen, dtype=torch.float64)
    d = pairwise_distances(x)
    for method in ("twonn", "mle"):
        assert intrinsic_dimension(d, method, distance_matrix=True) == intrinsic_dimension(x, method)


def test_duplicated_points_are_dropped_not_fatal(gen):
    x = datasets.ball(500, dim=2, generator=gen, dtype=torch.float64)
    x = torch.cat([x, x[:100]])  # duplicates: r1 = 0
    for method in ("twonn", "mle"):
        est = intrinsic_dimension(x, method)
        assert est == pytest.approx(2.0, rel=0.2)


@pytest.mark.parametrize("method", ["twonn", "mle", "phdim"])
def test_constant_data_gives_nan_with_a_warning(method):
    with pytest.warns(RuntimeWarning, match="Returning NaN"):
        assert math.isnan(intrinsic_dimension(torch.zeros(300, 5), method))


def test_too_few_points_for_mle_gives_nan_with_a_warning():
    with pytest.warns(RuntimeWarning, match="k2=20"):
        assert math.isnan(intrinsic_dimension(torch.randn(15, 3), "mle"))


def test_nearest_neighbours_exclude_the_point_itself_but_not_duplicates():
    x = torch.tensor([[0.0], [0.0], [2.0], [5.0]])
    assert nearest_neighbor_distances(x, 2).tolist() == [[0.0, 2.0], [0.0, 2.0], [2.0, 2.0], [3.0, 5.0]]
    with pytest.raises(ValueError, match="`k`"):
        nearest_neighbor_distances(x, 4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "pca"}, "`method`"),
        ({"fraction": 0.0}, "`fraction`"),
        ({"method": "mle", "k1": 1}, "`k1`"),
        ({"method": "mle", "k1": 10, "k2": 5}, "`k2`"),
        ({"method": "phdim", "alpha": 0}, "`alpha`"),
        ({"method": "phdim", "n_sizes": 1}, "`n_sizes`"),
    ],
)
def test_invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        intrinsic_dimension(torch.randn(50, 3), **kwargs)


def test_no_warning_on_regular_data(gen):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        intrinsic_dimension(torch.randn(100, 3, generator=gen), "twonn")


def test_a_layer_with_duplicates_scans_for_them_once(gen, monkeypatch):
    import importlib

    from lightning_topo.engine import layer as engine_layer
    from lightning_topo.options import build_options

    id_module = importlib.import_module("lightning_topo.functional.intrinsic_dimension")  # the name is the function's
    scan, calls = id_module.duplicate_mask, []

    def counted(d):
        calls.append(d.shape[0])
        return scan(d)

    monkeypatch.setattr(engine_layer, "duplicate_mask", counted)
    monkeypatch.setattr(id_module, "duplicate_mask", counted)
    x = datasets.ball(400, dim=3, generator=gen, dtype=torch.float64)
    x = torch.cat([x, x[:100]])  # 20% duplicates: a note, and the estimators on the 400 distinct points
    result = engine_layer.measure_layer(engine_layer.LayerSample(x), build_options(n_samples=500).measure)
    assert calls == [500]
    assert "duplicates" in result.problems
    # the engine's normalisation scales every distance alike: TwoNN's ratios, and so its estimate, are unchanged
    assert result.metrics["id_twonn"] == pytest.approx(intrinsic_dimension(x[:400], "twonn"), rel=1e-9)
