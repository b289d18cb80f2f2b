"""The studio picks models: the daemon's library listed off the GUI thread (on connect, on Refresh, around
a job), the settings panel's Model section writing the shot's ``model`` section as undoable edits, names
the daemon lacks kept and marked, and the status bar naming what the daemon has loaded.

The daemon is a stand-in :class:`DaemonClient` behind a real :class:`DaemonSession` (its ``models()``
answers from the test), except the last test, which lists a real library through the embedded daemon.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from anyi2v.daemon.client import DaemonError
from anyi2v.desktop.models import library as model_library
from anyi2v.desktop.models.connection import ConnectionStatus, DaemonSession
from anyi2v.desktop.models.edits import EditError, set_model_part
from anyi2v.desktop.models.job import JobProgress
from anyi2v.desktop.models.library import NOT_IN_LIBRARY, ModelLibrary
from anyi2v.shared.document import load_shot
from anyi2v.shared.model_names import MAX_WEIGHT, MIN_WEIGHT, SCHEDULERS
from anyi2v.shared.protocol import ErrorReply, LibraryModel, ModelCombination, ModelsReply, WeightedName
from anyi2v.shared.shot import ModelChoice, WeightedModel
from tests.conftest import EXAMPLES, REPO

WAIT_MS = 60_000  # generous: the machine may be ten times slower and busy

MODELS = [
    LibraryModel(name="checkpoints/dreamshaper_8", short_name="dreamshaper_8", kind="checkpoint", family="sd15",
                 size_bytes=2_100_000_000),
    LibraryModel(name="checkpoints/realisticVision_v51", short_name="realisticVision_v51", kind="checkpoint",
                 family="sd15", size_bytes=2_000_000_000),
    LibraryModel(name="checkpoints/sdxl_base", short_name="sdxl_base", kind="checkpoint", family="sdxl",
                 size_bytes=6_900_000_000, problem="SD XL checkpoint: AnyI2V runs on SD 1.5 only"),
    LibraryModel(name="animatediff_models/mm_sd_v15_v2", short_name="mm_sd_v15_v2", kind="motion_module",
                 family="sd15", version="v2", frame_limit=32, size_bytes=1_800_000_000),
    LibraryModel(name="animatediff_models/v3_sd15_mm", short_name="v3_sd15_mm", kind="motion_module",
                 family="sd15", version="v3", frame_limit=32, size_bytes=800_000_000),
    LibraryModel(name="animatediff_motion_lora/v2_lora_ZoomIn", short_name="v2_lora_ZoomIn", kind="motion_lora",
                 family="sd15", version="v2", size_bytes=77_000_000),
    LibraryModel(name="loras/detail_tweaker", short_name="detail_tweaker", kind="lora", family="sd15",
                 size_bytes=37_000_000),
    LibraryModel(name="loras/xl_style", short_name="xl_style", kind="lora", family="sdxl", size_bytes=37_000_000,
                 problem="SD XL LoRA: AnyI2V runs on SD 1.5 only"),
    LibraryModel(name="vae/vae-ft-mse", short_name="vae-ft-mse", kind="vae", family="sd15", size_bytes=330_000_000),
]  # fmt: skip
DEFAULT = ModelCombination(checkpoint="realisticVision_v51", motion_module="mm_sd_v15_v2")


def models_reply(loaded: ModelCombination | None = None) -> ModelsReply:
    return ModelsReply(folder="/srv/models", models=MODELS, scanned=1.0, default=DEFAULT, loaded=loaded)


class FakeClient:
    """Stands in for DaemonClient: ``models()`` answers what the test put in ``daemon.answer`` (a reply,
    or an exception to raise) and counts the asks."""

    def __init__(self, daemon: SimpleNamespace) -> None:
        self.daemon = daemon

    def models(self) -> ModelsReply:
        self.daemon.asked += 1
        if isinstance(self.daemon.answer, Exception):
            raise self.daemon.answer
        return self.daemon.answer

    def close(self) -> None:
        pass

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


@pytest.fixture
def daemon(qtbot, window) -> SimpleNamespace:
    """The window connected to a stand-in daemon that lists :data:`MODELS`."""
    state = SimpleNamespace(answer=models_reply(), asked=0)
    session = DaemonSession("tcp://127.0.0.1:1", None, lambda status: None)
    session._client = lambda: FakeClient(state)  # type: ignore[method-assign]
    window.jobs.session = session
    window.jobs.set_status(ConnectionStatus("connected", "tcp://127.0.0.1:1", "toy-world", "cpu"))
    qtbot.waitUntil(lambda: window.library.listing is not None, timeout=WAIT_MS)
    return state


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = tmp_path / "shots"
    shutil.copytree(EXAMPLES, folder, ignore=shutil.ignore_patterns("*.results"))
    return folder


@pytest.fixture
def no_merging(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every edit its own undo step, however quickly the next one comes (the test is not timing-bound)."""
    from anyi2v.desktop.qt.document_controller import ShotCommand

    monkeypatch.setattr(ShotCommand, "MERGE_SECONDS", -1.0)


