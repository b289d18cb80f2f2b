"""Loading assets: good files of every format, the malformed corpus, and the child-process loader."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import numpy as np
import open3d as o3d
import pytest
import trimesh
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from anyi2v.render.assets import (
    AssetError,
    AssetTooLarge,
    BadFaceIndices,
    EmptyAsset,
    LoaderCrashed,
    LoadLimits,
    LoadTimeout,
    NonFiniteAsset,
    PathEscapes,
    Reader,
    UnreadableAsset,
    UpAxis,
    load_asset,
    normalize,
    read_asset,
)
from anyi2v.render.geometry import Asset, MeshObject, PointObject
from tests.render import malformed

BOX_EXTENTS = (1.0, 2.0, 3.0)
CLOUD = np.random.default_rng(3).random((50, 3)) * [2.0, 1.0, 4.0]
CLOUD_COLORS = np.random.default_rng(4).random((50, 3))
MESH_FILES = ["box.obj", "box.ply", "box.stl", "box.off", "box.glb"]


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of valid files written with trimesh, Open3D and numpy."""
    folder = tmp_path_factory.mktemp("good")
    box = trimesh.creation.box(extents=BOX_EXTENTS)
    for name in MESH_FILES:
        box.export(folder / name)
    trimesh.creation.box(extents=(1.0, 1.0, 4.0)).export(folder / "tall_z.stl")

    scene = trimesh.Scene()
    scene.add_geometry(
        trimesh.creation.box(extents=(1.0, 1.0, 1.0)),
        node_name="crate",
        geom_name="crate",
        transform=trimesh.transformations.translation_matrix([3.0, 0.0, 0.0]),
    )
    scene.add_geometry(trimesh.creation.icosphere(radius=0.5), node_name="ball", geom_name="ball")
    scene.export(folder / "scene.glb")
    (folder / "gltf").mkdir()
    for name, data in trimesh.exchange.gltf.export_gltf(scene).items():  # scene.gltf and its buffer files
        (folder / "gltf" / name).write_bytes(data)

    painted = trimesh.creation.box()
    painted.visual.vertex_colors = np.tile([255, 0, 0, 255], (len(painted.vertices), 1)).astype(np.uint8)
    painted.export(folder / "painted.ply")
    (folder / "painted.obj").write_text("v 0 0 0 1 0 0\nv 1 0 0 0 1 0\nv 0 1 0 0 0 1\nf 1 2 3\n")
    (folder / "relative.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf -4 -3 -2\nf 1 -3 -1\n")

    colors8 = np.round(CLOUD_COLORS * 255).astype(np.uint8)
    trimesh.PointCloud(CLOUD, colors=np.hstack([colors8, np.full((50, 1), 255, np.uint8)])).export(folder / "cloud.ply")
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(CLOUD))
    cloud.colors = o3d.utility.Vector3dVector(CLOUD_COLORS)
    o3d.io.write_point_cloud(folder / "cloud.pcd", cloud)
    o3d.io.write_point_cloud(folder / "cloud.xyz", cloud)
    np.save(folder / "cloud3.npy", CLOUD)
    np.save(folder / "cloud6.npy", np.hstack([CLOUD, CLOUD_COLORS]))
    np.save(folder / "cloud6_255.npy", np.hstack([CLOUD, CLOUD_COLORS * 255]))
    np.save(folder / "cloud6_int.npy", np.hstack([np.round(CLOUD * 100), colors8]).astype(np.int32))
    return folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return malformed.build_corpus(tmp_path_factory.mktemp("malformed"))


def assert_normalized(asset: Asset) -> None:
    low, high = asset.bounds()
    assert (high - low).max() == pytest.approx(1.0)
    np.testing.assert_allclose((low + high) / 2, 0.0, atol=1e-12)
    assert low.min() >= -0.5 - 1e-12
    assert high.max() <= 0.5 + 1e-12


def extents(asset: Asset) -> np.ndarray:
    bounds = asset.bounds()
    size: np.ndarray = bounds[1] - bounds[0]
    return size


