"""Triangles that cost ray-casting time and draw nothing: zero-area ones and repeats of another.

A ray-casting BVH cannot split triangles that lie on top of each other: 100,000 copies of one triangle
made every ray that hit it test all 100,000 (58.6 s for one 512x512 image). Loading drops them, in the
loader process and so under its time limit, and says how many.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .geometry import MeshObject


def zero_area_faces(vertices: NDArray[np.float64], faces: NDArray[np.int64]) -> NDArray[np.bool_]:
    """(m,) True where a face's corners lie on one line or point (its cross product is exactly 0).

    vertices : (n, 3) float64; faces : (m, 3) int64, in range."""
    corners = vertices[faces]
    with np.errstate(over="ignore", invalid="ignore"):  # coordinates near 1e308: not zero, refused later
        cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    return np.asarray((cross == 0.0).all(axis=1))


def duplicate_faces(vertices: NDArray[np.float64], faces: NDArray[np.int64]) -> NDArray[np.bool_]:
    """(m,) True where a face has the same three corner positions as an earlier face, in any order
    (either winding, and whether or not they share vertices)."""
    if len(faces) < 2:
        return np.zeros(len(faces), dtype=bool)
    positions = np.ascontiguousarray(vertices + 0.0)  # + 0.0: -0.0 and 0.0 are the same place
    _, place = np.unique(positions.view(np.dtype((np.void, 24))).ravel(), return_inverse=True)
    corners = np.sort(place.reshape(-1)[faces], axis=1).astype(np.int64)
    _, first = np.unique(np.ascontiguousarray(corners).view(np.dtype((np.void, 24))).ravel(), return_index=True)
    repeated = np.ones(len(faces), dtype=bool)
    repeated[first] = False
    return repeated


def drop_idle_faces(mesh: MeshObject) -> tuple[MeshObject, int, int]:
    """``mesh`` without zero-area and repeated faces (the first of each repeat is kept, the order is
    kept), and how many of each were dropped. Faces must be in range."""
    flat = zero_area_faces(mesh.vertices, mesh.faces)
    repeated = duplicate_faces(mesh.vertices, mesh.faces) & ~flat
    if not flat.any() and not repeated.any():
        return mesh, 0, 0
    kept = mesh.faces[~(flat | repeated)]
    return MeshObject(mesh.name, mesh.vertices, kept, mesh.vertex_colors), int(flat.sum()), int(repeated.sum())
