"""The studio's main window: the condition view and the player side by side, the timeline below, the
settings on the right, the connection and the job in the status bar.

The window owns the models (the open :class:`ShotDocument`, the key selection, the playhead) and the
undo stack; views ask for changes through signals and every change is an :class:`Edit` pushed on the
stack. Rendering, ZeroMQ and disk work run on other threads and come back as queued signals.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import QPoint, QSize, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from anyi2v.desktop.models import edits
from anyi2v.desktop.models.condition import warm_up
from anyi2v.desktop.models.connection import (
    ConnectionSettings,
    ConnectionStatus,
)
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
from anyi2v.desktop.models.timeline import Playback
from anyi2v.render.assets import SUFFIXES as ASSET_SUFFIXES
from anyi2v.shared.curves import INTERPOLATIONS
from anyi2v.shared.shot import Shot

from .condition_controller import ConditionController
from .condition_view import ConditionView
from .document_controller import DocumentController
from .edit_controller import EditController
from .images import to_qimage
from .jobs_controller import JobsController
from .player import COMPARE_MODES, PlayerView
from .results_controller import ResultsController
from .settings_panel import SettingsPanel
from .timeline import TimelineView
from .widgets import tool_button

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
        self.documents = DocumentController(config_path or config_dir() / "studio.json")
        self.documents.ask_unsaved = self._ask_unsaved
        self.documents.ask_save_path = self._ask_save_path
        self.playback = Playback(16, 8.0)
        self.last_error = ""
        self.renders = ConditionController()
        self.jobs = JobsController(self.renders.renderer)  # renders take turns on the shared renderer
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

    # Building ---------------------------------------------------------------------------------

    def _build_views(self) -> None:
        self.condition_view = ConditionView()
        self.player = PlayerView()
        splitter = QSplitter(Qt.Orientation.Horizontal)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(QLabel(" Condition (what is sent)"))
        left_layout.addWidget(self.condition_view, 1)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        player_bar = QHBoxLayout()
        player_bar.addWidget(QLabel(" Result"))
        self.history_combo = QComboBox()
        self.history_combo.setToolTip("Earlier results of this shot")
        self.history_combo.activated.connect(self._history_chosen)
        self.compare_combo = QComboBox()
        self.compare_combo.addItems(list(COMPARE_MODES))
        self.compare_combo.setToolTip("Compare the result with the condition")
        self.compare_combo.currentTextChanged.connect(self.player.set_mode)
        self.boxes_check = QCheckBox("Boxes")
        self.boxes_check.setChecked(True)
        self.boxes_check.setToolTip("Draw the tracks' boxes over the result to check the motion")
        self.boxes_check.toggled.connect(self.player.set_show_boxes)
        player_bar.addWidget(self.history_combo, 1)
        player_bar.addWidget(self.compare_combo)
        player_bar.addWidget(self.boxes_check)
        right_layout.addLayout(player_bar)
        right_layout.addWidget(self.player, 1)
        splitter.addWidget(left)
        splitter.addWidget(right)
        self.setCentralWidget(splitter)

        timeline_box = QWidget()
        timeline_layout = QVBoxLayout(timeline_box)
        timeline_layout.setContentsMargins(4, 0, 4, 4)
        transport = QHBoxLayout()
        self.play_button = tool_button("▶ Play")
        self.play_button.setToolTip("Play or pause (Space)")
        self.play_button.clicked.connect(self.playback.toggle)
        self.loop_button = tool_button("Loop", checked=True)
        self.loop_button.setToolTip("Play in a loop")
        self.loop_button.toggled.connect(lambda on: setattr(self.playback, "loop", on))
        self.frame_spin = QSpinBox(minimum=0, maximum=15)
        self.frame_spin.setToolTip("Current frame (Left / Right to step)")
        self.frame_spin.valueChanged.connect(self.playback.set_frame)
        self.key_button = QPushButton("Insert key (I)")
        self.key_button.setToolTip("Key the selected track's box at the current frame")
        self.key_button.clicked.connect(self.editor.insert_key)
        self.generate_button = QPushButton("Generate")
        self.generate_button.setToolTip("Render the condition and run the shot on the daemon (Ctrl+Return)")
        self.generate_button.clicked.connect(self.generate)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Cancel the running generation (Esc)")
        self.cancel_button.clicked.connect(self.jobs.cancel)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setFormat("")
        for widget in (self.play_button, self.loop_button, QLabel("Frame"), self.frame_spin, self.key_button):
            transport.addWidget(widget)
        transport.addStretch(1)
        transport.addWidget(self.progress, 2)
        transport.addWidget(self.cancel_button)
        transport.addWidget(self.generate_button)
        timeline_layout.addLayout(transport)
        self.timeline = TimelineView(self.documents.selection)
        timeline_layout.addWidget(self.timeline, 1)
        dock = QDockWidget("Timeline", self)
        dock.setObjectName("timeline")
        dock.setWidget(timeline_box)
        dock.setFeatures(QDockWidget.DockWidgetFeature.NoDockWidgetFeatures)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)

        self.settings = SettingsPanel()
        settings_dock = QDockWidget("Settings", self)
        settings_dock.setObjectName("settings")
        settings_dock.setWidget(self.settings)
        settings_dock.setMinimumWidth(340)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, settings_dock)

        self.connection_label = QLabel()
        self.statusBar().addPermanentWidget(self.connection_label)

        self.condition_view.sig_new_box_requested.connect(self.editor.add_track)
        self.condition_view.sig_box_edit_requested.connect(self.editor.set_box)
        self.condition_view.sig_edit_started.connect(lambda: self.playback.set_playing(False))  # keys land where shown
        self.condition_view.sig_query_point_requested.connect(self.editor.add_query_point)
        self.condition_view.sig_track_selected.connect(self.editor.select_track)
        self.condition_view.sig_camera_preview.connect(self.editor.preview_camera)
        self.condition_view.sig_camera_commit.connect(self.editor.set_camera)
        self.condition_view.sig_role_toggle_requested.connect(self.editor.toggle_role)
        self.condition_view.sig_delete_track_requested.connect(lambda tid: self.editor.delete_tracks([tid]))
        self.condition_view.sig_object_track_requested.connect(self.editor.add_object_track)
        self.timeline.sig_frame_requested.connect(self.playback.set_frame)
        self.timeline.sig_move_keys_requested.connect(self.editor.move_keys)
        self.timeline.sig_interpolation_requested.connect(self.editor.set_interpolation)
        self.timeline.sig_delete_keys_requested.connect(self.editor.delete_keys)
        self.timeline.sig_copy_requested.connect(self.editor.copy_keys)
        self.timeline.sig_paste_requested.connect(self.editor.paste_keys)
        self.timeline.sig_track_selected.connect(self.editor.select_track)
        self.timeline.sig_track_menu_requested.connect(self._track_menu)
        self.settings.sig_value_requested.connect(self.editor.set_value)
        self.settings.sig_frame_count_requested.connect(self.editor.set_frame_count)
        self.settings.sig_layers_requested.connect(self.editor.set_layers)

    def _action(self, menu: QMenu, text: str, slot: Callable[[], Any], shortcut: Any = None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.setStatusTip(tip)
        action.triggered.connect(lambda _=False: slot())
        menu.addAction(action)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self._action(
            file_menu, "&New", self.documents.new_shot, QKeySequence.StandardKey.New, "Close this shot and start empty"
        )
        self._action(file_menu, "&Open…", self.open_dialog, QKeySequence.StandardKey.Open,
                     "Open a shot, a mesh, a point cloud or an image")  # fmt: skip
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.save_action = self._action(file_menu, "&Save", self.documents.save, QKeySequence.StandardKey.Save)
        self._action(file_menu, "Save &as…", self.documents.save_as, QKeySequence.StandardKey.SaveAs)
        file_menu.addSeparator()
        self.export_action = self._action(file_menu, "&Export result…", self.export_dialog, "Ctrl+E",
                                          "Export the result as MP4, WebM, GIF or PNG frames")  # fmt: skip
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)

        edit_menu = bar.addMenu("&Edit")
        undo = self.documents.undo_stack.createUndoAction(self, "&Undo")
        undo.setShortcut(QKeySequence.StandardKey.Undo)
        redo = self.documents.undo_stack.createRedoAction(self, "&Redo")
        redo.setShortcuts([QKeySequence(QKeySequence.StandardKey.Redo), QKeySequence("Ctrl+Shift+Z")])
        for action in (undo, redo):
            edit_menu.addAction(action)
            self.addAction(action)
        edit_menu.addSeparator()
        self._action(
            edit_menu, "Insert key", self.editor.insert_key, "I", "Key the selected track at the current frame"
        )
        self._action(edit_menu, "Copy keys", self.editor.copy_keys, QKeySequence.StandardKey.Copy)
        self._action(edit_menu, "Paste keys", self.editor.paste_keys, QKeySequence.StandardKey.Paste)
        self._action(edit_menu, "Delete keys", self.editor.delete_selected, QKeySequence.StandardKey.Delete,
                     "Delete the selected keys (or the selected track when no key is selected)")  # fmt: skip
        self.objects_menu = edit_menu.addMenu("New track from scene object")
        self.objects_menu.setToolTipsVisible(True)
        self.objects_menu.setEnabled(False)
        interpolation = edit_menu.addMenu("Interpolation")
        for name in INTERPOLATIONS:
            self._action(interpolation, name.capitalize(), partial(self.editor.interpolate_selected, name))

        play_menu = bar.addMenu("&Playback")
        self._action(play_menu, "Play / pause", self.playback.toggle, "Space")
        self._action(play_menu, "Next frame", lambda: self.playback.step(1), "Right")
        self._action(play_menu, "Previous frame", lambda: self.playback.step(-1), "Left")
        self._action(play_menu, "First frame", lambda: self.playback.set_frame(0), "Home")
        self._action(play_menu, "Last frame", lambda: self.playback.set_frame(self.playback.n_frames - 1), "End")

        run_menu = bar.addMenu("&Generate")
        self._action(run_menu, "Generate", self.generate, "Ctrl+Return")
        self._action(run_menu, "Cancel", self.jobs.cancel, "Escape")
        self._action(run_menu, "Connect…", self.connection_dialog, None, "Local embedded daemon or a remote one")

    def _connect_controllers(self) -> None:
        self.documents.sig_document_changed.connect(self._document_changed)
        self.documents.sig_shot_shown.connect(self._show_shot)
        self.documents.sig_edit_unchanged.connect(self.settings.set_shot)
        self.documents.sig_title_changed.connect(lambda title: self.setWindowTitle(f"{title} - AnyI2V Studio"))
        self.documents.sig_recent_changed.connect(self._fill_recent_menu)
        self.documents.sig_commit_pending_requested.connect(self.settings.commit_pending)
        self.renders.sig_busy_changed.connect(self._render_busy)
        self.renders.sig_rendered.connect(self._rendered)
        self.jobs.sig_status_changed.connect(self._status)
        self.jobs.sig_job_started.connect(self._job_started)
        self.jobs.sig_job_changed.connect(lambda _: self._show_progress())
        self.jobs.sig_frame.connect(self.player.set_frame_image)
        self.jobs.sig_previews.connect(lambda job: self.player.set_frames(job.frames, job.previews))
        self.results.sig_history_listed.connect(self._history_listed)
        self.results.sig_result_shown.connect(self._result_shown)
        self.results.sig_result_condition_changed.connect(self._show_result_condition)
        self.editor.sig_track_selected.connect(self._track_selected)
        for controller in (self.documents, self.renders, self.jobs, self.results, self.editor):
            controller.sig_error.connect(self.error)
        for controller in (self.documents, self.jobs, self.results, self.editor):
            controller.sig_info.connect(self.info)

    # Messages ---------------------------------------------------------------------------------

    def error(self, message: str) -> None:
        """A problem the user can act on: in red in the status bar until the next message (never a
        dialog that blocks the window)."""
        self.last_error = message
        self.statusBar().setStyleSheet("QStatusBar { color: #ff6b6b; }")
        self.statusBar().showMessage(f"⚠ {message}")

    def info(self, message: str) -> None:
        self.statusBar().setStyleSheet("")
        self.statusBar().showMessage(message, 6000)

    # The document -----------------------------------------------------------------------------

    @property
    def shot(self) -> Shot | None:
        return self.documents.shot

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
            self.frame_spin.setMaximum(shot.output.n_frames - 1)
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
        has_shot = self.shot is not None
        self.generate_button.setEnabled(has_shot and not self.jobs.running)
        self.cancel_button.setEnabled(self.jobs.running)
        self.save_action.setEnabled(has_shot)
        self.key_button.setEnabled(self.editor.selected_track is not None)
        self.export_action.setEnabled(bool(self.results.result_frames()))

    # Edits ------------------------------------------------------------------------------------

    def _track_selected(self, track_id: str | None) -> None:
        self.condition_view.set_selected_track(track_id)
        self.timeline.set_selected_track(track_id)
        self._update_actions()

    def _track_menu(self, track_id: str, where: QPoint) -> None:
        self.editor.select_track(track_id)
        self.condition_view.show_track_menu(track_id, where)

    # Playhead ---------------------------------------------------------------------------------

    def _frame_changed(self, frame: int) -> None:
        self.frame_spin.blockSignals(True)
        self.frame_spin.setValue(frame)
        self.frame_spin.blockSignals(False)
        self.condition_view.set_frame(frame)
        self.timeline.set_frame(frame)
        self.player.set_frame(frame)

    def _playing_changed(self, playing: bool) -> None:
        self.play_button.setText("❚❚ Pause" if playing else "▶ Play")
        if playing:
            self.play_timer.start(self.playback.interval_ms)
        else:
            self.play_timer.stop()

    # Condition rendering ----------------------------------------------------------------------

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
        self.objects_menu.clear()
        for name in names:
            action = self.objects_menu.addAction(name, partial(self.editor.add_object_track, name))
            action.setToolTip("A track that starts on this object's box at frame 0 (or double-click the object)")
        self.objects_menu.setEnabled(bool(names))

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
        self.recent_menu.clear()
        for name in recent:
            self.recent_menu.addAction(name, partial(self.documents.open_path, Path(name)))
        self.recent_menu.setEnabled(bool(recent))

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if not self.documents.confirm_discard():
            event.ignore()
            return
        self.shutdown()
        event.accept()

    def shutdown(self) -> None:
        self.play_timer.stop()
        self.renders.close()
        self.jobs.shutdown()

    # Connection -------------------------------------------------------------------------------

    def connection_dialog(self) -> None:
        from .connection_dialog import ConnectionDialog

        config = self.documents.config
        dialog = ConnectionDialog(config.connection, self)
        if dialog.exec():
            config.connection = dialog.settings()
            self.documents.save_config()
            self.jobs.connect_daemon(config.connection)

    def _status(self, status: ConnectionStatus) -> None:
        self.connection_label.setText(status.line)
        colour = {"connected": "#3ecf8e", "error": "#ff5a5f", "disconnected": "#ffc145"}.get(status.state, "#a0a0a0")
        self.connection_label.setStyleSheet(f"color: {colour}")

    # Generation -------------------------------------------------------------------------------

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
        if job is None:
            self.progress.setFormat("")
            self.progress.setValue(0)
        else:
            self.progress.setMaximum(max(job.total, 1))
            self.progress.setValue(job.done if job.total else 0)
            self.progress.setFormat(job.status_line)
        self.history_combo.setEnabled(self.history_combo.count() > 0 and (job is None or job.finished))
        self._update_actions()

    # History and export -----------------------------------------------------------------------

    def _history_listed(self, entries: list[ResultEntry], select: Path | None) -> None:
        self.history_combo.blockSignals(True)
        self.history_combo.clear()
        for entry in entries:
            self.history_combo.addItem(entry.title, str(entry.folder))
        index = self.history_combo.findData(str(select)) if select is not None else -1
        self.history_combo.setCurrentIndex(index)  # -1: none chosen (a result is not shown unasked)
        self.history_combo.blockSignals(False)
        self._show_progress()

    def _history_chosen(self, index: int) -> None:
        if index >= 0:
            self.results.pick(Path(self.history_combo.itemData(index)))

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
