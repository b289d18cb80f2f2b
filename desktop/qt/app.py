"""``anyi2v studio [SHOT]``: the application object and the main window."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

from anyi2v.desktop.models.connection import ConnectionSettings


def run_studio(shot: Path | None, daemon: str | None = None, server_key: str = "", client_key: str = "",
               model: str = "", report_ready: Path | None = None) -> int:  # fmt: skip
    """Show the studio until it is closed; returns the exit code. With ``report_ready``, once the window
    has been shown (and the shot opened), a JSON line with the window's title is written there: how
    the desktop bundle's test and benchmark know the studio is up."""
    from PySide6.QtWidgets import QApplication

    from .termination import Termination
    from .window import StudioWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("AnyI2V Studio")
    connection = None
    if daemon is not None:
        connection = ConnectionSettings("remote", daemon, server_key, client_key)
    elif model:
        connection = ConnectionSettings("local", model=model)
    window: StudioWindow | None = None

    def terminate(number: signal.Signals) -> None:
        if window is not None:  # (a signal during start-up waits for the event loop: the window is there)
            unsaved = window.terminate()
            if unsaved is not None:
                print(f"anyi2v studio: {number.name}: closed without saving the changes to {unsaved}", file=sys.stderr)
        app.exit(128 + int(number))  # every event loop ends, a dialog's too; as a shell reports a signal's end

    # before the window starts the embedded daemon: from then on a signal stops it with the studio
    termination = Termination(terminate)
    try:
        window = StudioWindow(connection=connection)
        if shot is not None:
            window.documents.open_path(shot)
        window.show()
        if report_ready is not None:
            from PySide6.QtCore import QTimer

            shown = window

            def ready() -> None:  # the event loop's first turn: the window has been laid out and painted
                report_ready.write_text(json.dumps({"title": shown.windowTitle(), "visible": shown.isVisible()}) + "\n")

            QTimer.singleShot(0, ready)
        code = app.exec()
        window.shutdown()
    finally:
        termination.restore()
    return int(code)
