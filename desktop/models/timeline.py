"""The timeline's state and geometry: rows of keys, the frame scale, the playhead, key selection.

Everything a timeline widget decides (which key is under the mouse, which frame a position means,
where the playhead goes when playing) is here, so it is tested without a display.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from anyi2v.shared.curves import Interpolation
from anyi2v.shared.shot import Shot

from .edits import KeyRef
from .events import Emitter

# How a key is drawn, by the interpolation of the segment that leaves it (Blender draws key types by
# shape the same way): a square holds, a diamond goes straight, a circle eases.
KEY_GLYPHS: dict[Interpolation, str] = {"constant": "square", "linear": "diamond", "smooth": "circle"}


@dataclass(frozen=True)
class KeyMark:
    track_id: str
    frame: int
    interpolation: Interpolation
    selected: bool

    @property
    def glyph(self) -> str:
        return KEY_GLYPHS[self.interpolation]

    @property
    def ref(self) -> KeyRef:
        return (self.track_id, self.frame)


@dataclass(frozen=True)
class TimelineRow:
    track_id: str
    title: str
    role: str
    keys: tuple[KeyMark, ...]


def timeline_rows(shot: Shot, selection: Iterable[KeyRef] = ()) -> tuple[TimelineRow, ...]:
    """One row per track, in the shot's order, with its keys and which are selected."""
    chosen = set(selection)
    return tuple(
        TimelineRow(
            track.id,
            track.label or track.id,
            track.role,
            tuple(
                KeyMark(track.id, key.frame, key.interpolation, (track.id, key.frame) in chosen)
                for key in track.keyframes
            ),
        )
        for track in shot.tracks
    )


@dataclass(frozen=True)
class TimelineScale:
    """Frames laid out left to right: frame ``f`` is centred at ``left + (f + 0.5) * step``."""

    n_frames: int
    width: float  # pixels from the left of the frame area to its right
    left: float = 0.0

    @property
    def step(self) -> float:
        return self.width / max(self.n_frames, 1)

    def x(self, frame: float) -> float:
        return self.left + (frame + 0.5) * self.step

    def frame_at(self, x: float) -> int:
        """The frame under ``x``, clamped to the clip."""
        return max(0, min(self.n_frames - 1, math.floor((x - self.left) / self.step)))


def key_at(rows: Iterable[TimelineRow], row_index: int, frame: int) -> KeyMark | None:
    for index, row in enumerate(rows):
        if index == row_index:
            return next((key for key in row.keys if key.frame == frame), None)
    return None


def clamp_shift(frames: Iterable[int], delta: int, n_frames: int) -> int:
    """``delta`` limited so keys at ``frames`` shifted by it stay in the clip (a drag stops at the ends)."""
    frames = list(frames)
    if not frames:
        return 0
    return max(-min(frames), min(delta, n_frames - 1 - max(frames)))


class KeySelection:
    """The selected keys. ``changed`` fires with the new selection."""

    def __init__(self) -> None:
        self.keys: frozenset[KeyRef] = frozenset()
        self.changed: Emitter[frozenset[KeyRef]] = Emitter()

    def set(self, keys: Iterable[KeyRef]) -> None:
        keys = frozenset(keys)
        if keys != self.keys:
            self.keys = keys
            self.changed.emit(keys)

    def click(self, key: KeyRef | None, extend: bool) -> None:
        """A click on a key (or on nothing): selects it alone, or toggles it with ``extend`` (Shift)."""
        if key is None:
            if not extend:
                self.set(())
        elif extend:
            self.set(self.keys ^ {key})
        elif key not in self.keys:
            self.set({key})

    def prune(self, shot: Shot) -> None:
        """Forget keys the shot no longer has (after an undo, a delete or a move)."""
        present = {(track.id, key.frame) for track in shot.tracks for key in track.keyframes}
        self.set(self.keys & present)

    def tracks(self) -> frozenset[str]:
        return frozenset(track_id for track_id, _ in self.keys)


class Playback:
    """The playhead: the current frame, playing or not, looping or not. ``frame_changed`` fires with
    the new frame; ``tick`` is called once per frame interval while playing."""

    def __init__(self, n_frames: int, fps: float, loop: bool = True) -> None:
        self.n_frames = n_frames
        self.fps = fps
        self.loop = loop
        self.frame = 0
        self.playing = False
        self.frame_changed: Emitter[int] = Emitter()
        self.playing_changed: Emitter[bool] = Emitter()

    @property
    def interval_ms(self) -> int:
        return max(1, round(1000.0 / self.fps))

    def set_clip(self, n_frames: int, fps: float) -> None:
        self.n_frames, self.fps = n_frames, fps
        if self.frame >= n_frames:
            self.set_frame(n_frames - 1)

    def set_frame(self, frame: int) -> None:
        frame = max(0, min(self.n_frames - 1, frame))
        if frame != self.frame:
            self.frame = frame
            self.frame_changed.emit(frame)

    def step(self, delta: int) -> None:
        """Left/right arrows: one frame back or on, wrapping when looping."""
        target = self.frame + delta
        if self.loop:
            target %= self.n_frames
        self.set_frame(target)

    def set_playing(self, playing: bool) -> None:
        if playing and not self.loop and self.frame == self.n_frames - 1:
            self.set_frame(0)  # play again from the start, as players do
        if playing != self.playing:
            self.playing = playing
            self.playing_changed.emit(playing)

    def toggle(self) -> None:
        self.set_playing(not self.playing)

    def tick(self) -> None:
        if not self.playing:
            return
        if self.frame + 1 < self.n_frames:
            self.set_frame(self.frame + 1)
        elif self.loop:
            self.set_frame(0)
        else:
            self.set_playing(False)
