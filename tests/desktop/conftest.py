"""Fixtures of the studio's widget tests: a window with its settings and data in a temporary folder."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from tests.conftest import REPO

SCREENSHOTS = Path(os.environ.get("ANYI2V_SCREENSHOTS", REPO / "out" / "screenshots"))


@pytest.fixture
def studio_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path


class TickCounter:
    """A QTimer that records when it fires: proof that the event loop kept turning."""

    def __init__(self, interval_ms: int = 20) -> None:
        from PySide6.QtCore import QTimer

        self.times: list[float] = []
        self.timer = QTimer()
        self.timer.timeout.connect(lambda: self.times.append(time.monotonic()))
        self.timer.start(interval_ms)

    def stop(self) -> None:
        self.timer.stop()

    def longest_gap(self) -> float:
        return max((b - a for a, b in zip(self.times, self.times[1:], strict=False)), default=float("inf"))


@pytest.fixture
def window(qtbot, studio_home: Path) -> Iterator[object]:
    from PySide6.QtWidgets import QMessageBox

    from anyi2v.desktop.qt.window import StudioWindow

    studio = StudioWindow(config_path=studio_home / "config" / "studio.json", start_daemon=False)
    # pytest-qt closes the window after each test: a modal question then would never be answered
    studio.documents.ask_unsaved = lambda question: QMessageBox.StandardButton.Discard
    qtbot.addWidget(studio)
    studio.show()
    yield studio
    studio.shutdown()


def point(view, x: float, y: float) -> object:
    """Where the normalized image point (x, y) is on a view, in widget pixels."""
    return view.to_widget(x, y).toPoint()


def drag(qtbot, widget, start, end, steps: int = 5) -> None:
    """Press the left button at ``start``, move to ``end`` in ``steps``, release."""
    from PySide6.QtCore import Qt

    qtbot.mousePress(widget, Qt.MouseButton.LeftButton, pos=start)
    for i in range(1, steps + 1):
        qtbot.mouseMove(widget, start + (end - start) * (i / steps))
    qtbot.mouseRelease(widget, Qt.MouseButton.LeftButton, pos=end)


def save_screenshot(widget: object, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    assert widget.grab().save(str(path)), f"could not write {path}"  # type: ignore[attr-defined]
    return path
