"""The toy world's renderer: analytic primitives, sphere-traced in torch, many views at once.

It draws the condition passes of ``anyi2v.render.passes`` with the same conventions (the constants of
``anyi2v.shared.conventions``), without Open3D, so a GPU box can render the training data:

- :func:`cast`: planar depth, normals, object index and hit points of B views (sphere tracing of the
  primitives' signed distance functions, then Newton steps along each ray).
- :func:`depth_image`, :func:`normal_image`, :func:`edges`, :func:`shaded`: the passes, per view.
- :func:`sample_surface_points`, :func:`splat`: the point-cloud modality.

Shapes: B views, K primitives per view (padded, ``present`` marks the real ones), H x W pixels, N points.
Cameras follow ``anyi2v.render.camera``: camera space has x right, y down, z forward; the field of view
is vertical; pixel (0, 0) is the top-left corner of the top-left pixel and rays go through pixel centres.
Everything is float32 on the primitives' device; no function syncs with the host inside its loops.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from anyi2v.shared.conventions import AMBIENT, DEPTH_EDGE_RELATIVE, DEPTH_RANGE, NORMAL_EDGE

KINDS = ("sphere", "box", "torus", "cone", "cylinder", "capsule", "blob")
BLOB_BALLS = 4

MAX_DISTANCE = 100.0  # rays stop this far from the eye (world units)
REFINE_STEPS = 3  # Newton steps along the ray after the march
HIT_TOLERANCE_PX = 0.02  # a ray hits where |sdf| is below this fraction of a pixel's footprint
GRADIENT_STEP = 2e-4  # finite-difference step of the normals (world units): the blend width at creases
SHININESS = 32.0  # Blinn-Phong exponent of the glossy highlight
_FAR = 1e4  # the distance of padding and of absent blob balls
_DEPTH_LEVELS = 2**22  # depth quantization of the splat z-buffer key (as render.splat)
# Central differences on a tetrahedron: sum_i k_i f(p + h k_i) / (4 h) is the gradient to O(h^2).
_TETRAHEDRON = ((1.0, -1.0, -1.0), (-1.0, -1.0, 1.0), (-1.0, 1.0, -1.0), (1.0, 1.0, 1.0))

Vector3 = tuple[float, float, float]


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


@dataclass
class Cameras:
    """B pinhole cameras.

    eye : (B, 3) world position
    rotation : (B, 3, 3) world-to-camera; rows are the camera's x (right), y (down), z (forward) axes,
        exactly as ``render.camera.Camera.rotation()``
    fov_deg : vertical field of view; focal = (H / 2) / tan(fov / 2), principal point at the image centre
    """

    eye: torch.Tensor
    rotation: torch.Tensor
    fov_deg: float = 50.0

    @classmethod
    def look_at(
        cls,
        eye: torch.Tensor | Vector3,
        target: torch.Tensor | Vector3,
        up: torch.Tensor | Vector3 = (0.0, 1.0, 0.0),
        fov_deg: float = 50.0,
    ) -> Cameras:
        """Cameras at ``eye`` looking at ``target``, each (B, 3) or (3,) (tensors or tuples, broadcast to one
        B); the same maths as ``render.camera.Camera``. Float32, on the device of the first tensor given."""
        if not 1.0 < fov_deg < 170.0:
            raise ValueError(f"fov_deg must be in (1, 170), got {fov_deg}")
        device = next((value.device for value in (eye, target, up) if isinstance(value, torch.Tensor)), None)
        eye_t, target_t, up_t = (
            torch.as_tensor(value, dtype=torch.float32, device=device).reshape(-1, 3) for value in (eye, target, up)
        )
        batch = max(eye_t.shape[0], target_t.shape[0], up_t.shape[0])
        eye_t, target_t, up_t = (value.expand(batch, 3) for value in (eye_t, target_t, up_t))
        forward = target_t - eye_t
        if bool((forward.norm(dim=-1) < 1e-9).any()):
            raise ValueError("camera target equals eye: no viewing direction")
        forward = forward / forward.norm(dim=-1, keepdim=True)
        right = torch.linalg.cross(forward, up_t)
        if bool((right.norm(dim=-1) < 1e-9 * up_t.norm(dim=-1)).any()):
            raise ValueError("camera up is parallel to the viewing direction")
        right = right / right.norm(dim=-1, keepdim=True)
        down = torch.linalg.cross(forward, right)
        return cls(eye=eye_t.contiguous(), rotation=torch.stack([right, down, forward], dim=1), fov_deg=fov_deg)

    def focal(self, height: int) -> float:
        """Focal length in pixels for images ``height`` pixels tall."""
        return (height / 2.0) / math.tan(math.radians(self.fov_deg) / 2.0)


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


def _blob(q: torch.Tensor, size: torch.Tensor, blob: torch.Tensor) -> torch.Tensor:
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
    _blob,
)


@dataclass
class _Group:
    """The present primitives of one kind, flattened: ``flat`` indexes B * K."""

    kind: int
    flat: torch.Tensor  # (n,)
    view: torch.Tensor  # (n,)
    centre: torch.Tensor  # (n, 1, 3)
    rotation: torch.Tensor  # (n, 3, 3)
    size: torch.Tensor  # (n, 1, 3)
    blob: torch.Tensor  # (n, 1, BLOB_BALLS, 4)


def _groups(primitives: Primitives) -> list[_Group]:
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
            _Group(
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


def _distances(groups: Sequence[_Group], points: torch.Tensor, count: int) -> torch.Tensor:
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
    return _distances(_groups(primitives), points.float(), primitives.kind.shape[1])


def _nearest(
    groups: Sequence[_Group], points: torch.Tensor, count: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """points (B, P, 3) -> the nearest primitive's signed distance (B, P), its index (B, P) and its
    gradient (B, P, 3) by central differences on a tetrahedron (unnormalized)."""
    distances = _distances(groups, points, count)
    value, index = distances.min(dim=1)
    gradient = torch.zeros_like(points)
    for corner in _TETRAHEDRON:
        offset = points.new_tensor(corner)
        around = _distances(groups, points + GRADIENT_STEP * offset, count).gather(1, index[:, None]).squeeze(1)
        gradient = gradient + around[..., None] * offset
    return value, index, gradient / (4.0 * GRADIENT_STEP)


def _rays(cameras: Cameras, height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit world-space directions (B, H*W, 3) through the pixel centres, and the planar depth of a unit
    step along each, (H*W,)."""
    focal = cameras.focal(height)
    columns = (torch.arange(width, device=device, dtype=torch.float32) + 0.5 - width / 2.0) / focal
    rows = (torch.arange(height, device=device, dtype=torch.float32) + 0.5 - height / 2.0) / focal
    camera_dirs = torch.stack(
        [
            columns[None, :].expand(height, width),
            rows[:, None].expand(height, width),
            torch.ones(height, width, device=device),
        ],
        dim=-1,
    ).reshape(-1, 3)
    length = camera_dirs.norm(dim=-1)
    world = torch.einsum("pj,bji->bpi", camera_dirs / length[:, None], cameras.rotation.to(device).float())
    return world, 1.0 / length


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
    groups = _groups(primitives)
    directions, planar = _rays(cameras, height, width, device)
    origins = cameras.eye.to(device).float()[:, None, :]
    pixel = 1.0 / cameras.focal(height)  # a pixel's footprint per unit of planar depth

    # 1. March: t grows by the distance bound, so it never passes the first surface.
    t = torch.zeros(directions.shape[:2], device=device)
    for _ in range(steps):
        nearest = _distances(groups, origins + t[..., None] * directions, count).amin(dim=1)
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


