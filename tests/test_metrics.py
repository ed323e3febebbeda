"""The torchmetrics metrics against independent computations (ripser.py, scikit-dimension) on the concatenated
batches, and their argument checks."""

import numpy as np
import pytest
import ripser
import skdim
import torch
from scipy.spatial.distance import pdist, squareform

from lightning_topo.metrics import IntrinsicDimension, PersistenceDescriptors


def _batches(seed: int = 0, n: int = 4) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(40, 5, generator=g, dtype=torch.float64) for _ in range(n)]


def test_persistence_descriptors_equal_ripser_on_the_concatenated_batches():
    batches = _batches()
    metric = PersistenceDescriptors(maxdim=1, prefix="val/")
    for b in batches:
        metric.update(b)
    out = {k: float(v) for k, v in metric.compute().items()}
    x = torch.cat(batches).numpy()
    d = squareform(pdist(x))
    d /= np.quantile(d[np.triu_indices(len(d), 1)], 0.9)
    dgms = ripser.ripser(d, maxdim=1, distance_matrix=True)["dgms"]
    for q, dgm in enumerate(dgms):
        finite = dgm[np.isfinite(dgm[:, 1])]
        life = finite[:, 1] - finite[:, 0]
        life = life[life > 0]
        # giotto-ph and ripser.py reduce in float32: agreement to float32 precision
        assert out[f"val/total_persistence_{q}"] == pytest.approx(life.sum(), rel=1e-5)
        assert out[f"val/betti_{q}"] == ((dgm[:, 0] <= 0.2) & (dgm[:, 1] > 0.2)).sum()
        p = life / life.sum()
        assert out[f"val/entropy_{q}"] == pytest.approx(-(p * np.log2(p)).sum() / np.log2(len(p)), rel=1e-4)
    # the metric returns float32 tensors (as torchmetrics does): agreement to float32 precision
    assert out["val/id_twonn"] == pytest.approx(skdim.id.TwoNN(discard_fraction=0.1).fit(x).dimension_, rel=1e-6)


def test_intrinsic_dimension_equals_scikit_dimension_and_caps_points():
    g = torch.Generator().manual_seed(1)
    batches = [torch.rand(100, 3, generator=g, dtype=torch.float64) for _ in range(5)]
    x = torch.cat(batches).numpy()
    metric = IntrinsicDimension("mle")
    for b in batches:
        metric.update(b)
    # ours averages MacKay-Ghahramani MLE over k = 10..20
    reference = np.mean([skdim.id.MLE().fit(x, n_neighbors=k, comb="mle").dimension_ for k in range(10, 21)])
    assert float(metric.compute()["id_mle"]) == pytest.approx(reference, rel=1e-6)
    capped = IntrinsicDimension("twonn", max_points=200, seed=3)
    for b in batches:
        capped.update(b)
    idx = torch.randperm(500, generator=torch.Generator().manual_seed(3))[:200].sort().values.numpy()
    reference = skdim.id.TwoNN(discard_fraction=0.1).fit(x[idx]).dimension_
    assert float(capped.compute()["id_twonn"]) == pytest.approx(reference, rel=1e-6)
    capped.reset()
    assert capped.cloud == []


def test_metrics_validate_their_arguments_as_the_callback_does():
    from lightning_topo import TopologyMonitor

    with pytest.raises(ValueError, match="`method`"):
        IntrinsicDimension("pca")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`max_points`"):
        PersistenceDescriptors(max_points=1)
    with pytest.raises(ValueError, match="batch dimension"):
        IntrinsicDimension().update(torch.tensor(1.0))
    for kwargs in ({"maxdim": 4}, {"normalize": "std"}, {"descriptors": ["curvature"]}):
        with pytest.raises(ValueError, match=r"^Expected `") as ours:
            PersistenceDescriptors(**kwargs)
        with pytest.raises(ValueError, match=r"^Expected `") as callbacks:
            TopologyMonitor(**kwargs)
        assert str(ours.value) == str(callbacks.value)
