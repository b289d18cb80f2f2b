"""Fixtures of the CLI's tests: a daemon with the tiny model, ready, for the commands that talk to one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from anyi2v.daemon.client import DaemonClient
from anyi2v.daemon.server import Server
from tests.daemon.daemon_helpers import running_server, wait_ready


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A daemon (one per test module) whose worker has loaded its model."""
    with running_server(tmp_path_factory.mktemp("daemon")) as running:
        with DaemonClient(running.address, timeout=60) as client:
            wait_ready(client)
        yield running
