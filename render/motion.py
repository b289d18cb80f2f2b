"""3D-aware tracks: a scene's camera path, object poses and anchors, projected into 2D box tracks.

The artist animates in 3D (``shared.motion``); this module samples the camera and every object's pose
at each frame, projects the geometry and keeps its 2D box, so the daemon receives ordinary tracks whose
boxes respect perspective, and the camera's own motion shows in the anchor tracks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.transform import Rotation

from anyi2v.shared.boxes import BOX_COORDINATE_MAX, BOX_COORDINATE_MIN, box_problem, overlaps_frame
from anyi2v.shared.curves import sample_keys
from anyi2v.shared.motion import ObjectMotion
from anyi2v.shared.shot import Scene
from anyi2v.shared.tracks import Keyframe, Track

from .camera import Camera, orbit_angles
from .condition import RenderError, SceneView
from .geometry import Asset, MeshObject, PointObject, SceneObject

Box = tuple[float, float, float, float]
NEAR = 1e-3  # geometry closer to the eye than this (along the view axis) is not projected


def camera_path(scene: Scene, n_frames: int) -> list[Camera]:
    """The camera at each frame ``0 .. n_frames - 1``: ``scene.camera`` at frame 0, then the path's keys,
    interpolated around their targets (see ``shared.motion``)."""
    first = scene.camera
    if not scene.camera_path:
        return [Camera(first.eye, first.target, first.up, first.fov_deg)] * n_frames
    frames = [0]
    rows = [_camera_row(first.eye, first.target, first.fov_deg)]
    interpolations = [scene.camera_interpolation]
    fov = first.fov_deg
    for key in scene.camera_path:
        fov = key.fov_deg if key.fov_deg is not None else fov
        frames.append(key.frame)
        rows.append(_camera_row(key.eye, key.target, fov))
        interpolations.append(key.interpolation)
    table = np.array(rows)
    table[:, 3] = np.unwrap(table[:, 3], period=360.0)  # azimuth: the shorter way round between keys
    cameras = []
    for row in sample_keys(frames, table, interpolations, np.arange(n_frames)):
        target = (float(row[0]), float(row[1]), float(row[2]))
        orbit = Camera.orbit(float(row[3]), float(row[4]), float(row[5]), target=target)
        cameras.append(Camera(orbit.eye, target, first.up, float(row[6])))
    return cameras


def _camera_row(eye: Sequence[float], target: Sequence[float], fov_deg: float) -> list[float]:
    """What is interpolated: target (3), azimuth, elevation, distance, field of view."""
    return [*target, *orbit_angles(np.subtract(eye, target)), fov_deg]


def object_group(asset: Asset, names: Sequence[str], where: str) -> list[SceneObject]:
    """The named objects of ``asset``, or a RenderError naming the missing one and what the file holds."""
    by_name = {item.name: item for item in asset.objects}
    missing = [name for name in names if name not in by_name]
    if missing:
        known = ", ".join(repr(name) for name in asset.names)
        raise RenderError(f"{where}: no object named {missing[0]!r} in {asset.source}; it holds {known}")
    return [by_name[name] for name in names]


def pose_matrices(motion: ObjectMotion, pivot: NDArray[np.float64], n_frames: int) -> NDArray[np.float64]:
    """(n_frames, 4, 4): the motion's transform at each frame, rotation and scale about ``pivot``."""
    keys = motion.keyframes
    table = np.array([[*key.position, *key.rotation_deg, math.log(key.scale)] for key in keys])
    sampled = sample_keys([key.frame for key in keys], table, [key.interpolation for key in keys], np.arange(n_frames))
    linear = (
        Rotation.from_euler("xyz", sampled[:, 3:6], degrees=True).as_matrix() * np.exp(sampled[:, 6])[:, None, None]
    )
    matrices = np.tile(np.eye(4), (n_frames, 1, 1))
    matrices[:, :3, :3] = linear
    matrices[:, :3, 3] = pivot - np.einsum("fij,j->fi", linear, pivot) + sampled[:, 0:3]
    return matrices


def _transform(points: NDArray[np.float64], matrix: NDArray[np.float64]) -> NDArray[np.float64]:
    moved: NDArray[np.float64] = points @ matrix[:3, :3].T + matrix[:3, 3]
    return moved


def _group_pivot(items: Sequence[SceneObject]) -> NDArray[np.float64]:
    stacked = np.concatenate([item.points for item in items])
    pivot: NDArray[np.float64] = (stacked.min(axis=0) + stacked.max(axis=0)) / 2.0
    return pivot


def _outline(items: Sequence[SceneObject]) -> NDArray[np.float64]:
    """The points whose projection bounds the group's: its convex hull's vertices (all points when the
    group is flat or tiny), so projecting every frame stays cheap for big meshes and clouds."""
    stacked = np.concatenate([item.points for item in items])
    if len(stacked) <= 64:
        return stacked
    try:
        hull = ConvexHull(stacked)
    except QhullError:
        return stacked
    outline: NDArray[np.float64] = stacked[hull.vertices]
    return outline


def projected_box(points: NDArray[np.float64], camera: Camera, width: int, height: int) -> Box | None:
    """The normalized 2D box of ``points`` seen by ``camera``, limited to the range a track box may use;
    None when nothing is in front of the camera or the box has no area inside that range."""
    pixels, depth = camera.project(points, width, height)
    front = depth > NEAR
    if not np.any(front):
        return None
    low = pixels[front].min(axis=0) / (width, height)
    high = pixels[front].max(axis=0) / (width, height)
    x0, y0, x1, y1 = (float(v) for v in np.clip([*low, *high], BOX_COORDINATE_MIN, BOX_COORDINATE_MAX))
    box = (x0, y0, x1, y1)
    return box if box_problem(box) is None else None


