"""Zero-shot trajectory control: the loss that makes each box's content follow its track.

Features of the optimized layers (queries by default) are projected on their principal components,
resized bicubically to a quarter of the output size, and cut out inside each track's box per frame.
Frame 0's box content (without gradient) is resized to frame j's box and compared with frame j's, under
the product of the two frames' semantic masks, so boxes may change size and objects may deform.

Masks are per object (each track has its own salient points); anchor tracks (background that expresses
camera motion) use no semantic mask.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as functional
from einops import rearrange

from anyi2v.shared.settings import MethodSettings
from anyi2v.shared.shot import Shot
from anyi2v.shared.tracks import sample_track

from .features import bicubic_resize, gaussian_profile, low_rank_pca, resize_matrix, semantic_mask

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
    captured: list[torch.Tensor],
    frames: int,
    size: tuple[int, int],
    components: int | None,
    solver: str = "randomized",
) -> list[torch.Tensor]:
    """Each optimized layer's features as (frames, k, grid_h, grid_w), PCA-projected and resized bicubically.

    captured : per layer, queries (frames, N, C) or residual states (frames, C, h, w).
    """
    grids: list[torch.Tensor] = []
    for features in captured:
        if features.dim() == 4:  # residual states: to tokens
            _, _, height, width = features.shape
            tokens = rearrange(features, "f c h w -> f (h w) c")
        else:
            tokens = features
            height, width = _token_shape(tokens.shape[1], size)
        projected = low_rank_pca(tokens.float(), components, solver)  # (frames, N, k)
        maps = rearrange(projected, "f (h w) k -> f k h w", f=frames, h=height, w=width)
        grids.append(bicubic_resize(maps, size))
    return grids


def _token_shape(tokens: int, size: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of a token map with the output's aspect ratio."""
    ratio = size[1] / size[0]
    height = round(math.sqrt(tokens / ratio))
    for h in (height, height - 1, height + 1):
        if h > 0 and tokens % h == 0 and abs(tokens // h / h - ratio) < 0.5:
            return h, tokens // h
    raise RuntimeError(f"cannot lay {tokens} tokens out as a {size[0]}x{size[1]} map")


def _point_features(reference: torch.Tensor, track: TrackBoxes) -> torch.Tensor:
    """(P, k) frame-0 features of the track's salient points. A track without query points gets the box
    centre and the pixels whose features are most like the box's mean feature (picked on the device:
    no index comes back to the CPU)."""
    x0, y0, x1, y1 = track.boxes[0] or (0, 0, 0, 0)
    flat = rearrange(reference, "k h w -> (h w) k")
    width = x1 - x0
    if track.points:
        indices = torch.tensor([(y - y0) * width + (x - x0) for x, y in track.points], device=reference.device)
        return flat[indices]
    centre = ((y1 - y0 - 1) // 2) * width + (width - 1) // 2
    unit = functional.normalize(flat.float(), dim=1)
    mean = functional.normalize(unit.mean(0, keepdim=True), dim=1)
    similar = torch.topk((unit @ mean.T).squeeze(1), min(AUTO_POINTS - 1, flat.shape[0])).indices
    return torch.cat([flat[centre : centre + 1], flat[similar]])


@dataclass(frozen=True)
class _Placement:
    """Where frame 0's box content goes in frames 1..F-1, as per-frame matrices along each axis: a product
    ``rows[j] @ box @ columns[j].T`` resizes a (h0, w0) map of frame 0's box to frame j's box and places
    it there on the (H, W) grid, zero outside (a frame whose box has left is all zero)."""

    bicubic_rows: torch.Tensor  # (F-1, H, h0)
    bicubic_columns: torch.Tensor  # (F-1, W, w0)
    nearest_rows: torch.Tensor  # (F-1, H, h0)
    nearest_columns: torch.Tensor  # (F-1, W, w0)
    inside: torch.Tensor  # (F, H, W) 1 inside each frame's box (frame 0 too), else 0
    gaussian: torch.Tensor  # (F-1, H, W) each later box's Gaussian weight, 0 outside it


@functools.lru_cache(maxsize=64)
def _placement(track: TrackBoxes, height: int, width: int, device: torch.device) -> _Placement:
    """Built once per track, grid and device: the boxes do not change during a run."""
    x0, y0, x1, y1 = track.boxes[0] or (0, 0, 0, 0)
    first_h, first_w = y1 - y0, x1 - x0
    frames = len(track.boxes)

    def zeros(*shape: int) -> torch.Tensor:
        return torch.zeros(shape, device=device)

    rows, columns = zeros(frames - 1, height, first_h), zeros(frames - 1, width, first_w)
    near_rows, near_columns = zeros(frames - 1, height, first_h), zeros(frames - 1, width, first_w)
    row_in, column_in = zeros(frames, height), zeros(frames, width)
    row_gauss, column_gauss = zeros(frames - 1, height), zeros(frames - 1, width)
    for frame, box in enumerate(track.boxes):
        if box is None:
            continue
        bx0, by0, bx1, by1 = box
        row_in[frame, by0:by1], column_in[frame, bx0:bx1] = 1.0, 1.0
        if frame == 0:
            continue
        j = frame - 1
        rows[j, by0:by1] = resize_matrix(first_h, by1 - by0, "bicubic", device)
        columns[j, bx0:bx1] = resize_matrix(first_w, bx1 - bx0, "bicubic", device)
        near_rows[j, by0:by1] = resize_matrix(first_h, by1 - by0, "nearest", device)
        near_columns[j, bx0:bx1] = resize_matrix(first_w, bx1 - bx0, "nearest", device)
        row_gauss[j, by0:by1] = gaussian_profile(by1 - by0, device)
        column_gauss[j, bx0:bx1] = gaussian_profile(bx1 - bx0, device)
    inside = row_in[:, :, None] * column_in[:, None, :]
    gaussian = row_gauss[:, :, None] * column_gauss[:, None, :]
    return _Placement(rows, columns, near_rows, near_columns, inside, gaussian)


def _place(rows: torch.Tensor, maps: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """rows (F-1, H, h0), maps (..., h0, w0), columns (F-1, W, w0) -> (F-1, ..., H, W)."""
    extra = maps.dim() - 2
    rows = rows.reshape(rows.shape[0], *([1] * extra), *rows.shape[1:])
    columns = columns.reshape(columns.shape[0], *([1] * extra), *columns.shape[1:])
    placed: torch.Tensor = rows @ maps @ columns.transpose(-1, -2)
    return placed


def trajectory_loss(grids: list[torch.Tensor], tracks: list[TrackBoxes], settings: MethodSettings) -> torch.Tensor:
    """Sum over layers, tracks and frames j >= 1 of the masked MSE between frame 0's box content (no
    gradient, resized to frame j's box) and frame j's.

    Per frame j: mean over channels of the squared difference, weighted by M_0 (frame 0's semantic mask,
    resized to the box) times M_j (frame j's own mask for dynamic masks, M_0 again for static ones) and
    optionally a Gaussian over the box, summed and divided by the weights' sum.

    All frames are computed at once on the full grid: frame 0's box content is resized into every later
    box by matrix products (:class:`_Placement`), and weights are zero outside the boxes. That is the
    same arithmetic as cutting out and resizing box by box (``reference.object_loss_reference``, the
    equation one frame and one box at a time, which the tests hold equal to this), with a few dozen
    kernel launches per track instead of thousands.
    """
    total = torch.zeros((), device=grids[0].device)
    for grid in grids:
        for track in tracks:
            total = total + _track_loss(grid, track, settings)
    return total


def _track_loss(grid: torch.Tensor, track: TrackBoxes, settings: MethodSettings) -> torch.Tensor:
    first = track.boxes[0]
    if first is None or grid.shape[0] < 2:
        return torch.zeros((), device=grid.device)
    x0, y0, x1, y1 = first
    place = _placement(track, grid.shape[2], grid.shape[3], grid.device)
    reference = grid[0, :, y0:y1, x0:x1].detach()  # (k, h0, w0)
    with torch.no_grad():
        target = _place(place.bicubic_rows, reference, place.bicubic_columns)  # (F-1, k, H, W)
        weight = place.inside[1:]
        if settings.mask != "none" and not track.anchor:
            masks = semantic_mask(_point_features(reference, track), grid, valid=place.inside > 0)  # (F, H, W)
            resized = _place(place.nearest_rows, masks[0, y0:y1, x0:x1], place.nearest_columns)  # (F-1, H, W)
            weight = resized * (masks[1:] if settings.mask == "dynamic" else resized)
        if settings.gaussian_weighting:
            weight = weight * place.gaussian
        normaliser = weight.sum((1, 2)).clamp_min(1.0)
    error = ((target - grid[1:]) ** 2).mean(1)  # (F-1, H, W)
    return ((error * weight).sum((1, 2)) / normaliser).sum()
