"""Writing files so that a crash or a full disk never leaves half a file where a whole one belongs:
write a temporary, fsync it, rename it into place, fsync the folder."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def fsync_file(path: Path) -> None:
    """Flush a written file's data to disk. POSIX flushes through a read-only descriptor; Windows
    (``_commit``) needs one opened for writing."""
    descriptor = os.open(path, os.O_RDWR if os.name == "nt" else os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_folder(path: Path) -> None:
    """Make renames in a folder durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (new or replaced) atomically and durably."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)
