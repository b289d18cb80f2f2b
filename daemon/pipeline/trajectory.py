"""Zero-shot trajectory control: the loss that makes each box's content follow its track.

Features of the optimized layers (queries by default) are projected on their principal components,
resized bicubically to a quarter of the output size, and cut out inside each track's box per frame.
Frame 0's box content (without gradient) is resized to frame j's box and compared with frame j's, under
the product of the two frames' semantic masks, so boxes may change size and objects may deform. A box
partly outside the frame is resized whole and then cut to the frame, so an object leaving the frame is
not squashed into its visible part.

Masks are per object (each track has its own salient points) and split by one 2-means per frame over
both optimized layers' similarities; anchor tracks (background that expresses camera motion) use no
semantic mask. Each layer's loss is normalised by its weights' sum over all frames.
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

from .features import (
    bicubic_resize,
    gaussian_profile,
    low_rank_pca,
    point_similarity,
    pooled_semantic_masks,
    resize_matrix,
)

GRID_DIVISOR = 4  # the loss's feature grid is the output size / 4 (128 x 128 at 512)
AUTO_POINTS = 3


Box = tuple[int, int, int, int]  # (x0, y0, x1, y1) on the loss grid, end-exclusive


@dataclass(frozen=True)
class TrackBoxes:
    """One track on the loss grid: per-frame integer boxes (x0, y0, x1, y1), whole (a box partly outside
    the frame reaches past the grid: :func:`visible_box` is its part inside), None where no part of it
    is in the frame; salient points (x, y) in frame 0's visible box; whether it is an anchor."""

    id: str
    boxes: tuple[Box | None, ...]
    points: tuple[tuple[int, int], ...]
    anchor: bool


def grid_size(shot: Shot) -> tuple[int, int]:
    return max(1, shot.output.height // GRID_DIVISOR), max(1, shot.output.width // GRID_DIVISOR)


def grid_box(box: tuple[float, float, float, float], height: int, width: int, margin: int = 0) -> Box:
    """A normalised ``box`` on a ``height`` x ``width`` grid: rounded outwards to whole cells and grown by
    ``margin`` cells (not clipped: see :func:`visible_box`)."""
    x0, y0, x1, y1 = box
    return (
        math.floor(x0 * width) - margin, math.floor(y0 * height) - margin,
        math.ceil(x1 * width) + margin, math.ceil(y1 * height) + margin,
    )  # fmt: skip


def visible_box(box: Box, height: int, width: int) -> Box | None:
    """The part of ``box`` inside a ``height`` x ``width`` grid; None when nothing of it is."""
    x0, y0, x1, y1 = max(0, box[0]), max(0, box[1]), min(width, box[2]), min(height, box[3])
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def track_boxes(shot: Shot) -> list[TrackBoxes]:
    """The shot's tracks as boxes on the loss grid (sampled per frame, rounded outwards, whole)."""
    grid_h, grid_w = grid_size(shot)
    out: list[TrackBoxes] = []
    for track in shot.tracks:
        boxes: list[Box | None] = []
        for sampled in sample_track(track, shot.output.n_frames):
            box = grid_box(sampled, grid_h, grid_w)
            boxes.append(box if visible_box(box, grid_h, grid_w) is not None else None)
        first = visible_box(boxes[0], grid_h, grid_w) if boxes[0] is not None else None
        points: list[tuple[int, int]] = []
        if first is not None:
            for px, py in track.query_points:
                x = min(max(int(px * grid_w), first[0]), first[2] - 1)
                y = min(max(int(py * grid_h), first[1]), first[3] - 1)
                points.append((x, y))
        out.append(TrackBoxes(track.id, tuple(boxes), tuple(points), track.role == "anchor"))
    return out


def update_region(shot: Shot, height: int, width: int, margin: int = 1) -> torch.Tensor:
    """(F, height, width) 1 inside any track's box in each frame on a ``height`` x ``width`` latent grid
    (rounded outwards and grown by ``margin`` cells), else 0: where ``update_region = "boxes"`` lets the
    optimizer move the latent."""
    frames = shot.output.n_frames
    region = torch.zeros(frames, height, width)
    for track in shot.tracks:
        for frame, sampled in enumerate(sample_track(track, frames)):
            visible = visible_box(grid_box(sampled, height, width, margin), height, width)
            if visible is not None:
                left, top, right, bottom = visible
                region[frame, top:bottom, left:right] = 1.0
    return region


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


def _point_features(reference: torch.Tensor, track: TrackBoxes, first: Box) -> torch.Tensor:
    """(P, k) frame-0 features of the track's salient points; ``reference`` (k, h0, w0) is the part of
    frame 0's box inside the frame, ``first`` that part's box. A track without query points gets the
    box centre and the pixels whose features are most like the box's mean feature (picked on the
    device: no index comes back to the CPU)."""
    x0, y0, x1, y1 = first
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
    ``rows[j] @ box @ columns[j].T`` resizes the visible part (h0, w0) of frame 0's box, as the whole box,
    to frame j's whole box and keeps what lies on the (H, W) grid, zero elsewhere (a frame whose box has
    left is all zero). Frame 0's box is first made whole by repeating its edge pixels outwards (bicubic,
    for features) or with zeros (nearest, for masks); ``seen`` marks where frame j's pixels come from a
    part of frame 0's box that was visible."""

    bicubic_rows: torch.Tensor  # (F-1, H, h0)
    bicubic_columns: torch.Tensor  # (F-1, W, w0)
    nearest_rows: torch.Tensor  # (F-1, H, h0)
    nearest_columns: torch.Tensor  # (F-1, W, w0)
    inside: torch.Tensor  # (F, H, W) 1 inside each frame's visible box (frame 0 too), else 0
    seen: torch.Tensor  # (F-1, H, W) 1 where frame j's box shows a visible pixel of frame 0's box
    gaussian: torch.Tensor  # (F-1, H, W) each later whole box's Gaussian weight, cut to the grid


