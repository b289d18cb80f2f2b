"""The daemon's SQLite file: opened with a one-line error when it cannot be used, measured, kept compact.

:func:`open_database` refuses a file that is not a job database (garbage, a damaged page, a folder)
with :class:`StoreError`, whose message names the file and what to do; the server makes it a
``ConfigError``, so ``anyi2v daemon`` exits 2 with that line instead of a traceback. The database
uses incremental auto-vacuum: :func:`reclaim` gives the pages that deleted rows leave behind back to
the file system and empties the write-ahead log, so :func:`database_bytes` (the files on disk) falls
when jobs are purged. A database made before auto-vacuum was used is converted once, on opening.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from anyi2v.shared.errors import cut_text

log = logging.getLogger("anyi2v.daemon")

_SIDE_FILES = ("-wal", "-shm")
_WAL_LIMIT_BYTES = 4 * 2**20  # the write-ahead log is cut back to this after each checkpoint
_INCREMENTAL = 2  # PRAGMA auto_vacuum's value for INCREMENTAL


class StoreError(Exception):
    """The data folder cannot be used as it is; the message names the path and what to do."""


def open_database(path: Path) -> sqlite3.Connection:
    """The job database at ``path`` (made when missing), checked, in WAL mode with full syncs and
    incremental auto-vacuum. Raises :class:`StoreError` naming the file when it cannot be used."""
    if path.exists() and not path.is_file():
        raise StoreError(f"{path}: is not a file; the daemon keeps its job database there: move it aside")
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as error:
        raise StoreError(f"{path}: cannot open the job database ({error}); check its permissions") from None
    try:
        db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect when the first table is made
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT_BYTES}")
        verdict = [row[0] for row in db.execute("PRAGMA quick_check(3)")]
        if verdict != ["ok"]:
            raise sqlite3.DatabaseError("; ".join(str(line) for line in verdict))
        if db.execute("PRAGMA auto_vacuum").fetchone()[0] != _INCREMENTAL:
            log.info("%s: converting to incremental vacuum (once)", path)
            db.execute("VACUUM")  # a database made before auto-vacuum: rewritten once
    except sqlite3.OperationalError as error:
        db.close()
        raise StoreError(
            f"{path}: cannot use the job database ({error}); check its permissions and free space"
        ) from None
    except sqlite3.DatabaseError as error:
        db.close()
        why = cut_text(" ".join(str(error).split()), 120)  # quick_check's report spans lines
        raise StoreError(
            f"{path}: the job database is damaged ({why}): move it and its -wal and -shm files aside and"
            " start again (a new, empty one is made; the jobs it held are forgotten)"
        ) from None
    return db


def database_bytes(path: Path) -> int:
    """The bytes the database takes on disk: its file, write-ahead log and shared-memory index."""
    total = 0
    for candidate in (path, *(path.with_name(path.name + suffix) for suffix in _SIDE_FILES)):
        try:
            total += candidate.stat().st_size
        except FileNotFoundError:
            continue
    return total


def reclaim(db: sqlite3.Connection) -> int:
    """Give free pages back to the file system and empty the write-ahead log; returns the pages freed."""
    free: int = db.execute("PRAGMA freelist_count").fetchone()[0]
    if free:
        db.executescript("PRAGMA incremental_vacuum;")  # executescript runs it to the end (execute frees one page)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    return free