# --- good files ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MESH_FILES)
def test_meshes_load_normalized(good: Path, name: str) -> None:
    asset = read_asset(good / name)
    assert len(asset.meshes) == 1
    assert not asset.point_clouds
    mesh = asset.meshes[0]
    assert mesh.faces.shape == (12, 3)
    assert mesh.faces.dtype == np.int64
    assert mesh.vertices.dtype == np.float64
    assert asset.source == str(good / name)
    assert_normalized(asset)
    np.testing.assert_allclose(extents(asset), np.array(BOX_EXTENTS) / 3.0, atol=1e-6)


@pytest.mark.parametrize("name", ["scene.glb", "gltf"])
def test_scene_keeps_names_and_placement(good: Path, name: str) -> None:
    path = good / name if name.endswith(".glb") else next((good / "gltf").glob("*.gltf"))  # beside its .bin files
    asset = read_asset(path)
    assert set(asset.names) == {"crate", "ball"}
    assert all(isinstance(item, MeshObject) for item in asset.objects)
    assert_normalized(asset)
    crate = next(item for item in asset.meshes if item.name == "crate")
    ball = next(item for item in asset.meshes if item.name == "ball")
    # whole scene spans x from -0.5 (ball) to 3.5 (crate): 4 units become 1; objects keep their offsets
    offset = crate.vertices.mean(axis=0) - ball.vertices.mean(axis=0)
    np.testing.assert_allclose(offset, [3.0 / 4.0, 0.0, 0.0], atol=1e-3)
    np.testing.assert_allclose(np.ptp(crate.vertices, axis=0), 0.25, atol=1e-6)


def test_z_up_turns_tall_z_into_tall_y(good: Path) -> None:
    y_up = read_asset(good / "tall_z.stl")
    z_up = read_asset(good / "tall_z.stl", up_axis="z")
    np.testing.assert_allclose(extents(y_up), [0.25, 0.25, 1.0], atol=1e-6)
    np.testing.assert_allclose(extents(z_up), [0.25, 1.0, 0.25], atol=1e-6)
    assert_normalized(z_up)


@pytest.mark.parametrize("name", ["cloud.ply", "cloud.pcd", "cloud.xyz", "cloud3.npy", "cloud6.npy"])
def test_point_clouds_load(good: Path, name: str) -> None:
    asset = read_asset(good / name)
    assert len(asset.point_clouds) == 1
    cloud = asset.point_clouds[0]
    assert cloud.points.shape == (50, 3)
    assert cloud.name == Path(name).stem
    assert_normalized(asset)
    expected = (CLOUD - (CLOUD.min(0) + CLOUD.max(0)) / 2) / np.ptp(CLOUD, axis=0).max()
    np.testing.assert_allclose(cloud.points, expected, atol=1e-6)
    if name in ("cloud.xyz", "cloud3.npy"):
        assert cloud.colors is None
    else:
        assert cloud.colors is not None
        np.testing.assert_allclose(cloud.colors, CLOUD_COLORS, atol=1 / 255)


@pytest.mark.parametrize("name", ["cloud6.npy", "cloud6_255.npy", "cloud6_int.npy"])
def test_npy_colours_in_either_range(good: Path, name: str) -> None:
    cloud = read_asset(good / name).point_clouds[0]
    assert cloud.colors is not None
    np.testing.assert_allclose(cloud.colors, CLOUD_COLORS, atol=1 / 255)


def test_mesh_vertex_colours_kept(good: Path) -> None:
    ply = read_asset(good / "painted.ply").meshes[0]
    assert ply.vertex_colors is not None
    np.testing.assert_allclose(ply.vertex_colors, np.tile([1.0, 0.0, 0.0], (len(ply.vertices), 1)))
    obj = read_asset(good / "painted.obj").meshes[0]
    assert obj.vertex_colors is not None
    assert obj.vertex_colors.shape == (3, 3)
    assert set(map(tuple, obj.vertex_colors)) == {(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)}
    assert read_asset(good / "box.stl").meshes[0].vertex_colors is None


