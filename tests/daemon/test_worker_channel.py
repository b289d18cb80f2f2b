"""The pipe between the daemon's loop and its worker process.

Each of the worker's messages is handled on its own: one that fails is logged with its kind and job,
the rest of its batch still count, and the end of a job is retried until it is recorded, once. A busy
database write is retried, and one that stays locked is a clear error naming the file. A worker that
does not read its pipe (stopped with SIGSTOP) never blocks the loop: the daemon keeps answering, and
the hang timer kills the worker.

The workers here run torch on one thread (``OMP_NUM_THREADS=1``): on a loaded machine two threads
spend seconds waiting for each other at every step, and these tests are about the pipe, not about speed.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from anyi2v.daemon import store as store_module
from anyi2v.daemon.client import DaemonClient
from anyi2v.daemon.store import Store
from anyi2v.daemon.supervisor import Supervisor
from anyi2v.daemon.worker import WorkerConfig

from .daemon_helpers import FRAMES, condition_image, running_server, shot_document, wait_ready

HANG_TIMEOUT = 5.0  # as in test_client_faults: many times the longest pause of a loaded machine's job
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "BEGIN")
_JOB_MESSAGES = ("progress", "preview", "frame", "done", "failed", "cancelled")


class LockedWrites:
    """A job database whose writes (those starting with a word in ``only``) raise 'database is locked'
    while ``locked`` is above zero (each write that raises counts it down), as when another process
    holds the database."""

    def __init__(self, connection: sqlite3.Connection, only: tuple[str, ...] = _WRITES) -> None:
        self._connection = connection
        self._only = only
        self.locked = 0
        self.raised = 0

    def _write(self, sql: str) -> None:
        if self.locked > 0 and sql.lstrip().split(None, 1)[0].upper() in self._only:
            self.locked -= 1
            self.raised += 1
            raise sqlite3.OperationalError("database is locked")

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self._write(sql)
        return self._connection.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self._write(sql)
        return self._connection.executemany(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# One bad message ------------------------------------------------------------------------------------


@pytest.mark.parametrize("lock", ["brief", "past the store's tries"])
def test_a_message_that_fails_leaves_the_rest_of_its_batch_and_the_job_ends_done_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, lock: str
) -> None:
    """The database is locked for the first write made for each batch of job messages: briefly (the
    store's retry gets through), or for longer than the store tries (that message fails)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(store_module, "BUSY_PAUSES", (0.01,), raising=False)  # the store tries a write twice
    refusals = 1 if lock == "brief" else 2
    caplog.set_level(logging.INFO, logger="anyi2v.daemon")
    with (
        running_server(tmp_path / "data", hang_timeout=30.0) as server,
        DaemonClient(server.address, timeout=30) as client,
    ):
        wait_ready(client)
        database = LockedWrites(server.store._db)
        monkeypatch.setattr(server.store, "_db", database)
        receive = server.supervisor.receive

        def receive_then_lock() -> list[tuple[Any, ...]]:
            batch = receive()
            database.locked = refusals if any(message[0] in _JOB_MESSAGES for message in batch) else 0
            return batch

        monkeypatch.setattr(server.supervisor, "receive", receive_then_lock)
        client.submit("unlucky", shot_document(), condition_image())
        kinds = [event.type for event in client.events("unlucky", subscribe=False)]
        monkeypatch.setattr(server.supervisor, "receive", receive)

        assert database.raised >= 2  # the fault was there, for more than one batch
        assert kinds.count("started") == 1, kinds  # ran once: its `done` was not lost, nor timed out as a hang
        assert kinds.count("done") == 1, kinds
        assert kinds[-1] == "done", kinds
        record = client.job("unlucky")
        assert (record.state, record.attempts) == ("done", 1)
        manifest = client.fetch_result("unlucky", tmp_path / "result")
        assert manifest["n_frames"] == FRAMES == len(list((tmp_path / "result" / "frames").glob("*.png")))
    failures = [r.getMessage() for r in caplog.records if "could not be handled" in r.getMessage()]
    if lock == "brief":
        assert not failures, failures
        return
    assert failures
    assert all("unlucky" in line for line in failures), failures  # says which job
    assert any("'progress'" in line or "'preview'" in line or "'done'" in line for line in failures), failures


@pytest.mark.parametrize("statement", ["UPDATE", "BEGIN", "COMMIT"])
def test_a_busy_database_write_is_retried(tmp_path: Path, statement: str) -> None:
    store = Store(tmp_path)
    try:
        store.add("waiting", "digest", {}, FRAMES, None)
        database = LockedWrites(store._db, only=(statement,))
        database.locked = 2
        store._db = database  # type: ignore[assignment]
        store.transition("waiting", "running", [("started", {"attempt": 1})], attempts=1)
        assert database.raised == 2
        row = store.get("waiting")
        assert row is not None
        assert (row["state"], row["attempts"]) == ("running", 1)
        assert [kind for kind, _ in store.events_after("waiting", -1)] == ["started"]
    finally:
        store.close()


def test_a_database_that_stays_locked_is_one_clear_error_and_changes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path)
    try:
        store.add("waiting", "digest", {}, FRAMES, None)
        database = LockedWrites(store._db)
        store._db = database  # type: ignore[assignment]
        database.locked = 10**6
        started = time.monotonic()
        with pytest.raises(sqlite3.OperationalError) as caught:
            store.transition("waiting", "running", [("started", {"attempt": 1})], attempts=1)
        assert time.monotonic() - started < 60  # bounded
        message = str(caught.value)
        assert "jobs.sqlite3" in message, message
        assert "locked" in message, message
        assert "\n" not in message
        database.locked = 0
        row = store.get("waiting")
        assert row is not None
        assert row["state"] == "queued"
        assert store.events_after("waiting", -1) == []
    finally:
        store.close()


