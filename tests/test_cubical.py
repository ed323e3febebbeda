import sys

import numpy as np
import pytest
import torch

from lightning_topo import PersistenceDiagrams, TopologyWarning
from lightning_topo.functional import (
    betti_numbers,
    cubical_betti,
    cubical_persistence,
    normalize_volumes,
    topological_complexity,
)


def test_a_ring_image_has_one_loop_and_one_component():
    img = torch.ones(32, 32)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    r = ((yy - 15.5) ** 2 + (xx - 15.5) ** 2).sqrt()
    img[(r > 8) & (r < 12)] = 0.0
    dgms = cubical_persistence(img)
    assert dgms.maxdim == 1
    assert dgms.n_essential(0) == 1
    assert dgms[1].tolist() == [[0.0, 1.0]]


def test_a_constant_image_has_one_component_and_nothing_else():
    dgms = cubical_persistence(np.full((10, 12), 0.3))
    assert dgms[0].tolist() == [[0.3, np.inf]]
    assert len(dgms[1]) == 0


def test_a_hollow_cube_has_a_void_in_h2():
    vol = np.ones((9, 9, 9))
    vol[2:7, 2:7, 2:7] = 0.0
    vol[3:6, 3:6, 3:6] = 1.0
    dgms = cubical_persistence(vol)
    assert dgms.maxdim == 2
    assert dgms[2].tolist() == [[0.0, 1.0]]
    assert betti_numbers(dgms, 0.5).tolist() == [1, 0, 1]


def test_two_minima_give_one_finite_h0_bar_dying_at_the_saddle():
    signal = np.array([0.0, 2.0, 1.0, 3.0])
    dgms = cubical_persistence(signal)
    assert dgms[0].tolist() == [[0.0, np.inf], [1.0, 2.0]]


def test_cubical_persistence_is_invariant_to_axis_order():
    vol = np.random.default_rng(0).normal(size=(4, 6, 5))
    a = cubical_persistence(vol)
    b = cubical_persistence(np.transpose(vol, (2, 1, 0)))
    assert a.allclose(b)


