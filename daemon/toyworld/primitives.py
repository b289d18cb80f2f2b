"""The toy world's analytic primitives and their signed distance functions, batched over views.

Shapes: B views, K primitives per view (padded, ``present`` marks the real ones), P points. Each kind's
distance is exact but the blob's (a smooth union of balls, a conservative bound), so sphere tracing
never steps through a surface.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "BLOB_BALLS",
    "KINDS",
    "KindGroup",
    "Primitives",
    "blob_distance",
    "group_by_kind",
    "grouped_distances",
    "signed_distances",
]

KINDS = ("sphere", "box", "torus", "cone", "cylinder", "capsule", "blob")
BLOB_BALLS = 4
_FAR = 1e4  # the distance of padding and of absent blob balls


@dataclass
class Primitives:
    """B views, each with up to K primitives (padded; ``present`` marks real ones); float32 tensors on one device.

    kind : (B, K) int64, index into :data:`KINDS`
    centre : (B, K, 3) world position
    rotation : (B, K, 3, 3) object-to-world rotation (world = rotation @ object + centre)
    size : (B, K, 3), per kind: sphere (radius, _, _); box half extents (x, y, z); torus (major radius,
        minor radius, _) in the object's xz plane; cone (base radius, half height, _) along object y, apex
        up; cylinder (radius, half height, _) along y; capsule (radius, half segment, _) along y; blob
        (scale, smoothness, _), the smoothness in world units
    blob : (B, K, BLOB_BALLS, 4) for kind blob: ball centre offsets (object space, times scale) and radii
        (times scale); the balls are joined by a polynomial smooth minimum of that smoothness; a ball of
        radius <= 0 is left out
    present : (B, K) bool
    """

    kind: torch.Tensor
    centre: torch.Tensor
    rotation: torch.Tensor
    size: torch.Tensor
    blob: torch.Tensor
    present: torch.Tensor


# --- Signed distances, in object space: q (..., 3), size (..., 3), blob (..., BLOB_BALLS, 4) -> (...) ---


def _sphere(q: torch.Tensor, size: torch.Tensor, blob: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = q.norm(dim=-1) - size[..., 0]
    return out


def _box(q: torch.Tensor, size: torch.Tensor, blob: torch.Tensor) -> torch.Tensor:
    d = q.abs() - size
    out: torch.Tensor = d.clamp(min=0.0).norm(dim=-1) + d.amax(dim=-1).clamp(max=0.0)
    return out


def _torus(q: torch.Tensor, size: torch.Tensor, blob: torch.Tensor) -> torch.Tensor:
    ring = torch.hypot(q[..., 0], q[..., 2]) - size[..., 0]
    return torch.hypot(ring, q[..., 1]) - size[..., 1]


def _cone(q: torch.Tensor, size: torch.Tensor, blob: torch.Tensor) -> torch.Tensor:
    """Exact capped cone with a top radius of 0 (Quilez, "distance functions", sdCappedCone)."""
    radius, half = size[..., 0], size[..., 1]
    x, y = torch.hypot(q[..., 0], q[..., 2]), q[..., 1]
    # To the base disk below, to the apex above: (x - min(x, r or 0), |y| - h).
    cap_x = x - torch.minimum(x, torch.where(y < 0.0, radius, torch.zeros_like(radius)))
    cap_y = y.abs() - half
    # To the slanted side, the segment from the apex (0, h) to the rim (r, -h).
    along = ((-x) * (-radius) + (half - y) * (2.0 * half)) / (radius.square() + 4.0 * half.square()).clamp(min=1e-12)
    along = along.clamp(0.0, 1.0)
    side_x, side_y = x - radius * along, y - half + 2.0 * half * along
    sign = torch.where((side_x < 0.0) & (cap_y < 0.0), -1.0, 1.0)
    return sign * torch.minimum(cap_x.square() + cap_y.square(), side_x.square() + side_y.square()).sqrt()


def _cylinder(q: torch.Tensor, size: torch.Tensor, blob: torch.Tensor) -> torch.Tensor:
    dx = torch.hypot(q[..., 0], q[..., 2]) - size[..., 0]
    dy = q[..., 1].abs() - size[..., 1]
    return torch.maximum(dx, dy).clamp(max=0.0) + torch.hypot(dx.clamp(min=0.0), dy.clamp(min=0.0))


def _capsule(q: torch.Tensor, size: torch.Tensor, blob: torch.Tensor) -> torch.Tensor:
    half = size[..., 1]
    y = q[..., 1] - torch.maximum(torch.minimum(q[..., 1], half), -half)
    return (q[..., 0].square() + y.square() + q[..., 2].square()).sqrt() - size[..., 0]


def _smooth_min(a: torch.Tensor, b: torch.Tensor, smoothness: torch.Tensor) -> torch.Tensor:
    """Quadratic smooth minimum (Quilez), min(a, b) - k h^2 / 4 with h = max(k - |a - b|, 0) / k; its
    gradient blends the two with weights summing to 1, so it stays a conservative distance bound. Written
    around min(a, b), so a far ball costs no precision."""
    blend = (smoothness - (a - b).abs()).clamp(min=0.0) / smoothness
    return torch.minimum(a, b) - 0.25 * smoothness * blend.square()


def blob_distance(q: torch.Tensor, size: torch.Tensor, blob: torch.Tensor) -> torch.Tensor:
    """The blob: its balls (offsets and radii times the scale; radius <= 0 left out) joined by
    :func:`_smooth_min` of the smoothness; a conservative distance bound."""
    scale, smoothness = size[..., 0], size[..., 1].clamp(min=1e-6)
    centres = blob[..., :3] * scale[..., None, None]
    radii = blob[..., 3] * scale[..., None]
    balls = (q[..., None, :] - centres).norm(dim=-1) - radii
    balls = torch.where(radii > 0.0, balls, _FAR)
    out = balls[..., 0]
    for ball in range(1, BLOB_BALLS):
        out = _smooth_min(out, balls[..., ball], smoothness)
    return out


_DISTANCES: tuple[Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor], ...] = (
    _sphere,
    _box,
    _torus,
    _cone,
    _cylinder,
    _capsule,
    blob_distance,
)


@dataclass
class KindGroup:
    """The present primitives of one kind, flattened: ``flat`` indexes B * K."""

    kind: int
    flat: torch.Tensor  # (n,)
    view: torch.Tensor  # (n,)
    centre: torch.Tensor  # (n, 1, 3)
    rotation: torch.Tensor  # (n, 3, 3)
    size: torch.Tensor  # (n, 1, 3)
    blob: torch.Tensor  # (n, 1, BLOB_BALLS, 4)


def group_by_kind(primitives: Primitives) -> list[KindGroup]:
    """The present primitives by kind (one host sync per kind, once per call)."""
    count = primitives.kind.shape[1]
    kind = primitives.kind.reshape(-1)
    present = primitives.present.reshape(-1)
    groups = []
    for kind_index in range(len(KINDS)):
        flat = torch.nonzero(present & (kind == kind_index)).squeeze(1)
        if flat.numel() == 0:
            continue
        groups.append(
            KindGroup(
                kind=kind_index,
                flat=flat,
                view=torch.div(flat, count, rounding_mode="floor"),
                centre=primitives.centre.reshape(-1, 3)[flat, None].float(),
                rotation=primitives.rotation.reshape(-1, 3, 3)[flat].float(),
                size=primitives.size.reshape(-1, 3)[flat, None].float(),
                blob=primitives.blob.reshape(-1, BLOB_BALLS, 4)[flat, None].float(),
            )
        )
    return groups


def grouped_distances(groups: Sequence[KindGroup], points: torch.Tensor, count: int) -> torch.Tensor:
    """points (B, P, 3) world -> (B, K, P) signed distance to each of the K primitives (padding: far)."""
    batch, n_points, _ = points.shape
    out = points.new_full((batch * count, n_points), _FAR)
    for group in groups:
        local = torch.bmm(points[group.view] - group.centre, group.rotation)  # object = R^T (x - c)
        out[group.flat] = _DISTANCES[group.kind](local, group.size, group.blob)
    return out.reshape(batch, count, n_points)


def signed_distances(primitives: Primitives, points: torch.Tensor) -> torch.Tensor:
    """points (B, P, 3) world -> (B, K, P) signed distance of each point to each primitive: exact for every
    kind but the blob, whose smooth union is a conservative bound; padding gets a large positive value."""
    return grouped_distances(group_by_kind(primitives), points.float(), primitives.kind.shape[1])
