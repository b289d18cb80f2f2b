"""The worker's messages, handled one at a time: the server's side of the pipe ``worker.py`` describes.

:meth:`WorkerInbox.take` handles a batch from :meth:`Supervisor.receive` message by message: one that
fails is logged with its kind and job, and the rest of the batch still counts (a lost ``done`` made a
finished job hang, then run again). The end of a job (its ``done``, ``failed`` or ``cancelled``, or
its worker dying or hanging) is recorded by an action that does nothing once the job's record has
moved on, so it can be tried again: when it fails (the database locked past the store's retries),
:meth:`WorkerInbox.retry` tries again with back-off, and the job is recorded once. A job whose worker
died or hung after a client asked to cancel it ends ``cancelled``; otherwise it goes back to the queue.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .fanout import Fanout
from .store import Store
from .supervisor import Supervisor

log = logging.getLogger("anyi2v.daemon")

#: Seconds before each new try of a job's end that could not be recorded; the last one repeats.
BACKOFF_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)
#: Workers in a row that may end while loading the model before the daemon gives up (load_error).
LOAD_DEATHS = 3
#: Tries of a job's end before giving up (about 80 s with the back-off); a restart then recovers it.
MAX_TRIES = 20
_JOB_MESSAGES = frozenset({"progress", "preview", "frame", "done", "failed", "cancelled", "alive"})


@dataclass(frozen=True)
class JobRecorder:
    """What the server does to a job's record, lent to the inbox."""

    finish: Callable[[str, str], None]  # (job_id, manifest sha256): the result is in place; done
    fail: Callable[[str, str, str, list[str]], None]  # (job_id, reason, message, hints)
    lost: Callable[[str, str, str], None]  # (job_id, why, reason): queued again, or failed on its last attempt
    purge: Callable[[], None]  # the retention rule


@dataclass
class _Unsettled:
    job_id: str
    what: str  # the message or event being recorded, for the log
    action: Callable[[], None]
    tries: int
    due: float = 0.0


