"""Toy-world scenes and the tokenizer of their captions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anyi2v.daemon.toyworld.scenes import (
    BACKGROUNDS,
    COLOURS,
    FRAMES,
    MAX_OBJECTS,
    MODALITY_PHRASES,
    SHAPE_WORDS,
    sample_scene,
    vocabulary,
)
from anyi2v.daemon.toyworld.tokenizer import write_tokenizer

SEEDS = range(300)


def test_a_seed_always_gives_the_same_scene_and_seeds_differ() -> None:
    first, again, other = sample_scene(11), sample_scene(11), sample_scene(12)
    assert first.caption() == again.caption()
    for a, b in zip(first.objects, again.objects, strict=True):
        np.testing.assert_array_equal(a.positions, b.positions)
        np.testing.assert_array_equal(a.rotations, b.rotations)
    np.testing.assert_array_equal(first.eyes, again.eyes)
    assert first.caption() != other.caption() or not np.array_equal(
        first.objects[0].positions, other.objects[0].positions
    )


def test_objects_move_smoothly_inside_the_view_and_stay_rigid() -> None:
    moved = 0
    for seed in range(60):
        scene = sample_scene(seed)
        assert 1 <= len(scene.objects) <= MAX_OBJECTS
        assert scene.eyes.shape == scene.targets.shape == (FRAMES, 3)
        for thing in scene.objects:
            assert thing.positions.shape == (FRAMES, 3)
            assert np.all(np.abs(thing.positions) <= np.array([1.6, 1.2, 0.9]) + 1e-9)
            steps = np.linalg.norm(np.diff(thing.positions, axis=0), axis=1)
            assert steps.max() < 0.5  # no jumps between frames
            moved += bool(steps.sum() > 0.3)
            rotations = thing.rotations
            np.testing.assert_allclose(
                rotations @ rotations.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (FRAMES, 3, 3)), atol=1e-9
            )
            np.testing.assert_allclose(np.linalg.det(rotations), 1.0, atol=1e-9)
            assert np.all(thing.scales > 0.5)
            assert np.all(thing.scales < 1.6)
    assert moved > 40  # most clips have motion


def test_captions_use_the_grammar_and_cover_every_attribute() -> None:
    words = set(vocabulary())
    kinds, colours, backgrounds = set(), set(), set()
    for seed in SEEDS:
        scene = sample_scene(seed)
        for modality in (None, *MODALITY_PHRASES):
            caption = scene.caption(modality)
            assert set(caption.replace(",", "").split()) <= words, caption
        assert "background" in scene.caption()
        assert "background" not in scene.caption("depth")
        kinds |= {o.kind for o in scene.objects}
        colours |= {o.colour for o in scene.objects}
        backgrounds.add(scene.background.kind)
    assert kinds == set(SHAPE_WORDS)
    assert colours == set(COLOURS)
    assert backgrounds == set(BACKGROUNDS)


def test_every_caption_word_is_one_token(tmp_path: Path) -> None:
    tokenizer = write_tokenizer(tmp_path, vocabulary())
    assert (tmp_path / "vocab.json").is_file()
    assert (tmp_path / "merges.txt").is_file()
    for word in vocabulary():
        ids = tokenizer(word, add_special_tokens=False).input_ids
        assert tokenizer.convert_ids_to_tokens(ids) == [word + "</w>"]
    captions = {sample_scene(seed).caption() for seed in range(20)}
    encoded = {tuple(tokenizer(c, padding="max_length").input_ids) for c in captions}
    assert len(encoded) == len(captions)
    assert all(len(ids) == 77 for ids in encoded)
    unknown = tokenizer("a zebra", add_special_tokens=False).input_ids
    assert tokenizer.convert_ids_to_tokens(unknown) == ["a</w>", "z", "e", "b", "r", "a</w>"]
    with pytest.raises(ValueError, match="outside"):
        write_tokenizer(tmp_path / "bad", ["naïve"])


def test_backgrounds_draw_every_pattern_in_its_colours_and_slide_with_a_pan() -> None:
    import torch

    from anyi2v.daemon.toyworld.backgrounds import background
    from anyi2v.daemon.toyworld.scenes import Background

    shifts = torch.tensor([[0.0, 0.0], [0.15, -0.1]])
    for kind in BACKGROUNDS:
        spec = Background(kind, "red", (1.0, 0.0, 0.0), (0.0, 0.0, 1.0), 0.4, 3.0, 7)
        image = background(spec, shifts, 24, 32)
        assert image.shape == (2, 24, 32, 3)
        assert float(image.min()) >= 0.0
        assert float(image.max()) <= 1.0
        assert float(image[..., 1].abs().max()) == 0.0  # a mix of the two colours only
        if kind == "solid":
            assert bool((image == image[0, 0, 0]).all())
        else:
            assert float(image[..., 2].std()) > 0.05  # a pattern, not a flat colour
            if kind != "gradient":  # a gradient is normalized per frame, the patterns slide
                assert not torch.equal(image[0], image[1])


def test_a_one_frame_scene_is_a_still_starting_state() -> None:
    scene = sample_scene(5, frames=1)
    assert scene.frames == 1
    assert all(thing.positions.shape == (1, 3) for thing in scene.objects)
    assert scene.caption() == sample_scene(5, frames=1).caption()