@pytest.mark.parametrize(
    ("volume", "kwargs", "match"),
    [
        (np.zeros((2, 2, 2, 2)), {}, "1-D, 2-D or 3-D"),
        (np.zeros(0), {}, "non-empty"),
        (np.array([[0.0, np.nan]]), {}, "finite"),
        (np.zeros((3, 3)), {"maxdim": 3}, "`maxdim`"),
    ],
)
def test_invalid_volumes_raise(volume, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cubical_persistence(volume, **kwargs)


# --- backends and constructions against GUDHI called directly ----------------------------------------------------
gudhi = pytest.importorskip("gudhi")
GUDHI_KIND = {"vertex": "vertices", "top": "top_dimensional_cells"}


def _gudhi_pairs(volume: np.ndarray, construction: str) -> list[np.ndarray]:
    """GUDHI's diagrams, sorted, zero-length bars dropped: the reference."""
    c = gudhi.CubicalComplex(**{GUDHI_KIND[construction]: volume})
    c.compute_persistence(homology_coeff_field=2, min_persistence=0.0)
    out = []
    for q in range(volume.ndim):
        d = np.asarray(c.persistence_intervals_in_dimension(q), dtype=np.float64).reshape(-1, 2)
        d = d[d[:, 1] > d[:, 0]]
        out.append(d[np.lexsort((d[:, 1], d[:, 0]))])
    return out


def _volumes() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [
        rng.normal(size=(17, 13)),
        rng.normal(size=(6, 7, 8)),
        rng.integers(0, 4, size=(15, 16)).astype(np.float64),  # many ties
        rng.integers(0, 3, size=(7, 6, 9)).astype(np.float64),  # many ties
        np.maximum(rng.normal(size=(8, 9, 5)), 0.0),  # a ReLU map: a third of the values are exactly 0
    ]


@pytest.mark.parametrize("backend", ["auto", "cripser", "gudhi"])
@pytest.mark.parametrize("construction", ["vertex", "top"])
def test_every_backend_gives_the_same_pairs_as_gudhi_on_random_volumes_with_ties(backend, construction):
    if backend == "cripser":
        pytest.importorskip("cripser")
    for vol in _volumes():
        got = cubical_persistence(vol, construction=construction, backend=backend)
        ref = _gudhi_pairs(vol, construction)
        assert len(got) == len(ref) == vol.ndim
        for q in range(vol.ndim):
            np.testing.assert_array_equal(got[q], ref[q])  # identical float64 pairs, inf included
        assert [got.n_essential(q) for q in range(vol.ndim)] == [1] + [0] * (vol.ndim - 1)


def test_the_default_is_cubicalripser_v_construction_as_suresh_et_al_call_it():
    """``cripser.computePH(vol, maxdim=2, location="birth")`` on the (W, H, C) transpose, read directly."""
    cripser = pytest.importorskip("cripser")
    vol = np.maximum(np.random.default_rng(3).normal(size=(5, 6, 7)), 0.0)  # (C, H, W)
    raw = cripser.computePH(np.ascontiguousarray(vol.transpose(2, 1, 0)), maxdim=2, location="birth")
    ours = cubical_persistence(vol)
    for q in range(3):
        rows = raw[raw[:, 0] == q][:, 1:3]
        assert sorted(map(tuple, rows[rows[:, 1] < 1e300])) == sorted(map(tuple, ours.finite(q)))
        assert (rows[:, 1] >= 1e300).sum() == ours.n_essential(q)


def test_corner_neighbours_touch_in_the_t_construction_only():
    img = np.ones((3, 3))
    img[0, 0] = img[1, 1] = 0.0  # two minima sharing a corner
    v = cubical_persistence(img, construction="vertex")
    t = cubical_persistence(img, construction="top")
    assert v[0].tolist() == [[0.0, 1.0], [0.0, np.inf]]
    assert t[0].tolist() == [[0.0, np.inf]]


@pytest.mark.parametrize("construction", ["vertex", "top"])
def test_diagrams_are_invariant_to_axis_order_and_equivariant_to_shift_and_positive_scale(construction):
    vol = np.random.default_rng(11).normal(size=(5, 7, 6))
    base = cubical_persistence(vol, construction=construction)
    for perm in [(2, 1, 0), (1, 0, 2), (0, 2, 1)]:
        assert base.allclose(cubical_persistence(np.transpose(vol, perm), construction=construction), atol=0, rtol=0)
    shifted = cubical_persistence(vol + 2.5, construction=construction)
    scaled = cubical_persistence(3.0 * vol, construction=construction)
    for q in range(3):
        np.testing.assert_allclose(shifted[q], base[q] + 2.5, rtol=1e-12)
        np.testing.assert_allclose(scaled[q], 3.0 * base[q], rtol=1e-12)


@pytest.mark.parametrize("construction", ["vertex", "top"])
@pytest.mark.parametrize("shape", [(1,), (1, 1), (1, 1, 1), (3, 1, 2)])
def test_a_single_voxel_or_a_flat_volume_has_one_essential_component(construction, shape):
    vol = np.full(shape, -0.75)
    d = cubical_persistence(vol, construction=construction)
    assert d[0].tolist() == [[-0.75, np.inf]]
    assert all(len(d[q]) == 0 for q in range(1, len(d)))


def test_cubical_persistence_accepts_tensors_and_a_lower_maxdim():
    vol = torch.rand(4, 5, 6, generator=torch.Generator().manual_seed(0))
    full = cubical_persistence(vol)
    low = cubical_persistence(vol, maxdim=0)
    assert low.maxdim == 0
    assert np.array_equal(low[0], full[0])


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"construction": "voxel"}, "`construction`"), ({"backend": "ripser"}, "`backend`")]
)
def test_unknown_construction_or_backend_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cubical_persistence(np.zeros((3, 3)), **kwargs)


# --- a missing library ---------------------------------------------------------------------------------------------
def test_auto_falls_back_to_gudhi_with_a_warning_when_cubicalripser_is_missing(monkeypatch):
    vol = np.random.default_rng(0).normal(size=(6, 5, 4))
    monkeypatch.setitem(sys.modules, "cripser", None)  # `import cripser` raises ImportError
    with pytest.warns(TopologyWarning, match="pip install"):
        d = cubical_persistence(vol)
    assert all(np.array_equal(a, b) for a, b in zip(d, _gudhi_pairs(vol, "vertex"), strict=True))
    with pytest.raises(ImportError, match=r"backend='cripser'.*pip install"):
        cubical_persistence(vol, backend="cripser")


def test_without_any_cubical_library_the_message_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cripser", None)
    monkeypatch.setitem(sys.modules, "gudhi", None)
    with pytest.raises(ImportError, match=r"needs CubicalRipser or GUDHI.*lightning-topo\[cubical\]"):
        cubical_persistence(np.zeros((3, 3)))
    with pytest.raises(ImportError, match="pip install gudhi"):
        cubical_persistence(np.zeros((3, 3)), backend="gudhi")


