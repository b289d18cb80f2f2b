"""The daemon's durable state: jobs and their stored events in SQLite, inputs and results in folders.

Layout of the data folder::

    jobs.sqlite3            jobs and stored events (WAL, synchronous=FULL: a committed state is on disk)
    inputs/JOB.rgb          the condition image as it arrived (rgb8)
    staging/JOB/            a result being written by the worker (never read by clients)
    results/JOB/            a finished result: manifest.json, shot.json, video.*, frames/NNNN.png

A result folder appears by one rename of a complete staging folder, so ``results/JOB`` is either
whole or absent. Only job ids (checked to be file-safe by the protocol) name files.

A job that reaches a final state keeps only its record and stored events: its input and its request
are dropped. :meth:`Store.disk_bytes` counts the database with the files, and the purge gives the
pages it frees back to the file system (``database.py``), so the disk cap bounds the whole folder.

Each job's event sequence numbers come from ``next_seq``, reserved in blocks so a restart never hands
out a number that a client may already have seen.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anyi2v.shared.durable import fsync_folder, write_file
from anyi2v.shared.protocol import FINAL_STATES, JobRecord

from .database import StoreError, database_bytes, open_database, reclaim
from .ownership import LOCAL_OWNER

SEQ_BLOCK = 64
BUSY_PAUSES = (0.05, 0.2, 0.5, 1.0)  # seconds between tries of a write the database refused as busy
MAX_ATTEMPTS = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    queue_key INTEGER NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    finished REAL,
    request TEXT NOT NULL,
    n_frames INTEGER NOT NULL,
    reason TEXT,
    message TEXT,
    seq_used INTEGER NOT NULL DEFAULT -1,
    seq_reserved INTEGER NOT NULL DEFAULT -1,
    result_bytes INTEGER NOT NULL DEFAULT 0,
    owner TEXT NOT NULL DEFAULT 'local'
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (state, queue_key);
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    content TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);
"""


@dataclass(frozen=True)
class StoredEvent:
    type: str
    content: dict[str, Any]


