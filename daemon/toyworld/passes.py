"""The condition passes of the toy world, per view, as ``anyi2v.render.passes`` draws them from a mesh.

Depth (near bright), normals (ControlNet colours), edges (one-pixel lines at depth, normal and object
discontinuities) and head-light shading, from :class:`~.trace.Hits`, with the constants of
``anyi2v.shared.conventions``.
"""

from __future__ import annotations

import math

import torch

from anyi2v.shared.conventions import AMBIENT, DEPTH_EDGE_RELATIVE, DEPTH_RANGE, NORMAL_EDGE

from .cameras import Cameras
from .trace import Hits

__all__ = ["SHININESS", "camera_normals", "depth_image", "edges", "normal_image", "shaded"]

SHININESS = 32.0  # Blinn-Phong exponent of the glossy highlight


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
