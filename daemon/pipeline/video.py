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

The modules beside this one hold the parts: ``video_formats`` (formats, frame rates, encoders, frame
checks, errors), ``video_encoder`` (the PyAV container), ``video_png`` (PNG-frame folders) and
``video_sidecar`` (the shot as metadata and sidecar). This module is the writer that drives them and
moves what they wrote into place; import from here.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

import numpy as np
import numpy.typing as npt

from anyi2v.shared.durable import fsync_folder

from .video_encoder import ContainerEncoder
from .video_formats import (
    ENCODERS,
    FORMATS,
    SUFFIXES,
    EncoderUnavailableError,
    Format,
    VideoError,
    check_frame,
    frame_rate,
    resolve_format,
    select_encoder,
)
from .video_png import commit_png_folder, staging_place, write_png_frame
from .video_sidecar import check_shot_json, container_metadata, sidecar_path, write_shot_json

__all__ = [
    "ENCODERS",
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
        self.shot_json = check_shot_json(shot_json)
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
        self._container: ContainerEncoder | None = None

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
        return sidecar_path(self.path, self.format)

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
        checked = check_frame(frame, self._count, self._shape)
        try:
            if self._shape is None:
                self._start(checked.shape)
                self._shape = checked.shape
            if self.format == "png":
                write_png_frame(self._temporaries[0], self._count, checked)
            else:
                assert self._container is not None
                self._container.add(checked, self._count)
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
                self._paths = commit_png_folder(self._temporaries[0], self.path, self._count, self.shot_json)
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
        container, self._container = self._container, None
        if container is not None:
            container.abort()
        temporaries, self._temporaries = self._temporaries, []
        for temporary in temporaries:
            _remove(temporary)

    def _start(self, shape: tuple[int, ...]) -> None:
        if self.format == "png":
            folder, name = staging_place(self.path)
            self._temporaries.append(_temporary(folder, name, directory=True))
            return
        assert self.encoder is not None
        temporary = _temporary(self.path.parent, self.path.name)
        self._temporaries.append(temporary)
        metadata = container_metadata(self.format, self.shot_json)
        self._container = ContainerEncoder(temporary, self.format, self.encoder, self.fps, shape, metadata)

    def _finish_video(self) -> list[Path]:
        """Finish the encoded file and its sidecar, both whole in their temporaries, then rename both."""
        assert self._container is not None
        self._container.finish()  # if it fails, abort() closes the container
        self._container = None
        video = self._temporaries[0]
        sidecar = self.sidecar
        sidecar_temporary: Path | None = None
        if self.shot_json is not None:
            sidecar_temporary = _temporary(self.path.parent, sidecar.name)
            self._temporaries.append(sidecar_temporary)
            write_shot_json(sidecar_temporary, self.shot_json)
        os.replace(video, self.path)
        written = [self.path]
        if sidecar_temporary is not None:
            os.replace(sidecar_temporary, sidecar)
            written.append(sidecar)
        else:
            sidecar.unlink(missing_ok=True)  # it described the clip just replaced
        fsync_folder(self.path.parent)
        return written


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
