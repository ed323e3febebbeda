"""The device path without a GPU: the strict fake device of ``tests/fakedevice.py`` runs every device branch.

Three parts: the fake device itself (it must catch what CUDA would refuse, or it proves nothing), one test per
defect of the device path (each failed before its fix), and the whole measurement on the fake device (capture under
autocast, the engine serially and with a worker pool, ``analyze``, the metrics), compared with the CPU run.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_topo import analyze, datasets
from lightning_topo import functional as F
from lightning_topo.capture import ActivationCapture, reduce_samples, resolve_layers
from lightning_topo.engine import LayerSample, PreparedLayer, WorkerPool, measure, prepare_layer, start_measurement
from lightning_topo.metrics import IntrinsicDimension, PersistenceDescriptors
from lightning_topo.options import MeasureOptions, build_options
from tests.fakedevice import FAKE, FakeDeviceTensor, fake_device, fake_generator

MATRIX = 8  # bytes per entry of a float64 matrix


def _cloud(n: int, dim: int = 8, seed: int = 0) -> torch.Tensor:
    return datasets.torus(n, noise=0.05, ambient_dim=dim, generator=torch.Generator().manual_seed(seed)).double()


# -- the fake device catches what CUDA refuses ---------------------------------------------------------------------


def test_fake_tensors_report_the_device_and_stay_on_it():
    with fake_device():
        x = torch.ones(3, 2).to("cuda")
        y = torch.zeros(3, device=x.device)
        z = (x * 2).sum(dim=1) + y
        assert isinstance(z, FakeDeviceTensor)
        assert z.device == FAKE
        assert z.is_cuda
        back = z.cpu()
    assert type(back) is torch.Tensor
    assert back.device.type == "cpu"
    assert back.tolist() == [4.0, 4.0, 4.0]


def test_mixing_the_fake_device_with_cpu_tensors_is_refused_but_cpu_scalars_and_indices_are_not():
    with fake_device() as counters:
        x = torch.arange(6.0).to("cuda")
        with pytest.raises(RuntimeError, match="same device"):
            x + torch.ones(6)
        with pytest.raises(RuntimeError, match="same device"):
            torch.cat([x, torch.ones(2)])
        with pytest.raises(RuntimeError, match="same device"):
            torch.ones(6)[x.long()]
        assert len(counters.mixes) == 3
        x * torch.tensor(2.0)  # a 0-d CPU tensor is a scalar, as on CUDA
        x[torch.tensor([0, 2])]  # a CPU index is copied to the device, as on CUDA
        assert len(counters.mixes) == 3
        assert [t.shape for t in counters.to_device] == [(6,), (2,)]


def test_numpy_on_the_fake_device_is_refused_and_recorded():
    with fake_device() as counters:
        x = torch.ones(3).to("cuda")
        with pytest.raises(TypeError, match=r"Use Tensor\.cpu\(\)"):
            x.numpy()
        with pytest.raises(TypeError, match=r"Use Tensor\.cpu\(\)"):
            np.asarray(x)
        assert len(counters.numpy_calls) == 2
        assert x.cpu().numpy().tolist() == [1.0, 1.0, 1.0]


def test_host_synchronisations_are_counted_where_cuda_makes_them():
    with fake_device() as counters:
        v = torch.tensor([3.0, 1.0, 2.0]).to("cuda")
        m = torch.eye(3).to("cuda")
        assert counters.host_syncs == 2  # a copy to the device waits for it too
        counters.reset()
        j = torch.argmin(v)  # stays on the device
        m.index_select(0, j.view(1))
        m[j.view(1)]
        assert counters.syncs == 0
        m[j]  # a 0-d index becomes a Python int
        float(v.sum())
        v[v > 1.5]  # the size depends on the data
        torch.unique(v)
        v.tolist()
        m[m > 0] = 0.0  # masked_fill_ on CUDA: no sync
        assert counters.syncs == 5
        v.cpu()
        assert counters.host_syncs == 6
        assert counters.bytes_to_host == 12


def test_generators_must_live_on_the_device_of_what_they_draw():
    with fake_device():
        with pytest.raises(RuntimeError, match="Expected a 'cuda' device type for generator"):
            torch.randperm(5, generator=torch.Generator(), device="cuda")
        with pytest.raises(RuntimeError, match="Expected a 'cpu' device type for generator"):
            torch.randperm(5, generator=fake_generator(0))
        perm = torch.randperm(5, generator=fake_generator(0), device="cuda")
        assert perm.device == FAKE
        assert sorted(perm.cpu().tolist()) == [0, 1, 2, 3, 4]


def test_device_memory_is_tracked_per_storage():
    with fake_device() as counters:
        a = torch.zeros(1000, dtype=torch.float64, device="cuda")
        view = a[:10]
        b = torch.ones_like(a)
        assert counters.live_bytes == 16000
        del a
        assert counters.live_bytes == 16000  # the view keeps the storage alive
        del view, b
        assert counters.live_bytes == 0
        assert counters.peak_bytes == 16000


def test_modules_move_onto_the_fake_device_and_back():
    model = nn.Linear(3, 2)
    with fake_device():
        model.to("cuda")
        assert isinstance(model.weight, nn.Parameter)
        assert model.weight.device == FAKE
        assert model(torch.ones(4, 3).to("cuda")).device == FAKE
        with pytest.raises(RuntimeError, match="same device"):
            model(torch.ones(4, 3))
        model.to("cpu")
    assert type(model.weight) is nn.Parameter
    assert model.weight.device.type == "cpu"


def test_cuda_autocast_is_the_cpu_autocast_on_the_fake_device():
    with fake_device():
        x = torch.randn(4, 8).to("cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            assert (x @ x.T).dtype == torch.bfloat16
            with torch.autocast("cuda", enabled=False):
                assert (x @ x.T).dtype == torch.float32


# -- one test per defect of the device path --------------------------------------------------------------------------


def test_the_spanning_tree_makes_no_host_sync_on_the_device():
    """Before: 3 syncs per step (0-d device tensors as indices), 897 for 300 points."""
    d = F.pairwise_distances(_cloud(300))
    with fake_device() as counters:
        d_dev = d.to("cuda")
        counters.reset()
        deaths = F.h0_mst_deaths(d_dev)
        assert counters.host_syncs == 0, counters.sync_sites
        assert deaths.device == FAKE
        deaths = deaths.cpu()
    torch.testing.assert_close(deaths.sort().values, F.h0_mst_deaths(d).sort().values, rtol=0, atol=0)


@pytest.mark.parametrize("distance_matrix", [False, True])
def test_farthest_point_sampling_makes_no_host_sync_per_point(distance_matrix):
    """Before: one sync per chosen point (51 for 50 points) and the input checks made n x n temporaries."""
    x = _cloud(300)
    data = F.pairwise_distances(x) if distance_matrix else x
    expected = F.subsample(data, 50, "farthest", distance_matrix=distance_matrix)
    with fake_device() as counters:
        data_dev = data.to("cuda")
        syncs = []
        for n in (10, 50):
            counters.reset()
            idx = F.subsample(data_dev, n, "farthest", distance_matrix=distance_matrix)
            syncs.append(counters.host_syncs)
        assert syncs[0] == syncs[1] <= 1, counters.sync_sites  # the input checks' one sync, whatever n
        assert idx.device == FAKE
        counters.reset()
        order = F.farthest_point_indices(data_dev, 50, distance_matrix=distance_matrix)
        assert counters.host_syncs == 0
        assert torch.equal(idx.cpu(), expected)
        assert torch.equal(order.cpu().sort().values, expected)


def test_farthest_point_indices_are_the_greedy_order():
    x = torch.tensor([[0.0], [1.0], [10.0], [3.0], [6.0]])
    assert F.farthest_point_indices(x, 4).tolist() == [0, 2, 4, 3]  # 0, then 10, 6 (4 away), 3 (3 away)
    d = F.pairwise_distances(x)
    assert F.farthest_point_indices(d, 4, distance_matrix=True).tolist() == [0, 2, 4, 3]


def test_phdim_on_the_device_makes_a_bounded_number_of_host_syncs():
    """Before: 4,188 syncs for 300 points (the spanning trees of 8 subsamples, a mask, a float per size)."""
    x = _cloud(300)
    d = F.pairwise_distances(x)
    kwargs: dict[str, Any] = {"n_min": 50, "n_max": 300, "distance_matrix": True}
    expected = F.intrinsic_dimension(d, "phdim", generator=torch.Generator().manual_seed(0), **kwargs)
    with fake_device() as counters:
        d_dev = d.to("cuda")
        counters.reset()
        value = F.intrinsic_dimension(d_dev, "phdim", generator=torch.Generator().manual_seed(0), **kwargs)
        # the input check, "any duplicates?", one copy of the 7 subsamples' indices drawn on the CPU, the 8 lifetime
        # sums read at once
        assert counters.host_syncs <= 4, counters.sync_sites
        assert not counters.to_host
    assert value == pytest.approx(expected, rel=1e-12)


def test_generators_on_the_data_device_are_accepted():
    """Before: a CUDA generator was refused ("Expected a 'cpu' device type for generator but found 'cuda'")."""
    x = _cloud(200)
    labels = torch.arange(200) % 4
    with fake_device() as counters:
        x_dev = x.to("cuda")
        d_dev = F.pairwise_distances(x_dev)
        for method in ("random", "farthest", "stratified"):
            a = F.subsample(x_dev, 20, method, labels=labels, generator=fake_generator(5))
            b = F.subsample(x_dev, 20, method, labels=labels, generator=fake_generator(5))
            assert a.device == FAKE
            assert torch.equal(a.cpu(), b.cpu())
            assert a.cpu().unique().numel() == 20
        value = F.intrinsic_dimension(d_dev, "phdim", distance_matrix=True, n_min=50, generator=fake_generator(0))
        assert math.isfinite(value)
        cpu_gen = F.subsample(x_dev, 20, "random", generator=torch.Generator().manual_seed(5))  # still accepted
        assert cpu_gen.device == FAKE
        assert not counters.violations


@pytest.mark.parametrize("q", [0.0, 0.1, 0.5, 0.9, 0.97, 1.0])
def test_the_quantile_scale_on_the_device_is_the_exact_quantile_without_a_single_slice_selection(q):
    """Before: two ``torch.kthvalue`` over the flattened n x n matrix (one CUDA thread block: seconds at n ~ 10k)."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, size=(120, 3)).astype(np.float64)  # many ties and zero distances
    d = F.pairwise_distances(torch.from_numpy(x))
    upper = d.numpy()[np.triu_indices(120, k=1)]
    with fake_device() as counters:
        d_dev = d.to("cuda")
        counters.reset()
        scale = F.distance_scale(d_dev, "quantile", quantile=q)
        assert "kthvalue" not in counters.ops
        assert counters.host_syncs <= 2, counters.sync_sites  # the input check and the result
    assert scale == pytest.approx(np.quantile(upper, q), rel=1e-15, abs=0)
    assert F.distance_scale(d, "quantile", quantile=q) == scale


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_distances_on_the_device_hold_at_most_one_temporary_matrix(metric):
    """Before: peaks of 5.1 n x n float64 matrices for the cosine distance (the result and four temporaries)."""
    n = 512
    x = torch.randn(n, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x[3] = 0.0
    x[7] = 0.0
    expected = F.pairwise_distances(x, metric=metric, normalize="quantile")
    with fake_device() as counters:
        x_dev = x.to("cuda")
        counters.reset()
        d = F.pairwise_distances(x_dev, metric=metric, normalize="quantile")
        peak = (counters.peak_bytes - x.numel() * 8) / (MATRIX * n * n)
        assert peak <= 2.0, f"{peak:.2f} matrices at {counters.peak_site}"
        assert counters.host_syncs <= 2, counters.sync_sites  # the input check, "any rows close enough to be equal?"
        d = d.cpu()
    torch.testing.assert_close(d, expected, rtol=0, atol=1e-15)


def test_checking_a_distance_matrix_on_the_device_holds_no_temporary_matrix():
    """Before: ``distance_scale`` (validated) and ``subsample(distance_matrix=True)`` peaked at 3 matrices."""
    n = 512
    d = F.pairwise_distances(_cloud(n))
    with fake_device() as counters:
        d_dev = d.to("cuda")
        for call in (
            lambda: F.distance_scale(d_dev, "median"),
            lambda: F.subsample(d_dev, 20, "farthest", distance_matrix=True),
        ):
            counters.reset()
            call()
            extra = (counters.peak_bytes - d.numel() * 8) / (MATRIX * n * n)
            assert extra < 0.5, f"{extra:.2f} matrices at {counters.peak_site}"  # boolean blocks and tiles only
            assert counters.host_syncs <= 2, counters.sync_sites


def test_duplicates_on_the_device_are_found_in_blocks_and_dropped_in_one_gather():
    """Before: equal rows cost two reads in ``pairwise_distances``, and the intrinsic dimension of a matrix with
    duplicates peaked at 2 matrices beyond its input (the checks' copies, two n x n boolean scans, a k x n copy)."""
    n = 400
    x = _cloud(n, dim=16)
    x[::10] = x[1::10]  # 40 exact duplicates
    d = F.pairwise_distances(x)
    expected = F.intrinsic_dimension(d, "twonn", distance_matrix=True)
    with fake_device() as counters:
        x_dev = x.to("cuda")
        counters.reset()
        d_dev = F.pairwise_distances(x_dev)
        assert counters.host_syncs <= 2, counters.sync_sites  # the input check, "any rows close enough to be equal?"
        assert torch.equal(d_dev.cpu(), d)
        counters.reset()
        value = F.intrinsic_dimension(d_dev, "twonn", distance_matrix=True)
        extra = (counters.peak_bytes - n * n * 8) / (MATRIX * n * n)
        assert extra < 1.0, f"{extra:.2f} matrices at {counters.peak_site}"  # the 360 x 360 distinct points: 0.81
        # the input check, "any duplicates?", which (their indices), TwoNN's count and sums
        assert counters.host_syncs <= 5, counters.sync_sites
    assert value == pytest.approx(expected, rel=1e-12)


def test_preparing_a_layer_on_the_device_never_revalidates_its_own_matrix():
    """Before: with ``ph_samples`` the engine re-checked its distance matrix (3 n x n matrices) and made 1,011 host
    syncs for 300 points (the farthest-point loop and the H0 tree)."""
    n = 400
    x = _cloud(n, dim=16)
    options = MeasureOptions(maxdim=1, ph_samples=100)
    expected = prepare_layer(LayerSample(x), options)
    assert isinstance(expected, PreparedLayer)
    with fake_device() as counters:
        x_dev = x.to("cuda")
        counters.reset()
        prepared = prepare_layer(LayerSample(x_dev), options)
        peak = (counters.peak_bytes - x.numel() * 8) / (MATRIX * n * n)
        assert peak <= 2.0, f"{peak:.2f} matrices at {counters.peak_site}"
        # 8 reads: finiteness (twice), "any rows close enough to be equal?", constancy, "any duplicates?" (TwoNN),
        # TwoNN's count and sums, the number of duplicates (a note); the farthest-point start copied to the
        # device; the matrix and the H0 deaths copied out
        assert counters.host_syncs <= 11, counters.sync_sites
        assert not counters.violations
        # only the float32 sub-matrix for giotto-ph and the H0 deaths of the tree leave the device
        assert sorted((t.shape, t.dtype) for t in counters.to_host) == [
            ((100, 100), torch.float32),
            ((n - 1,), torch.float64),
        ]
    assert isinstance(prepared, PreparedLayer)
    assert prepared.cloud.h0 is not None
    assert expected.cloud.h0 is not None
    np.testing.assert_array_equal(prepared.cloud.ph_dist, expected.cloud.ph_dist)
    np.testing.assert_allclose(np.sort(prepared.cloud.h0[:, 1]), np.sort(expected.cloud.h0[:, 1]), rtol=0, atol=0)
    assert prepared.cloud.metrics == pytest.approx(expected.cloud.metrics, rel=1e-12)


def test_a_projected_sample_is_float32_under_mixed_precision():
    """Before: the projection matmul ran under the Trainer's autocast, so the stored sample was bf16 (TwoNN moved
    from 1.94 to 2.78 on one layer) or fp16 (which can overflow)."""
    x = torch.randn(64, 512, generator=torch.Generator().manual_seed(0))
    matrix = torch.randn(512, 32, generator=torch.Generator().manual_seed(1)) / math.sqrt(32)
    exact = (x.double() @ matrix.double()).float()
    for dtype in (torch.bfloat16, torch.float16):
        with torch.autocast("cpu", dtype=dtype):
            sample = reduce_samples(x, "project", 32, lambda width, *_: matrix)
        assert sample.dtype == torch.float32
        torch.testing.assert_close(sample, exact, rtol=1e-5, atol=1e-5)


def test_analyze_runs_the_model_on_the_given_device_and_moves_it_back():
    """Before (issue 15): ``analyze(device=...)`` moved the batches but not the model, a device-mismatch error."""
    model, loader = _model(), _loader()
    expected = analyze(model, loader, layers=["1", "3"], n_samples=64)
    with fake_device() as counters:
        report = analyze(model, loader, layers=["1", "3"], n_samples=64, device="cuda")
        assert not counters.violations
    assert all(type(p) is nn.Parameter and p.device.type == "cpu" for p in model.parameters())
    for layer in ("1", "3"):
        assert report.metrics[layer] == pytest.approx(expected.metrics[layer], rel=1e-9, abs=1e-12)


# -- the whole measurement on the fake device ------------------------------------------------------------------------


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 64), nn.ReLU(), nn.Linear(64, 300), nn.Tanh(), nn.Linear(300, 3))


