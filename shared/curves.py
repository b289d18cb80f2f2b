"""Keyframe curves: pure functions from keys to per-frame values.

Semantics follow animation tools (Blender F-curves, OpenTimelineIO): each key carries the
interpolation of the segment that *leaves* it; before the first key and after the last the value
is held (constant extrapolation); time is an integer frame index.

``smooth`` is a monotone cubic Hermite curve: the slopes inside the curve are the PCHIP slopes of
Fritsch and Carlson (as computed by :class:`scipy.interpolate.PchipInterpolator`), and the slopes at
the first and last key are zero, so motion eases in and out of the clip the way an auto-clamped
Bezier does. Both choices keep every segment inside the range of its two keys: no overshoot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import NDArray

Interpolation = Literal["constant", "linear", "smooth"]
INTERPOLATIONS: tuple[Interpolation, ...] = ("constant", "linear", "smooth")


def smooth_slopes(key_times: NDArray[np.float64], key_values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Slopes of the monotone cubic at each key.

    key_times : (k,) float, strictly increasing, k >= 2
    key_values : (k, c) float
    returns : (k, c) float, PCHIP slopes with the two end slopes set to zero
    """
    from scipy.interpolate import PchipInterpolator  # here: importing it costs ~0.6 s, needed only for smooth keys

    slopes = np.asarray(PchipInterpolator(key_times, key_values, axis=0).derivative()(key_times))
    slopes[0] = 0.0
    slopes[-1] = 0.0
    return slopes


def sample_keys(
    key_times: Sequence[int] | NDArray[np.int64],
    key_values: NDArray[np.float64],
    interpolations: Sequence[Interpolation],
    times: NDArray[np.float64] | NDArray[np.int64],
) -> NDArray[np.float64]:
    """Evaluate a keyframed curve.

    key_times : (k,) int, strictly increasing
    key_values : (k, c) float
    interpolations : (k,) the interpolation of the segment leaving each key (the last one is unused)
    times : (n,) the times to sample
    returns : (n, c) float
    """
    key_t = np.asarray(key_times, dtype=np.float64)
    values = np.asarray(key_values, dtype=np.float64)
    at = np.asarray(times, dtype=np.float64)
    if key_t.ndim != 1 or key_t.size == 0:
        raise ValueError("a curve needs at least one key")
    if values.shape[0] != key_t.size or len(interpolations) != key_t.size:
        raise ValueError(
            f"key_times ({key_t.size}), key_values ({values.shape[0]}) and interpolations "
            f"({len(interpolations)}) must have the same length"
        )
    if np.any(np.diff(key_t) <= 0):
        raise ValueError("key times must be strictly increasing")
    unknown = sorted(set(interpolations) - set(INTERPOLATIONS))
    if unknown:
        raise ValueError(f"unknown interpolation {unknown[0]!r}; expected one of {', '.join(INTERPOLATIONS)}")

    out = np.empty((at.size, values.shape[1]), dtype=np.float64)
    # Index of the key at or before each time; -1 before the first key.
    segment = np.searchsorted(key_t, at, side="right") - 1
    before = segment < 0
    after = segment >= key_t.size - 1
    out[before] = values[0]
    out[after] = values[-1]
    inside = ~(before | after)
    if not np.any(inside):
        return out

    seg = segment[inside]
    t = at[inside]
    t0, t1 = key_t[seg], key_t[seg + 1]
    v0, v1 = values[seg], values[seg + 1]
    u = ((t - t0) / (t1 - t0))[:, None]
    modes = np.asarray(interpolations, dtype=object)[seg]

    inside_values = np.empty((seg.size, values.shape[1]), dtype=np.float64)
    constant = modes == "constant"
    linear = modes == "linear"
    smooth = modes == "smooth"
    inside_values[constant] = v0[constant]
    inside_values[linear] = (v0 + (v1 - v0) * u)[linear]
    if np.any(smooth):
        from scipy.interpolate import CubicHermiteSpline

        spline = CubicHermiteSpline(key_t, values, smooth_slopes(key_t, values), axis=0)
        smooth_values = np.asarray(spline(t[smooth]))
        # Guard against rounding pushing a value a hair outside its keys.
        low = np.minimum(v0[smooth], v1[smooth])
        high = np.maximum(v0[smooth], v1[smooth])
        inside_values[smooth] = np.clip(smooth_values, low, high)
    out[inside] = inside_values
    return out
