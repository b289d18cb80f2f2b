"""Prompt, sampling, output, condition layers, the models (:mod:`.model_section`), and an Advanced section
with every method knob.

Each change is a request ``sig_value_requested(path, value)``; the window validates it as an edit
and, when refused, this panel shows the shot's value again with the reason in the status bar.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import Any

from PySide6.QtCore import QRegularExpression, Qt, QTimer, Signal
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from anyi2v.desktop.models.edits import MAX_SEED
from anyi2v.desktop.models.files import IMAGE_SUFFIXES
from anyi2v.desktop.models.form import FieldSpec, field_specs, parse_layers
from anyi2v.desktop.models.layers import MODALITY_LABELS, choice_index, image_layer, mask_region, region_choices
from anyi2v.shared.modalities import MODALITIES, SCENE_MODALITIES
from anyi2v.shared.settings import MethodSettings
from anyi2v.shared.shot import Shot

from .model_section import ModelSection
from .widgets import tool_button


def shrinking_combo() -> QComboBox:
    """A combo box that may be narrower than its longest item (the panel never scrolls sideways)."""
    combo = QComboBox()
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(8)
    return combo


MASK_PICK = "pick a mask"  # the region menu's last item: choose a mask image


class PromptEdit(QPlainTextEdit):
    """A multi-line text whose value is committed after a pause in typing and when it loses focus."""

    committed = Signal(str)

    def __init__(self, placeholder: str) -> None:
        super().__init__()
        self.setPlaceholderText(placeholder)
        self.setFixedHeight(64)
        self._timer = QTimer(self, singleShot=True, interval=600)
        self._timer.timeout.connect(self.commit)
        self.textChanged.connect(self._timer.start)

    def commit(self) -> None:
        self._timer.stop()
        self.committed.emit(self.toPlainText())

    def commit_pending(self) -> None:
        """Commit text typed less than a pause ago (before a save, a generate or a close)."""
        if self._timer.isActive():
            self.commit()

    def focusOutEvent(self, event: Any) -> None:  # noqa: N802
        self.commit()
        super().focusOutEvent(event)

    def show_value(self, text: str) -> None:
        if text != self.toPlainText():
            self.blockSignals(True)
            self.setPlainText(text)
            self.blockSignals(False)


class SettingsPanel(QScrollArea):
    sig_value_requested = Signal(object, object)  # path tuple, value
    sig_frame_count_requested = Signal(int)
    sig_layers_requested = Signal(object)  # the new list of layer documents

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # fields shrink instead
        self.shot: Shot | None = None
        self.object_names: tuple[str, ...] = ()  # the scene's objects, for per-object layers
        self.base_dir = Path.cwd()  # the shot's folder: image and mask paths are kept relative to it
        #: asks for an image file; returns None when cancelled (tests answer it themselves)
        self.pick_file: Callable[[str, str], Path | None] = self._pick_with_dialog
        self.seed_locked = True
        body = QWidget()
        layout = QVBoxLayout(body)
        self.setWidget(body)

        general = QGroupBox("Shot")
        form = QFormLayout(general)
        self.prompt = PromptEdit("What the video shows")
        self.prompt.committed.connect(lambda text: self._request(("prompt",), text))
        self.negative = PromptEdit("What it should not show")
        self.negative.committed.connect(lambda text: self._request(("negative_prompt",), text))
        form.addRow("Prompt", self.prompt)
        form.addRow("Negative", self.negative)

        seed_row = QHBoxLayout()
        self.seed = QLineEdit()
        self.seed.setValidator(QRegularExpressionValidator(QRegularExpression(r"\d{1,19}")))
        self.seed.setToolTip("The same seed and settings give the same video")
        self.seed.editingFinished.connect(self._seed_edited)
        self.seed_lock = tool_button("Locked", checked=True)
        self.seed_lock.setToolTip("Locked: every generation uses this seed. Unlocked: a new seed each time")
        self.seed_lock.toggled.connect(self._lock_toggled)
        self.randomize = QPushButton("Randomize")
        self.randomize.setToolTip("Pick a new random seed now")
        self.randomize.clicked.connect(lambda: self._request(("sampling", "seed"), random.randint(0, MAX_SEED)))
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.seed_lock)
        seed_row.addWidget(self.randomize)
        form.addRow("Seed", seed_row)

        self.steps = self._spin(1, 200, ("sampling", "steps"), "DDIM denoising steps (25 in the paper)")
        form.addRow("Steps", self.steps)
        self.guidance = self._double(0.0, 50.0, 0.5, ("sampling", "guidance_scale"), "Classifier-free guidance scale")
        form.addRow("Guidance", self.guidance)
        size_row = QHBoxLayout()
        self.width_spin = self._spin(64, 4096, ("output", "width"), "Width in pixels (a multiple of 8)", step=8)
        self.height_spin = self._spin(64, 4096, ("output", "height"), "Height in pixels (a multiple of 8)", step=8)
        size_row.addWidget(self.width_spin)
        size_row.addWidget(self.height_spin)
        form.addRow("Size", size_row)
        self.frames = QSpinBox(minimum=2, maximum=1024)
        self.frames.setToolTip("Frames in the clip (the motion module allows up to 32)")
        self.frames.editingFinished.connect(lambda: self.sig_frame_count_requested.emit(self.frames.value()))
        form.addRow("Frames", self.frames)
        self.fps = self._double(0.01, 240.0, 1.0, ("output", "fps"), "Playback rate, frames per second")
        form.addRow("FPS", self.fps)
        layout.addWidget(general)

        self.layers_box = QGroupBox("Condition layers")
        self.layers_form = QVBoxLayout(self.layers_box)
        layout.addWidget(self.layers_box)
        self.model_section = ModelSection()
        layout.addWidget(self.model_section)

        self.advanced = QGroupBox("Advanced (AnyI2V method)")
        self.advanced.setCheckable(True)
        self.advanced.setChecked(False)
        advanced_body = QWidget()
        advanced_form = QFormLayout(advanced_body)
        self.advanced.toggled.connect(advanced_body.setVisible)
        advanced_body.setVisible(False)
        QVBoxLayout(self.advanced).addWidget(advanced_body)
        self.method_widgets: dict[str, QWidget] = {}
        for spec in field_specs(MethodSettings):
            widget = self._method_widget(spec)
            widget.setToolTip(spec.description)
            advanced_form.addRow(spec.title, widget)
            self.method_widgets[spec.name] = widget
        layout.addWidget(self.advanced)
        layout.addStretch(1)
        self.setEnabled(False)

    # Widgets ----------------------------------------------------------------------------------

    def _request(self, path: tuple[str, ...], value: Any) -> None:
        if self.shot is not None:
            self.sig_value_requested.emit(path, value)

    def _spin(self, low: int, high: int, path: tuple[str, ...], tip: str, step: int = 1) -> QSpinBox:
        spin = QSpinBox(minimum=low, maximum=high, singleStep=step)
        spin.setToolTip(tip)
        spin.editingFinished.connect(lambda: self._request(path, spin.value()))
        return spin

    def _double(self, low: float, high: float, step: float, path: tuple[str, ...], tip: str) -> QDoubleSpinBox:
        spin = QDoubleSpinBox(minimum=low, maximum=high, singleStep=step, decimals=3)
        spin.setToolTip(tip)
        spin.editingFinished.connect(lambda: self._request_number(path, spin))
        return spin

    def _seed_edited(self) -> None:
        if not self.seed.text().strip():  # an emptied field is not a seed: show the shot's again
            if self.shot is not None:
                self.seed.setText(str(self.shot.sampling.seed))
            return
        self._request(("sampling", "seed"), int(self.seed.text()))

    def _request_number(self, path: tuple[str, ...], spin: QDoubleSpinBox) -> None:
        """Send the field's value only when the user changed it: leaving a field that shows a rounded
        value (2e-05 shown as 0.000020) must not round the shot."""
        current: Any = self.shot.model_dump(mode="json") if self.shot is not None else None
        for name in path:
            current = current.get(name) if isinstance(current, dict) else None
        if isinstance(current, int | float) and round(current, spin.decimals()) == round(spin.value(), spin.decimals()):
            return
        self._request(path, spin.value())

    def _method_widget(self, spec: FieldSpec) -> QWidget:
        path = ("method", spec.name)
        if spec.kind == "bool":
            box = QCheckBox()
            box.toggled.connect(lambda checked: self._request(path, checked))
            return box
        if spec.kind == "choice":
            combo = QComboBox()
            combo.addItems(list(spec.choices))
            combo.currentTextChanged.connect(lambda text: self._request(path, text))
            return combo
        if spec.kind == "layers":
            edit = QLineEdit()
            edit.editingFinished.connect(lambda: self._request(path, parse_layers(edit.text())))
            return edit
        if spec.kind == "int":
            low = int(spec.minimum if spec.minimum is not None else 0)
            spin = QSpinBox(minimum=low - 1 if spec.optional else low, maximum=int(spec.maximum or 10**6))
            if spec.optional:
                spin.setSpecialValueText("off")
            spin.editingFinished.connect(
                lambda: self._request(path, None if spec.optional and spin.value() < low else spin.value())
            )
            return spin
        double = QDoubleSpinBox(minimum=spec.minimum or 0.0, maximum=spec.maximum or 1e6, decimals=6, singleStep=0.01)
        double.editingFinished.connect(lambda: self._request_number(path, double))
        return double

    # Showing the shot ---------------------------------------------------------------------------

    def _lock_toggled(self, locked: bool) -> None:
        self.seed_locked = locked
        self.seed_lock.setText("Locked" if locked else "Unlocked")

    def set_shot(self, shot: Shot | None) -> None:
        self.shot = shot
        self.model_section.set_shot(shot)
        self.setEnabled(shot is not None)
        if shot is None:
            return
        widgets = [self.seed, self.steps, self.guidance, self.width_spin, self.height_spin, self.frames, self.fps,
                   *self.method_widgets.values()]  # fmt: skip
        for widget in widgets:
            widget.blockSignals(True)
        self.prompt.show_value(shot.prompt)
        self.negative.show_value(shot.negative_prompt)
        self.seed.setText(str(shot.sampling.seed))
        self.steps.setValue(shot.sampling.steps)
        self.guidance.setValue(shot.sampling.guidance_scale)
        self.width_spin.setValue(shot.output.width)
        self.height_spin.setValue(shot.output.height)
        self.frames.setValue(shot.output.n_frames)
        self.fps.setValue(shot.output.fps)
        for name, widget in self.method_widgets.items():
            value = getattr(shot.method, name)
            if isinstance(widget, QCheckBox):
                widget.setChecked(bool(value))
            elif isinstance(widget, QComboBox):
                widget.setCurrentText(str(value))
            elif isinstance(widget, QLineEdit):
                widget.setText(", ".join(value))
            elif isinstance(widget, QSpinBox):
                widget.setValue(widget.minimum() if value is None else int(value))
            elif isinstance(widget, QDoubleSpinBox):
                widget.setValue(float(value))
        for widget in widgets:
            widget.blockSignals(False)
        self._show_layers(shot)

    def _show_layers(self, shot: Shot) -> None:
        while self.layers_form.count():
            item = self.layers_form.takeAt(0)
            if item is not None and item.widget() is not None:
                item.widget().deleteLater()  # type: ignore[union-attr]
        layers = [layer.model_dump(mode="json") for layer in shot.conditions]
        for index, layer in enumerate(layers):
            row = QWidget()
            line = QHBoxLayout(row)
            line.setContentsMargins(0, 0, 0, 0)
            scene = layer["source"]["kind"] == "scene"
            combo = shrinking_combo()
            for modality in SCENE_MODALITIES if scene else MODALITIES:
                combo.addItem(MODALITY_LABELS[modality], modality)
            combo.setCurrentIndex(max(combo.findData(layer["modality"]), 0))
            source = "the scene" if scene else PurePath(layer["source"]["path"]).name
            combo.setToolTip(f"Layer {index + 1}: {source}, " + (
                "rendered as this modality" if scene else "showing this (the image is sent as it is)"))  # fmt: skip
            combo.currentIndexChanged.connect(
                lambda _, c=combo, i=index: self._set_layer(i, "modality", c.currentData())
            )
            line.addWidget(combo, 1)
            region = shrinking_combo()
            choices = region_choices(self.object_names, layer.get("region"))
            for choice in choices:
                region.addItem(choice.label, choice.region)
            region.addItem("mask image…", MASK_PICK)
            region.setCurrentIndex(choice_index(choices, layer.get("region")))
            region.setToolTip("Where this layer applies: everywhere, an object's silhouette (or all but it), or "
                              "the white part of a mask image")  # fmt: skip
            region.activated.connect(lambda _, r=region, i=index: self._region_chosen(i, r.currentData()))
            line.addWidget(region, 1)
            remove = tool_button("✕")
            remove.setToolTip("Remove this layer")
            remove.setEnabled(len(layers) > 1)
            remove.clicked.connect(lambda _=False, i=index: self._remove_layer(i))
            line.addWidget(remove)
            self.layers_form.addWidget(row)
        buttons = QVBoxLayout()
        if shot.scene is not None:
            add = QPushButton("Add a scene layer")
            add.setToolTip("Another modality of the scene, for one object (choose it in the new row)")
            add.clicked.connect(self._add_layer)
            buttons.addWidget(add)
        add_image = QPushButton("Add an image layer…")
        add_image.setToolTip("An image you bring (a sketch, a skeleton, a segmentation...) drawn over the layers above")
        add_image.clicked.connect(self._add_image_layer)
        buttons.addWidget(add_image)
        holder = QWidget()
        holder.setLayout(buttons)
        buttons.setContentsMargins(0, 0, 0, 0)
        self.layers_form.addWidget(holder)

    def commit_pending(self) -> None:
        """Make what is typed but not yet committed part of the shot: the prompts within their pause,
        and the field being edited (a spin box or a line commits on Enter or when it loses focus)."""
        self.prompt.commit_pending()
        self.negative.commit_pending()
        focused = QApplication.focusWidget()
        if focused is not None and isinstance(focused.parentWidget(), QAbstractSpinBox):
            focused = focused.parentWidget()  # a spin box's own line edit
        if isinstance(focused, QAbstractSpinBox | QLineEdit) and self.isAncestorOf(focused):
            focused.editingFinished.emit()

    def set_object_names(self, names: tuple[str, ...]) -> None:
        """The scene's objects in view, offered as layer regions."""
        if names != self.object_names:
            self.object_names = names
            if self.shot is not None:
                self._show_layers(self.shot)

    def _layers(self) -> list[dict[str, Any]]:
        assert self.shot is not None
        return [layer.model_dump(mode="json") for layer in self.shot.conditions]

    def _set_layer(self, index: int, what: str, value: Any) -> None:
        layers = self._layers()
        layers[index][what] = value
        self.sig_layers_requested.emit(layers)

    def _region_chosen(self, index: int, region: Any) -> None:
        if region == MASK_PICK:
            path = self._pick("Mask image (white: where the layer applies)")
            if path is None:
                if self.shot is not None:
                    self._show_layers(self.shot)  # the menu shows the layer's region again
                return
            region = mask_region(path, self.base_dir)
        self._set_layer(index, "region", region)

    def _add_image_layer(self) -> None:
        path = self._pick("Condition image")
        if path is not None:
            self.sig_layers_requested.emit([*self._layers(), image_layer(path, self.base_dir)])

    def _pick(self, title: str) -> Path | None:
        patterns = " ".join(f"*{suffix}" for suffix in IMAGE_SUFFIXES)
        return self.pick_file(title, f"Images ({patterns})")

    def _pick_with_dialog(self, title: str, file_filter: str) -> Path | None:
        path, _ = QFileDialog.getOpenFileName(self, title, str(self.base_dir), file_filter)
        return Path(path) if path else None

    def _remove_layer(self, index: int) -> None:
        layers = self._layers()
        del layers[index]
        self.sig_layers_requested.emit(layers)

    def _add_layer(self) -> None:
        layers = self._layers()
        first_object = self.object_names[0] if self.object_names else None
        region = {"kind": "object", "object": first_object, "invert": False} if first_object else None
        layers.append({"source": {"kind": "scene"}, "modality": "normal", "region": region})
        self.sig_layers_requested.emit(layers)
