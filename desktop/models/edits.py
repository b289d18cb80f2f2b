"""Edits of a shot as pure functions: each takes a :class:`Shot` and returns a new, validated one.

An edit that would make an invalid shot raises :class:`EditError` with a sentence the user can act
on, and changes nothing. :class:`Edit` pairs the values before and after for an undo stack.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from anyi2v.shared.boxes import contains_point
from anyi2v.shared.curves import INTERPOLATIONS, Interpolation
from anyi2v.shared.document import parse_shot
from anyi2v.shared.errors import ShotError
from anyi2v.shared.shot import ModelChoice, Shot
from anyi2v.shared.tracks import sample_track

from .overlay import carry_point

Box = tuple[float, float, float, float]
KeyRef = tuple[str, int]  # (track id, frame)
Document = dict[str, Any]
MAX_SEED = 2**32 - 1


class EditError(ValueError):
    """An edit refused, with what to do instead."""


@dataclass(frozen=True)
class Edit:
    """One undoable change: its menu text and the shot before and after."""

    text: str
    before: Shot
    after: Shot


@dataclass(frozen=True)
class ClipboardKey:
    """A copied keyframe: its track, its frame relative to the first copied key, its box and interpolation."""

    track_id: str
    offset: int
    box: Box
    interpolation: Interpolation


def _rebuild(shot: Shot, change: Callable[[Document], None]) -> Shot:
    document = shot.model_dump(mode="json")
    change(document)
    _carry_query_points(shot, document)
    try:
        return parse_shot(document, source="edit")
    except ShotError as error:
        raise EditError("; ".join(str(problem) for problem in error.problems)) from None


def _carry_query_points(before: Shot, document: Document) -> None:
    """Query points sit on the object in frame 0, inside the first key's box: when an edit moves,
    resizes, deletes or precedes that key, the points keep their place relative to the box."""
    old_tracks = {track.id: track for track in before.tracks}
    for track in document["tracks"]:
        old = old_tracks.get(track["id"])
        if old is None or not track.get("query_points") or not track["keyframes"]:
            continue
        new_box = min(track["keyframes"], key=lambda key: key["frame"])["box"]
        old_box = old.first_box
        if list(new_box) != list(old_box):
            track["query_points"] = [list(carry_point(p, old_box, new_box)) for p in track["query_points"]]


def _track(document: Document, track_id: str) -> Document:
    track: Document
    for track in document["tracks"]:
        if track["id"] == track_id:
            return track  # the document's own dict: edits write through
    raise EditError(f"there is no track {track_id!r}")


def _check_frame(shot: Shot, frame: int) -> None:
    if not 0 <= frame < shot.output.n_frames:
        raise EditError(f"frame {frame} is outside the clip (frames 0..{shot.output.n_frames - 1})")


def clamp_box(box: Sequence[float]) -> Box:
    """A box with its corners ordered and rounded to 6 decimals (a thousandth of a pixel at 4K)."""
    x0, y0, x1, y1 = (round(float(v), 6) for v in box)
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def key_at(shot: Shot, track_id: str, frame: int) -> Interpolation | None:
    """The interpolation of the track's key at ``frame``, or None when there is no key there."""
    for track in shot.tracks:
        if track.id == track_id:
            for key in track.keyframes:
                if key.frame == frame:
                    return key.interpolation
    return None


def new_track_id(shot: Shot, stem: str = "track") -> str:
    """``stem`` itself when it is a free, valid id (a scene object's name), else ``stem-N``."""
    taken = {track.id for track in shot.tracks}
    if shot.scene is not None:
        taken.update(shot.scene.derived_track_ids)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-_.")[:56] or "track"
    if stem != "track" and stem not in taken:
        return stem
    index = 1
    while f"{stem}-{index}" in taken:
        index += 1
    return f"{stem}-{index}"


def add_track(shot: Shot, frame: int, box: Sequence[float], role: str = "object", label: str = "") -> tuple[Shot, str]:
    """A new track with one key at ``frame``; returns the shot and the new track's id (the label's,
    made a valid id, when it is free: a track seeded from a scene object is named after it)."""
    _check_frame(shot, frame)
    track_id = new_track_id(shot, label or "track")

    def change(document: Document) -> None:
        key = {"frame": frame, "box": list(clamp_box(box)), "interpolation": "smooth"}
        document["tracks"].append({"id": track_id, "label": label, "role": role, "keyframes": [key]})

    return _rebuild(shot, change), track_id


def remove_tracks(shot: Shot, track_ids: Iterable[str]) -> Shot:
    doomed = set(track_ids)
    missing = doomed - {track.id for track in shot.tracks}
    if missing:
        raise EditError(f"there is no track {sorted(missing)[0]!r}")

    def change(document: Document) -> None:
        document["tracks"] = [track for track in document["tracks"] if track["id"] not in doomed]

    return _rebuild(shot, change)


