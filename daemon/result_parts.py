"""A done job's stored result, read part by part for ``fetch_request``, with a typed error when it is
gone: a folder deleted by hand, a part file missing, a manifest that no longer reads.

The result folder's layout is the worker's (``store.py``): ``manifest.json``, ``shot.json``,
``video.FORMAT`` and ``frames/NNNN.png``. Nothing here trusts the manifest for a file name: the video's
format must be one the protocol names.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from anyi2v.shared.protocol import SubmitRequest

VIDEO_FORMATS: frozenset[str] = frozenset(get_args(SubmitRequest.model_fields["video_format"].annotation))


class ResultGoneError(Exception):
    """The result of a done job is no longer whole on disk; the message names the path. ``gone`` is
    false when a file is there but cannot be read now (permissions): the job is not marked then."""

    def __init__(self, message: str, gone: bool = True) -> None:
        super().__init__(message)
        self.gone = gone


class NoSuchFrameError(Exception):
    """A frame index past the result's frames."""

    def __init__(self, index: int, n_frames: int) -> None:
        super().__init__(f"frame {index} does not exist: the result has {n_frames} frames")
        self.n_frames = n_frames


@dataclass(frozen=True)
class PartFile:
    """One part of a result on disk: its file, its size and the checksum the client checks."""

    path: Path
    size: int
    sha256: str


def locate_part(job_id: str, folder: Path, part: str, index: int) -> PartFile:
    """The file holding ``part`` (``manifest``, ``video``, ``shot``, or frame ``index``) of the result in
    ``folder``. Raises :class:`ResultGoneError` or :class:`NoSuchFrameError`."""
    manifest_path = folder / "manifest.json"
    if not folder.is_dir():
        raise ResultGoneError(f"the result of job {job_id!r} is gone (deleted from {folder}); {_WHAT_TO_DO}")
    manifest_bytes = _read(job_id, manifest_path)
    if part == "manifest":
        return PartFile(manifest_path, len(manifest_bytes), hashlib.sha256(manifest_bytes).hexdigest())
    try:
        manifest: Any = json.loads(manifest_bytes)
        parts = manifest["parts"]
        if part == "video":
            video_format = manifest["video_format"]
            if video_format not in VIDEO_FORMATS:
                raise ValueError(f"unknown video_format {str(video_format)[:40]!r}")
            path, entry = folder / f"video.{video_format}", parts["video"]
        elif part == "shot":
            path, entry = folder / "shot.json", parts["shot"]
        else:
            frames = parts["frames"]
            if index >= len(frames):
                raise NoSuchFrameError(index, len(frames))
            path, entry = folder / "frames" / f"{index:04d}.png", frames[index]
        sha = str(entry["sha256"])
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise ResultGoneError(_damaged(job_id, manifest_path, error)) from None
    try:
        size = path.stat().st_size
    except OSError as error:
        raise _missing(job_id, path, error) from None
    return PartFile(path, size, sha)


def read_chunk(job_id: str, part: PartFile, offset: int, length: int) -> bytes:
    """``length`` bytes of ``part`` from ``offset`` (fewer at its end). Raises :class:`ResultGoneError`."""
    try:
        with part.path.open("rb") as handle:
            handle.seek(min(offset, part.size))
            return handle.read(length)
    except OSError as error:
        raise _missing(job_id, part.path, error) from None


_WHAT_TO_DO = "delete the job and submit the shot again"


def _read(job_id: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise _missing(job_id, path, error) from None


def _missing(job_id: str, path: Path, error: OSError) -> ResultGoneError:
    if isinstance(error, (FileNotFoundError, NotADirectoryError, IsADirectoryError)):
        return ResultGoneError(f"the result of job {job_id!r} is gone ({path} was deleted); {_WHAT_TO_DO}")
    why = error.strerror or str(error)
    return ResultGoneError(f"the result of job {job_id!r} cannot be read ({path}: {why}); check the file", gone=False)


def _damaged(job_id: str, path: Path, error: Exception) -> str:
    why = str(error)[:120] or type(error).__name__
    return f"the result of job {job_id!r} is damaged ({path} does not read: {why}); {_WHAT_TO_DO}"
