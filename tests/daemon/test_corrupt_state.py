"""Issue 19 item 9: a damaged data folder gives one line naming the path and what to do, never a
traceback; a result deleted by hand is reported as gone on fetch, and the job says so."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from anyi2v.cli import main
from anyi2v.daemon.server import ConfigError, Server, ServerConfig
from anyi2v.daemon.store import Store
from anyi2v.shared.protocol import FetchRequest, JobRequest, ListRequest, StatusRequest

from .store_context import Handlers, fake_result


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(4096) * 8)


def _damaged(path: Path) -> None:
    """A real job database whose pages past the first are overwritten: the header still reads."""
    store = Store(path.parent)
    for index in range(200):
        store.add(f"job-{index}", "digest", {"shot": {"prompt": "x" * 2000}}, 4, None)
    store.close()
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[page : len(data) - page] = b"\xa5" * (len(data) - 2 * page)
    path.write_bytes(bytes(data))
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def _run_daemon(data: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.setattr(Server, "serve", lambda self: None)  # were the folder accepted: return, not serve
    code = main(["daemon", "--bind", "tcp://127.0.0.1:*", "--data-dir", str(data)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("spoil", [_garbage, _damaged], ids=["garbage", "damaged pages"])
def test_a_corrupt_database_stops_the_daemon_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, spoil: object
) -> None:
    database = tmp_path / "jobs.sqlite3"
    spoil(database)  # type: ignore[operator]
    code, err = _run_daemon(tmp_path, capsys, monkeypatch)
    assert code == 2
    assert "Traceback" not in err
    [line] = err.strip().splitlines()
    assert line.startswith(f"anyi2v daemon: {database}: the job database is damaged")
    assert "move it and its -wal and -shm files aside" in line


def test_the_folder_is_usable_again_once_the_corrupt_database_is_moved_aside(tmp_path: Path) -> None:
    database = tmp_path / "jobs.sqlite3"
    _garbage(database)
    with pytest.raises(ConfigError, match="the job database is damaged"):
        Server(ServerConfig(data_dir=tmp_path, bind="tcp://127.0.0.1:*"))
    database.rename(tmp_path / "jobs.sqlite3.broken")  # what the message says to do
    Server(ServerConfig(data_dir=tmp_path, bind="tcp://127.0.0.1:*")).close()  # the lock was released


@pytest.mark.parametrize("name", ["results", "inputs", "staging", "jobs.sqlite3"])
def test_a_file_or_folder_where_the_other_belongs_stops_the_daemon_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    if name == "jobs.sqlite3":
        (tmp_path / name).mkdir()
    else:
        (tmp_path / name).write_text("not a folder")
    code, err = _run_daemon(tmp_path, capsys, monkeypatch)
    assert code == 2
    assert "Traceback" not in err
    [line] = err.strip().splitlines()
    assert line.startswith(f"anyi2v daemon: {tmp_path / name}: ")
    assert "move it aside" in line


def test_a_result_deleted_by_hand_is_gone_on_fetch_and_the_job_says_so(tmp_path: Path) -> None:
    store = Store(tmp_path)
    handlers = Handlers(store)
    try:
        store.add("kept", "digest", {"shot": {}}, 2, None)
        fake_result(store, "kept")
        store.add("lost", "digest", {"shot": {}}, 2, None)
        fake_result(store, "lost")
        assert handlers.call("fetch_request", FetchRequest(job_id="lost", part="video")).type == "fetch_reply"
        shutil.rmtree(store.result_path("lost"))  # by hand, behind the daemon's back

        for _ in range(2):  # and again: the same typed answer, never an internal error
            error = handlers.error("fetch_request", FetchRequest(job_id="lost", part="manifest"))
            assert error.code == "result_gone"
            assert error.message.startswith(
                f"the result of job 'lost' is gone (deleted from {store.result_path('lost')})"
            )

        status = handlers.call("status_request", StatusRequest(job_id="lost")).content
        assert (status.job.state, status.job.reason) == ("done", "result_gone")
        assert "deleted" in status.job.message
        assert store.get("lost")["result_bytes"] == 0  # type: ignore[index]  # no longer counted on disk
        listed = handlers.call("list_request", ListRequest()).content
        assert {job.job_id: job.reason for job in listed.jobs} == {"kept": None, "lost": "result_gone"}
        assert handlers.call("fetch_request", FetchRequest(job_id="kept", part="shot")).type == "fetch_reply"
        assert handlers.call("delete_request", JobRequest(job_id="lost")).type == "delete_reply"
    finally:
        store.close()


@pytest.mark.parametrize("spoil", ["video deleted", "frame deleted", "manifest garbled"])
def test_a_result_damaged_by_hand_is_reported_naming_the_file(tmp_path: Path, spoil: str) -> None:
    store = Store(tmp_path)
    handlers = Handlers(store)
    try:
        store.add("job", "digest", {"shot": {}}, 2, None)
        fake_result(store, "job")
        folder = store.result_path("job")
        part, path = {
            "video deleted": ("video", folder / "video.mp4"),
            "frame deleted": ("frame", folder / "frames" / "0001.png"),
            "manifest garbled": ("shot", folder / "manifest.json"),
        }[spoil]
        if spoil == "manifest garbled":
            path.write_text("{not json")
        else:
            path.unlink()
        error = handlers.error("fetch_request", FetchRequest(job_id="job", part=part, index=1))  # type: ignore[arg-type]
        assert error.code == "result_gone"
        assert str(path) in error.message
        assert store.record("job").reason == "result_gone"  # type: ignore[union-attr]
    finally:
        store.close()


def test_a_database_made_before_auto_vacuum_is_converted_and_kept(tmp_path: Path) -> None:
    old = sqlite3.connect(tmp_path / "jobs.sqlite3")
    old.execute("CREATE TABLE notes (text TEXT)")  # an older daemon's file: auto_vacuum off
    old.execute("INSERT INTO notes VALUES ('kept')")
    old.commit()
    old.close()
    store = Store(tmp_path)
    try:
        assert store._db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
        assert store._db.execute("SELECT text FROM notes").fetchone()[0] == "kept"
    finally:
        store.close()
