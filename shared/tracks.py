"""Tracks: keyframed boxes, one per controlled region, and their per-frame sampling."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from .boxes import (
    Box,
    box_problem,
    boxes_to_centre_size,
    centre_size_to_boxes,
    contains_point,
    overlaps_frame,
)
from .curves import Interpolation, sample_keys
from .model import DocumentModel

TRACK_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def _valid_box(box: Box) -> Box:
    problem = box_problem(box)
    if problem is not None:
        raise ValueError(problem)
    return box


BoxField = Annotated[Box, AfterValidator(_valid_box)]
Point = tuple[Annotated[float, Field(ge=0.0, le=1.0)], Annotated[float, Field(ge=0.0, le=1.0)]]


def check_frame_in_clip(frame: int, info: ValidationInfo) -> int:
    """A validator body: ``frame`` must be below ``n_frames`` when the document context knows it."""
    n_frames = info.context.get("n_frames") if isinstance(info.context, dict) else None
    if isinstance(n_frames, int) and frame >= n_frames:
        raise ValueError(f"frame {frame} is outside the clip (output.n_frames = {n_frames}: frames 0..{n_frames - 1})")
    return frame


def check_unique_frames(frames: list[int], what: str = "keyframes") -> None:
    """Raise naming the first two keys that share a frame."""
    first_at: dict[int, int] = {}
    for index, frame in enumerate(frames):
        if frame in first_at:
            raise ValueError(f"{what}[{first_at[frame]}] and {what}[{index}] are both at frame {frame}")
        first_at[frame] = index


class Keyframe(DocumentModel):
    """A box at a frame; ``interpolation`` shapes the segment from this key to the next."""

    frame: int = Field(ge=0, description="Frame index, 0-based.")
    box: BoxField = Field(description="Normalized [x0, y0, x1, y1]; 0..1 spans the frame, x0 < x1, y0 < y1.")
    interpolation: Interpolation = Field(
        "smooth",
        description="constant, linear or smooth (monotone cubic, no overshoot) towards the next key.",
    )

    @field_validator("frame")
    @classmethod
    def _frame_inside_clip(cls, frame: int, info: ValidationInfo) -> int:
        return check_frame_in_clip(frame, info)


class Track(DocumentModel):
    """One controlled region: an object that moves, or an ``anchor`` on the background that expresses
    camera motion. Keyframes are kept sorted by frame."""

    id: str = Field(pattern=TRACK_ID_PATTERN, description="Unique id: letters, digits, '_', '-', '.'.")
    label: str = Field("", max_length=200, description="What the region shows, for people.")
    role: Literal["object", "anchor"] = Field("object", description="object, or anchor (background, camera motion).")
    query_points: tuple[Point, ...] = Field(
        (),
        max_length=64,
        description="Normalized (x, y) points on the object in frame 0, for its semantic mask.",
    )
    keyframes: tuple[Keyframe, ...] = Field(min_length=1, max_length=10_000)

    @model_validator(mode="after")
    def _check_keys(self) -> Track:
        check_unique_frames([key.frame for key in self.keyframes])
        ordered = tuple(sorted(self.keyframes, key=lambda key: key.frame))
        first_box = ordered[0].box
        if not overlaps_frame(first_box):
            raise ValueError(
                f"the first keyframe (frame {ordered[0].frame}) box {list(first_box)} does not overlap the frame: "
                "the region must be visible where the motion starts"
            )
        for index, point in enumerate(self.query_points):
            if not contains_point(first_box, point):
                raise ValueError(f"query_points[{index}] {list(point)} is outside the first keyframe's box")
        if ordered != self.keyframes:
            object.__setattr__(self, "keyframes", ordered)
        return self

    @property
    def first_box(self) -> Box:
        return self.keyframes[0].box


def sample_track(track: Track, n_frames: int) -> NDArray[np.float64]:
    """Per-frame boxes of a track.

    returns : (n_frames, 4) float, normalized ``[x0, y0, x1, y1]`` at frames ``0 .. n_frames - 1``

    The centre and the size are interpolated (not the corners), so a box that changes size never
    turns inside out. Before the first key and after the last, the box is held.
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    key_frames = np.array([key.frame for key in track.keyframes], dtype=np.int64)
    key_boxes = np.array([key.box for key in track.keyframes], dtype=np.float64)
    interpolations = [key.interpolation for key in track.keyframes]
    centre_size = sample_keys(key_frames, boxes_to_centre_size(key_boxes), interpolations, np.arange(n_frames))
    return centre_size_to_boxes(centre_size)
