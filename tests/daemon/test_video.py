"""The video output stage: round trips through PyAV, padding, frame rates, metadata, errors, atomic writes."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from anyi2v.daemon.pipeline import video
from anyi2v.daemon.pipeline.video import (
    EncoderUnavailableError,
    VideoError,
    VideoWriter,
    frame_rate,
    select_encoder,
    sidecar_path,
    write_video,
)

RED = (255, 0, 0)
BLUE = (0, 0, 255)
SHOT = json.dumps({"version": 1, "name": "orbit", "frames": 6, "prompt": "a red and blue card, «unicode»"})


def split_frame(height: int = 32, width: int = 48) -> npt.NDArray[np.uint8]:
    """Left half red, right half blue."""
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    frame[:, : width // 2] = RED
    frame[:, width // 2 :] = BLUE
    return frame


def random_frames(count: int, height: int, width: int, seed: int = 0) -> list[npt.NDArray[np.uint8]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def decode(path: Path) -> tuple[list[npt.NDArray[np.uint8]], list[int], Any, dict[str, str]]:
    """Decoded RGB frames, their timestamps, the stream and the container metadata."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        return (
            [frame.to_ndarray(format="rgb24") for frame in frames],
            [frame.pts for frame in frames],
            stream,
            dict(container.metadata),
        )


def stream_facts(path: Path) -> tuple[int, int, Fraction, Fraction]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.width, stream.height, Fraction(stream.average_rate), Fraction(stream.time_base)


def listing(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir())


def comment(metadata: dict[str, str]) -> str | None:
    """The ``comment`` tag, whatever case the container reports its key in (WebM: COMMENT)."""
    return next((value for key, value in metadata.items() if key.lower() == "comment"), None)


