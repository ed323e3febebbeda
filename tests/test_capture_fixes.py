"""Regressions of the activation capture: memory of kept feature maps, variable shapes, 1-d conv outputs, masks."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from lightning_topo.capture import ActivationCapture, channels_first_1d, reduce_samples
from lightning_topo.options import build_options


def _run(capture: ActivationCapture, model: nn.Module, batches: list[Any]) -> None:
    capture.start()
    with torch.no_grad():
        for batch in batches:
            capture.begin_batch(batch)
            model(batch if isinstance(batch, torch.Tensor) else batch[0])
            capture.end_batch()


def test_kept_feature_maps_hold_only_the_kept_examples_not_the_whole_batch():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1))
    capture = ActivationCapture(model, {"0": "conv"}, build_options(n_samples=64, cubical_samples=2), quota=64)
    _run(capture, model, [torch.rand(64, 1, 8, 8)])
    (kept,) = capture.volumes["conv"]
    assert kept.shape == (2, 4, 8, 8)
    assert kept.untyped_storage().nbytes() == kept.numel() * kept.element_size()  # 2 maps, not 64
    capture.stop()


def test_feature_maps_of_another_size_in_a_later_batch_are_left_out_with_a_warning_never_an_error():
    from lightning_topo import analyze
    from tests._models import SmallCNN

    g = torch.Generator().manual_seed(0)
    batches = [(torch.rand(4, 1, 12, 12, generator=g), torch.zeros(4, dtype=torch.long)) for _ in range(2)]
    batches.insert(1, (torch.rand(4, 1, 10, 10, generator=g), torch.zeros(4, dtype=torch.long)))
    with pytest.warns(UserWarning, match=r"feature maps have shape \(6, 10, 10\) in this batch but \(6, 12, 12\)"):
        report = analyze(
            SmallCNN(), batches, layers=["conv1"], n_samples=12, cubical_samples=8, maxdim=0, descriptors=["betti"]
        )
    assert math.isfinite(report.metrics["conv1"]["cubical_complexity"])
    assert math.isfinite(report.metrics["conv1"]["betti_0"])


def test_ddp_merge_keeps_the_feature_maps_of_the_first_shape_only():
    from lightning_topo.monitor.ddp import merge_parts

    points = torch.randn(4, 3)
    parts = [
        (points, None, {}, torch.rand(2, 6, 12, 12)),
        (points, None, {}, torch.rand(2, 6, 10, 10)),
        (points, None, {}, torch.rand(1, 6, 12, 12)),
    ]
    with pytest.warns(UserWarning, match="different shapes"):
        merged = merge_parts(parts)
    assert merged.points is not None
    assert merged.points.shape == (12, 3)
    assert merged.volumes is not None
    assert merged.volumes.shape == (3, 6, 12, 12)
    assert not merged.problems


class _Conv1dNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv1d(3, 8, 3, padding=1)
        self.norm = nn.BatchNorm1d(8)
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.conv(x)).mean(dim=2))


def test_auto_averages_a_conv1d_output_over_its_length_not_over_its_channels():
    model = _Conv1dNet().eval()
    x = torch.randn(16, 3, 20, generator=torch.Generator().manual_seed(1))
    capture = ActivationCapture(model, {"conv": "conv", "norm": "norm"}, build_options(n_samples=16), quota=16)
    _run(capture, model, [x])
    samples = capture.finish()
    with torch.no_grad():
        conv = model.conv(x)
        norm = model.norm(conv)
    assert samples["conv"].points is not None
    assert samples["norm"].points is not None
    torch.testing.assert_close(samples["conv"].points, conv.mean(dim=2))
    torch.testing.assert_close(samples["norm"].points, norm.mean(dim=2))
    torch.testing.assert_close(reduce_samples(conv, "auto", channels_first=True), conv.mean(dim=2))


def test_a_conv1d_output_with_as_many_channels_as_examples_is_captured_not_an_error():
    model = _Conv1dNet().eval()
    x = torch.randn(8, 3, 20, generator=torch.Generator().manual_seed(1))  # 8 channels, batches of 8
    capture = ActivationCapture(model, {"conv": "conv", "norm": "norm"}, build_options(n_samples=16), quota=16)
    _run(capture, model, [x, x + 1.0])
    samples = capture.finish()
    with torch.no_grad():
        expected = torch.cat([model.conv(x).mean(dim=2), model.conv(x + 1.0).mean(dim=2)])
    assert samples["conv"].points is not None
    torch.testing.assert_close(samples["conv"].points, expected)


def test_a_sequential_conv1d_block_is_averaged_over_its_length_like_the_conv1d_itself():
    """``Sequential(Conv1d, BatchNorm1d, ReLU)`` outputs ``(B, C, L)``: averaged over L, not over its channels."""
    block = nn.Sequential(nn.Conv1d(3, 6, 3), nn.BatchNorm1d(6), nn.ReLU(), nn.Dropout(0.1))
    model = nn.Sequential(block, nn.Flatten(), nn.Linear(6 * 18, 2)).eval()
    x = torch.randn(16, 3, 20, generator=torch.Generator().manual_seed(1))
    capture = ActivationCapture(model, {"0": "block"}, build_options(n_samples=16), quota=16)
    _run(capture, model, [x])
    samples = capture.finish()
    assert samples["block"].points is not None
    with torch.no_grad():
        torch.testing.assert_close(samples["block"].points, block(x).mean(dim=2))
    assert not channels_first_1d(nn.Sequential(nn.Conv1d(3, 6, 3), nn.Flatten()))
    assert not channels_first_1d(nn.Sequential(nn.ReLU()))


def test_an_ambiguous_default_sequence_layer_is_left_out_with_a_note_and_a_named_one_raises_at_finish():
    """(B, B, D) in every batch of the sample: no batch tells the layout."""
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    x = torch.randn(4, 4, 4)  # (B, T, D) with T == B
    capture = ActivationCapture(model, {"0": "0", "1": "1"}, build_options(n_samples=4), quota=4, optional=["0"])
    _run(capture, model, [x])  # no error inside the forward pass
    with pytest.raises(ValueError, match=r"in every batch of the sample.*sequence_dim"):
        capture.finish()
    capture.stop()
    capture = ActivationCapture(model, {"0": "0"}, build_options(n_samples=4), quota=4, optional=["0"])
    _run(capture, model, [x])
    samples = capture.finish()
    assert "0" not in samples
    assert "cannot tell which dimension holds the examples" in capture.skipped["0"]


@pytest.mark.parametrize("sequence_first", [False, True])
def test_a_first_batch_padded_to_the_batch_size_is_read_along_the_axis_a_later_batch_shows(sequence_first):
    """Dynamic padding: the first batch is (B, B, D) by chance; the layer is neither dropped nor an error, and its
    rows are those the explicit ``sequence_dim`` gives."""
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(6, 6, 4, generator=g), torch.randn(6, 9, 4, generator=g)]  # (B, T, D): T == B, then not
    model = nn.Sequential(nn.Linear(4, 5), _SeqFirst()) if sequence_first else nn.Sequential(nn.Linear(4, 5))
    layer = "1" if sequence_first else "0"
    got = {}
    for optional, told in ((["hidden"], None), ([], None), ([], 0 if sequence_first else 1)):
        capture = ActivationCapture(
            model, {layer: "hidden"}, build_options(n_samples=12, sequence_dim=told), quota=12, optional=optional
        )
        _run(capture, model, batches)
        got[(tuple(optional), told)] = capture.finish()["hidden"].points
    with torch.no_grad():
        expected = torch.cat([model[0](b).mean(dim=1) for b in batches])
    for points in got.values():
        assert points is not None
        torch.testing.assert_close(points, expected)


class _SeqFirst(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(0, 1)


def test_an_attention_mask_that_is_not_b_by_t_is_ignored_with_one_note_naming_its_shape():
    model = nn.Sequential(nn.Linear(4, 4))
    g = torch.Generator().manual_seed(0)
    batches = [{"x": torch.randn(3, 5, 4, generator=g), "attention_mask": torch.ones(3, 1, 5, 5)} for _ in range(2)]
    notes: list[str] = []
    capture = ActivationCapture(
        model, {"0": "0"}, build_options(n_samples=6), quota=6, note=lambda key, message: notes.append(message)
    )
    capture.start()
    with torch.no_grad():
        for batch in batches:
            capture.begin_batch(batch)
            model(batch["x"])
            capture.end_batch()
    samples = capture.finish()
    with torch.no_grad():
        expected = torch.cat([model(b["x"]).mean(dim=1) for b in batches])
    torch.testing.assert_close(samples["0"].points, expected)
    mask_notes = [n for n in notes if "attention_mask" in n]
    assert len(set(mask_notes)) == 1
    assert "shape (3, 1, 5, 5)" in mask_notes[0]


def test_a_mask_fn_returning_a_wrong_shape_raises_naming_the_shape_not_the_values():
    options = build_options(n_samples=6, mask_fn=lambda batch: torch.ones(3, 1, 5, 5))
    capture = ActivationCapture(nn.Sequential(nn.Linear(4, 4)), {"0": "0"}, options, quota=6)
    capture.start()
    with pytest.raises(ValueError, match=r"Expected `mask_fn` to return a \(B, T\) padding mask but got shape \(3, 1"):
        capture.begin_batch({"x": torch.randn(3, 5, 4)})
    capture.stop()


def test_a_layer_returning_a_tuple_of_a_nested_tensor_is_measured_with_a_note_not_a_crash():
    """``self_attn`` of an encoder on the nested-tensor path returns ``(NestedTensor, None)``: building the note
    read the nested tensor's shape and stopped the run."""
    from torch.utils.data import DataLoader

    from lightning_topo import TopologyWarning, analyze
    from tests._models import TinyTransformer, pad_collate, token_data

    loader = DataLoader(token_data(), batch_size=16, collate_fn=pad_collate(None))  # type: ignore[arg-type]
    layer = "encoder.layers.0.self_attn"
    with pytest.warns(TopologyWarning, match="a nested tensor of 16 padded sequences"):
        found = analyze(TinyTransformer(nested=True), loader, layers=[layer], n_samples=48)
    chosen = analyze(
        TinyTransformer(nested=True), loader, layers=[layer], n_samples=48, output_transform=lambda o: o[0]
    )
    assert math.isfinite(found.metrics[layer]["id_twonn"])
    assert found.metrics[layer] == pytest.approx(chosen.metrics[layer])


