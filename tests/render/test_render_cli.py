"""`anyi2v render` on every example shot and asset: the images exist, have the shot's size, show a
foreground and stay in range; the boxes name the scene's objects."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anyi2v.cli import main
from anyi2v.shared.document import load_shot
from tests.conftest import EXAMPLES

SHOTS = sorted(EXAMPLES.glob("*.json"))
ASSETS = sorted((EXAMPLES / "assets").iterdir())


def test_examples_include_meshes_a_point_cloud_and_scene_shots() -> None:
    suffixes = [path.suffix for path in ASSETS]
    assert suffixes.count(".ply") >= 1
    assert len([s for s in suffixes if s in {".glb", ".obj", ".stl", ".off"}]) >= 2
    assert sum(load_shot(path).scene is not None for path in SHOTS) >= 2


@pytest.mark.parametrize("shot_path", SHOTS, ids=lambda path: path.stem)
def test_render_every_example_shot(shot_path: Path, tmp_path: Path) -> None:
    shot = load_shot(shot_path)
    assert main(["render", str(shot_path), "--out", str(tmp_path)]) == 0
    condition = np.asarray(Image.open(tmp_path / "condition.png"))
    assert condition.shape == (shot.output.height, shot.output.width, 3)
    assert condition.dtype == np.uint8
    assert condition.std() > 5  # structure, not a flat image
    if shot.scene is not None:
        foreground = condition.max(axis=2) > 0
        assert 0.01 < foreground.mean() < 0.99  # the scene is drawn over an empty background
    for index, layer in enumerate(shot.conditions):
        image = np.asarray(Image.open(tmp_path / f"layer-{index}-{layer.modality}.png"))
        assert image.shape == condition.shape
        assert image.max() > 0
    boxes = json.loads((tmp_path / "boxes.json").read_text())
    assert (boxes["width"], boxes["height"]) == (shot.output.width, shot.output.height)
    if shot.scene is not None:
        assert boxes["objects"]
        for box in boxes["objects"].values():
            assert box[0] < box[2]
            assert box[1] < box[3]
    tracks = json.loads((tmp_path / "tracks.json").read_text())
    expected = [track.id for track in shot.tracks]
    expected += list(shot.scene.derived_track_ids) if shot.scene is not None else []
    assert [track["id"] for track in tracks["tracks"]] == expected
    for track in tracks["tracks"]:
        sampled = np.asarray(track["boxes"])
        assert sampled.shape == (shot.output.n_frames, 4)
        assert np.all(sampled[:, 0] < sampled[:, 2])
        assert np.all(sampled[:, 1] < sampled[:, 3])


def test_3d_directed_car_and_floor_move_apart_as_the_camera_orbits(tmp_path: Path) -> None:
    assert main(["render", str(EXAMPLES / "car_orbit_drive.json"), "--out", str(tmp_path)]) == 0
    tracks = {track["id"]: track for track in json.loads((tmp_path / "tracks.json").read_text())["tracks"]}
    car, floor = np.asarray(tracks["car"]["boxes"]), np.asarray(tracks["floor"]["boxes"])
    assert tracks["car"]["role"] == "object"
    assert tracks["floor"]["role"] == "anchor"
    assert len(tracks["car"]["query_points"]) == 1
    car_x = (car[:, 0] + car[:, 2]) / 2
    floor_y = (floor[:, 1] + floor[:, 3]) / 2
    assert car_x[-1] - car_x[0] > 0.1  # the car drives right across the frame
    assert floor_y[-1] < floor_y[0] - 0.05  # the camera rises and turns: the floor patch moves up the frame


def test_mixed_modality_draws_edges_only_on_the_car(tmp_path: Path) -> None:
    assert main(["render", str(EXAMPLES / "car_mixed_modality.json"), "--out", str(tmp_path)]) == 0
    depth = np.asarray(Image.open(tmp_path / "layer-0-depth.png")).astype(int)
    composed = np.asarray(Image.open(tmp_path / "condition.png")).astype(int)
    body_box = json.loads((tmp_path / "boxes.json").read_text())["objects"]["body"]
    height, width = composed.shape[:2]
    changed = np.any(composed != depth, axis=2)
    assert changed.any()
    rows, columns = np.nonzero(changed)
    # Every changed pixel lies on the car (body or cabin), never on the ground in front of it.
    assert rows.max() <= body_box[3] * height + 1
    assert columns.min() >= body_box[0] * width - 1
    assert columns.max() <= body_box[2] * width + 1


@pytest.mark.parametrize("asset", ASSETS, ids=lambda path: path.name)
@pytest.mark.parametrize("render_pass", ["depth", "silhouette", "segmentation"])
def test_render_every_example_asset(asset: Path, render_pass: str, tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    assert main(["render", str(asset), "--pass", render_pass, "--size", "320x256", "--out", str(out)]) == 0
    image = np.asarray(Image.open(out))
    assert image.shape == (256, 320, 3)
    assert 0.01 < (image.max(axis=2) > 0).mean() < 0.99


def test_render_reports_bad_input_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.obj"
    broken.write_text("v 0 0 0\nv 1 0 0\nf 1 2 7\n")
    assert main(["render", str(broken), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "broken.obj" in err
    assert "Traceback" not in err
    point_cloud = EXAMPLES / "assets" / "statue_points.ply"
    assert main(["render", str(point_cloud), "--pass", "normal", "--out", str(tmp_path / "n.png")]) == 2
    assert "needs a mesh" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["render", str(point_cloud), "--size", "500x500", "--out", str(tmp_path / "n.png")])


def test_a_silhouette_layer_is_white_on_the_objects_and_black_elsewhere(tmp_path: Path) -> None:
    from anyi2v.render.shot_conditions import render_shot_conditions
    from anyi2v.shared.document import parse_shot

    document = json.loads((EXAMPLES / "demo.json").read_text())
    document["conditions"] = [{"source": {"kind": "scene"}, "modality": "silhouette"}]
    conditions = render_shot_conditions(parse_shot(document), EXAMPLES)
    values = np.unique(np.round(conditions.image, 6))
    assert values.tolist() == [0.0, 1.0]
    assert 0.05 < conditions.image[..., 0].mean() < 0.6  # the torus, not the whole frame


def test_a_16_bit_depth_image_keeps_its_range(tmp_path: Path) -> None:
    from anyi2v.render.shot_conditions import read_image

    gradient = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (16, 1))
    Image.fromarray(gradient).save(tmp_path / "depth16.png")
    assert Image.open(tmp_path / "depth16.png").mode.startswith("I")
    image = read_image(tmp_path / "depth16.png", 64, 16, where="conditions[0]")
    row = image[8, :, 0]
    assert row[0] < 0.02
    assert row[-1] > 0.98
    assert 0.4 < row[32] < 0.6  # a ramp, not clipped to white
