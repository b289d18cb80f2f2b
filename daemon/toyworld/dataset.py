"""Toy-world batches for training and evaluation, rendered in torch on any device.

- :func:`render_clips`: videos of scenes, shaded primitives over their backgrounds, with each
  object's box per frame (from the rendered object ids, so an occluded or departed object's box
  shrinks or disappears the way a tracker would see it).
- :func:`render_conditions`: one frame of each scene in a condition modality (depth, normal, edges,
  point splats), drawn with the conventions the app's renderer uses.

Pixels are float in -1..1, (batch, 3, frames, H, W), the layout the VAE and the video UNet take.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from . import render
from .backgrounds import background
from .scenes import FOV_DEG, MAX_OBJECTS, Scene

# Named as a shot's condition kinds (shared.modalities), so a held-out shot uses them as they are.
MODALITIES = ("depth", "normal", "edges", "splat")
BACKGROUND_DISTANCE = 8.0  # the background pattern slides as a plane this far from the camera would
SPLAT_POINTS = 6000


@dataclass
class Batch:
    """pixels : (B, 3, F, H, W) in -1..1; captions : B strings; boxes : (B, MAX_OBJECTS, F, 4) as
    normalized (x0, y0, x1, y1), NaN where the object is absent or not visible."""

    pixels: torch.Tensor
    captions: list[str]
    boxes: torch.Tensor


def scene_views(
    scenes: Sequence[Scene], device: torch.device, frames: Sequence[int] | None = None
) -> tuple[render.Primitives, render.Cameras]:
    """Primitives and cameras of every (scene, frame) pair, scene-major: view ``b * F + f``."""
    picks = list(frames) if frames is not None else list(range(scenes[0].frames))
    views = len(scenes) * len(picks)
    kind = np.zeros((views, MAX_OBJECTS), dtype=np.int64)
    centre = np.zeros((views, MAX_OBJECTS, 3))
    rotation = np.broadcast_to(np.eye(3), (views, MAX_OBJECTS, 3, 3)).copy()
    size = np.zeros((views, MAX_OBJECTS, 3))
    blob = np.zeros((views, MAX_OBJECTS, render.BLOB_BALLS, 4))
    present = np.zeros((views, MAX_OBJECTS), dtype=bool)
    eyes = np.zeros((views, 3))
    targets = np.zeros((views, 3))
    for s, scene in enumerate(scenes):
        for j, f in enumerate(picks):
            view = s * len(picks) + j
            eyes[view], targets[view] = scene.eyes[f], scene.targets[f]
            for k, thing in enumerate(scene.objects):
                kind[view, k] = render.KINDS.index(thing.kind)
                centre[view, k] = thing.positions[f]
                rotation[view, k] = thing.rotations[f]
                scale = thing.scales[f]
                size[view, k] = thing.size * scale
                blob[view, k] = thing.blob
                present[view, k] = True

    def tensor(array: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.as_tensor(array, dtype=dtype, device=device)

    primitives = render.Primitives(
        kind=tensor(kind, torch.int64),
        centre=tensor(centre),
        rotation=tensor(rotation),
        size=tensor(size),
        blob=tensor(blob),
        present=tensor(present, torch.bool),
    )
    cameras = render.Cameras.look_at(tensor(eyes), tensor(targets), fov_deg=FOV_DEG)
    return primitives, cameras


def _albedo_and_gloss(
    scenes: Sequence[Scene], per_scene: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    albedo = np.zeros((len(scenes), MAX_OBJECTS, 3))
    gloss = np.zeros((len(scenes), MAX_OBJECTS))
    for s, scene in enumerate(scenes):
        for k, thing in enumerate(scene.objects):
            albedo[s, k], gloss[s, k] = thing.albedo, thing.gloss
    albedo_t = torch.as_tensor(albedo, dtype=torch.float32, device=device).repeat_interleave(per_scene, dim=0)
    gloss_t = torch.as_tensor(gloss, dtype=torch.float32, device=device).repeat_interleave(per_scene, dim=0)
    return albedo_t, gloss_t


def boxes_of(hits: render.Hits) -> torch.Tensor:
    """(views, MAX_OBJECTS, 4) normalized boxes of each object's visible pixels; NaN where none."""
    _, height, width = hits.object_index.shape
    ids = torch.arange(MAX_OBJECTS, device=hits.object_index.device)
    mask = hits.object_index[:, None] == ids[None, :, None, None]  # (V, K, H, W)
    rows, columns = mask.any(3), mask.any(2)  # (V, K, H), (V, K, W)
    visible = rows.any(2)
    y0 = rows.float().argmax(2)
    y1 = height - rows.flip(2).float().argmax(2)
    x0 = columns.float().argmax(2)
    x1 = width - columns.flip(2).float().argmax(2)
    boxes = torch.stack([x0 / width, y0 / height, x1 / width, y1 / height], dim=2).float()
    return torch.where(visible[..., None], boxes, torch.full_like(boxes, math.nan))


