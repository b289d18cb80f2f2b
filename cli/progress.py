"""A command's progress in named stages, on stderr: a tqdm bar per stage on a terminal, plain lines
when stderr is not one (a log file, a pipe), so a log reads as one line per stage and a final line.

A command calls ``progress(stage, done, total)``: a stage not seen before opens a new bar. Stages may
interleave (the pipeline optimizes before each of its first denoising steps): each keeps its bar until
the stage opened last is done; then the open bars close together, first opened first, which is the
order in which tqdm's stacked bars can close without drawing over each other. ``finish()`` closes
whatever is still open; so does leaving a ``with`` block.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TextIO

from tqdm import tqdm  # (tqdm ships no type information)


def is_terminal(stream: TextIO) -> bool:
    """What tqdm's ``disable=None`` asks before it draws: is ``stream`` a terminal?"""
    isatty = getattr(stream, "isatty", None)
    return isatty is None or bool(isatty())


@dataclass
class _Stage:
    name: str
    bar: Any  # tqdm
    total: int | None  # None for a note, which has a text instead of counts
    started: float  # the moment the stage before it last reported: when this one's work began
    done: int = 0
    last: float = field(default_factory=time.monotonic)

    @property
    def finished(self) -> bool:
        return self.total is None or self.done >= self.total


class StageProgress:
    """Bars by stage on ``stream`` (stderr by default), drawn by tqdm with ``disable=None``: on a
    terminal only. Elsewhere, plain lines: ``<stage> [done/total] 1.2 s`` when a stage closes,
    ``<stage> <text>`` when a note begins, and ``done: N stages in 3.4 s`` from ``finish()``.
    ``width`` right-aligns the stage names."""

    def __init__(self, stream: TextIO | None = None, *, width: int = 12, mininterval: float = 0.25) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.plain = not is_terminal(self.stream)
        self.width = width
        self.mininterval = mininterval
        self.started = self._last_report = time.monotonic()
        self.closed_stages = 0
        self._open: dict[str, _Stage] = {}  # in the order opened: each bar's position

    def __call__(self, stage: str, done: int, total: int) -> None:
        """Stage ``stage`` has done ``done`` of its ``total`` steps."""
        entry = self._open.get(stage)
        if entry is None or entry.total is None:
            entry = self._start(stage, total)
        entry.done = done
        entry.last = self._last_report = time.monotonic()
        if entry.total != total:
            entry.total = entry.bar.total = total
            entry.bar.refresh()
        entry.bar.update(done - entry.bar.n)
        if entry.finished and stage == next(reversed(self._open)):
            self.close()

    def note(self, stage: str, text: str) -> None:
        """A stage without counts (waiting in a queue, say); a later text replaces the bar's, but a
        plain line is written only when the note begins."""
        entry = self._open.get(stage)
        if entry is None or entry.total is not None:
            entry = self._start(stage, None)
            if self.plain:
                self._line(f"{stage:>{self.width}} {text}")
        entry.last = self._last_report = time.monotonic()
        entry.bar.set_description_str(f"{stage:>{self.width}} {text}")

    def close(self) -> None:
        """Close every open bar, first opened first (in plain mode: write their lines)."""
        for entry in self._open.values():
            if entry.total is not None:
                self.closed_stages += 1
                if self.plain:
                    seconds = entry.last - entry.started
                    self._line(f"{entry.name:>{self.width}} [{entry.done}/{entry.total}] {seconds:.1f} s")
            entry.bar.close()
        self._open.clear()

    def finish(self) -> None:
        """Close every open bar; in plain mode, end with a line of the stage count and the time."""
        self.close()
        if self.plain:
            seconds = time.monotonic() - self.started
            self._line(f"{'done':>{self.width}}: {self.closed_stages} stages in {seconds:.1f} s")

    def __enter__(self) -> StageProgress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _start(self, stage: str, total: int | None) -> _Stage:
        """A new bar below the open ones; finished bars (and a stage's earlier kind) close first."""
        if stage in self._open or all(entry.finished for entry in self._open.values()):
            self.close()
        options: dict[str, Any] = {"total": total, "desc": f"{stage:>{self.width}}", "mininterval": self.mininterval}
        if total is None:
            options = {"bar_format": "{desc}"}
        bar = tqdm(file=self.stream, disable=None, leave=True, position=len(self._open), dynamic_ncols=True, **options)
        entry = _Stage(stage, bar, total, started=self._last_report)
        self._open[stage] = entry
        return entry

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()