def open_shot(window, path: Path) -> None:
    assert window.documents.open_path(path), window.last_error


def items(combo) -> list[tuple[str, Any, bool, str]]:
    """Each item of a combo box: its text, its data, whether it can be chosen, its tooltip."""
    from PySide6.QtCore import Qt

    model = combo.model()
    return [
        (combo.itemText(i), combo.itemData(i), bool(model.flags(model.index(i, 0)) & Qt.ItemFlag.ItemIsEnabled),
         combo.itemData(i, Qt.ItemDataRole.ToolTipRole) or "")
        for i in range(combo.count())
    ]  # fmt: skip


def texts(combo) -> list[str]:
    return [text for text, *_ in items(combo)]


def pick(combo, value: Any) -> None:
    """Choose the item whose data is ``value``, as a user does."""
    index = combo.findData(value)
    assert index >= 0, f"{value!r} is not offered: {items(combo)}"
    combo.setCurrentIndex(index)
    combo.activated.emit(index)


# The library, Qt-free -----------------------------------------------------------------------------


def test_the_library_sorts_entries_by_kind_and_finds_names_and_short_names():
    library = ModelLibrary.from_reply(models_reply())
    assert [entry.name for entry in library.of_kind("checkpoint")] == [
        "checkpoints/dreamshaper_8", "checkpoints/realisticVision_v51", "checkpoints/sdxl_base"]  # fmt: skip
    assert library.find("dreamshaper_8", "checkpoint") is library.find("checkpoints/dreamshaper_8", "checkpoint")
    assert library.find("dreamshaper_8", "lora") is None  # another kind
    assert library.find("checkpoints/gone", "checkpoint") is None
    choice = ModelChoice(checkpoint="dreamshaper_8", vae="vae/gone", loras=(WeightedModel(name="loras/lost"),))
    assert library.missing(choice) == ("VAE 'vae/gone'", "LoRA 'loras/lost'")
    assert library.missing(None) == ()


def test_a_model_edit_writes_the_section_and_all_defaults_write_null():
    shot = load_shot(EXAMPLES / "demo.json")
    assert shot.model is None
    chosen = set_model_part(shot, "checkpoint", "checkpoints/dreamshaper_8")
    assert chosen.model == ModelChoice(checkpoint="checkpoints/dreamshaper_8")
    both = set_model_part(chosen, "loras", [{"name": "loras/detail_tweaker", "weight": 0.6}])
    assert both.model == ModelChoice(
        checkpoint="checkpoints/dreamshaper_8", loras=(WeightedModel(name="loras/detail_tweaker", weight=0.6),)
    )
    assert set_model_part(set_model_part(both, "loras", None), "checkpoint", None).model is None
    with pytest.raises(EditError, match=r"^model\.checkpoint: .*absolute path"):
        set_model_part(shot, "checkpoint", "/home/me/models/x.safetensors")
    with pytest.raises(EditError, match=r"^model\.loras"):
        set_model_part(shot, "loras", [{"name": "loras/a", "weight": MAX_WEIGHT + 1}])
    with pytest.raises(EditError, match="no model part 'sampler'"):
        set_model_part(shot, "sampler", "euler")


