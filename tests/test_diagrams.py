import numpy as np
import pytest

from lightning_topo import PersistenceDiagrams


def test_diagrams_are_sorted_read_only_float64_arrays():
    d = PersistenceDiagrams([[[0.0, np.inf], [0.0, 2.0], [0.0, 1.0]], []])
    assert d[0].dtype == np.float64
    assert d[0].tolist() == [[0.0, 1.0], [0.0, 2.0], [0.0, np.inf]]
    assert d[1].shape == (0, 2)
    with pytest.raises(ValueError, match="read-only"):
        d[0][0, 0] = 5.0


def test_helpers_split_finite_and_essential_bars():
    d = PersistenceDiagrams([[[0.0, 1.0], [0.0, np.inf]], [[0.2, 0.5]]])
    assert d.maxdim == 1
    assert len(d) == 2
    assert d.n_essential(0) == 1
    assert d.essential(0).tolist() == [[0.0, np.inf]]
    assert d.lifetimes(0).tolist() == [1.0]
    assert d.max_finite_value() == 1.0
    copies = d.to_numpy()
    copies[0][0, 1] = 7.0
    assert d[0][0, 1] == 1.0
    assert "H0: 2 bars (1 essential)" in repr(d)


def test_allclose_compares_every_dimension():
    a = PersistenceDiagrams([[[0.0, 1.0]], [[0.1, 0.2]]])
    assert a.allclose(PersistenceDiagrams([[[0.0, 1.0 + 1e-12]], [[0.1, 0.2]]]))
    assert not a.allclose(PersistenceDiagrams([[[0.0, 1.0]]]))
    assert not a.allclose(PersistenceDiagrams([[[0.0, 1.0]], [[0.1, 0.3]]]))


@pytest.mark.parametrize(
    ("dgms", "match"),
    [
        ([], "at least one homology dimension"),
        ([[[0.0, 1.0, 2.0]]], r"shape \(n, 2\)"),
        ([[[0.0, np.nan]]], "no NaN"),
        ([[[1.0, 0.5]]], "death >= birth"),
    ],
)
def test_invalid_diagrams_are_rejected(dgms, match):
    with pytest.raises(ValueError, match=match):
        PersistenceDiagrams(dgms)
