"""Point clouds as z-buffered splats: every pixel shows the nearest point within ``radius_px``.

Splatting a disk of radius r around every point and keeping the nearest is the same as a minimum
filter of radius r over a one-pixel z-buffer, which is what this does: one scatter of the points,
then one footprint filter, instead of r^2 scatters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from .camera import Camera
from .geometry import PointObject

DEFAULT_POINT_COLOR = 0.8
_DEPTH_LEVELS = 2**22  # depth quantization of the z-buffer key; the key holds the point index below it


@dataclass(frozen=True)
class Splats:
    """depth : (h, w) float64, inf where no point; color : (h, w, 3) in 0..1; object_index : (h, w) int64, -1 empty"""

    depth: NDArray[np.float64]
    color: NDArray[np.float64]
    object_index: NDArray[np.int64]

    @property
    def hit(self) -> NDArray[np.bool_]:
        return np.asarray(self.object_index >= 0)


def disk(radius_px: int) -> NDArray[np.bool_]:
    """(2r+1, 2r+1) disk footprint."""
    offsets = np.arange(-radius_px, radius_px + 1)
    return np.asarray((offsets[:, None] ** 2 + offsets[None, :] ** 2) <= radius_px**2 + radius_px * 0.5)


def splat(clouds: Sequence[PointObject], camera: Camera, width: int, height: int, radius_px: int = 1) -> Splats:
    """Project and z-buffer every point of every cloud; each covers a disk of ``radius_px`` pixels."""
    if radius_px < 0:
        raise ValueError(f"radius_px must be >= 0, got {radius_px}")
    points = np.concatenate([cloud.points for cloud in clouds]) if clouds else np.zeros((0, 3))
    colors = (
        np.concatenate(
            [
                cloud.colors if cloud.colors is not None else np.full((len(cloud.points), 3), DEFAULT_POINT_COLOR)
                for cloud in clouds
            ]
        )
        if clouds
        else np.zeros((0, 3))
    )
    owners: NDArray[np.int64] = np.concatenate(
        [np.full(len(cloud.points), index, dtype=np.int64) for index, cloud in enumerate(clouds)]
        if clouds
        else [np.zeros(0, dtype=np.int64)]
    )

    pixels, depth = camera.project(points, width, height)
    column = np.floor(pixels[:, 0]).astype(np.int64)
    row = np.floor(pixels[:, 1]).astype(np.int64)
    visible = (depth > 1e-6) & (column >= 0) & (column < width) & (row >= 0) & (row < height)
    index = np.flatnonzero(visible)
    empty = Splats(np.full((height, width), np.inf), np.zeros((height, width, 3)), np.full((height, width), -1))
    if index.size == 0:
        return empty

    # One z-buffer key per point: quantized depth in the high part, point index in the low part, so the
    # minimum key is the nearest point and says which point it is.
    visible_depth = depth[index]
    near, far = visible_depth.min(), visible_depth.max()
    levels = np.floor((visible_depth - near) / max(far - near, 1e-12) * (_DEPTH_LEVELS - 1))
    keys = levels * float(index.size) + np.arange(index.size)
    no_point = float(_DEPTH_LEVELS) * float(index.size)
    flat_buffer = np.full(height * width, no_point)
    np.minimum.at(flat_buffer, row[index] * width + column[index], keys)
    buffer = flat_buffer.reshape(height, width)
    if radius_px > 0:
        buffer = ndimage.minimum_filter(buffer, footprint=disk(radius_px), mode="constant", cval=no_point)

    covered = buffer < no_point
    chosen = index[np.mod(buffer[covered], float(index.size)).astype(np.int64)]
    out_depth = np.full((height, width), np.inf)
    out_depth[covered] = depth[chosen]
    out_color = np.zeros((height, width, 3))
    out_color[covered] = colors[chosen]
    out_owner = np.full((height, width), -1, dtype=np.int64)
    out_owner[covered] = owners[chosen]
    return Splats(out_depth, out_color, out_owner)
