"""Option validation: every option checked before it is converted, the same message in every entry point."""

from __future__ import annotations

import pytest

from lightning_topo import TopologyMonitor
from lightning_topo.options import build_options


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"betti_scale": "a"}, r"Expected `betti_scale` to be a number but got 'a'"),
        ({"long_fraction": None}, r"Expected `long_fraction` to be a number but got None"),
        ({"cubical_threshold": "0.5"}, r"Expected `cubical_threshold` to be a number"),
        ({"max_scale": [1.0]}, r"Expected `max_scale` to be a number"),
        ({"seed": 1.9}, r"Expected `seed` to be an integer >= 0 but got 1.9"),
        ({"seed": -1}, r"Expected `seed` to be an integer >= 0 but got -1"),
        ({"seed": True}, r"Expected `seed` to be an integer >= 0"),
        ({"n_threads": 0}, r"Expected `n_threads` to be -1 \(every core\) or an integer >= 1 but got 0"),
        ({"n_threads": -2}, r"Expected `n_threads` to be -1"),
        ({"n_threads": 2.0}, r"Expected `n_threads` to be -1"),
        ({"score": "id_last", "score_mode": "up"}, r"Expected `score_mode`"),
        ({"score": None, "score_mode": "up"}, r"Expected `score_mode`"),
    ],
)
def test_invalid_options_raise_a_house_message(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_options(**kwargs)
    with pytest.raises(ValueError, match=match):
        TopologyMonitor(**kwargs)


def test_valid_numbers_pass_unchanged():
    measure = build_options(betti_scale=1, seed=7, n_threads=2, max_scale=3).measure
    assert (measure.betti_scale, measure.seed, measure.n_threads, measure.max_scale) == (1.0, 7, 2, 3.0)
    assert build_options(n_threads=-1).measure.n_threads == -1


def test_descriptors_may_be_any_iterable_of_names():
    """A generator is read once: the names it gave are all kept, with the score's needs added."""
    names = ("betti", "id_twonn")
    options = build_options(descriptors=(n for n in names), score="decay")
    assert options.measure.descriptors == build_options(descriptors=list(names), score="decay").measure.descriptors
    assert set(names) <= set(options.measure.descriptors)
    assert "total_persistence" in options.measure.descriptors  # what "decay" needs


def test_a_sample_too_small_for_twonn_is_said_at_setup_not_at_every_measurement():
    import warnings

    from lightning_topo import TopologyMonitor, TopologyWarning

    with pytest.warns(TopologyWarning, match=r"n_samples=10 is below the 20 points TwoNN needs: `id_twonn` \(and the"):
        TopologyMonitor(n_samples=10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TopologyMonitor(n_samples=10, descriptors=["betti"], score=None)  # no TwoNN asked for: nothing to say
        TopologyMonitor(n_samples=20)


def test_a_librarys_sentence_inside_a_problem_message_is_not_doubly_punctuated():
    import warnings

    from torch.utils.data import DataLoader

    from lightning_topo import analyze
    from tests._models import TinyNet, make_data

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        analyze(TinyNet(), DataLoader(make_data(), batch_size=16), layers=["hidden"], n_samples=10)
    ours = [str(w.message) for w in caught if str(w.message).startswith("analyze:")]
    assert any("TwoNN needs at least 20 distinct points" in m for m in ours)
    assert not any(".;" in m or ".." in m for m in ours)
