"""Layer aliases become parts of ``topo/{layer}/{descriptor}`` keys, so a ``/`` in one is refused up front."""

import pytest
from torch import nn

from lightning_topo.capture import resolve_layers


def test_an_alias_with_a_slash_is_refused_with_a_suggestion():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2))
    with pytest.raises(ValueError, match=r"Expected layer aliases without '/' .* but got \['enc/1'\].*'0': 'enc_1'"):
        resolve_layers(model, {"0": "enc/1", "2": "head"})
    assert resolve_layers(model, {"0": "enc_1", "2": "head"}) == {"0": "enc_1", "2": "head"}


def test_a_module_name_with_a_slash_needs_an_alias():
    model = nn.ModuleDict({"a/b": nn.Linear(2, 2)})
    with pytest.raises(ValueError, match=r"but got \['a/b'\]"):
        resolve_layers(model, ["a/b"])
    assert resolve_layers(model, {"a/b": "a_b"}) == {"a/b": "a_b"}