class WorkerInbox:
    """Handles what the worker says; ``load_error`` says why the model could not be loaded."""

    def __init__(self, store: Store, fanout: Fanout, supervisor: Supervisor, recorder: JobRecorder) -> None:
        self.store = store
        self.fanout = fanout
        self.supervisor = supervisor
        self.recorder = recorder
        self.load_error: str | None = None
        self._unsettled: list[_Unsettled] = []

    # The loop's calls ----------------------------------------------------------------------------

    def take(self, messages: list[tuple[Any, ...]]) -> None:
        """Handle each message on its own: one that fails is logged, and the rest still are handled."""
        for message in messages:
            try:
                self._handle(message)
            except Exception:
                job = f"job {message[1]}" if message[0] in _JOB_MESSAGES and len(message) > 1 else "the worker"
                log.exception("%s: the worker's %r message could not be handled (the rest are)", job, message[0])

    def retry(self, now: float) -> None:
        """Try again to record the job ends whose time has come."""
        due = [entry for entry in self._unsettled if entry.due <= now]
        self._unsettled = [entry for entry in self._unsettled if entry.due > now]
        for entry in due:
            entry.tries += 1
            try:
                entry.action()
            except Exception as error:
                self._postpone(entry, error)
            else:
                log.info("job %s: the worker's %r recorded at try %d", entry.job_id, entry.what, entry.tries)

    @property
    def unsettled(self) -> list[str]:
        """The jobs whose end waits to be recorded."""
        return [entry.job_id for entry in self._unsettled]

    def overdue(self, what: str) -> None:
        """The supervisor's timer ran out (``hung``, ``job_load`` or ``load``): kill the worker; a hung job is cut
        off and a new worker started; a load past its timeout ends the daemon (``load_error``)."""
        job_id, cancel_asked = self.supervisor.job_id, self.supervisor.cancel_asked
        self.supervisor.kill()
        if what == "load":
            self.load_error = f"loading took longer than {self.supervisor.load_timeout:.0f} s"
            return
        if job_id is not None:
            if what == "job_load":
                why = f"loading its models took longer than {self.supervisor.load_timeout:.0f} s (--load-timeout)"
            else:
                why = f"no progress for {self.supervisor.hang_timeout:.0f} s"
            self.cut_off(job_id, why, "worker_hung", cancel_asked)
        self.supervisor.start()

    def cut_off(self, job_id: str, why: str, reason: str, cancel_asked: bool) -> None:
        """The job's worker died or hung: it ends cancelled if a client asked for that, else it is
        queued again (or fails on its last attempt)."""
        if cancel_asked:
            log.warning("job %s: %s after a cancel was asked: cancelled", job_id, why)
            self.settle(job_id, "cancelled", lambda: self._cancelled(job_id))
        else:
            self.settle(job_id, reason, lambda: self.recorder.lost(job_id, why, reason))

    def settle(self, job_id: str, what: str, action: Callable[[], None]) -> None:
        """Record the end of a job now, or retry later if that fails. ``action`` must do nothing once
        the job's record is no longer ``running``."""
        try:
            action()
        except Exception as error:
            self._postpone(_Unsettled(job_id, what, action, tries=1), error)

    # Messages ------------------------------------------------------------------------------------

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind in ("progress", "preview", "frame"):
            self._memory_event(message)
        elif kind == "alive":  # the job moves between stages; receiving it reset the hang timer
            return
        elif kind == "done":
            _, job_id, manifest_sha = message
            self._over(job_id, kind)
            self.settle(job_id, kind, lambda: self._done(job_id, manifest_sha))
            self.recorder.purge()
        elif kind == "failed":
            _, job_id, reason, text, hints = message
            self._over(job_id, kind)
            self.settle(job_id, kind, lambda: self._failed(job_id, reason, text, list(hints)))
        elif kind == "cancelled":
            job_id = message[1]
            self._over(job_id, kind)
            self.settle(job_id, kind, lambda: self._cancelled(job_id))
        elif kind == "died":
            self._died(message[1])
        elif kind == "ready":
            log.info("model loaded on %s", message[1]["device"])
        elif kind == "loaded":  # the supervisor keeps what the worker holds now
            log.info("the worker holds %s", message[1])
        elif kind == "load_failed":
            self.load_error = str(message[1])
        else:
            log.warning("the worker sent an unknown message %r; ignored", kind)

    def _memory_event(self, message: tuple[Any, ...]) -> None:
        kind, job_id = message[0], message[1]
        buffers: tuple[bytes, ...] = ()
        if kind == "progress":
            _, _, stage, done, total = message
            fields = {"stage": stage, "done": done, "total": total}
        elif kind == "preview":
            _, _, stage, done, total, width, height, data = message
            fields = {"stage": stage, "done": done, "total": total, "width": width, "height": height}
            buffers = (data,)
        else:
            _, _, index, width, height, data = message
            fields = {"index": index, "width": width, "height": height}
            buffers = (data,)
        self.fanout.emit(job_id, kind, {"job_id": job_id, "seq": self.store.take_seq(job_id), **fields}, buffers)

    def _over(self, job_id: str, kind: str) -> None:
        """The worker is done with ``job_id``: free for the next job."""
        if self.supervisor.job_id == job_id:
            self.supervisor.job_id = None
            log.info(
                "job %s %s; its longest wait between the worker's messages was %.1f s (hang timeout %.0f s)",
                job_id, kind, self.supervisor.longest_silence, self.supervisor.hang_timeout,
            )  # fmt: skip

    def _died(self, exit_code: int | None) -> None:
        job_id, cancel_asked = self.supervisor.job_id, self.supervisor.cancel_asked
        log.error("the worker process ended (exit code %s)", exit_code)
        if self.load_error is not None:  # it could not load the model: the daemon stops
            return
        if self.supervisor.deaths_loading >= LOAD_DEATHS:  # killed while loading (out of memory?), again and again
            self.load_error = (
                f"the worker process ended while loading the model {self.supervisor.deaths_loading} times in a row"
                f" (last exit code {exit_code}; a negative code is the signal that ended it: -9 is often the"
                " system running out of memory)"
            )
            return
        if job_id is not None:
            self.cut_off(job_id, f"the worker process ended (exit code {exit_code})", "worker_crashed", cancel_asked)
        self.supervisor.start()

    # Job ends: each does nothing once the record has moved on --------------------------------------

    def _running(self, job_id: str) -> bool:
        row = self.store.get(job_id)
        return row is not None and row["state"] == "running"

    def _done(self, job_id: str, manifest_sha: str) -> None:
        if not self._running(job_id):
            return
        if not (self.store.result_path(job_id) / "manifest.json").exists():  # not moved by an earlier try
            try:
                self.store.promote(job_id)
            except OSError as error:
                reason = "disk_full" if error.errno == errno.ENOSPC else "internal"
                self.recorder.fail(job_id, reason, f"storing the result failed: {error}", [])
                return
        self.recorder.finish(job_id, manifest_sha)

    def _failed(self, job_id: str, reason: str, text: str, hints: list[str]) -> None:
        if self._running(job_id):
            self.recorder.fail(job_id, reason, text, hints)

    def _cancelled(self, job_id: str) -> None:
        if not self._running(job_id):
            return
        self.store.discard_staging(job_id)
        self.fanout.drop_memory(job_id)
        self.fanout.emit_all(job_id, self.store.transition(job_id, "cancelled", [("cancelled", {})]))

    def _postpone(self, entry: _Unsettled, error: Exception) -> None:
        what = f"job {entry.job_id}: the worker's {entry.what!r} could not be handled"
        if entry.tries >= MAX_TRIES:
            log.error(
                "%s after %d tries (%s: %s); given up: the daemon recovers the job when it restarts",
                what, entry.tries, type(error).__name__, error,
            )  # fmt: skip
            return
        entry.due = time.monotonic() + BACKOFF_SECONDS[min(entry.tries, len(BACKOFF_SECONDS)) - 1]
        self._unsettled.append(entry)
        log.warning(
            "%s yet (%s: %s); trying again in %.1f s", what, type(error).__name__, error, entry.due - time.monotonic(),
            exc_info=error if entry.tries == 1 else None,
        )  # fmt: skip
