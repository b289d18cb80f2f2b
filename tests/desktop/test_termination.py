"""SIGTERM (and SIGINT, SIGHUP) close the studio like its window's close, without the unsaved-changes
question, and stop the embedded daemon: a studio process killed with SIGTERM leaves no daemon behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from anyi2v.desktop.models.connection import ConnectionSettings
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name != "posix", reason="POSIX signals")


def test_a_signal_reaches_a_waiting_event_loop_through_the_wake_timer(qtbot):
    from PySide6.QtCore import QEventLoop, QTimer

    from anyi2v.desktop.qt.termination import Termination

    loop, received, before = QEventLoop(), [], signal.getsignal(signal.SIGTERM)
    termination = Termination(lambda number: (received.append(number), loop.quit()))
    try:
        QTimer.singleShot(10_000, loop.quit)  # the test's own way out
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
        start = time.monotonic()
        loop.exec()  # C++ waits here: only the wake timer lets Python run the handler
        elapsed = time.monotonic() - start
    finally:
        termination.restore()
    assert received == [signal.SIGTERM]
    assert elapsed < 5, f"the signal waited {elapsed:.1f} s for the event loop"
    assert signal.getsignal(signal.SIGTERM) == before  # the handler of before is back


def test_the_handler_closes_the_window_without_asking_and_stops_the_embedded_daemon(qtbot, studio_home):
    from anyi2v.desktop.qt.termination import Termination
    from anyi2v.desktop.qt.window import StudioWindow

    def never_ask(question: str) -> object:
        raise AssertionError(f"asked {question!r}: nobody is there to answer when a signal closes the studio")

    window = StudioWindow(config_path=studio_home / "config" / "studio.json", connection=ConnectionSettings("local"))
    window.documents.ask_unsaved = never_ask
    qtbot.addWidget(window)
    window.show()
    lost: list[str | None] = []
    termination = Termination(lambda number: lost.append(window.terminate()))
    try:
        assert window.documents.open_path(EXAMPLES / "demo.json"), window.last_error
        window.documents.apply("Set prompt", lambda shot: shot.model_copy(update={"prompt": "unsaved"}))
        daemon = window.jobs.daemon
        assert daemon is not None
        assert daemon.process is not None
        assert daemon.process.poll() is None
        termination.handle(signal.SIGTERM)  # as Python calls it when the signal comes
        termination.handle(signal.SIGTERM)  # a second one changes nothing
        qtbot.waitUntil(lambda: lost != [], timeout=10_000)
    finally:
        termination.restore()
        window.shutdown()
    assert lost == ["demo.json"]
    assert daemon.process.poll() is not None, "the embedded daemon outlived the studio"
    assert not window.isVisible()


def daemon_children(studio: psutil.Process) -> list[psutil.Process]:
    with contextlib.suppress(psutil.NoSuchProcess):
        return [child for child in studio.children() if "daemon" in " ".join(child.cmdline())]
    return []


@pytest.mark.slow
def test_sigterm_to_a_studio_process_stops_its_embedded_daemon(tmp_path: Path):
    environment = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "config"),
                       XDG_DATA_HOME=str(tmp_path / "data"), HF_HUB_OFFLINE="1")  # fmt: skip
    command = [sys.executable, "-m", "anyi2v.cli", "studio", str(EXAMPLES / "demo.json")]
    process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    studio, daemons = psutil.Process(process.pid), []
    try:
        deadline = time.monotonic() + 120  # a busy machine starts Qt slowly
        while not daemons and process.poll() is None and time.monotonic() < deadline:
            daemons = daemon_children(studio)
            time.sleep(0.1)
        assert daemons, (
            f"no embedded daemon started: {process.poll()} {process.stderr.read() if process.poll() else ''}"
        )
        # the handler is in place before the window starts the daemon: the signal can come now
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
        _, alive = psutil.wait_procs(daemons, timeout=15)
        assert alive == [], "the embedded daemon outlived the studio"
        assert process.returncode == 128 + signal.SIGTERM, err  # it closed, rather than being killed
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        for daemon in daemons:  # left behind by a failed run: its whole group (daemon and worker)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if daemon.is_running():
                    os.killpg(daemon.pid, signal.SIGKILL)
