"""Issue 19, item 20: ``anyi2v render ASSET`` prints the camera it chose as JSON that pastes into a
shot's ``scene.camera``, and that shot renders the same image (the camera lives in the normalised
scene: Y up, centred, largest extent 1)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anyi2v.cli import main
from anyi2v.shared.shot import Camera
from tests.conftest import EXAMPLES

PREFIX = "scene.camera: "


def _printed_camera(out: str) -> dict[str, object]:
    lines = [line for line in out.splitlines() if line.startswith(PREFIX)]
    assert len(lines) == 1, out
    camera = json.loads(lines[0][len(PREFIX) :])
    assert isinstance(camera, dict)
    return camera


def test_render_asset_prints_a_camera_a_shot_accepts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    asset = EXAMPLES / "assets" / "vase.obj"
    assert (
        main(
            [
                "render",
                str(asset),
                "--azimuth",
                "40",
                "--elevation",
                "15",
                "--fov",
                "45",
                "--out",
                str(tmp_path / "a.png"),
            ]
        )
        == 0
    )
    camera = _printed_camera(capsys.readouterr().out)
    assert set(camera) == {"eye", "target", "up", "fov_deg"}
    parsed = Camera.model_validate_json(json.dumps(camera))  # as the shot file would carry it
    assert parsed.fov_deg == 45.0
    assert parsed.target == (0.0, 0.0, 0.0)


def test_the_printed_camera_pasted_into_a_shot_renders_the_same_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(EXAMPLES / "assets" / "vase.obj", tmp_path / "vase.obj")
    assert main(["render", str(tmp_path / "vase.obj"), "--size", "128x96", "--out", str(tmp_path / "asset.png")]) == 0
    camera = _printed_camera(capsys.readouterr().out)
    shot = {
        "schema_version": 3,
        "name": "pasted camera",
        "prompt": "a vase",
        "output": {"width": 128, "height": 96, "n_frames": 8, "fps": 8},
        "scene": {"path": "vase.obj", "camera": camera},
        "conditions": [{"source": {"kind": "scene"}, "modality": "depth"}],
    }
    (tmp_path / "shot.json").write_text(json.dumps(shot))
    assert main(["render", str(tmp_path / "shot.json"), "--out", str(tmp_path / "shot")]) == 0
    from_asset = np.asarray(Image.open(tmp_path / "asset.png")).astype(int)
    from_shot = np.asarray(Image.open(tmp_path / "shot" / "layer-0-depth.png")).astype(int)
    assert from_asset.shape == from_shot.shape
    assert (np.abs(from_asset - from_shot) > 1).mean() < 0.001  # the eye is printed to 6 decimals
