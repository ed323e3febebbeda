import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_topo import AdversarialResult, TopologyReport, adversarial_geometry, analyze
from lightning_topo.adversarial import fgsm, macro_f1
from lightning_topo.plotting import plot_adversarial
from tests._models import TinyNet, make_data

LAYERS = ["encoder", "hidden"]


def _loader(n: int = 90, seed: int = 1, batch_size: int = 16) -> DataLoader:
    return DataLoader(make_data(n=n, seed=seed), batch_size=batch_size)


@pytest.fixture(scope="module")
def trained() -> TinyNet:
    """TinyNet fitted to the three shifted Gaussian classes with a plain torch loop (a fraction of a second)."""
    torch.manual_seed(0)
    model = TinyNet()
    x, y = make_data(n=300, seed=0).tensors
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def _same_report(a: TopologyReport, b: TopologyReport) -> None:
    assert a.layers == b.layers
    assert a.n_samples == b.n_samples
    np.testing.assert_equal(a.to_dict(), b.to_dict())  # NaN equals NaN here
    for layer in a.layers:
        assert a.diagrams[layer].allclose(b.diagrams[layer], atol=0.0, rtol=0.0)
    assert a.problems == b.problems


@pytest.mark.parametrize("sample", ["first", "stratified"])
def test_epsilon_zero_report_equals_the_clean_analyze_report(trained, sample):
    kwargs = {"n_samples": 45, "sample": sample, "num_classes": 3}  # 45 crosses a batch boundary
    clean = analyze(trained, _loader(), LAYERS, **kwargs)
    (result,) = adversarial_geometry(trained, _loader(), [0.0], LAYERS, **kwargs)
    assert isinstance(result, AdversarialResult)
    assert result.epsilon == 0.0
    _same_report(result.report, clean)
    assert result.report.class_counts == clean.class_counts
    with torch.no_grad():
        x, y = make_data(n=90, seed=1).tensors
        if sample == "first":
            expected = (trained(x[:45]).argmax(dim=1) == y[:45]).double().mean()
            assert result.accuracy == pytest.approx(float(expected))
    assert len(result.predictions) == 45


def test_the_fgsm_step_equals_a_hand_computation_on_a_linear_model():
    g = torch.Generator().manual_seed(3)
    w, b = torch.randn(3, 4, generator=g), torch.randn(3, generator=g)
    model = nn.Linear(4, 3)
    with torch.no_grad():
        model.weight.copy_(w)
        model.bias.copy_(b)
    x = torch.randn(10, 4, generator=g)
    y = torch.arange(10) % 3
    wn, xn = w.double().numpy(), x.double().numpy()
    logits = xn @ wn.T + b.double().numpy()
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)

    def input_gradient(labels: np.ndarray) -> np.ndarray:
        # d CE / d logits = softmax - one_hot; d logits / d x = W
        grad = (p - np.eye(3)[labels]) @ wn
        assert (np.abs(grad) > 1e-9).all()  # every sign is decided
        return grad

    eps = 0.25
    away = xn + eps * np.sign(input_gradient(y.numpy()))
    towards = xn - eps * np.sign(input_gradient(np.full(10, 2)))
    np.testing.assert_allclose(fgsm(model, x, y, eps).double().numpy(), away, rtol=0, atol=1e-6)
    np.testing.assert_allclose(fgsm(model, x, y, eps, target=2).double().numpy(), towards, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(fgsm(model, x, y, 0.0).numpy(), x.numpy())
    clamped = fgsm(model, x, y, 10.0, clamp=(-1.0, 1.0))
    assert clamped.min() >= -1.0
    assert clamped.max() <= 1.0
    assert model.weight.grad is None  # the parameters got no gradient

    # adversarial_geometry moves the examples by the same step: its input layer is analyze on fgsm(x)
    data = DataLoader(TensorDataset(x, y), batch_size=4)
    _, result = adversarial_geometry(model, data, [0.0, eps], ["input"], n_samples=10)
    by_hand = analyze(model, DataLoader(TensorDataset(torch.from_numpy(away).float(), y)), ["input"], n_samples=10)
    _same_report(result.report, by_hand)


def test_accuracy_falls_monotonically_with_epsilon_on_a_trained_model(trained):
    epsilons = [0.0, 0.1, 0.25, 0.5, 1.0, 2.0]
    results = adversarial_geometry(trained, _loader(n=120), epsilons, LAYERS, n_samples=120)
    accuracy = [r.accuracy for r in results]
    assert [r.epsilon for r in results] == epsilons
    assert accuracy[0] > 0.8
    assert accuracy == sorted(accuracy, reverse=True)
    assert accuracy[-1] < accuracy[0] - 0.4
    assert all(0.0 <= r.macro_f1 <= 1.0 for r in results)
    assert all(r.target_rate is None for r in results)
    assert all(set(r.report.layers) == set(LAYERS) for r in results)


def test_a_targeted_attack_raises_the_fraction_predicted_as_the_target(trained):
    results = adversarial_geometry(trained, _loader(n=120), [0.0, 0.5, 1.5], LAYERS, target=0, n_samples=120)
    rates = [r.target_rate for r in results]
    assert rates[0] == pytest.approx(float((results[0].predictions == 0).double().mean()))
    assert rates[0] < 0.5 < rates[2]
    assert rates[0] < rates[1] < rates[2]


def test_model_mode_requires_grad_and_hooks_are_restored_also_on_error(trained):
    model = TinyNet()
    model.load_state_dict(trained.state_dict())
    model.train()
    model.head.bias.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]

    def hook_count() -> int:
        return sum(len(m._forward_hooks) for m in model.modules())

    before = hook_count()
    adversarial_geometry(model, _loader(), [0.0, 0.3], LAYERS, n_samples=32)
    assert model.training
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert hook_count() == before

    def broken(module: nn.Module, batch: object) -> torch.Tensor:
        raise RuntimeError("bad forward")

    with pytest.raises(RuntimeError, match="bad forward"):
        adversarial_geometry(model, _loader(), [0.3], LAYERS, n_samples=32, forward=broken)
    assert model.training
    assert [p.requires_grad for p in model.parameters()] == flags
    assert hook_count() == before


