"""The H1 reduction stopped at the horizon (``rips_horizon``): exact, against a brute force and ripser.py."""

import math

import numpy as np
import pytest
import ripser
import torch
from scipy.sparse.csgraph import minimum_spanning_tree

from lightning_topo import datasets
from lightning_topo.functional import persistence as P
from lightning_topo.functional import vietoris_rips


def _normalised(x: np.ndarray) -> np.ndarray:
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    d = (d / np.quantile(d[np.triu_indices(len(d), 1)], 0.9)).astype(np.float32)
    np.fill_diagonal(d, 0.0)
    return d


def _class_clusters(n: int, width: int, seed: int) -> np.ndarray:
    """Class clusters on curved pieces through a ReLU layer, as in ``benchmarks/bench_callback.py``."""
    g = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    t = g.uniform(0, 2 * np.pi, size=(n, 2))
    local = np.concatenate([np.cos(t), np.sin(t), 0.3 * g.normal(size=(n, 2))], axis=1)
    z = 3.0 * g.normal(size=(10, 6))[labels] + local
    return np.maximum(z @ g.normal(size=(6, width)), 0.0)


def _brute_force_horizon(d: np.ndarray, tree: tuple[np.ndarray, np.ndarray]) -> float:
    """The longest edge outside ``tree`` whose lune is empty, by checking every pair against every point."""
    n = len(d)
    in_tree = np.zeros((n, n), dtype=bool)
    in_tree[tree[0], tree[1]] = in_tree[tree[1], tree[0]] = True
    best = 0.0
    for u in range(n):
        for v in range(u + 1, n):
            if in_tree[u, v]:
                continue
            if not (np.maximum(d[u], d[v]) < d[u, v]).any():
                best = max(best, float(d[u, v]))
    return best


def _kruskal_weight(d: np.ndarray) -> float:
    """A minimum spanning tree's weight by Kruskal's algorithm (union-find over the sorted pairs)."""
    n = len(d)
    iu, iv = np.triu_indices(n, 1)
    parent = list(range(n))

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    weight = 0.0
    for e in np.argsort(d[iu, iv], kind="stable"):
        a, b = root(int(iu[e])), root(int(iv[e]))
        if a != b:
            parent[a] = b
            weight += float(d[iu[e], iv[e]])
    return weight


def _scipy_tree(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = minimum_spanning_tree(d.astype(np.float64)).nonzero()
    return rows, cols


def _pairs(dgm: np.ndarray) -> list[tuple[float, float]]:
    dgm = np.asarray(dgm, dtype=np.float64)
    return sorted(map(tuple, dgm[dgm[:, 1] > dgm[:, 0]].tolist()))


@pytest.mark.parametrize(
    "cloud",
    [
        lambda: np.random.default_rng(0).normal(size=(150, 3)),
        lambda: np.random.default_rng(1).normal(size=(120, 40)),
        lambda: _class_clusters(150, 64, seed=2),
    ],
)
def test_horizon_equals_a_brute_force_search(cloud):
    d = _normalised(cloud())
    tree = _scipy_tree(d)  # another spanning tree routine than the package's: the same tree (no ties here)
    assert P.rips_horizon(d, tree) == pytest.approx(_brute_force_horizon(d, tree), abs=0)
    assert P.rips_horizon(d) == P.rips_horizon(d, tree)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_h1_bar_of_positive_length_is_born_after_the_horizon(seed):
    d = _normalised(_class_clusters(200, 32 * (seed + 1), seed))
    horizon = P.rips_horizon(d)
    h1 = ripser.ripser(d, maxdim=1, distance_matrix=True)["dgms"][1]
    h1 = h1[h1[:, 1] > h1[:, 0]]
    assert len(h1) > 10
    assert h1[:, 0].max() <= horizon
    assert horizon < 0.9 * d.max(axis=1).min()  # it is below the enclosing radius: there is something to save


def test_a_square_loop_is_born_at_its_fourth_side():
    # a square with side 1: the diagonals are the longest edges of triangles, the fourth side closes the loop
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float64)
    d = np.sqrt(((square[:, None] - square[None]) ** 2).sum(-1)).astype(np.float32)
    assert P.rips_horizon(d) == 1.0


