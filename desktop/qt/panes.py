"""The main window's composite panes: the result pane (the player under its history, compare mode and
boxes switch) and the transport bar (play, loop, frame, insert key, the job's progress, cancel,
generate). They draw and ask; the window wires them to the controllers.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from anyi2v.desktop.models.files import ResultEntry
from anyi2v.desktop.models.job import JobProgress

from .player import COMPARE_MODES, PlayerView
from .widgets import tool_button


def column(*widgets: QWidget, margins: tuple[int, int, int, int] = (0, 0, 0, 0)) -> QWidget:
    """``widgets`` one above the other; the last one takes the height left."""
    pane = QWidget()
    layout = QVBoxLayout(pane)
    layout.setContentsMargins(*margins)
    for widget in widgets:
        layout.addWidget(widget, 1 if widget is widgets[-1] else 0)
    return pane


class ResultPane(QWidget):
    """The player, with the shot's earlier results, the compare mode and the boxes switch above it."""

    sig_result_requested = Signal(object)  # the folder of a result chosen in the history

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.player = PlayerView()
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
        bar = QHBoxLayout()
        bar.addWidget(QLabel(" Result"))
        bar.addWidget(self.history_combo, 1)
        bar.addWidget(self.compare_combo)
        bar.addWidget(self.boxes_check)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.player, 1)

    def set_history(self, entries: list[ResultEntry], select: Path | None) -> None:
        """List ``entries``; ``select`` one of them without asking for it (None: none chosen)."""
        self.history_combo.blockSignals(True)
        self.history_combo.clear()
        for entry in entries:
            self.history_combo.addItem(entry.title, str(entry.folder))
        index = self.history_combo.findData(str(select)) if select is not None else -1
        self.history_combo.setCurrentIndex(index)  # -1: none chosen (a result is not shown unasked)
        self.history_combo.blockSignals(False)

    def _history_chosen(self, index: int) -> None:
        if index >= 0:
            self.sig_result_requested.emit(Path(self.history_combo.itemData(index)))


class TransportBar(QWidget):
    """Play, loop, the current frame, insert key; the job's progress, cancel and generate."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.play_button = tool_button("▶ Play")
        self.play_button.setToolTip("Play or pause (Space)")
        self.loop_button = tool_button("Loop", checked=True)
        self.loop_button.setToolTip("Play in a loop")
        self.frame_spin = QSpinBox(minimum=0, maximum=15)
        self.frame_spin.setToolTip("Current frame (Left / Right to step)")
        self.key_button = QPushButton("Insert key (I)")
        self.key_button.setToolTip("Key the selected track's box at the current frame")
        self.generate_button = QPushButton("Generate")
        self.generate_button.setToolTip("Render the condition and run the shot on the daemon (Ctrl+Return)")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Cancel the running generation (Esc)")
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setFormat("")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.play_button, self.loop_button, QLabel("Frame"), self.frame_spin, self.key_button):
            layout.addWidget(widget)
        layout.addStretch(1)
        layout.addWidget(self.progress, 2)
        layout.addWidget(self.cancel_button)
        layout.addWidget(self.generate_button)

    def set_frame(self, frame: int) -> None:
        """Show the playhead's frame (without asking to move it)."""
        self.frame_spin.blockSignals(True)
        self.frame_spin.setValue(frame)
        self.frame_spin.blockSignals(False)

    def set_playing(self, playing: bool) -> None:
        self.play_button.setText("❚❚ Pause" if playing else "▶ Play")

    def show_job(self, job: JobProgress | None) -> None:
        if job is None:
            self.progress.setFormat("")
            self.progress.setValue(0)
        else:
            self.progress.setMaximum(max(job.total, 1))
            self.progress.setValue(job.done if job.total else 0)
            self.progress.setFormat(job.status_line)