def test_a_custom_forward_and_label_fn_see_the_perturbed_batch(trained):
    batches = [{"x": x, "target": y} for x, y in _loader()]
    seen = []

    def forward(model: nn.Module, batch: dict) -> torch.Tensor:
        seen.append(batch["x"].detach().clone())
        return model(batch["x"])

    results = adversarial_geometry(
        trained, batches, [0.0, 0.5], LAYERS, n_samples=32, forward=forward, label_fn=lambda b: b["target"]
    )
    assert results[1].accuracy < results[0].accuracy
    first = batches[0]["x"]
    moves = [(s - first).abs().max().item() for s in seen if s.shape == first.shape]
    assert 0.0 in moves  # the clean first batch ...
    assert any(m == pytest.approx(0.5) for m in moves)  # ... and the same batch moved by epsilon


@pytest.mark.parametrize("seed", range(4))
def test_macro_f1_equals_scikit_learn(seed):
    from sklearn.metrics import f1_score

    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 5, (60,), generator=g)
    predictions = torch.randint(0, 6, (60,), generator=g)  # class 5 is only ever predicted
    predictions[:20] = labels[:20]
    expected = f1_score(labels.numpy(), predictions.numpy(), average="macro", zero_division=0)
    assert macro_f1(predictions, labels) == pytest.approx(expected)
    assert macro_f1(labels, labels) == 1.0


def test_plot_adversarial_draws_one_line_per_epsilon_against_depth(trained):
    results = adversarial_geometry(trained, _loader(), [0.0, 0.5], LAYERS, n_samples=32)
    fig = plot_adversarial(results)
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == [f"eps = {r.epsilon:g} (accuracy {r.accuracy:.2f})" for r in results]
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), results[1].report.profile("total_persistence_0"))
    assert ax.get_xlabel() == "layer (depth order)"
    assert ax.get_ylabel() == "total_persistence_0"
    with pytest.raises(ValueError, match="`descriptor`"):
        plot_adversarial(results, "lifespan")
    with pytest.raises(ValueError, match="at least one"):
        plot_adversarial([])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"epsilons": [0.0, -0.1]}, ValueError, "epsilon"),
        ({"epsilons": [float("nan")]}, ValueError, "epsilon"),
        ({"epsilons": []}, ValueError, "at least one epsilon"),
        ({"target": 3}, ValueError, r"`target`.*\[0, 3\)"),
        ({"target": -1}, ValueError, "`target`"),
        ({"clamp": (1.0, 0.0)}, ValueError, "`clamp`"),
        ({"n_sample": 10}, TypeError, "n_samples"),
        ({"maxdim": 7}, ValueError, "`maxdim`"),
        ({"layers": ["encodr"]}, ValueError, "Did you mean 'encoder'"),
    ],
)
def test_bad_arguments_raise_clear_errors(trained, kwargs, error, match):
    call = {"epsilons": [0.1], "layers": LAYERS, **kwargs}
    with pytest.raises(error, match=match):
        adversarial_geometry(trained, _loader(), n_samples=16, **call)


def test_inputs_without_labels_or_with_integer_values_are_refused(trained):
    x, _ = make_data(n=32).tensors
    with pytest.raises(ValueError, match="true labels"):
        adversarial_geometry(trained, DataLoader(TensorDataset(x), batch_size=16), [0.1], LAYERS, n_samples=16)
    ids = torch.zeros(32, 6, dtype=torch.long)
    with pytest.raises(ValueError, match="floating-point inputs"):
        adversarial_geometry(
            trained, DataLoader(TensorDataset(ids, torch.zeros(32, dtype=torch.long))), [0.1], LAYERS, n_samples=16
        )
