"""The daemon's model library as a controller: asked for on connect, on Refresh and around each job (what
the worker has loaded changes as jobs load their models), off the GUI thread; and a warning when the open
shot names models that library lacks.

The listing runs on a :class:`Background` thread through the session's own client; an answer meant for an
earlier connection is dropped, and a refresh asked for while one runs is run once after it.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from anyi2v.daemon.client import DaemonError, DaemonTimeoutError
from anyi2v.desktop.models.connection import ConnectionStatus, DaemonSession
from anyi2v.desktop.models.document import ShotDocument
from anyi2v.desktop.models.job import JobProgress
from anyi2v.desktop.models.library import ModelLibrary

from .background import Background
from .document_controller import DocumentController
from .jobs_controller import JobsController


def ask_library(session: DaemonSession) -> ModelLibrary:
    """The session's daemon's library; what went wrong, as a library with its ``problem``, when it cannot say."""
    try:
        return ModelLibrary.from_reply(session.models())
    except DaemonError as error:
        if error.code == "unknown_type":
            return ModelLibrary.unavailable(
                "This daemon does not list its models (an older version): the shot's model choice is sent as it is"
            )
        return ModelLibrary.unavailable(f"The daemon did not list its models: {error}")
    except DaemonTimeoutError:
        return ModelLibrary.unavailable("The daemon did not answer the models request: Refresh to ask again")


class LibraryController(QObject):
    """``listing`` is the connected daemon's library (None until it has answered, and while not connected)."""

    sig_library_changed = Signal(object)  # ModelLibrary, or None
    sig_warning = Signal(str)
    sig_error = Signal(str)

    def __init__(self, jobs: JobsController, documents: DocumentController, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.jobs, self.documents = jobs, documents
        self.listing: ModelLibrary | None = None
        self._session: DaemonSession | None = None  # the session ``listing`` came from
        self._connected = False
        self._worker = ("", "")  # the connected daemon's model and device ("loading" until its worker is ready)
        self._asking = self._ask_again = False
        self._job_seen: tuple[int, str] | None = None  # the followed job and its last stage
        self._warned: tuple[str, ...] = ()
        self._background = Background(self.sig_error.emit, self)
        jobs.sig_status_changed.connect(self._status_changed)
        jobs.sig_job_started.connect(lambda *_: self.refresh())
        jobs.sig_job_changed.connect(self._job_changed)
        documents.sig_document_changed.connect(self._document_changed)

    def refresh(self) -> None:
        """Ask the daemon for its library (now, or once the listing under way is in)."""
        session = self.jobs.session
        if session is None or self.jobs.connection_status.state != "connected":
            return
        if self._asking:
            self._ask_again = True
            return
        self._asking = True
        self._background.run(
            lambda: ask_library(session),
            lambda listing: self._listed(session, listing),
            "listing the daemon's models",
            lambda message: self._listed(session, None, message),
        )

    def _listed(self, session: DaemonSession, listing: ModelLibrary | None, message: str = "") -> None:
        self._asking = False
        if session is self.jobs.session:  # else it answers for a connection given up since
            self._show(listing if listing is not None else ModelLibrary.unavailable(message))
        if self._ask_again:
            self._ask_again = False
            self.refresh()

    def _show(self, listing: ModelLibrary | None) -> None:
        self._session = self.jobs.session
        if listing != self.listing:
            self.listing = listing
            self.sig_library_changed.emit(listing)
        self.check_shot()

    def _status_changed(self, status: ConnectionStatus) -> None:
        if self.jobs.session is not self._session:  # another daemon: its library is not known yet
            self._connected = False
            self._show(None)
        connected, worker = status.state == "connected", (status.model, status.device)
        if connected and (not self._connected or worker != self._worker):
            self.refresh()  # connected, back after the daemon was lost, or its worker has loaded its model
        self._connected, self._worker = connected, worker

    def _job_changed(self, job: JobProgress | None) -> None:
        """Ask again once a job has loaded its models and after its final event."""
        if job is None:
            return
        seen, self._job_seen = self._job_seen, (id(job), "finished" if job.finished else job.stage)
        if seen is None or seen[0] != id(job):
            return
        if seen[1] != "finished" and (job.finished or (seen[1] == "loading" and job.stage != "loading")):
            self.refresh()

    def _document_changed(self, _document: ShotDocument | None) -> None:
        self._warned = ()
        QTimer.singleShot(0, self.check_shot)  # after the "Opened ..." line, which would hide the warning

    def check_shot(self) -> None:
        """Warn when the open shot names models the library lacks (once for each set of such names)."""
        shot = self.documents.shot
        missing = self.listing.missing(shot.model) if self.listing is not None and shot is not None else ()
        if missing and missing != self._warned:
            self.sig_warning.emit(
                f"This shot names {', '.join(missing)}, which the daemon's library lacks: kept as they are "
                "(choose others in Model, or put the files in the daemon's models folder)"
            )
        self._warned = missing
