"""The daemon's file descriptors: every TCP connection costs one before it has authenticated, so idle
connections can use up the process's limit and leave authorised clients unanswered.

At start :func:`raise_fd_limit` raises the soft RLIMIT_NOFILE to the hard one (logged, both numbers); the
server's socket drops a peer that has not finished the ZeroMQ/CURVE handshake within a few seconds
(``ZMQ_HANDSHAKE_IVL``, set by the server); :class:`FdWatch` logs one clear line when the open descriptors
near the limit (and one when they fall back), so that running out is never silent.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("anyi2v.daemon")
_FALLBACK_CEILING = 65536  # when the hard limit is unlimited (macOS also caps it at kern.maxfilesperproc)


def raise_fd_limit() -> int | None:
    """Raise the soft open-file limit as far as the hard one allows; the soft limit now, None where there
    are no such limits (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, _FALLBACK_CEILING)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as error:
            log.warning("open files: could not raise the soft limit %d to the hard one %d: %s", soft, hard, error)
            return int(soft)
        log.info("open files: soft limit raised from %d to the hard limit %d", soft, target)
        return int(target)
    log.info("open files: soft limit %s, hard limit %s", _number(soft), _number(hard))
    return None if soft == resource.RLIM_INFINITY else int(soft)


def _number(limit: int) -> str:
    import resource

    return "unlimited" if limit == resource.RLIM_INFINITY else str(limit)


def _soft_limit() -> int | None:
    try:
        import resource
    except ImportError:
        return None
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else int(soft)


def open_fds() -> int | None:
    """How many descriptors this process has open, where the system says (Linux, macOS); else None."""
    for folder in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(folder))
        except OSError:
            continue
    return None


class FdWatch:
    """:meth:`check` logs a warning when open descriptors pass ``high`` of the limit, and an info line when
    they are back under ``low``; nothing in between (one line per crossing, not one per check)."""

    def __init__(self, limit: int | None = None, high: float = 0.8, low: float = 0.7) -> None:
        self.limit, self.high, self.low = limit, high, low  # limit None: the soft limit at each check
        self.near = False

    def check(self) -> None:
        limit = self.limit if self.limit is not None else _soft_limit()
        count = open_fds()
        if limit is None or count is None:
            return
        if not self.near and count >= self.high * limit:
            self.near = True
            log.warning(
                "open files: %d of the limit %d in use (mostly client connections); new connections may be"
                " refused until unauthenticated ones time out",
                count,
                limit,
            )
        elif self.near and count < self.low * limit:
            self.near = False
            log.info("open files: back to %d of the limit %d", count, limit)