class Store:
    """Jobs, their stored events and their files. Used from one thread (the server's loop)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        for name in ("inputs", "staging", "results"):
            _make_folder(folder / name)
        self._db = open_database(self.database_path)  # StoreError: damaged, unreadable
        self._db.row_factory = sqlite3.Row
        self._db.executescript(_SCHEMA)
        _add_owner_column(self._db)
        self._next_seq: dict[str, int] = {}

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; taking the write lock and committing wait out a busy database."""
        self._write("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._write("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def _write(self, sql: str, parameters: tuple[Any, ...] = ()) -> None:
        """A statement that writes, tried again while the database is busy or locked (after SQLite's own
        busy timeout, BUSY_PAUSES more times); then one error naming the file."""
        started = time.monotonic()
        for pause in (*BUSY_PAUSES, None):
            try:
                self._db.execute(sql, parameters)
                return
            except sqlite3.OperationalError as error:
                code = getattr(error, "sqlite_errorcode", None)
                busy = code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) if code else "locked" in str(error)
                if not busy:
                    raise
                if pause is None:
                    tries, seconds = len(BUSY_PAUSES) + 1, time.monotonic() - started
                    raise sqlite3.OperationalError(
                        f"{self.folder / 'jobs.sqlite3'}: the job database stayed locked ({error}) through {tries}"
                        f" tries in {seconds:.1f} s; is another program using it?"
                    ) from None
                time.sleep(pause)

    # Paths -------------------------------------------------------------------------------------

    @property
    def database_path(self) -> Path:
        return self.folder / "jobs.sqlite3"

    def input_path(self, job_id: str) -> Path:
        return self.folder / "inputs" / f"{job_id}.rgb"

    def staging_path(self, job_id: str) -> Path:
        return self.folder / "staging" / job_id

    def result_path(self, job_id: str) -> Path:
        return self.folder / "results" / job_id

    # Jobs --------------------------------------------------------------------------------------

    def get(self, job_id: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return row

    def request(self, job_id: str) -> dict[str, Any]:
        row = self.get(job_id)
        if row is None:
            raise KeyError(job_id)
        value: dict[str, Any] = json.loads(row["request"])
        return value

    def add(
        self, job_id: str, digest: str, request: dict[str, Any], n_frames: int, condition: bytes | None,
        owner: str = LOCAL_OWNER,
    ) -> None:  # fmt: skip
        """A new queued job of ``owner`` (ownership.py); its condition bytes are on disk before the job exists."""
        if condition is not None:
            write_file(self.input_path(job_id), condition)
        now = time.time()
        with self._transaction() as db:
            key = db.execute("SELECT COALESCE(MAX(queue_key), 0) + 1 FROM jobs").fetchone()[0]
            db.execute(
                "INSERT INTO jobs (job_id, digest, state, queue_key, created, updated, request, n_frames, owner)"
                " VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?)",
                (job_id, digest, key, now, now, json.dumps(request), n_frames, owner),
            )

    def condition(self, job_id: str) -> bytes | None:
        path = self.input_path(job_id)
        return path.read_bytes() if path.exists() else None

    def position(self, job_id: str, *, any_state: bool = False) -> int | None:
        """How many queued jobs are ahead of this one (None unless it is queued, or ``any_state``:
        where it would stand if it were)."""
        row = self.get(job_id)
        if row is None or (row["state"] != "queued" and not any_state):
            return None
        count: int = self._db.execute(
            "SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND queue_key < ?", (row["queue_key"],)
        ).fetchone()[0]
        return count

    def next_queued(self) -> str | None:
        row = self._db.execute("SELECT job_id FROM jobs WHERE state = 'queued' ORDER BY queue_key LIMIT 1").fetchone()
        return None if row is None else str(row[0])

    def queued_ids(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT job_id FROM jobs WHERE state = 'queued' ORDER BY queue_key")]

    def count(self, state: str) -> int:
        value: int = self._db.execute("SELECT COUNT(*) FROM jobs WHERE state = ?", (state,)).fetchone()[0]
        return value

    def running(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT job_id FROM jobs WHERE state = 'running'")]

    def record(self, job_id: str) -> JobRecord | None:
        row = self.get(job_id)
        return None if row is None else self._record(row)

    def _record(self, row: sqlite3.Row) -> JobRecord:
        return JobRecord(
            job_id=row["job_id"],
            state=row["state"],
            attempts=row["attempts"],
            created=row["created"],
            updated=row["updated"],
            position=self.position(row["job_id"]) if row["state"] == "queued" else None,
            reason=row["reason"],
            message=row["message"],
            n_frames=row["n_frames"],
            last_seq=row["seq_used"],
        )

    def records(self, states: list[str], limit: int, owner: str | None = None) -> list[JobRecord]:
        """Newest first: the jobs in ``states`` (all when empty) of ``owner`` (everyone's when None)."""
        where, values = ["1"], list[Any]()
        if states:
            where.append(f"state IN ({','.join('?' * len(states))})")
            values += states
        if owner is not None:
            where.append("owner = ?")
            values.append(owner)
        rows = self._db.execute(
            f"SELECT * FROM jobs WHERE {' AND '.join(where)} ORDER BY queue_key DESC LIMIT ?", (*values, limit)
        ).fetchall()
        return [self._record(row) for row in rows]

    # Sequence numbers and events ---------------------------------------------------------------

    def take_seq(self, job_id: str) -> int:
        """The job's next event sequence number (reserving a new block on disk when needed)."""
        if job_id not in self._next_seq:
            row = self.get(job_id)
            if row is None:
                raise KeyError(job_id)
            self._next_seq[job_id] = row["seq_reserved"] + 1
        seq = self._next_seq[job_id]
        self._next_seq[job_id] = seq + 1
        row = self.get(job_id)
        assert row is not None
        if seq > row["seq_reserved"]:
            self._write(
                "UPDATE jobs SET seq_reserved = ? WHERE job_id = ?", (seq + SEQ_BLOCK - 1, job_id)
            )  # autocommit: one durable write per block
        self._write("UPDATE jobs SET seq_used = MAX(seq_used, ?) WHERE job_id = ?", (seq, job_id))
        return seq

    def transition(
        self, job_id: str, state: str, events: list[tuple[str, dict[str, Any]]], **changes: Any
    ) -> list[tuple[str, dict[str, Any]]]:
        """Set the job's state (and columns in ``changes``) and store ``events`` (type, content without
        job_id and seq) in one committed transaction; returns the events with their job_id and seq."""
        numbered = []
        for event_type, content in events:
            numbered.append((event_type, {"job_id": job_id, "seq": self.take_seq(job_id), **content}))
        now = time.time()
        columns = {"state": state, "updated": now, **changes}
        if state in FINAL_STATES:
            columns.setdefault("finished", now)
            columns.setdefault("request", "{}")  # a final job never runs again: its request is not kept
        assignments = ", ".join(f"{name} = ?" for name in columns)
        with self._transaction() as db:
            db.execute(f"UPDATE jobs SET {assignments} WHERE job_id = ?", (*columns.values(), job_id))
            db.executemany(
                "INSERT INTO events (job_id, seq, type, content) VALUES (?, ?, ?, ?)",
                [(job_id, c["seq"], t, json.dumps(c)) for t, c in numbered],
            )
        if state in FINAL_STATES:
            self.input_path(job_id).unlink(missing_ok=True)  # nor its condition image
        return numbered

    def events_after(self, job_id: str, after_seq: int) -> list[tuple[str, dict[str, Any]]]:
        rows = self._db.execute(
            "SELECT type, content FROM events WHERE job_id = ? AND seq > ? ORDER BY seq", (job_id, after_seq)
        )
        return [(row[0], json.loads(row[1])) for row in rows]

    # Results -----------------------------------------------------------------------------------

    def promote(self, job_id: str) -> int:
        """Move the complete staging folder to results (one rename); returns its size in bytes."""
        staging, final = self.staging_path(job_id), self.result_path(job_id)
        size = folder_bytes(staging)
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
        fsync_folder(final.parent)
        fsync_folder(staging.parent)
        return size

    def discard_staging(self, job_id: str) -> None:
        shutil.rmtree(self.staging_path(job_id), ignore_errors=True)

    def delete(self, job_id: str) -> None:
        """Remove the job, its events, its input and its result."""
        with self._transaction() as db:
            db.execute("DELETE FROM events WHERE job_id = ?", (job_id,))
            db.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))
        self._next_seq.pop(job_id, None)
        shutil.rmtree(self.result_path(job_id), ignore_errors=True)
        self.discard_staging(job_id)
        self.input_path(job_id).unlink(missing_ok=True)

    def mark_result_gone(self, job_id: str, message: str) -> None:
        """A done job whose result was deleted or damaged by hand: its record says so (``reason``
        ``result_gone``, ``message``), and the result no longer counts on disk."""
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET reason = 'result_gone', message = ?, result_bytes = 0 WHERE job_id = ?",
                (message, job_id),
            )

    def disk_bytes(self) -> int:
        """What the data take on disk: the results, the inputs of jobs not yet final, and the database."""
        value: int = self._db.execute("SELECT COALESCE(SUM(result_bytes), 0) FROM jobs").fetchone()[0]
        return value + folder_bytes(self.folder / "inputs") + database_bytes(self.database_path)

    def purge(self, retention_seconds: float, cap_bytes: int, now: float | None = None) -> list[str]:
        """Delete finished jobs older than the retention period, then the oldest finished ones while the
        data (:meth:`disk_bytes`, the database included) use more than ``cap_bytes``; the database's freed
        pages go back to the file system. Returns the ids deleted."""
        now = time.time() if now is None else now
        finals = tuple(FINAL_STATES)
        marks = ",".join("?" * len(finals))
        old = [
            r[0]
            for r in self._db.execute(
                f"SELECT job_id FROM jobs WHERE state IN ({marks}) AND finished < ? ORDER BY finished",
                (*finals, now - retention_seconds),
            )
        ]
        for job_id in old:
            self.delete(job_id)
        deleted = list(old)
        reclaim(self._db)
        if self.disk_bytes() > cap_bytes:
            oldest = [
                r[0]
                for r in self._db.execute(
                    f"SELECT job_id FROM jobs WHERE state IN ({marks}) ORDER BY finished", finals
                ).fetchall()
            ]
            for job_id in oldest:
                if self.disk_bytes() <= cap_bytes:
                    break
                self.delete(job_id)
                deleted.append(job_id)
                reclaim(self._db)  # so that the database's share shrinks too
        return deleted


def _add_owner_column(db: sqlite3.Connection) -> None:
    """Databases from before owners were recorded gain the ``owner`` column; their jobs get ``local``
    (a key marked admin, or the daemon without CURVE, sees them)."""
    if "owner" not in {row[1] for row in db.execute("PRAGMA table_info(jobs)")}:
        db.execute("ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT 'local'")


def folder_bytes(folder: Path) -> int:
    if not folder.exists():
        return 0
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _make_folder(path: Path) -> None:
    """``path`` as a folder (made when missing); :class:`StoreError` naming it when that cannot be."""
    if path.exists() and not path.is_dir():
        raise StoreError(f"{path}: is a file, not a folder; the daemon keeps its data there: move it aside")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreError(f"{path}: cannot make the folder ({error.strerror or error}); check the data folder") from None