def _loader() -> DataLoader:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(120) % 3
    x = torch.randn(120, 6, generator=g)
    x[:, 0] += 3.0 * y
    return DataLoader(TensorDataset(x, y), batch_size=40)


def _capture(model: nn.Module, device: str, options: dict) -> dict[str, LayerSample]:
    """What ``analyze`` and the callback do: hooks on ``model`` (already on ``device``), under bf16 autocast."""
    opts = build_options(**options)
    capture = ActivationCapture(model, resolve_layers(model, ["input", "1", "3", "output"]), opts, opts.n_samples)
    capture.start()
    with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16):
        for x, y in _loader():
            batch = (x.to(device), y.to(device))
            capture.begin_batch(batch)
            model(batch[0])
            capture.end_batch()
    return capture.finish()


OPTIONS = {"n_samples": 96, "reduce": "project", "max_features": 32}
DESCRIPTORS = ("betti", "total_persistence", "entropy", "id_twonn", "id_mle")


def test_the_whole_measurement_on_the_fake_device_equals_the_cpu_and_crosses_only_float32_matrices():
    n_layers, n_batches = 4, 3
    # host syncs per layer: 11 reads (finiteness twice, "any rows close enough to be equal?", constancy, "any
    # duplicates?", count and sums for TwoNN and again for MLE, the number of duplicates), the class indices and
    # the farthest-point start copied in, the float32 matrix and the H0 trees (the layer's, 3 classes') copied out;
    # and one comparison of two samples of the same shape (are they copies?)
    per_layer = 18
    cpu_model = _model()
    cpu_samples = _capture(cpu_model, "cpu", OPTIONS)
    variants = {
        "all points": MeasureOptions(descriptors=DESCRIPTORS, class_descriptors=("betti",)),
        "ph_samples": MeasureOptions(descriptors=DESCRIPTORS, class_descriptors=("betti",), ph_samples=50),
    }
    expected = {name: measure(cpu_samples, options) for name, options in variants.items()}
    pool = WorkerPool(1)
    pool.warm_up()  # fork the worker before the fake device exists
    try:
        with fake_device() as counters:
            model = _model().to("cuda")
            counters.reset()
            samples = _capture(model, "cuda", OPTIONS)
            capture_syncs = counters.host_syncs - 2 * n_batches  # less this test's own copies of the batches
            assert not counters.violations
            for alias, sample in samples.items():
                assert sample.points is not None
                assert sample.points.device == FAKE
                assert sample.points.dtype == torch.float32, alias  # whatever the autocast
                torch.testing.assert_close(sample.points.cpu(), cpu_samples[alias].points, rtol=0, atol=0)

            for name, options in variants.items():
                counters.reset()
                serial = measure(samples, options)
                assert not counters.violations, counters.violations
                assert counters.host_syncs <= per_layer * n_layers + 1, counters.sync_sites
                _assert_same(serial, expected[name])

                counters.reset()
                pooled = start_measurement(samples, options, pool=pool).report()
                assert not counters.violations, counters.violations
                assert counters.host_syncs <= per_layer * n_layers + 1, counters.sync_sites
                # what goes to the worker: the float32 matrices, plus each H0 tree's deaths (n - 1 float64)
                # and each class's H0 deaths (3 classes of 32 examples, class_maxdim=0: a tree each, no matrix)
                k = options.ph_samples or 96
                n_trees = n_layers if options.ph_samples else 0
                allowed = {((k, k), torch.float32), ((95,), torch.float64), ((31,), torch.float64)}
                assert {(t.shape, t.dtype) for t in counters.to_host} <= allowed
                assert counters.bytes_to_host == n_layers * (k * k * 4 + 3 * 31 * 8) + n_trees * 95 * 8
                _assert_same(pooled, expected[name])
    finally:
        pool.shutdown()
    # per batch: its labels in and out, the kept rows' indices copied to each layer's device (capture.py); once:
    # each projection matrix
    assert capture_syncs <= n_batches * (2 + n_layers) + 2


