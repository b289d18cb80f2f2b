"""The renderer's passes are a shot's condition kinds (``shared.modalities``): a scene layer renders the
pass of its name, and one written with an older name renders and writes the current name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from anyi2v.cli import main
from anyi2v.render.condition import PASSES
from anyi2v.shared.modalities import MODALITY_ALIASES, SCENE_MODALITIES
from tests.conftest import EXAMPLES


def test_the_passes_are_the_scene_kinds() -> None:
    assert PASSES == SCENE_MODALITIES


@pytest.mark.parametrize(
    ("example", "old"),
    [("car_depth.json", "mesh_render"), ("car_depth.json", "canny"), ("statue_point_cloud.json", "point_cloud_render")],
)
def test_a_scene_layer_with_an_old_name_renders_under_the_new_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], example: str, old: str
) -> None:
    shots = tmp_path / "shots"
    shutil.copytree(EXAMPLES, shots)
    document = json.loads((shots / example).read_text(encoding="utf-8"))
    document["conditions"] = [{"source": {"kind": "scene"}, "modality": old}]
    (shots / "old.json").write_text(json.dumps(document), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["render", str(shots / "old.json"), "--out", str(out)]) == 0, capsys.readouterr().err
    assert (out / f"layer-0-{MODALITY_ALIASES[old]}.png").is_file()
    assert not (out / f"layer-0-{old}.png").exists()


def test_a_scene_layer_of_an_image_only_kind_names_the_renderable_kinds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shots = tmp_path / "shots"
    shutil.copytree(EXAMPLES, shots)
    document = json.loads((shots / "car_depth.json").read_text(encoding="utf-8"))
    document["conditions"] = [{"source": {"kind": "scene"}, "modality": "skeleton"}]
    (shots / "skeleton.json").write_text(json.dumps(document), encoding="utf-8")
    assert main(["render", str(shots / "skeleton.json"), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "conditions[0].modality: 'skeleton' cannot be rendered from a scene" in error
    assert ", ".join(SCENE_MODALITIES) in error