def test_an_error_while_capturing_a_layer_is_a_problem_of_that_layer_not_of_the_forward_pass():
    def broken(output: Any) -> torch.Tensor:
        raise KeyError("logits")

    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    options = build_options(n_samples=8, output_transform=broken)
    capture = ActivationCapture(model, {"0": "first", "1": "second"}, options, quota=8)
    _run(capture, model, [torch.randn(8, 4)])  # the model's forward pass goes on
    samples = capture.finish()
    assert samples["first"].points is None
    assert "could not be captured (KeyError: 'logits')" in samples["first"].problems["capture"]


def test_recognising_the_models_output_keeps_no_layer_output_alive_and_ignores_structured_returns():
    import weakref

    class Net(nn.Module):
        def __init__(self, pair: bool) -> None:
            super().__init__()
            self.pair = pair
            self.a, self.b, self.c = nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> Any:
            h = self.b(self.a(x))
            logits = self.c(h)
            return (h, logits) if self.pair else logits

    seen: dict[str, Any] = {}
    model = Net(pair=False)
    for name in ("a", "b"):
        getattr(model, name).register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, weakref.ref(o)))
    capture = ActivationCapture(model, {"a": "a", "b": "b", "c": "c"}, build_options(n_samples=8), quota=8)
    capture.start()
    capture.begin_batch(torch.randn(8, 4))
    with torch.no_grad():
        model(torch.randn(8, 4))
    assert seen["a"]() is None  # freed during the forward pass, as without the capture
    assert seen["b"]() is None
    capture.end_batch()
    assert capture.finish()["c"].is_output
    pair = Net(pair=True)
    capture = ActivationCapture(pair, {"a": "a", "b": "b", "c": "c"}, build_options(n_samples=8), quota=8)
    _run(capture, pair, [torch.randn(8, 4)])
    assert not any(s.is_output for s in capture.finish().values())  # which of (h, logits) is "the output"?


