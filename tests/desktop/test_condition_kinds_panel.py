"""The studio names condition kinds as shot files, the CLI and the docs do: a label starts with the
stored name; a shot written with an older name opens with the current one and saves it."""

from __future__ import annotations

import json
import shutil

from anyi2v.desktop.models.layers import MODALITY_LABELS
from anyi2v.shared.modalities import MODALITIES, SCENE_MODALITIES
from tests.conftest import EXAMPLES


def test_each_label_starts_with_the_name_the_shot_stores() -> None:
    assert list(MODALITY_LABELS) == list(MODALITIES)
    for name, label in MODALITY_LABELS.items():
        assert label == name or label.startswith(f"{name} ("), label
    assert MODALITY_LABELS["edges"] == "edges (Canny)"


def test_a_shot_with_old_names_shows_and_saves_the_current_ones(qtbot, window, tmp_path):
    from PySide6.QtWidgets import QComboBox

    shots = tmp_path / "shot"
    shutil.copytree(EXAMPLES, shots)
    document = json.loads((shots / "car_mixed_modality.json").read_text(encoding="utf-8"))
    document["conditions"][1]["modality"] = "canny"  # a scene layer, in the method's older word
    (shots / "old.json").write_text(json.dumps(document), encoding="utf-8")

    assert window.documents.open_path(shots / "old.json"), window.last_error
    assert window.shot.conditions[1].modality == "edges"
    panel = window.settings
    qtbot.waitUntil(lambda: any(c.currentData() == "edges" for c in panel.findChildren(QComboBox) if c.isVisible()))
    kinds = [c for c in panel.findChildren(QComboBox) if c.isVisible() and c.itemData(0) == "depth"]
    assert [c.currentData() for c in kinds] == [layer.modality for layer in window.shot.conditions]
    assert kinds[1].currentText() == "edges (Canny)"
    assert [kinds[1].itemData(i) for i in range(kinds[1].count())] == list(SCENE_MODALITIES)

    assert window.documents.save_to(shots / "old.json")
    saved = json.loads((shots / "old.json").read_text(encoding="utf-8"))
    assert saved["conditions"][1]["modality"] == "edges"
