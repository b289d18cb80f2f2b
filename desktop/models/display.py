"""Whether Qt's X11 platform can start here, checked before Qt is loaded.

On Linux with an X display, Qt picks its ``xcb`` platform plugin. The plugin in the PySide6 wheel
links against system libraries the wheel does not bring (``libxcb-cursor.so.0`` since Qt 6.5, the
xcb-util family, ``libxkbcommon-x11``); when one is missing Qt prints a message that often names the
wrong one and aborts the process. :func:`missing_xcb_libraries` finds them first, so the studio can
say which packages to install instead.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SystemLibrary:
    """A shared library by its soname, and the package that installs it on Debian/Ubuntu and Fedora/RHEL."""

    soname: str
    apt: str
    dnf: str


#: What the xcb platform plugin of the PySide6 wheel (libqxcb.so and libQt6XcbQpa.so.6) needs from the
#: system, the C and C++ runtimes aside (read from their ELF ``NEEDED`` entries, Qt 6.12).
XCB_LIBRARIES: tuple[SystemLibrary, ...] = (
    SystemLibrary("libxcb-cursor.so.0", "libxcb-cursor0", "xcb-util-cursor"),
    SystemLibrary("libxcb-icccm.so.4", "libxcb-icccm4", "xcb-util-wm"),
    SystemLibrary("libxcb-keysyms.so.1", "libxcb-keysyms1", "xcb-util-keysyms"),
    SystemLibrary("libxkbcommon-x11.so.0", "libxkbcommon-x11-0", "libxkbcommon-x11"),
    SystemLibrary("libxcb-image.so.0", "libxcb-image0", "xcb-util-image"),
    SystemLibrary("libxcb-render-util.so.0", "libxcb-render-util0", "xcb-util-renderutil"),
    SystemLibrary("libxcb-util.so.1", "libxcb-util1", "xcb-util"),
    SystemLibrary("libxkbcommon.so.0", "libxkbcommon0", "libxkbcommon"),
    SystemLibrary("libxcb.so.1", "libxcb1", "libxcb"),
    SystemLibrary("libxcb-randr.so.0", "libxcb-randr0", "libxcb"),
    SystemLibrary("libxcb-render.so.0", "libxcb-render0", "libxcb"),
    SystemLibrary("libxcb-shape.so.0", "libxcb-shape0", "libxcb"),
    SystemLibrary("libxcb-shm.so.0", "libxcb-shm0", "libxcb"),
    SystemLibrary("libxcb-sync.so.1", "libxcb-sync1", "libxcb"),
    SystemLibrary("libxcb-xfixes.so.0", "libxcb-xfixes0", "libxcb"),
    SystemLibrary("libxcb-xkb.so.1", "libxcb-xkb1", "libxcb"),
    SystemLibrary("libX11-xcb.so.1", "libx11-xcb1", "libX11-xcb"),
    SystemLibrary("libX11.so.6", "libx11-6", "libX11"),
    SystemLibrary("libGL.so.1", "libgl1", "libglvnd-glx"),
    SystemLibrary("libglib-2.0.so.0", "libglib2.0-0", "glib2"),
    SystemLibrary("libgthread-2.0.so.0", "libglib2.0-0", "glib2"),
)


def loadable(soname: str) -> bool:
    """Whether the dynamic loader finds ``soname``: the very search Qt's plugin loading makes."""
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def platform_is_xcb(environment: Mapping[str, str], platform: str = sys.platform) -> bool:
    """Whether Qt will start on its X11 (xcb) platform: on Linux, ``QT_QPA_PLATFORM=xcb``, or no platform
    asked for with an X display and no Wayland session (where Qt prefers its Wayland plugin)."""
    if not platform.startswith("linux"):
        return False
    asked = environment.get("QT_QPA_PLATFORM", "").strip()
    if asked:
        return asked.split(":", 1)[0] == "xcb"  # a list ("wayland;xcb") falls back by itself
    if not environment.get("DISPLAY"):
        return False
    wayland_session = environment.get("XDG_SESSION_TYPE") == "wayland" and bool(environment.get("WAYLAND_DISPLAY"))
    return not wayland_session


def missing_xcb_libraries(
    find: Callable[[str], bool] | None = None, libraries: Sequence[SystemLibrary] = XCB_LIBRARIES
) -> list[SystemLibrary]:
    """The libraries of ``libraries`` that ``find`` (by default :func:`loadable`) does not find, in order."""
    find = find or loadable
    return [library for library in libraries if not find(library.soname)]


def install_advice(missing: Sequence[SystemLibrary]) -> str:
    """What to tell the user about ``missing``: the libraries, and the install command for apt and dnf."""
    apt = " ".join(dict.fromkeys(library.apt for library in missing))
    dnf = " ".join(dict.fromkeys(library.dnf for library in missing))
    names = ", ".join(library.soname for library in missing)
    return (
        f"Qt's X11 (xcb) platform needs system libraries that are not installed: {names}\n"
        f"Install them, then start the studio again:\n"
        f"  Debian, Ubuntu:  sudo apt-get install {apt}\n"
        f"  Fedora, RHEL:    sudo dnf install {dnf}"
    )