def test_obj_relative_indices_count_back_from_the_last_vertex(good: Path) -> None:
    mesh = read_asset(good / "relative.obj").meshes[0]
    corners = {tuple(np.round(mesh.vertices[face], 6).ravel()) for face in mesh.faces}
    assert len(mesh.faces) == 2
    raw = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64)
    fitted = normalize(Asset("raw", (PointObject("p", raw),))).point_clouds[0].points
    assert tuple(np.round(fitted[[0, 1, 2]], 6).ravel()) in corners
    assert tuple(np.round(fitted[[0, 1, 3]], 6).ravel()) in corners


# --- normalize -------------------------------------------------------------------------------------


def test_normalize_one_transform_for_all_objects() -> None:
    tri = MeshObject("tri", np.array([[0.0, 0, 0], [2, 0, 0], [0, 2, 0]]), np.array([[0, 1, 2]]))
    dots = PointObject("dots", np.array([[10.0, 0, 0], [10, 1, 1]]))
    asset = normalize(Asset("two", (tri, dots)))
    assert_normalized(asset)
    assert asset.names == ("tri", "dots")
    np.testing.assert_allclose(asset.meshes[0].vertices[0], [-0.5, -0.1, -0.05])
    np.testing.assert_allclose(asset.point_clouds[0].points[0], [0.5, -0.1, -0.05])
    np.testing.assert_array_equal(asset.meshes[0].faces, tri.faces)


def test_normalize_z_up_maps_z_to_y() -> None:
    asset = normalize(Asset("z", (PointObject("p", np.array([[0.0, 0, 0], [0, 0, 2], [1, 0, 0]])),)), up_axis="z")
    points = asset.point_clouds[0].points
    np.testing.assert_allclose(points[1] - points[0], [0.0, 1.0, 0.0])  # +Z became +Y
    np.testing.assert_allclose(points[2] - points[0], [0.5, 0.0, 0.0])  # X stays X


@given(
    arrays(np.float64, st.tuples(st.integers(2, 20), st.just(3)), elements=st.floats(-1e3, 1e3)),
    st.sampled_from(["y", "z"]),
)
def test_normalize_fits_the_unit_cube_with_one_similarity(points: np.ndarray, up_axis: UpAxis) -> None:
    if np.ptp(points, axis=0).max() < 1e-6:
        return  # all points coincide: covered below
    asset = normalize(Asset("cloud", (PointObject("a", points[:1]), PointObject("b", points[1:]))), up_axis=up_axis)
    assert_normalized(asset)
    fitted = np.concatenate([item.points for item in asset.point_clouds])
    turned = points if up_axis == "y" else points[:, [0, 2, 1]] * [1.0, 1.0, -1.0]
    scale = 1.0 / np.ptp(points, axis=0).max()
    np.testing.assert_allclose(fitted[1:] - fitted[0], (turned[1:] - turned[0]) * scale, atol=1e-9)


def test_normalize_single_point_only_moves() -> None:
    asset = normalize(Asset("one", (PointObject("p", np.array([[3.0, 4.0, 5.0]])),)))
    np.testing.assert_array_equal(asset.point_clouds[0].points, [[0.0, 0.0, 0.0]])


def test_up_axis_must_be_y_or_z(good: Path) -> None:
    with pytest.raises(ValueError, match="up_axis"):
        read_asset(good / "box.stl", up_axis="x")  # type: ignore[arg-type]


# --- the malformed corpus --------------------------------------------------------------------------


@pytest.mark.parametrize("case", malformed.CORPUS, ids=lambda case: case.name)
def test_malformed_file_raises_its_typed_error(corpus: dict[str, Path], case: malformed.Malformed) -> None:
    path = corpus[case.name]
    with pytest.raises(AssetError) as caught:
        read_asset(path, limits=case.limits)
    error = caught.value
    assert type(error) is case.error, f"{error!r}"
    assert error.path == str(path)
    assert error.reason
    assert str(error) == f"{case.name}: {error.reason}"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_permission(tmp_path: Path) -> None:
    path = tmp_path / "locked.obj"
    path.write_bytes(malformed.TRIANGLE + b"f 1 2 3\n")
    path.chmod(0)
    with pytest.raises(UnreadableAsset, match=r"locked\.obj: permission denied"):
        read_asset(path)


