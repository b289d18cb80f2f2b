"""The toy world's point-cloud modality: random points on the primitives' surfaces, and their splats.

:func:`sample_surface_points` spreads points by surface area; :func:`splat` draws z-buffered disks as
``anyi2v.render.splat.splat`` does.
"""

from __future__ import annotations

import math

import torch

from .cameras import Cameras
from .primitives import BLOB_BALLS, Primitives, blob_distance

__all__ = ["sample_surface_points", "splat"]

_DEPTH_LEVELS = 2**22  # depth quantization of the splat z-buffer key (as render.splat)


def _disk_offsets(radius_px: int) -> list[tuple[int, int]]:
    """(dy, dx) of the disk footprint of ``render.splat.disk``."""
    span = range(-radius_px, radius_px + 1)
    return [(dy, dx) for dy in span for dx in span if dy * dy + dx * dx <= radius_px**2 + radius_px * 0.5]


def splat(
    points: torch.Tensor, colours: torch.Tensor, cameras: Cameras, height: int, width: int, radius_px: int = 1
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Z-buffered point splats, as ``render.splat.splat``: each pixel shows the nearest point whose pixel lies
    within the disk of ``radius_px``.

    points : (B, N, 3) world (non-finite points are skipped); colours : (B, N, 3).
    returns : image (B, H, W, 3), 0 where empty; depth (B, H, W) planar, inf where empty; mask (B, H, W) bool.
    """
    if radius_px < 0:
        raise ValueError(f"radius_px must be >= 0, got {radius_px}")
    batch, n_points, _ = points.shape
    device = points.device
    rotation = cameras.rotation.to(device).float()
    camera_points = torch.einsum("bnj,bij->bni", points.float() - cameras.eye.to(device).float()[:, None], rotation)
    depth = camera_points[..., 2]
    safe = torch.where(depth.abs() < 1e-12, 1e-12, depth)
    focal = cameras.focal(height)
    x = focal * camera_points[..., 0] / safe + width / 2.0
    y = focal * camera_points[..., 1] / safe + height / 2.0
    visible = torch.isfinite(camera_points).all(dim=-1) & (depth > 1e-6)
    visible = visible & (x >= 0.0) & (x < width) & (y >= 0.0) & (y < height)
    column = torch.where(visible, x, 0.0).floor().long().clamp(0, width - 1)
    row = torch.where(visible, y, 0.0).floor().long().clamp(0, height - 1)

    # One key per point: quantized depth (per view) in the high part, point index in the low part, so the
    # minimum key is the nearest point and says which point it is.
    near = torch.where(visible, depth, math.inf).amin(dim=1, keepdim=True)
    far = torch.where(visible, depth, -math.inf).amax(dim=1, keepdim=True)
    span = torch.where(far > near, far - near, 1.0).clamp(min=1e-12)
    levels = torch.where(visible, (depth - near) / span * (_DEPTH_LEVELS - 1), 0.0).floor().long()
    levels = levels.clamp(0, _DEPTH_LEVELS - 1)
    keys = levels * n_points + torch.arange(n_points, device=device)
    no_point = _DEPTH_LEVELS * n_points
    pixel = torch.where(visible, row * width + column, height * width)  # the hidden go to a spare slot
    buffer = torch.full((batch, height * width + 1), no_point, dtype=torch.long, device=device)
    buffer = buffer.scatter_reduce(1, pixel, keys, reduce="amin", include_self=True)
    grid = buffer[:, : height * width].reshape(batch, height, width)
    if radius_px > 0:
        padded = torch.nn.functional.pad(grid, (radius_px,) * 4, value=no_point)
        for dy, dx in _disk_offsets(radius_px):
            shifted = padded[:, radius_px + dy : radius_px + dy + height, radius_px + dx : radius_px + dx + width]
            grid = torch.minimum(grid, shifted)

    mask = grid < no_point
    chosen = torch.where(mask, grid % max(n_points, 1), 0).reshape(batch, -1)
    out_depth = torch.where(mask, depth.gather(1, chosen).reshape(batch, height, width), math.inf)
    picked = colours.float().gather(1, chosen[..., None].expand(-1, -1, 3)).reshape(batch, height, width, 3)
    image = torch.where(mask[..., None], picked, 0.0)
    return image, out_depth, mask


def _surface_area(primitives: Primitives) -> torch.Tensor:
    """(B, K) surface area of each primitive by its kind (the blob's is its balls', overlaps counted twice)."""
    size = primitives.size.float()
    a, b, c = size[..., 0], size[..., 1], size[..., 2]
    radii = (primitives.blob[..., 3].float() * a[..., None]).clamp(min=0.0)
    areas = (
        4.0 * math.pi * a.square(),
        8.0 * (a * b + b * c + c * a),
        4.0 * math.pi**2 * a * b,
        math.pi * a * (a + (a.square() + 4.0 * b.square()).sqrt()),
        2.0 * math.pi * a * (a + 2.0 * b),
        4.0 * math.pi * a * (a + b),
        4.0 * math.pi * radii.square().sum(dim=-1),
    )
    out = torch.zeros_like(a)
    for kind_index, area in enumerate(areas):
        out = torch.where(primitives.kind == kind_index, area, out)
    return out


def _unit_vectors(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Uniform unit vectors (..., 3) from two uniforms (...)."""
    y = 1.0 - 2.0 * u
    ring = (1.0 - y.square()).clamp(min=0.0).sqrt()
    angle = 2.0 * math.pi * v
    return torch.stack([ring * torch.cos(angle), y, ring * torch.sin(angle)], dim=-1)


def _surface_samples(kind: torch.Tensor, size: torch.Tensor, blob: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Object-space points (..., 3) on each element's own kind, uniform by area (the blob: see
    :func:`_blob_samples`): kind (...), size (..., 3), blob (..., BLOB_BALLS, 4), u (..., 5) uniforms."""
    a, b, c = size[..., 0], size[..., 1], size[..., 2]
    angle = 2.0 * math.pi * u[..., 1]
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero = torch.zeros_like(a)

    sphere = a[..., None] * _unit_vectors(u[..., 0], u[..., 1])

    # Box: a face by area, then a uniform point on it.
    face_area = torch.stack([b * c, a * c, a * b], dim=-1)
    cumulative = face_area.cumsum(dim=-1) / face_area.sum(dim=-1, keepdim=True).clamp(min=1e-12)
    axis = (u[..., :1] > cumulative).sum(dim=-1).clamp(max=2)
    box = (2.0 * u[..., 2:5] - 1.0) * size
    side = torch.where(u[..., 1] < 0.5, -1.0, 1.0)[..., None] * size
    box = torch.where(torch.nn.functional.one_hot(axis, 3).bool(), side, box)

    # Torus: the tube angle has density R + r cos(theta); invert its distribution with Newton steps.
    target = 2.0 * math.pi * a * u[..., 2]
    theta = 2.0 * math.pi * u[..., 2]
    for _ in range(8):
        theta = theta - (a * theta + b * torch.sin(theta) - target) / (a + b * torch.cos(theta)).clamp(min=1e-3)
    reach = a + b * torch.cos(theta)
    torus = torch.stack([reach * cos, b * torch.sin(theta), reach * sin], dim=-1)

    # Cone: the base disk or the side by area; on the side, the fraction s from the apex has density s.
    slant = a * (a.square() + 4.0 * b.square()).sqrt()
    on_base = u[..., 0] * (a.square() + slant) < a.square()
    spread = u[..., 2].sqrt()
    cone = torch.stack(
        [
            spread * a * cos,
            torch.where(on_base, -b, b - 2.0 * b * spread),
            spread * a * sin,
        ],
        dim=-1,
    )

    # Cylinder: the side or a cap by area.
    on_cap = u[..., 0] * (a + 2.0 * b) < a
    radial = torch.where(on_cap, a * spread, a)
    cylinder = torch.stack(
        [
            radial * cos,
            torch.where(on_cap, torch.where(u[..., 3] < 0.5, -b, b), b * (2.0 * u[..., 2] - 1.0)),
            radial * sin,
        ],
        dim=-1,
    )

    # Capsule: the side or the two half spheres by area.
    on_ends = u[..., 0] * (a + b) < a
    end = a[..., None] * _unit_vectors(u[..., 2], u[..., 1])
    end = end + torch.stack([zero, torch.where(end[..., 1] < 0.0, -b, b), zero], dim=-1)
    tube = torch.stack([a * cos, b * (2.0 * u[..., 2] - 1.0), a * sin], dim=-1)
    capsule = torch.where(on_ends[..., None], end, tube)

    candidates = (sphere, box, torus, cone, cylinder, capsule, _blob_samples(size, blob, u))
    out = torch.zeros_like(sphere)
    for kind_index, candidate in enumerate(candidates):
        out = torch.where((kind == kind_index)[..., None], candidate, out)
    return out


def _blob_samples(size: torch.Tensor, blob: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Object-space points (..., 3) on blobs: a ball chosen by area, a uniform direction from its centre, and
    the surface crossing along it found by bisection (the blob is not star-shaped in general, so this is
    spread by the balls' solid angles rather than exactly by area)."""
    scale, smoothness = size[..., 0], size[..., 1].clamp(min=1e-6)
    radii = (blob[..., 3] * scale[..., None]).clamp(min=0.0)
    centres = blob[..., :3] * scale[..., None, None]
    ball_area = radii.square()
    cumulative = ball_area.cumsum(dim=-1) / ball_area.sum(dim=-1, keepdim=True).clamp(min=1e-12)
    ball = (u[..., :1] > cumulative).sum(dim=-1).clamp(max=BLOB_BALLS - 1)
    start = centres.gather(-2, ball[..., None, None].expand(*ball.shape, 1, 3)).squeeze(-2)
    direction = _unit_vectors(u[..., 2], u[..., 1])
    # Inside at the ball's centre; outside once every ball is at least the smoothness away.
    reach = torch.where(radii > 0.0, (centres - start[..., None, :]).norm(dim=-1) + radii, 0.0)
    low, high = torch.zeros_like(scale), reach.amax(dim=-1) + smoothness
    for _ in range(32):
        middle = (low + high) / 2.0
        inside = blob_distance(start + middle[..., None] * direction, size, blob) < 0.0
        low, high = torch.where(inside, middle, low), torch.where(inside, high, middle)
    return start + ((low + high) / 2.0)[..., None] * direction


def sample_surface_points(
    primitives: Primitives, count: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` random points per view on its present primitives' surfaces, spread by surface area.

    returns : points (B, count, 3) world; object (B, count) int64, the primitive k each lies on. Views with
    no present primitive get NaN points and object -1. Every kind is sampled uniformly by area but the
    blob (see :func:`_blob_samples`).
    """
    device = primitives.centre.device
    batch, _ = primitives.kind.shape
    weights = torch.where(primitives.present, _surface_area(primitives).clamp(min=1e-12), 0.0)
    empty = weights.sum(dim=1) <= 0.0
    weights = torch.where(empty[:, None], 1.0, weights)
    choice = torch.multinomial(weights, count, replacement=True, generator=generator)  # (B, count)

    kind = primitives.kind.gather(1, choice)
    size = primitives.size.float().gather(1, choice[..., None].expand(-1, -1, 3))
    blob = primitives.blob.float().gather(1, choice[..., None, None].expand(-1, -1, BLOB_BALLS, 4))
    centre = primitives.centre.float().gather(1, choice[..., None].expand(-1, -1, 3))
    rotation = primitives.rotation.float().gather(1, choice[..., None, None].expand(-1, -1, 3, 3))
    uniforms = torch.rand((batch, count, 5), generator=generator, device=device)
    local = _surface_samples(kind, size, blob, uniforms)

    world = torch.einsum("bnij,bnj->bni", rotation, local) + centre
    world = torch.where(empty[:, None, None], math.nan, world)
    return world, torch.where(empty[:, None], -1, choice)
