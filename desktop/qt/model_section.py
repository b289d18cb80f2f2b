"""The settings panel's Model section: which models run the shot, chosen from the daemon's library.

Checkpoint, motion module and VAE are menus (the daemon's default first, then the library's entries of
that kind; an entry that cannot be used is listed disabled, its problem as the tooltip); LoRAs and motion
LoRAs are lists, a row per entry with a weight slider and spin box and a remove button, an "add" menu
under them; the scheduler is a menu. Each change is a request ``sig_part_requested(part, value)`` the
edit controller turns into an undoable edit of the shot's ``model`` section. What the menus offer is
decided in :mod:`anyi2v.desktop.models.library`; this module only draws it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from anyi2v.desktop.models.library import (
    LIST_PARTS,
    NAMED_PARTS,
    PART_KINDS,
    ModelLibrary,
    Picker,
    addable_choices,
    default_label,
    list_rows,
    name_choices,
    scheduler_choices,
    weighted_list,
)
from anyi2v.shared.model_names import MAX_WEIGHT, MIN_WEIGHT
from anyi2v.shared.shot import ModelChoice, Shot, WeightedModel

from .widgets import tool_button

MISSING_COLOUR = QColor("#f0b429")  # amber: the shot's own name, kept though the library lacks it
STEPS_PER_UNIT = 100  # the slider moves in hundredths of a weight
TITLES = {"checkpoint": "Checkpoint", "motion_module": "Motion module", "vae": "VAE", "scheduler": "Scheduler",
          "loras": "LoRAs", "motion_loras": "Motion LoRAs"}  # fmt: skip
TIPS = {
    "checkpoint": "The SD 1.5 checkpoint (the image model)",
    "motion_module": "The AnimateDiff motion module (how things move; its version limits the frames)",
    "vae": "A VAE replacing the checkpoint's own (colours and detail of the decoded frames)",
    "scheduler": "The sampler: ddim as the AnyI2V authors run it, euler, DPM++ 2M Karras, or lcm for AnimateLCM",
    "loras": "LoRAs fused into the checkpoint, each at its weight (1: full strength, 0: off, below 0: the other way)",
    "motion_loras": "Motion LoRAs (camera moves) fused into the motion module, each at its weight",
}


def fill_combo(combo: QComboBox, picker: Picker) -> None:
    """Show ``picker``'s items and current one without sending a request."""
    combo.blockSignals(True)
    combo.clear()
    model = combo.model()
    for index, choice in enumerate(picker.choices):
        combo.addItem(choice.label, choice.value)
        if choice.tooltip:
            combo.setItemData(index, choice.tooltip, Qt.ItemDataRole.ToolTipRole)
        if choice.missing:
            combo.setItemData(index, MISSING_COLOUR, Qt.ItemDataRole.ForegroundRole)
        if not choice.enabled and isinstance(model, QStandardItemModel):
            item = model.item(index)
            if item is not None:
                item.setEnabled(False)
    combo.setCurrentIndex(picker.index)
    chosen = picker.choices[picker.index]
    combo.setStyleSheet(f"QComboBox {{ color: {MISSING_COLOUR.name()}; }}" if chosen.missing else "")
    combo.setToolTip(chosen.tooltip if chosen.value is not None else str(combo.property("part_tip") or ""))
    combo.blockSignals(False)


