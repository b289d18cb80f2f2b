"""The studio runs a job on models chosen by name: the embedded daemon (a subprocess) serves a models folder
of tiny files, the Model section picks a checkpoint, a motion module and a LoRA at 0.6, Generate runs it,
and the fetched result's ``shot.json`` and the status bar name what was used.

The daemon is a process of its own, so nothing in it can be patched: the library holds only files that
load without a config folder (single tiny files need one for their shapes): the checkpoint is a diffusers
SD 1.5 folder, the motion module a diffusers ``MotionAdapter`` folder, the LoRA a kohya file. The daemon
finds the folder where it looks by default, ``$XDG_DATA_HOME/anyi2v/models`` (``studio_home`` sets it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from anyi2v.desktop.models.connection import ConnectionSettings
from anyi2v.shared.shot import ModelChoice, WeightedModel
from tests.daemon.daemon_helpers import condition_image, shot_document

pytestmark = pytest.mark.slow

LISTED_MS = 600_000  # the daemon starts, loads its default model and scans the folder (a machine 10x slower)
JOB_MS = 900_000  # loading the chosen models, inversion and sampling, on two busy cores

CHECKPOINT = "checkpoints/tiny_sd15"
MOTION_MODULE = "animatediff_models/tiny_motion"
LORA = "loras/detail_tweaker"
CHOSEN = ModelChoice(checkpoint=CHECKPOINT, motion_module=MOTION_MODULE, loras=(WeightedModel(name=LORA, weight=0.6),))


def write_folder_library(root: Path) -> Path:
    """The library: an SD 1.5 diffusers folder, a MotionAdapter folder and a kohya LoRA made on the same
    tiny SD 1.5-shaped parts (``model_files.sd15_parts``), in the folders artists use."""
    from anyi2v.daemon.pipeline.models import byte_tokenizer
    from tests.daemon.model_files import LIBRARY_TEXT_TARGETS, LIBRARY_UNET_TARGETS, kohya_lora, sd15_parts

    parts = sd15_parts(seed=0)
    unet, adapter, vae, text = parts
    checkpoint = root / CHECKPOINT
    (checkpoint / "model_index.json").parent.mkdir(parents=True)
    (checkpoint / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    unet.save_pretrained(checkpoint / "unet")
    vae.save_pretrained(checkpoint / "vae")
    text.save_pretrained(checkpoint / "text_encoder")
    byte_tokenizer(checkpoint / "tokenizer")
    adapter.save_pretrained(root / MOTION_MODULE)
    (root / "loras").mkdir()
    kohya_lora(root / f"{LORA}.safetensors", parts, rank=2, alpha=1.0, seed=0,
               unet_targets=LIBRARY_UNET_TARGETS, text_targets=LIBRARY_TEXT_TARGETS)  # fmt: skip
    return root


def write_small_shot(folder: Path) -> Path:
    """The daemon tests' tiny shot (64x64, 4 frames, 2 steps, the shortest method settings) on an image."""
    folder.mkdir(parents=True)
    Image.fromarray(condition_image()).save(folder / "depth.png")
    document = shot_document(frames=4, steps=2)
    document["conditions"][0]["source"]["path"] = "depth.png"
    path = folder / "small.json"
    path.write_text(json.dumps(document))
    return path


def pick(combo: Any, value: str) -> None:
    """Choose the item whose data is ``value``, as a user does."""
    index = combo.findData(value)
    assert index >= 0, f"{value!r} is not offered: {[combo.itemData(i) for i in range(combo.count())]}"
    combo.setCurrentIndex(index)
    combo.activated.emit(index)


def test_a_job_runs_on_a_checkpoint_motion_module_and_lora_chosen_by_name(qtbot, window, studio_home, tmp_path):
    write_folder_library(studio_home / "data" / "anyi2v" / "models")  # the daemon's default models folder
    window.jobs.connect_daemon(ConnectionSettings(mode="local", model="tiny-random", device="cpu"))
    assert window.documents.open_path(write_small_shot(tmp_path / "shots")), window.last_error
    section = window.settings.model_section
    qtbot.waitUntil(lambda: section.lists["loras"].add_combo.findData(LORA) > 0, timeout=LISTED_MS)

    pick(section.combos["checkpoint"], CHECKPOINT)
    pick(section.combos["motion_module"], MOTION_MODULE)
    pick(section.lists["loras"].add_combo, LORA)
    weight = section.lists["loras"].rows[0].spin
    weight.setValue(0.6)
    weight.editingFinished.emit()
    assert window.shot.model == CHOSEN

    qtbot.waitUntil(lambda: window.jobs.connection_status.state == "connected", timeout=LISTED_MS)
    window.generate()
    assert window.jobs.job is not None, window.last_error
    qtbot.waitUntil(lambda: window.jobs.job.finished, timeout=JOB_MS)
    assert window.jobs.job.state == "done", window.jobs.job.status_line
    assert window.jobs.job_shot.model == CHOSEN  # what was sent

    qtbot.waitUntil(lambda: window.results.result_folder is not None, timeout=60_000)  # fetched after the last event
    made = json.loads((window.results.result_folder / "shot.json").read_text())
    assert made["model"]["checkpoint"] == CHECKPOINT
    assert made["model"]["motion_module"] == MOTION_MODULE
    assert made["model"]["loras"] == [{"name": LORA, "weight": 0.6}]
    assert len(window.player.frames) == 4

    # asked again after the job's final event: the status bar names the daemon's loaded checkpoint and LoRA
    qtbot.waitUntil(lambda: "tiny_sd15" in window.loaded_label.text(), timeout=60_000)
    assert "tiny_motion" in window.loaded_label.text()
    assert "LoRA detail_tweaker ×0.6" in window.loaded_label.text()
