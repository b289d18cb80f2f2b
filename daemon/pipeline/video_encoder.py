"""Frames into one video container with PyAV: MP4 (H.264), WebM (VP9) or GIF.

:class:`ContainerEncoder` encodes into the path it is given (the writer's hidden temporary; moving it
into place is the writer's job). yuv420p needs even sizes, so an odd frame is padded by repeating its
last row or column, and RGB becomes BT.709 limited-range YUV with the stream tagged so. GIF frames are
quantised by Pillow to a 256-colour palette each (``pal8``); ``rgb8`` when ``pal8`` does not open.
"""

from __future__ import annotations

import contextlib
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import av
import numpy as np
import numpy.typing as npt
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc
from PIL import Image

from anyi2v.shared.durable import fsync_file

# Quality settings of the software encoders; other encoders run with their defaults.
_ENCODER_OPTIONS: Final[dict[str, dict[str, str]]] = {
    "libx264": {"crf": "18", "preset": "medium"},
    "libvpx-vp9": {"crf": "30", "b:v": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"},
}
_CONTAINER_OPTIONS: Final[dict[str, dict[str, str]]] = {
    "mp4": {"movflags": "+faststart"},
    "webm": {},
    "gif": {"loop": "0"},  # 0: loop forever
}


class ContainerEncoder:
    """An open container at ``path`` with one video stream.

    path : where the container is written (a fresh file)
    format : ``"mp4"``, ``"webm"`` or ``"gif"``
    encoder : ``(codec, pixel format)`` as :func:`~.video_formats.select_encoder` picked them
    fps : the exact frame rate; frame ``i`` gets the timestamp ``i / fps``
    shape : ``(height, width, 3)`` of every frame, before any even padding
    metadata : container tags
    """

    def __init__(
        self,
        path: Path,
        format: str,
        encoder: tuple[str, str],
        fps: Fraction,
        shape: tuple[int, ...],
        metadata: dict[str, str],
    ) -> None:
        codec, pixel_format = encoder
        self.path = path
        self.pixel_format = pixel_format
        self.fps = fps
        height, width = shape[:2]
        if pixel_format == "yuv420p":
            height, width = height + height % 2, width + width % 2
        container = av.open(str(path), "w", format=format, container_options=_CONTAINER_OPTIONS[format])
        self._container: Any = container
        self._stream: Any = None
        try:
            for key, value in metadata.items():
                container.metadata[key] = value
            stream = container.add_stream(codec, rate=fps, options=dict(_ENCODER_OPTIONS.get(codec, {})))
            stream.width = width
            stream.height = height
            stream.pix_fmt = pixel_format
            stream.codec_context.time_base = 1 / fps
            if pixel_format == "yuv420p":
                context = stream.codec_context
                context.colorspace = Colorspace.ITU709
                context.color_range = ColorRange.MPEG
                context.color_primaries = ColorPrimaries.BT709
                context.color_trc = ColorTrc.BT709
        except BaseException:
            self.abort()
            raise
        self._stream = stream

    def add(self, frame: npt.NDArray[np.uint8], index: int) -> None:
        """Encode frame number ``index``: a checked ``uint8`` ``(h, w, 3)`` RGB array."""
        if self.pixel_format == "yuv420p":
            video_frame = av.VideoFrame.from_ndarray(_pad_even(frame), format="rgb24").reformat(
                format="yuv420p",
                dst_colorspace=Colorspace.ITU709,
                dst_color_range=ColorRange.MPEG,
            )
        elif self.pixel_format == "pal8":
            video_frame = av.VideoFrame.from_ndarray(_quantize(frame), format="pal8")
        else:
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
        video_frame.pts = index
        video_frame.time_base = 1 / self.fps
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)

    def finish(self) -> None:
        """Flush the encoder, close the container and flush the file to disk."""
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        container, self._container, self._stream = self._container, None, None
        container.close()
        fsync_file(self.path)

    def abort(self) -> None:
        """Close the container, whatever state the encoder is in (the caller removes the file)."""
        container, self._container, self._stream = self._container, None, None
        if container is not None:
            with contextlib.suppress(Exception):  # a broken encoder must not hide why we abort
                container.close()


def _pad_even(frame: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """The frame grown to an even height and width by repeating its last row and column."""
    height, width = frame.shape[:2]
    if height % 2 == 0 and width % 2 == 0:
        return frame
    padded: npt.NDArray[np.uint8] = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    return padded


def _quantize(frame: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """The frame as 8-bit palette indices and its own 256-entry ARGB palette (what PyAV's pal8 takes)."""
    image = Image.fromarray(frame).quantize(256, method=Image.Quantize.MEDIANCUT)
    indices: npt.NDArray[np.uint8] = np.asarray(image, dtype=np.uint8)
    rgb = np.asarray(image.getpalette() or [], dtype=np.uint8).reshape(-1, 3)[:256]
    palette: npt.NDArray[np.uint8] = np.zeros((256, 4), dtype=np.uint8)
    palette[:, 0] = 255  # opaque
    palette[: len(rgb), 1:] = rgb
    return indices, palette
