"""Boxes in normalized image coordinates.

A box is ``(x0, y0, x1, y1)`` with ``0, 0`` the top-left corner of the frame and ``1, 1`` the
bottom-right, whatever the output size. Boxes may reach past the frame (an object leaving the
shot); they may not be empty or inside out.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Box = tuple[float, float, float, float]

# How far past the frame a box may reach, in frame widths: generous for objects entering or leaving,
# tight enough that a typo such as 1e9 is caught.
BOX_COORDINATE_MIN = -1.0
BOX_COORDINATE_MAX = 2.0


def box_problem(box: Box) -> str | None:
    """The reason a box is unusable, or ``None`` when it is fine."""
    x0, y0, x1, y1 = box
    for name, value in zip(("x0", "y0", "x1", "y1"), box, strict=True):
        if not BOX_COORDINATE_MIN <= value <= BOX_COORDINATE_MAX:
            return (
                f"{name} = {value} is outside [{BOX_COORDINATE_MIN}, {BOX_COORDINATE_MAX}]"
                " (boxes are normalized: 0..1 spans the frame)"
            )
    if not x0 < x1:
        return f"x0 must be < x1 (got x0 = {x0}, x1 = {x1}): the box has no width"
    if not y0 < y1:
        return f"y0 must be < y1 (got y0 = {y0}, y1 = {y1}): the box has no height"
    return None


def overlaps_frame(box: Box) -> bool:
    """True when some of the box's area lies inside the frame ``[0, 1] x [0, 1]``."""
    x0, y0, x1, y1 = box
    return min(x1, 1.0) > max(x0, 0.0) and min(y1, 1.0) > max(y0, 0.0)


def contains_point(box: Box, point: tuple[float, float]) -> bool:
    """True when ``point = (x, y)`` lies inside the box or on its edge."""
    x0, y0, x1, y1 = box
    x, y = point
    return x0 <= x <= x1 and y0 <= y <= y1


def boxes_to_centre_size(boxes: NDArray[np.float64]) -> NDArray[np.float64]:
    """``boxes : (n, 4)`` corners to ``(n, 4)`` of ``(cx, cy, w, h)``."""
    x0, y0, x1, y1 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    return np.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], axis=1)


def centre_size_to_boxes(centre_size: NDArray[np.float64]) -> NDArray[np.float64]:
    """``centre_size : (n, 4)`` of ``(cx, cy, w, h)`` back to ``(n, 4)`` corners."""
    cx, cy, w, h = centre_size[:, 0], centre_size[:, 1], centre_size[:, 2], centre_size[:, 3]
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def to_pixels(boxes: NDArray[np.float64], width: int, height: int) -> NDArray[np.float64]:
    """Normalized ``(n, 4)`` boxes to pixel coordinates of a ``width x height`` image."""
    scale = np.array([width, height, width, height], dtype=np.float64)
    return boxes * scale