def render_clips(scenes: Sequence[Scene], size: int, device: torch.device) -> Batch:
    """Every frame of every scene, shaded over its background."""
    frames = scenes[0].frames
    if any(scene.frames != frames for scene in scenes):
        raise ValueError("scenes in one batch must have the same number of frames")
    primitives, cameras = scene_views(scenes, device)
    hits = render.cast(primitives, cameras, size, size)
    albedo, gloss = _albedo_and_gloss(scenes, frames, device)
    shaded, mask = render.shaded(hits, cameras, albedo, gloss)
    backgrounds = []
    focal = 1.0 / (2.0 * math.tan(math.radians(FOV_DEG) / 2.0) * BACKGROUND_DISTANCE)
    for scene in scenes:
        pan = torch.as_tensor(scene.eyes - scene.eyes[:1], dtype=torch.float32, device=device)
        shifts = torch.stack([pan[:, 0], -pan[:, 1]], dim=1) * focal
        backgrounds.append(background(scene.background, shifts, size, size))
    image = torch.where(mask[..., None], shaded, torch.cat(backgrounds))  # (V, H, W, 3)
    pixels = image.reshape(len(scenes), frames, size, size, 3).permute(0, 4, 1, 2, 3) * 2.0 - 1.0
    boxes = boxes_of(hits).reshape(len(scenes), frames, MAX_OBJECTS, 4).transpose(1, 2)
    return Batch(pixels.contiguous(), [scene.caption() for scene in scenes], boxes)


def render_conditions(
    scenes: Sequence[Scene], modalities: Sequence[str], size: int, device: torch.device, frame: int = 0,
    generator: torch.Generator | None = None,
) -> Batch:  # fmt: skip
    """Frame ``frame`` of scene i in ``modalities[i]``, as single-frame clips (F = 1)."""
    if len(modalities) != len(scenes):
        raise ValueError(f"{len(scenes)} scenes but {len(modalities)} modalities")
    unknown = sorted(set(modalities) - set(MODALITIES))
    if unknown:
        raise ValueError(f"unknown modalities {unknown}; known: {', '.join(MODALITIES)}")
    primitives, cameras = scene_views(scenes, device, frames=[frame])
    hits = render.cast(primitives, cameras, size, size)
    passes = {
        "depth": lambda: render.depth_image(hits)[..., None].expand(-1, -1, -1, 3),
        "normal": lambda: render.normal_image(hits, cameras),
        "edges": lambda: render.edges(hits)[..., None].expand(-1, -1, -1, 3),
    }
    images = torch.zeros(len(scenes), size, size, 3, device=device)
    for modality in set(modalities) & set(passes):  # only the passes asked for
        picked_views = [i for i, m in enumerate(modalities) if m == modality]
        images[picked_views] = passes[modality]()[picked_views]
    splats = [i for i, m in enumerate(modalities) if m == "splat"]
    if splats:
        picked = torch.tensor(splats, device=device)
        sub = render.Primitives(
            *(getattr(primitives, name)[picked] for name in ("kind", "centre", "rotation", "size", "blob", "present"))
        )
        sub_cameras = render.Cameras(cameras.eye[picked], cameras.rotation[picked], cameras.fov_deg)
        points, owner = render.sample_surface_points(sub, SPLAT_POINTS, generator)
        albedo, _ = _albedo_and_gloss([scenes[i] for i in splats], 1, device)
        colours = torch.gather(albedo, 1, owner.clamp(min=0)[..., None].expand(-1, -1, 3))
        image, _, _ = render.splat(points, colours, sub_cameras, size, size)
        images[picked] = image
    pixels = images.permute(0, 3, 1, 2)[:, :, None] * 2.0 - 1.0
    boxes = boxes_of(hits).reshape(len(scenes), 1, MAX_OBJECTS, 4).transpose(1, 2)
    captions = [scene.caption(modality) for scene, modality in zip(scenes, modalities, strict=True)]
    return Batch(pixels.contiguous(), captions, boxes)
