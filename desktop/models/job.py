"""A generation job as the studio sees it: its state, progress per stage, previews and frames.

:meth:`JobProgress.apply` folds the daemon's events (PROTOCOL.md) into that state, in order; the
player and the progress bar only read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from anyi2v.shared.protocol import FINAL_STATES

STAGE_TITLES: dict[str, str] = {
    "preparing": "Rendering the condition",
    "submitting": "Sending",
    "queued": "Queued",
    "loading": "Loading the model",
    "inversion": "Inverting the condition",
    "optimization": "Optimizing motion",
    "sampling": "Sampling",
    "decode": "Decoding frames",
    "encode": "Encoding the video",
}


def rgb_frame(buffer: bytes, width: int, height: int) -> NDArray[np.uint8]:
    """An rgb8 buffer to a read-only ``(height, width, 3)`` array; raises ValueError on a size mismatch."""
    if len(buffer) != width * height * 3:
        raise ValueError(f"a {width}x{height} rgb8 frame is {width * height * 3} bytes, got {len(buffer)}")
    return np.frombuffer(buffer, dtype=np.uint8).reshape(height, width, 3)


def split_strip(strip: NDArray[np.uint8], n_frames: int) -> list[NDArray[np.uint8]]:
    """A preview strip (every frame side by side) into its frames."""
    if n_frames < 1 or strip.shape[1] % n_frames:
        return [strip]
    return list(np.split(strip, n_frames, axis=1))


@dataclass
class JobProgress:
    """``state`` is submitting, queued, running, done, failed or cancelled."""

    job_id: str
    n_frames: int
    state: str = "submitting"
    stage: str = "submitting"
    done: int = 0
    total: int = 0
    queue_position: int | None = None
    attempt: int = 1
    message: str = ""
    hints: tuple[str, ...] = ()
    frames: list[NDArray[np.uint8] | None] = field(default_factory=list)
    previews: list[NDArray[np.uint8]] = field(default_factory=list)
    last_seq: int = -1

    def __post_init__(self) -> None:
        if not self.frames:
            self.frames = [None] * self.n_frames

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def frames_received(self) -> int:
        return sum(frame is not None for frame in self.frames)

    @property
    def fraction(self) -> float:
        """Progress of the current stage, 0..1."""
        return self.done / self.total if self.total > 0 else 0.0

    @property
    def status_line(self) -> str:
        if self.state == "queued":
            ahead = self.queue_position or 0
            return f"Queued: {ahead} job{'s' if ahead != 1 else ''} ahead" if ahead else "Queued: next"
        if self.state == "done":
            return f"Done: {self.frames_received} frames"
        if self.state == "failed":
            return f"Failed: {self.message}"
        if self.state == "cancelled":
            return "Cancelled"
        title = STAGE_TITLES.get(self.stage, self.stage)
        retry = f" (attempt {self.attempt})" if self.attempt > 1 else ""
        return f"{title} {self.done}/{self.total}{retry}" if self.total else f"{title}{retry}"

    def apply(self, kind: str, content: Any, buffers: tuple[bytes, ...] = ()) -> None:
        """Fold one event in. Events at or before the last one seen are ignored (replays)."""
        seq = int(getattr(content, "seq", self.last_seq + 1))
        if seq <= self.last_seq:
            return
        self.last_seq = seq
        if kind == "accepted":
            if content.n_frames != self.n_frames:
                self.n_frames = content.n_frames
                self.frames = [None] * content.n_frames
        elif kind == "queued":
            self.state, self.stage = "queued", "queued"
            self.queue_position, self.attempt = content.position, content.attempt
        elif kind == "started":
            self.state, self.attempt, self.queue_position = "running", content.attempt, None
        elif kind in ("progress", "preview"):
            self.state = "running"
            self.stage, self.done, self.total = content.stage, content.done, content.total
            if kind == "preview" and buffers:
                strip = rgb_frame(buffers[0], content.width, content.height)
                self.previews = split_strip(strip, self.n_frames)
        elif kind == "frame":
            self.state = "running"
            if 0 <= content.index < self.n_frames and buffers:
                self.frames[content.index] = rgb_frame(buffers[0], content.width, content.height)
        elif kind == "done":
            self.state, self.stage = "done", "done"
        elif kind == "failed":
            self.state, self.stage = "failed", "failed"
            self.message, self.hints = content.message, tuple(content.hints)
        elif kind == "cancelled":
            self.state, self.stage = "cancelled", "cancelled"