def set_key(shot: Shot, track_id: str, frame: int, box: Sequence[float]) -> Shot:
    """Set the track's box at ``frame``: updates the key there, or adds one (with the interpolation of
    the key before it, so a new key does not change how the earlier segment moves)."""
    _check_frame(shot, frame)

    def change(document: Document) -> None:
        keys = _track(document, track_id)["keyframes"]
        for key in keys:
            if key["frame"] == frame:
                key["box"] = list(clamp_box(box))
                return
        earlier = [key for key in keys if key["frame"] < frame]
        interpolation = earlier[-1]["interpolation"] if earlier else "smooth"
        keys.append({"frame": frame, "box": list(clamp_box(box)), "interpolation": interpolation})

    return _rebuild(shot, change)


def delete_keys(shot: Shot, keys: Iterable[KeyRef]) -> Shot:
    """Delete keys; a track left with none is removed with them."""
    doomed: dict[str, set[int]] = {}
    for track_id, frame in keys:
        doomed.setdefault(track_id, set()).add(frame)

    def change(document: Document) -> None:
        kept = []
        for track in document["tracks"]:
            frames = doomed.get(track["id"], set())
            track["keyframes"] = [key for key in track["keyframes"] if key["frame"] not in frames]
            if track["keyframes"]:
                kept.append(track)
        document["tracks"] = kept

    return _rebuild(shot, change)


def move_keys(shot: Shot, keys: Iterable[KeyRef], delta: int) -> Shot:
    """Shift keys by ``delta`` frames. A moved key lands over an unmoved one at its new frame (which is
    replaced, as in Blender); keys may not leave the clip."""
    moving: dict[str, set[int]] = {}
    for track_id, frame in keys:
        moving.setdefault(track_id, set()).add(frame)
    last = shot.output.n_frames - 1
    for track_id, frames in moving.items():
        for frame in frames:
            if not 0 <= frame + delta <= last:
                raise EditError(
                    f"moving {track_id!r}'s key at frame {frame} by {delta:+d} leaves the clip (frames 0..{last})"
                )

    def change(document: Document) -> None:
        for track_id, frames in moving.items():
            track = _track(document, track_id)
            moved = [dict(key, frame=key["frame"] + delta) for key in track["keyframes"] if key["frame"] in frames]
            landing = {key["frame"] for key in moved}
            stay = [key for key in track["keyframes"] if key["frame"] not in frames and key["frame"] not in landing]
            track["keyframes"] = sorted(stay + moved, key=lambda key: key["frame"])

    return _rebuild(shot, change)


def set_interpolation(shot: Shot, keys: Iterable[KeyRef], interpolation: Interpolation) -> Shot:
    if interpolation not in INTERPOLATIONS:
        raise EditError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, not {interpolation!r}")
    chosen: dict[str, set[int]] = {}
    for track_id, frame in keys:
        chosen.setdefault(track_id, set()).add(frame)

    def change(document: Document) -> None:
        for track_id, frames in chosen.items():
            for key in _track(document, track_id)["keyframes"]:
                if key["frame"] in frames:
                    key["interpolation"] = interpolation

    return _rebuild(shot, change)


def copy_keys(shot: Shot, keys: Iterable[KeyRef]) -> tuple[ClipboardKey, ...]:
    """The selected keys, with frames relative to the earliest of them."""
    wanted = set(keys)
    found = [(track.id, key) for track in shot.tracks for key in track.keyframes if (track.id, key.frame) in wanted]
    if not found:
        return ()
    first = min(key.frame for _, key in found)
    return tuple(ClipboardKey(tid, key.frame - first, key.box, key.interpolation) for tid, key in found)


def paste_keys(shot: Shot, clipboard: Sequence[ClipboardKey], frame: int, into: str | None = None) -> Shot:
    """Paste copied keys with the earliest at ``frame``: into their own tracks, or all into ``into`` when
    they came from one track (copying a key from one track to another). Keys past the clip's end are
    refused."""
    if not clipboard:
        raise EditError("nothing to paste: copy keyframes first")
    sources = {key.track_id for key in clipboard}
    if into is not None and len(sources) > 1:
        raise EditError("keys copied from several tracks paste into their own tracks: select none to paste")
    last = shot.output.n_frames - 1
    if frame + max(key.offset for key in clipboard) > last:
        raise EditError(f"the copied keys span past the clip's end (frame {last}) when pasted at frame {frame}")

    def change(document: Document) -> None:
        for key in clipboard:
            track = _track(document, into or key.track_id)
            target = frame + key.offset
            track["keyframes"] = [k for k in track["keyframes"] if k["frame"] != target]
            track["keyframes"].append({"frame": target, "box": list(key.box), "interpolation": key.interpolation})
            track["keyframes"].sort(key=lambda k: k["frame"])

    return _rebuild(shot, change)