# --- Passes, as render.passes, per view ---


def depth_image(hits: Hits) -> torch.Tensor:
    """(B, H, W): inverse depth of the hit pixels normalized per view to ``DEPTH_RANGE``, near bright;
    background 0; a view whose hits all share one depth gets ``DEPTH_RANGE[1]``."""
    hit = hits.hit
    inverse = torch.where(hit, 1.0 / hits.depth, 0.0)
    low = torch.where(hit, inverse, math.inf).amin(dim=(1, 2), keepdim=True)
    high = torch.where(hit, inverse, -math.inf).amax(dim=(1, 2), keepdim=True)
    span = high - low
    # Relative, unlike the float64 renderer's 1e-12: float32 depths of one plane differ by rounding.
    flat = ~(span > 1e-6 * high)
    unit = torch.where(flat, 1.0, (inverse - low) / torch.where(flat, 1.0, span))
    out: torch.Tensor = torch.where(hit, DEPTH_RANGE[0] + (DEPTH_RANGE[1] - DEPTH_RANGE[0]) * unit, 0.0)
    return out


def camera_normals(hits: Hits, cameras: Cameras) -> torch.Tensor:
    """(B, H, W, 3) unit normals in camera space (x right, y down, z forward); 0 where nothing is hit."""
    rotation = cameras.rotation.to(hits.normals.device).float()
    out: torch.Tensor = torch.einsum("bhwj,bij->bhwi", hits.normals, rotation)
    return out


def normal_image(hits: Hits, cameras: Cameras) -> torch.Tensor:
    """(B, H, W, 3) normal map, ControlNet colours: r = left, g = up, b = towards the viewer; background 0."""
    out: torch.Tensor = torch.where(hits.hit[..., None], (1.0 - camera_normals(hits, cameras)) / 2.0, 0.0)
    return out