def test_choices_without_a_library_keep_the_shots_names_unmarked():
    picker = model_library.name_choices("checkpoint", None, "checkpoints/mine")
    assert [choice.label for choice in picker.choices] == ["daemon default", "checkpoints/mine"]
    assert picker.index == 1
    assert NOT_IN_LIBRARY not in picker.choices[1].label
    assert model_library.loaded_line(None) == ""


# The Model section ----------------------------------------------------------------------------------


def test_the_combos_list_the_librarys_entries_by_kind(qtbot, window, daemon, shots):
    open_shot(window, shots / "demo.json")
    section = window.settings.model_section
    checkpoint = items(section.combos["checkpoint"])
    assert [text for text, *_ in checkpoint] == [
        "daemon default (realisticVision_v51)", "dreamshaper_8", "realisticVision_v51", "sdxl_base"]  # fmt: skip
    assert [data for _, data, *_ in checkpoint] == [
        None, "checkpoints/dreamshaper_8", "checkpoints/realisticVision_v51", "checkpoints/sdxl_base"]  # fmt: skip
    assert [enabled for _, _, enabled, _ in checkpoint] == [True, True, True, False]
    assert "SD XL checkpoint: AnyI2V runs on SD 1.5 only" in checkpoint[3][3]
    assert section.combos["checkpoint"].currentIndex() == 0
    assert texts(section.combos["motion_module"]) == ["daemon default (mm_sd_v15_v2)", "mm_sd_v15_v2", "v3_sd15_mm"]
    assert texts(section.combos["vae"]) == ["daemon default (the checkpoint's)", "vae-ft-mse"]
    assert texts(section.combos["scheduler"]) == ["daemon default (ddim)", *SCHEDULERS]
    loras = items(section.lists["loras"].add_combo)
    assert [(text, enabled) for text, _, enabled, _ in loras] == [
        ("Add a LoRA…", True), ("detail_tweaker", True), ("xl_style", False)]  # fmt: skip
    assert texts(section.lists["motion_loras"].add_combo) == ["Add a motion LoRA…", "v2_lora_ZoomIn"]
    assert "/srv/models" in section.library_label.text()
    assert window.shot.model is None  # listing changes nothing


def test_choosing_a_checkpoint_and_a_lora_at_0_6_writes_the_model_section_and_undo_restores_it(
    qtbot, window, daemon, shots, no_merging
):
    open_shot(window, shots / "demo.json")
    section = window.settings.model_section
    pick(section.combos["checkpoint"], "checkpoints/dreamshaper_8")
    after_checkpoint = ModelChoice(checkpoint="checkpoints/dreamshaper_8")
    assert window.shot.model == after_checkpoint
    assert window.documents.document.dirty
    pick(section.lists["loras"].add_combo, "loras/detail_tweaker")
    rows = section.lists["loras"].rows
    assert [row.name for row in rows] == ["loras/detail_tweaker"]
    assert (rows[0].spin.minimum(), rows[0].spin.maximum()) == (MIN_WEIGHT, MAX_WEIGHT)
    assert rows[0].spin.value() == 1.0
    rows[0].spin.setValue(0.6)
    rows[0].spin.editingFinished.emit()
    expected = ModelChoice(
        checkpoint="checkpoints/dreamshaper_8", loras=(WeightedModel(name="loras/detail_tweaker", weight=0.6),)
    )
    assert window.shot.model == expected
    assert section.lists["loras"].rows[0].slider.value() == 60  # the slider follows, in hundredths
    assert texts(section.lists["loras"].add_combo) == ["Add a LoRA…", "xl_style"]  # each LoRA once

    stack = window.documents.undo_stack
    stack.undo()  # the weight
    assert window.shot.model.loras == (WeightedModel(name="loras/detail_tweaker", weight=1.0),)
    assert section.lists["loras"].rows[0].spin.value() == 1.0
    stack.undo()  # the LoRA
    assert window.shot.model == after_checkpoint
    assert section.lists["loras"].rows == []
    stack.undo()  # the checkpoint
    assert window.shot.model is None
    assert section.combos["checkpoint"].currentIndex() == 0
    for _ in range(3):
        stack.redo()
    assert window.shot.model == expected
    assert section.combos["checkpoint"].currentData() == "checkpoints/dreamshaper_8"


