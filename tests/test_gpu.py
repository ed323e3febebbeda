"""The device path: everything before the persistence call runs on the GPU and matches the CPU path.

Marked ``gpu`` (excluded from the default run); skipped without CUDA. Run with ``pytest -m gpu``. The default suite
runs the same device branches on the fake device of ``tests/fakedevice.py`` (``tests/test_fake_device.py``); these
tests check what it cannot: real CUDA kernels, CUDA's own sync detector, CUDA memory, CUDA generators and autocast.
"""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lightning_topo import TopologyMonitor, analyze, datasets
from lightning_topo import functional as F
from lightning_topo.capture import reduce_samples
from lightning_topo.engine import LayerSample, PreparedLayer, measure_layer, prepare_layer
from lightning_topo.functional.distances import upper_order_statistics
from lightning_topo.options import MeasureOptions
from tests._models import RecordingLogger, TinyNet, make_data, trainer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


@pytest.fixture
def cloud() -> torch.Tensor:
    return datasets.torus(600, noise=0.05, ambient_dim=32, generator=torch.Generator().manual_seed(0))


def test_distances_on_the_gpu_equal_the_cpu(cloud):
    cpu = F.pairwise_distances(cloud, normalize="quantile")
    gpu = F.pairwise_distances(cloud.cuda(), normalize="quantile")
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-10, atol=1e-10)


def test_intrinsic_dimension_sampling_and_the_h0_tree_on_the_gpu_equal_the_cpu(cloud):
    for method in ("twonn", "mle"):
        assert F.intrinsic_dimension(cloud.cuda(), method) == pytest.approx(F.intrinsic_dimension(cloud, method))
    d_cpu = F.pairwise_distances(cloud)
    d_gpu = d_cpu.cuda()
    assert torch.equal(
        F.subsample(d_gpu, 50, "farthest", distance_matrix=True).cpu(),
        F.subsample(d_cpu, 50, "farthest", distance_matrix=True),
    )
    torch.testing.assert_close(F.h0_mst_deaths(d_gpu).cpu().sort().values, F.h0_mst_deaths(d_cpu).sort().values)


def test_only_the_distance_matrix_leaves_the_device(cloud):
    prepared = prepare_layer(LayerSample(cloud.cuda()), MeasureOptions(maxdim=1, ph_samples=300))
    assert isinstance(prepared, PreparedLayer)
    assert isinstance(prepared.cloud.ph_dist, np.ndarray)
    assert prepared.cloud.ph_dist.shape == (300, 300)


def test_a_layer_computed_from_the_gpu_equals_the_cpu(cloud):
    options = MeasureOptions(maxdim=1)
    gpu = measure_layer(LayerSample(cloud.cuda()), options)
    cpu = measure_layer(LayerSample(cloud), options)
    for key, value in cpu.metrics.items():
        assert gpu.metrics[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


def test_the_callback_on_a_cuda_model_logs_finite_values():
    logger = RecordingLogger()
    monitor = TopologyMonitor(n_samples=64)
    trainer(max_epochs=1, accelerator="gpu", devices=1, logger=logger, callbacks=[monitor]).fit(TinyNet())
    assert np.isfinite(logger.values("topo/hidden/id_twonn")).all()


def test_the_device_loops_make_no_host_sync(cloud):
    """CUDA's own sync detector (``set_sync_debug_mode("error")``) on the loops the fake device counts."""
    d = F.pairwise_distances(cloud.cuda())
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        deaths = F.h0_mst_deaths(d)
        order = F.farthest_point_indices(d, 50, distance_matrix=True)
        stats = upper_order_statistics(d, [10, 1000])
    finally:
        torch.cuda.set_sync_debug_mode("default")
    d_cpu = d.cpu()
    torch.testing.assert_close(deaths.cpu().sort().values, F.h0_mst_deaths(d_cpu).sort().values)
    assert torch.equal(order.cpu().sort().values, F.subsample(d_cpu, 50, "farthest", distance_matrix=True))
    upper = d_cpu[torch.triu(torch.ones_like(d_cpu, dtype=torch.bool), diagonal=1)].sort().values
    assert stats.cpu().tolist() == upper[[10, 1000]].tolist()


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_distances_on_the_gpu_hold_at_most_one_temporary_matrix(metric):
    n = 4096
    x = torch.randn(n, 64, generator=torch.Generator().manual_seed(0)).cuda()
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    d = F.pairwise_distances(x, metric=metric, normalize="quantile")
    peak = (torch.cuda.max_memory_allocated() - base) / (8 * n * n)
    assert peak <= 2.0, peak  # the result and at most one more matrix (blocks included)
    assert d.shape == (n, n)


def test_the_quantile_scale_on_the_gpu_is_exact():
    d = F.pairwise_distances(torch.randint(0, 5, (700, 3), generator=torch.Generator().manual_seed(0)).double())
    for q in (0.1, 0.5, 0.9):
        assert F.distance_scale(d.cuda(), quantile=q) == F.distance_scale(d, quantile=q)


def test_cuda_generators_are_accepted(cloud):
    x = cloud.cuda()
    for method in ("random", "farthest"):
        idx = F.subsample(x, 40, method, generator=torch.Generator("cuda").manual_seed(0))
        assert idx.device.type == "cuda"
        assert idx.unique().numel() == 40
    value = F.intrinsic_dimension(x, "phdim", n_min=100, generator=torch.Generator("cuda").manual_seed(0))
    assert 1.0 < value < 4.0  # a torus: 2


def test_a_projected_sample_is_float32_under_cuda_autocast():
    x = torch.randn(64, 512, device="cuda")
    matrix = torch.randn(512, 32, device="cuda") / 32**0.5
    exact = (x.double() @ matrix.double()).float()
    for dtype in (torch.bfloat16, torch.float16):
        with torch.autocast("cuda", dtype=dtype):
            sample = reduce_samples(x, "project", 32, lambda width, device: matrix)
        assert sample.dtype == torch.float32
        torch.testing.assert_close(sample, exact, rtol=1e-4, atol=1e-4)


def test_analyze_runs_a_cpu_model_on_the_gpu_and_moves_it_back():
    model = TinyNet()
    data = DataLoader(make_data(), batch_size=32)
    report = analyze(model, data, n_samples=64, device="cuda")
    assert np.isfinite(report.metrics["hidden"]["id_twonn"])
    assert next(model.parameters()).device.type == "cpu"
