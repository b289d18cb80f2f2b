"""The pipeline's output stage: frames to an MP4, WebM, GIF or PNG sequence, written so no data is lost.

Frames are ``uint8`` RGB arrays of shape ``(height, width, 3)``, all the same shape. :func:`write_video`
writes a whole clip; :class:`VideoWriter` encodes frames one at a time as the pipeline streams them (the
first frame fixes the size) and is what :func:`write_video` uses.

Formats, picked by ``format=`` or else by the path:

* ``.mp4``: H.264 (``libx264``, CRF 18, preset ``medium``), ``yuv420p``, with ``+faststart`` so browsers
  play it before it has fully downloaded. If this FFmpeg build lacks ``libx264``, another H.264 encoder
  is used (``libopenh264`` or a hardware one) if one opens; otherwise :class:`EncoderUnavailableError` names
  what is missing.
* ``.webm``: VP9 (``libvpx-vp9``, constant quality CRF 30), ``yuv420p``.
* ``.gif``: FFmpeg's ``gif`` encoder. Each frame is quantised by Pillow to its own 256-colour palette and
  encoded as ``pal8``, which is far closer to the input than FFmpeg's fixed 3-3-2 ``rgb8`` palette; ``rgb8``
  is the fallback where ``pal8`` does not open. The GIF loops forever. GIF delays are whole hundredths of
  a second, so 7.5 or 8 fps is approximated by alternating 13 and 12 hundredths.
* a PNG sequence, when the path is a folder, has no suffix, or ``format="png"``: ``frame-0000.png``,
  ``frame-0001.png``, ... written by Pillow, lossless.

yuv420p stores colour at half resolution, so it needs even sizes: an odd width or height is padded by
repeating the last column or row (never by scaling, which would blur every frame). RGB is converted to
YUV with BT.709 coefficients in limited range, and the stream is tagged so, so players (which assume
BT.709 for untagged HD video) show the colours that were written.

Frame rates may be fractional (``7.5``, ``30000/1001``): the rate is kept as a :class:`~fractions.Fraction`
(floats are turned into the nearest fraction with a denominator of at most 1001) and frame ``i`` gets the
timestamp ``i / fps`` exactly.

Traceability: ``shot_json`` (the shot document that produced the clip, as JSON text) is written beside
the video as ``<path>.shot.json`` (for a PNG sequence, ``shot.json`` inside the folder). MP4 and WebM also
carry it in the container's ``comment`` tag (read back by ``av.open(path).metadata``; WebM reports the key
as ``COMMENT``). GIF has no metadata PyAV can write, so for GIF the sidecar is the only record. A sidecar
left by an earlier write of the same path is removed when the new clip has no shot JSON, so a sidecar
never describes a different clip than the one beside it.

Nothing is lost on a crash: a video is encoded into a hidden temporary file beside the target
(``.<name>.<random>.tmp``), flushed to disk and moved over the target with :func:`os.replace` only once it
is complete, so the final name holds either the old file or the whole new one. A PNG sequence is staged in
a hidden folder: beside a new folder, which then appears with one rename; inside an existing folder, from
which the finished frames are moved one by one (each move is atomic; frames left from a longer earlier
sequence are removed, other files are kept). A writer that fails, or a ``with`` block that raises, removes
its temporary files; a writer dropped without :meth:`VideoWriter.close` or :meth:`VideoWriter.abort` leaves
its hidden temporary behind (never anything under the final name).

Bad input raises :class:`VideoError` (a :class:`ValueError`) naming what is wrong.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import shutil
from collections.abc import Iterable
from fractions import Fraction
from functools import cache
from numbers import Rational, Real
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self

import av
import numpy as np
import numpy.typing as npt
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc
from PIL import Image

from anyi2v.shared.durable import fsync_file, fsync_folder

__all__ = [
    "FORMATS",
    "SUFFIXES",
    "EncoderUnavailableError",
    "VideoError",
    "VideoWriter",
    "frame_rate",
    "resolve_format",
    "select_encoder",
    "sidecar_path",
    "write_video",
]

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
_METADATA_KEY: Final = "comment"
_PNG_SHOT: Final = "shot.json"
_PNG_FRAME = re.compile(r"frame-(\d{4,})\.png")
# The limit of a float frame rate's denominator: 1001 keeps NTSC rates (30000/1001) exact.
_MAX_RATE_DENOMINATOR: Final = 1001


class VideoError(ValueError):
    """Input a video cannot be written from: no frames, mismatched or malformed frames, a bad rate or path."""


class EncoderUnavailableError(RuntimeError):
    """No encoder for the format opens in this PyAV/FFmpeg build; the message says what was tried."""


def sidecar_path(path: str | os.PathLike[str], format: str | None = None) -> Path:
    """Where the shot JSON of a clip written to ``path`` goes."""
    target = Path(path)
    if resolve_format(target, format) == "png":
        return target / _PNG_SHOT
    return target.with_name(target.name + ".shot.json")


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


def _check_frame(frame: object, index: int, shape: tuple[int, ...] | None) -> npt.NDArray[np.uint8]:
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


def _check_shot_json(shot_json: str | None) -> str | None:
    if shot_json is None:
        return None
    if not isinstance(shot_json, str):
        raise VideoError(f"shot_json must be JSON text (str), got {type(shot_json).__name__}")
    try:
        json.loads(shot_json)
    except json.JSONDecodeError as error:
        raise VideoError(f"shot_json is not valid JSON: {error}") from None
    return shot_json


def _pad_even(frame: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """The frame grown to an even height and width by repeating its last row and column."""
    height, width = frame.shape[:2]
    if height % 2 == 0 and width % 2 == 0:
        return frame
    padded: npt.NDArray[np.uint8] = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    return padded


def _temporary(folder: Path, name: str, *, directory: bool = False) -> Path:
    """A new hidden file or folder ``.<name>.<random>.tmp`` in ``folder``.

    Made with mode 0o666 (0o777 for a folder) less the umask, as the final file would be, not the 0o600
    of :mod:`tempfile`, since it is renamed into place as is.
    """
    while True:
        candidate = folder / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            if directory:
                candidate.mkdir(mode=0o777)
            else:
                os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return candidate


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _write_text(path: Path, text: str) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


class VideoWriter:
    """Encodes frames one at a time; the first frame fixes the size. Use it as a context manager::

        with VideoWriter("clip.mp4", 8, shot_json=text) as writer:
            for frame in frames:
                writer.add(frame)
        writer.paths  # [clip.mp4, clip.mp4.shot.json]

    Leaving the block normally calls :meth:`close`, which finishes the file and moves it into place;
    leaving it by an exception calls :meth:`abort`, which removes the temporary file and leaves whatever
    was at the path untouched. A frame :meth:`add` rejects (wrong shape, dtype...) is not written and
    the writer stays usable. Closing without frames raises :class:`VideoError` and writes nothing.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float | Fraction,
        *,
        shot_json: str | None = None,
        format: str | None = None,
    ) -> None:
        self.path = Path(os.path.abspath(path))
        self.format: Format = resolve_format(self.path, format)
        self.fps = frame_rate(fps)
        self.shot_json = _check_shot_json(shot_json)
        if not self.path.parent.is_dir():
            raise VideoError(f"cannot write {str(path)!r}: folder {str(self.path.parent)!r} does not exist")
        if self.format == "png":
            if self.path.exists() and not self.path.is_dir():
                raise VideoError(f"cannot write a PNG sequence to {str(path)!r}: it is a file, not a folder")
            self.encoder: tuple[str, str] | None = None
        else:
            if self.path.is_dir():
                raise VideoError(f"cannot write a {self.format} video to {str(path)!r}: it is a folder")
            self.encoder = select_encoder(self.format)  # fail before any frame is made, not at the first
        self._shape: tuple[int, ...] | None = None
        self._count = 0
        self._state: Literal["open", "closed", "aborted"] = "open"
        self._paths: list[Path] = []
        self._temporaries: list[Path] = []  # removed by abort(): the video being encoded, its sidecar, PNG staging
        self._container: Any = None
        self._stream: Any = None

    @property
    def frame_count(self) -> int:
        """Frames added so far."""
        return self._count

    @property
    def size(self) -> tuple[int, int] | None:
        """``(width, height)`` of the frames as given (before any even padding); None before the first."""
        if self._shape is None:
            return None
        return self._shape[1], self._shape[0]

    @property
    def paths(self) -> list[Path]:
        """The files written, once closed: the video and its sidecar, or the PNGs and ``shot.json``."""
        return list(self._paths)

    @property
    def sidecar(self) -> Path:
        """Where the shot JSON goes (written only when ``shot_json`` was given)."""
        if self.format == "png":
            return self.path / _PNG_SHOT
        return self.path.with_name(self.path.name + ".shot.json")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def add(self, frame: npt.NDArray[np.uint8]) -> None:
        """Encode one ``uint8`` ``(h, w, 3)`` RGB frame."""
        if self._state != "open":
            raise VideoError(f"cannot add a frame: the writer for {str(self.path)!r} is {self._state}")
        checked = _check_frame(frame, self._count, self._shape)
        try:
            if self._shape is None:
                self._start(checked.shape)
                self._shape = checked.shape
            if self.format == "png":
                self._add_png(checked)
            else:
                self._add_video(checked)
        except BaseException:
            self.abort()
            raise
        self._count += 1

    def close(self) -> list[Path]:
        """Finish the file and move it into place; returns the paths written. Calling it again is harmless."""
        if self._state == "closed":
            return self.paths
        if self._state == "aborted":
            raise VideoError(f"cannot close: the writer for {str(self.path)!r} was aborted")
        if self._count == 0:
            self.abort()
            raise VideoError(f"no frames to write to {str(self.path)!r}")
        try:
            if self.format == "png":
                self._paths = self._finish_png()
            else:
                self._paths = self._finish_video()
        except BaseException:
            self.abort()
            raise
        self._temporaries = []
        self._state = "closed"
        return self.paths

    def abort(self) -> None:
        """Stop, and remove the temporary file or folder; what was at the path before stays as it was."""
        if self._state != "open":
            return
        self._state = "aborted"
        container, self._container, self._stream = self._container, None, None
        if container is not None:
            with contextlib.suppress(Exception):  # a broken encoder must not hide why we abort
                container.close()
        temporaries, self._temporaries = self._temporaries, []
        for temporary in temporaries:
            _remove(temporary)

    # Video

    def _start(self, shape: tuple[int, ...]) -> None:
        if self.format == "png":
            # Staged beside a new folder, so that one rename makes it; inside an existing one, so that the
            # frames are moved within one file system.
            if self.path.is_dir():
                self._temporaries.append(_temporary(self.path, "frames", directory=True))
            else:
                self._temporaries.append(_temporary(self.path.parent, self.path.name, directory=True))
            return
        assert self.encoder is not None
        codec, pixel_format = self.encoder
        height, width = shape[:2]
        if pixel_format == "yuv420p":
            height, width = height + height % 2, width + width % 2
        temporary = _temporary(self.path.parent, self.path.name)
        self._temporaries.append(temporary)
        container = av.open(str(temporary), "w", format=self.format, container_options=_CONTAINER_OPTIONS[self.format])
        self._container = container
        if self.shot_json is not None and self.format in ("mp4", "webm"):
            container.metadata[_METADATA_KEY] = self.shot_json
        stream = container.add_stream(codec, rate=self.fps, options=dict(_ENCODER_OPTIONS.get(codec, {})))
        stream.width = width
        stream.height = height
        stream.pix_fmt = pixel_format
        stream.codec_context.time_base = 1 / self.fps
        if pixel_format == "yuv420p":
            context = stream.codec_context
            context.colorspace = Colorspace.ITU709
            context.color_range = ColorRange.MPEG
            context.color_primaries = ColorPrimaries.BT709
            context.color_trc = ColorTrc.BT709
        self._stream = stream

    def _add_video(self, frame: npt.NDArray[np.uint8]) -> None:
        assert self.encoder is not None
        pixel_format = self.encoder[1]
        if pixel_format == "yuv420p":
            video_frame = av.VideoFrame.from_ndarray(_pad_even(frame), format="rgb24").reformat(
                format="yuv420p",
                dst_colorspace=Colorspace.ITU709,
                dst_color_range=ColorRange.MPEG,
            )
        elif pixel_format == "pal8":
            video_frame = av.VideoFrame.from_ndarray(_quantize(frame), format="pal8")
        else:
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
        video_frame.pts = self._count
        video_frame.time_base = 1 / self.fps
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)

    def _finish_video(self) -> list[Path]:
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        container, self._container, self._stream = self._container, None, None
        container.close()
        video = self._temporaries[0]
        fsync_file(video)
        sidecar = self.sidecar
        sidecar_temporary: Path | None = None
        if self.shot_json is not None:
            sidecar_temporary = _temporary(self.path.parent, sidecar.name)
            self._temporaries.append(sidecar_temporary)
            _write_text(sidecar_temporary, self.shot_json)
        os.replace(video, self.path)
        written = [self.path]
        if sidecar_temporary is not None:
            os.replace(sidecar_temporary, sidecar)
            written.append(sidecar)
        else:
            sidecar.unlink(missing_ok=True)  # it described the clip just replaced
        fsync_folder(self.path.parent)
        return written

    # PNG sequence

    def _add_png(self, frame: npt.NDArray[np.uint8]) -> None:
        with (self._temporaries[0] / _png_name(self._count)).open("wb") as handle:
            Image.fromarray(frame).save(handle, format="PNG")
            handle.flush()
            os.fsync(handle.fileno())

    def _finish_png(self) -> list[Path]:
        staging = self._temporaries[0]
        names = [_png_name(index) for index in range(self._count)]
        if self.shot_json is not None:
            _write_text(staging / _PNG_SHOT, self.shot_json)
            names.append(_PNG_SHOT)
        fsync_folder(staging)
        if staging.parent != self.path and not self.path.exists():
            os.replace(staging, self.path)  # a new folder: one atomic rename
        else:
            if not self.path.exists():
                self.path.mkdir()
            for name in names:
                os.replace(staging / name, self.path / name)
            staging.rmdir()
            for stale in self.path.iterdir():
                match = _PNG_FRAME.fullmatch(stale.name)
                if match is not None and int(match.group(1)) >= self._count:
                    stale.unlink()
            if self.shot_json is None:
                (self.path / _PNG_SHOT).unlink(missing_ok=True)
            fsync_folder(self.path)
        fsync_folder(self.path.parent)
        return [self.path / name for name in names]


