"""3D-aware tracks: camera paths, object poses and anchors projected to 2D boxes."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from anyi2v.render.condition import RenderError, SceneView
from anyi2v.render.geometry import Asset, MeshObject
from anyi2v.render.motion import camera_path, derive_tracks, plan_scene, pose_matrices
from anyi2v.shared.document import parse_shot
from anyi2v.shared.errors import ShotError
from anyi2v.shared.motion import ObjectMotion
from anyi2v.shared.shot import SCHEMA_VERSION, Scene
from anyi2v.shared.tracks import sample_track

N_FRAMES = 16
WIDTH, HEIGHT = 256, 192


def box_mesh(name: str, extents: tuple[float, float, float], centre: tuple[float, float, float]) -> MeshObject:
    shape = trimesh.creation.box(extents=extents)
    shape.apply_translation(centre)
    return MeshObject(name, np.asarray(shape.vertices, dtype=np.float64), np.asarray(shape.faces, dtype=np.int64))


def scene(**fields: Any) -> Scene:
    data: dict[str, Any] = {"path": "unused.glb", "camera": {"eye": [0.0, 0.6, 2.2], "target": [0.0, 0.0, 0.0]}}
    data.update(fields)
    return Scene.model_validate_json(json.dumps(data), context={"n_frames": N_FRAMES})


ASSET = Asset(
    "test",
    (
        box_mesh("ground", (2.0, 0.05, 2.0), (0.0, -0.3, 0.0)),
        box_mesh("crate", (0.3, 0.3, 0.3), (-0.2, -0.125, 0.0)),
        box_mesh("post", (0.1, 0.5, 0.1), (0.5, 0.0, -0.5)),
    ),
)


def silhouette_box(view: SceneView, name: str) -> np.ndarray:
    mask = view.object_mask(name)
    rows, cols = np.nonzero(mask)
    return np.array([cols.min() / view.width, rows.min() / view.height, (cols.max() + 1) / view.width,
                     (rows.max() + 1) / view.height])  # fmt: skip


def test_derived_boxes_match_the_rendered_silhouette_at_every_frame() -> None:
    moving = scene(
        camera_path=[{"frame": 15, "eye": [1.2, 0.9, 1.6], "target": [0.1, 0.0, 0.0], "fov_deg": 42}],
        motions=[
            {
                "objects": ["crate"],
                "track": "crate",
                "keyframes": [
                    {"frame": 0},
                    {"frame": 15, "position": [0.5, 0.1, 0.2], "rotation_deg": [0, 60, 10], "scale": 1.3},
                ],
            }
        ],
    )
    plan = plan_scene(moving, ASSET, N_FRAMES)
    first = SceneView(plan.posed(ASSET, 0), plan.cameras[0], WIDTH, HEIGHT)
    (track,) = derive_tracks(moving, ASSET, plan, first, N_FRAMES)
    boxes = sample_track(track, N_FRAMES)
    pixel = np.array([1 / WIDTH, 1 / HEIGHT, 1 / WIDTH, 1 / HEIGHT])
    for frame in (0, 5, 11, 15):
        # The crate is never hidden behind the post or the ground here, so its silhouette is its projection.
        view = SceneView(plan.posed(ASSET, frame), plan.cameras[frame], WIDTH, HEIGHT)
        assert np.all(np.abs(boxes[frame] - silhouette_box(view, "crate")) <= 1.5 * pixel), frame
    assert np.abs(boxes[15] - boxes[0]).max() > 0.05  # it did move
    (query,) = track.query_points
    assert first.object_mask("crate")[int(query[1] * HEIGHT), int(query[0] * WIDTH)]


def test_camera_keys_orbit_around_their_target_not_through_it() -> None:
    orbit = scene(
        camera={"eye": [0.0, 0.0, 2.0], "target": [0.0, 0.0, 0.0]},
        camera_path=[{"frame": 10, "eye": [2.0, 0.0, 0.0], "target": [0.0, 0.0, 0.0], "interpolation": "linear"}],
        camera_interpolation="linear",
    )
    cameras = camera_path(orbit, N_FRAMES)
    distances = [np.linalg.norm(camera.eye) for camera in cameras]
    np.testing.assert_allclose(distances, 2.0, atol=1e-9)  # on the circle, never the chord
    halfway = cameras[5].eye
    assert math.degrees(math.atan2(halfway[0], halfway[2])) == pytest.approx(45.0, abs=1e-6)
    np.testing.assert_allclose(cameras[15].eye, (2.0, 0.0, 0.0), atol=1e-9)  # held after the last key


def test_azimuth_takes_the_shorter_way_round() -> None:
    turn = scene(
        camera={"eye": [math.sin(math.radians(170)) * 2, 0.0, math.cos(math.radians(170)) * 2]},
        camera_path=[{"frame": 2, "eye": [math.sin(math.radians(-170)) * 2, 0.0, math.cos(math.radians(-170)) * 2]}],
        camera_interpolation="linear",
    )
    middle = camera_path(turn, 3)[1].eye
    assert middle[2] == pytest.approx(-2.0, abs=1e-9)  # through 180 degrees, not back through 0


def test_dolly_in_grows_an_anchor_and_a_still_camera_holds_it() -> None:
    still = scene(anchors=[{"track": "post", "objects": ["post"]}])
    plan = plan_scene(still, ASSET, N_FRAMES)
    first = SceneView(plan.posed(ASSET, 0), plan.cameras[0], WIDTH, HEIGHT)
    (anchor,) = derive_tracks(still, ASSET, plan, first, N_FRAMES)
    assert anchor.role == "anchor"
    assert anchor.query_points == ()
    held = sample_track(anchor, N_FRAMES)
    np.testing.assert_allclose(held, held[0:1].repeat(N_FRAMES, axis=0))

    dolly = scene(
        camera_path=[{"frame": 15, "eye": [0.0, 0.3, 1.1], "target": [0.0, 0.0, 0.0]}],
        anchors=[{"track": "patch", "bounds": [[0.3, -0.28, 0.2], [0.6, -0.27, 0.5]]}],
    )
    plan = plan_scene(dolly, ASSET, N_FRAMES)
    first = SceneView(plan.posed(ASSET, 0), plan.cameras[0], WIDTH, HEIGHT)
    (patch,) = derive_tracks(dolly, ASSET, plan, first, N_FRAMES)
    boxes = sample_track(patch, N_FRAMES)
    widths = boxes[:, 2] - boxes[:, 0]
    assert np.all(np.diff(widths) >= -1e-9)
    assert widths[-1] > 1.5 * widths[0]


def test_pose_rotates_and_scales_about_the_pivot() -> None:
    motion = ObjectMotion.model_validate_json(
        json.dumps(
            {
                "objects": ["x"],
                "track": "x",
                "keyframes": [
                    {"frame": 0, "scale": 1.0, "interpolation": "linear"},
                    {"frame": 4, "position": [1.0, 0.0, 0.0], "rotation_deg": [0.0, 90.0, 0.0], "scale": 4.0},
                ],
            }
        )
    )
    pivot = np.array([0.5, 0.0, 0.0])
    matrices = pose_matrices(motion, pivot, 5)
    np.testing.assert_allclose(matrices[0], np.eye(4), atol=1e-12)
    np.testing.assert_allclose(matrices[4][:3, 3] + matrices[4][:3, :3] @ pivot, pivot + np.array([1.0, 0.0, 0.0]))
    expected = Rotation.from_euler("y", 90, degrees=True).as_matrix() * 4.0
    np.testing.assert_allclose(matrices[4][:3, :3], expected, atol=1e-12)
    halfway_scale = np.cbrt(np.linalg.det(matrices[2][:3, :3]))
    assert halfway_scale == pytest.approx(2.0)  # scale moves geometrically: 1 -> 2 -> 4


def test_unknown_objects_and_objects_out_of_view_are_named() -> None:
    missing = scene(motions=[{"objects": ["crate", "barrel"], "track": "t", "keyframes": [{"frame": 0}]}])
    with pytest.raises(RenderError, match=r"scene.motions\[0\]: no object named 'barrel'.*'ground', 'crate', 'post'"):
        plan_scene(missing, ASSET, N_FRAMES)
    behind = scene(
        motions=[{"objects": ["crate"], "track": "t", "keyframes": [{"frame": 0, "position": [0.0, 0.0, 5.0]}]}]
    )
    plan = plan_scene(behind, ASSET, N_FRAMES)
    first = SceneView(plan.posed(ASSET, 0), plan.cameras[0], WIDTH, HEIGHT)
    with pytest.raises(RenderError, match=r"scene.motions\[0\] \(track 't'\): not in view at frame 0"):
        derive_tracks(behind, ASSET, plan, first, N_FRAMES)


def shot_with_scene(scene_fields: dict[str, Any], tracks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "schema_version": 3,
        "prompt": "p",
        "output": {"n_frames": N_FRAMES},
        "scene": {"path": "a.glb", "camera": {"eye": [0, 0, 2]}, **scene_fields},
        "conditions": [{"source": {"kind": "scene"}, "modality": "depth"}],
        "tracks": tracks or [],
    }


KEY = [{"frame": 0}]


@pytest.mark.parametrize(
    ("scene_fields", "tracks", "message"),
    [
        (
            {
                "motions": [
                    {"objects": ["a"], "track": "t1", "keyframes": KEY},
                    {"objects": ["a"], "track": "t2", "keyframes": KEY},
                ]
            },
            None,
            "motions[0] and motions[1] both move object 'a'",
        ),
        (
            {
                "motions": [{"objects": ["a"], "track": "t1", "keyframes": KEY}],
                "anchors": [{"track": "t2", "objects": ["a"]}],
            },
            None,
            "anchors[0] is on object 'a', which motions[0] moves",
        ),
        (
            {"motions": [{"objects": ["a"], "track": "car", "keyframes": KEY}]},
            [{"id": "car", "keyframes": [{"frame": 0, "box": [0.1, 0.1, 0.2, 0.2]}]}],
            "tracks[0] has id 'car', which the scene's 3D motion already produces",
        ),
        ({"camera_path": [{"frame": 16, "eye": [1, 0, 1]}]}, None, "frame 16 is outside the clip"),
        ({"camera_path": [{"frame": 0, "eye": [1, 0, 1]}]}, None, "greater than or equal to 1"),
        ({"camera_path": [{"frame": 3, "eye": [1, 0, 1], "target": [1, 0, 1]}]}, None, "target equals eye"),
        ({"anchors": [{"track": "a", "objects": ["x"], "bounds": [[0, 0, 0], [1, 1, 1]]}]}, None, "exactly one"),
        ({"anchors": [{"track": "a", "bounds": [[0, 0, 0], [1, -1, 1]]}]}, None, "min corner's y (0.0) must be below"),
        (
            {"motions": [{"objects": ["a"], "track": "t", "keyframes": [{"frame": 0, "scale": 0}]}]},
            None,
            "greater than 0",
        ),
        (
            {"motions": [{"objects": ["a"], "track": "t", "keyframes": [{"frame": 2}, {"frame": 2}]}]},
            None,
            "both at frame 2",
        ),
    ],
)
def test_scene_motion_mistakes_are_reported(
    scene_fields: dict[str, Any], tracks: list[dict[str, Any]] | None, message: str
) -> None:
    with pytest.raises(ShotError) as caught:
        parse_shot(shot_with_scene(scene_fields, tracks), source="shot.json")
    assert message in str(caught.value)


def test_version_2_shots_upgrade_and_keyframes_are_sorted() -> None:
    document = shot_with_scene(
        {
            "camera_path": [{"frame": 9, "eye": [1, 0, 1]}, {"frame": 4, "eye": [2, 0, 1]}],
            "motions": [{"objects": ["a"], "track": "t", "keyframes": [{"frame": 7}, {"frame": 1}]}],
        }
    )
    shot = parse_shot(document, source="shot.json")
    assert shot.scene is not None
    assert [key.frame for key in shot.scene.camera_path] == [4, 9]
    assert [key.frame for key in shot.scene.motions[0].keyframes] == [1, 7]
    old = {**shot_with_scene({}), "schema_version": 2}
    assert parse_shot(old, source="old.json").schema_version == SCHEMA_VERSION  # the current version
