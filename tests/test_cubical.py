import numpy as np
import pytest
import torch

from lightning_topo.functional import betti_numbers, cubical_persistence


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
