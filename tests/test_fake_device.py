"""The device path without a GPU: the strict fake device of ``tests/fakedevice.py`` runs every device branch.

Three parts: the fake device itself (it must catch what CUDA would refuse, or it proves nothing), one test per
defect of the device path (each failed before its fix), and the whole measurement on the fake device (capture under
autocast, the engine serially and with a worker pool, ``analyze``, the metrics), compared with the CPU run.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lightning_topo import datasets
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
