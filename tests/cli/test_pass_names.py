"""``anyi2v render --pass`` offers the condition kinds' names (``shared.modalities``) and reads the older
ones as them."""

from __future__ import annotations

import argparse

import pytest

from anyi2v.cli import build_parser
from anyi2v.shared.modalities import MODALITY_ALIASES, SCENE_MODALITIES


def _pass_option() -> argparse.Action:
    render = next(
        action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction)
    ).choices["render"]
    return next(action for action in render._actions if action.dest == "render_pass")


def test_the_pass_choices_are_the_scene_kinds() -> None:
    assert tuple(_pass_option().choices or ()) == SCENE_MODALITIES


@pytest.mark.parametrize(("old", "new"), sorted(MODALITY_ALIASES.items()))
def test_an_old_name_is_read_as_the_pass_of_the_same_name(old: str, new: str) -> None:
    arguments = build_parser().parse_args(["render", "car.glb", "--out", "car.png", "--pass", old])
    assert arguments.render_pass == new


def test_an_unknown_pass_lists_the_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["render", "car.glb", "--out", "car.png", "--pass", "edge"])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "edge" in error
    for name in SCENE_MODALITIES:
        assert name in error
