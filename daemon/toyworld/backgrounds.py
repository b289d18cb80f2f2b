"""Toy-world backgrounds in torch: solid, gradient, stripes, checker and soft noise.

Patterns live in screen space, in units of the image height, and slide with the camera's pan (a
background far behind the objects moves less than they do), so a panning camera is visible.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as functional

from .scenes import Background

NOISE_CELLS = 6  # the soft noise is bicubic upsampling of a NOISE_CELLS x NOISE_CELLS random grid


def background(spec: Background, shifts: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(F, H, W, 3) float images in 0..1; shifts : (F, 2) pattern offset per frame (x, y) in image heights."""
    device = shifts.device
    frames = shifts.shape[0]
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / height
    x = xs[None, None, :] + shifts[:, 0, None, None]  # (F, 1, W)
    y = ys[None, :, None] + shifts[:, 1, None, None]  # (F, H, 1)
    along = x * math.cos(spec.angle) + y * math.sin(spec.angle)  # (F, H, W)
    if spec.kind == "solid":
        mix = torch.zeros(frames, height, width, device=device)
    elif spec.kind == "gradient":
        mix = (along - along.amin((1, 2), keepdim=True)) / (
            along.amax((1, 2), keepdim=True) - along.amin((1, 2), keepdim=True) + 1e-6
        )
    elif spec.kind == "stripes":
        mix = (torch.sin(2 * math.pi * spec.frequency * along) > 0).float()
    elif spec.kind == "checker":
        cells_x = torch.floor(x * spec.frequency)
        cells_y = torch.floor(y * spec.frequency)
        mix = torch.remainder(cells_x + cells_y, 2.0).expand(frames, height, width)
    elif spec.kind == "noise":
        mix = _soft_noise(spec.seed, x, y)
    else:
        raise ValueError(f"unknown background kind {spec.kind!r}")
    first = torch.tensor(spec.first, device=device)
    second = torch.tensor(spec.second, device=device)
    image: torch.Tensor = first + (second - first) * mix[..., None]
    return image.clamp(0.0, 1.0)


def _soft_noise(seed: int, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Smooth value noise in 0..1 at (x, y) (heights), from a seeded grid, tiled with period 2."""
    generator = torch.Generator().manual_seed(seed)
    grid = torch.rand(1, 1, NOISE_CELLS, NOISE_CELLS, generator=generator).to(x.device)
    frames = x.shape[0]
    # grid_sample wants coordinates in -1..1; wrap so a pan keeps sliding over the pattern.
    gx = torch.remainder(x / 2.0, 1.0) * 2.0 - 1.0  # (F, 1, W)
    gy = torch.remainder(y / 2.0, 1.0) * 2.0 - 1.0  # (F, H, 1)
    gx, gy = gx.expand(-1, y.shape[1], -1), gy.expand(-1, -1, x.shape[2])
    coordinates = torch.stack([gx, gy], dim=-1)  # (F, H, W, 2)
    sampled = functional.grid_sample(
        grid.expand(frames, -1, -1, -1), coordinates, mode="bicubic", padding_mode="reflection", align_corners=False
    )
    noise: torch.Tensor = sampled[:, 0].clamp(0.0, 1.0)
    return noise
