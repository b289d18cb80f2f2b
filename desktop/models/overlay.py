"""Boxes over the condition image: what is under the mouse, what a drag does, each track's path.

Coordinates are normalized (``0..1`` spans the image, as in the shot); callers convert from pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from anyi2v.shared.boxes import BOX_COORDINATE_MAX, BOX_COORDINATE_MIN
from anyi2v.shared.shot import Shot
from anyi2v.shared.tracks import Track, sample_track

Box = tuple[float, float, float, float]
Point = tuple[float, float]
MIN_SIZE = 0.02  # the smallest box a drag makes: 2% of the frame (10 px at 512)
# Which box edges a handle moves: (x0, y0, x1, y1).
HANDLE_EDGES: dict[str, tuple[bool, bool, bool, bool]] = {
    "move": (True, True, True, True),
    "left": (True, False, False, False),
    "right": (False, False, True, False),
    "top": (False, True, False, False),
    "bottom": (False, False, False, True),
    "top_left": (True, True, False, False),
    "top_right": (False, True, True, False),
    "bottom_left": (True, False, False, True),
    "bottom_right": (False, False, True, True),
}


@dataclass(frozen=True)
class Hit:
    track_id: str
    handle: str  # a key of HANDLE_EDGES


def hit_test(boxes: dict[str, Box], point: Point, tolerance: Point, prefer: str | None = None) -> Hit | None:
    """The box handle under ``point``: a corner or an edge within ``tolerance`` (x, y), else the inside.

    Handles first, the ``prefer`` track's (the selected one) before the others'; a handle reaches at
    most a quarter into its box, so the middle of even a small box moves it. Then insides: the smallest
    box holding the point wins, so a box inside a big (selected) one stays reachable."""
    x, y = point
    order = sorted(boxes, key=lambda tid: (tid != prefer, _area(boxes[tid])))
    for track_id in order:
        x0, y0, x1, y1 = boxes[track_id]
        tx, ty = min(tolerance[0], (x1 - x0) / 4), min(tolerance[1], (y1 - y0) / 4)
        if not (x0 - tx <= x <= x1 + tx and y0 - ty <= y <= y1 + ty):
            continue
        near_left, near_right = abs(x - x0) <= tx, abs(x - x1) <= tx
        near_top, near_bottom = abs(y - y0) <= ty, abs(y - y1) <= ty
        vertical = "top" if near_top else "bottom" if near_bottom else ""
        horizontal = "left" if near_left else "right" if near_right else ""
        if vertical and horizontal:
            return Hit(track_id, f"{vertical}_{horizontal}")
        if vertical or horizontal:
            return Hit(track_id, vertical or horizontal)
    inside = [tid for tid, (x0, y0, x1, y1) in boxes.items() if x0 <= x <= x1 and y0 <= y <= y1]
    if inside:
        return Hit(min(inside, key=lambda tid: _area(boxes[tid])), "move")
    return None


def carry_point(point: Sequence[float], from_box: Sequence[float], to_box: Sequence[float]) -> Point:
    """``point`` moved with its box: the same place relative to ``to_box`` as it had in ``from_box``."""
    u = (point[0] - from_box[0]) / (from_box[2] - from_box[0])
    v = (point[1] - from_box[1]) / (from_box[3] - from_box[1])
    return (round(to_box[0] + u * (to_box[2] - to_box[0]), 6), round(to_box[1] + v * (to_box[3] - to_box[1]), 6))


def object_at(object_boxes: dict[str, Box], point: Point) -> str | None:
    """The scene object whose frame-0 box holds ``point`` (the smallest, when boxes nest), or None."""
    x, y = point
    inside = [name for name, (x0, y0, x1, y1) in object_boxes.items() if x0 <= x <= x1 and y0 <= y <= y1]
    return min(inside, key=lambda name: _area(object_boxes[name]), default=None)


def _area(box: Box) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


VISIBLE = 0.05  # how much of a moved box stays in the frame at least


def drag_box(box: Box, handle: str, delta: Point, min_size: float = MIN_SIZE) -> Box:
    """``box`` after dragging ``handle`` by ``delta``: a move keeps the size; a resize keeps the opposite
    edges and never makes the box smaller than ``min_size`` or turns it inside out. Coordinates stay in
    the range a shot accepts."""
    dx, dy = delta
    low, high = BOX_COORDINATE_MIN, BOX_COORDINATE_MAX
    x0, y0, x1, y1 = box
    if handle == "move":  # a moved box keeps a sliver in the frame, so it can be grabbed again
        keep_x, keep_y = min(VISIBLE, x1 - x0), min(VISIBLE, y1 - y0)
        dx = min(max(dx, low - x0, keep_x - x1), high - x1, 1.0 - keep_x - x0)
        dy = min(max(dy, low - y0, keep_y - y1), high - y1, 1.0 - keep_y - y0)
        return (x0 + dx, y0 + dy, x1 + dx, y1 + dy)
    move_x0, move_y0, move_x1, move_y1 = HANDLE_EDGES[handle]
    if move_x0:
        x0 = min(max(x0 + dx, low), x1 - min_size)
    if move_x1:
        x1 = max(min(x1 + dx, high), x0 + min_size)
    if move_y0:
        y0 = min(max(y0 + dy, low), y1 - min_size)
    if move_y1:
        y1 = max(min(y1 + dy, high), y0 + min_size)
    return (x0, y0, x1, y1)


def box_between(start: Point, end: Point, min_size: float = MIN_SIZE) -> Box | None:
    """The box a drag from ``start`` to ``end`` draws, clipped to the image; None when it is too small to
    be meant (a click, not a drag)."""
    x0, x1 = sorted((min(max(start[0], 0.0), 1.0), min(max(end[0], 0.0), 1.0)))
    y0, y1 = sorted((min(max(start[1], 0.0), 1.0), min(max(end[1], 0.0), 1.0)))
    if x1 - x0 < min_size or y1 - y0 < min_size:
        return None
    return (x0, y0, x1, y1)


@lru_cache(maxsize=256)
def _sampled(track: Track, n_frames: int) -> NDArray[np.float64]:
    boxes = sample_track(track, n_frames)
    boxes.setflags(write=False)
    return boxes


def track_boxes(shot: Shot) -> dict[str, NDArray[np.float64]]:
    """Every track's box at every frame, ``(n_frames, 4)`` each; cached per track value, so scrubbing
    re-samples nothing."""
    return {track.id: _sampled(track, shot.output.n_frames) for track in shot.tracks}


def boxes_at(shot: Shot, frame: int) -> dict[str, Box]:
    """Each track's box at ``frame``."""
    boxes: dict[str, Box] = {}
    for track_id, sampled in track_boxes(shot).items():
        x0, y0, x1, y1 = (float(v) for v in sampled[frame])
        boxes[track_id] = (x0, y0, x1, y1)
    return boxes


@dataclass(frozen=True)
class TrackPath:
    """What the overlay draws for a track: its centre at every frame and which frames hold keys."""

    track_id: str
    role: str
    centres: NDArray[np.float64]  # (n_frames, 2) normalized
    key_frames: tuple[int, ...]


def track_paths(shot: Shot) -> tuple[TrackPath, ...]:
    paths = []
    sampled = track_boxes(shot)
    for track in shot.tracks:
        boxes = sampled[track.id]
        centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)
        paths.append(TrackPath(track.id, track.role, centres, tuple(key.frame for key in track.keyframes)))
    return tuple(paths)
