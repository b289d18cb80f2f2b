"""Condition passes: ray-cast hits to the images AnyI2V consumes.

Every pass returns float64 images in ``0..1``: ``(h, w)`` for grey passes, ``(h, w, 3)`` for colour.
Conventions (``anyi2v.shared.conventions`` holds their constants; the toy world's renderer follows the
same ones):

- depth: near is bright, the way depth ControlNets (MiDaS-style relative inverse depth) expect.
  Inverse depth of the hit pixels is normalized per image to ``DEPTH_RANGE``; background is 0.
- normal: camera space in the ScanNet / ControlNet 1.1 "normalbae" convention: red grows towards the
  viewer's left, green upwards, blue towards the viewer; ``rgb = (n + 1) / 2``. Background is 0.
- edges: white lines on black. ``edges`` are thin (one pixel, Canny-like) at depth, normal and object
  discontinuities; ``soft_edges`` are the same lines blurred and weighted by strength (HED-like).
- silhouette: 1 on any object. ``object_colors`` gives each object a fixed palette colour.
- shaded: Lambert with a head light (the light sits at the eye) plus ambient, in the vertex colours
  when the mesh has them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from anyi2v.shared.conventions import AMBIENT, DEPTH_EDGE_RELATIVE, DEPTH_RANGE, NORMAL_EDGE, SOFT_EDGE_SIGMA_PX
from anyi2v.shared.conventions import PALETTE as _PALETTE

from .camera import Camera
from .geometry import MeshObject
from .raycast import RaycastHits

# The conventions live in shared so the toy world's torch renderer draws alike.
PALETTE = np.array(_PALETTE, dtype=np.float64) / 255.0


def depth_image(hits: RaycastHits) -> NDArray[np.float64]:
    """(h, w): normalized inverse depth of the hit pixels, near bright; 0 where nothing is hit."""
    out = np.zeros(hits.depth.shape)
    hit = hits.hit
    if not np.any(hit):
        return out
    inverse = 1.0 / hits.depth[hit]
    low, high = inverse.min(), inverse.max()
    span = high - low
    unit = (inverse - low) / span if span > 1e-12 else np.ones_like(inverse)
    out[hit] = DEPTH_RANGE[0] + (DEPTH_RANGE[1] - DEPTH_RANGE[0]) * unit
    return out


def camera_normals(hits: RaycastHits, camera: Camera) -> NDArray[np.float64]:
    """(h, w, 3) unit normals in camera space (x right, y down, z forward); 0 where nothing is hit."""
    out = np.zeros_like(hits.normals)
    hit = hits.hit
    out[hit] = hits.normals[hit] @ camera.rotation().T
    return out


def normal_image(hits: RaycastHits, camera: Camera) -> NDArray[np.float64]:
    """(h, w, 3) normal map, ControlNet colours: r = left, g = up, b = towards the viewer."""
    out = np.zeros_like(hits.normals)
    hit = hits.hit
    # Camera space is (right, down, forward); the map wants (left, up, towards the viewer).
    out[hit] = (1.0 - hits.normals[hit] @ camera.rotation().T) / 2.0
    return out


def silhouette(hits: RaycastHits) -> NDArray[np.float64]:
    """(h, w): 1 where any object is hit."""
    return hits.hit.astype(np.float64)


def object_mask(hits: RaycastHits, index: int) -> NDArray[np.bool_]:
    """(h, w): pixels where object ``index`` is the visible surface."""
    return np.asarray(hits.object_index == index)


def object_colors(hits: RaycastHits) -> NDArray[np.float64]:
    """(h, w, 3): each object in its palette colour, background black (a segmentation condition)."""
    out = np.zeros((*hits.depth.shape, 3))
    hit = hits.hit
    out[hit] = PALETTE[hits.object_index[hit] % len(PALETTE)]
    return out


def _edge_strength(hits: RaycastHits) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Discontinuity strength towards the right and the lower neighbour, each (h, w), 0 for none."""
    depth = np.where(hits.hit, hits.depth, np.inf)
    strengths = []
    for axis in (1, 0):
        neighbour_depth = np.roll(depth, -1, axis=axis)
        neighbour_normal = np.roll(hits.normals, -1, axis=axis)
        neighbour_object = np.roll(hits.object_index, -1, axis=axis)
        near = np.minimum(depth, neighbour_depth)
        with np.errstate(invalid="ignore"):
            relative_jump = np.abs(depth - neighbour_depth) / near
        relative_jump = np.where(np.isfinite(near), np.nan_to_num(relative_jump, nan=0.0, posinf=10.0), 0.0)
        both_hit = hits.hit & (neighbour_object >= 0)
        normal_change = np.where(both_hit, 1.0 - np.einsum("hwc,hwc->hw", hits.normals, neighbour_normal), 0.0)
        object_change = (hits.object_index != neighbour_object).astype(np.float64)
        strength = np.maximum.reduce(
            [
                np.clip(relative_jump / DEPTH_EDGE_RELATIVE, 0.0, 2.0) / 2.0 * (relative_jump > DEPTH_EDGE_RELATIVE),
                np.clip(normal_change / NORMAL_EDGE, 0.0, 2.0) / 2.0 * (normal_change > NORMAL_EDGE),
                object_change,
            ]
        )
        # The last row / column has no neighbour: roll wrapped around.
        if axis == 1:
            strength[:, -1] = 0.0
        else:
            strength[-1, :] = 0.0
        strengths.append(strength)
    return strengths[0], strengths[1]


