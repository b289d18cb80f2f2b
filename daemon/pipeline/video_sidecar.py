"""The shot a clip was made from, kept with the clip: a sidecar file beside it and, for MP4 and WebM,
the container's ``comment`` tag.

The sidecar of ``clip.mp4`` is ``clip.mp4.shot.json``; a PNG sequence keeps ``shot.json`` inside its
folder. GIF has no metadata PyAV can write, so for GIF the sidecar is the only record.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Final

from anyi2v.shared.durable import fsync_file

from .video_formats import VideoError, resolve_format

#: The container tag that carries the shot JSON (WebM reports it back as ``COMMENT``).
METADATA_KEY: Final = "comment"
#: The shot JSON's name inside a PNG sequence's folder.
PNG_SHOT: Final = "shot.json"
# The formats whose containers carry the shot JSON as metadata.
_TAGGED_FORMATS: Final = ("mp4", "webm")


def sidecar_path(path: str | os.PathLike[str], format: str | None = None) -> Path:
    """Where the shot JSON of a clip written to ``path`` goes."""
    target = Path(path)
    if resolve_format(target, format) == "png":
        return target / PNG_SHOT
    return target.with_name(target.name + ".shot.json")


def check_shot_json(shot_json: str | None) -> str | None:
    """``shot_json`` if it is None or JSON text; else :class:`VideoError`."""
    if shot_json is None:
        return None
    if not isinstance(shot_json, str):
        raise VideoError(f"shot_json must be JSON text (str), got {type(shot_json).__name__}")
    try:
        json.loads(shot_json)
    except json.JSONDecodeError as error:
        raise VideoError(f"shot_json is not valid JSON: {error}") from None
    return shot_json


def container_metadata(format: str, shot_json: str | None) -> dict[str, str]:
    """The tags a container of ``format`` gets: the shot JSON where the format can carry it."""
    if shot_json is not None and format in _TAGGED_FORMATS:
        return {METADATA_KEY: shot_json}
    return {}


def write_shot_json(path: Path, shot_json: str) -> None:
    """Write the shot JSON to ``path`` (a temporary or staged file, renamed into place by the caller)
    and flush it to disk."""
    path.write_text(shot_json, encoding="utf-8")
    fsync_file(path)
