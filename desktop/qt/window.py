"""The studio's main window: the condition view and the player side by side, the timeline below, the
settings on the right, the connection and the job in the status bar.

The window builds the views, composes the controllers and wires their signals; it decides nothing
itself. ``documents`` owns the open shot and its undo stack, ``editor`` turns the views' requests into
edits, ``renders`` renders the condition, ``jobs`` talks to the daemon, ``library`` lists its models
(the settings' Model section picks from them), ``results`` keeps the history and exports. Threads reach
the GUI only through the controllers' queued signals.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import QPoint, QSize, Qt, QTimer
from PySide6.QtGui import QCloseEvent, QKeySequence
from PySide6.QtWidgets import QFileDialog, QLabel, QMainWindow, QMessageBox, QSplitter

from anyi2v.desktop.models import edits
from anyi2v.desktop.models.condition import warm_up
from anyi2v.desktop.models.connection import ConnectionSettings, ConnectionStatus
from anyi2v.desktop.models.document import ShotDocument
from anyi2v.desktop.models.files import (
    EXPORT_FORMATS,
    IMAGE_SUFFIXES,
    LoadedResult,
    ResultEntry,
    config_dir,
    default_export_path,
    export_target,
)
from anyi2v.desktop.models.job import JobProgress
from anyi2v.desktop.models.library import ModelLibrary, loaded_line
from anyi2v.desktop.models.timeline import Playback
from anyi2v.render.assets import SUFFIXES as ASSET_SUFFIXES
from anyi2v.shared.shot import Shot

from .condition_controller import ConditionController
from .condition_view import ConditionView
from .document_controller import DocumentController
from .edit_controller import EditController
from .images import to_qimage
from .jobs_controller import JobsController
from .library_controller import LibraryController
from .menus import add_edit_menu, add_playback_menu
from .panes import ResultPane, TransportBar, column
from .results_controller import ResultsController
from .settings_panel import SettingsPanel
from .timeline import TimelineView
from .widgets import add_action, add_dock, fill_menu

if TYPE_CHECKING:
    from anyi2v.render.shot_conditions import ShotConditions


class StudioWindow(QMainWindow):
    def __init__(
        self,
        *,
        config_path: Path | None = None,
        connection: ConnectionSettings | None = None,
        start_daemon: bool = True,
    ) -> None:
        super().__init__()
        self.setWindowTitle("AnyI2V Studio")
        self.resize(1440, 900)
        warm_up()
        self.last_error = ""
        self._terminating = False  # closing because a signal asked: no question about unsaved changes
        self.playback = Playback(16, 8.0)
        self.documents = DocumentController(config_path or config_dir() / "studio.json")
        self.documents.ask_unsaved = self._ask_unsaved
        self.documents.ask_save_path = self._ask_save_path
        self.renders = ConditionController()
        self.jobs = JobsController(self.renders.renderer)  # renders take turns on the shared renderer
        self.library = LibraryController(self.jobs, self.documents)  # the daemon's models
        self.results = ResultsController(self.documents, self.jobs)
        self.editor = EditController(self.documents, self.renders, self.playback)
        self._build_views()
        self._build_actions()
        self._connect_controllers()
        self.play_timer = QTimer(self)
        self.play_timer.timeout.connect(self.playback.tick)
        self.playback.frame_changed.connect(self._frame_changed)
        self.playback.playing_changed.connect(self._playing_changed)
        self.documents.selection.changed.connect(lambda _: self._update_actions())
        self.documents.show(None)
        self._status(self.jobs.connection_status)
        self._fill_recent_menu(self.documents.config.recent)
        if self.documents.config.problem:
            self.error(self.documents.config.problem)
        if start_daemon:
            self.jobs.connect_daemon(connection or self.documents.config.connection)

    @property
    def shot(self) -> Shot | None:
        return self.documents.shot

    # Building ---------------------------------------------------------------------------------

    def _build_views(self) -> None:
        self.condition_view = ConditionView()
        self.result_pane = ResultPane()
        self.player, self.history_combo = self.result_pane.player, self.result_pane.history_combo
        self.compare_combo = self.result_pane.compare_combo
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(column(QLabel(" Condition (what is sent)"), self.condition_view))
        splitter.addWidget(self.result_pane)
        self.setCentralWidget(splitter)

        self.transport = TransportBar()
        self.timeline = TimelineView(self.documents.selection)
        timeline_box = column(self.transport, self.timeline, margins=(4, 0, 4, 4))
        add_dock(self, Qt.DockWidgetArea.BottomDockWidgetArea, "Timeline", "timeline", timeline_box, fixed=True)
        self.settings = SettingsPanel()
        add_dock(self, Qt.DockWidgetArea.RightDockWidgetArea, "Settings", "settings", self.settings, min_width=340)
        self.connection_label = QLabel()
        self.statusBar().addPermanentWidget(self.connection_label)
        self.loaded_label = QLabel()  # what the daemon's worker has loaded
        self.statusBar().addPermanentWidget(self.loaded_label)

    def _build_actions(self) -> None:
        bar, documents = self.menuBar(), self.documents
        file_menu = bar.addMenu("&File")
        add_action(self, file_menu, "&New", documents.new_shot, QKeySequence.StandardKey.New,
                   "Close this shot and start empty")  # fmt: skip
        add_action(self, file_menu, "&Open…", self.open_dialog, QKeySequence.StandardKey.Open,
                   "Open a shot, a mesh, a point cloud or an image")  # fmt: skip
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.save_action = add_action(self, file_menu, "&Save", documents.save, QKeySequence.StandardKey.Save)
        add_action(self, file_menu, "Save &as…", documents.save_as, QKeySequence.StandardKey.SaveAs)
        file_menu.addSeparator()
        self.export_action = add_action(self, file_menu, "&Export result…", self.export_dialog, "Ctrl+E",
                                        "Export the result as MP4, WebM, GIF or PNG frames")  # fmt: skip
        file_menu.addSeparator()
        add_action(self, file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)

        self.objects_menu = add_edit_menu(self, documents, self.editor)
        add_playback_menu(self, self.playback)
        run_menu = bar.addMenu("&Generate")
        add_action(self, run_menu, "Generate", self.generate, "Ctrl+Return")
        add_action(self, run_menu, "Cancel", self.jobs.cancel, "Escape")
        add_action(self, run_menu, "Connect…", self.connection_dialog, None, "Local embedded daemon or a remote one")

    def _connect_controllers(self) -> None:
        """Views ask the controllers; controllers announce, and the views redraw."""
        view, timeline, settings, editor = self.condition_view, self.timeline, self.settings, self.editor
        transport = self.transport
        transport.play_button.clicked.connect(self.playback.toggle)
        transport.loop_button.toggled.connect(lambda on: setattr(self.playback, "loop", on))
        transport.frame_spin.valueChanged.connect(self.playback.set_frame)
        transport.key_button.clicked.connect(editor.insert_key)
        transport.generate_button.clicked.connect(self.generate)
        transport.cancel_button.clicked.connect(self.jobs.cancel)
        self.result_pane.sig_result_requested.connect(self.results.pick)
        view.sig_new_box_requested.connect(editor.add_track)
        view.sig_box_edit_requested.connect(editor.set_box)
        view.sig_edit_started.connect(lambda: self.playback.set_playing(False))  # keys land where shown
        view.sig_query_point_requested.connect(editor.add_query_point)
        view.sig_track_selected.connect(editor.select_track)
        view.sig_camera_preview.connect(editor.preview_camera)
        view.sig_camera_commit.connect(editor.set_camera)
        view.sig_role_toggle_requested.connect(editor.toggle_role)
        view.sig_delete_track_requested.connect(lambda track_id: editor.delete_tracks([track_id]))
        view.sig_object_track_requested.connect(editor.add_object_track)
        timeline.sig_frame_requested.connect(self.playback.set_frame)
        timeline.sig_move_keys_requested.connect(editor.move_keys)
        timeline.sig_interpolation_requested.connect(editor.set_interpolation)
        timeline.sig_delete_keys_requested.connect(editor.delete_keys)
        timeline.sig_copy_requested.connect(editor.copy_keys)
        timeline.sig_paste_requested.connect(editor.paste_keys)
        timeline.sig_track_selected.connect(editor.select_track)
        timeline.sig_track_menu_requested.connect(self._track_menu)
        settings.sig_value_requested.connect(editor.set_value)
        settings.sig_frame_count_requested.connect(editor.set_frame_count)
        settings.sig_layers_requested.connect(editor.set_layers)
        settings.model_section.sig_part_requested.connect(editor.set_model_part)
        settings.model_section.sig_refresh_requested.connect(self.library.refresh)
        self.library.sig_library_changed.connect(self._library_changed)
        self.library.sig_warning.connect(self.warning)
        self.library.sig_error.connect(self.error)

        for controller in (self.documents, self.renders, self.jobs, self.results, self.editor):
            controller.sig_error.connect(self.error)
        for controller in (self.documents, self.jobs, self.results, self.editor):
            controller.sig_info.connect(self.info)
        self.documents.sig_document_changed.connect(self._document_changed)
        self.documents.sig_shot_shown.connect(self._show_shot)
        self.documents.sig_edit_unchanged.connect(settings.set_shot)
        self.documents.sig_title_changed.connect(lambda title: self.setWindowTitle(f"{title} - AnyI2V Studio"))
        self.documents.sig_recent_changed.connect(self._fill_recent_menu)
        self.documents.sig_commit_pending_requested.connect(settings.commit_pending)
        self.editor.sig_track_selected.connect(self._track_selected)
        self.renders.sig_busy_changed.connect(self._render_busy)
        self.renders.sig_render_failed.connect(self.condition_view.set_problem)
        self.renders.sig_warning.connect(self.warning)
        self.renders.sig_rendered.connect(self._rendered)
        self.jobs.sig_status_changed.connect(self._status)
        self.jobs.sig_job_started.connect(self._job_started)
        self.jobs.sig_job_changed.connect(lambda _: self._show_progress())
        self.jobs.sig_frame.connect(self.player.set_frame_image)
        self.jobs.sig_previews.connect(lambda job: self.player.set_frames(job.frames, job.previews))
        self.results.sig_history_listed.connect(self._history_listed)
        self.results.sig_result_shown.connect(self._result_shown)
        self.results.sig_result_condition_changed.connect(self._show_result_condition)

    # Messages ---------------------------------------------------------------------------------

    def error(self, message: str) -> None:
        """A problem the user can act on: in red in the status bar until the next message (never a
        dialog that blocks the window)."""
        self.last_error = message
        self.statusBar().setStyleSheet("QStatusBar { color: #ff6b6b; }")
        self.statusBar().showMessage(f"⚠ {message}")

    def warning(self, message: str) -> None:
        """Something the user should know that is not a failure: in amber until the next message."""
        self.statusBar().setStyleSheet("QStatusBar { color: #f0b429; }")
        self.statusBar().showMessage(f"⚠ {message}")

    def info(self, message: str) -> None:
        self.statusBar().setStyleSheet("")
        self.statusBar().showMessage(message, 6000)

    # The document -----------------------------------------------------------------------------

    def _document_changed(self, _document: ShotDocument | None) -> None:
        self.renders.reset()
        self.condition_view.set_image(None)
        self.condition_view.set_object_boxes({})
        self.settings.object_names = ()
        self._fill_objects_menu(())
        self.player.set_condition(None)
        self.player.set_frames([])
        self.jobs.forget()
        self.results.reset()

    def _show_shot(self, shot: Shot | None) -> None:
        """Show ``shot`` in every view (after an edit, an undo or an open) and re-render its condition."""
        document = self.documents.document
        if shot is not None:
            self.playback.set_clip(shot.output.n_frames, shot.output.fps)
            self.play_timer.setInterval(self.playback.interval_ms)
            self.transport.frame_spin.setMaximum(shot.output.n_frames - 1)
        for view in (self.condition_view, self.timeline):
            view.set_shot(shot)
            view.set_selected_track(self.editor.selected_track)
        self.player.set_shot(self.results.result_shot() or shot)
        if document is not None:
            self.settings.base_dir = document.base_dir  # (moves with a save as)
        self.settings.set_shot(shot)
        if shot is not None and document is not None:
            self.renders.shot_shown(shot, document.base_dir)
        self._update_actions()

    def _update_actions(self) -> None:
        self.transport.generate_button.setEnabled(self.shot is not None and not self.jobs.running)
        self.transport.cancel_button.setEnabled(self.jobs.running)
        self.save_action.setEnabled(self.shot is not None)
        self.transport.key_button.setEnabled(self.editor.selected_track is not None)
        self.export_action.setEnabled(bool(self.results.result_frames()))

    def _track_selected(self, track_id: str | None) -> None:
        self.condition_view.set_selected_track(track_id)
        self.timeline.set_selected_track(track_id)
        self._update_actions()

    def _track_menu(self, track_id: str, where: QPoint) -> None:
        self.editor.select_track(track_id)
        self.condition_view.show_track_menu(track_id, where)

    # Playhead ---------------------------------------------------------------------------------

    def _frame_changed(self, frame: int) -> None:
        self.transport.set_frame(frame)
        self.condition_view.set_frame(frame)
        self.timeline.set_frame(frame)
        self.player.set_frame(frame)

    def _playing_changed(self, playing: bool) -> None:
        self.transport.set_playing(playing)
        if playing:
            self.play_timer.start(self.playback.interval_ms)
        else:
            self.play_timer.stop()

    # Condition --------------------------------------------------------------------------------

    def _render_busy(self, busy: bool) -> None:
        self.condition_view.busy = busy
        self.condition_view.update()

    def _rendered(self, conditions: ShotConditions) -> None:
        assert self.renders.condition_image is not None
        image = to_qimage(self.renders.condition_image)
        self.condition_view.set_image(image)
        if self.results.result_condition is None:  # a result is compared with the condition it was made from
            self.player.set_condition(image)
        self.settings.set_object_names(tuple(conditions.object_boxes))
        self.condition_view.set_object_boxes(conditions.object_boxes)
        self._fill_objects_menu(tuple(conditions.object_boxes))

    def _fill_objects_menu(self, names: tuple[str, ...]) -> None:
        fill_menu(self.objects_menu, [(name, partial(self.editor.add_object_track, name)) for name in names],
                  "A track that starts on this object's box at frame 0 (or double-click the object)")  # fmt: skip

    # Files ------------------------------------------------------------------------------------

    def _ask_unsaved(self, question: str) -> QMessageBox.StandardButton:
        buttons = QMessageBox.StandardButton
        return QMessageBox.question(self, "Unsaved changes", question, buttons.Save | buttons.Discard | buttons.Cancel)

    def _ask_save_path(self, start: Path) -> Path | None:
        path, _ = QFileDialog.getSaveFileName(self, "Save shot", str(start), "Shot (*.json)")
        return Path(path) if path else None

    def open_dialog(self) -> None:
        patterns = " ".join(f"*{s}" for s in (".json", *ASSET_SUFFIXES, *IMAGE_SUFFIXES))
        path, _ = QFileDialog.getOpenFileName(self, "Open", "", f"Shots, meshes, point clouds, images ({patterns})")
        if path:
            self.documents.open_path(Path(path))

    def _fill_recent_menu(self, recent: list[str]) -> None:
        fill_menu(self.recent_menu, [(name, partial(self.documents.open_path, Path(name))) for name in recent])

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if not self._terminating and not self.documents.confirm_discard():
            event.ignore()
            return
        self.shutdown()
        event.accept()

    def terminate(self) -> str | None:
        """Close now, without asking (a signal asked: nobody may be there to answer), the embedded daemon
        stopped first. Returns the name of the shot whose unsaved changes are lost, or None."""
        unsaved = self.documents.unsaved_changes()
        self._terminating = True
        self.shutdown()
        self.close()
        return unsaved

    def shutdown(self) -> None:
        """Stop playback, the render worker and the daemon connection; the embedded daemon exits."""
        self.play_timer.stop()
        self.renders.close()
        self.jobs.shutdown()

    # Connection and jobs ----------------------------------------------------------------------

    def connection_dialog(self) -> None:
        from .connection_dialog import ConnectionDialog

        chosen = ConnectionDialog.ask(self.documents.config.connection, self)
        if chosen is not None:
            self.documents.config.connection = chosen
            self.documents.save_config()
            self.jobs.connect_daemon(chosen)

    def _status(self, status: ConnectionStatus) -> None:
        self.connection_label.setText(status.line)
        colour = {"connected": "#3ecf8e", "error": "#ff5a5f", "disconnected": "#ffc145"}.get(status.state, "#a0a0a0")
        self.connection_label.setStyleSheet(f"color: {colour}")

    def _library_changed(self, library: ModelLibrary | None) -> None:
        self.settings.model_section.set_library(library)
        self.loaded_label.setText(loaded_line(library))

    def generate(self) -> None:
        self.settings.commit_pending()  # text typed a moment ago is part of the shot sent
        problem = self.jobs.generate_problem(self.shot is not None)
        if problem is not None:
            self.error(problem)
            return
        if not self.settings.seed_locked:
            self.documents.apply("Random seed", edits.randomize_seed)
        document = self.documents.document
        assert document is not None
        self.jobs.generate(document.shot, document.base_dir, self.results.history())

    def _job_started(self, job: JobProgress, shot: Shot) -> None:
        self.player.set_shot(shot)
        self.player.set_frames(job.frames)

    def _show_progress(self) -> None:
        job = self.jobs.job
        self.transport.show_job(job)
        self.history_combo.setEnabled(self.history_combo.count() > 0 and (job is None or job.finished))
        self._update_actions()

    # History and export -----------------------------------------------------------------------

    def _history_listed(self, entries: list[ResultEntry], select: Path | None) -> None:
        self.result_pane.set_history(entries, select)
        self._show_progress()

    def _result_shown(self, result: LoadedResult) -> None:
        self.player.set_shot(result.shot or self.shot)
        self.player.set_frames(list(result.frames))

    def _show_result_condition(self, condition: NDArray[np.uint8] | None) -> None:
        """Compare the result with the condition it was made from (the current one when not known)."""
        shown = condition if condition is not None else self.renders.condition_image
        self.player.set_condition(to_qimage(shown) if shown is not None else None)

    def export_dialog(self) -> None:
        if not self.results.result_frames():
            self.error("Export: there is no complete result yet: generate first")
            return
        document = self.documents.document
        start = default_export_path(document.path, document.base_dir) if document else Path.home()
        path, chosen = QFileDialog.getSaveFileName(self, "Export result", str(start), ";;".join(EXPORT_FORMATS))
        if path:
            self.results.export_result(*export_target(Path(path), chosen))

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(1440, 900)