def _axis_placement(
    first: tuple[int, int], visible: tuple[int, int], box: tuple[int, int], size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One axis of :class:`_Placement` for one frame: frame 0's whole span ``first`` (of which ``visible``
    is on the grid) resized to frame j's whole span ``box``, on a grid of ``size``. Returns the bicubic
    and nearest (size, n_visible) matrices, where the nearest source was visible (size,), and the
    Gaussian profile (size,)."""
    whole, shown, length = first[1] - first[0], visible[1] - visible[0], box[1] - box[0]
    offset = visible[0] - first[0]
    source = torch.arange(whole, device=device) - offset
    inner = (source >= 0) & (source < shown)
    repeat_edges = functional.one_hot(source.clamp(0, shown - 1), shown).float()  # (whole, shown)
    zero_edges = repeat_edges * inner[:, None]
    bicubic = resize_matrix(whole, length, "bicubic", device) @ repeat_edges  # (length, shown)
    nearest = resize_matrix(whole, length, "nearest", device) @ zero_edges
    lo, hi = max(0, box[0]), min(size, box[1])
    placed = [torch.zeros(size, shown, device=device) for _ in range(2)]
    placed[0][lo:hi], placed[1][lo:hi] = bicubic[lo - box[0] : hi - box[0]], nearest[lo - box[0] : hi - box[0]]
    gaussian = torch.zeros(size, device=device)
    gaussian[lo:hi] = gaussian_profile(length, device)[lo - box[0] : hi - box[0]]
    return placed[0], placed[1], placed[1].sum(1), gaussian


@functools.lru_cache(maxsize=64)
def _placement(track: TrackBoxes, height: int, width: int, device: torch.device) -> _Placement:
    """Built once per track, grid and device: the boxes do not change during a run."""
    first = track.boxes[0] or (0, 0, 1, 1)
    shown = visible_box(first, height, width) or (0, 0, 1, 1)
    frames = len(track.boxes)
    first_h, first_w = shown[3] - shown[1], shown[2] - shown[0]

    def zeros(*shape: int) -> torch.Tensor:
        return torch.zeros(shape, device=device)

    rows, columns = zeros(frames - 1, height, first_h), zeros(frames - 1, width, first_w)
    near_rows, near_columns = zeros(frames - 1, height, first_h), zeros(frames - 1, width, first_w)
    row_in, column_in = zeros(frames, height), zeros(frames, width)
    row_seen, column_seen = zeros(frames - 1, height), zeros(frames - 1, width)
    row_gauss, column_gauss = zeros(frames - 1, height), zeros(frames - 1, width)
    for frame, box in enumerate(track.boxes):
        visible = visible_box(box, height, width) if box is not None else None
        if box is None or visible is None:
            continue
        row_in[frame, visible[1] : visible[3]], column_in[frame, visible[0] : visible[2]] = 1.0, 1.0
        if frame == 0:
            continue
        j = frame - 1
        rows[j], near_rows[j], row_seen[j], row_gauss[j] = _axis_placement(
            (first[1], first[3]), (shown[1], shown[3]), (box[1], box[3]), height, device
        )
        columns[j], near_columns[j], column_seen[j], column_gauss[j] = _axis_placement(
            (first[0], first[2]), (shown[0], shown[2]), (box[0], box[2]), width, device
        )
    inside = row_in[:, :, None] * column_in[:, None, :]
    seen = row_seen[:, :, None] * column_seen[:, None, :]
    gaussian = row_gauss[:, :, None] * column_gauss[:, None, :]
    return _Placement(rows, columns, near_rows, near_columns, inside, seen, gaussian)


def _place(rows: torch.Tensor, maps: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """rows (F-1, H, h0), maps (..., h0, w0), columns (F-1, W, w0) -> (F-1, ..., H, W)."""
    extra = maps.dim() - 2
    rows = rows.reshape(rows.shape[0], *([1] * extra), *rows.shape[1:])
    columns = columns.reshape(columns.shape[0], *([1] * extra), *columns.shape[1:])
    placed: torch.Tensor = rows @ maps @ columns.transpose(-1, -2)
    return placed


def trajectory_loss(grids: list[torch.Tensor], tracks: list[TrackBoxes], settings: MethodSettings) -> torch.Tensor:
    """Sum over layers and tracks of the masked MSE between frame 0's box content (no gradient, resized
    to each later frame's box) and frame j's, over frames j >= 1.

    Per layer and track: the mean over channels of the squared difference, weighted by M_0 (frame 0's
    semantic mask, resized to the box) times M_j (frame j's own mask for dynamic masks, M_0 again for
    static ones) and optionally a Gaussian over the box, summed over the frames and divided by the
    weights' sum over all frames (the authors' normaliser). The masks of all layers come from one
    2-means per frame (:func:`pooled_semantic_masks`), as the authors split them. A box partly outside
    the frame is resized whole and then cut to the frame (:class:`_Placement`).

    All frames are computed at once on the full grid: frame 0's box content is resized into every later
    box by matrix products, and weights are zero outside the boxes. That is the same arithmetic as
    cutting out and resizing box by box (``reference.trajectory_loss_reference``, the equation one frame
    and one box at a time, which the tests hold equal to this), with a few dozen kernel launches per
    track instead of thousands.

    grids : per layer (F, k_l, H, W), all on one grid
    """
    total = torch.zeros((), device=grids[0].device)
    for track in tracks:
        total = total + _track_loss(grids, track, settings)
    return total


def _track_loss(grids: list[torch.Tensor], track: TrackBoxes, settings: MethodSettings) -> torch.Tensor:
    frames, _, height, width = grids[0].shape
    first = visible_box(track.boxes[0], height, width) if track.boxes[0] is not None else None
    if first is None or frames < 2:
        return torch.zeros((), device=grids[0].device)
    x0, y0, x1, y1 = first
    place = _placement(track, height, width, grids[0].device)
    references = [grid[0, :, y0:y1, x0:x1].detach() for grid in grids]  # (k, h0, w0) per layer
    with torch.no_grad():
        weights = place.seen.expand(len(grids), -1, -1, -1)  # (L, F-1, H, W)
        if settings.mask != "none" and not track.anchor:
            similarities = torch.stack(
                [point_similarity(_point_features(r, track, first), g) for r, g in zip(references, grids, strict=True)]
            )  # (L, F, H, W)
            masks = pooled_semantic_masks(similarities, valid=place.inside > 0)
            resized = _place(place.nearest_rows, masks[:, 0, y0:y1, x0:x1], place.nearest_columns).transpose(0, 1)
            weights = resized * (masks[:, 1:] if settings.mask == "dynamic" else resized)
        if settings.gaussian_weighting:
            weights = weights * place.gaussian
        normalisers = weights.sum((1, 2, 3)).clamp_min(1.0)  # per layer, over all frames
    total = torch.zeros((), device=grids[0].device)
    for layer, (grid, reference) in enumerate(zip(grids, references, strict=True)):
        with torch.no_grad():
            target = _place(place.bicubic_rows, reference, place.bicubic_columns)  # (F-1, k, H, W)
        error = ((target - grid[1:]) ** 2).mean(1)  # (F-1, H, W)
        total = total + (error * weights[layer]).sum() / normalisers[layer]
    return total
