"""Ray casting meshes with Open3D's ``RaycastingScene``: no OpenGL, no display, runs on any CPU.

One cast gives everything the mesh passes need: planar depth, the hit object and triangle, and the
barycentric coordinates that turn flat triangle normals into smooth ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import open3d as o3d
from numpy.typing import NDArray

from .camera import Camera
from .geometry import MeshObject

NO_HIT = -1
# Corners whose vertex normal is more than this far from the face normal keep the face normal, so a
# cube stays a cube while a tessellated sphere shades smoothly.
CREASE_ANGLE_DEG = 35.0


@dataclass(frozen=True)
class RaycastHits:
    """What one camera sees of a set of meshes, per pixel.

    depth : (h, w) float64, distance along the view axis (planar depth); inf where nothing is hit
    object_index : (h, w) int64, index into the meshes; -1 where nothing is hit
    normals : (h, w, 3) float64, unit world-space normals facing the camera; 0 where nothing is hit
    view_dirs : (h, w, 3) float64, unit world-space direction from the eye through each pixel
    """

    depth: NDArray[np.float64]
    object_index: NDArray[np.int64]
    normals: NDArray[np.float64]
    view_dirs: NDArray[np.float64]

    @property
    def hit(self) -> NDArray[np.bool_]:
        return np.asarray(self.object_index != NO_HIT)


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
    return o3d.core.Tensor(array)  # type: ignore[call-overload,unused-ignore]


def cast(meshes: Sequence[MeshObject], camera: Camera, width: int, height: int) -> RaycastHits:
    """Cast one ray through the centre of every pixel of a ``width x height`` image."""
    scene = o3d.t.geometry.RaycastingScene()
    geometry_to_index: dict[int, int] = {}
    for index, mesh in enumerate(meshes):
        if len(mesh.faces) == 0:
            continue
        geometry_id = scene.add_triangles(
            _tensor(np.ascontiguousarray(mesh.vertices, dtype=np.float32)),
            _tensor(np.ascontiguousarray(mesh.faces, dtype=np.uint32)),
        )
        geometry_to_index[int(geometry_id)] = index

    rays = scene.create_rays_pinhole(
        _tensor(camera.intrinsic(width, height)), _tensor(camera.extrinsic()), width, height
    )
    result = scene.cast_rays(rays)
    directions = rays.numpy()[..., 3:].astype(np.float64)
    # The pinhole rays have unit length along the view axis, so t_hit is already planar depth.
    depth = result["t_hit"].numpy().astype(np.float64)
    geometry_ids = result["geometry_ids"].numpy().astype(np.int64)
    hit = np.isfinite(depth)

    lookup = np.full(max(geometry_to_index, default=0) + 2, NO_HIT, dtype=np.int64)
    for geometry_id, index in geometry_to_index.items():
        lookup[geometry_id] = index
    object_index = np.where(hit, lookup[np.where(hit, geometry_ids, len(lookup) - 1)], NO_HIT)

    view_dirs = directions / np.linalg.norm(directions, axis=-1, keepdims=True)
    normals = np.zeros((height, width, 3))
    if np.any(hit):
        triangle = result["primitive_ids"].numpy().astype(np.int64)
        uvs = result["primitive_uvs"].numpy().astype(np.float64)
        for index, mesh in enumerate(meshes):
            pixels = object_index == index
            if not np.any(pixels):
                continue
            # Only the triangles some pixel sees: a far cheaper than shading every face.
            seen, inverse = np.unique(triangle[pixels], return_inverse=True)
            corner = _corner_normals(mesh, seen)[inverse]  # (k, 3, 3)
            u, v = uvs[pixels][:, 0:1], uvs[pixels][:, 1:2]
            normals[pixels] = (1.0 - u - v) * corner[:, 0] + u * corner[:, 1] + v * corner[:, 2]
        length = np.linalg.norm(normals, axis=-1, keepdims=True)
        normals = np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)
        # Face the camera: a back face seen through an open mesh shades like a front face.
        facing = np.einsum("hwc,hwc->hw", normals, view_dirs) > 0
        normals[facing] *= -1.0
    return RaycastHits(
        depth=np.where(hit, depth, np.inf), object_index=object_index, normals=normals, view_dirs=view_dirs
    )
