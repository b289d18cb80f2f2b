"""Jobs belong to the key that submitted them (PROTOCOL.md, Security): under CURVE another key's job
is unknown to a key (status, list, subscribe, fetch, cancel, delete); a key marked admin sees and acts
on all. The authorized-keys folder is re-read when it changes and on SIGHUP: a revoked key's next
request on its open connection is not served, a new key is served without a restart, and a malformed
key keeps the previous set (one log line naming the file). Old databases gain the owner 'local'."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import zmq.auth

from anyi2v.daemon import keys
from anyi2v.daemon.client import ClientKeys, DaemonClient, DaemonError, DaemonTimeoutError
from anyi2v.daemon.handlers import HandlerContext, handle
from anyi2v.daemon.ownership import Caller
from anyi2v.daemon.server import Server
from anyi2v.daemon.store import Store
from anyi2v.shared.protocol import Limits, Message, StatusReply, StatusRequest

from .daemon_helpers import condition_image, running_server, shot_document, wait_ready

NAMES = ("server", "alice", "bob", "carol", "dave")


@pytest.fixture
def key_folder(tmp_path: Path) -> Path:
    """Key pairs for NAMES in tmp_path; tmp_path/authorized (mode 0755) holds alice, bob and carol,
    carol marked admin in her file's metadata; dave's key is not authorized."""
    for name in NAMES:
        keys.create_key_pair(tmp_path, name)
    carol_public, _ = zmq.auth.load_certificate(tmp_path / "carol.key")
    authorized = tmp_path / "authorized"
    authorized.mkdir()
    os.chmod(authorized, 0o755)
    for name in ("alice", "bob"):
        (authorized / f"{name}.key").write_bytes((tmp_path / f"{name}.key").read_bytes())
    (authorized / "carol.key").write_text(
        f'metadata\n    admin = "true"\ncurve\n    public-key = "{carol_public.decode()}"\n'
    )
    return tmp_path


def _client(folder: Path, server: Server | str, name: str, timeout: float = 20.0) -> DaemonClient:
    address = server if isinstance(server, str) else server.address
    client_keys = ClientKeys.from_files(folder / "server.key", folder / f"{name}.key_secret")
    return DaemonClient(address, keys=client_keys, timeout=timeout)


def _wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _unknown(call: Callable[[], Any]) -> str:
    """The message of the ``unknown_job`` error that ``call`` must raise."""
    with pytest.raises(DaemonError) as caught:
        call()
    assert caught.value.code == "unknown_job", caught.value
    return str(caught.value)


def _served(client: DaemonClient) -> bool:
    """True when the daemon answers this client (a short timeout: a refused key gets no answer)."""
    client.timeout = 1.5
    try:
        client.status()
    except DaemonTimeoutError:
        return False
    return True


def _served_anew(folder: Path, server: Server, name: str) -> bool:
    """:func:`_served` on a new connection (libzmq never retries one that ZAP refused: a client whose key
    was unknown connects again once it is added)."""
    with _client(folder, server, name) as client:
        return _served(client)


def test_another_keys_job_is_unknown_to_it_and_an_admin_key_sees_all(key_folder: Path) -> None:
    secure = {"secret_key": key_folder / "server.key_secret", "authorized_keys": key_folder / "authorized"}
    with (
        running_server(key_folder / "data", **secure) as server,
        _client(key_folder, server, "alice") as alice,
        _client(key_folder, server, "bob") as bob,
        _client(key_folder, server, "carol") as carol,
    ):
        wait_ready(alice)
        alice.submit("alices-job", shot_document(), condition_image(), subscribe=False)
        bob.submit("bobs-job", shot_document(seed=8), condition_image(), subscribe=False)
        _wait_for(lambda: alice.job("alices-job").state == "done", "alice's job to finish")
        _wait_for(lambda: bob.job("bobs-job").state == "done", "bob's job to finish")

        # bob: alice's job is exactly as unknown as a job that never was
        never = _unknown(lambda: bob.status("no-such-job"))
        assert _unknown(lambda: bob.status("alices-job")) == never.replace("no-such-job", "alices-job")
        _unknown(lambda: bob.fetch("alices-job", "manifest"))
        _unknown(lambda: bob.subscribe("alices-job"))
        _unknown(lambda: bob.cancel("alices-job"))
        _unknown(lambda: bob.delete("alices-job"))
        assert [job.job_id for job in bob.list()] == ["bobs-job"]
        with pytest.raises(DaemonError) as taken:  # its id is taken, and nothing else is said
            bob.submit("alices-job", shot_document(), condition_image(), subscribe=False)
        assert taken.value.code == "job_conflict"
        assert [job.job_id for job in alice.list()] == ["alices-job"]  # still hers, untouched
        alice.fetch("alices-job", "manifest")

        # carol (admin) sees and acts on both
        assert {job.job_id for job in carol.list()} == {"alices-job", "bobs-job"}
        assert carol.job("bobs-job").state == "done"
        assert carol.manifest("alices-job")["n_frames"] > 0
        carol.subscribe("alices-job")
        carol.delete("bobs-job")
        _unknown(lambda: bob.status("bobs-job"))
        assert [job.job_id for job in alice.list()] == ["alices-job"]


def test_a_key_removed_from_the_folder_is_refused_on_its_open_connection_and_a_new_key_is_served(
    key_folder: Path,
) -> None:
    authorized = key_folder / "authorized"
    secure = {"secret_key": key_folder / "server.key_secret", "authorized_keys": authorized}
    with (
        running_server(key_folder / "data", keys_poll_seconds=0.2, **secure) as server,
        _client(key_folder, server, "alice") as alice,
        _client(key_folder, server, "bob") as bob,
    ):
        assert _served(alice)
        assert _served(bob)
        assert not _served_anew(key_folder, server, "dave")
        bob.submit("bobs-job", shot_document(), condition_image(), subscribe=False)

        (authorized / "bob.key").unlink()  # no signal, no restart: the folder's change is seen
        _wait_for(lambda: not _served(bob), "bob's key to be revoked")
        with pytest.raises(DaemonTimeoutError):
            bob.status("bobs-job")
        assert _served(alice)

        (authorized / "dave.key").write_bytes((key_folder / "dave.key").read_bytes())
        _wait_for(lambda: _served_anew(key_folder, server, "dave"), "dave's new key to be served")
        (authorized / "bob.key").write_bytes((key_folder / "bob.key").read_bytes())
        _wait_for(lambda: _served(bob), "bob's key to be served again")
        assert bob.job("bobs-job").job_id == "bobs-job"  # his job stayed his


def test_a_malformed_key_at_reload_keeps_the_previous_set_and_names_the_file(
    key_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    authorized = key_folder / "authorized"
    secure = {"secret_key": key_folder / "server.key_secret", "authorized_keys": authorized}
    with (
        caplog.at_level(logging.INFO, logger="anyi2v.daemon"),
        running_server(key_folder / "data", keys_poll_seconds=0.2, **secure) as server,
    ):
        with _client(key_folder, server, "bob") as bob:
            assert _served(bob)
            broken = authorized / "broken.key"
            broken.write_text('curve\n    public-key = "tooshort"\n')
            (authorized / "dave.key").write_bytes((key_folder / "dave.key").read_bytes())
            (authorized / "bob.key").unlink()
            _wait_for(lambda: str(broken) in caplog.text, "the reload's error naming the file")
            [line] = [r.getMessage() for r in caplog.records if str(broken) in r.getMessage()]
            assert "previous" in line
            assert "\n" not in line
            assert _served(bob)  # the previous set is in force: bob still, dave not yet
            assert not _served_anew(key_folder, server, "dave")
            time.sleep(1.0)  # several polls of the same broken folder: still one line
            assert sum(str(broken) in r.getMessage() for r in caplog.records) == 1

            server.reload_keys()  # what SIGHUP asks: tried again, refused again, said again
            _wait_for(lambda: sum(str(broken) in r.getMessage() for r in caplog.records) == 2, "a second line")
            broken.unlink()
            _wait_for(lambda: _served_anew(key_folder, server, "dave"), "the fixed folder to be loaded")
            assert not _served(bob)
        assert server.store is not None  # the daemon never stopped


def test_sighup_reloads_the_keys_of_a_running_daemon(key_folder: Path) -> None:
    """`run_server` in a process of its own, with the folder's polling off: only SIGHUP reloads."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from anyi2v.daemon.server import ServerConfig, run_server\n"
        "from anyi2v.daemon.worker import WorkerConfig\n"
        "folder = Path(sys.argv[1])\n"
        "config = ServerConfig(data_dir=folder / 'data', bind='tcp://127.0.0.1:*',\n"
        "    worker=WorkerConfig(model='tiny-random', device='cpu'), secret_key=folder / 'server.key_secret',\n"
        "    authorized_keys=folder / 'authorized', keys_poll_seconds=0)\n"
        "run_server(config, on_ready=lambda server: print(server.address, flush=True))\n"
    )
    daemon = subprocess.Popen(
        [sys.executable, "-c", script, str(key_folder)], stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        assert daemon.stdout is not None
        address = daemon.stdout.readline().decode().strip()
        assert address.startswith("tcp://"), "the daemon did not start"
        with _client(key_folder, address, "alice") as alice, _client(key_folder, address, "bob") as bob:
            assert _served(alice)
            assert _served(bob)
            (key_folder / "authorized" / "bob.key").unlink()
            time.sleep(1.0)
            assert _served(bob)  # polling is off: nothing changed yet
            os.kill(daemon.pid, signal.SIGHUP)
            _wait_for(lambda: not _served(bob), "SIGHUP to revoke bob's key")
            assert _served(alice)
            assert daemon.poll() is None  # SIGHUP did not end it
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(30)


_OLD_SCHEMA = """
CREATE TABLE jobs (
    job_id TEXT PRIMARY KEY, digest TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    queue_key INTEGER NOT NULL, created REAL NOT NULL, updated REAL NOT NULL, finished REAL,
    request TEXT NOT NULL, n_frames INTEGER NOT NULL, reason TEXT, message TEXT,
    seq_used INTEGER NOT NULL DEFAULT -1, seq_reserved INTEGER NOT NULL DEFAULT -1,
    result_bytes INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE events (job_id TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, content TEXT NOT NULL,
    PRIMARY KEY (job_id, seq));
INSERT INTO jobs (job_id, digest, state, queue_key, created, updated, request, n_frames)
    VALUES ('before-owners', 'd', 'queued', 1, 0, 0, '{}', 4);
"""


def test_a_database_from_before_owners_gives_its_jobs_the_owner_local(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as old:
        old.executescript(_OLD_SCHEMA)
    old.close()
    for _ in range(2):  # the migration runs once; opening again changes nothing
        store = Store(tmp_path)
        try:
            row = store.get("before-owners")
            assert row is not None
            assert row["owner"] == "local"
            assert [r.job_id for r in store.records([], 10, owner="local")] == ["before-owners"]
            assert store.records([], 10, owner="some-key") == []
            store.add("after", "d2", {}, 4, None, owner="some-key")
            assert [r.job_id for r in store.records([], 10, owner="some-key")] == ["after"]
            store.delete("after")
        finally:
            store.close()


@pytest.fixture
def folder_of_one(tmp_path: Path) -> Iterator[tuple[Path, bytes]]:
    keys.create_key_pair(tmp_path, "someone")
    folder = tmp_path / "authorized"
    folder.mkdir()
    os.chmod(folder, 0o755)
    public, _ = zmq.auth.load_certificate(tmp_path / "someone.key")
    return folder, public


@pytest.mark.parametrize(
    ("metadata", "admin"),
    [("", False), ('    admin = "true"\n', True), ("    admin = true\n", True), ('    admin = "false"\n', False)],
    ids=["none", "quoted", "bare", "false"],
)
def test_a_key_is_admin_when_its_metadata_says_admin_true(
    folder_of_one: tuple[Path, bytes], metadata: str, admin: bool
) -> None:
    folder, public = folder_of_one
    (folder / "someone.key").write_text(f'metadata\n{metadata}curve\n    public-key = "{public.decode()}"\n')
    found = keys.load_authorized_keys(folder)
    assert list(found) == [public]
    assert found[public].admin is admin
    assert found[public].name == "someone"


def test_a_zmq_public_key_file_edited_as_documented_is_admin(tmp_path: Path) -> None:
    """PROTOCOL.md: add the line ``    admin = true`` under ``metadata`` in the daemon's copy of the key."""
    folder = tmp_path / "authorized"
    folder.mkdir()
    os.chmod(folder, 0o755)
    public_path, secret_path = zmq.auth.create_certificates(folder, "boss")
    Path(secret_path).unlink()
    text = Path(public_path).read_text()
    assert "\nmetadata\n" in text
    Path(public_path).write_text(text.replace("\nmetadata\n", "\nmetadata\n    admin = true\n"))
    public, _ = zmq.auth.load_certificate(public_path)
    assert keys.load_authorized_keys(folder)[public].admin


def test_an_admin_value_that_is_neither_true_nor_false_is_refused_naming_the_file(
    folder_of_one: tuple[Path, bytes],
) -> None:
    folder, public = folder_of_one
    path = folder / "someone.key"
    path.write_text(f'metadata\n    admin = "maybe"\ncurve\n    public-key = "{public.decode()}"\n')
    with pytest.raises(keys.KeyFileError, match="admin") as caught:
        keys.load_authorized_keys(folder)
    assert str(path) in str(caught.value)


class _OneJobStore:
    """A store that holds one job, ``a-job``, alice's."""

    def get(self, job_id: str) -> dict[str, Any] | None:
        return {"state": "running", "seq_used": 0, "owner": "alice"} if job_id == "a-job" else None

    def count(self, state: str) -> int:
        return 0

    def disk_bytes(self) -> int:
        return 0

    def record(self, job_id: str) -> None:
        raise AssertionError("no record is read for a caller who may not see the job")


@pytest.mark.parametrize(
    ("caller", "running"),
    [
        (Caller("alice", "alice"), "a-job"),
        (Caller("bob", "bob"), None),
        (Caller("carol", "carol", admin=True), "a-job"),
    ],
    ids=["owner", "other key", "admin"],
)
def test_the_server_status_names_the_running_job_only_to_whom_may_see_it(caller: Caller, running: str | None) -> None:
    sent: list[Message] = []
    context = HandlerContext(
        store=cast(Any, _OneJobStore()), supervisor=cast(Any, SimpleNamespace(job_id="a-job")),
        fanout=cast(Any, None), limits=Limits(), model=None, heartbeat_seconds=1.0, disk_cap_bytes=2**30,
        started=time.time(), send=lambda peer, message: sent.append(message), purge=lambda: None, caller=caller,
    )  # fmt: skip
    handle(context, b"peer", Message(type="status_request", content=StatusRequest(job_id=None)))
    [reply] = sent
    assert isinstance(reply.content, StatusReply)
    assert reply.content.server.running == running
