"""Sequence models, batches as people write them, structured outputs and torch.compile, on real Trainers."""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections import OrderedDict, namedtuple
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from lightning_topo import TopologyMonitor, TopologyWarning, analyze
from lightning_topo.capture import ActivationCapture, reduce_samples, resolve_layers
from lightning_topo.options import build_options
from tests._models import (
    RecordingLogger,
    TinyCausalLM,
    TinyNet,
    TinyTransformer,
    make_data,
    pad_collate,
    token_data,
    trainer,
)


def _finite(logger: RecordingLogger, prefix: str) -> dict[str, list[float]]:
    values = {k: logger.values(k) for k in logger.logged_keys() if k.startswith(prefix)}
    assert values, f"nothing logged under {prefix}"
    return values


def test_a_padded_transformer_encoder_on_the_nested_tensor_fast_path_is_measured():
    logger = RecordingLogger()
    layers = ["embed", "encoder.layers.0", "encoder.layers.1", "encoder", "head"]
    monitor = TopologyMonitor(layers=layers, n_samples=64)
    trainer(max_epochs=2, logger=logger, callbacks=[monitor]).fit(TinyTransformer(nested=True))
    for layer in layers:
        values = logger.values(f"topo/{layer}/id_twonn")
        assert len(values) == 2, layer
        assert all(math.isfinite(v) for v in values), layer


def test_default_layers_of_a_token_model_leave_out_the_ids_and_the_position_table_with_a_note():
    logger = RecordingLogger()
    with pytest.warns(TopologyWarning) as record:
        trainer(max_epochs=1, logger=logger, callbacks=[TopologyMonitor(n_samples=64)]).fit(TinyTransformer())
    messages = [str(w.message) for w in record]
    assert any("left layer 'positions' out of the default layers: its output has shape (12, 16)" in m for m in messages)
    assert any("left layer 'input' out" in m and "token ids" in m for m in messages)
    keys = logger.logged_keys()
    assert not any(k.startswith(("topo/positions/", "topo/input/")) for k in keys)
    for layer in ("embed", "encoder", "head"):
        assert math.isfinite(logger.values(f"topo/{layer}/id_twonn")[0])


def _analyze(pad_to: int | None, batch_size: int, reduce: str) -> dict[str, dict[str, float]]:
    loader = DataLoader(token_data(), batch_size=batch_size, collate_fn=pad_collate(pad_to))  # type: ignore[arg-type]
    layers = ["embed", "encoder.layers.0", "encoder"]
    return analyze(TinyTransformer(), loader, layers=layers, n_samples=60, reduce=reduce).to_dict()


@pytest.mark.parametrize("reduce", ["token_mean", "first_token", "last_token", "auto"])
def test_the_same_examples_padded_or_batched_differently_give_the_same_numbers(reduce):
    base = _analyze(None, 16, reduce)  # dynamic padding: each batch to its longest sequence
    for other in (_analyze(20, 16, reduce), _analyze(None, 7, reduce)):
        for layer, metrics in base.items():
            assert other[layer] == pytest.approx(metrics, rel=1e-4, abs=1e-6), (reduce, layer)


def test_token_reductions_use_only_the_real_tokens():
    x = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)
    mask = torch.tensor([[True, True, True, False], [False, True, True, True]])  # right and left padding
    assert reduce_samples(x, "token_mean", mask=mask).flatten().tolist() == [1.0, 6.0]
    assert reduce_samples(x, "first_token", mask=mask).flatten().tolist() == [0.0, 5.0]
    assert reduce_samples(x, "last_token", mask=mask).flatten().tolist() == [2.0, 7.0]


