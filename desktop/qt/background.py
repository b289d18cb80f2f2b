"""Work off the GUI thread, its outcome back on it: the studio's one way for a thread to reach the GUI.

A thread never touches a widget or a controller's state; it emits a signal of a ``QObject`` that lives
on the GUI thread, and Qt queues the call there (the receiver is a bound method of that object).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal


class Background(QObject):
    """Runs ``work`` on a thread of its own; ``done(result)`` or ``failed(message)`` runs on the GUI
    thread (the thread that made this object). ``on_error`` takes failures nobody else handles."""

    _sig_finished = Signal(object, object)  # callback, value: emitted on the worker, run on the GUI thread

    def __init__(self, on_error: Callable[[str], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._on_error = on_error
        self._sig_finished.connect(self._deliver)  # a method: Qt queues the call to this object's thread

    def _deliver(self, callback: Callable[[Any], None], value: Any) -> None:
        callback(value)

    def run(
        self, work: Callable[[], Any], done: Callable[[Any], None], what: str,
        failed: Callable[[str], None] | None = None,
    ) -> threading.Thread:  # fmt: skip
        """Run ``work`` off the GUI thread; ``done(result)`` runs on the GUI thread, and so does
        ``failed(message)`` when it raises (by default the message goes to ``on_error``)."""

        def run() -> None:
            try:
                value = work()
            except Exception as error:  # shown to the user as a message, never a traceback
                self._sig_finished.emit(failed or self._on_error, f"{what}: {error}")
            else:
                self._sig_finished.emit(done, value)

        thread = threading.Thread(target=run, name=f"anyi2v-studio-{what}", daemon=True)
        thread.start()
        return thread
