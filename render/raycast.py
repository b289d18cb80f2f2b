"""Ray casting meshes with Open3D's ``RaycastingScene``: no OpenGL, no display, runs on any CPU.

One cast gives everything the mesh passes need: planar depth, the hit object and triangle, and the
barycentric coordinates that turn flat triangle normals into smooth ones.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .camera import Camera
from .geometry import MeshObject
from .limits import DEFAULT_LIMITS

NO_HIT = -1
CAST_BUDGET_S = DEFAULT_LIMITS.timeout_s
"""How long one cast (the first builds the BVH) may take before it stops: the loading limit."""
_RAYS_PER_BAND = 16_384  # rays are cast a band of rows at a time, the clock read between bands
# Corners whose vertex normal is more than this far from the face normal keep the face normal, so a
# cube stays a cube while a tessellated sphere shades smoothly.
CREASE_ANGLE_DEG = 35.0


class CastTooSlow(RuntimeError):  # noqa: N818 (it says what happened)
    """A cast ran past its budget and was stopped; the message says how far it got and why."""


@dataclass(frozen=True)
class RaycastHits:
    """What one camera sees of a set of meshes, per pixel.

    depth : (h, w) float64, distance along the view axis (planar depth); inf where nothing is hit
    object_index : (h, w) int64, index into the meshes; -1 where nothing is hit
    normals : (h, w, 3) float64, unit world-space normals facing the camera; 0 where nothing is hit
    triangle : (h, w) int64, the hit face of that mesh; -1 where nothing is hit
    uv : (h, w, 2) float64, barycentric (u, v) of the hit in its face: the point is
         ``(1 - u - v) * a + u * b + v * c`` for corners ``a, b, c``
    ray_directions : (h, w, 3) float32, world-space ray directions (unit length along the view axis)
    """

    depth: NDArray[np.float64]
    object_index: NDArray[np.int64]
    normals: NDArray[np.float64]
    triangle: NDArray[np.int64]
    uv: NDArray[np.float64]
    ray_directions: NDArray[np.float32]

    @property
    def hit(self) -> NDArray[np.bool_]:
        return np.asarray(self.object_index != NO_HIT)

    @cached_property
    def view_dirs(self) -> NDArray[np.float64]:
        """(h, w, 3) unit world-space direction from the eye through each pixel (computed on first use)."""
        directions = self.ray_directions.astype(np.float64)
        unit: NDArray[np.float64] = directions / np.linalg.norm(directions, axis=-1, keepdims=True)
        return unit


def _corner_normals(mesh: MeshObject, triangles: NDArray[np.int64]) -> NDArray[np.float64]:
    """(k, 3, 3): the normal at each corner of the given faces, smooth below the crease angle, flat above."""
    faces = mesh.faces[triangles]
    corners = mesh.vertices[faces]
    flat = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    length = np.linalg.norm(flat, axis=1, keepdims=True)
    flat = np.divide(flat, length, out=np.zeros_like(flat), where=length > 0)
    smooth = mesh.vertex_normals[faces]
    keep_smooth = np.einsum("mcd,md->mc", smooth, flat) >= math.cos(math.radians(CREASE_ANGLE_DEG))
    return np.asarray(np.where(keep_smooth[..., None], smooth, flat[:, None, :]), dtype=np.float64)


def _tensor(array: NDArray[Any]) -> Any:
    import open3d as o3d

    return o3d.core.Tensor(array)  # type: ignore[call-overload,unused-ignore]


class MeshScene:
    """Meshes in one Open3D ray-casting scene.

    Building the scene's BVH is most of the cost of a first render, so every view of the same meshes
    (an orbit in the desktop, the frames of a camera path) should cast through one ``MeshScene``.
    A cast that takes longer than ``budget_s`` (None: no limit) stops with ``CastTooSlow``: triangles
    that overlap defeat the BVH, and each ray then tests all of them.
    """

    def __init__(self, meshes: Sequence[MeshObject], budget_s: float | None = CAST_BUDGET_S) -> None:
        import open3d as o3d  # here, not at the top: importing it costs ~1 s that the studio's start does not need

        self.meshes = tuple(meshes)
        self.budget_s = budget_s
        self._scene = o3d.t.geometry.RaycastingScene()
        geometry_to_index: dict[int, int] = {}
        for index, mesh in enumerate(self.meshes):
            if len(mesh.faces) == 0:
                continue
            geometry_id = self._scene.add_triangles(
                _tensor(np.ascontiguousarray(mesh.vertices, dtype=np.float32)),
                _tensor(np.ascontiguousarray(mesh.faces, dtype=np.uint32)),
            )
            geometry_to_index[int(geometry_id)] = index
        self._lookup = np.full(max(geometry_to_index, default=0) + 1, NO_HIT, dtype=np.int64)
        for geometry_id, index in geometry_to_index.items():
            self._lookup[geometry_id] = index

    def cast(self, camera: Camera, width: int, height: int) -> RaycastHits:
        """Cast one ray through the centre of every pixel of a ``width x height`` image."""
        rays = self._scene.create_rays_pinhole(
            _tensor(camera.intrinsic(width, height)), _tensor(camera.extrinsic()), width, height
        )
        result = self._cast_in_bands(rays.numpy(), width, height)
        # The pinhole rays have unit length along the view axis, so t_hit is already planar depth.
        t_hit = result["t_hit"]
        hit = np.isfinite(t_hit)
        directions = rays.numpy()[..., 3:]

        object_index = np.full((height, width), NO_HIT, dtype=np.int64)
        object_index[hit] = self._lookup[result["geometry_ids"][hit].astype(np.int64)]
        triangle = np.full((height, width), NO_HIT, dtype=np.int64)
        uv = np.zeros((height, width, 2))
        normals = np.zeros((height, width, 3))
        if np.any(hit):
            triangle[hit] = result["primitive_ids"][hit].astype(np.int64)
            uv[hit] = result["primitive_uvs"][hit]
            normals[hit] = self._hit_normals(object_index[hit], triangle[hit], uv[hit], directions[hit])
        return RaycastHits(
            depth=np.where(hit, t_hit, np.inf).astype(np.float64),
            object_index=object_index,
            normals=normals,
            triangle=triangle,
            uv=uv,
            ray_directions=directions,
        )

    def _cast_in_bands(self, rays: NDArray[np.float32], width: int, height: int) -> dict[str, NDArray[Any]]:
        """Open3D's ``cast_rays`` on (height, width, 6) rays a band of rows at a time (each ray's answer
        is its own: the same as one cast), stopping with ``CastTooSlow`` once past the budget."""
        started = time.monotonic()
        band = max(1, _RAYS_PER_BAND // max(1, width))
        parts: dict[str, list[NDArray[Any]]] = {}
        for top in range(0, height, band):
            result = self._scene.cast_rays(_tensor(np.ascontiguousarray(rays[top : top + band])))
            for key in ("t_hit", "geometry_ids", "primitive_ids", "primitive_uvs"):
                parts.setdefault(key, []).append(result[key].numpy())
            elapsed = time.monotonic() - started
            if self.budget_s is not None and elapsed > self.budget_s and top + band < height:
                faces = sum(len(mesh.faces) for mesh in self.meshes)
                raise CastTooSlow(
                    f"took longer than {self.budget_s:g} s at {width}x{height} and was stopped"
                    f" ({min(top + band, height)} of {height} rows done; {faces} triangles: overlapping"
                    " triangles make every ray test them all)"
                )
        return {key: np.concatenate(values) for key, values in parts.items()}

    def _hit_normals(
        self,
        hit_object: NDArray[np.int64],
        hit_triangle: NDArray[np.int64],
        hit_uv: NDArray[np.float64],
        hit_direction: NDArray[np.float32],
    ) -> NDArray[np.float64]:
        """(k, 3) unit normals facing the camera, interpolated on the hit pixels only."""
        normals = np.zeros((len(hit_object), 3))
        for index, mesh in enumerate(self.meshes):
            rows = np.flatnonzero(hit_object == index)
            if len(rows) == 0:
                continue
            # Only the triangles some pixel sees: far cheaper than shading every face.
            seen, inverse = np.unique(hit_triangle[rows], return_inverse=True)
            corner = _corner_normals(mesh, seen)[inverse]  # (k, 3, 3)
            u, v = hit_uv[rows, 0:1], hit_uv[rows, 1:2]
            normals[rows] = (1.0 - u - v) * corner[:, 0] + u * corner[:, 1] + v * corner[:, 2]
        length = np.linalg.norm(normals, axis=1, keepdims=True)
        unit: NDArray[np.float64] = np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)
        # Face the camera: a back face seen through an open mesh shades like a front face.
        facing = np.einsum("kc,kc->k", unit, hit_direction) > 0
        unit[facing] *= -1.0
        return unit


def cast(meshes: Sequence[MeshObject], camera: Camera, width: int, height: int) -> RaycastHits:
    """One view of ``meshes``; build a :class:`MeshScene` instead to render several views of them."""
    return MeshScene(meshes).cast(camera, width, height)
