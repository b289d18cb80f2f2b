"""The client's checks on what a daemon says about a result, before anything is allocated or written.

A daemon may be wrong or hostile: a manifest that claims a part of 2^50 bytes, a negative size, a
``video_format`` that is a path (``../../x``, ``/etc/x``), more frames than the shot can have, a
fetch reply whose size or checksum differs from the manifest's, a chunk longer than what is left.
:func:`check_manifest` reads a manifest against the protocol (PROTOCOL.md, the manifest) and bounds
every size by what the result's frames can take; :func:`check_chunk` holds each fetch reply to the
part it answers; :func:`inside` keeps every file the client writes in its output folder. Each raises
:class:`UntrustedResultError` with one line naming the field and the reason.

The client never takes a file name from the daemon: the names are its own (``video.mp4``,
``shot.json``, ``frames/NNNN.png``), with a format from the protocol's list.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from anyi2v.shared.errors import Problem, cut_text, json_path, listed_problems
from anyi2v.shared.protocol import FetchReply, Limits

from .result_parts import VIDEO_FORMATS

MAX_MANIFEST_BYTES = 4 * 2**20  # a manifest of 1024 frames is about 120 KB
MAX_SHOT_BYTES = 16 * 2**20  # as a shot file (shared.document.MAX_DOCUMENT_BYTES)
MAX_FRAMES = 1024  # a shot's output.n_frames can be no more
MAX_SIDE = 4096  # nor its output.width or height
_CONTAINER_BYTES = 16 * 2**20  # a video's headers and index, beyond its frames
_PNG_OVERHEAD_BYTES = 2**20  # a PNG's chunks and zlib's framing, beyond twice its pixels


class UntrustedResultError(ValueError):
    """What the daemon said about a result cannot be right; nothing was written because of it."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False, frozen=True)


class _Part(_Strict):
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class _Parts(_Strict):
    video: _Part
    shot: _Part
    frames: list[_Part] = Field(max_length=MAX_FRAMES)


class _Manifest(_Strict):
    job_id: str
    n_frames: int = Field(ge=1, le=MAX_FRAMES)
    width: int = Field(ge=1, le=MAX_SIDE)
    height: int = Field(ge=1, le=MAX_SIDE)
    fps: float = Field(gt=0)
    video_format: str = Field(max_length=200)  # one of VIDEO_FORMATS (checked with a message naming it)
    timings: dict[str, float] = Field(max_length=64)
    parts: _Parts


@dataclass(frozen=True)
class PlannedPart:
    """A part the client will fetch: what to ask for, the file name it gets here, its size and checksum."""

    part: str
    index: int
    name: str  # relative to the output folder, made here
    size: int
    sha256: str


def part_ceiling(part: str, limits: Limits) -> int:
    """The most bytes ``part`` can have on a daemon with ``limits`` (when no manifest says more)."""
    pixels = min(limits.max_pixels, MAX_SIDE * MAX_SIDE)
    frames = min(limits.max_n_frames, MAX_FRAMES)
    return {
        "manifest": MAX_MANIFEST_BYTES,
        "shot": MAX_SHOT_BYTES,
        "frame": _png_bytes(pixels),
        "video": frames * _png_bytes(pixels) + _CONTAINER_BYTES,
    }.get(part, 0)