def _cloud_cases() -> dict[str, np.ndarray]:
    g = np.random.default_rng(5)
    grid = np.stack(np.meshgrid(np.arange(10), np.arange(10)), -1).reshape(-1, 2).astype(np.float64)
    return {
        "class clusters": _class_clusters(300, 128, seed=3),
        "gaussian R^16": g.normal(size=(250, 16)),
        # many equal distances: the witnesses' strict comparisons decide
        "integer grid": grid,
        # exact duplicates: zero distances, zero-length tree edges
        "duplicates": np.repeat(g.normal(size=(80, 5)), 3, axis=0),
        "circle": datasets.circle(200, noise=0.05, generator=torch.Generator().manual_seed(0)).numpy(),
        "torus": datasets.torus(300, generator=torch.Generator().manual_seed(0)).numpy(),
    }


@pytest.mark.parametrize("name", list(_cloud_cases()))
def test_diagrams_below_the_horizon_equal_ripser(name):
    d = _normalised(_cloud_cases()[name])
    cut, _ = P.rips_below_horizon(d, n_threads=1)
    ref = ripser.ripser(d, maxdim=1, distance_matrix=True)["dgms"]
    # class clusters, blobs and duplicates are cut; a circle, a torus or a grid (its squares die at sqrt(2) times the
    # side that closes them) keeps a class alive past both cuts, and the whole filtration runs
    assert (cut is None) == (name in ("circle", "torus", "integer grid"))
    ours = vietoris_rips(torch.from_numpy(d), maxdim=1, distance_matrix=True, n_threads=1)
    for q in (0, 1):
        assert _pairs(ours[q]) == _pairs(ref[q])  # exactly: the same float32 values in, the same pairs out
        if cut is not None:
            assert _pairs(cut[q]) == _pairs(ref[q])
    assert ours.n_essential(0) == 1
    assert ours.n_essential(1) == 0


def test_the_horizon_is_not_tried_where_it_does_not_apply(monkeypatch):
    calls = []
    monkeypatch.setattr(P, "rips_below_horizon", lambda *a: (calls.append(a), (None, 0.0))[1])
    x = torch.from_numpy(_class_clusters(100, 16, seed=0))
    vietoris_rips(x, maxdim=1)
    assert len(calls) == 1
    vietoris_rips(x, maxdim=2)  # H2 births are not covered by the lune argument
    vietoris_rips(x, maxdim=1, thresh=1.0)
    vietoris_rips(x, maxdim=1, coeff=3)
    vietoris_rips(x, maxdim=1, collapse_edges=True)
    assert len(calls) == 1


def test_small_clouds_and_a_horizon_at_the_enclosing_radius_run_the_whole_filtration():
    d = _normalised(np.random.default_rng(0).normal(size=(P.HORIZON_MIN_POINTS - 1, 3)))
    assert P.rips_below_horizon(d, n_threads=1)[0] is None
    # in high dimension the horizon is close to the enclosing radius: nothing to save, no second reduction
    d = _normalised(np.random.default_rng(0).normal(size=(200, 400)))
    assert P.rips_horizon(d) * P.HORIZON_MARGIN >= P.HORIZON_GAIN * float(d.max(axis=1).min())
    assert P.rips_below_horizon(d, n_threads=1)[0] is None
    assert math.isfinite(P.rips_horizon(d))


@pytest.mark.parametrize("name", ["class clusters", "circle"])
def test_the_reach_of_a_layer_places_the_first_cut_and_changes_no_pair(name, monkeypatch):
    d = _normalised(_cloud_cases()[name])
    ref = ripser.ripser(d, maxdim=1, distance_matrix=True)["dgms"]
    full = vietoris_rips(torch.from_numpy(d), maxdim=1, distance_matrix=True, n_threads=1)
    _, horizon = P.rips_below_horizon(d, n_threads=1)
    reach = P.h1_reach(full, horizon)
    assert reach is not None
    finite = ref[1][np.isfinite(ref[1][:, 1])]
    assert reach == pytest.approx(finite[:, 1].max() / horizon, rel=1e-6)  # ripser's deaths, in float32
    from gph.modules import gph_ripser

    calls: list[float] = []
    dense = gph_ripser.rips_dm

    def counted(*args):  # type: ignore[no-untyped-def]
        calls.append(args[4])  # the threshold
        return dense(*args)

    monkeypatch.setattr(gph_ripser, "rips_dm", counted)
    monkeypatch.setattr(P, "HORIZON_SPARSE", 0.0)  # every cut through the dense binding, to count them
    for hint in (None, 0.5, reach, 2 * reach, math.nan):
        calls.clear()
        got, _ = P.rips_below_horizon(d, n_threads=1, reach=hint)
        if got is not None:
            for q in (0, 1):
                assert _pairs(got[q]) == _pairs(ref[q])
        if hint is not None and math.isfinite(hint) and hint >= reach:
            # a hint at least the reach: one cut, beyond every death, that succeeds; or none at all when it would lie
            # near the enclosing radius (the whole filtration then runs at once, without cuts that fail first)
            assert len(calls) <= 1
            assert (got is not None) == (len(calls) == 1)
    if name == "circle":
        assert reach > 5  # one large loop: far past the gaps between points


