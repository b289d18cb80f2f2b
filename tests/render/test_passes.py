"""Passes against analytic geometry: depth, silhouettes, normals, edges, splats, composition, boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import trimesh
from scipy.spatial import ConvexHull

from anyi2v.render.camera import Camera
from anyi2v.render.condition import RenderError, SceneView, compose, fit_distance, to_uint8
from anyi2v.render.geometry import Asset, MeshObject, PointObject
from anyi2v.render.passes import DEPTH_RANGE
from anyi2v.render.raycast import MeshScene
from anyi2v.render.splat import disk


def mesh(shape: trimesh.Trimesh, name: str = "object") -> MeshObject:
    return MeshObject(name, np.asarray(shape.vertices, dtype=np.float64), np.asarray(shape.faces, dtype=np.int64))


def sphere(radius: float = 0.4, centre: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> MeshObject:
    shape = trimesh.creation.icosphere(subdivisions=5, radius=radius)
    shape.apply_translation(centre)
    return mesh(shape, "sphere")


def test_sphere_centre_depth_is_distance_minus_radius() -> None:
    distance, radius = 2.5, 0.4
    view = SceneView(Asset("s", (sphere(radius),)), Camera(eye=(0.0, 0.0, distance)), 512, 512)
    centre_depth = view.hits.depth[255:257, 255:257].mean()
    assert centre_depth == pytest.approx(distance - radius, abs=1e-3)


def test_depth_image_is_near_bright_and_background_black() -> None:
    view = SceneView(Asset("s", (sphere(),)), Camera(eye=(0.0, 0.0, 2.5)), 256, 256)
    image = view.render("depth")[..., 0]
    assert image[0, 0] == 0.0
    assert image[128, 128] == pytest.approx(DEPTH_RANGE[1], abs=0.02)  # the nearest point is the brightest
    rim = image[view.hits.hit].min()
    assert rim == pytest.approx(DEPTH_RANGE[0], abs=1e-9)
    assert image[128, 128] > image[128, 128 + 40] > rim


@pytest.mark.parametrize(("width", "height"), [(512, 512), (768, 512), (256, 640)])
def test_cube_silhouette_area_matches_its_projection(width: int, height: int) -> None:
    cube = mesh(trimesh.creation.box(extents=(0.6, 0.6, 0.6)), "cube")
    camera = Camera.orbit(azimuth_deg=35.0, elevation_deg=25.0, distance=3.5)
    view = SceneView(Asset("c", (cube,)), camera, width, height)
    pixels, _ = camera.project(cube.vertices, width, height)
    assert pixels.min() > 0
    assert pixels[:, 0].max() < width
    assert pixels[:, 1].max() < height
    expected_area = ConvexHull(pixels).volume  # in 2D, "volume" is the area
    measured_area = view.render("silhouette")[..., 0].sum()
    assert measured_area == pytest.approx(expected_area, rel=0.01)


def test_normals_of_a_plane_facing_the_camera_are_uniform() -> None:
    plane = trimesh.creation.box(extents=(1.0, 1.0, 0.01))
    view = SceneView(Asset("p", (mesh(plane, "plane"),)), Camera(eye=(0.0, 0.0, 2.0)), 128, 128)
    image = view.render("normal")
    facing = image[view.hits.hit]
    assert len(facing) > 1000
    np.testing.assert_allclose(facing, np.tile([0.5, 0.5, 1.0], (len(facing), 1)), atol=1e-6)
    assert np.all(image[~view.hits.hit] == 0.0)


def test_normal_colours_follow_left_up_towards() -> None:
    view = SceneView(Asset("s", (sphere(),)), Camera(eye=(0.0, 0.0, 2.5)), 256, 256)
    image = view.render("normal")
    left, right, top, bottom = image[128, 100], image[128, 156], image[100, 128], image[156, 128]
    assert left[0] > 0.6 > right[0]  # red: surface turned to the viewer's left
    assert top[1] > 0.6 > bottom[1]  # green: surface turned up


def test_edges_are_thin_lines_on_the_outline_and_soft_edges_are_wider() -> None:
    cube = mesh(trimesh.creation.box(extents=(0.6, 0.6, 0.6)), "cube")
    view = SceneView(Asset("c", (cube,)), Camera.orbit(35.0, 25.0, 2.2), 256, 256)
    lines = view.render("edges")[..., 0]
    silhouette = view.hits.hit
    assert set(np.unique(lines)) == {0.0, 1.0}
    assert np.all(lines[~silhouette] == 0.0)  # drawn on the object's side of its outline
    outline = silhouette & ~np.roll(silhouette, 1, 0) | silhouette & ~np.roll(silhouette, -1, 0)
    outline |= silhouette & ~np.roll(silhouette, 1, 1) | silhouette & ~np.roll(silhouette, -1, 1)
    assert lines[outline].mean() > 0.9
    inner = lines.sum() - lines[outline].sum()
    assert inner > 100  # the cube's inner creases are drawn too
    assert lines.sum() < 0.15 * silhouette.sum()  # lines, not filled regions
    soft = view.render("soft_edges")[..., 0]
    assert soft.max() == pytest.approx(1.0)
    assert (soft > 0.05).sum() > 2 * (lines > 0).sum()


def test_shaded_is_brightest_where_the_surface_faces_the_light() -> None:
    view = SceneView(Asset("s", (sphere(),)), Camera(eye=(0.0, 0.0, 2.5)), 256, 256)
    image = view.render("shaded")[..., 0]
    assert image[128, 128] == pytest.approx(image.max(), abs=0.01)
    assert image[128, 128] > image[128, 170] > 0.0


def test_shaded_interpolates_vertex_colours_across_each_face() -> None:
    # A square facing the camera, red on the left corners and blue on the right ones.
    vertices = np.array([[-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.5, 0.5, 0.0], [-0.5, 0.5, 0.0]])
    faces = np.array([[0, 1, 2], [0, 2, 3]], dtype=np.int64)
    colours = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    square = MeshObject("square", vertices, faces, vertex_colors=colours)
    image = SceneView(Asset("q", (square,)), Camera(eye=(0.0, 0.0, 2.0), fov_deg=40.0), 128, 128).render("shaded")
    row = image[64]
    covered = np.flatnonzero(row.sum(axis=1) > 0)
    left, middle, right = row[covered[2]], row[covered[len(covered) // 2]], row[covered[-3]]
    assert left[0] > 0.8
    assert left[2] < 0.1
    assert right[2] > 0.8
    assert right[0] < 0.1
    assert middle[0] == pytest.approx(middle[2], abs=0.05)  # halfway: an even mix, not one object-wide colour


def test_views_sharing_a_mesh_scene_render_what_fresh_views_do() -> None:
    asset = Asset("s", (sphere(), mesh(trimesh.creation.box(extents=(0.3, 0.3, 0.3)), "cube")))
    shared = MeshScene(asset.meshes)
    for azimuth in (0.0, 60.0, 200.0):
        camera = Camera.orbit(azimuth, 15.0, 2.5)
        fresh = SceneView(asset, camera, 96, 96)
        reused = SceneView(asset, camera, 96, 96, mesh_scene=shared)
        for name in ("depth", "normal", "segmentation"):
            np.testing.assert_array_equal(reused.render(name), fresh.render(name))
    other = MeshScene((sphere(),))
    with pytest.raises(RenderError, match="other meshes"):
        SceneView(asset, Camera(eye=(0.0, 0.0, 2.5)), 64, 64, mesh_scene=other).render("depth")


def test_ids_and_object_masks_separate_objects_and_respect_occlusion() -> None:
    front = sphere(0.2, (0.0, 0.0, 0.5))
    back = MeshObject("back", *(lambda m: (m.vertices, m.faces))(trimesh.creation.box(extents=(1.0, 1.0, 0.1))))
    view = SceneView(Asset("two", (back, front)), Camera(eye=(0.0, 0.0, 3.0)), 256, 256)
    assert view.object_mask("sphere")[128, 128]
    assert not view.object_mask("back")[128, 128]  # hidden behind the sphere
    assert view.object_mask("back")[128, 95]
    colours = view.render("segmentation")
    assert not np.allclose(colours[128, 128], colours[128, 60])
    with pytest.raises(RenderError, match="no object named 'car'"):
        view.object_mask("car")


def test_splats_project_points_and_keep_the_nearest() -> None:
    near = PointObject("near", np.array([[0.0, 0.0, 0.5]]), np.array([[1.0, 0.0, 0.0]]))
    far = PointObject("far", np.array([[0.0, 0.0, 0.0], [0.3, 0.0, 0.0]]), np.array([[0.0, 0.0, 1.0]] * 2))
    camera = Camera(eye=(0.0, 0.0, 2.0))
    view = SceneView(Asset("pts", (far, near)), camera, 64, 64, splat_radius_px=2)
    image = view.render("splat")
    np.testing.assert_allclose(image[32, 32], [1.0, 0.0, 0.0])  # the near red point wins the shared pixel
    (column, row), _ = camera.project(far.points[1:], 64, 64)[0][0], None
    np.testing.assert_allclose(image[int(row), int(column)], [0.0, 0.0, 1.0])
    assert view.render("silhouette")[..., 0].sum() == 2 * disk(2).sum()  # two disks of radius 2
    assert view.render("depth")[32, 32, 0] == pytest.approx(DEPTH_RANGE[1])


def test_a_million_points_splat_with_colours() -> None:
    rng = np.random.default_rng(0)
    points = rng.uniform(-0.5, 0.5, (1_000_000, 3))
    colors = rng.uniform(0.0, 1.0, (1_000_000, 3))
    view = SceneView(Asset("cloud", (PointObject("cloud", points, colors),)), Camera.orbit(0, 0, 2.5), 512, 512)
    image = view.render("splat")
    covered = view.splats.hit
    assert covered.mean() > 0.1
    assert np.all(np.isfinite(view.splats.depth[covered]))
    assert image[covered].std() > 0.1


def test_passes_that_need_a_mesh_say_so() -> None:
    view = SceneView(Asset("cloud.ply", (PointObject("cloud", np.zeros((4, 3))),)), Camera(eye=(0, 0, 2)), 64, 64)
    with pytest.raises(RenderError, match="normal pass needs a mesh"):
        view.render("normal")
    with pytest.raises(RenderError, match="unknown pass"):
        view.render("x-ray")


@pytest.mark.parametrize(("width", "height"), [(0, 64), (100, 64), (64, 60)])
def test_sizes_must_be_multiples_of_eight(width: int, height: int) -> None:
    with pytest.raises(RenderError, match="multiples of 8"):
        SceneView(Asset("s", (sphere(),)), Camera(eye=(0, 0, 2)), width, height)


def test_compose_draws_each_layer_inside_its_region() -> None:
    background = np.full((8, 8, 3), 0.2)
    foreground = np.full((8, 8, 3), 0.9)
    region = np.zeros((8, 8), dtype=bool)
    region[2:5, 3:6] = True
    out = compose([(background, None), (foreground, region)])
    assert np.all(out[region] == 0.9)
    assert np.all(out[~region] == 0.2)
    with pytest.raises(RenderError, match="layer 1"):
        compose([(background, None), (np.zeros((4, 4, 3)), None)])
    assert to_uint8(out).dtype == np.uint8


def test_object_boxes_match_the_projection_of_a_cube_seen_head_on() -> None:
    cube = mesh(trimesh.creation.box(extents=(0.5, 0.5, 0.5)), "cube")
    camera = Camera(eye=(0.0, 0.0, 2.0), fov_deg=60.0)
    view = SceneView(Asset("c", (cube,)), camera, 512, 512)
    x0, y0, x1, y1 = view.object_boxes()["cube"]
    focal = 256 / math.tan(math.radians(30))
    half = focal * 0.25 / 1.75 / 512  # the front face, nearest the camera, is the widest
    assert (x0, y0, x1, y1) == pytest.approx((0.5 - half, 0.5 - half, 0.5 + half, 0.5 + half), abs=1e-9)


def test_orbit_cameras_look_at_their_target() -> None:
    for azimuth, elevation in [(0, 0), (90, 0), (45, 30), (200, -40)]:
        camera = Camera.orbit(azimuth, elevation, 3.0, target=(0.1, 0.2, 0.3))
        pixel, depth = camera.project(np.array([[0.1, 0.2, 0.3]]), 64, 64)
        np.testing.assert_allclose(pixel[0], [32, 32], atol=1e-9)
        assert depth[0] == pytest.approx(3.0)
    assert Camera.orbit(0, 0, 3.0).eye == pytest.approx((0.0, 0.0, 3.0))
    assert fit_distance(50.0) > 1.0
    with pytest.raises(ValueError, match="no viewing direction"):
        Camera(eye=(1.0, 1.0, 1.0), target=(1.0, 1.0, 1.0))
