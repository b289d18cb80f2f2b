"""The prompt's appearance under control: how far the generated background is from the prompt's.

AnyI2V is meant to take structure from the condition and appearance from the prompt. The toy world
renders each caption's background with known colours, so the held-out shots' ground-truth clips show
the background the prompt asks for. :func:`background_delta_e` is the CIELAB distance (CIE76 ΔE)
between the mean colour of a generated clip outside every object's box (all frames, a margin around
each box) and the mean colour of the ground truth there: 0 is the prompt's background, about 2.3 a
just-noticeable difference, 50 and more another colour altogether (a black background where the prompt
asks for blue is about 70).

:data:`APPEARANCE_MODES` are the ablations that find which part of the structure injection carries the
condition's appearance into the video (``anyi2v eval --modes appearance``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

__all__ = ["APPEARANCE_MODES", "BOX_MARGIN_PX", "background_delta_e", "background_mask", "mean_interval"]

BOX_MARGIN_PX = 3

# name -> (control, method settings changed from the defaults)
APPEARANCE_MODES: dict[str, tuple[bool, dict[str, Any]]] = {
    "no structure injection": (True, {"structure_injection": False}),
    "no trajectory optimisation": (True, {"trajectory_control": False}),
    "residual injection only": (True, {"inject_query": False, "kv_copy": False}),
    "residual only w/o AdaIN": (True, {"inject_query": False, "kv_copy": False, "residual_adain": False}),
    "query injection only": (True, {"inject_residual": False, "kv_copy": False}),
    "K/V copy only": (True, {"inject_residual": False, "inject_query": False}),
    "w/o residual injection": (True, {"inject_residual": False}),
    "AdaIN patch 1": (True, {"adain_patch_size": 1}),
    "AdaIN patch 2": (True, {"adain_patch_size": 2}),
    "AdaIN patch 8": (True, {"adain_patch_size": 8}),
    "inject 2 steps": (True, {"injection_steps": 2}),
    "inject 1 step": (True, {"injection_steps": 1}),
    "inject both CFG halves": (True, {"injection_halves": "both", "kv_copy_halves": "both"}),
    "learning rate 0.003": (True, {"learning_rate": 0.003}),
    "update inside boxes": (True, {"update_region": "boxes"}),
    "update inside boxes w/o injection": (True, {"update_region": "boxes", "structure_injection": False}),
    "update inside boxes with both CFG halves": (
        True,
        {"update_region": "boxes", "injection_halves": "both", "kv_copy_halves": "both"},
    ),
}


def background_mask(boxes: NDArray[np.float64], frames: int, size: tuple[int, int]) -> NDArray[np.bool_]:
    """(F, H, W): True outside every box of ``boxes`` (K, F, 4 pixels x0, y0, x1, y1; NaN where an object
    is hidden), each box grown by :data:`BOX_MARGIN_PX`."""
    height, width = size
    mask = np.ones((frames, height, width), dtype=bool)
    for object_boxes in boxes:
        for frame in range(frames):
            box = object_boxes[frame]
            if np.isnan(box).any():
                continue
            x0, y0 = (max(0, math.floor(v) - BOX_MARGIN_PX) for v in box[:2])
            x1, y1 = (math.ceil(v) + BOX_MARGIN_PX for v in box[2:])
            mask[frame, y0 : min(height, y1), x0 : min(width, x1)] = False
    return mask


def _mean_lab(frames: NDArray[np.uint8], mask: NDArray[np.bool_]) -> NDArray[np.float64]:
    pixels = frames[mask].astype(np.float32)[None] / 255.0  # (1, N, 3) RGB in 0..1
    lab = cv2.cvtColor(pixels, cv2.COLOR_RGB2LAB)  # L 0..100, a and b about -128..127
    return np.asarray(lab[0].mean(axis=0), dtype=np.float64)


def background_delta_e(frames: NDArray[np.uint8], truth: NDArray[np.uint8], boxes: NDArray[np.float64]) -> float:
    """CIE76 ΔE between the mean colours of ``frames`` and ``truth`` (both (F, H, W, 3) uint8) outside
    every box; NaN when the boxes cover everything."""
    mask = background_mask(boxes, frames.shape[0], (frames.shape[1], frames.shape[2]))
    if not mask.any():
        return math.nan
    return float(np.linalg.norm(_mean_lab(frames, mask) - _mean_lab(truth, mask)))


def mean_interval(values: Sequence[float]) -> tuple[float, float]:
    """The mean of the finite ``values`` and the half-width of its 95% interval (1.96 standard errors; NaN
    with fewer than two)."""
    finite = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
    if finite.size == 0:
        return math.nan, math.nan
    if finite.size < 2:
        return float(finite.mean()), math.nan
    return float(finite.mean()), float(1.96 * finite.std(ddof=1) / math.sqrt(finite.size))