class WeightRow(QWidget):
    """One LoRA of a list: its name, a weight slider and spin box that follow each other, a remove button."""

    sig_weight_committed = Signal(float)
    sig_remove_requested = Signal()

    def __init__(self, name: str, weight: float, label: str, tooltip: str, missing: bool) -> None:
        super().__init__()
        self.name = name
        rows = QVBoxLayout(self)
        rows.setContentsMargins(0, 0, 0, 0)
        rows.setSpacing(0)
        self.label = QLabel(label)
        self.label.setToolTip(tooltip)
        self.label.setMinimumWidth(40)
        self.label.setWordWrap(True)
        if missing:
            self.label.setStyleSheet(f"color: {MISSING_COLOUR.name()}")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(round(MIN_WEIGHT * STEPS_PER_UNIT), round(MAX_WEIGHT * STEPS_PER_UNIT))
        self.slider.setPageStep(10)
        self.slider.setToolTip(f"Weight, {MIN_WEIGHT:g} to {MAX_WEIGHT:g}: 1 is full strength, 0 off")
        self.spin = QDoubleSpinBox(minimum=MIN_WEIGHT, maximum=MAX_WEIGHT, singleStep=0.05, decimals=2)
        self.spin.setToolTip(self.slider.toolTip())
        self.remove_button = tool_button("✕")
        self.remove_button.setToolTip(f"Remove {name}")
        self.show_weight(weight)
        self.slider.valueChanged.connect(self._slider_moved)
        self.slider.sliderReleased.connect(self._commit)
        self.spin.valueChanged.connect(self._spin_changed)
        self.spin.editingFinished.connect(self._commit)
        self.remove_button.clicked.connect(self.sig_remove_requested.emit)
        title, line = QHBoxLayout(), QHBoxLayout()  # the name over its weight: long names stay readable
        title.addWidget(self.label, 1)
        title.addWidget(self.remove_button)
        line.addWidget(self.slider, 1)
        line.addWidget(self.spin)
        rows.addLayout(title)
        rows.addLayout(line)
        self.weight = weight

    def show_weight(self, weight: float) -> None:
        self.weight = weight
        for widget in (self.slider, self.spin):
            widget.blockSignals(True)
        self.slider.setValue(round(weight * STEPS_PER_UNIT))
        self.spin.setValue(weight)
        for widget in (self.slider, self.spin):
            widget.blockSignals(False)

    def _slider_moved(self, value: int) -> None:
        self.spin.blockSignals(True)
        self.spin.setValue(value / STEPS_PER_UNIT)
        self.spin.blockSignals(False)
        if not self.slider.isSliderDown():  # the keyboard or the wheel; a drag commits on release
            self._commit()

    def _spin_changed(self, value: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(round(value * STEPS_PER_UNIT))
        self.slider.blockSignals(False)

    def _commit(self) -> None:
        weight = round(self.spin.value(), 2)
        if weight != round(self.weight, 2):
            self.weight = weight
            self.sig_weight_committed.emit(weight)


class WeightedList(QWidget):
    """A list part (``loras`` or ``motion_loras``): the rows, an "add" menu and a reset to the daemon's
    default. Requests the whole new list (None: the daemon's default)."""

    sig_list_requested = Signal(object)  # list of {"name", "weight"}, or None

    def __init__(self, part: str) -> None:
        super().__init__()
        self.part = part
        self.current: tuple[WeightedModel, ...] | None = None
        self.rows: list[WeightRow] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.rows_layout = QVBoxLayout()
        self.rows_layout.setContentsMargins(0, 0, 0, 0)
        self.state_label = QLabel()
        self.state_label.setStyleSheet("color: #a0a0a0")
        self.add_combo = QComboBox()
        self.add_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.add_combo.setMinimumContentsLength(8)
        self.add_combo.setProperty("part_tip", TIPS[part])
        self.add_combo.activated.connect(self._add)
        self.reset_button = QPushButton("Default")
        self.reset_button.setToolTip("Use the daemon's default (what it was started with)")
        self.reset_button.clicked.connect(lambda: self.sig_list_requested.emit(None))
        bottom = QHBoxLayout()
        bottom.addWidget(self.add_combo, 1)
        bottom.addWidget(self.reset_button)
        layout.addWidget(self.state_label)
        layout.addLayout(self.rows_layout)
        layout.addLayout(bottom)

    def show_list(self, library: ModelLibrary | None, current: tuple[WeightedModel, ...] | None) -> None:
        self.current = current
        fill_combo(self.add_combo, addable_choices(self.part, library, current))
        self.reset_button.setEnabled(current is not None)
        if current is None:
            self.state_label.setText(default_label(self.part, library))
        else:
            self.state_label.setText("" if current else "none")
        self.state_label.setVisible(not current)
        rows = list_rows(self.part, library, current)
        shown = [(row.name, row.label.text()) for row in self.rows]
        if shown == [(row.name, row.label) for row in rows]:  # the same entries: keep the rows (and the focus)
            for widget, row in zip(self.rows, rows, strict=True):
                widget.show_weight(row.weight)
            return
        for widget in self.rows:
            self.rows_layout.removeWidget(widget)
            widget.deleteLater()
        self.rows = []
        for index, row in enumerate(rows):
            widget = WeightRow(row.name, row.weight, row.label, row.tooltip, row.missing)
            widget.sig_weight_committed.connect(lambda weight, i=index: self._set_weight(i, weight))
            widget.sig_remove_requested.connect(lambda i=index: self._remove(i))
            self.rows_layout.addWidget(widget)
            self.rows.append(widget)

    def _entries(self) -> list[dict[str, Any]]:
        return weighted_list(self.current)

    def _add(self, index: int) -> None:
        name = self.add_combo.itemData(index)
        self.add_combo.setCurrentIndex(0)
        if name is not None:
            self.sig_list_requested.emit([*self._entries(), {"name": name, "weight": 1.0}])

    def _set_weight(self, index: int, weight: float) -> None:
        entries = self._entries()
        entries[index]["weight"] = weight
        self.sig_list_requested.emit(entries)

    def _remove(self, index: int) -> None:
        entries = self._entries()
        del entries[index]
        self.sig_list_requested.emit(entries)


class ModelSection(QGroupBox):
    """The Model section. ``set_library`` gives it the daemon's library (None: not known), ``set_shot``
    the shot whose ``model`` section it shows."""

    sig_part_requested = Signal(str, object)  # part, value (None: the daemon's default)
    sig_refresh_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Model", parent)
        self.library: ModelLibrary | None = None
        self.choice: ModelChoice | None = None
        self._shown: tuple[Any, ...] | None = None
        form = QFormLayout(self)
        top = QHBoxLayout()
        self.library_label = QLabel("Not connected: the daemon's models are listed once it is")
        self.library_label.setWordWrap(True)
        self.library_label.setStyleSheet("color: #a0a0a0")
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("Ask the daemon for its models again (a file copied in shows within seconds)")
        self.refresh_button.clicked.connect(self.sig_refresh_requested.emit)
        top.addWidget(self.library_label, 1)
        top.addWidget(self.refresh_button)
        form.addRow(top)
        self.combos: dict[str, QComboBox] = {}
        self.lists: dict[str, WeightedList] = {}
        for part in ("checkpoint", "motion_module", "loras", "motion_loras", "vae", "scheduler"):
            if part in LIST_PARTS:
                weighted = WeightedList(part)
                weighted.sig_list_requested.connect(lambda value, p=part: self.request(p, value))
                self.lists[part] = weighted
                form.addRow(TITLES[part], weighted)
                continue
            combo = QComboBox()
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(8)
            combo.setProperty("part_tip", TIPS[part])
            combo.activated.connect(lambda index, p=part, c=combo: self._chosen(p, c.itemData(index)))
            self.combos[part] = combo
            form.addRow(TITLES[part], combo)
        self._show()

    def set_library(self, library: ModelLibrary | None) -> None:
        self.library = library
        self.library_label.setText(
            library.summary if library is not None else "Not connected: the daemon's models are listed once it is"
        )
        self._show()

    def set_shot(self, shot: Shot | None) -> None:
        self.choice = shot.model if shot is not None else None
        self._show()

    def _chosen(self, part: str, value: str | None) -> None:
        current = getattr(self.choice, part) if self.choice is not None else None
        found = None
        if self.library is not None and isinstance(current, str) and part in NAMED_PARTS:
            found = self.library.find(current, PART_KINDS[part])
        if value == current or (found is not None and value == found.name):
            return  # the entry the shot names already (maybe by its short name)
        self.request(part, value)

    def request(self, part: str, value: Any) -> None:
        """Ask for the edit; whatever comes of it (done, refused, no change), the shot is shown again."""
        self._shown = None
        self.sig_part_requested.emit(part, value)

    def _show(self) -> None:
        shown = (self.library, self.choice)
        if shown == self._shown:
            return  # every edit of the shot shows it again: the menus are rebuilt only when they change
        self._shown = shown
        choice, library = self.choice, self.library
        for part in NAMED_PARTS:
            fill_combo(self.combos[part], name_choices(part, library, getattr(choice, part) if choice else None))
        fill_combo(self.combos["scheduler"], scheduler_choices(library, choice.scheduler if choice else None))
        for part, weighted in self.lists.items():
            entries: Sequence[WeightedModel] | None = getattr(choice, part) if choice else None
            weighted.show_list(library, tuple(entries) if entries is not None else None)
