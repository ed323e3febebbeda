"""The device path: everything before the persistence call runs on the GPU and matches the CPU path.

Marked ``gpu`` (excluded from the default run); skipped without CUDA. Run with ``pytest -m gpu``.
"""

import numpy as np
import pytest
import torch

from lightning_topo import TopologyMonitor, datasets
from lightning_topo import functional as F
from lightning_topo.engine import LayerSample, PreparedLayer, measure_layer, prepare_layer
from lightning_topo.options import MeasureOptions
from tests._models import RecordingLogger, TinyNet, trainer

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
