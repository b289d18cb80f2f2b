"""`anyi2v daemon --exit-with-parent PID` ends, with its worker, when the process that started it dies
(issue 19, item 17): a studio killed with SIGKILL must not leave its embedded daemon running.

Timeouts are generous (a machine ten times slower passes); the daemon normally ends within a second.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from anyi2v.daemon.client import DaemonClient
from anyi2v.daemon.parent_watch import process_exists, watch_parent

from .daemon_helpers import free_port, wait_ready

pytestmark = pytest.mark.slow

# A stand-in for the studio: starts the daemon as EmbeddedDaemon does (its own session, so killing the
# parent sends the daemon nothing), says the daemon's pid, and waits to be killed.
_PARENT = """
import json, os, subprocess, sys, time
address, data = sys.argv[1], sys.argv[2]
daemon = subprocess.Popen(
    [sys.executable, "-m", "anyi2v.cli", "daemon", "--model", "tiny-random", "--device", "cpu",
     "--bind", address, "--data-dir", data, "--exit-with-parent", str(os.getpid())],
    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
)
print(json.dumps({"daemon": daemon.pid}), flush=True)
time.sleep(3600)
"""


def gone(pid: int) -> bool:
    """No such process, or only its zombie (a container's init may be slow to reap orphans)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_the_daemon_and_its_worker_exit_when_their_parent_is_killed(tmp_path: Path) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, address, str(tmp_path / "data")], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    daemon_pid = int(json.loads(parent.stdout.readline())["daemon"])
    try:
        with DaemonClient(address, timeout=10.0) as client:
            wait_ready(client, timeout=300.0)  # the daemon runs, its worker has loaded
        family = [psutil.Process(daemon_pid), *psutil.Process(daemon_pid).children(recursive=True)]
        assert len(family) >= 2, "the daemon runs its worker"
        parent.send_signal(signal.SIGKILL)
        parent.wait(30)
        assert wait_until(lambda: all(gone(process.pid) for process in family), timeout=120.0), [
            (process.pid, process.status()) for process in family if not gone(process.pid)
        ]
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(30)
        if not gone(daemon_pid):
            os.killpg(daemon_pid, signal.SIGKILL)


def test_a_parent_pid_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(30)  # a pid that just ended (and was reaped): not running
    done = subprocess.run(
        [sys.executable, "-m", "anyi2v.cli", "daemon", "--model", "tiny-random", "--device", "cpu",
         "--bind", f"tcp://127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "data"),
         "--exit-with-parent", str(child.pid)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"--exit-with-parent {child.pid}: no such process" in done.stderr


def test_watch_parent_calls_back_once_when_the_process_ends() -> None:
    watched = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    calls: list[float] = []
    called = threading.Event()

    def on_gone() -> None:
        calls.append(time.monotonic())
        called.set()

    assert process_exists(watched.pid)
    watch = watch_parent(watched.pid, on_gone, interval=0.05)
    try:
        time.sleep(0.3)
        assert calls == []  # alive: nothing yet
        watched.kill()
        watched.wait(30)
        assert called.wait(60.0)
        time.sleep(0.3)
        assert len(calls) == 1
        assert not process_exists(watched.pid)
    finally:
        watch.stop()
        if watched.poll() is None:
            watched.kill()
