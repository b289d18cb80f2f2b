"""Motion directed in 3D: a camera path, objects with keyframed poses, and anchors on static geometry.

A scene's 3D motion is turned into ordinary 2D tracks by the client (``render.motion`` projects the
geometry at every frame), so the daemon only ever sees boxes. Frame 0 of the camera is
``scene.camera``; the camera path adds keys after it.

Camera keys are interpolated around their target: the target moves in a line (or curve), and the eye
moves on arcs around it (azimuth and elevation about the scene's up axis, and distance), so an orbit
stays an orbit, a dolly moves straight in and a pan moves the target. Between two keys the azimuth
takes the shorter way round; add keys for turns of 180 degrees or more.

Object poses are relative to where the file puts the object: ``position`` is an offset in scene units
(the asset is fitted into a unit cube), ``rotation_deg`` are X, Y, Z Euler angles (applied in that
order) about the centre of the objects' bounds, and ``scale`` is uniform about that centre.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, ValidationInfo, field_validator, model_validator

from .curves import Interpolation
from .model import DocumentModel
from .tracks import TRACK_ID_PATTERN, check_frame_in_clip, check_unique_frames

Vector3 = tuple[float, float, float]
ObjectName = Annotated[str, Field(min_length=1, max_length=200)]
TrackId = Annotated[str, Field(pattern=TRACK_ID_PATTERN)]
MAX_KEYS = 10_000


class CameraKey(DocumentModel):
    """The camera at a frame after frame 0 (frame 0 is ``scene.camera``; its ``up`` holds throughout)."""

    frame: int = Field(ge=1, description="Frame index, 1-based here: frame 0 is scene.camera.")
    eye: Vector3 = Field(description="Camera position.")
    target: Vector3 = Field((0.0, 0.0, 0.0), description="The point the camera looks at.")
    fov_deg: float | None = Field(None, gt=1.0, lt=170.0, description="Vertical field of view; null keeps frame 0's.")
    interpolation: Interpolation = Field("smooth", description="How the camera moves from this key to the next.")

    @field_validator("frame")
    @classmethod
    def _frame_inside_clip(cls, frame: int, info: ValidationInfo) -> int:
        return check_frame_in_clip(frame, info)

    @model_validator(mode="after")
    def _has_a_direction(self) -> CameraKey:
        if tuple(self.eye) == tuple(self.target):
            raise ValueError("target equals eye: the camera has no viewing direction")
        return self


class ObjectKey(DocumentModel):
    """An object's pose at a frame, relative to where the scene file places it."""

    frame: int = Field(ge=0, description="Frame index, 0-based.")
    position: Vector3 = Field((0.0, 0.0, 0.0), description="Offset in scene units (the asset fits a unit cube).")
    rotation_deg: Vector3 = Field(
        (0.0, 0.0, 0.0), description="X, Y, Z Euler angles in degrees, about the centre of the objects' bounds."
    )
    scale: float = Field(1.0, gt=0.0, le=100.0, description="Uniform scale about the centre of the objects' bounds.")
    interpolation: Interpolation = Field("smooth", description="How the pose changes from this key to the next.")

    @field_validator("frame")
    @classmethod
    def _frame_inside_clip(cls, frame: int, info: ValidationInfo) -> int:
        return check_frame_in_clip(frame, info)


class ObjectMotion(DocumentModel):
    """Objects of the scene file that move together (a car and its wheels); their projected box at every
    frame becomes the 2D track ``track``."""

    objects: tuple[ObjectName, ...] = Field(min_length=1, max_length=256, description="Object names in the file.")
    track: TrackId = Field(description="Id of the 2D track this motion produces.")
    label: str = Field("", max_length=200, description="What the objects are, for people.")
    keyframes: tuple[ObjectKey, ...] = Field(min_length=1, max_length=MAX_KEYS)

    @model_validator(mode="after")
    def _check(self) -> ObjectMotion:
        _check_unique_names(self.objects)
        check_unique_frames([key.frame for key in self.keyframes])
        ordered = tuple(sorted(self.keyframes, key=lambda key: key.frame))
        if ordered != self.keyframes:
            object.__setattr__(self, "keyframes", ordered)
        return self


class Anchor(DocumentModel):
    """Static background geometry whose projection becomes an ``anchor`` track: how the camera's own
    motion shows in the image. Either named objects of the file, or a box in scene coordinates."""

    track: TrackId = Field(description="Id of the 2D anchor track this produces.")
    label: str = Field("", max_length=200, description="What the region shows, for people.")
    objects: tuple[ObjectName, ...] = Field((), max_length=256, description="Static object names in the file.")
    bounds: tuple[Vector3, Vector3] | None = Field(
        None, description="Or an axis-aligned box [min corner, max corner] in scene coordinates."
    )

    @model_validator(mode="after")
    def _one_source(self) -> Anchor:
        if bool(self.objects) == (self.bounds is not None):
            raise ValueError("an anchor names either objects or bounds (exactly one of them)")
        _check_unique_names(self.objects)
        if self.bounds is not None:
            low, high = self.bounds
            for axis, (a, b) in zip("xyz", zip(low, high, strict=True), strict=True):
                if not a < b:
                    raise ValueError(f"bounds: the min corner's {axis} ({a}) must be below the max corner's ({b})")
        return self


def _check_unique_names(names: tuple[str, ...]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"object {name!r} is listed twice")
        seen.add(name)


def check_scene_motion(
    camera_path: tuple[CameraKey, ...], motions: tuple[ObjectMotion, ...], anchors: tuple[Anchor, ...]
) -> None:
    """Cross-checks of a scene's motion: keys once per frame, an object in at most one motion, anchors on
    objects that do not move, one track id per motion or anchor."""
    check_unique_frames([key.frame for key in camera_path], "camera_path")
    moved_by: dict[str, int] = {}
    for index, motion in enumerate(motions):
        for name in motion.objects:
            if name in moved_by:
                raise ValueError(f"motions[{moved_by[name]}] and motions[{index}] both move object {name!r}")
            moved_by[name] = index
    for index, anchor in enumerate(anchors):
        for name in anchor.objects:
            if name in moved_by:
                raise ValueError(
                    f"anchors[{index}] is on object {name!r}, which motions[{moved_by[name]}] moves:"
                    " anchors follow static geometry"
                )
    owners = [(f"motions[{i}]", m.track) for i, m in enumerate(motions)]
    owners += [(f"anchors[{i}]", a.track) for i, a in enumerate(anchors)]
    first: dict[str, str] = {}
    for where, track in owners:
        if track in first:
            raise ValueError(f"{first[track]} and {where} both produce track {track!r}")
        first[track] = where
