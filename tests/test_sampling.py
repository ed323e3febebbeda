import numpy as np
import pytest
import torch

from lightning_topo.functional import pairwise_distances, subsample


def test_random_subsample_is_sorted_unique_and_deterministic_per_seed():
    x = torch.randn(100, 3)
    a = subsample(x, 10, generator=torch.Generator().manual_seed(1))
    b = subsample(x, 10, generator=torch.Generator().manual_seed(1))
    c = subsample(x, 10, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.unique().numel() == 10
    assert torch.equal(a, a.sort().values)


def test_asking_for_more_points_than_exist_returns_all():
    assert subsample(torch.randn(5, 2), 10).tolist() == [0, 1, 2, 3, 4]
    assert subsample(torch.randn(5, 2), 10, "farthest").tolist() == [0, 1, 2, 3, 4]


def test_farthest_point_sampling_covers_the_cloud():
    x = torch.cat([torch.randn(500, 2) * 0.01, torch.tensor([[10.0, 0.0], [0.0, 10.0], [-10.0, -10.0]])])
    idx = subsample(x, 4, "farthest")
    assert {500, 501, 502} <= set(idx.tolist())


def test_farthest_point_sampling_from_a_distance_matrix_matches_points(gen):
    x = torch.randn(200, 4, generator=gen, dtype=torch.float64)
    a = subsample(x, 20, "farthest")
    b = subsample(pairwise_distances(x), 20, "farthest", distance_matrix=True)
    assert torch.equal(a, b)


def test_farthest_point_cover_radius_is_within_twice_optimal_bound(gen):
    x = torch.rand(400, 2, generator=gen, dtype=torch.float64)
    idx = subsample(x, 30, "farthest", generator=gen)
    cover = pairwise_distances(x)[:, idx].min(dim=1).values.max()
    rnd = subsample(x, 30, "random", generator=gen)
    assert cover < pairwise_distances(x)[:, rnd].min(dim=1).values.max()


def test_stratified_keeps_class_proportions():
    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    idx = subsample(torch.randn(100, 2), 20, "stratified", labels=labels, generator=torch.Generator().manual_seed(0))
    counts = np.bincount(labels[idx].numpy(), minlength=3)
    assert counts.tolist() == [12, 6, 2]


def test_stratified_balanced_takes_equal_counts_as_far_as_classes_allow():
    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 5)
    idx = subsample(torch.randn(95, 2), 45, "stratified", labels=labels, balanced=True)
    counts = np.bincount(labels[idx].numpy(), minlength=3)
    assert counts.tolist() == [20, 20, 5]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, "`n`"),
        ({"n": 3, "method": "kmeans"}, "`method`"),
        ({"n": 3, "method": "stratified"}, "`labels`"),
        ({"n": 3, "method": "stratified", "labels": torch.zeros(3)}, "one label per point"),
        ({"n": 3, "method": "stratified", "labels": torch.rand(10)}, "integer class labels"),
    ],
)
def test_invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        subsample(torch.randn(10, 2), **kwargs)
