"""The command line refuses epoch counts that would not train (0) or train forever (-1, Lightning's max_epochs)."""

from __future__ import annotations

import pytest

from lightning_topo.cli import parser


@pytest.mark.parametrize("epochs", ["0", "-1", "two", "1.5"])
def test_demo_refuses_an_epoch_count_that_is_not_a_positive_integer(epochs, capsys):
    with pytest.raises(SystemExit) as info:
        parser().parse_args(["demo", "--epochs", epochs])
    assert info.value.code == 2
    assert f"Expected a whole number >= 1 but got {epochs!r}" in capsys.readouterr().err


def test_demo_takes_a_positive_epoch_count():
    assert parser().parse_args(["demo", "--epochs", "3"]).epochs == 3
    assert parser().parse_args(["demo"]).epochs == 10