def _assert_same(report, expected) -> None:
    assert report.layers == expected.layers
    for layer in expected.layers:
        assert report.problems.get(layer) == expected.problems.get(layer), report.problems  # notes alike
        assert not any(math.isnan(v) for v in report.metrics[layer].values()), layer
        assert report.metrics[layer] == pytest.approx(expected.metrics[layer], rel=1e-9, abs=1e-12), layer
        assert report.class_metrics.get(layer) == expected.class_metrics.get(layer), layer  # Betti numbers


def test_the_metrics_on_the_fake_device_equal_the_cpu():
    batches = [_cloud(100, seed=s).float() for s in range(3)]
    cpu_pd, cpu_id = PersistenceDescriptors(maxdim=1, max_points=250), IntrinsicDimension("mle", max_points=250)
    for b in batches:
        cpu_pd.update(b)
        cpu_id.update(b)
    with fake_device() as counters:
        pd, idim = PersistenceDescriptors(maxdim=1, max_points=250), IntrinsicDimension("mle", max_points=250)
        for b in batches:
            pd.update(b.to("cuda"))
            idim.update(b.to("cuda"))
        counters.reset()
        values = {**pd.compute(), **idim.compute()}
        assert not counters.violations
        # 14 reads: PersistenceDescriptors as a layer (8: see the test above) and IntrinsicDimension (finiteness
        # twice, "any rows close enough to be equal?", "any duplicates?", MLE's count and sums); the two copies of
        # the capped indices to the device; the float32 matrix out
        assert counters.host_syncs <= 17, counters.sync_sites
        assert [(t.shape, t.dtype) for t in counters.to_host] == [((250, 250), torch.float32)]
    expected = {**cpu_pd.compute(), **cpu_id.compute()}
    assert {k: float(v) for k, v in values.items()} == pytest.approx({k: float(v) for k, v in expected.items()})