def test_the_engine_remembers_each_layer_s_reach_and_gives_the_same_numbers():
    from lightning_topo.engine import LayerSample, start_measurement
    from lightning_topo.options import build_options

    samples = {
        f"l{i}": LayerSample(torch.from_numpy(_class_clusters(200, 16 * (i + 1), seed=i)).float()) for i in (0, 1)
    }
    options = build_options(n_samples=200).measure
    reaches: dict[str, float | None] = {}
    first = start_measurement(samples, options, reaches=reaches).results()
    assert set(reaches) == set(samples)
    assert all(r is not None and r > 0.5 for r in reaches.values())
    assert {a: r.h1_reach for a, r in first.items()} == reaches
    second = start_measurement(samples, options, reaches=reaches).results()
    assert all(first[a].metrics == second[a].metrics for a in samples)
    assert all(_pairs(first[a].diagrams[1]) == _pairs(second[a].diagrams[1]) for a in samples)


def test_a_matrix_symmetric_only_within_tolerance_or_with_a_diagonal_gives_giotto_ph_s_pairs():
    """giotto-ph reads the upper triangle, and a nonzero diagonal as vertex births: the horizon must read the same."""
    from gph import ripser_parallel

    g = np.random.default_rng(0)
    d = _normalised(_class_clusters(200, 32, seed=1)).astype(np.float64)
    lower = np.tril_indices(len(d), -1)
    skewed = d.copy()
    skewed[lower] *= 1 + g.uniform(-3e-7, 3e-7, size=len(lower[0]))  # within check_distance_matrix's tolerance
    births = d.copy()
    np.fill_diagonal(births, 1e-7)
    for m in (skewed, births):
        ours = vietoris_rips(torch.from_numpy(m), maxdim=1, distance_matrix=True, n_threads=1)
        ref = ripser_parallel(m, maxdim=1, metric="precomputed", n_threads=1)["dgms"]
        for q in (0, 1):
            assert _pairs(ours[q]) == _pairs(ref[q])


def test_points_on_a_line_have_no_horizon_and_no_h1():
    # every edge outside the path is witnessed by a point between its ends: nothing to reduce
    x = np.cumsum(np.random.default_rng(0).uniform(0.5, 1.5, size=100))[:, None] * np.array([[1.0, 2.0]])
    d = _normalised(x)
    assert P.rips_horizon(d) == 0.0
    got, horizon = P.rips_below_horizon(d, n_threads=1)
    assert horizon == 0.0
    assert got is not None
    ref = ripser.ripser(d, maxdim=1, distance_matrix=True)["dgms"]
    for q in (0, 1):
        assert _pairs(got[q]) == _pairs(ref[q])
    assert len(got[1]) == 0


@pytest.mark.parametrize("seed", [0, 1])
def test_the_spanning_tree_s_edges_and_lengths_agree(seed):
    d = _normalised(np.round(np.random.default_rng(seed).normal(size=(120, 2)) * 3))  # ties and duplicates
    deaths, parents, children = P._prim_tree(d)
    assert sorted(children.tolist()) == list(range(1, len(d)))
    assert np.array_equal(d[parents, children], deaths)
    assert float(deaths.sum()) == pytest.approx(_kruskal_weight(d), abs=1e-4)  # (scipy's reads zeros as no edge)