def _png_name(index: int) -> str:
    return f"frame-{index:04d}.png"


def _quantize(frame: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """The frame as 8-bit palette indices and its own 256-entry ARGB palette (what PyAV's pal8 takes)."""
    image = Image.fromarray(frame).quantize(256, method=Image.Quantize.MEDIANCUT)
    indices: npt.NDArray[np.uint8] = np.asarray(image, dtype=np.uint8)
    rgb = np.asarray(image.getpalette() or [], dtype=np.uint8).reshape(-1, 3)[:256]
    palette: npt.NDArray[np.uint8] = np.zeros((256, 4), dtype=np.uint8)
    palette[:, 0] = 255  # opaque
    palette[: len(rgb), 1:] = rgb
    return indices, palette


def write_video(
    frames: Iterable[npt.NDArray[np.uint8]],
    path: str | os.PathLike[str],
    fps: float | Fraction,
    *,
    shot_json: str | None = None,
    format: str | None = None,
) -> list[Path]:
    """Write ``uint8`` ``(h, w, 3)`` RGB frames as a video or PNG sequence; returns the paths written.

    ``frames`` may be any iterable (a list, a generator, an ``(n, h, w, 3)`` array); frames are encoded as
    they come. The format comes from ``format`` (``"mp4"``, ``"webm"``, ``"gif"``, ``"png"``) or else the
    path (see the module docstring). ``shot_json`` is written as a sidecar and, for MP4 and WebM, into the
    container's ``comment`` tag. Raises :class:`VideoError` for bad input and leaves the path as it was.
    """
    if isinstance(frames, np.ndarray) and frames.ndim != 4:
        raise VideoError(f"a frames array must have shape (count, height, width, 3), got {frames.shape}")
    with VideoWriter(path, fps, shot_json=shot_json, format=format) as writer:
        for frame in frames:
            writer.add(frame)
    return writer.paths