@dataclass(frozen=True)
class ScenePlan:
    """A scene's 3D motion sampled at every frame: cameras, object transforms and the objects they move."""

    cameras: list[Camera]
    transforms: dict[str, NDArray[np.float64]]  # object name -> (n_frames, 4, 4)

    def posed(self, asset: Asset, frame: int) -> Asset:
        """``asset`` with every moving object placed where it is at ``frame``."""
        objects: list[SceneObject] = []
        for item in asset.objects:
            matrix = self.transforms.get(item.name)
            if matrix is None:
                objects.append(item)
            elif isinstance(item, MeshObject):
                objects.append(
                    MeshObject(item.name, _transform(item.vertices, matrix[frame]), item.faces, item.vertex_colors)
                )
            else:
                objects.append(PointObject(item.name, _transform(item.points, matrix[frame]), item.colors))
        return Asset(asset.source, tuple(objects))


def plan_scene(scene: Scene, asset: Asset, n_frames: int) -> ScenePlan:
    """Sample the scene's camera path and object motions; names are checked against the asset."""
    transforms: dict[str, NDArray[np.float64]] = {}
    for index, motion in enumerate(scene.motions):
        group = object_group(asset, motion.objects, f"scene.motions[{index}]")
        matrices = pose_matrices(motion, _group_pivot(group), n_frames)
        for item in group:
            transforms[item.name] = matrices
    for index, anchor in enumerate(scene.anchors):
        object_group(asset, anchor.objects, f"scene.anchors[{index}]")
    return ScenePlan(camera_path(scene, n_frames), transforms)


def derive_tracks(
    scene: Scene, asset: Asset, plan: ScenePlan, first_view: SceneView, n_frames: int
) -> tuple[Track, ...]:
    """One 2D track per motion (role ``object``) and per anchor (role ``anchor``), with a key at every
    frame where the geometry is in front of the camera. ``first_view`` is the frame-0 view of the posed
    asset; it gives each object track a query point on the visible surface."""
    width, height = first_view.width, first_view.height
    sources: list[_Source] = []
    for index, motion in enumerate(scene.motions):
        group = object_group(asset, motion.objects, f"scene.motions[{index}]")
        poses = plan.transforms[group[0].name]
        sources.append(_Source(f"scene.motions[{index}]", motion.track, motion.label, "object", group, poses))
    for index, anchor in enumerate(scene.anchors):
        where = f"scene.anchors[{index}]"
        if anchor.bounds is not None:
            sources.append(_Source(where, anchor.track, anchor.label, "anchor", [], None, _corners(anchor.bounds)))
        else:
            group = object_group(asset, anchor.objects, where)
            sources.append(_Source(where, anchor.track, anchor.label, "anchor", group, None))

    tracks: list[Track] = []
    for source in sources:
        outline = source.outline if source.outline is not None else _outline(source.group)
        keyframes: list[Keyframe] = []
        for frame, camera in enumerate(plan.cameras):
            points = outline if source.poses is None else _transform(outline, source.poses[frame])
            box = projected_box(points, camera, width, height)
            if box is not None:
                keyframes.append(Keyframe(frame=frame, box=box, interpolation="linear"))
        if not keyframes or keyframes[0].frame != 0 or not overlaps_frame(keyframes[0].box):
            raise RenderError(
                f"{source.where} (track {source.track!r}): not in view at frame 0; move the camera or the object so the"
                " motion starts inside the frame"
            )
        query = _query_point(first_view, source.group, keyframes[0].box) if source.role == "object" else None
        tracks.append(
            Track(
                id=source.track,
                label=source.label,
                role=source.role,
                query_points=(query,) if query is not None else (),
                keyframes=tuple(keyframes),
            )
        )
    return tuple(tracks)


@dataclass(frozen=True)
class _Source:
    """What one derived track follows: a group of objects (posed per frame when it moves) or fixed points."""

    where: str
    track: str
    label: str
    role: Literal["object", "anchor"]
    group: list[SceneObject]
    poses: NDArray[np.float64] | None  # (n_frames, 4, 4) for a moving group
    outline: NDArray[np.float64] | None = None  # fixed points instead of the group's outline


def _corners(bounds: tuple[tuple[float, float, float], tuple[float, float, float]]) -> NDArray[np.float64]:
    """(8, 3): the corners of an axis-aligned box."""
    low, high = bounds
    return np.array([[x, y, z] for x in (low[0], high[0]) for y in (low[1], high[1]) for z in (low[2], high[2])])


def _query_point(view: SceneView, group: Sequence[SceneObject], box: Box) -> tuple[float, float] | None:
    """The visible pixel of the group nearest the centroid of its visible area, normalized; None when the
    group is hidden at frame 0."""
    mask = np.zeros((view.height, view.width), dtype=bool)
    for item in group:
        mask |= view.object_mask(item.name)
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        return None
    centre_row, centre_col = rows.mean(), cols.mean()
    nearest = int(np.argmin((rows - centre_row) ** 2 + (cols - centre_col) ** 2))
    x = min(max((cols[nearest] + 0.5) / view.width, box[0]), box[2])
    y = min(max((rows[nearest] + 0.5) / view.height, box[1]), box[3])
    return (float(min(max(x, 0.0), 1.0)), float(min(max(y, 0.0), 1.0)))
