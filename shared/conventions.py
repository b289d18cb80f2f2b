"""Image conventions of the condition passes, shared by the renderer (``render``, numpy and Open3D) and
the toy world's torch renderer (``daemon.toyworld``), so both draw depth, normals and edges alike.

- depth: near is bright (MiDaS-style relative inverse depth). Inverse depth of the hit pixels is
  normalized per image to :data:`DEPTH_RANGE`; background is 0.
- normal: camera space in the ScanNet / ControlNet 1.1 "normalbae" convention: red grows towards the
  viewer's left, green upwards, blue towards the viewer; ``rgb = (n + 1) / 2`` of the (left, up,
  towards-viewer) vector. Background is 0.
- edges: white one-pixel lines on black at depth jumps (relative, :data:`DEPTH_EDGE_RELATIVE`), normal
  changes (angle, :data:`NORMAL_EDGE` as 1 - cos) and object boundaries, on the nearer pixel.
- shaded: Lambert with a head light plus :data:`AMBIENT`.
- cameras: camera space has x right, y down, z forward; the field of view is vertical; pixel (0, 0)
  is the top-left corner of the top-left pixel.
"""

from __future__ import annotations

import math

DEPTH_RANGE = (0.15, 1.0)
AMBIENT = 0.15
DEPTH_EDGE_RELATIVE = 0.04
NORMAL_EDGE = 1.0 - math.cos(math.radians(40.0))
SOFT_EDGE_SIGMA_PX = 1.2

# Segmentation palette: distinct, saturated colours (RGB 0..255), background black; object i gets
# PALETTE[i % len(PALETTE)].
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195),
)  # fmt: skip
