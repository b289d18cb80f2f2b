"""Keyframe interpolation: properties over random tracks, and the shapes animators expect."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from anyi2v.shared.curves import sample_keys
from anyi2v.shared.tracks import Keyframe, Track, sample_track

N_FRAMES_MAX = 64
interpolations = st.sampled_from(["constant", "linear", "smooth"])


@st.composite
def tracks(draw: st.DrawFn) -> tuple[Track, int]:
    """A random valid track (keys in random order, sizes changing) and a clip length."""
    n_frames = draw(st.integers(2, N_FRAMES_MAX))
    frames = sorted(draw(st.lists(st.integers(0, n_frames - 1), min_size=1, max_size=8, unique=True)))
    keys = []
    for index, frame in enumerate(frames):
        # The first key's box must overlap the frame; later ones may leave it.
        low, high = (-0.2, 0.8) if index == 0 else (-0.5, 1.5)
        x0, y0 = draw(st.floats(low, high)), draw(st.floats(low, high))
        min_size = 0.25 if index == 0 else 1e-3
        width, height = draw(st.floats(min_size, 0.5)), draw(st.floats(min_size, 0.5))
        keys.append({"frame": frame, "box": [x0, y0, x0 + width, y0 + height], "interpolation": draw(interpolations)})
    keys = draw(st.permutations(keys))
    return Track.model_validate({"id": "t", "keyframes": keys}, strict=False), n_frames


@given(tracks())
def test_passes_exactly_through_every_key(case: tuple[Track, int]) -> None:
    track, n_frames = case
    boxes = sample_track(track, n_frames)
    assert boxes.shape == (n_frames, 4)
    for key in track.keyframes:
        np.testing.assert_allclose(boxes[key.frame], key.box, rtol=0, atol=1e-12)


@given(tracks())
def test_never_nan_and_never_inside_out(case: tuple[Track, int]) -> None:
    track, n_frames = case
    boxes = sample_track(track, n_frames)
    assert np.all(np.isfinite(boxes))
    assert np.all(boxes[:, 2] > boxes[:, 0])
    assert np.all(boxes[:, 3] > boxes[:, 1])


@given(tracks())
def test_constant_before_first_and_after_last_key(case: tuple[Track, int]) -> None:
    track, n_frames = case
    boxes = sample_track(track, n_frames)
    first, last = track.keyframes[0], track.keyframes[-1]
    for frame in range(first.frame):
        np.testing.assert_allclose(boxes[frame], first.box, atol=1e-12)
    for frame in range(last.frame, n_frames):
        np.testing.assert_allclose(boxes[frame], last.box, atol=1e-12)


@given(
    st.lists(st.floats(-10, 10, allow_nan=False), min_size=2, max_size=10),
    st.lists(st.integers(1, 6), min_size=9, max_size=9),
)
def test_smooth_stays_within_neighbouring_keys(values: list[float], gaps: list[int]) -> None:
    key_times = np.concatenate([[0], np.cumsum(gaps[: len(values) - 1])])
    key_values = np.array(values)[:, None]
    times = np.arange(key_times[-1] * 4 + 1) / 4.0  # between the integer frames too
    sampled = sample_keys(key_times, key_values, ["smooth"] * len(values), times)[:, 0]
    segment = np.clip(np.searchsorted(key_times, times, side="right") - 1, 0, len(values) - 2)
    low = np.minimum(key_values[segment, 0], key_values[segment + 1, 0])
    high = np.maximum(key_values[segment, 0], key_values[segment + 1, 0])
    assert np.all(sampled >= low - 1e-12)
    assert np.all(sampled <= high + 1e-12)


def test_smooth_with_monotone_keys_is_monotone() -> None:
    key_times = np.array([0, 3, 9, 15])
    key_values = np.array([[0.0], [0.1], [0.8], [1.0]])
    sampled = sample_keys(key_times, key_values, ["smooth"] * 4, np.arange(16))[:, 0]
    assert np.all(np.diff(sampled) >= 0)


def test_smooth_eases_in_and_out_while_linear_keeps_its_speed() -> None:
    key_times, key_values = np.array([0, 10]), np.array([[0.0], [1.0]])
    smooth = sample_keys(key_times, key_values, ["smooth", "smooth"], np.arange(11))[:, 0]
    linear = sample_keys(key_times, key_values, ["linear", "linear"], np.arange(11))[:, 0]
    np.testing.assert_allclose(np.diff(linear), 0.1)
    steps = np.diff(smooth)
    assert steps[0] < 0.05
    assert steps[-1] < 0.05
    assert steps[5] > 0.1  # faster than linear in the middle
    assert smooth[5] == pytest.approx(0.5)


def test_constant_holds_until_the_next_key_and_modes_mix_per_segment() -> None:
    key_times = np.array([0, 4, 8])
    key_values = np.array([[0.0], [1.0], [3.0]])
    sampled = sample_keys(key_times, key_values, ["constant", "linear", "linear"], np.arange(10))[:, 0]
    np.testing.assert_allclose(sampled, [0, 0, 0, 0, 1, 1.5, 2, 2.5, 3, 3])


def test_box_size_changes_between_keys_keep_the_centre_path() -> None:
    track = Track(
        id="grow",
        keyframes=(
            Keyframe(frame=0, box=(0.4, 0.4, 0.6, 0.6), interpolation="linear"),
            Keyframe(frame=10, box=(0.2, 0.2, 0.8, 0.8)),
        ),
    )
    boxes = sample_track(track, 11)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    np.testing.assert_allclose(centres, 0.5)
    np.testing.assert_allclose(boxes[5], [0.3, 0.3, 0.7, 0.7])


@pytest.mark.parametrize(
    ("times", "values", "modes", "message"),
    [
        ([], np.zeros((0, 1)), [], "at least one key"),
        ([0, 0], np.zeros((2, 1)), ["linear"] * 2, "strictly increasing"),
        ([0, 1], np.zeros((2, 1)), ["linear"], "same length"),
        ([0, 1], np.zeros((2, 1)), ["cubic", "linear"], "unknown interpolation 'cubic'"),
    ],
)
def test_bad_curves_are_refused(times: list[int], values: np.ndarray, modes: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sample_keys(times, values, modes, np.arange(3))  # type: ignore[arg-type]
