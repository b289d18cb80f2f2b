"""Issue 19, item 11: render work is bounded. Zero-area and duplicate triangles are dropped when a mesh
is loaded (in the loader process, under its time limit), and a ray cast that runs past its budget stops
with a clear error instead of running on (100,000 coincident triangles took 58.6 s)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from anyi2v.cli import main
from anyi2v.render.assets import EmptyAsset, load_asset, read_asset
from anyi2v.render.camera import Camera
from anyi2v.render.condition import RenderError, SceneView, fit_distance
from anyi2v.render.geometry import Asset, MeshObject
from anyi2v.render.raycast import MeshScene
from tests.render.malformed import binary_ply

TRIANGLE = np.array([[-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.0, 0.5, 0.0]])
CAMERA = Camera.orbit(30.0, 20.0, fit_distance(50.0), fov_deg=50.0)


def stacked_triangles(count: int, step: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` copies of one triangle, each with its own vertices, ``step`` apart along z."""
    vertices = np.tile(TRIANGLE, (count, 1))
    vertices[:, 2] = np.repeat(np.arange(count) * step, 3)
    return vertices, np.arange(3 * count).reshape(count, 3)


def test_coincident_triangles_are_dropped_at_load_and_counted(tmp_path: Path) -> None:
    vertices, faces = stacked_triangles(100_000)
    faces = faces.copy()
    faces[1::2] = faces[1::2, ::-1]  # half of them wound the other way: still the same triangle
    path = tmp_path / "coincident.ply"
    path.write_bytes(binary_ply(vertices.astype(np.float32), faces))
    asset = load_asset(path)
    (mesh,) = asset.objects
    assert isinstance(mesh, MeshObject)
    assert len(mesh.faces) == 1
    assert any("dropped 99999 duplicate" in warning for warning in asset.warnings), asset.warnings
    started = time.perf_counter()
    assert main(["render", str(path), "--out", str(tmp_path / "out.png")]) == 0
    assert time.perf_counter() - started < 20.0  # was 58.6 s in ray casting alone


def test_zero_area_triangles_are_dropped_and_a_mesh_of_only_them_refused(tmp_path: Path) -> None:
    vertices = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 0, 0], [0, 0, 1]], dtype=np.float32)
    faces = np.array([[0, 1, 2], [0, 1, 3], [4, 4, 4], [1, 2, 2]])  # a line, a point and a repeated corner
    path = tmp_path / "slivers.ply"
    path.write_bytes(binary_ply(vertices, faces))
    asset = read_asset(path)
    assert asset.objects[0].faces.tolist() == [[0, 1, 2]]  # type: ignore[union-attr]
    assert asset.warnings == ("slivers.ply: the mesh: dropped 3 zero-area triangles of its 4",)
    path.write_bytes(binary_ply(vertices, faces[1:]))
    with pytest.raises(EmptyAsset, match=r"slivers\.ply: the mesh has no triangle of non-zero area"):
        read_asset(path)


def test_a_clean_mesh_is_loaded_unchanged(tmp_path: Path) -> None:
    import trimesh

    trimesh.creation.icosphere(subdivisions=3).export(tmp_path / "ball.ply")
    asset = read_asset(tmp_path / "ball.ply")
    assert asset.warnings == ()
    assert len(asset.objects[0].faces) == 1280  # type: ignore[union-attr]


def test_a_cast_past_its_budget_stops_with_a_clear_error() -> None:
    vertices, faces = stacked_triangles(20_000, step=1e-4)  # overlapping, none duplicate: a BVH cannot split them
    asset = Asset("stack.ply", (MeshObject("stack", vertices, faces),))
    scene = MeshScene(asset.meshes, budget_s=0.2)
    view = SceneView(asset, CAMERA, 512, 512, mesh_scene=scene)
    started = time.perf_counter()
    with pytest.raises(RenderError, match=r"ray casting stack\.ply took longer than 0\.2 s .*20000 triangles"):
        view.render("depth")
    assert time.perf_counter() - started < 10.0


def test_casting_in_bands_gives_what_one_cast_gives() -> None:
    import open3d as o3d

    rng = np.random.default_rng(1)
    vertices = rng.random((300, 3)) - 0.5
    faces = rng.integers(0, 300, (400, 3))
    mesh = MeshObject("noise", vertices, faces)
    banded = MeshScene([mesh]).cast(CAMERA, 200, 96)
    whole = o3d.t.geometry.RaycastingScene()
    whole.add_triangles(o3d.core.Tensor(vertices.astype(np.float32)), o3d.core.Tensor(faces.astype(np.uint32)))
    rays = whole.create_rays_pinhole(
        o3d.core.Tensor(CAMERA.intrinsic(200, 96)), o3d.core.Tensor(CAMERA.extrinsic()), 200, 96
    )
    t_hit = whole.cast_rays(rays)["t_hit"].numpy()
    assert np.array_equal(banded.depth, np.where(np.isfinite(t_hit), t_hit, np.inf))
    assert np.array_equal(
        banded.triangle,
        np.where(np.isfinite(t_hit), whole.cast_rays(rays)["primitive_ids"].numpy().astype(np.int64), -1),
    )
