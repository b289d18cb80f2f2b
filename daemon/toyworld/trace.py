"""Sphere tracing of the toy world's primitives: what B cameras see, per pixel.

:func:`cast` marches every ray by the primitives' distance bound (no early exit, no host sync), puts the
hit on the surface with Newton steps, and takes normals from the hit primitive's SDF gradient.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .cameras import Cameras, pixel_rays
from .primitives import KindGroup, Primitives, group_by_kind, grouped_distances

__all__ = ["GRADIENT_STEP", "HIT_TOLERANCE_PX", "MAX_DISTANCE", "REFINE_STEPS", "Hits", "cast"]

MAX_DISTANCE = 100.0  # rays stop this far from the eye (world units)
REFINE_STEPS = 3  # Newton steps along the ray after the march
HIT_TOLERANCE_PX = 0.02  # a ray hits where |sdf| is below this fraction of a pixel's footprint
GRADIENT_STEP = 2e-4  # finite-difference step of the normals (world units): the blend width at creases
# Central differences on a tetrahedron: sum_i k_i f(p + h k_i) / (4 h) is the gradient to O(h^2).
_TETRAHEDRON = ((1.0, -1.0, -1.0), (-1.0, -1.0, 1.0), (-1.0, 1.0, -1.0), (1.0, 1.0, 1.0))


@dataclass
class Hits:
    """What B cameras see, per pixel.

    depth : (B, H, W) planar depth (camera z), +inf where nothing is hit
    normals : (B, H, W, 3) unit world-space normals facing the camera, 0 where nothing is hit
    object_index : (B, H, W) int64, the primitive's index k, -1 where nothing is hit
    points : (B, H, W, 3) world hit points, 0 where nothing is hit
    """

    depth: torch.Tensor
    normals: torch.Tensor
    object_index: torch.Tensor
    points: torch.Tensor

    @property
    def hit(self) -> torch.Tensor:
        """(B, H, W) bool: pixels that see a primitive."""
        out: torch.Tensor = self.object_index >= 0
        return out


def _nearest(
    groups: Sequence[KindGroup], points: torch.Tensor, count: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """points (B, P, 3) -> the nearest primitive's signed distance (B, P), its index (B, P) and its
    gradient (B, P, 3) by central differences on a tetrahedron (unnormalized)."""
    distances = grouped_distances(groups, points, count)
    value, index = distances.min(dim=1)
    gradient = torch.zeros_like(points)
    for corner in _TETRAHEDRON:
        offset = points.new_tensor(corner)
        around = grouped_distances(groups, points + GRADIENT_STEP * offset, count).gather(1, index[:, None]).squeeze(1)
        gradient = gradient + around[..., None] * offset
    return value, index, gradient / (4.0 * GRADIENT_STEP)


def cast(
    primitives: Primitives,
    cameras: Cameras,
    height: int,
    width: int,
    steps: int = 64,
    max_distance: float = MAX_DISTANCE,
) -> Hits:
    """Sphere-trace B views of the primitives (``cameras`` and ``primitives`` share B) at ``height x width``.

    ``steps`` sphere-tracing steps march every ray (no early exit, no host sync), then
    :data:`REFINE_STEPS` Newton steps along the ray put the hit on the surface; a ray hits where the
    nearest primitive's |sdf| is below :data:`HIT_TOLERANCE_PX` of a pixel before ``max_distance``.
    Normals are the hit primitive's SDF gradient by central differences, turned towards the camera.
    """
    batch, count = primitives.kind.shape
    if cameras.eye.shape[0] != batch:
        raise ValueError(f"cast needs one camera per view: {cameras.eye.shape[0]} cameras for {batch} views")
    device = primitives.centre.device
    groups = group_by_kind(primitives)
    directions, planar = pixel_rays(cameras, height, width, device)
    origins = cameras.eye.to(device).float()[:, None, :]
    pixel = 1.0 / cameras.focal(height)  # a pixel's footprint per unit of planar depth

    # 1. March: t grows by the distance bound, so it never passes the first surface.
    t = torch.zeros(directions.shape[:2], device=device)
    for _ in range(steps):
        nearest = grouped_distances(groups, origins + t[..., None] * directions, count).amin(dim=1)
        t = (t + nearest).clamp(0.0, max_distance)

    # 2. Refine: Newton steps on sdf(t) along the ray, for rays within a pixel of a surface.
    for _ in range(REFINE_STEPS):
        value, _, gradient = _nearest(groups, origins + t[..., None] * directions, count)
        approach = -(gradient * directions).sum(dim=-1)
        close = value.abs() < pixel * planar * t.clamp(min=1e-6)
        step = torch.where(close, value / approach.clamp(min=0.1), 0.0)
        t = (t + step).clamp(0.0, max_distance)

    # 3. Classify; normals from the hit primitive's gradient.
    points = origins + t[..., None] * directions
    value, index, gradient = _nearest(groups, points, count)
    depth = t * planar
    hit = (value.abs() < HIT_TOLERANCE_PX * pixel * depth) & (t < max_distance) & (t > 0.0)
    normals = gradient / gradient.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    facing = (normals * directions).sum(dim=-1, keepdim=True) > 0.0
    normals = torch.where(facing, -normals, normals)
    shape = (batch, height, width)
    return Hits(
        depth=torch.where(hit, depth, math.inf).reshape(shape),
        normals=torch.where(hit[..., None], normals, 0.0).reshape(*shape, 3),
        object_index=torch.where(hit, index, -1).reshape(shape),
        points=torch.where(hit[..., None], points, 0.0).reshape(*shape, 3),
    )
