import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from lightning_topo.functional import topological_complexity_decay

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "suresh2023"
needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/reference/suresh2023 is absent")

# Figures of docs/methods.md section 7 (the authors' shipped arrays, re-analysed): theta and fine-tuning accuracy
PUBLISHED = {
    "vgg16": (0.203, 94.74),
    "resnet18": (0.194, 95.42),
    "resnet50": (0.147, 95.78),
    "resnet101": (0.0134, 95.92),
    "resnet152": (0.0085, 95.93),
    "mobilet": (0.056, 95.17),
    "densenet121": (-0.031, 96.53),
    "densenet169": (-0.032, 96.21),
    "densenet201": (-0.029, 96.39),
}


def test_decay_score_matches_a_scikit_learn_ridge_fit():
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import PolynomialFeatures

    profile = np.array([5.0, 9.0, 7.0, 4.0, 3.5, 1.0, 0.7])
    y = profile / np.linalg.norm(profile)
    x = np.arange(1, 8).reshape(-1, 1)
    ref = Ridge(alpha=1e-3).fit(PolynomialFeatures(3).fit_transform(x), y).coef_ @ [0, 1, 0.5, 0.5]
    assert topological_complexity_decay(profile) == pytest.approx(ref, abs=1e-10)


def test_decay_score_is_scale_invariant_and_lower_for_faster_decay():
    fast = np.array([10.0, 3.0, 1.0, 0.5, 0.4, 0.3])
    slow = np.array([10.0, 9.0, 8.0, 7.0, 6.0, 5.0])
    for method in ("suresh", "log_slope"):
        assert topological_complexity_decay(fast, method=method) < topological_complexity_decay(slow, method=method)
        assert topological_complexity_decay(42 * fast, method=method) == pytest.approx(
            topological_complexity_decay(fast, method=method)
        )


@needs_reference
def test_suresh_scores_reproduce_the_published_figures_from_the_betti_arrays():
    profiles = json.loads((REFERENCE / "profiles.json").read_text())["models"]
    thetas, accs = [], []
    for name, (theta, acc) in PUBLISHED.items():
        bettis = np.load(REFERENCE / f"{name}_cifar10.npy")
        omega = bettis.sum(axis=-1).mean(axis=(0, 1))
        np.testing.assert_allclose(omega, profiles[name]["omega_profile"], rtol=1e-6)
        score = topological_complexity_decay(omega)
        assert score == pytest.approx(profiles[name]["theta"], abs=1e-6)
        assert score == pytest.approx(theta, abs=1e-3)
        thetas.append(score)
        accs.append(acc)
    assert spearmanr(thetas, accs).statistic == pytest.approx(-0.90, abs=0.005)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"profile": [1.0, 2.0, 3.0]}, "at least 4 layers"),
        ({"profile": [[1.0, 2.0], [3.0, 4.0]]}, "1-D"),
        ({"profile": [1.0, np.nan, 1.0, 1.0]}, "finite"),
        ({"profile": [0.0, 0.0, 0.0, 0.0]}, "non-zero"),
        ({"profile": [1.0, 0.0, 1.0], "method": "log_slope"}, "positive"),
        ({"profile": [1.0, 2.0, 3.0, 4.0], "weights": [1.0]}, "4 `weights`"),
        ({"profile": [1.0, 2.0, 3.0, 4.0], "method": "cubic"}, "`method`"),
    ],
)
def test_invalid_profiles_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        topological_complexity_decay(**kwargs)
