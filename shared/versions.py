"""Schema versions of the Shot document and the upgrades between them.

Each entry of ``UPGRADES`` turns a document of version ``n`` into version ``n + 1`` and works on
plain JSON data, so that a file from any older release loads in this one. Upgrades never drop what
they do not understand: unknown fields are left for validation to report.

History:

1. The first draft of the format: keyframe boxes and query points in output pixels (the convention
   of the AnyI2V authors' trajectory files).
2. Boxes and points normalized to the frame (0..1), so a shot keeps its motion when its size changes.
3. Motion directed in 3D: a scene may have a camera path, moving objects and anchors. Nothing of
   version 2 changes meaning, so the upgrade only bumps the version.
4. A shot may choose its models (``model``: checkpoint, motion module, LoRAs, motion LoRAs, VAE,
   scheduler) by their names in the daemon's model library. A shot without one runs on the daemon's
   default, as every version 3 shot did, so the upgrade only bumps the version.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

JSONObject = dict[str, Any]

CURRENT_VERSION = 4
_V1_DEFAULT_SIZE = 512


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def upgrade_1_to_2(document: JSONObject) -> JSONObject:
    """Pixels to normalized coordinates. Values that are not numbers are left for validation to report."""
    upgraded = dict(document)
    output = document.get("output")
    output = output if isinstance(output, dict) else {}
    width = output.get("width", _V1_DEFAULT_SIZE)
    height = output.get("height", _V1_DEFAULT_SIZE)
    if not (_number(width) and _number(height) and width > 0 and height > 0):
        upgraded["schema_version"] = 2
        return upgraded  # validation reports the bad size; nothing can be scaled against it
    scale = (width, height, width, height)

    def scaled(values: Any, factors: tuple[float, ...]) -> Any:
        if isinstance(values, list) and len(values) == len(factors) and all(_number(v) for v in values):
            return [v / f for v, f in zip(values, factors, strict=True)]
        return values

    tracks = document.get("tracks")
    if isinstance(tracks, list):
        new_tracks: list[Any] = []
        for track in tracks:
            if not isinstance(track, dict):
                new_tracks.append(track)
                continue
            track = dict(track)
            if isinstance(track.get("keyframes"), list):
                track["keyframes"] = [
                    {**key, "box": scaled(key.get("box"), scale)} if isinstance(key, dict) else key
                    for key in track["keyframes"]
                ]
            if isinstance(track.get("query_points"), list):
                track["query_points"] = [scaled(point, (width, height)) for point in track["query_points"]]
            new_tracks.append(track)
        upgraded["tracks"] = new_tracks
    upgraded["schema_version"] = 2
    return upgraded


def upgrade_2_to_3(document: JSONObject) -> JSONObject:
    """3D motion is new and optional: a version 2 shot means the same in version 3."""
    return {**document, "schema_version": 3}


def upgrade_3_to_4(document: JSONObject) -> JSONObject:
    """The model section is new and optional (absent: the daemon's default model): nothing is added."""
    return {**document, "schema_version": 4}


UPGRADES: dict[int, Callable[[JSONObject], JSONObject]] = {1: upgrade_1_to_2, 2: upgrade_2_to_3, 3: upgrade_3_to_4}


def upgrade(document: JSONObject) -> JSONObject:
    """Bring a document of any known version to ``CURRENT_VERSION``.

    The caller has checked that ``schema_version`` is an int in ``1 .. CURRENT_VERSION``.
    """
    version = document["schema_version"]
    while version < CURRENT_VERSION:
        document = UPGRADES[version](document)
        version = document["schema_version"]
    return document
