"""``anyi2v studio [SHOT]``: the application object and the main window."""

from __future__ import annotations

import sys
from pathlib import Path

from anyi2v.desktop.models.connection import ConnectionSettings


def run_studio(shot: Path | None, daemon: str | None = None, server_key: str = "", client_key: str = "",
               model: str = "") -> int:  # fmt: skip
    """Show the studio until it is closed; returns the exit code."""
    from PySide6.QtWidgets import QApplication

    from .window import StudioWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("AnyI2V Studio")
    connection = None
    if daemon is not None:
        connection = ConnectionSettings("remote", daemon, server_key, client_key)
    elif model:
        connection = ConnectionSettings("local", model=model)
    window = StudioWindow(connection=connection)
    if shot is not None:
        window.documents.open_path(shot)
    window.show()
    code = app.exec()
    window.shutdown()
    return int(code)