def test_the_slider_moves_the_weight_and_remove_takes_a_row_out(qtbot, window, daemon, shots, no_merging):
    open_shot(window, shots / "demo.json")
    loras = window.settings.model_section.lists["loras"]
    pick(loras.add_combo, "loras/detail_tweaker")
    slider = loras.rows[0].slider
    assert (slider.minimum(), slider.maximum()) == (round(MIN_WEIGHT * 100), round(MAX_WEIGHT * 100))
    row = loras.rows[0]
    slider.setValue(-150)  # as the keyboard or the wheel moves it (not a drag)
    assert window.shot.model.loras == (WeightedModel(name="loras/detail_tweaker", weight=-1.5),)
    assert loras.rows[0] is row  # the same entries: the row stays (and keeps the keyboard focus)
    assert loras.rows[0].spin.value() == -1.5
    loras.rows[0].remove_button.click()
    assert window.shot.model == ModelChoice(loras=())  # explicitly none, whatever the daemon's default
    assert loras.reset_button.isEnabled()
    loras.reset_button.click()
    assert window.shot.model is None


def test_the_default_choice_writes_null(qtbot, window, daemon, shots):
    open_shot(window, shots / "demo.json")
    combos = window.settings.model_section.combos
    pick(combos["checkpoint"], "checkpoints/dreamshaper_8")
    pick(combos["scheduler"], "euler")
    assert window.shot.model == ModelChoice(checkpoint="checkpoints/dreamshaper_8", scheduler="euler")
    pick(combos["checkpoint"], None)
    assert window.shot.model == ModelChoice(scheduler="euler")
    pick(combos["scheduler"], None)
    assert window.shot.model is None


def test_the_model_section_is_saved_with_the_shot_and_reopened(qtbot, window, daemon, shots):
    open_shot(window, shots / "demo.json")
    section = window.settings.model_section
    pick(section.combos["checkpoint"], "checkpoints/dreamshaper_8")
    pick(section.combos["motion_module"], "animatediff_models/v3_sd15_mm")
    pick(section.lists["loras"].add_combo, "loras/detail_tweaker")
    section.lists["loras"].rows[0].spin.setValue(0.6)
    section.lists["loras"].rows[0].spin.editingFinished.emit()
    pick(section.lists["motion_loras"].add_combo, "animatediff_motion_lora/v2_lora_ZoomIn")
    pick(section.combos["vae"], "vae/vae-ft-mse")
    pick(section.combos["scheduler"], "dpmpp_2m_karras")
    chosen = window.shot.model
    assert chosen == ModelChoice(
        checkpoint="checkpoints/dreamshaper_8", motion_module="animatediff_models/v3_sd15_mm",
        loras=(WeightedModel(name="loras/detail_tweaker", weight=0.6),),
        motion_loras=(WeightedModel(name="animatediff_motion_lora/v2_lora_ZoomIn", weight=1.0),),
        vae="vae/vae-ft-mse", scheduler="dpmpp_2m_karras",
    )  # fmt: skip
    path = shots / "chosen.json"
    assert window.documents.save_to(path), window.last_error
    assert json.loads(path.read_text())["model"]["loras"] == [{"name": "loras/detail_tweaker", "weight": 0.6}]

    window.documents.new_shot()
    assert section.lists["loras"].rows == [] or window.shot is None
    open_shot(window, path)
    assert window.shot.model == chosen
    assert not window.documents.document.dirty
    assert section.combos["checkpoint"].currentText() == "dreamshaper_8"
    assert section.combos["scheduler"].currentText() == "dpmpp_2m_karras"
    assert [(row.name, row.spin.value()) for row in section.lists["loras"].rows] == [("loras/detail_tweaker", 0.6)]