def _pad_end(x: torch.Tensor, dim: int, value: float | bool) -> torch.Tensor:
    """Append one slice of ``value`` at the end of ``dim``."""
    shape = list(x.shape)
    shape[dim] = 1
    return torch.cat([x, x.new_full(shape, value)], dim=dim)


def _edge_strength(hits: Hits) -> tuple[torch.Tensor, torch.Tensor]:
    """Discontinuity strength towards the right and the lower neighbour, each (B, H, W), 0 for none; the
    last column / row has no neighbour."""
    hit = hits.hit
    depth = torch.where(hit, hits.depth, math.inf)
    strengths = []
    for dim in (2, 1):
        length = depth.shape[dim] - 1
        here, there = depth.narrow(dim, 0, length), depth.narrow(dim, 1, length)
        near = torch.minimum(here, there)
        relative_jump = torch.nan_to_num((here - there).abs() / near, nan=0.0, posinf=10.0)
        relative_jump = torch.where(torch.isfinite(near), relative_jump, 0.0)
        here_object = hits.object_index.narrow(dim, 0, length)
        there_object = hits.object_index.narrow(dim, 1, length)
        both_hit = (here_object >= 0) & (there_object >= 0)
        cosine = (hits.normals.narrow(dim, 0, length) * hits.normals.narrow(dim, 1, length)).sum(dim=-1)
        normal_change = torch.where(both_hit, 1.0 - cosine, 0.0)
        strength = torch.maximum(
            torch.maximum(
                (relative_jump / DEPTH_EDGE_RELATIVE).clamp(0.0, 2.0) / 2.0 * (relative_jump > DEPTH_EDGE_RELATIVE),
                (normal_change / NORMAL_EDGE).clamp(0.0, 2.0) / 2.0 * (normal_change > NORMAL_EDGE),
            ),
            (here_object != there_object).to(depth.dtype),
        )
        strengths.append(_pad_end(strength, dim, 0.0))
    return strengths[0], strengths[1]


def edges(hits: Hits) -> torch.Tensor:
    """(B, H, W): one-pixel lines (1.0 on 0.0) at depth, normal and object discontinuities, drawn on the
    nearer of the two pixels, as ``render.passes.edges``."""
    right, down = _edge_strength(hits)
    depth = torch.where(hits.hit, hits.depth, math.inf)
    out = torch.zeros_like(hits.hit)
    for dim, strength in ((2, right), (1, down)):
        length = depth.shape[dim] - 1
        near_self = _pad_end(depth.narrow(dim, 0, length) <= depth.narrow(dim, 1, length), dim, True)
        line = strength > 0.0
        out = out | (line & near_self)
        # The neighbour is nearer: the line goes one pixel on, onto it.
        moved = (line & ~near_self).narrow(dim, 0, length)
        out = out | torch.cat([torch.zeros_like(moved.narrow(dim, 0, 1)), moved], dim=dim)
    return out.to(hits.depth.dtype)


def _per_pixel(values: torch.Tensor, object_index: torch.Tensor) -> torch.Tensor:
    """values (B, K, C) picked by object_index (B, H, W) -> (B, H, W, C); background gets object 0's."""
    batch, height, width = object_index.shape
    channels = values.shape[-1]
    index = object_index.clamp(min=0).reshape(batch, -1, 1).expand(-1, -1, channels)
    return values.gather(1, index).reshape(batch, height, width, channels)


def shaded(
    hits: Hits, cameras: Cameras, albedo: torch.Tensor, gloss: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Head-light shading of each primitive in its colour: image (B, H, W, 3) in 0..1, background 0, and
    mask (B, H, W) bool, the pixels to composite over a background (``hits.hit``).

    albedo : (B, K, 3) in 0..1; gloss : (B, K) in 0..1. Lambert with the light at the eye,
    ``AMBIENT + (1 - AMBIENT) * clamp(n . -view_dir)``, as ``render.passes.shaded``, plus a white
    Blinn-Phong highlight ``gloss * lambert ** SHININESS`` (with a head light the half vector is the view
    direction); gloss 0 is exactly the mesh renderer's formula.
    """
    hit = hits.hit
    eye = cameras.eye.to(hits.points.device).float()[:, None, None, :]
    view = hits.points - eye
    view_dirs = view / view.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    lambert = (-(hits.normals * view_dirs).sum(dim=-1)).clamp(0.0, 1.0)
    intensity = AMBIENT + (1.0 - AMBIENT) * lambert
    colour = _per_pixel(albedo.float().clamp(0.0, 1.0), hits.object_index)
    highlight = _per_pixel(gloss.float()[..., None], hits.object_index)[..., 0] * lambert.pow(SHININESS)
    lit = (colour * intensity[..., None] + highlight[..., None]).clamp(0.0, 1.0)
    return torch.where(hit[..., None], lit, 0.0), hit


# --- Points ---


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
        inside = _blob(start + middle[..., None] * direction, size, blob) < 0.0
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
