"""The studio's daemon session without Qt: it connects, learns the model and device, loses a daemon
that dies and finds it again when it comes back; a job runs, streams and is fetched; a cancel ends one."""

from __future__ import annotations

import os
import signal
import sys
import threading

import pytest

from anyi2v.daemon.datalock import Holder, running_daemon
from anyi2v.desktop.models import connection
from anyi2v.desktop.models.connection import ConnectionStatus, DaemonSession, wait_for
from tests.daemon.daemon_helpers import condition_image, free_port, shot_document, start_daemon

pytestmark = pytest.mark.slow


def stop(process) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


@pytest.fixture
def address():
    return f"tcp://127.0.0.1:{free_port()}"


def test_the_session_reconnects_when_the_daemon_comes_back(tmp_path, address):
    statuses: list[ConnectionStatus] = []
    daemon = start_daemon(address, tmp_path / "data")
    session = DaemonSession(address, None, statuses.append, poll_seconds=0.2, timeout=1.0)
    session.start()
    try:
        assert wait_for(lambda: session.status.state == "connected" and session.status.device == "cpu", 120)
        assert session.status.model == "tiny-random"
        stop(daemon)
        assert wait_for(lambda: session.status.state == "disconnected", 30), session.status
        assert "retrying" in session.status.line
        daemon = start_daemon(address, tmp_path / "data")
        assert wait_for(lambda: session.status.state == "connected", 120), session.status
    finally:
        session.stop(timeout=5)
        stop(daemon)
    states = [status.state for status in statuses]
    assert states.index("disconnected") < len(states) - 1 - states[::-1].index("connected")


def test_a_job_streams_to_its_result_and_a_cancel_ends_another(tmp_path, address):
    daemon = start_daemon(address, tmp_path / "data")
    session = DaemonSession(address, None, lambda status: None, poll_seconds=0.2, timeout=5.0)
    session.start()
    try:
        assert wait_for(lambda: session.status.state == "connected", 120), session.status
        events, results, errors = [], [], []
        finished = threading.Event()
        session.run_job(
            "studio-test-1", shot_document(), condition_image(), tmp_path / "result",
            on_event=events.append, on_result=lambda r: (results.append(r), finished.set()),
            on_error=lambda m: (errors.append(m), finished.set()),
        )  # fmt: skip
        assert finished.wait(240), [event.type for event in events]
        assert errors == []
        assert [event.type for event in events][-1] == "done"
        assert sum(event.type == "frame" for event in events) == 4
        (result,) = results
        assert result.folder == tmp_path / "result"
        assert any(path.suffix == ".mp4" for path in result.folder.iterdir())

        cancelled = []
        session.run_job(
            "studio-test-2", shot_document(seed=8, steps=50), condition_image(), tmp_path / "second",
            on_event=cancelled.append, on_result=results.append, on_error=errors.append,
        )  # fmt: skip
        assert wait_for(lambda: any(event.type in ("started", "progress") for event in cancelled), 120)
        session.cancel("studio-test-2", errors.append)
        assert wait_for(lambda: cancelled and cancelled[-1].type == "cancelled", 120), [e.type for e in cancelled]
        assert errors == []
        assert len(results) == 1  # no result for the cancelled job
    finally:
        session.stop(timeout=5)
        stop(daemon)


def test_the_embedded_daemon_is_told_to_exit_with_the_studio(tmp_path, monkeypatch):
    started: list[list[str]] = []

    class Recorded:
        def __init__(self, command, **options):
            started.append(list(command))
            self.pid = 0

    monkeypatch.setattr(connection.subprocess, "Popen", Recorded)
    connection.EmbeddedDaemon(tmp_path / "data").start()
    [command] = started
    assert command[command.index("--exit-with-parent") + 1] == str(os.getpid())
    assert command[:4] == [sys.executable, "-m", "anyi2v.cli", "daemon"]
    assert "--low-memory" not in command
    connection.EmbeddedDaemon(tmp_path / "low", low_memory=True).start()
    assert "--low-memory" in started.pop()

    # in a desktop bundle the executable is the `anyi2v` command itself (packaging/desktop)
    monkeypatch.setattr(connection.sys, "frozen", True, raising=False)
    connection.EmbeddedDaemon(tmp_path / "frozen").start()
    assert started[1][:2] == [sys.executable, "daemon"]


def test_the_embedded_daemon_joins_a_daemon_that_holds_its_folder(tmp_path, address):
    data = tmp_path / "data"
    daemon = start_daemon(address, data)  # another studio's embedded daemon, say
    try:
        assert wait_for(lambda: (running_daemon(data) or Holder(None, None)).address == address, 60)
        embedded = connection.EmbeddedDaemon(data)
        embedded.start()
        assert embedded.address == address
        assert embedded.process is None  # none started
        assert embedded.exit_problem() is None
        session = DaemonSession(embedded.address, None, lambda status: None, poll_seconds=0.2, timeout=1.0)
        session.start()
        try:
            assert wait_for(lambda: session.status.state == "connected", 120), session.status
        finally:
            session.stop(timeout=5)
        embedded.stop()
        assert daemon.poll() is None  # this studio's close leaves the other's daemon running
    finally:
        stop(daemon)


def test_an_install_without_the_pipeline_asks_for_a_remote_daemon(monkeypatch):
    assert connection.ConnectionSettings().problem() is None  # the test install has torch and diffusers
    real = connection.importlib.util.find_spec
    monkeypatch.setattr(connection.importlib.util, "find_spec", lambda name: None if name == "torch" else real(name))
    problem = connection.ConnectionSettings().problem()
    assert "no local daemon" in problem
    assert "Generate > Connect" in problem
    assert connection.ConnectionSettings("remote", "tcp://gpu-box:5557").problem() is None
