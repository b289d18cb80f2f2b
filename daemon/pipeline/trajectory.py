"""Zero-shot trajectory control: the loss that makes each box's content follow its track.

Features of the optimized layers (queries by default) are projected on their principal components,
resized bicubically to a quarter of the output size, and cut out inside each track's box per frame.
Frame 0's box content (without gradient) is resized to frame j's box and compared with frame j's, under
the product of the two frames' semantic masks, so boxes may change size and objects may deform.

Masks are per object (each track has its own salient points); anchor tracks (background that expresses
camera motion) use no semantic mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as functional

from anyi2v.shared.settings import MethodSettings
from anyi2v.shared.shot import Shot
from anyi2v.shared.tracks import sample_track

from .features import gaussian_weight, pca_project, semantic_mask

GRID_DIVISOR = 4  # the loss's feature grid is the output size / 4 (128 x 128 at 512)
AUTO_POINTS = 3


@dataclass(frozen=True)
class TrackBoxes:
    """One track on the loss grid: per-frame integer boxes (x0, y0, x1, y1), None where the box has left
    the frame; salient points (x, y) in frame 0; whether it is an anchor."""

    id: str
    boxes: tuple[tuple[int, int, int, int] | None, ...]
    points: tuple[tuple[int, int], ...]
    anchor: bool


def grid_size(shot: Shot) -> tuple[int, int]:
    return max(1, shot.output.height // GRID_DIVISOR), max(1, shot.output.width // GRID_DIVISOR)


def track_boxes(shot: Shot) -> list[TrackBoxes]:
    """The shot's tracks as boxes on the loss grid (sampled per frame, clipped to the grid)."""
    grid_h, grid_w = grid_size(shot)
    out: list[TrackBoxes] = []
    for track in shot.tracks:
        boxes: list[tuple[int, int, int, int] | None] = []
        for x0, y0, x1, y1 in sample_track(track, shot.output.n_frames):
            gx0, gx1 = max(0, math.floor(x0 * grid_w)), min(grid_w, math.ceil(x1 * grid_w))
            gy0, gy1 = max(0, math.floor(y0 * grid_h)), min(grid_h, math.ceil(y1 * grid_h))
            boxes.append((gx0, gy0, gx1, gy1) if gx1 > gx0 and gy1 > gy0 else None)
        first = boxes[0]
        points: list[tuple[int, int]] = []
        if first is not None:
            for px, py in track.query_points:
                x = min(max(int(px * grid_w), first[0]), first[2] - 1)
                y = min(max(int(py * grid_h), first[1]), first[3] - 1)
                points.append((x, y))
        out.append(TrackBoxes(track.id, tuple(boxes), tuple(points), track.role == "anchor"))
    return out


def feature_grid(
    captured: list[torch.Tensor], frames: int, size: tuple[int, int], components: int | None
) -> list[torch.Tensor]:
    """Each optimized layer's features as (frames, k, grid_h, grid_w), PCA-projected and resized bicubically.

    captured : per layer, queries (frames, N, C) or residual states (frames, C, h, w).
    """
    grids: list[torch.Tensor] = []
    for features in captured:
        if features.dim() == 4:  # residual states: to tokens
            _, _, height, width = features.shape
            tokens = features.flatten(2).transpose(1, 2)
        else:
            tokens = features
            height, width = _token_shape(tokens.shape[1], size)
        projected = pca_project(tokens.float(), components)  # (frames, N, k)
        maps = projected.transpose(1, 2).reshape(frames, -1, height, width)
        grids.append(functional.interpolate(maps, size=size, mode="bicubic", align_corners=False))
    return grids


def _token_shape(tokens: int, size: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of a token map with the output's aspect ratio."""
    ratio = size[1] / size[0]
    height = round(math.sqrt(tokens / ratio))
    for h in (height, height - 1, height + 1):
        if h > 0 and tokens % h == 0 and abs(tokens // h / h - ratio) < 0.5:
            return h, tokens // h
    raise RuntimeError(f"cannot lay {tokens} tokens out as a {size[0]}x{size[1]} map")


def _auto_points(box_features: torch.Tensor, box: tuple[int, int, int, int]) -> tuple[tuple[int, int], ...]:
    """Salient points for a track without query points: the box centre and the pixels whose features are
    most like the box's mean feature."""
    x0, y0, x1, y1 = box
    centre = ((x0 + x1 - 1) // 2, (y0 + y1 - 1) // 2)
    flat = functional.normalize(box_features.detach().float().flatten(1).T, dim=1)
    mean = functional.normalize(flat.mean(0, keepdim=True), dim=1)
    order = torch.argsort((flat @ mean.T).squeeze(1), descending=True)[: AUTO_POINTS - 1]
    width = x1 - x0
    picked = [(x0 + int(i) % width, y0 + int(i) // width) for i in order.tolist()]
    return (centre, *picked)


def _crop(grid: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
    x0, y0, x1, y1 = box
    return grid[..., y0:y1, x0:x1]


def trajectory_loss(grids: list[torch.Tensor], tracks: list[TrackBoxes], settings: MethodSettings) -> torch.Tensor:
    """Sum over layers, tracks and frames j >= 1 of the masked MSE between frame 0's box content (no
    gradient, resized to frame j's box) and frame j's."""
    device = grids[0].device
    total = torch.zeros((), device=device)
    for grid in grids:
        frames = grid.shape[0]
        for track in tracks:
            first = track.boxes[0]
            if first is None:
                continue
            reference = _crop(grid[0], first).detach()  # (k, h0, w0)
            use_mask = settings.mask != "none" and not track.anchor
            points = track.points or _auto_points(reference, first)
            point_features = torch.stack([grid[0, :, y, x] for x, y in points]).detach() if use_mask else None
            first_mask = semantic_mask(point_features, reference) if point_features is not None else None
            for frame in range(1, frames):
                box = track.boxes[frame]
                if box is None:
                    continue
                current = _crop(grid[frame], box)  # (k, hj, wj)
                size = current.shape[-2:]
                target = functional.interpolate(reference[None], size=size, mode="bicubic", align_corners=False)[0]
                weight = torch.ones(size, device=device)
                if first_mask is not None and point_features is not None:
                    resized = functional.interpolate(first_mask[None, None], size=size, mode="nearest")[0, 0]
                    frame_mask = semantic_mask(point_features, current) if settings.mask == "dynamic" else resized
                    weight = weight * resized * frame_mask
                if settings.gaussian_weighting:
                    weight = weight * gaussian_weight(size[0], size[1], device)
                error = ((target - current) ** 2).mean(0)
                total = total + (error * weight).sum() / weight.sum().clamp_min(1.0)
    return total
