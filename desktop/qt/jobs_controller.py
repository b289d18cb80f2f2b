"""The daemon and its jobs as a controller: the connection (an embedded daemon or a remote one),
generate, cancel, and a job's events folded into its progress, previews and frames.

ZeroMQ traffic runs on :class:`DaemonSession` threads and the condition a job sends is rendered on a
thread of its own; all of it comes back to the GUI thread as queued signals. The controller keeps
the job it follows (``job``) and the shot that job was made from (``job_shot``).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import QObject, Signal

from anyi2v.desktop.models.connection import ConnectionSettings, ConnectionStatus, DaemonSession, EmbeddedDaemon
from anyi2v.desktop.models.files import ResultHistory, data_dir
from anyi2v.desktop.models.job import JobProgress
from anyi2v.shared.shot import Shot

from .background import Background

Prepared = tuple[str, dict[str, Any], NDArray[np.uint8]]  # job id, shot document, condition image


class Renderer(Protocol):
    def render(self, shot: Shot, base_dir: Path) -> Any: ...


class JobsController(QObject):
    """``session`` talks to the daemon (None before a connection); ``daemon`` is the embedded one
    when the studio started it."""

    sig_status_changed = Signal(object)  # ConnectionStatus
    #: a generation started (the new JobProgress, and the shot it runs): nothing is sent yet
    sig_job_started = Signal(object, object)
    #: the job's state or progress changed (the JobProgress, or None once no job is followed)
    sig_job_changed = Signal(object)
    sig_frame = Signal(int, object)  # a frame arrived: its index and its (h, w, 3) uint8 image
    sig_previews = Signal(object)  # new previews: the JobProgress holding them
    #: the condition image the job was made from, as it is sent
    sig_condition_sent = Signal(object)
    sig_job_done = Signal(object)  # a JobResult: the result is fetched into its folder
    sig_error = Signal(str)
    sig_info = Signal(str)
    _sig_status = Signal(object)  # emitted on session threads, run on the GUI thread
    _sig_event = Signal(str, object)
    _sig_result = Signal(str, object)
    _sig_job_error = Signal(str, str)

    def __init__(self, renderer: Renderer, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.renderer = renderer  # renders the condition a job sends (shared with the condition view)
        self.session: DaemonSession | None = None
        self.daemon: EmbeddedDaemon | None = None
        self.connection_status = ConnectionStatus("none")
        self.job: JobProgress | None = None
        self.job_shot: Shot | None = None
        self._background = Background(self.sig_error.emit, self)
        self._sig_status.connect(self.set_status)  # methods: Qt queues the calls to the GUI thread
        self._sig_event.connect(self._job_event)
        self._sig_result.connect(self._job_result)
        self._sig_job_error.connect(self._job_error)

    @property
    def running(self) -> bool:
        return self.job is not None and not self.job.finished

    # Connection -------------------------------------------------------------------------------

    def connect_daemon(self, settings: ConnectionSettings) -> None:
        """Connect to the daemon ``settings`` name: start the embedded one, or reach a remote one."""
        problem = settings.problem()
        if problem is not None:
            self.sig_error.emit(f"Connection: {problem}")
            return
        old_session, old_daemon = self.session, self.daemon
        self.session = self.daemon = None
        if old_session is not None or old_daemon is not None:

            def stop_old() -> None:  # joining threads and waiting for a process: never on the GUI thread
                if old_session is not None:
                    old_session.stop(timeout=1.0)
                if old_daemon is not None:
                    old_daemon.stop()

            threading.Thread(target=stop_old, name="anyi2v-studio-disconnect", daemon=True).start()
        if settings.mode == "local":
            self.daemon = EmbeddedDaemon(data_dir() / "daemon", settings.model, settings.device, settings.low_memory)
            self.daemon.start()
            address, keys, exit_problem = self.daemon.address, None, self.daemon.exit_problem
            self.set_status(ConnectionStatus("starting", address))
        else:
            address, exit_problem = settings.address, (lambda: None)
            try:
                keys = settings.keys()
            except (OSError, ValueError) as error:
                self.sig_error.emit(f"Connection: cannot read the keys: {error}")
                return
            self.set_status(ConnectionStatus("connecting", address))
        self.session = DaemonSession(address, keys, self._sig_status.emit, exit_problem=exit_problem)
        self.session.start()

    def set_status(self, status: ConnectionStatus) -> None:
        self.connection_status = status
        self.sig_status_changed.emit(status)

    def shutdown(self) -> None:
        if self.session is not None:
            self.session.stop(timeout=0.5)  # its threads are daemon threads: none keeps the app alive
        if self.daemon is not None:
            self.daemon.stop()  # the embedded daemon is a child process: it must not outlive the app

    # Generation -------------------------------------------------------------------------------

    def generate_problem(self, has_shot: bool) -> str | None:
        """Why a generation cannot start now, or None."""
        if not has_shot:
            return "Generate: open a shot, a mesh or an image first"
        if self.running:
            return "Generate: a generation is running; cancel it first"
        if self.session is None or self.connection_status.state not in ("connected",):
            return f"Generate: no daemon yet ({self.connection_status.line}); try again once connected"
        return None

    def generate(self, shot: Shot | None, base_dir: Path, history: ResultHistory) -> JobProgress | None:
        """Render ``shot``'s condition off the GUI thread, then submit it as a new job whose result
        lands in a new folder of ``history``. Returns the job (None, with a message, when it cannot)."""
        problem = self.generate_problem(shot is not None)
        if problem is not None:
            self.sig_error.emit(problem)
            return None
        assert shot is not None
        assert self.session is not None
        session, renderer = self.session, self.renderer
        job = JobProgress("", shot.output.n_frames, state="preparing", stage="preparing")
        self.job, self.job_shot = job, shot
        self.sig_job_started.emit(job, shot)
        self.sig_job_changed.emit(job)

        def prepare() -> Prepared:
            from anyi2v.render.condition import to_uint8

            conditions = renderer.render(shot, base_dir)
            resolved = shot.model_copy(update={"tracks": conditions.tracks})
            document = json.loads(resolved.model_dump_json())
            condition = to_uint8(conditions.image)
            digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode())
            digest.update(condition.tobytes())
            # one id per attempt: the daemon would answer a repeated id with the earlier job (a
            # cancelled or failed one included) instead of running it again
            return f"studio-{digest.hexdigest()[:24]}-{secrets.token_hex(4)}", document, condition

        def submit(prepared: Prepared) -> None:
            if self.job is not job or job.finished:
                return  # cancelled while preparing, or another shot was opened meanwhile
            job_id, document, condition = prepared
            job.job_id = job_id
            self.sig_condition_sent.emit(condition)
            session.run_job(
                job_id, document, condition, history.new_folder(job_id),
                on_event=lambda event: self._sig_event.emit(job_id, event),
                on_result=lambda result: self._sig_result.emit(job_id, result),
                on_error=lambda message: self._sig_job_error.emit(job_id, message),
            )  # fmt: skip

        def failed(message: str) -> None:
            if self.job is job and not job.finished:
                job.state, job.message = "failed", message
                self.sig_job_changed.emit(job)
            self.sig_error.emit(message)

        self._background.run(prepare, submit, "preparing the job", failed)
        return job

    def cancel(self) -> None:
        """Cancel the job followed: on the daemon, or before it is sent (then nothing is sent)."""
        job = self.job
        if job is None or job.finished or self.session is None:
            return
        if not job.job_id:  # still rendering the condition here: it is never sent
            job.state = "cancelled"
            self.sig_job_changed.emit(job)
            self.sig_info.emit("Cancelled before it was sent")
            return
        job_id = job.job_id
        self.session.cancel(job_id, lambda message: self._sig_job_error.emit(job_id, message))
        self.sig_info.emit("Cancelling…")

    def forget(self) -> None:
        """Stop following the job (another shot, or a result from the history is shown); its late
        events are ignored."""
        self.job = self.job_shot = None
        self.sig_job_changed.emit(None)

    def _job_event(self, job_id: str, event: Any) -> None:
        if self.job is None or self.job.job_id != job_id:
            return
        if event.type == "lagged":  # a notice, not an event (no seq): the daemon skipped what we read too slowly
            skipped = sum(event.content.dropped.values())
            self.sig_info.emit(f"The studio fell behind: the daemon skipped {skipped} live updates (result unharmed)")
            return
        before = self.job.frames_received
        self.job.apply(event.type, event.content, event.buffers)
        if event.type == "frame" and self.job.frames_received > before:
            index = event.content.index
            self.sig_frame.emit(index, self.job.frames[index])
        elif event.type == "preview":
            self.sig_previews.emit(self.job)
        self.sig_job_changed.emit(self.job)

    def _job_result(self, job_id: str, result: Any) -> None:
        if self.job is None or self.job.job_id != job_id:
            return
        job = self.job
        job.state = "done"
        self.sig_job_done.emit(result)
        self.sig_job_changed.emit(job)
        self.sig_info.emit(f"Generated {job.frames_received} frames; saved in {result.folder}")

    def _job_error(self, job_id: str, message: str) -> None:
        if self.job is not None and self.job.job_id == job_id and not self.job.finished:
            self.job.state, self.job.message = "failed", message
        self.sig_job_changed.emit(self.job)
        self.sig_error.emit(message)
