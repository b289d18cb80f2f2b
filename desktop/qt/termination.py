"""SIGTERM, SIGINT and SIGHUP close the studio the way its window closes, embedded daemon included.

Without this, SIGTERM kills the studio at once and its embedded daemon (a child in a session of its own,
so the signal never reaches it) runs on. A Python signal handler only runs when the interpreter runs
bytecode, and Qt's event loop is C++: a timer calls into Python now and then so the handler gets its
turn. The handler itself only posts the close to the event loop, where it runs like any other event.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

from PySide6.QtCore import QObject, QTimer

#: how often the event loop lets Python look at signals (the longest a signal waits for its handler)
WAKE_MS = 200

#: the signals that end the studio: a kill or a logout, Ctrl+C in its terminal, the terminal closed
SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name)
)


class Termination(QObject):
    """While installed, the ``SIGNALS`` call ``on_terminate(signal)`` once, on the GUI thread;
    ``received`` is the first signal that came (None before one did)."""

    def __init__(self, on_terminate: Callable[[signal.Signals], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.on_terminate = on_terminate
        self.received: signal.Signals | None = None
        self._previous: dict[signal.Signals, Any] = {}
        self._wake = QTimer(self)
        self._wake.timeout.connect(lambda: None)  # a call into Python: pending signal handlers run
        self._wake.start(WAKE_MS)
        for number in SIGNALS:
            self._previous[number] = signal.signal(number, self.handle)

    def handle(self, number: int, _frame: FrameType | None = None) -> None:
        """The signal handler: post the close to the event loop (a second signal changes nothing)."""
        if self.received is not None:
            return
        self.received = signal.Signals(number)
        QTimer.singleShot(0, self, self._terminate)  # runs once the event loop (or app.exec) turns

    def _terminate(self) -> None:
        assert self.received is not None
        self.on_terminate(self.received)

    def restore(self) -> None:
        """Put the handlers of before back and stop the timer."""
        self._wake.stop()
        for number, previous in self._previous.items():
            with contextlib.suppress(ValueError, TypeError):  # not the main thread, or no Python handler before
                signal.signal(number, previous)
        self._previous.clear()
