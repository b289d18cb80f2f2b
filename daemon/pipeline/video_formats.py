"""Video formats: which one a path or a name asks for, exact frame rates, the encoders that open in
this PyAV/FFmpeg build, the checks on frames, and the errors of the video output stage.

See :mod:`anyi2v.daemon.pipeline.video` for what each format is written as.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import cache
from numbers import Rational, Real
from pathlib import Path
from typing import Final, Literal

import av
import numpy as np
import numpy.typing as npt

Format = Literal["mp4", "webm", "gif", "png"]

#: Output formats and the suffixes that select them; a folder or a path with no suffix is a PNG sequence.
FORMATS: Final[tuple[Format, ...]] = ("mp4", "webm", "gif", "png")
SUFFIXES: Final[dict[str, Format]] = {".mp4": "mp4", ".webm": "webm", ".gif": "gif"}

#: Encoders tried in order for each video format; the first that opens in this FFmpeg build is used.
ENCODERS: Final[dict[str, tuple[str, ...]]] = {
    "mp4": ("libx264", "libopenh264", "h264_videotoolbox", "h264_nvenc", "h264_qsv", "h264_amf", "h264_mf"),
    "webm": ("libvpx-vp9",),
    "gif": ("gif",),
}
# Pixel formats tried in order for each video format.
_PIXEL_FORMATS: Final[dict[str, tuple[str, ...]]] = {
    "mp4": ("yuv420p",),
    "webm": ("yuv420p",),
    "gif": ("pal8", "rgb8"),
}
# The limit of a float frame rate's denominator: 1001 keeps NTSC rates (30000/1001) exact.
_MAX_RATE_DENOMINATOR: Final = 1001


class VideoError(ValueError):
    """Input a video cannot be written from: no frames, mismatched or malformed frames, a bad rate or path."""


class EncoderUnavailableError(RuntimeError):
    """No encoder for the format opens in this PyAV/FFmpeg build; the message says what was tried."""


def resolve_format(path: Path, format: str | None = None) -> Format:
    """The output format: ``format`` if given, else from the suffix; a folder or no suffix means PNGs."""
    supported = f"{', '.join(SUFFIXES)}, or a folder / a path with no suffix for a PNG sequence"
    if format is not None:
        name = format.lower().removeprefix(".")
        for known in FORMATS:
            if name == known:
                return known
        raise VideoError(f"unknown video format {format!r}; supported: {', '.join(FORMATS)}")
    if path.is_dir() or not path.suffix:
        return "png"
    suffix = path.suffix.lower()
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    hint = " (a PNG sequence is written to a folder)" if suffix == ".png" else ""
    raise VideoError(f"unknown video suffix {path.suffix!r} in {str(path)!r}{hint}; supported: {supported}")


def frame_rate(fps: float | Fraction) -> Fraction:
    """``fps`` as an exact fraction; raises :class:`VideoError` unless it is a finite number above zero."""
    value: object = fps  # checked at run time, whatever the caller's types said
    if isinstance(value, bool) or not isinstance(value, Real):
        raise VideoError(f"fps must be a number, got {type(value).__name__}")
    if isinstance(value, Rational):  # int, Fraction, numpy integers: exact already
        rate = Fraction(value)
    else:
        number = float(value)
        if not math.isfinite(number):
            raise VideoError(f"fps must be finite, got {fps!r}")
        rate = Fraction(number).limit_denominator(_MAX_RATE_DENOMINATOR)
    if rate <= 0:
        raise VideoError(f"fps must be greater than 0, got {fps!r}")
    return rate


@cache
def _open_failure(codec: str, pixel_format: str) -> str | None:
    """Why ``codec`` cannot encode ``pixel_format`` here, or None if it opens. Cached per process."""
    if codec not in av.codecs_available:
        return "not in this FFmpeg build"
    try:
        context = av.CodecContext.create(codec, "w")
    except Exception as error:
        return f"not an encoder ({error})"
    formats = [f.name for f in (context.codec.video_formats or ())]
    if formats and pixel_format not in formats:
        return f"does not take {pixel_format} (takes {', '.join(formats)})"
    # Hardware encoders are listed even where no device exists: only opening one tells.
    context.width = 256
    context.height = 256
    context.pix_fmt = pixel_format
    context.time_base = Fraction(1, 25)
    context.framerate = Fraction(25)
    try:
        context.open()
    except Exception as error:
        return f"fails to open ({error})"
    finally:
        del context
    return None


def select_encoder(format: str) -> tuple[str, str]:
    """``(encoder, pixel format)`` for a video format; raises :class:`EncoderUnavailableError` if none opens."""
    tried: list[str] = []
    for codec in ENCODERS[format]:
        for pixel_format in _PIXEL_FORMATS[format]:
            failure = _open_failure(codec, pixel_format)
            if failure is None:
                return codec, pixel_format
            tried.append(f"{codec} with {pixel_format}: {failure}")
    raise EncoderUnavailableError(
        f"no encoder for {format} works in this PyAV/FFmpeg build (PyAV {av.__version__}); tried " + "; ".join(tried)
    )


def check_frame(frame: object, index: int, shape: tuple[int, ...] | None) -> npt.NDArray[np.uint8]:
    """The frame if it is a ``uint8`` ``(h, w, 3)`` array of the expected shape; else :class:`VideoError`."""
    if not isinstance(frame, np.ndarray):
        raise VideoError(f"frame {index} is a {type(frame).__name__}, expected a numpy array")
    if frame.ndim != 3 or frame.shape[2] != 3:
        detail = f"{frame.shape[2]} channels" if frame.ndim == 3 else f"{frame.ndim} dimensions"
        raise VideoError(f"frame {index} has shape {frame.shape} ({detail}); expected (height, width, 3) RGB")
    if frame.dtype != np.uint8:
        raise VideoError(f"frame {index} has dtype {frame.dtype}, expected uint8 (0-255 RGB)")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise VideoError(f"frame {index} is empty: shape {frame.shape}")
    if shape is not None and frame.shape != shape:
        raise VideoError(
            f"frame {index} has shape {frame.shape} but frame 0 has shape {shape}; all frames must be the same size"
        )
    checked: npt.NDArray[np.uint8] = np.ascontiguousarray(frame)
    return checked