def check_manifest(data: bytes, job_id: str, limits: Limits) -> dict[str, Any]:
    """The manifest of ``job_id`` read from ``data``, after every check; raises :class:`UntrustedResultError`."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise UntrustedResultError(f"manifest: {len(data)} bytes, more than a manifest can be ({MAX_MANIFEST_BYTES})")
    try:
        document = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise UntrustedResultError(f"manifest: not UTF-8 JSON ({cut_text(str(error), 120)})") from None
    try:
        manifest = _Manifest.model_validate(document)
    except ValidationError as error:
        found = [Problem(json_path(["manifest", *e["loc"]]), e["msg"]) for e in error.errors(include_url=False)]
        raise UntrustedResultError("; ".join(str(problem) for problem in listed_problems(found, 3))) from None
    problems = []
    if manifest.video_format not in VIDEO_FORMATS:
        known = ", ".join(sorted(VIDEO_FORMATS))
        problems.append(f"manifest.video_format: {cut_text(manifest.video_format, 60)!r} is not one of {known}")
    if manifest.job_id != job_id:
        problems.append(f"manifest.job_id: {cut_text(manifest.job_id, 80)!r}, not the job asked for ({job_id!r})")
    if len(manifest.parts.frames) != manifest.n_frames:
        problems.append(f"manifest.parts.frames: {len(manifest.parts.frames)} parts for n_frames {manifest.n_frames}")
    if manifest.n_frames > limits.max_n_frames:
        problems.append(f"manifest.n_frames: {manifest.n_frames}, over the daemon's limit of {limits.max_n_frames}")
    if manifest.width * manifest.height > limits.max_pixels:
        problems.append(f"manifest: {manifest.width}x{manifest.height}, over the daemon's {limits.max_pixels} pixels")
    if not all(math.isfinite(seconds) and seconds >= 0 for seconds in manifest.timings.values()):
        problems.append("manifest.timings: a time that is negative")
    frame_bytes = _png_bytes(manifest.width * manifest.height)
    bounds = [
        ("parts.video", manifest.parts.video, manifest.n_frames * frame_bytes + _CONTAINER_BYTES),
        ("parts.shot", manifest.parts.shot, MAX_SHOT_BYTES),
        *((f"parts.frames[{i}]", part, frame_bytes) for i, part in enumerate(manifest.parts.frames)),
    ]
    problems += [
        f"manifest.{where}.size: {part.size} bytes, more than {bound} for {manifest.width}x{manifest.height}"
        f" x {manifest.n_frames} frames"
        for where, part, bound in bounds
        if part.size > bound
    ]
    if problems:
        raise UntrustedResultError(
            "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        )
    return dict(document)


def planned_parts(manifest: dict[str, Any], frames: bool = True) -> list[PlannedPart]:
    """The parts of a checked manifest, each with the file name this client gives it."""
    parts = manifest["parts"]
    video_format = manifest["video_format"]
    assert video_format in VIDEO_FORMATS  # check_manifest refused any other
    planned = [
        PlannedPart("video", 0, f"video.{video_format}", parts["video"]["size"], parts["video"]["sha256"]),
        PlannedPart("shot", 0, "shot.json", parts["shot"]["size"], parts["shot"]["sha256"]),
    ]
    if frames:
        planned += [
            PlannedPart("frame", index, f"frames/{index:04d}.png", part["size"], part["sha256"])
            for index, part in enumerate(parts["frames"])
        ]
    return planned


def check_chunk(
    reply: FetchReply, chunk: bytes, asked: tuple[str, str, int, int], expected_size: int, expected_sha: str | None,
    limits: Limits,
) -> None:  # fmt: skip
    """Hold a fetch reply to what was asked (``(job_id, part, index, offset)``) and to the part's size
    (``expected_size``: the manifest's, or the most the part can be) and checksum, if known."""
    job_id, part, index, offset = asked
    where = f"{part}" + (f" {index}" if part == "frame" else "")
    if (reply.job_id, reply.part, reply.index, reply.offset) != asked:
        raise UntrustedResultError(
            f"{where}: the reply answers {reply.job_id} {reply.part} {reply.index} at {reply.offset},"
            f" not what was asked ({job_id} {part} {index} at {offset})"
        )
    exact = expected_sha is not None
    if reply.size < 0 or (reply.size != expected_size if exact else reply.size > expected_size):
        said = "the manifest says" if exact else "the part can have at most"
        raise UntrustedResultError(f"{where}: the daemon claims {reply.size} bytes; {said} {expected_size}")
    if exact and reply.sha256 != expected_sha:
        raise UntrustedResultError(f"{where}: the reply's checksum differs from the manifest's")
    left = reply.size - offset
    if len(chunk) > min(left, limits.max_chunk_bytes) or (left > 0 and not chunk):
        raise UntrustedResultError(
            f"{where}: a chunk of {len(chunk)} bytes at offset {offset} of {reply.size}"
            f" (at most {min(left, limits.max_chunk_bytes)}, at least 1)"
        )


def inside(folder: Path, name: str) -> Path:
    """``folder / name``, refused unless it stays inside ``folder`` (links followed)."""
    path = folder / name
    root = folder.resolve()
    if Path(name).is_absolute() or not path.resolve().is_relative_to(root):
        raise UntrustedResultError(f"{path}: outside the output folder {folder}; not written")
    return path


def _png_bytes(pixels: int) -> int:
    return 2 * 3 * pixels + _PNG_OVERHEAD_BYTES


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
