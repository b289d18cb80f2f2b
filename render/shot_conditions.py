"""A Shot's condition layers, rendered and composed into the one image the daemon receives."""

from __future__ import annotations

import contextlib
import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from anyi2v.shared.shot import ConditionLayer, ImageSource, MaskRegion, ObjectRegion, Shot
from anyi2v.shared.tracks import Track, sample_track

from .assets import load_asset
from .condition import PASSES, RenderError, SceneView, compose, to_uint8
from .geometry import Asset, MeshObject
from .motion import derive_tracks, plan_scene
from .raycast import MeshScene

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class ShotConditions:
    """image : (h, w, 3) float in 0..1, the composed condition; layers : each layer's own image;
    object_boxes : each scene object's normalized box as the shot's camera sees it at frame 0;
    tracks : the shot's own 2D tracks followed by those its scene's 3D motion produces (projected at
    every frame): what the daemon receives; warnings : what loading the scene changed (``Asset.warnings``)."""

    image: NDArray[np.float64]
    layers: tuple[NDArray[np.float64], ...]
    object_boxes: dict[str, Box] = field(default_factory=dict)
    tracks: tuple[Track, ...] = ()
    warnings: tuple[str, ...] = ()


MAX_IMAGE_PIXELS = 8192 * 8192
"""The most pixels an image layer or mask may declare (67 megapixels: an 8K frame fits with room to
spare); checked from the file's header, before any pixel is decoded, so a decompression bomb (a small
PNG that declares a huge size) never reaches the decoder."""


def _open_checked(path: Path, *, where: str) -> Image.Image:
    """``path`` opened by Pillow (header only, nothing decoded yet), refused when it declares more than
    ``MAX_IMAGE_PIXELS`` pixels; the caller closes it. Raises ``RenderError`` starting with ``where``."""
    try:
        with warnings.catch_warnings():
            # Pillow warns (and over twice its own cap raises) in Image.open: ours is the lower cap, said below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as error:  # over twice Pillow's cap: refused before ours could look
        raise RenderError(
            f"{where}: {path} is {_declared_size(path, error)}, over the limit of"
            f" {MAX_IMAGE_PIXELS // 1_000_000} megapixels (a decompression bomb?)"
        ) from None
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise RenderError(f"{where}: {path} is not a readable image ({error})") from None
    image_width, image_height = image.size
    if image_width * image_height > MAX_IMAGE_PIXELS:
        image.close()
        raise RenderError(
            f"{where}: {path} is {image_width}x{image_height} pixels, over the limit of"
            f" {MAX_IMAGE_PIXELS // 1_000_000} megapixels (a decompression bomb?)"
        )
    return image


def image_size(path: Path, *, where: str) -> tuple[int, int]:
    """An image file's (width, height) from its header, with the same checks as :func:`read_image`."""
    with _open_checked(path, where=where) as image:
        return image.size


def read_image(path: Path, width: int, height: int, *, where: str) -> NDArray[np.float64]:
    """An image file as (height, width, 3) floats in 0..1, resized to the output size.

    Raises ``RenderError`` starting with ``where`` (the shot's field) and naming the file when it cannot
    be read or declares more than ``MAX_IMAGE_PIXELS`` pixels."""
    with _open_checked(path, where=where) as opened:
        try:
            image: Image.Image = opened
            if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):  # 16-bit depth maps: keep their range
                image = _wide_to_grey(np.asarray(image))
            rgb = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
        except (OSError, ValueError) as error:
            raise RenderError(f"{where}: {path} is not a readable image ({error})") from None
    return np.asarray(rgb, dtype=np.float64) / 255.0


def _declared_size(path: Path, error: Exception) -> str:
    """``WxH pixels`` from a PNG's header, else the pixel count Pillow's refusal gives."""
    with contextlib.suppress(OSError), path.open("rb") as handle:
        head = handle.read(24)
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            return f"{int.from_bytes(head[16:20], 'big')}x{int.from_bytes(head[20:24], 'big')} pixels"
    found = re.search(r"\((\d+) pixels\)", str(error))
    return f"{found.group(1)} pixels" if found else "larger than Pillow decodes"


def _wide_to_grey(values: NDArray[np.generic]) -> Image.Image:
    """A 16- or 32-bit single-channel image as 8-bit grey: 0..65535 (16-bit) scaled to 0..255, so a
    depth map saved with 16 bits is not clipped to white."""
    wide = values.astype(np.float64)
    top = 65535.0 if wide.max(initial=0.0) <= 65535.0 else float(wide.max())
    return Image.fromarray(np.round(np.clip(wide, 0.0, top) / top * 255.0).astype(np.uint8), mode="L")


