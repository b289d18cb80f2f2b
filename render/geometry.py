"""Geometry values that loading produces and the passes consume.

All coordinates are float64 in the asset's normalized frame (see ``assets.normalize``): Y up, the
whole asset fitted into the cube ``[-0.5, 0.5]^3`` and centred at the origin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray


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
    """What one file holds: its objects, by name, in file order."""

    source: str
    objects: tuple[SceneObject, ...] = field(default_factory=tuple)

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
        stacked = np.concatenate(
            [item.vertices if isinstance(item, MeshObject) else item.points for item in self.objects]
        )
        return np.stack([stacked.min(axis=0), stacked.max(axis=0)])