def test_a_float_input_as_long_as_the_batch_is_read_batch_first():
    """The batch size is read from the input: a (B, B, D) input is never ambiguous."""
    model = nn.Sequential(nn.Linear(4, 3))
    x = torch.randn(4, 4, 4, generator=torch.Generator().manual_seed(0))
    capture = ActivationCapture(model, {"input": "input"}, build_options(n_samples=4), quota=4)
    _run(capture, model, [x])
    points = capture.finish()["input"].points
    assert points is not None
    torch.testing.assert_close(points, x.reshape(4, -1))


def test_stratified_sampling_says_when_labels_exceed_num_classes():
    notes: list[str] = []
    model = nn.Sequential(nn.Linear(4, 3))
    options = build_options(n_samples=20, sample="stratified", num_classes=3)
    capture = ActivationCapture(model, {"0": "a"}, options, quota=20, note=lambda key, message: notes.append(message))
    y = torch.arange(40) % 5  # five classes, num_classes=3
    _run(capture, model, [(torch.randn(40, 4), y)])
    assert len(notes) == 1
    assert "met labels [3, 4] outside 0..2" in notes[0]


def test_the_callback_measures_an_undecidable_named_sequence_layer_as_nan_with_a_warning_not_an_error():
    """In a training run (and under DDP, where one rank raising would leave the others waiting) a layout no batch
    tells is a problem of the layer, never the end of the run."""
    from lightning_topo import TopologyMonitor, TopologyWarning
    from tests._models import TinyNet, trainer

    class Tokens(TinyNet):
        def __init__(self) -> None:
            super().__init__()
            self.tokens = nn.Identity()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.hidden(self.encoder(x))  # (B, 16), batches of 16: (B, 16, 1) is (B, B, 1)
            return self.head(self.tokens(h.unsqueeze(-1)).squeeze(-1))

    monitor = TopologyMonitor(layers=["tokens", "hidden"], n_samples=32)
    with pytest.warns(TopologyWarning, match="layer 'tokens'.*cannot tell which dimension holds the examples"):
        trainer(max_epochs=1, callbacks=[monitor]).fit(Tokens())
    assert monitor.last_report is not None
    assert math.isnan(monitor.last_report.metrics["tokens"]["id_twonn"])
    assert math.isfinite(monitor.last_report.metrics["hidden"]["id_twonn"])