def _region(
    layer: ConditionLayer, view: SceneView | None, base: Path, width: int, height: int, where: str
) -> NDArray[np.bool_] | None:
    region = layer.region
    if region is None:
        return None
    if isinstance(region, MaskRegion):
        mask = read_image(base / region.path, width, height, where=f"{where}.region.path").mean(axis=2) > 0.5
    else:
        assert isinstance(region, ObjectRegion)
        if view is None:
            raise RenderError(f"{where}.region: object regions need the shot's scene")
        mask = view.object_mask(region.object)
    return np.asarray(~mask if region.invert else mask, dtype=bool)


def render_shot_conditions(
    shot: Shot, base_dir: Path, *, asset: Asset | None = None, mesh_scene: MeshScene | None = None
) -> ShotConditions:
    """Render and compose every condition layer of ``shot``; paths are relative to ``base_dir``.

    ``asset`` is the scene's file already loaded (an interactive view loads it once and re-renders as the
    camera moves); ``mesh_scene`` is its meshes ready to cast, used when frame 0 poses none of them."""
    width, height = shot.output.width, shot.output.height
    view: SceneView | None = None
    derived: tuple[Track, ...] = ()
    if shot.scene is not None:
        if asset is None:
            asset = load_asset(base_dir / shot.scene.path, up_axis=shot.scene.up_axis)
        plan = plan_scene(shot.scene, asset, shot.output.n_frames)
        posed = plan.posed(asset, 0)
        meshes = [item for item in posed.objects if isinstance(item, MeshObject)]
        if mesh_scene is not None and [id(m) for m in mesh_scene.meshes] != [id(m) for m in meshes]:
            mesh_scene = None  # frame 0 moves some of them: cast the posed meshes instead
        view = SceneView(posed, plan.cameras[0], width, height, mesh_scene=mesh_scene)
        derived = derive_tracks(shot.scene, asset, plan, view, shot.output.n_frames)

    layers: list[NDArray[np.float64]] = []
    stack: list[tuple[NDArray[np.float64], NDArray[np.bool_] | None]] = []
    for index, layer in enumerate(shot.conditions):
        where = f"conditions[{index}]"
        if isinstance(layer.source, ImageSource):
            image = read_image(base_dir / layer.source.path, width, height, where=f"{where}.source.path")
        else:
            if view is None:
                raise RenderError(f"{where}: renders the scene, but the shot has no scene")
            if layer.modality not in PASSES:
                renderable = ", ".join(PASSES)
                raise RenderError(
                    f"{where}.modality: {layer.modality!r} cannot be rendered from a scene (renderable: {renderable});"
                    " bring it as an image"
                )
            image = view.render(layer.modality)
        layers.append(image)
        stack.append((image, _region(layer, view, base_dir, width, height, where)))
    boxes = view.object_boxes() if view is not None else {}
    return ShotConditions(
        image=compose(stack),
        layers=tuple(layers),
        object_boxes=boxes,
        tracks=shot.tracks + derived,
        warnings=asset.warnings if asset is not None else (),
    )


def write_shot_conditions(shot: Shot, conditions: ShotConditions, out_dir: Path) -> list[Path]:
    """Write ``condition.png``, one ``layer-N-MODALITY.png`` per layer, ``boxes.json`` (each object's box at
    frame 0) and ``tracks.json`` (every track, keyframes and sampled boxes per frame); returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "condition.png"]
    Image.fromarray(to_uint8(conditions.image)).save(written[0])
    for index, (layer, image) in enumerate(zip(shot.conditions, conditions.layers, strict=True)):
        path = out_dir / f"layer-{index}-{layer.modality}.png"
        Image.fromarray(to_uint8(image)).save(path)
        written.append(path)
    boxes_path = out_dir / "boxes.json"
    boxes = {"frame": 0, "width": shot.output.width, "height": shot.output.height, "objects": conditions.object_boxes}
    boxes_path.write_text(json.dumps(boxes, indent=2) + "\n", encoding="utf-8")
    written.append(boxes_path)
    tracks_path = out_dir / "tracks.json"
    n_frames = shot.output.n_frames
    tracks = {
        "n_frames": n_frames,
        "width": shot.output.width,
        "height": shot.output.height,
        "tracks": [
            {**track.model_dump(mode="json"), "boxes": np.round(sample_track(track, n_frames), 6).tolist()}
            for track in conditions.tracks
        ],
    }
    tracks_path.write_text(json.dumps(tracks, indent=1) + "\n", encoding="utf-8")
    written.append(tracks_path)
    return written
