"""Issue 19, item 13: real scan formats. An organized PCD's NaN points are dropped and counted (a
warning the caller shows); PLY triangle strips are faces; ``--up`` and a shot's ``up_axis`` take -y
and -z (camera-frame clouds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from anyi2v.cli import main
from anyi2v.render.assets import NonFiniteAsset, load_asset, normalize, read_asset
from anyi2v.render.geometry import Asset, MeshObject, PointObject
from anyi2v.shared.document import parse_shot


def organized_pcd(width: int, height: int, points: np.ndarray) -> bytes:
    """A binary PCD of width x height points (an organized cloud: a depth camera's grid)."""
    head = (
        "# .PCD v0.7\nVERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\n"
        f"WIDTH {width}\nHEIGHT {height}\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {width * height}\nDATA binary\n"
    )
    return head.encode() + np.asarray(points, dtype="<f4").tobytes()


def _grid_with_holes() -> np.ndarray:
    grid = np.array([[x, y, 1.0 + 0.1 * x] for y in range(3) for x in range(4)], dtype=np.float32)
    grid[[1, 5, 6, 11]] = np.nan  # four pixels the sensor saw nothing at
    return grid


def test_an_organized_pcd_with_nan_points_loads_without_them_and_says_how_many(tmp_path: Path) -> None:
    path = tmp_path / "scan.pcd"
    path.write_bytes(organized_pcd(4, 3, _grid_with_holes()))
    asset = load_asset(path)  # through the child process: the warning survives the trip
    (cloud,) = asset.objects
    assert isinstance(cloud, PointObject)
    assert len(cloud.points) == 8
    assert np.isfinite(cloud.points).all()
    assert len(asset.warnings) == 1
    assert "scan.pcd" in asset.warnings[0]
    assert "dropped 4 of its 12 points" in asset.warnings[0]


def test_a_pcd_with_no_finite_point_is_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "blind.pcd"
    path.write_bytes(organized_pcd(2, 2, np.full((4, 3), np.nan)))
    with pytest.raises(NonFiniteAsset, match="no finite points: all 4 have NaN or infinite coordinates"):
        read_asset(path)


def test_meshes_with_a_nan_vertex_are_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv nan 1 0\nf 1 2 3\n")
    with pytest.raises(NonFiniteAsset, match="NaN or infinite coordinates at 1 of its 3 vertices"):
        read_asset(path)


def test_render_prints_the_dropped_points_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "scan.pcd"
    path.write_bytes(organized_pcd(4, 3, _grid_with_holes()))
    assert main(["render", str(path), "--pass", "splat", "--out", str(tmp_path / "scan.png")]) == 0
    err = capsys.readouterr().err
    assert "warning: scan.pcd: the point cloud: dropped 4 of its 12 points" in err


STRIP_PLY = (
    "ply\nformat ascii 1.0\nelement vertex 6\nproperty float x\nproperty float y\nproperty float z\n"
    "element tristrips 1\nproperty list int int vertex_indices\nend_header\n"
    "0 0 0\n0 1 0\n1 0 0\n1 1 0\n2 0 0\n2 1 0\n"
    "9 0 1 2 3 -1 2 3 4 5\n"
)


def test_ply_triangle_strips_are_read_as_faces(tmp_path: Path) -> None:
    path = tmp_path / "strip.ply"
    path.write_text(STRIP_PLY)
    (mesh,) = read_asset(path).objects
    assert isinstance(mesh, MeshObject)
    # strip 0 1 2 3 -> (0 1 2), (2 1 3); restart; strip 2 3 4 5 -> (2 3 4), (4 3 5)
    assert mesh.faces.tolist() == [[0, 1, 2], [2, 1, 3], [2, 3, 4], [4, 3, 5]]
    normals = np.cross(*(mesh.vertices[mesh.faces[:, k]] - mesh.vertices[mesh.faces[:, 0]] for k in (1, 2)))
    assert len({np.sign(z) for z in normals[:, 2]}) == 1  # one consistent winding


def test_ply_strips_out_of_range_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "strip.ply"
    path.write_text(STRIP_PLY.replace("9 0 1 2 3 -1 2 3 4 5", "9 0 1 2 3 -1 2 3 4 9"))
    with pytest.raises(Exception, match="face index 9, out of range for 6 vertices"):
        read_asset(path)


CAMERA_FRAME = np.array([[0.0, -2.0, 5.0], [1.0, 0.0, 6.0], [0.0, 0.0, 5.0]])  # y down, z forward


@pytest.mark.parametrize(
    ("up", "up_column", "sign"),
    [("y", 1, 1.0), ("z", 2, 1.0), ("-y", 1, -1.0), ("-z", 2, -1.0)],
)
def test_each_up_axis_becomes_plus_y(up: str, up_column: int, sign: float) -> None:
    fitted = normalize(Asset("c", (PointObject("p", CAMERA_FRAME),)), up_axis=up).objects[0].points  # type: ignore[arg-type]
    order = np.argsort(sign * CAMERA_FRAME[:, up_column], kind="stable")
    assert np.array_equal(np.argsort(fitted[:, 1], kind="stable"), order)
    assert np.isclose(np.linalg.norm(fitted[0] - fitted[2]), np.linalg.norm(fitted[0] - fitted[1]) * 2 / np.sqrt(6))


def test_the_cli_takes_minus_y_for_camera_frame_clouds(tmp_path: Path) -> None:
    path = tmp_path / "cloud.npy"
    np.save(path, np.random.default_rng(0).random((200, 3)))
    assert main(["render", str(path), "--pass", "splat", "--up=-y", "--out", str(tmp_path / "c.png")]) == 0
    assert main(["render", str(path), "--pass", "splat", "--up=-z", "--out", str(tmp_path / "d.png")]) == 0


def test_a_shot_may_say_minus_y_and_old_shots_stay_valid() -> None:
    shot = {
        "schema_version": 3,
        "name": "scan",
        "prompt": "a scan",
        "output": {"width": 64, "height": 64, "n_frames": 8, "fps": 8},
        "scene": {"path": "scan.pcd", "up_axis": "-y", "camera": {"eye": [0.0, 0.0, 2.0]}},
        "conditions": [{"source": {"kind": "scene"}, "modality": "depth"}],
    }
    assert parse_shot(shot).scene.up_axis == "-y"  # type: ignore[union-attr]
    for old in ("y", "z"):
        assert parse_shot(json.loads(json.dumps(shot).replace('"-y"', f'"{old}"'))).scene.up_axis == old  # type: ignore[union-attr]