def set_track(shot: Shot, track_id: str, **fields: Any) -> Shot:
    """Change a track's ``role`` ('object' or 'anchor'), ``label`` or ``id``."""
    unknown = set(fields) - {"role", "label", "id"}
    if unknown:
        raise EditError(f"a track has no field {sorted(unknown)[0]!r}")

    def change(document: Document) -> None:
        _track(document, track_id).update(fields)

    return _rebuild(shot, change)


def add_query_point(shot: Shot, track_id: str, point: tuple[float, float], frame: int | None = None) -> Shot:
    """A query point for the track's semantic mask, where the object is in frame 0: inside the first
    key's box. Clicked at another ``frame``, inside the box there, it is carried to the same place
    relative to the first key's box."""
    track = next((t for t in shot.tracks if t.id == track_id), None)
    if track is None:
        raise EditError(f"there is no track {track_id!r}")
    if frame is not None and frame != track.keyframes[0].frame:
        _check_frame(shot, frame)
        x0, y0, x1, y1 = (float(v) for v in sample_track(track, shot.output.n_frames)[frame])
        box = (x0, y0, x1, y1)
        if not contains_point(box, point):
            raise EditError(f"a query point must be inside {track_id!r}'s box")
        point = carry_point(point, box, track.first_box)
    if not contains_point(track.first_box, point):
        raise EditError(f"a query point must be inside {track_id!r}'s box at frame {track.keyframes[0].frame}")
    rounded = (round(point[0], 6), round(point[1], 6))

    def change(document: Document) -> None:
        _track(document, track_id)["query_points"].append(list(rounded))

    return _rebuild(shot, change)


def set_value(shot: Shot, path: Sequence[str | int], value: Any) -> Shot:
    """Set one field by its JSON path, e.g. ``("sampling", "seed")``; validated like a loaded file."""
    if not path:
        raise EditError("no field named")

    def change(document: Document) -> None:
        node: Any = document
        for part in path[:-1]:
            if isinstance(node, dict) and node.get(part) is None:
                node[part] = {}
            node = node[part]
        node[path[-1]] = value

    where = ".".join(str(p) for p in path)
    try:
        return _rebuild(shot, change)
    except EditError as error:
        message = str(error) if str(error).startswith(where) else f"{where}: {error}"
        if "multiple of 8" in message and isinstance(value, int):
            message += f" (the nearest is {max(8, round(value / 8) * 8)})"
        raise EditError(message) from None


def set_model_part(shot: Shot, part: str, value: Any) -> Shot:
    """Choose one part of the shot's ``model`` section (``checkpoint``, ``loras``, ...; None: the daemon's
    default); a section left with every part at the default is written as none (``model: null``)."""
    if part not in ModelChoice.model_fields:
        raise EditError(f"no model part {part!r}; the parts are {', '.join(ModelChoice.model_fields)}")

    def change(document: Document) -> None:
        section = {**(document.get("model") or {}), part: value}
        document["model"] = section if any(v is not None for v in section.values()) else None

    try:
        return _rebuild(shot, change)
    except EditError as error:
        message = str(error)
        raise EditError(message if message.startswith("model.") else f"model.{part}: {message}") from None


def set_frame_count(shot: Shot, n_frames: int) -> Shot:
    """Change the clip's length; refused while keys lie past the new end (say which), so none is lost."""
    for track in shot.tracks:
        late = [key.frame for key in track.keyframes if key.frame >= n_frames]
        if late:
            raise EditError(
                f"track {track.id!r} has a key at frame {late[0]}, past the new end (frame {n_frames - 1}):"
                " move or delete it first"
            )
    return set_value(shot, ("output", "n_frames"), n_frames)


def randomize_seed(shot: Shot, rng: random.Random | None = None) -> Shot:
    return set_value(shot, ("sampling", "seed"), (rng or random.Random()).randint(0, MAX_SEED))


def set_camera(shot: Shot, eye: Sequence[float], target: Sequence[float], fov_deg: float | None = None) -> Shot:
    """Move the scene's frame-0 camera (the condition view's orbit, pan and zoom)."""
    if shot.scene is None:
        raise EditError("this shot has no 3D scene: open a mesh or a point cloud to move a camera")

    def change(document: Document) -> None:
        camera = document["scene"]["camera"]
        camera["eye"] = [round(float(v), 6) for v in eye]
        camera["target"] = [round(float(v), 6) for v in target]
        if fov_deg is not None:
            camera["fov_deg"] = float(fov_deg)

    return _rebuild(shot, change)
