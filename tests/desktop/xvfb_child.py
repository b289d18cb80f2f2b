"""Run by tests/desktop/test_xvfb.py on a real X server (DISPLAY set, no QT_QPA_PLATFORM): the studio on
Qt's xcb platform with an example shot, shown, its condition rendered, grabbed as a widget and from the
X server's screen, then closed. Prints one JSON line of what it saw; exits 0 when it closed cleanly.

Usage: python xvfb_child.py SHOT CONFIG_FILE SCREENSHOT_FOLDER
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def image_stats(image: object) -> dict[str, float]:
    """Size, brightness spread and colour count of a QImage (a blank grab has one colour)."""
    import numpy as np
    from PySide6.QtGui import QImage

    assert isinstance(image, QImage)
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height, stride = rgb.width(), rgb.height(), rgb.bytesPerLine()
    rows = np.frombuffer(rgb.constBits(), np.uint8, stride * height).reshape(height, stride)
    pixels = rows[:, : width * 3].reshape(-1, 3)
    return {
        "width": width,
        "height": height,
        "std": float(pixels.std()),
        "colours": len(np.unique(pixels[:: max(1, len(pixels) // 50_000)], axis=0)),
    }


def main(shot: Path, config_file: Path, screenshots: Path) -> int:
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QApplication, QMessageBox

    from anyi2v.desktop.qt.window import StudioWindow

    app = QApplication([sys.argv[0]])
    window = StudioWindow(config_path=config_file, start_daemon=False)
    window.documents.ask_unsaved = lambda question: QMessageBox.StandardButton.Discard
    opened = window.documents.open_path(shot)
    window.show()
    deadline = time.monotonic() + 120  # a busy machine renders slowly
    while time.monotonic() < deadline and (window.renders.conditions is None or window.condition_view.busy):
        QCoreApplication.processEvents()
        time.sleep(0.02)
    for _ in range(20):  # let the X server map and paint the window
        QCoreApplication.processEvents()
        time.sleep(0.05)
    screenshots.mkdir(parents=True, exist_ok=True)
    widget = window.grab().toImage()
    widget.save(str(screenshots / "xvfb-studio-window.png"))
    screen = app.primaryScreen().grabWindow(0).toImage()  # the X server's root window: what a user sees
    screen.save(str(screenshots / "xvfb-studio-screen.png"))
    report = {
        "platform": app.platformName(),
        "opened": opened,
        "rendered": window.renders.conditions is not None,
        "last_error": window.last_error,
        "visible": window.isVisible(),
        "widget": image_stats(widget),
        "screen": image_stats(screen),
    }
    closed = window.close()
    QCoreApplication.processEvents()
    report["closed"] = closed and not window.isVisible()
    print(json.dumps(report), flush=True)
    return 0 if report["closed"] else 1


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