class _SeqFirst(nn.Module):
    """Returns a (T, B, D) view of a batch-first representation, as nn.TransformerEncoder(batch_first=False)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(0, 1)


class _Tokens(nn.Module):
    def __init__(self, t: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.t = t
        self.lift = nn.Linear(6, 8 * t)
        self.batch_first = nn.Identity()
        self.seq_first = _SeqFirst()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.batch_first(self.lift(x).reshape(x.shape[0], self.t, 8))
        return self.seq_first(h)


def test_sequence_first_outputs_are_read_along_the_right_axis():
    loader = DataLoader(make_data(n=64), batch_size=16)
    report = analyze(_Tokens(t=5), loader, layers=["batch_first", "seq_first"], n_samples=64)
    assert report.to_dict()["seq_first"] == pytest.approx(report.to_dict()["batch_first"])


def test_a_sequence_as_long_as_the_batch_needs_sequence_dim():
    loader = DataLoader(make_data(n=64), batch_size=16)
    with pytest.raises(ValueError, match=r"sequence length equals the batch size 16.*`sequence_dim=0`"):
        analyze(_Tokens(t=16), loader, layers=["seq_first"], n_samples=64)
    told = analyze(_Tokens(t=16), loader, layers=["seq_first"], n_samples=64, sequence_dim=0)
    # with batches of 8 the (T, B, D) layout is unambiguous: the same examples give the same numbers
    found = analyze(_Tokens(t=16), DataLoader(make_data(n=64), batch_size=8), layers=["seq_first"], n_samples=64)
    assert told.to_dict()["seq_first"] == pytest.approx(found.to_dict()["seq_first"])


# batches -----------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Batch:
    x: torch.Tensor
    y: torch.Tensor


Pair = namedtuple("Pair", ["x", "y"])


class _Wrapped(TinyNet):
    """TinyNet fed with batches of another shape; ``wrap`` turns (x, y) into that shape."""

    def __init__(self, wrap: Any, read: Any) -> None:
        super().__init__()
        self.wrap, self.read = wrap, read

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = self.read(batch)
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def val_dataloader(self) -> DataLoader:
        return DataLoader(make_data(seed=1), batch_size=16, collate_fn=lambda rows: self.wrap(*_stack(rows)))


def _stack(rows: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])


BATCHES = {
    "tuple": (lambda x, y: (x, y), lambda b: b),
    "namedtuple": (lambda x, y: Pair(x, y), lambda b: (b.x, b.y)),
    "dataclass": (lambda x, y: Batch(x, y), lambda b: (b.x, b.y)),
    "hf_dict": (lambda x, y: {"labels": y, "input": x}, lambda b: (b["input"], b["labels"])),
}


@pytest.mark.parametrize("kind", sorted(BATCHES))
def test_batches_as_people_write_them_give_the_input_and_labels(kind):
    wrap, read = BATCHES[kind]
    monitor = TopologyMonitor(layers=["input", "hidden"], n_samples=30, sample="stratified", num_classes=3)
    torch.manual_seed(0)
    trainer(max_epochs=1, callbacks=[monitor], limit_train_batches=0).validate(_Wrapped(wrap, read), verbose=False)
    report = monitor.last_report
    assert report.class_counts == {0: 10, 1: 10, 2: 10}  # the labels were found
    # the input is the features, never the labels (the dict lists "labels" first)
    expected = analyze(TinyNet(), [(x, y) for x, y in _rows_stratified()], layers=["input"], n_samples=30)
    assert report.metrics["input"] == pytest.approx(expected.metrics["input"])


def _rows_stratified() -> list[tuple[torch.Tensor, torch.Tensor]]:
    x, y = make_data(seed=1).tensors
    keep = torch.cat([torch.nonzero(y == c).reshape(-1)[:10] for c in range(3)]).sort().values
    return [(x[keep], y[keep])]


def test_an_unrecognised_batch_says_to_pass_input_fn_once_and_input_fn_fixes_it():
    class Opaque:
        def __init__(self, features: torch.Tensor) -> None:
            self.features = features

    loader = [Opaque(x) for x in make_data().tensors[0].split(16)]
    with pytest.raises(ValueError, match="input_fn"):
        analyze(TinyNet(), loader, n_samples=32)
    report = analyze(TinyNet(), loader, n_samples=32, input_fn=lambda b: b.features, forward=lambda m, b: m(b.features))
    assert math.isfinite(report.metrics["hidden"]["id_twonn"])


def test_labels_must_be_one_per_example():
    monitor = TopologyMonitor(n_samples=32, label_fn=lambda batch: batch[1][:, None].expand(-1, 4))
    with pytest.raises(ValueError, match=r"`label_fn` to return one label per example.*got \(16, 4\)"):
        trainer(max_epochs=1, callbacks=[monitor]).fit(TinyNet())


# structured outputs ------------------------------------------------------------------------------------------
class _ModelOutput(OrderedDict):  # what a Hugging Face model returns: a mapping with attribute access
    def __getattr__(self, name: str) -> Any:
        return self[name]

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(self.values())


@dataclasses.dataclass
class _EncOut:
    loss: torch.Tensor
    hidden: torch.Tensor


OUTPUTS = {
    "dict": lambda h: {"loss": h.sum(), "hidden": h},
    "dataclass": lambda h: _EncOut(h.sum(), h),
    "hf_output": lambda h: _ModelOutput(loss=h.sum(), last_hidden_state=h),
}


@pytest.mark.parametrize("kind", sorted(OUTPUTS))
def test_structured_outputs_leading_with_a_scalar_loss_use_the_per_example_tensor(kind):
    make = OUTPUTS[kind]

    class Structured(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(6, 16)

        def forward(self, x: torch.Tensor) -> Any:
            return make(self.lin(x))

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.block = Structured()

        def forward(self, x: torch.Tensor) -> Any:
            return self.block(x)

    loader = DataLoader(make_data(n=64), batch_size=16)
    with pytest.warns(TopologyWarning, match=f"returns an object of type {type(make(torch.ones(1, 1))).__name__}"):
        report = analyze(Net(), loader, layers=["block", "block.lin", "output"], n_samples=64)
    assert report.metrics["block"] == pytest.approx(report.metrics["block.lin"])
    assert report.metrics["output"] == pytest.approx(report.metrics["block.lin"])


# torch.compile -----------------------------------------------------------------------------------------------
def _fit_values(model: Any, layers: list[str]) -> dict[str, list[float]]:
    logger = RecordingLogger()
    torch.manual_seed(0)
    trainer(max_epochs=2, logger=logger, callbacks=[TopologyMonitor(layers=layers, n_samples=48)]).fit(model)
    return {k: logger.values(k) for k in sorted(logger.logged_keys()) if k.startswith("topo/") and "time" not in k}


@pytest.mark.parametrize("what", ["module", "submodule"])
def test_compiled_models_are_measured_and_equal_the_uncompiled_model(what):
    layers = ["encoder", "hidden", "head"]
    torch.manual_seed(0)
    plain = _fit_values(TinyNet(), layers)
    torch.manual_seed(0)
    model = TinyNet()
    if what == "module":
        model = torch.compile(model, backend="eager")  # dynamo without code generation: fast in a test
    else:
        model.hidden = torch.compile(model.hidden, backend="eager")  # named "hidden._orig_mod" inside
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        compiled = _fit_values(model, layers)
    assert compiled.keys() == plain.keys()
    for key, values in plain.items():
        assert compiled[key] == pytest.approx(values, rel=1e-5, abs=1e-6), key


def test_layer_names_of_a_compiled_submodule_work_with_and_without_orig_mod():
    model = TinyNet()
    model.hidden = torch.compile(model.hidden, backend="eager")
    assert resolve_layers(model, ["hidden", "hidden._orig_mod.0"]) == {"hidden": "hidden", "hidden.0": "hidden.0"}


# language models ---------------------------------------------------------------------------------------------
def test_a_causal_language_model_on_defaults_is_finite_and_its_memory_is_bounded():
    logger = RecordingLogger()
    monitor = TopologyMonitor(n_samples=48)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer(max_epochs=1, logger=logger, limit_train_batches=0, callbacks=[monitor]).validate(
            TinyCausalLM(), verbose=False
        )
    report = monitor.last_report
    assert report.layers == ["embed", "blocks", "lm_head", "output"]  # ids and the position table left out
    for layer in report.layers:
        assert all(math.isfinite(v) for v in report.metrics[layer].values()), layer
    # (B, T, V) logits are reduced per example before they are kept: n x V floats, never n x T x V
    model = TinyCausalLM()
    capture = ActivationCapture(model, {"lm_head": "lm_head"}, build_options(n_samples=48), quota=48)
    capture.start()
    for batch in model.val_dataloader():
        capture.begin_batch(batch)
        model(batch["input_ids"])
        capture.end_batch()
    points = capture.finish()["lm_head"].points
    assert points.shape == (48, 400)
    assert points.numel() * points.element_size() == 48 * 400 * 4  # 75 KiB; flattened it would be 24 x larger


def test_a_token_reduction_leaves_non_sequence_layers_to_the_auto_reduction():
    loader = DataLoader(token_data(), batch_size=16, collate_fn=pad_collate())  # type: ignore[arg-type]
    layers = ["encoder", "head"]
    chosen = analyze(TinyTransformer(), loader, layers=layers, n_samples=48, reduce="first_token").to_dict()
    auto = analyze(TinyTransformer(), loader, layers=layers, n_samples=48).to_dict()
    assert chosen["head"] == pytest.approx(auto["head"])  # (B, 3) logits: one vector per example already
    assert chosen["encoder"] != auto["encoder"]
