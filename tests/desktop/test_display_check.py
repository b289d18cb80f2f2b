"""``anyi2v studio`` checks the system libraries of Qt's xcb plugin before Qt is loaded: a missing one
is a message naming the packages (apt and dnf) and exit 2, never Qt's abort. The library finder is a
stand-in here; tests/desktop/test_xvfb.py starts the studio on a real X server."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from anyi2v.cli import main
from anyi2v.desktop.models import display
from anyi2v.desktop.models.display import XCB_LIBRARIES, install_advice, missing_xcb_libraries, platform_is_xcb
from tests.conftest import EXAMPLES

CURSOR, ICCCM = "libxcb-cursor.so.0", "libxcb-icccm.so.4"


@pytest.mark.parametrize(
    ("environment", "platform", "expected"),
    [
        ({"DISPLAY": ":0"}, "linux", True),
        ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb"}, "linux", True),
        ({"QT_QPA_PLATFORM": "xcb:nograb"}, "linux", True),  # asked for: Qt tries it with or without DISPLAY
        ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, "linux", False),
        ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "wayland;xcb"}, "linux", False),  # xcb only as a fallback
        ({"DISPLAY": ":0", "XDG_SESSION_TYPE": "wayland", "WAYLAND_DISPLAY": "wayland-0"}, "linux", False),
        ({"DISPLAY": ":0", "XDG_SESSION_TYPE": "wayland"}, "linux", True),  # no Wayland display to use
        ({}, "linux", False),
        ({"DISPLAY": ":0"}, "darwin", False),
        ({"DISPLAY": ":0"}, "win32", False),
    ],
)
def test_the_platform_is_xcb_only_on_linux_with_x_and_no_other_platform_asked_for(environment, platform, expected):
    assert platform_is_xcb(environment, platform) is expected


def test_the_missing_libraries_are_named_with_their_packages_for_apt_and_dnf():
    missing = missing_xcb_libraries(lambda soname: soname not in (CURSOR, ICCCM, "libxcb-shm.so.0", "libxcb.so.1"))
    assert [library.soname for library in missing] == [CURSOR, ICCCM, "libxcb.so.1", "libxcb-shm.so.0"]
    advice = install_advice(missing)
    assert f"not installed: {CURSOR}, {ICCCM}, libxcb.so.1, libxcb-shm.so.0" in advice
    assert "sudo apt-get install libxcb-cursor0 libxcb-icccm4 libxcb1 libxcb-shm0\n" in advice
    assert advice.endswith("sudo dnf install xcb-util-cursor xcb-util-wm libxcb")  # one libxcb for both
    assert missing_xcb_libraries(lambda soname: True) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sonames of Linux")
def test_the_default_finder_asks_the_dynamic_loader():
    assert display.loadable("libc.so.6")
    assert not display.loadable("libanyi2v-no-such-library.so.7")


def studio_on_x(monkeypatch: pytest.MonkeyPatch, found: set[str] | None) -> list[object]:
    """Run ``anyi2v studio demo.json`` as on an X desktop, the libraries in ``found`` (None: all) there;
    returns the calls that reached Qt (run_studio is a stand-in)."""
    from anyi2v.desktop.qt import app

    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("DISPLAY", ":0")
    for name in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(display, "loadable", lambda soname: found is None or soname in found)
    started: list[object] = []
    monkeypatch.setattr(app, "run_studio", lambda *arguments: started.append(arguments) or 0)
    return started


def test_a_missing_xcb_library_is_a_message_and_exit_2_before_qt_starts(monkeypatch, capsys):
    started = studio_on_x(monkeypatch, {library.soname for library in XCB_LIBRARIES} - {CURSOR, ICCCM})
    assert main(["studio", str(EXAMPLES / "demo.json")]) == 2
    assert started == []  # Qt never started: it would abort the process
    error = capsys.readouterr().err
    assert error.startswith("anyi2v studio: Qt's X11 (xcb) platform needs system libraries")
    assert f"{CURSOR}, {ICCCM}" in error
    assert "sudo apt-get install libxcb-cursor0 libxcb-icccm4" in error
    assert "sudo dnf install xcb-util-cursor xcb-util-wm" in error


def test_with_every_xcb_library_present_the_studio_starts(monkeypatch, capsys):
    started = studio_on_x(monkeypatch, None)
    assert main(["studio", str(EXAMPLES / "demo.json")]) == 0
    assert len(started) == 1
    assert capsys.readouterr().err == ""


def test_offscreen_is_not_checked(monkeypatch):
    started = studio_on_x(monkeypatch, set())  # nothing found, but Qt will not use xcb
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert main(["studio"]) == 0
    assert len(started) == 1


@pytest.mark.skipif(shutil.which("readelf") is None, reason="readelf (binutils) is not installed")
def test_the_table_holds_every_system_library_the_wheels_xcb_plugin_links_against():
    import PySide6

    qt = Path(PySide6.__file__).parent / "Qt"
    runtime = ("libc.so", "libm.so", "libstdc++.so", "libgcc_s.so", "libpthread.so", "libdl.so", "libQt6")
    needed: set[str] = set()
    for binary in (qt / "plugins" / "platforms" / "libqxcb.so", qt / "lib" / "libQt6XcbQpa.so.6"):
        if not binary.is_file():
            pytest.skip(f"this PySide6 has no {binary.name}")
        dynamic = subprocess.run(["readelf", "-d", str(binary)], capture_output=True, text=True, check=True).stdout
        needed |= {line.split("[", 1)[1].rstrip("]") for line in dynamic.splitlines() if "(NEEDED)" in line}
    system = {soname for soname in needed if not soname.startswith(runtime)}
    assert system <= {library.soname for library in XCB_LIBRARIES}, "add these to XCB_LIBRARIES with their packages"