def test_names_the_daemon_lacks_are_kept_marked_and_warned_about(qtbot, window, daemon, shots):
    document = json.loads((shots / "demo.json").read_text())
    document["model"] = {"checkpoint": "checkpoints/my_own_merge", "loras": [{"name": "loras/gone", "weight": 0.5}],
                         "motion_module": "mm_sd_v15_v2"}  # fmt: skip
    path = shots / "elsewhere.json"
    path.write_text(json.dumps(document))
    open_shot(window, path)
    section = window.settings.model_section
    combo = section.combos["checkpoint"]
    assert combo.currentText() == f"checkpoints/my_own_merge {NOT_IN_LIBRARY}"
    assert combo.currentData() == "checkpoints/my_own_merge"
    assert section.combos["motion_module"].currentData() == "animatediff_models/mm_sd_v15_v2"  # its short name
    row = section.lists["loras"].rows[0]
    assert (row.name, row.spin.value()) == ("loras/gone", 0.5)
    assert NOT_IN_LIBRARY in row.label.text()
    qtbot.waitUntil(lambda: "my_own_merge" in window.statusBar().currentMessage(), timeout=WAIT_MS)
    message = window.statusBar().currentMessage()
    assert "checkpoint 'checkpoints/my_own_merge'" in message
    assert "LoRA 'loras/gone'" in message

    pick(section.combos["vae"], "vae/vae-ft-mse")  # another part changes; the unknown names stay
    assert window.shot.model == ModelChoice(
        checkpoint="checkpoints/my_own_merge", motion_module="mm_sd_v15_v2",
        loras=(WeightedModel(name="loras/gone", weight=0.5),), vae="vae/vae-ft-mse",
    )  # fmt: skip
    pick(combo, "checkpoints/my_own_merge")  # choosing it again is no change
    assert window.shot.model.checkpoint == "checkpoints/my_own_merge"


def test_the_status_bar_names_what_is_loaded_and_asks_again_around_a_job(qtbot, window, daemon, shots):
    assert window.loaded_label.text() == "Loaded: nothing yet"
    open_shot(window, shots / "demo.json")
    loaded = ModelCombination(
        checkpoint="checkpoints/dreamshaper_8",
        motion_module="animatediff_models/v3_sd15_mm",
        loras=[WeightedName(name="loras/detail_tweaker", weight=0.6)],
    )
    daemon.answer = models_reply(loaded)
    asked = daemon.asked
    job = JobProgress("studio-1", 16, state="running", stage="sampling")
    window.jobs.job = job
    window.jobs.sig_job_started.emit(job, window.shot)
    qtbot.waitUntil(lambda: "dreamshaper_8" in window.loaded_label.text(), timeout=WAIT_MS)
    assert daemon.asked > asked
    assert "detail_tweaker ×0.6" in window.loaded_label.text()

    daemon.answer = models_reply(ModelCombination(checkpoint="checkpoints/realisticVision_v51"))
    asked = daemon.asked
    window.jobs.sig_job_changed.emit(job)  # not finished: nothing asked
    job.state = "done"
    window.jobs.sig_job_changed.emit(job)  # the final event: ask again
    qtbot.waitUntil(lambda: "realisticVision_v51" in window.loaded_label.text(), timeout=WAIT_MS)
    assert "detail_tweaker" not in window.loaded_label.text()
    qtbot.waitUntil(lambda: daemon.asked == asked + 1, timeout=WAIT_MS)

    asked = daemon.asked
    window.settings.model_section.refresh_button.click()
    qtbot.waitUntil(lambda: daemon.asked == asked + 1, timeout=WAIT_MS)


