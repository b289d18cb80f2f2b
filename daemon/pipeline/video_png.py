"""A clip as a folder of PNG frames: ``frame-0000.png``, ``frame-0001.png``, ... (Pillow, lossless)
and the shot JSON as ``shot.json``, staged in a hidden folder and moved into place.

Beside a new folder, the staging folder becomes it with one rename. Inside an existing folder (so the
moves stay on one file system), the finished frames are moved one by one, each move atomic; frames
left from a longer earlier sequence are removed, other files are kept.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from anyi2v.shared.durable import fsync_file, fsync_folder

from .video_sidecar import PNG_SHOT, write_shot_json

_PNG_FRAME = re.compile(r"frame-(\d{4,})\.png")


def png_name(index: int) -> str:
    """The file name of frame ``index``."""
    return f"frame-{index:04d}.png"


def staging_place(target: Path) -> tuple[Path, str]:
    """Where to stage a sequence for ``target``: ``(folder, name)`` of the hidden staging folder.
    Inside an existing folder, so that the frames move within one file system; beside a new one, so
    that one rename makes it."""
    if target.is_dir():
        return target, "frames"
    return target.parent, target.name


def write_png_frame(staging: Path, index: int, frame: npt.NDArray[np.uint8]) -> None:
    """Write frame ``index`` (``uint8`` ``(h, w, 3)`` RGB) into the staging folder and flush it to disk."""
    path = staging / png_name(index)
    with path.open("wb") as handle:
        Image.fromarray(frame).save(handle, format="PNG")
    fsync_file(path)


def commit_png_folder(staging: Path, target: Path, n_frames: int, shot_json: str | None) -> list[Path]:
    """Move ``n_frames`` staged frames (and ``shot.json`` from ``shot_json``) to ``target``; returns the
    paths written. A ``shot.json`` left in ``target`` by an earlier sequence goes when there is none."""
    names = [png_name(index) for index in range(n_frames)]
    if shot_json is not None:
        write_shot_json(staging / PNG_SHOT, shot_json)
        names.append(PNG_SHOT)
    fsync_folder(staging)
    if staging.parent != target and not target.exists():
        os.replace(staging, target)  # a new folder: one atomic rename
    else:
        if not target.exists():
            target.mkdir()
        for name in names:
            os.replace(staging / name, target / name)
        staging.rmdir()
        for stale in target.iterdir():
            match = _PNG_FRAME.fullmatch(stale.name)
            if match is not None and int(match.group(1)) >= n_frames:
                stale.unlink()
        if shot_json is None:
            (target / PNG_SHOT).unlink(missing_ok=True)
        fsync_folder(target)
    fsync_folder(target.parent)
    return [target / name for name in names]
