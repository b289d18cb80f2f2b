"""Geometry values that loading produces and the passes consume.

All coordinates are float64 in the asset's normalized frame (see ``assets.normalize``): Y up, the
whole asset fitted into the cube ``[-0.5, 0.5]^3`` and centred at the origin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numpy.typing import NDArray


def vertex_normals(vertices: NDArray[np.float64], faces: NDArray[np.int64]) -> NDArray[np.float64]:
    """Angle-weighted vertex normals (each face counts by its corner angle at the vertex, so a thin slab's
    small side faces weigh as much as its big ones, and normals do not depend on how faces are split).

    vertices : (n, 3) float64; faces : (m, 3) int64; returns (n, 3) float64, unit length (0 for unused vertices)
    """
    corners = vertices[faces]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    length = np.linalg.norm(face_normals, axis=1, keepdims=True)
    face_normals = np.divide(face_normals, length, out=np.zeros_like(face_normals), where=length > 0)
    normals = np.zeros_like(vertices)
    for corner in range(3):
        to_next = corners[:, (corner + 1) % 3] - corners[:, corner]
        to_previous = corners[:, (corner + 2) % 3] - corners[:, corner]
        cosine = np.einsum("md,md->m", to_next, to_previous) / np.maximum(
            np.linalg.norm(to_next, axis=1) * np.linalg.norm(to_previous, axis=1), 1e-30
        )
        angle = np.arccos(np.clip(cosine, -1.0, 1.0))
        np.add.at(normals, faces[:, corner], face_normals * angle[:, None])
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    unit: NDArray[np.float64] = np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)
    return unit


@dataclass(frozen=True)
class MeshObject:
    """A named triangle mesh.

    vertices : (n, 3) float64
    faces : (m, 3) int64, indices into ``vertices``
    vertex_colors : (n, 3) float64 in 0..1, or None
    """

    name: str
    vertices: NDArray[np.float64]
    faces: NDArray[np.int64]
    vertex_colors: NDArray[np.float64] | None = None

    @property
    def points(self) -> NDArray[np.float64]:
        """The vertices: the (n, 3) positions, named as a point cloud's are, so code that only needs
        where an object is can read ``item.points`` of either kind."""
        return self.vertices

    @cached_property
    def vertex_normals(self) -> NDArray[np.float64]:
        """(n, 3) angle-weighted unit vertex normals, computed once per mesh."""
        return vertex_normals(self.vertices, self.faces)


@dataclass(frozen=True)
class PointObject:
    """A named point cloud.

    points : (n, 3) float64
    colors : (n, 3) float64 in 0..1, or None
    """

    name: str
    points: NDArray[np.float64]
    colors: NDArray[np.float64] | None = None


SceneObject = MeshObject | PointObject


@dataclass(frozen=True)
class Asset:
    """What one file holds: its objects, by name, in file order; ``warnings``: what loading changed that
    the user should hear (one line each, naming the file), e.g. NaN points dropped from a scan."""

    source: str
    objects: tuple[SceneObject, ...] = field(default_factory=tuple)
    warnings: tuple[str, ...] = ()

    @property
    def meshes(self) -> tuple[MeshObject, ...]:
        return tuple(item for item in self.objects if isinstance(item, MeshObject))

    @property
    def point_clouds(self) -> tuple[PointObject, ...]:
        return tuple(item for item in self.objects if isinstance(item, PointObject))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(item.name for item in self.objects)

    def bounds(self) -> NDArray[np.float64]:
        """(2, 3): the min and max corner over every object."""
        stacked = np.concatenate([item.points for item in self.objects])
        return np.stack([stacked.min(axis=0), stacked.max(axis=0)])