def edges(hits: RaycastHits) -> NDArray[np.float64]:
    """(h, w): one-pixel lines at discontinuities, drawn on the nearer side (Canny-like line art)."""
    right, down = _edge_strength(hits)
    depth = np.where(hits.hit, hits.depth, np.inf)
    out = np.zeros(depth.shape, dtype=bool)
    # Put each line on the nearer of the two pixels, so an outline hugs its object.
    near_self_right = depth <= np.roll(depth, -1, axis=1)
    near_self_down = depth <= np.roll(depth, -1, axis=0)
    right_edge, down_edge = right > 0, down > 0
    out |= right_edge & near_self_right
    out[:, 1:] |= (right_edge & ~near_self_right)[:, :-1]
    out |= down_edge & near_self_down
    out[1:, :] |= (down_edge & ~near_self_down)[:-1, :]
    return out.astype(np.float64)


def soft_edges(hits: RaycastHits) -> NDArray[np.float64]:
    """(h, w): the lines of :func:`edges`, weighted by strength and blurred (HED-like soft edges)."""
    right, down = _edge_strength(hits)
    strength = np.maximum(right, down)
    lines = np.maximum(edges(hits) * 0.6, 0.0) + 0.4 * strength
    soft = ndimage.gaussian_filter(np.clip(lines, 0.0, 1.0), sigma=SOFT_EDGE_SIGMA_PX)
    peak = soft.max()
    return np.asarray(soft / peak if peak > 0 else soft, dtype=np.float64)


def shaded(hits: RaycastHits, meshes: Sequence[MeshObject]) -> NDArray[np.float64]:
    """(h, w, 3): Lambert shading with a head light, grey or in the meshes' vertex colours (interpolated
    across each face from its corners)."""
    hit = hits.hit
    lambert = np.clip(-np.einsum("kc,kc->k", hits.normals[hit], hits.view_dirs[hit]), 0.0, 1.0)
    intensity = AMBIENT + (1.0 - AMBIENT) * lambert
    albedo = np.full((int(hit.sum()), 3), 0.8)
    hit_object = hits.object_index[hit]
    for index, mesh in enumerate(meshes):
        if mesh.vertex_colors is None:
            continue
        rows = np.flatnonzero(hit_object == index)
        corners = mesh.vertex_colors[mesh.faces[hits.triangle[hit][rows]]]  # (k, 3 corners, rgb)
        u, v = hits.uv[hit][rows, 0:1], hits.uv[hit][rows, 1:2]
        albedo[rows] = (1.0 - u - v) * corners[:, 0] + u * corners[:, 1] + v * corners[:, 2]
    out = np.zeros((*hits.depth.shape, 3))
    out[hit] = np.clip(albedo, 0.0, 1.0) * intensity[:, None]
    return out