def test_a_daemon_that_cannot_list_models_is_said_and_the_shots_names_stay(qtbot, window, daemon, shots):
    daemon.answer = DaemonError(ErrorReply(code="unknown_type", message="unknown message type 'models_request'"))
    document = json.loads((shots / "demo.json").read_text())
    document["model"] = {"checkpoint": "checkpoints/dreamshaper_8"}
    path = shots / "chosen.json"
    path.write_text(json.dumps(document))
    open_shot(window, path)
    section = window.settings.model_section
    section.refresh_button.click()
    qtbot.waitUntil(lambda: "does not list" in section.library_label.text(), timeout=WAIT_MS)
    assert texts(section.combos["checkpoint"]) == ["daemon default", "checkpoints/dreamshaper_8"]
    assert section.combos["checkpoint"].currentIndex() == 1
    assert window.shot.model == ModelChoice(checkpoint="checkpoints/dreamshaper_8")
    assert window.loaded_label.text() == ""


def test_a_listing_for_an_earlier_connection_is_dropped(qtbot, window, daemon, shots):
    """Connecting elsewhere forgets the old daemon's library at once; its late answer is not shown."""
    window.jobs.session = DaemonSession("tcp://127.0.0.1:2", None, lambda status: None)
    window.jobs.set_status(ConnectionStatus("connecting", "tcp://127.0.0.1:2"))
    assert window.library.listing is None
    assert window.settings.model_section.combos["checkpoint"].count() == 1


# End to end ---------------------------------------------------------------------------------------

HANDLER_LANDED = "models_request" in (REPO / "daemon" / "handlers.py").read_text()


@pytest.mark.slow
@pytest.mark.skipif(not HANDLER_LANDED, reason="the daemon's models_request handler has not landed yet")
def test_the_embedded_daemon_lists_its_library_in_the_model_section(qtbot, window, studio_home, shots):
    from anyi2v.desktop.models.connection import ConnectionSettings
    from tests.daemon.model_files import tiny_adapter, write_motion_module, write_sdxl_checkpoint

    models = studio_home / "data" / "anyi2v" / "models"  # the daemon's default folder under XDG_DATA_HOME
    write_sdxl_checkpoint(models / "checkpoints" / "sdxl_base.safetensors")
    write_motion_module(models / "animatediff_models" / "mm_sd_v15_v2.safetensors", tiny_adapter("v2"))
    window.jobs.connect_daemon(ConnectionSettings(mode="local", model="tiny-random", device="cpu"))
    section = window.settings.model_section
    open_shot(window, shots / "demo.json")
    qtbot.waitUntil(lambda: section.combos["motion_module"].findData("animatediff_models/mm_sd_v15_v2") > 0,
                    timeout=240_000)  # fmt: skip
    checkpoint = items(section.combos["checkpoint"])
    sdxl = next(item for item in checkpoint if item[1] == "checkpoints/sdxl_base")
    assert not sdxl[2]  # listed, but not to be chosen, and the tooltip says why
    assert "SD 1.5" in sdxl[3] or "XL" in sdxl[3]
    pick(section.combos["motion_module"], "animatediff_models/mm_sd_v15_v2")
    assert window.shot.model == ModelChoice(motion_module="animatediff_models/mm_sd_v15_v2")
    qtbot.waitUntil(lambda: window.loaded_label.text().startswith("Loaded: ") and "nothing" not in
                    window.loaded_label.text(), timeout=240_000)  # fmt: skip
