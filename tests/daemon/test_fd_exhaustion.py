"""Idle pre-authentication connections do not starve authorised clients (issue 19, item 3): the daemon
raises its soft open-file limit to the hard one and drops peers that do not finish the handshake."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from anyi2v.daemon.client import DaemonClient
from anyi2v.daemon.fdlimit import FdWatch, raise_fd_limit

from .daemon_helpers import free_port, running_server

resource = pytest.importorskip("resource")  # POSIX limits

IDLE_CONNECTIONS = 300
LOW_SOFT_LIMIT = 256  # below IDLE_CONNECTIONS: the old daemon ran out of descriptors


def _low_soft_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (LOW_SOFT_LIMIT, hard))


@pytest.mark.slow
@pytest.mark.skipif(
    resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 4 * IDLE_CONNECTIONS, reason="the hard open-file limit is too low"
)
def test_idle_connections_do_not_stop_an_authorised_client(tmp_path: Path) -> None:
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    log = tmp_path / "daemon.log"
    command = [sys.executable, "-m", "anyi2v.cli", "daemon", "--model", "tiny-random", "--device", "cpu",
               "--bind", address, "--data-dir", str(tmp_path / "data")]  # fmt: skip
    with log.open("wb") as output:
        daemon = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_low_soft_limit
        )
    idle: list[socket.socket] = []
    try:
        with DaemonClient(address, timeout=60) as client:
            client.hello()
        for _ in range(IDLE_CONNECTIONS):  # bounded, loopback only, closed below
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        time.sleep(1.0)  # let the daemon accept them
        with DaemonClient(address, timeout=20) as client:
            assert client.hello().protocol == 1
    finally:
        for connection in idle:
            connection.close()
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait(10)
    assert "open files: soft limit raised from 256" in log.read_text(errors="replace")


def test_a_peer_that_never_finishes_the_handshake_is_dropped(tmp_path: Path) -> None:
    with running_server(tmp_path, handshake_seconds=1.0) as server:
        port = int(server.address.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=15) as peer:
            started = time.monotonic()
            while peer.recv(4096):  # the server's greeting, then the end when it drops us
                pass
            assert time.monotonic() - started < 10


def test_raising_the_limit_and_watching_it(caplog: pytest.LogCaptureFixture) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 512), hard))
        with caplog.at_level("INFO", logger="anyi2v.daemon"):
            limit = raise_fd_limit()
        assert limit == (hard if hard != resource.RLIM_INFINITY else limit)
        assert "open files:" in caplog.text
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    watch = FdWatch(limit=8)  # this process has more than 8 open: near
    with caplog.at_level("WARNING", logger="anyi2v.daemon"):
        watch.check()
        watch.check()
    assert caplog.text.count("in use (mostly client connections)") == 1
