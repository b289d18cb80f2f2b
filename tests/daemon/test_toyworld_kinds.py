"""The toy world names its condition renders as a shot's condition kinds: one vocabulary."""

from __future__ import annotations

from anyi2v.daemon.toyworld.dataset import MODALITIES as TOY_MODALITIES
from anyi2v.daemon.toyworld.evaluate import held_out_shots
from anyi2v.shared.modalities import SCENE_MODALITIES


def test_the_toy_worlds_renders_are_scene_kinds() -> None:
    assert set(TOY_MODALITIES) <= set(SCENE_MODALITIES)


def test_held_out_shots_name_their_condition_as_the_render_that_made_it() -> None:
    shots = held_out_shots(len(TOY_MODALITIES), size=64, frames=2, steps=1)
    assert [held.shot.conditions[0].modality for held in shots] == list(TOY_MODALITIES)
