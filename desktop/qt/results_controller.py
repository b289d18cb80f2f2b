"""A shot's results as a controller: the history (``SHOT.results/``) listed off the GUI thread, a
result chosen from it and read back, what the player shows (the running job's frames or that
result), the condition it was made from, and export.

Listing, loading and encoding run on threads of their own and come back as queued signals; a listing
or a load that a newer one overtook, or that belongs to a shot no longer open, is dropped.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import QObject, Signal

from anyi2v.desktop.models.connection import JobResult
from anyi2v.desktop.models.files import LoadedResult, ResultEntry, ResultHistory, load_result, save_condition
from anyi2v.desktop.models.job import JobProgress
from anyi2v.shared.shot import Shot

from .background import Background
from .document_controller import DocumentController
from .jobs_controller import JobsController


class ResultsController(QObject):
    """``shown_result`` is a result chosen from the history (None while a job's frames are shown);
    ``result_folder`` the folder of the result shown; ``result_condition`` the condition it was made
    from (None when not known: the current condition stands in)."""

    #: the history was listed: its entries (newest first) and the folder to select (or None)
    sig_history_listed = Signal(object, object)
    sig_result_shown = Signal(object)  # a LoadedResult chosen from the history, read back
    #: the condition the shown result was made from changed (an image, or None: the current one)
    sig_result_condition_changed = Signal(object)
    sig_error = Signal(str)
    sig_info = Signal(str)

    def __init__(self, documents: DocumentController, jobs: JobsController, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.documents, self.jobs = documents, jobs
        self.shown_result: LoadedResult | None = None
        self.result_folder: Path | None = None
        self.result_condition: NDArray[np.uint8] | None = None
        self._history_token = 0  # drops listings and loads that a newer one overtook
        self._background = Background(self.sig_error.emit, self)
        documents.sig_saved.connect(self._saved)
        jobs.sig_job_started.connect(self._job_started)
        jobs.sig_condition_sent.connect(self.set_result_condition)
        jobs.sig_job_done.connect(self._job_done)

    def history(self) -> ResultHistory:
        """The open shot's results."""
        document = self.documents.document
        assert document is not None
        return ResultHistory(document.path, document.key)

    def reset(self) -> None:
        """Another shot was opened: nothing of the old one is shown; its history is listed."""
        self.shown_result = None
        self.result_condition = None
        self.load_history()

    def set_result_condition(self, condition: NDArray[np.uint8] | None) -> None:
        """Compare the result with the condition it was made from (the current one when not known)."""
        self.result_condition = condition
        self.sig_result_condition_changed.emit(condition)

    # The history ------------------------------------------------------------------------------

    def load_history(self, select: Path | None = None) -> None:
        """List the shot's results (read off the GUI thread); ``select`` one once listed."""
        self._history_token += 1
        token, document = self._history_token, self.documents.document
        if document is None:
            self.sig_history_listed.emit([], None)
            return

        def listed(entries: list[ResultEntry]) -> None:
            if token != self._history_token or self.documents.document is not document:
                return  # a newer listing, or another shot
            self.sig_history_listed.emit(entries, select)

        self._background.run(self.history().entries, listed, "listing the results")

    def pick(self, folder: Path) -> None:
        """Show the result in ``folder`` (read off the GUI thread); never while a job runs."""
        if self.jobs.running:
            return  # the history is disabled while a job runs; a late request changes nothing
        if folder == self.result_folder and self.result_frames():
            return  # already shown
        self._history_token += 1
        token, document = self._history_token, self.documents.document

        def shown(result: LoadedResult) -> None:
            if token != self._history_token or self.documents.document is not document:
                return
            if self.jobs.running:
                return  # a generation started while it loaded
            self.shown_result, self.result_folder = result, folder
            self.jobs.forget()
            self.sig_result_shown.emit(result)
            self.set_result_condition(result.condition)

        self._background.run(lambda: load_result(folder), shown, "loading the result")

    def _saved(self, _written: Path, old_path: Path | None) -> None:
        if old_path is None and self.documents.document is not None:  # the first save takes the untitled results
            untitled = ResultHistory(None, self.documents.document.key)
            history = self.history()
            self._background.run(lambda: history.adopt(untitled), lambda _: self.load_history(),
                                 "moving the results beside the shot")  # fmt: skip
        else:
            self.load_history()  # a saved shot's results stay with it

    def _job_started(self, _job: JobProgress, _shot: Shot) -> None:
        self.shown_result = self.result_folder = None
        self.set_result_condition(None)

    def _job_done(self, result: JobResult) -> None:
        self.result_folder = result.folder
        if self.result_condition is not None:
            condition = self.result_condition
            self._background.run(lambda: save_condition(result.folder, condition), lambda _: None,
                                 "keeping the condition with the result")  # fmt: skip
        self.load_history(select=result.folder)

    # What the player shows --------------------------------------------------------------------

    def result_frames(self) -> list[NDArray[np.uint8]]:
        """The frames the player shows when they are all there: the job's, or a result from the history."""
        job = self.jobs.job
        if job is None:
            return list(self.shown_result.frames) if self.shown_result is not None else []
        if all(frame is not None for frame in job.frames):
            return [frame for frame in job.frames if frame is not None]
        return []

    def result_shot(self) -> Shot | None:
        """The shot that made the result shown (for its fps and the sidecar), when known."""
        if self.jobs.job is None:
            return self.shown_result.shot if self.shown_result is not None else None
        return self.jobs.job_shot

    def export_result(self, path: Path, video_format: str | None = None) -> threading.Thread | None:
        """Encode the result's frames to ``path`` on a worker thread (MP4, WebM or GIF by the suffix,
        or a folder of PNG frames), with the shot that made them beside it."""
        frames = self.result_frames()
        shot = self.result_shot() or self.documents.shot
        if not frames or shot is None:
            self.sig_error.emit("Export: there is no complete result yet: generate first")
            return None
        fps, shot_json = shot.output.fps, shot.model_dump_json(indent=2)

        def write() -> list[Path]:
            from anyi2v.daemon.pipeline.video import write_video

            return write_video(frames, path, fps, shot_json=shot_json, format=video_format)

        def written(paths: list[Path]) -> None:
            self.sig_info.emit(f"Exported {path} ({len(frames)} frames, with the shot beside it)")

        return self._background.run(write, written, f"exporting {path.name}")