# Round trips


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".gif"])
def test_round_trip_keeps_frame_count_size_and_colours(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"clip{suffix}"
    written = write_video([split_frame()] * 6, path, 8)
    assert written == [path]
    frames, _, _, _ = decode(path)
    assert len(frames) == 6
    for frame in (frames[0], frames[-1]):
        assert frame.shape == (32, 48, 3)
        # Away from the edge, where chroma subsampling blends the two halves.
        np.testing.assert_allclose(frame[:, :20].reshape(-1, 3).mean(axis=0), RED, atol=6)
        np.testing.assert_allclose(frame[:, 28:].reshape(-1, 3).mean(axis=0), BLUE, atol=6)


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_yuv_video_is_tagged_bt709(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"clip{suffix}"
    write_video([split_frame()] * 2, path, 8)
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        assert frame.format.name == "yuv420p"
        assert int(frame.colorspace) == int(av.video.reformatter.Colorspace.ITU709)


def test_gradient_gif_is_close_to_the_input(tmp_path: Path) -> None:
    """Per-frame palettes keep a smooth gradient close; FFmpeg's fixed rgb8 palette is off by ~10 levels."""
    rows, columns = np.mgrid[0:64, 0:96]
    frame = np.stack([columns * 2, rows * 3, np.full_like(rows, 128)], axis=-1).astype(np.uint8)
    path = tmp_path / "gradient.gif"
    write_video([frame, frame[::-1].copy()], path, 10)
    frames, _, _, _ = decode(path)
    assert len(frames) == 2
    assert np.abs(frames[0].astype(int) - frame).mean() < 4
    assert np.abs(frames[1].astype(int) - frame[::-1]).mean() < 4


def test_gif_loops_forever(tmp_path: Path) -> None:
    path = tmp_path / "loop.gif"
    write_video([split_frame()] * 3, path, 8)
    data = path.read_bytes()
    # The NETSCAPE2.0 application extension: sub-block 3 bytes, id 1, loop count 0 (little-endian) = forever.
    assert b"NETSCAPE2.0\x03\x01\x00\x00" in data


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_odd_sizes_are_padded_to_even_by_repeating_the_edge(tmp_path: Path, suffix: str) -> None:
    frame = np.zeros((33, 47, 3), dtype=np.uint8)
    frame[:, :24] = RED
    frame[:, 24:] = BLUE
    frame[-3:, :] = (0, 255, 0)  # the last rows are green, so the padded row must be green too
    path = tmp_path / f"odd{suffix}"
    write_video([frame] * 3, path, 8)
    frames, _, _, _ = decode(path)
    assert len(frames) == 3
    decoded = frames[0]
    assert decoded.shape == (34, 48, 3)
    np.testing.assert_allclose(decoded[:30, 44:].reshape(-1, 3).mean(axis=0), BLUE, atol=8)  # incl. padded column
    np.testing.assert_allclose(decoded[33, 4:20].mean(axis=0), (0, 255, 0), atol=25)  # padded row


def test_odd_sizes_are_kept_in_gif_and_png(tmp_path: Path) -> None:
    frame = split_frame(33, 47)
    frames, _, _, _ = decode(write_video([frame] * 2, tmp_path / "odd.gif", 8)[0])
    assert frames[0].shape == (33, 47, 3)
    first = write_video([frame], tmp_path / "odd", 8)[0]
    assert np.asarray(Image.open(first)).shape == (33, 47, 3)


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_fractional_frame_rate_survives(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"slow{suffix}"
    write_video([split_frame()] * 6, path, 7.5)
    _, _, rate, time_base = stream_facts(path)
    assert rate == Fraction(15, 2)
    _, timestamps, _, _ = decode(path)
    seconds = [float(pts * time_base) for pts in timestamps]
    np.testing.assert_allclose(seconds, [index / 7.5 for index in range(6)], atol=1e-3)


def test_ntsc_rate_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "ntsc.mp4"
    write_video([split_frame()] * 3, path, 30000 / 1001)
    assert stream_facts(path)[2] == Fraction(30000, 1001)


def test_gif_timestamps_follow_a_fractional_rate_to_the_hundredth(tmp_path: Path) -> None:
    path = tmp_path / "slow.gif"
    write_video([split_frame()] * 6, path, 7.5)
    _, timestamps, _, _ = decode(path)
    time_base = stream_facts(path)[3]
    seconds = [float(pts * time_base) for pts in timestamps]
    np.testing.assert_allclose(seconds, [index / 7.5 for index in range(6)], atol=0.011)


def test_frame_rate_as_fraction() -> None:
    assert frame_rate(8) == 8
    assert frame_rate(7.5) == Fraction(15, 2)
    assert frame_rate(Fraction(24000, 1001)) == Fraction(24000, 1001)
    assert frame_rate(np.float32(12.5)) == Fraction(25, 2)  # type: ignore[arg-type]


# PNG sequences


def test_png_sequence_is_exactly_the_input(tmp_path: Path) -> None:
    frames = random_frames(5, 17, 23)
    folder = tmp_path / "frames"
    written = write_video(frames, folder, 8, shot_json=SHOT)
    assert written == [folder / f"frame-{index:04d}.png" for index in range(5)] + [folder / "shot.json"]
    assert listing(folder) == [f"frame-{index:04d}.png" for index in range(5)] + ["shot.json"]
    for path, frame in zip(written, frames, strict=False):
        with Image.open(path) as image:
            assert image.mode == "RGB"
            np.testing.assert_array_equal(np.asarray(image), frame)
    assert (folder / "shot.json").read_text(encoding="utf-8") == SHOT
    assert listing(tmp_path) == ["frames"]  # no staging folder left


def test_png_sequence_from_format_argument_and_existing_folder(tmp_path: Path) -> None:
    folder = tmp_path / "out.d"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    write_video(random_frames(4, 8, 8, seed=1), folder, 8, shot_json=SHOT)
    new = random_frames(2, 8, 8, seed=2)
    written = write_video(new, folder, 8, format="png")
    # Frames of the longer earlier sequence and its now-unrelated shot.json go; other files stay.
    assert listing(folder) == ["frame-0000.png", "frame-0001.png", "notes.txt"]
    assert written == [folder / "frame-0000.png", folder / "frame-0001.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(written[1])), new[1])


# Traceability


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_shot_json_is_embedded_and_written_beside(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"clip{suffix}"
    written = write_video([split_frame()] * 2, path, 8, shot_json=SHOT)
    sidecar = tmp_path / f"clip{suffix}.shot.json"
    assert written == [path, sidecar]
    assert sidecar_path(path) == sidecar
    assert sidecar.read_text(encoding="utf-8") == SHOT
    _, _, _, metadata = decode(path)
    assert comment(metadata) == SHOT
    assert json.loads(comment(metadata) or "")["name"] == "orbit"


def test_gif_shot_json_is_in_the_sidecar_only(tmp_path: Path) -> None:
    path = tmp_path / "clip.gif"
    written = write_video([split_frame()] * 2, path, 8, shot_json=SHOT)
    assert written == [path, tmp_path / "clip.gif.shot.json"]
    assert written[1].read_text(encoding="utf-8") == SHOT
    assert comment(decode(path)[3]) is None


def test_a_stale_sidecar_is_removed_when_the_new_clip_has_none(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    write_video([split_frame()] * 2, path, 8, shot_json=SHOT)
    assert write_video([split_frame()] * 2, path, 8) == [path]
    assert listing(tmp_path) == ["clip.mp4"]


# Bad input


@pytest.mark.parametrize(
    ("frames", "match"),
    [
        ([], "no frames"),
        (
            [split_frame(32, 48), split_frame(32, 40)],
            r"frame 1 has shape \(32, 40, 3\) but frame 0 has shape \(32, 48, 3\); all frames must be the same size",
        ),
        ([split_frame().astype(np.float32)], "frame 0 has dtype float32, expected uint8"),
        ([np.zeros((8, 8, 4), dtype=np.uint8)], r"frame 0 has shape \(8, 8, 4\) \(4 channels\)"),
        ([split_frame(), np.zeros((8, 8), dtype=np.uint8)], r"frame 1 has shape \(8, 8\) \(2 dimensions\)"),
        ([[[0, 0, 0]]], "frame 0 is a list, expected a numpy array"),
        ([np.zeros((0, 8, 3), dtype=np.uint8)], "frame 0 is empty"),
        (split_frame(), r"frames array must have shape \(count, height, width, 3\)"),
    ],
)
def test_bad_frames_are_refused(tmp_path: Path, frames: Any, match: str) -> None:
    with pytest.raises(VideoError, match=match):
        write_video(frames, tmp_path / "clip.mp4", 8)
    assert listing(tmp_path) == []


@pytest.mark.parametrize(
    ("fps", "match"),
    [
        (0, "fps must be greater than 0, got 0"),
        (-8.0, "fps must be greater than 0, got -8.0"),
        (float("nan"), "fps must be finite, got nan"),
        (float("inf"), "fps must be finite, got inf"),
        ("8", "fps must be a number, got str"),
        (True, "fps must be a number, got bool"),
    ],
)
def test_bad_frame_rates_are_refused(tmp_path: Path, fps: Any, match: str) -> None:
    with pytest.raises(VideoError, match=match):
        write_video([split_frame()], tmp_path / "clip.mp4", fps)
    assert listing(tmp_path) == []


@pytest.mark.parametrize("name", ["clip.avi", "still.png", "clip.MOV"])
def test_unknown_suffix_lists_the_supported_ones(tmp_path: Path, name: str) -> None:
    with pytest.raises(VideoError, match="unknown video suffix") as caught:
        write_video([split_frame()], tmp_path / name, 8)
    for supported in (".mp4", ".webm", ".gif", "PNG sequence"):
        assert supported in str(caught.value)
    assert listing(tmp_path) == []


def test_suffix_is_case_insensitive_and_format_overrides_it(tmp_path: Path) -> None:
    write_video([split_frame()], tmp_path / "upper.MP4", 8)
    write_video([split_frame()] * 2, tmp_path / "clip.bin", 8, format="webm")
    assert decode(tmp_path / "clip.bin")[2].codec_context.name == "vp9"
    assert decode(tmp_path / "upper.MP4")[2].codec_context.name == "h264"


def test_other_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="unknown video format 'avi'; supported: mp4, webm, gif, png"):
        write_video([split_frame()], tmp_path / "clip", 8, format="avi")
    with pytest.raises(VideoError, match="shot_json is not valid JSON"):
        write_video([split_frame()], tmp_path / "clip.mp4", 8, shot_json="{not json")
    with pytest.raises(VideoError, match="does not exist"):
        write_video([split_frame()], tmp_path / "missing" / "clip.mp4", 8)
    (tmp_path / "folder.mp4").mkdir()
    with pytest.raises(VideoError, match="it is a folder"):
        write_video([split_frame()], tmp_path / "folder.mp4", 8, format="mp4")
    (tmp_path / "file").write_text("x")
    with pytest.raises(VideoError, match="it is a file, not a folder"):
        write_video([split_frame()], tmp_path / "file", 8, format="png")
    assert listing(tmp_path) == ["file", "folder.mp4"]


# Streaming and atomic writes


def test_writer_streams_frames_and_reports_its_state(tmp_path: Path) -> None:
    path = tmp_path / "stream.mp4"
    with VideoWriter(path, 7.5, shot_json=SHOT) as writer:
        before = writer.size
        assert before is None
        for frame in random_frames(4, 24, 40):
            writer.add(frame)
        assert writer.frame_count == 4
        assert writer.size == (40, 24)
    assert writer.paths == [path, tmp_path / "stream.mp4.shot.json"]
    assert writer.close() == writer.paths  # closing again is harmless
    with pytest.raises(VideoError, match="is closed"):
        writer.add(split_frame(24, 40))
    assert len(decode(path)[0]) == 4


def test_a_rejected_frame_leaves_the_writer_usable(tmp_path: Path) -> None:
    path = tmp_path / "clip.webm"
    writer = VideoWriter(path, 8)
    writer.add(split_frame())
    with pytest.raises(VideoError, match="frame 1 has dtype"):
        writer.add(split_frame().astype(np.int16))
    writer.add(split_frame())
    assert writer.close() == [path]
    assert len(decode(path)[0]) == 2


@pytest.mark.parametrize("name", ["clip.mp4", "clip.gif", "frames"])
def test_closing_without_frames_writes_nothing(tmp_path: Path, name: str) -> None:
    with pytest.raises(VideoError, match="no frames to write"), VideoWriter(tmp_path / name, 8, shot_json=SHOT):
        pass
    assert listing(tmp_path) == []


@pytest.mark.parametrize("name", ["clip.mp4", "clip.webm", "clip.gif", "frames"])
def test_a_failed_write_leaves_the_existing_clip_untouched(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    write_video([split_frame()] * 3, path, 8, shot_json=SHOT)
    before = {entry: entry.read_bytes() for entry in tmp_path.rglob("*") if entry.is_file()}
    assert before

    def second_frame_is_smaller() -> None:
        with VideoWriter(path, 8) as writer:
            writer.add(split_frame())
            writer.add(split_frame(16, 16))

    with pytest.raises(VideoError, match=r"frame 1 has shape \(16, 16, 3\)"):
        second_frame_is_smaller()

    after = {entry: entry.read_bytes() for entry in tmp_path.rglob("*") if entry.is_file()}
    assert after == before  # same files, same bytes, no temporary left


def test_a_crash_in_the_frame_source_leaves_no_trace(tmp_path: Path) -> None:
    def frames() -> Iterator[npt.NDArray[np.uint8]]:
        yield split_frame()
        yield split_frame()
        raise RuntimeError("the sampler died")

    path = tmp_path / "clip.mp4"
    path.write_bytes(b"the good old clip")
    with pytest.raises(RuntimeError, match="the sampler died"):
        write_video(frames(), path, 8, shot_json=SHOT)
    assert listing(tmp_path) == ["clip.mp4"]
    assert path.read_bytes() == b"the good old clip"


def test_a_successful_write_replaces_the_old_file_with_normal_permissions(tmp_path: Path) -> None:
    path = tmp_path / "clip.gif"
    path.write_bytes(b"old")
    reference = tmp_path / "reference"
    reference.write_bytes(b"")
    write_video([split_frame()] * 2, path, 8)
    assert path.read_bytes().startswith(b"GIF89a")
    assert os.stat(path).st_mode == os.stat(reference).st_mode  # not tempfile's 0o600


# Encoder choice


def test_encoders_of_this_build() -> None:
    assert select_encoder("mp4") == ("libx264", "yuv420p")
    assert select_encoder("webm") == ("libvpx-vp9", "yuv420p")
    assert select_encoder("gif") == ("gif", "pal8")


def test_falls_back_to_the_next_encoder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(video.ENCODERS, "mp4", ("no-such-h264", "libx264"))
    path = tmp_path / "clip.mp4"
    write_video([split_frame()] * 2, path, 8)
    assert decode(path)[2].codec_context.name == "h264"


def test_a_missing_encoder_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(video.ENCODERS, "mp4", ("no-such-h264",))
    with pytest.raises(EncoderUnavailableError, match="no-such-h264 with yuv420p: not in this FFmpeg build"):
        write_video([split_frame()], tmp_path / "clip.mp4", 8)
    assert listing(tmp_path) == []