# A worker that does not read ------------------------------------------------------------------------


def test_a_job_for_a_stopped_worker_never_blocks_the_sender_and_the_hang_timer_ends_it(tmp_path: Path) -> None:
    supervisor = Supervisor(WorkerConfig(model="tiny-random", device="cpu"), hang_timeout=1.0, load_timeout=600.0)
    supervisor.start()
    pid = supervisor.pid
    assert pid is not None
    try:
        _wait_for(lambda: bool(supervisor.receive()) or supervisor.state != "loading", 300, "the worker to load")
        assert supervisor.state == "ready"
        os.kill(pid, signal.SIGSTOP)
        job = {"job_id": "large", "padding": "x" * 2**22}  # far more than the pipe holds
        sender = threading.Thread(target=supervisor.run, args=(job,), daemon=True)
        sender.start()
        sender.join(30)
        assert not sender.is_alive(), "handing a job to a stopped worker blocked the server's loop"
        supervisor.cancel("large")
        assert supervisor.overdue(time.monotonic() + 2.0) == "hung"
        killer = threading.Thread(target=supervisor.kill, daemon=True)
        killer.start()
        killer.join(60)
        assert not killer.is_alive(), "killing a stopped worker blocked"
        assert supervisor.state == "stopped"
        assert supervisor.pid is None
        assert _gone(pid)
    finally:
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_stopped_worker_flooded_with_cancels_does_not_freeze_the_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with (
        running_server(tmp_path / "data", hang_timeout=HANG_TIMEOUT) as server,
        DaemonClient(server.address, timeout=30) as client,
    ):
        wait_ready(client)
        client.submit("frozen", shot_document(steps=40), condition_image())
        seen = -1
        for event in client.events("frozen", subscribe=False):
            seen = event.seq
            if event.type == "progress":
                break  # the worker is running it
        pid = server.supervisor.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        try:
            client.submit("behind", shot_document(seed=2), condition_image(), subscribe=False)
            for _ in range(1000):  # each went down the pipe: a few hundred fill it
                assert client.cancel("frozen").state == "running"
            assert client.status().server.running == "frozen"
            kinds = [event.type for event in client.events("frozen", after_seq=seen)]
            # the hang timer killed the stopped worker; the job had been asked to stop: it ends cancelled
            assert kinds[-1] == "cancelled", kinds
            assert "started" not in kinds, kinds
            assert list(client.events("behind"))[-1].type == "done"  # on a new worker
            assert server.supervisor.pid != pid
            assert _gone(pid)
        finally:
            if server.supervisor.pid == pid:  # the server is stuck writing to it: free it
                os.kill(pid, signal.SIGKILL)


def test_a_stopped_worker_is_killed_by_the_hang_timer_and_its_job_runs_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with (
        running_server(tmp_path / "data", hang_timeout=HANG_TIMEOUT) as server,
        DaemonClient(server.address, timeout=30) as client,
    ):
        wait_ready(client)
        client.submit("paused", shot_document(steps=40), condition_image())
        kinds, seen = [], -1
        for event in client.events("paused", subscribe=False):
            kinds.append(event.type)
            seen = event.seq
            if event.type == "progress":
                break
        pid = server.supervisor.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        try:
            assert client.status().server.running == "paused"
            kinds += [event.type for event in client.events("paused", after_seq=seen)]
            assert kinds.count("started") == 2, kinds
            assert "queued" in kinds[kinds.index("started") :], kinds
            assert kinds[-1] == "done"
            assert client.job("paused").attempts == 2
            assert server.supervisor.pid != pid
            assert _gone(pid)
        finally:
            if server.supervisor.pid == pid:
                os.kill(pid, signal.SIGKILL)