# --- Suresh et al.'s Betti numbers and complexity -------------------------------------------------------------------
def test_cubical_betti_counts_closed_intervals_and_essential_bars():
    d = PersistenceDiagrams([[[0.0, 1.0], [0.5, 2.0], [0.0, np.inf]], [[1.0, 1.5]]])
    assert cubical_betti(d, 1.0).tolist() == [3, 1]  # the bar dying at 1 still counts, the one born at 1 too
    assert betti_numbers(d, 1.0).tolist() == [2, 1]  # half-open: it does not
    assert cubical_betti(d, -0.1).tolist() == [0, 0]
    assert cubical_betti(d, 100.0).tolist() == [1, 0]  # only the essential class
    grid = [-0.1, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0]
    assert cubical_betti(d, grid).tolist() == [[0, 2, 3, 3, 2, 2, 1], [0, 0, 0, 1, 1, 0, 0]]


def test_cubical_betti_equals_suresh_et_al_count_on_raw_cubicalripser_output():
    """Their ``betti(PD, eta)``: rows of ``cripser.computePH`` with ``b <= eta <= d`` (DBL_MAX deaths included)."""
    cripser = pytest.importorskip("cripser")
    vol = np.maximum(np.random.default_rng(5).normal(size=(6, 6, 6)), 0.0)
    raw = cripser.computePH(vol, maxdim=2)
    thresholds = np.array([0.0, 0.1, 0.5, 1.0, 2.0])
    dim, birth, death = raw[:, 0], raw[:, 1], raw[:, 2]
    expected = [[int(((dim == q) & (birth <= t) & (t <= death)).sum()) for t in thresholds] for q in range(3)]
    assert cubical_betti(vol, thresholds).tolist() == expected
    assert cubical_betti(cubical_persistence(vol), 0.5).tolist() == [row[2] for row in expected]


def test_known_shapes_give_their_betti_numbers_and_complexity():
    hollow = np.ones((9, 9, 9))
    hollow[2:7, 2:7, 2:7] = 0.0
    hollow[3:6, 3:6, 3:6] = 1.0
    ring = np.ones((9, 9))
    ring[2:7, 2:7] = 0.0
    ring[4, 4] = 1.0
    assert cubical_betti(hollow, 0.5).tolist() == [1, 0, 1]
    assert cubical_betti(ring, 0.0).tolist() == [1, 1]
    assert cubical_betti(ring, 1.0).tolist() == [1, 1]  # the loop dies at 1: still counted (closed interval)
    dgms = [cubical_persistence(hollow), cubical_persistence(ring)]
    assert topological_complexity(dgms, 0.5) == pytest.approx((2 + 2) / 2)
    np.testing.assert_allclose(topological_complexity(dgms, [-1.0, 0.5, 2.0]), [0.0, 2.0, 1.0])


@pytest.mark.parametrize(
    ("threshold", "match"), [(np.nan, "finite"), ([[0.1]], "1-D"), ("high", "number"), ([], "non-empty")]
)
def test_cubical_betti_rejects_bad_thresholds(threshold, match):
    with pytest.raises(ValueError, match=match):
        cubical_betti(PersistenceDiagrams([[[0.0, 1.0]]]), threshold)


def test_topological_complexity_rejects_an_empty_list():
    with pytest.raises(ValueError, match="at least one"):
        topological_complexity([], 0.5)


# --- the per-layer normalisation -------------------------------------------------------------------------------------
def test_normalize_volumes_divides_by_the_nearest_rank_quantile_of_the_absolute_values():
    x = torch.randn(4, 3, 5, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for q in (0.5, 0.9, 0.99, 1.0):
        scale = np.quantile(np.abs(x.numpy()), q, method="inverted_cdf")
        torch.testing.assert_close(normalize_volumes(x, quantile=q), x / scale, rtol=0, atol=0)
    zeros = torch.zeros(2, 3, 3)
    assert torch.equal(normalize_volumes(zeros), zeros)
    assert normalize_volumes(np.ones((2, 2), dtype=np.int64)).dtype == torch.float32


def test_normalized_betti_numbers_at_t_are_the_raw_ones_at_t_times_the_scale():
    relu = torch.relu(torch.randn(3, 4, 6, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)) * 7.0
    normed = normalize_volumes(relu, quantile=0.9)
    scale = float(np.quantile(relu.numpy(), 0.9, method="inverted_cdf"))
    for raw, norm in zip(relu, normed, strict=True):
        for t in (0.0, 0.3, 0.8, 1.2):
            assert cubical_betti(norm, t).tolist() == cubical_betti(raw, t * scale).tolist()


@pytest.mark.parametrize(
    ("volumes", "kwargs", "match"),
    [
        (torch.zeros(0, 3), {}, "non-empty"),
        (torch.tensor([[0.0, np.inf]]), {}, "finite"),
        (torch.ones(2, 2), {"quantile": 0.0}, "`quantile`"),
        (torch.ones(2, 2), {"quantile": 1.5}, "`quantile`"),
    ],
)
def test_normalize_volumes_rejects_bad_input(volumes, kwargs, match):
    with pytest.raises(ValueError, match=match):
        normalize_volumes(volumes, **kwargs)