def test_corpus_covers_every_parse_error() -> None:
    assert len(malformed.CORPUS) >= 12
    expected = {UnreadableAsset, EmptyAsset, NonFiniteAsset, BadFaceIndices, AssetTooLarge, PathEscapes}
    assert {case.error for case in malformed.CORPUS} == expected


def test_error_text_and_pickling() -> None:
    assert str(EmptyAsset("models/cube.stl", "the mesh has no faces")) == "cube.stl: the mesh has no faces"
    errors: list[AssetError] = [cls("a/b.obj", "why") for cls in (UnreadableAsset, PathEscapes, LoadTimeout)]
    errors.append(LoaderCrashed("a/b.obj", "killed", -9))
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert (copy.path, copy.reason, str(copy)) == (error.path, error.reason, str(error))
    assert pickle.loads(pickle.dumps(errors[-1])).exitcode == -9


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_faces"):
        LoadLimits(max_faces=0)


# --- the child-process loader ----------------------------------------------------------------------


@pytest.mark.slow
def test_child_loads_like_in_process(good: Path) -> None:
    here = read_asset(good / "scene.glb")
    there = load_asset(good / "scene.glb")
    assert there.names == here.names
    for mine, theirs in zip(here.meshes, there.meshes, strict=True):
        np.testing.assert_array_equal(mine.vertices, theirs.vertices)
        np.testing.assert_array_equal(mine.faces, theirs.faces)
    cloud = load_asset(good / "cloud.pcd", up_axis="z").point_clouds[0]
    np.testing.assert_allclose(cloud.points, read_asset(good / "cloud.pcd", up_axis="z").point_clouds[0].points)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["escaping_buffer.gltf", "lying_header.stl", "object_array.npy", "index_out_of_range.obj", "missing.ply"]
)
def test_errors_cross_the_process_boundary(corpus: dict[str, Path], name: str) -> None:
    case = next(case for case in malformed.CORPUS if case.name == name)
    with pytest.raises(AssetError) as caught:
        load_asset(corpus[name], limits=case.limits)
    assert type(caught.value) is case.error
    with pytest.raises(AssetError) as here:
        read_asset(corpus[name], limits=case.limits)
    assert (caught.value.path, caught.value.reason) == (here.value.path, here.value.reason)


@pytest.mark.slow
def test_slow_parse_times_out(good: Path) -> None:
    started = time.monotonic()
    with pytest.raises(LoadTimeout, match=r"box\.stl: parsing took longer than 1\.5 s"):
        load_asset(good / "box.stl", limits=LoadLimits(timeout_s=1.5), reader=malformed.slow_reader)
    assert time.monotonic() - started < 6.0


@pytest.mark.slow
def test_tiny_timeout_on_a_valid_file(good: Path) -> None:
    with pytest.raises(LoadTimeout):
        load_asset(good / "scene.glb", limits=LoadLimits(timeout_s=0.01))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("reader", "needle", "exitcode"),
    [
        (malformed.killed_reader, "signal 9 (SIGKILL)", -9),
        (malformed.aborting_reader, "signal 6 (SIGABRT)", -6),
        (malformed.hungry_reader, "ran out of memory", 0),
        (malformed.broken_reader, "RuntimeError: a bug in the reader", 0),
    ],
)
def test_crashing_child_is_reported_and_the_caller_keeps_working(
    good: Path, reader: Reader, needle: str, exitcode: int
) -> None:
    limits = LoadLimits(memory_bytes=1 << 30)
    with pytest.raises(LoaderCrashed) as caught:
        load_asset(good / "box.glb", limits=limits, reader=reader)
    assert needle in str(caught.value)
    assert str(caught.value).startswith("box.glb: ")
    assert caught.value.exitcode == exitcode
    assert load_asset(good / "box.glb").meshes[0].faces.shape == (12, 3)


@pytest.mark.slow
def test_memory_limit_applies_to_the_real_loader(good: Path) -> None:
    with pytest.raises(LoaderCrashed):
        load_asset(good / "box.glb", limits=LoadLimits(memory_bytes=64 << 20))


def test_reader_must_be_importable_by_name(good: Path) -> None:
    with pytest.raises(ValueError, match="module-level"):
        load_asset(good / "box.glb", reader=lambda path, up_axis, limits: read_asset(path))
