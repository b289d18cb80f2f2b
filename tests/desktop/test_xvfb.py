"""The studio on a real X server (Xvfb), not on Qt's offscreen platform: Qt's xcb plugin loads with the
system's libraries, the window is mapped and painted, its grab and the X screen's are not blank, and it
closes cleanly. Skipped where Xvfb or a library of the xcb plugin is missing (the reason says which).
Screenshots go to ``$ANYI2V_SCREENSHOTS`` (default out/screenshots): xvfb-studio-window.png, -screen.png."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from anyi2v.desktop.models.display import install_advice, missing_xcb_libraries
from tests.conftest import EXAMPLES, REPO
from tests.desktop.conftest import SCREENSHOTS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 through Xvfb: Linux only"),
    pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed (apt-get install xvfb)"),
]

CHILD = Path(__file__).with_name("xvfb_child.py")


@pytest.fixture
def x_display() -> Iterator[str]:
    """A fresh Xvfb on a display number it picks itself; its DISPLAY value."""
    missing = missing_xcb_libraries()
    if missing:
        pytest.skip(install_advice(missing).replace("\n", " "))
    read_end, write_end = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
        pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    os.close(write_end)
    try:
        with os.fdopen(read_end) as announced:
            number = announced.readline().strip()  # written once the server accepts connections
        if not number:
            server.kill()
            pytest.fail(f"Xvfb did not start: {server.communicate(timeout=10)[1].decode(errors='replace')}")
        yield f":{number}"
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


def test_the_studio_shows_paints_and_closes_on_a_real_x_server(x_display, tmp_path):
    environment = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    environment.update(DISPLAY=x_display, XDG_CONFIG_HOME=str(tmp_path / "config"),
                       XDG_DATA_HOME=str(tmp_path / "data"), PYTHONPATH=str(REPO))  # fmt: skip
    child = subprocess.run(
        [sys.executable, str(CHILD), str(EXAMPLES / "demo.json"), str(tmp_path / "studio.json"), str(SCREENSHOTS)],
        env=environment, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert child.returncode == 0, f"exit {child.returncode}\n{child.stdout}\n{child.stderr}"
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert report["platform"] == "xcb"  # a real X server, not offscreen
    assert report["opened"], report["last_error"]
    assert report["rendered"], report["last_error"]
    assert report["last_error"] == ""
    assert report["visible"]
    widget, screen = report["widget"], report["screen"]
    assert (widget["width"], widget["height"]) == (1440, 900)
    assert_not_blank(widget)  # the views, the depth image, the text
    assert (screen["width"], screen["height"]) == (1600, 1000)
    assert_not_blank(screen)  # the X server shows the window (its root alone is one colour)
    assert report["closed"]


def assert_not_blank(stats: dict[str, float]) -> None:
    assert stats["std"] > 10, stats
    assert stats["colours"] > 50, stats
