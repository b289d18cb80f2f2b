"""One daemon per data folder: an exclusive OS lock on ``DATA/daemon.lock``, held for the daemon's life.

Two daemons on one folder would both run its queued jobs and overwrite each other's states. The lock is
the operating system's, so it goes with the process however that ends (kill -9 included) and is never
stale: ``fcntl.flock`` on POSIX, ``msvcrt.locking`` on one byte far past the text on Windows (a locked
range cannot be read there). The file itself stays; its text, JSON ``{"pid": N, "address": "tcp://..."}``,
says who holds it, so that a second daemon can name the first and the studio can connect to it
(:func:`running_daemon`). The address is ``null`` until the first daemon has bound its socket.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

LOCK_NAME = "daemon.lock"
_WINDOWS_LOCK_OFFSET = 1 << 30  # Windows locks a byte range; the text before it stays readable


@dataclass(frozen=True)
class Holder:
    """Who holds a data folder's lock, as its lock file says (either may be None while it starts)."""

    pid: int | None
    address: str | None


class DataFolderInUseError(RuntimeError):
    """Another daemon holds the data folder; the message names the folder, its pid and its address."""

    def __init__(self, folder: Path, holder: Holder) -> None:
        self.folder, self.holder = folder, holder
        pid = holder.pid if holder.pid is not None else "unknown"
        where = f"at {holder.address}" if holder.address else "(still starting)"
        super().__init__(f"data folder {folder} is in use by daemon pid {pid} {where}")


class DataLock:
    """Take with :meth:`acquire` (or :class:`DataFolderInUseError`), name the address with :meth:`publish`
    once bound, give back with :meth:`release` (the OS gives it back when the process ends anyway)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o600)
        if not _try_lock(fd, exclusive=True):
            os.close(fd)
            raise DataFolderInUseError(self.folder, _read_holder(self.path))
        self._fd = fd
        self._write(None)

    def publish(self, address: str) -> None:
        self._write(address)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        _unlock(fd)
        os.close(fd)

    def _write(self, address: str | None) -> None:
        assert self._fd is not None, "write the lock file only while holding it"
        text = json.dumps({"pid": os.getpid(), "address": address}).encode()
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.write(self._fd, text)


def running_daemon(folder: Path) -> Holder | None:
    """The daemon that holds ``folder``'s lock now, or None when none does (no file, or nobody locks it)."""
    path = folder / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    except OSError:
        return None
    try:
        if _try_lock(fd, exclusive=False):  # nobody holds it: whatever the file says is over
            _unlock(fd)
            return None
        return _read_holder(path)
    finally:
        os.close(fd)


def running_address(folder: Path, timeout: float = 30.0) -> str | None:
    """The address of the daemon that holds ``folder``, waiting up to ``timeout`` seconds while it is still
    starting (holds the lock, has not bound yet); None when no daemon holds it or none says where."""
    deadline = time.monotonic() + timeout
    while (holder := running_daemon(folder)) is not None:
        if holder.address or time.monotonic() > deadline:
            return holder.address
        time.sleep(0.1)
    return None


def _read_holder(path: Path) -> Holder:
    try:
        data = json.loads(path.read_bytes()[:4096])
    except (OSError, ValueError):  # being written, or not ours
        return Holder(None, None)
    if not isinstance(data, dict):
        return Holder(None, None)
    pid, address = data.get("pid"), data.get("address")
    return Holder(pid if isinstance(pid, int) else None, address if isinstance(address, str) else None)


if sys.platform == "win32":
    import msvcrt

    def _try_lock(fd: int, *, exclusive: bool) -> bool:
        # msvcrt has no shared lock: a probe takes the exclusive one and _unlock gives it back
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        with contextlib.suppress(OSError):
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int, *, exclusive: bool) -> bool:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
