"""The toy world's renderer: analytic primitives, sphere-traced in torch, many views at once.

It draws the condition passes of ``anyi2v.render.passes`` with the same conventions (the constants of
``anyi2v.shared.conventions``), without Open3D, so a GPU box can render the training data:

- :func:`cast`: planar depth, normals, object index and hit points of B views (sphere tracing of the
  primitives' signed distance functions, then Newton steps along each ray).
- :func:`depth_image`, :func:`normal_image`, :func:`edges`, :func:`shaded`: the passes, per view.
- :func:`sample_surface_points`, :func:`splat`: the point-cloud modality.

Shapes: B views, K primitives per view (padded, ``present`` marks the real ones), H x W pixels, N points.
Cameras follow ``anyi2v.render.camera``: camera space has x right, y down, z forward; the field of view
is vertical; pixel (0, 0) is the top-left corner of the top-left pixel and rays go through pixel centres.
Everything is float32 on the primitives' device; no function syncs with the host inside its loops.

This module gathers the public names; the code lives beside it: ``cameras`` (look-at, focal length, pixel
rays), ``primitives`` (the primitives and their signed distances), ``trace`` (:func:`cast`), ``passes``
(depth, normals, edges, shading) and ``points`` (surface samples and splats).
"""

from __future__ import annotations

from .cameras import Cameras, Vector3
from .passes import SHININESS, camera_normals, depth_image, edges, normal_image, shaded
from .points import sample_surface_points, splat
from .primitives import BLOB_BALLS, KINDS, Primitives, signed_distances
from .trace import GRADIENT_STEP, HIT_TOLERANCE_PX, MAX_DISTANCE, REFINE_STEPS, Hits, cast

__all__ = [
    "BLOB_BALLS",
    "GRADIENT_STEP",
    "HIT_TOLERANCE_PX",
    "KINDS",
    "MAX_DISTANCE",
    "REFINE_STEPS",
    "SHININESS",
    "Cameras",
    "Hits",
    "Primitives",
    "Vector3",
    "camera_normals",
    "cast",
    "depth_image",
    "edges",
    "normal_image",
    "sample_surface_points",
    "shaded",
    "signed_distances",
    "splat",
]
