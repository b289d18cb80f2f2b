"""The toy world's torch renderer against the Open3D mesh renderer (same scene, same camera) and against
analytic geometry: conventions of depth, normals, edges, shading and splats, and every primitive's SDF."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import trimesh
from numpy.typing import NDArray
from scipy import ndimage

from anyi2v.daemon.toyworld import render as toy
from anyi2v.render import passes
from anyi2v.render.camera import Camera
from anyi2v.render.geometry import MeshObject, PointObject
from anyi2v.render.raycast import MeshScene, RaycastHits
from anyi2v.render.splat import splat as mesh_splat
from anyi2v.shared.conventions import DEPTH_RANGE

SIDE = 96
BOX_TURN = 0.5  # radians about y


def mesh(shape: trimesh.Trimesh, name: str) -> MeshObject:
    return MeshObject(name, np.asarray(shape.vertices, dtype=np.float64), np.asarray(shape.faces, dtype=np.int64))


def y_rotation(angle: float) -> NDArray[np.float64]:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def primitives(
    kinds: list[str],
    centres: list[tuple[float, float, float]],
    sizes: list[tuple[float, float, float]],
    rotations: list[NDArray[np.float64]] | None = None,
    present: list[bool] | None = None,
) -> toy.Primitives:
    """One view of K primitives."""
    count = len(kinds)
    rotation = np.stack(rotations) if rotations is not None else np.tile(np.eye(3), (count, 1, 1))
    return toy.Primitives(
        kind=torch.tensor([[toy.KINDS.index(kind) for kind in kinds]]),
        centre=torch.tensor([centres], dtype=torch.float32),
        rotation=torch.tensor(rotation[None], dtype=torch.float32),
        size=torch.tensor([sizes], dtype=torch.float32),
        blob=torch.zeros(1, count, toy.BLOB_BALLS, 4),
        present=torch.tensor([present if present is not None else [True] * count]),
    )


def cameras_of(camera: Camera) -> toy.Cameras:
    return toy.Cameras.look_at(camera.eye, camera.target, camera.up, fov_deg=camera.fov_deg)


@dataclass
class Pair:
    """One scene rendered by both renderers."""

    camera: Camera
    cameras: toy.Cameras
    meshes: list[MeshObject]
    reference: RaycastHits
    hits: toy.Hits

    @property
    def both(self) -> NDArray[np.bool_]:
        return np.asarray(self.reference.hit & self.hits.hit[0].numpy())


@pytest.fixture(scope="module")
def pair() -> Pair:
    """A unit sphere, a turned box and an upright cylinder, off-centre, at 96 x 96."""
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=1.0)
    sphere.apply_translation((-0.9, 0.3, 0.0))
    box = trimesh.creation.box(extents=(0.8, 1.0, 0.6))
    turn = np.eye(4)
    turn[:3, :3] = y_rotation(BOX_TURN)
    box.apply_transform(turn)
    box.apply_translation((1.0, -0.4, 0.3))
    cylinder = trimesh.creation.cylinder(radius=0.35, height=1.2, sections=96)
    cylinder.apply_transform(trimesh.transformations.rotation_matrix(-math.pi / 2.0, (1.0, 0.0, 0.0)))  # z to y
    cylinder.apply_translation((0.4, 0.6, -0.8))
    meshes = [mesh(sphere, "sphere"), mesh(box, "box"), mesh(cylinder, "cylinder")]
    camera = Camera.orbit(azimuth_deg=20.0, elevation_deg=15.0, distance=5.0, target=(0.1, 0.0, 0.0))

    scene = primitives(
        ["sphere", "box", "cylinder"],
        [(-0.9, 0.3, 0.0), (1.0, -0.4, 0.3), (0.4, 0.6, -0.8)],
        [(1.0, 0.0, 0.0), (0.4, 0.5, 0.3), (0.35, 0.6, 0.0)],
        rotations=[np.eye(3), y_rotation(BOX_TURN), np.eye(3)],
    )
    cameras = cameras_of(camera)
    return Pair(
        camera, cameras, meshes, MeshScene(meshes).cast(camera, SIDE, SIDE), toy.cast(scene, cameras, SIDE, SIDE)
    )


def f_score(found: NDArray[np.bool_], truth: NDArray[np.bool_], tolerance_px: int) -> float:
    """Edge F-score: a line pixel counts when the other map has one within ``tolerance_px`` (chessboard)."""
    grow = ndimage.generate_binary_structure(2, 2)
    # (scipy reads iterations=0 as "until nothing changes", hence the guard)
    near_truth = ndimage.binary_dilation(truth, grow, iterations=tolerance_px) if tolerance_px > 0 else truth
    near_found = ndimage.binary_dilation(found, grow, iterations=tolerance_px) if tolerance_px > 0 else found
    precision = (found & near_truth).sum() / max(found.sum(), 1)
    recall = (truth & near_found).sum() / max(truth.sum(), 1)
    return float(2.0 * precision * recall / max(precision + recall, 1e-12))


def test_look_at_cameras_equal_the_mesh_renderers() -> None:
    eyes = [(0.3, 1.2, 4.0), (-3.0, -0.5, 0.2), (2.0, 2.0, -2.0)]
    targets = [(0.0, 0.0, 0.0), (0.1, 0.2, 0.3), (-0.5, 0.0, 0.4)]
    cameras = toy.Cameras.look_at(torch.tensor(eyes), torch.tensor(targets))
    for index, (eye, target) in enumerate(zip(eyes, targets, strict=True)):
        np.testing.assert_allclose(cameras.rotation[index].numpy(), Camera(eye, target).rotation(), atol=1e-6)
    assert cameras.focal(96) == pytest.approx(Camera(eyes[0]).intrinsic(96, 96)[0, 0])


def test_pixel_rays_are_unit_and_give_planar_depth() -> None:
    """cameras.pixel_rays: unit directions through the pixel centres; a unit step along one advances the
    camera z by the returned factor; the centre pixel of an odd image looks straight ahead."""
    from anyi2v.daemon.toyworld.cameras import pixel_rays

    cameras = toy.Cameras.look_at(torch.tensor([(0.3, 1.2, 4.0), (-3.0, -0.5, 0.2)]), (0.0, 0.0, 0.0), fov_deg=40.0)
    directions, planar = pixel_rays(cameras, 5, 7, torch.device("cpu"))
    assert directions.shape == (2, 35, 3)
    assert planar.shape == (35,)
    torch.testing.assert_close(directions.norm(dim=-1), torch.ones(2, 35))
    forward = cameras.rotation[:, 2]
    torch.testing.assert_close((directions * forward[:, None]).sum(dim=-1), planar.expand(2, -1))
    torch.testing.assert_close(directions[:, 2 * 7 + 3], forward)
    assert float(planar[2 * 7 + 3]) == 1.0


def test_render_exports_the_split_modules_names() -> None:
    """``render`` gathers the public names: the very objects of the modules that hold the code."""
    from anyi2v.daemon.toyworld import cameras, passes, points, primitives, trace

    modules = (cameras, passes, points, primitives, trace)
    for name in toy.__all__:
        (owner,) = [module for module in modules if name in module.__all__]
        assert getattr(toy, name) is getattr(owner, name), name
    assert set(toy.__all__) == {name for module in modules for name in module.__all__} - {
        "pixel_rays",
        "KindGroup",
        "group_by_kind",
        "grouped_distances",
        "blob_distance",
    }


def test_silhouettes_and_objects_match_the_mesh_renderer(pair: Pair) -> None:
    ours, theirs = pair.hits.hit[0].numpy(), pair.reference.hit
    assert theirs.sum() > 1500  # the scene fills a good part of the image
    assert (ours & theirs).sum() / (ours | theirs).sum() > 0.97
    # Where both see something they see the same object (the index k is the mesh's index).
    assert np.mean(pair.hits.object_index[0].numpy()[pair.both] == pair.reference.object_index[pair.both]) > 0.995
    # Pixel centres: a half-pixel shift would move each object's centroid by 0.5 px.
    for index in range(3):
        ours_rows, ours_columns = np.nonzero(pair.hits.object_index[0].numpy() == index)
        theirs_rows, theirs_columns = np.nonzero(pair.reference.object_index == index)
        assert abs(ours_rows.mean() - theirs_rows.mean()) < 0.15
        assert abs(ours_columns.mean() - theirs_columns.mean()) < 0.15


def test_depth_matches_the_mesh_renderer(pair: Pair) -> None:
    both = pair.both
    raw = np.abs(pair.hits.depth[0].numpy()[both] - pair.reference.depth[both])
    assert raw.mean() < 2e-3
    ours, theirs = toy.depth_image(pair.hits)[0].numpy(), passes.depth_image(pair.reference)
    # Measured about 1e-4; far-bright depth would differ by about 0.4.
    assert np.abs(ours - theirs)[both].mean() < 0.01
    assert np.all(ours[~pair.hits.hit[0].numpy()] == 0.0)
    assert ours.max() == pytest.approx(DEPTH_RANGE[1])
    assert ours[pair.hits.hit[0].numpy()].min() == pytest.approx(DEPTH_RANGE[0])


def test_normal_images_match_the_mesh_renderer(pair: Pair) -> None:
    both = pair.both
    ours = toy.normal_image(pair.hits, pair.cameras)[0].numpy()
    theirs = passes.normal_image(pair.reference, pair.camera)
    ours_vectors, theirs_vectors = 1.0 - 2.0 * ours[both], 1.0 - 2.0 * theirs[both]
    cosine = np.einsum("kc,kc->k", ours_vectors, theirs_vectors) / (
        np.linalg.norm(ours_vectors, axis=1) * np.linalg.norm(theirs_vectors, axis=1)
    )
    angle = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
    assert angle.mean() < 2.0  # measured about 0.2 degrees; a flipped axis gives tens
    assert np.all(ours[~pair.hits.hit[0].numpy()] == 0.0)


def test_edges_match_the_mesh_renderer(pair: Pair) -> None:
    ours = toy.edges(pair.hits)[0].numpy() > 0.0
    theirs = passes.edges(pair.reference) > 0.0
    assert theirs.sum() > 200
    assert f_score(ours, theirs, tolerance_px=1) > 0.9
    assert f_score(ours, theirs, tolerance_px=0) > 0.8  # lines on the same (nearer) side


def synthetic_maps(seed: int) -> tuple[RaycastHits, toy.Hits]:
    """The same made-up hits for both renderers: 6 x 6 pixel blocks of random objects (or background), depths
    just under and over the edge's relative jump, and normals tilted just under and over its angle."""
    rng = np.random.default_rng(seed)
    blocks, block = 6, 6
    side = blocks * block
    tilts = np.radians([0.0, 36.0, 44.0, 70.0])
    normals_of = [
        np.array([math.sin(t) * math.cos(a), math.sin(t) * math.sin(a), math.cos(t)]) for t in tilts for a in (0, 2)
    ]
    object_index = np.kron(rng.integers(-1, 3, (blocks, blocks)), np.ones((block, block), dtype=np.int64))
    depth = np.kron(rng.choice([2.0, 2.06, 2.1, 2.2, 3.0], (blocks, blocks)), np.ones((block, block)))
    depth = depth * (1.0 + 0.002 * np.arange(side))[None, :]  # a slope well under the jump
    normals = np.stack([normals_of[i] for i in rng.integers(0, len(normals_of), blocks * blocks)])
    normals = np.kron(normals.reshape(blocks, blocks, 3), np.ones((block, block, 1)))
    hit = object_index >= 0
    depth, normals = np.where(hit, depth, np.inf), np.where(hit[..., None], normals, 0.0)
    reference = RaycastHits(
        depth=depth,
        object_index=object_index,
        normals=normals,
        triangle=np.where(hit, 0, -1),
        uv=np.zeros((side, side, 2)),
        ray_directions=np.zeros((side, side, 3), dtype=np.float32),
    )
    ours = toy.Hits(
        depth=torch.tensor(depth[None], dtype=torch.float32),
        normals=torch.tensor(normals[None], dtype=torch.float32),
        object_index=torch.tensor(object_index[None]),
        points=torch.zeros(1, side, side, 3),
    )
    return reference, ours


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_passes_equal_the_mesh_renderers_on_the_same_hits(seed: int) -> None:
    """The per-pixel rules alone, pixel for pixel: edges (thresholds, the nearer side, the last row and
    column), the depth normalization and the normal colours."""
    reference, ours = synthetic_maps(seed)
    expected_edges = passes.edges(reference)
    assert 0 < expected_edges.sum() < expected_edges.size / 2
    np.testing.assert_array_equal(toy.edges(ours)[0].numpy(), expected_edges)
    np.testing.assert_allclose(toy.depth_image(ours)[0].numpy(), passes.depth_image(reference), atol=1e-5)
    camera = Camera(eye=(0.4, 1.0, 3.0), target=(0.0, 0.2, 0.0))
    np.testing.assert_allclose(
        toy.normal_image(ours, cameras_of(camera))[0].numpy(), passes.normal_image(reference, camera), atol=1e-5
    )


def test_shaded_without_gloss_is_the_mesh_renderers_grey(pair: Pair) -> None:
    albedo = torch.full((1, 3, 3), 0.8)
    image, mask = toy.shaded(pair.hits, pair.cameras, albedo, torch.zeros(1, 3))
    theirs = passes.shaded(pair.reference, pair.meshes)
    assert np.abs(image[0].numpy() - theirs)[pair.both].mean() < 0.01
    assert torch.equal(mask, pair.hits.hit)
    assert torch.all(image[~mask] == 0.0)
    # Gloss adds a highlight (up to white) where the surface faces the eye, and next to nothing edge-on.
    glossy, _ = toy.shaded(pair.hits, pair.cameras, albedo, torch.ones(1, 3))
    gain = (glossy - image)[0].amax(dim=-1)
    assert gain.max() > 0.15
    assert glossy.max() == 1.0
    assert torch.all(gain >= 0.0)
    assert gain[torch.from_numpy(passes.edges(pair.reference) > 0.0) & mask[0]].median() < 0.01


def test_splats_cover_what_the_mesh_renderers_splats_cover() -> None:
    sphere = primitives(["sphere"], [(0.2, -0.1, 0.0)], [(0.7, 0.0, 0.0)])
    points, owner = toy.sample_surface_points(sphere, 3000, torch.Generator().manual_seed(0))
    assert torch.all(owner == 0)
    camera = Camera.orbit(azimuth_deg=-30.0, elevation_deg=20.0, distance=3.0)
    colours = torch.rand(points.shape, generator=torch.Generator().manual_seed(1))
    image, depth, mask = toy.splat(points, colours, cameras_of(camera), SIDE, SIDE, radius_px=1)
    theirs = mesh_splat(
        [PointObject("points", points[0].double().numpy(), colours[0].double().numpy())], camera, SIDE, SIDE, 1
    )
    ours = mask[0].numpy()
    assert theirs.hit.sum() > 1000
    assert np.sum(ours != theirs.hit) <= 0.01 * np.sum(ours | theirs.hit)
    same = ours & theirs.hit
    assert np.abs(depth[0].numpy()[same] - theirs.depth[same]).max() < 1e-3
    assert np.mean(np.all(np.abs(image[0].numpy()[same] - theirs.color[same]) < 1e-5, axis=-1)) > 0.97
    assert torch.all(torch.isinf(depth[~mask]))
    assert torch.all(image[~mask] == 0.0)


def analytic_sphere_depth(camera: Camera, centre: NDArray[np.float64], radius: float, side: int) -> NDArray[np.float64]:
    """(side, side) planar depth of the nearest ray-sphere intersection, in float64; nan where the ray passes
    farther than 0.98 radius from the centre (a miss, or too close to grazing to be sharp)."""
    k = camera.intrinsic(side, side)
    columns, rows = np.meshgrid(np.arange(side) + 0.5, np.arange(side) + 0.5)
    directions_camera = np.stack([(columns - k[0, 2]) / k[0, 0], (rows - k[1, 2]) / k[1, 1], np.ones_like(rows)], -1)
    directions = directions_camera @ camera.rotation()  # world; one unit of planar depth per unit of t
    length = np.linalg.norm(directions, axis=-1)
    to_centre = centre - np.asarray(camera.eye)
    along = directions @ to_centre / length  # distance along the ray to the closest approach
    miss_squared = to_centre @ to_centre - along**2
    clear = miss_squared < (0.98 * radius) ** 2
    distance = along - np.sqrt(np.clip(radius**2 - miss_squared, 0.0, None))
    return np.where(clear, distance / length, np.nan)


def test_cast_depth_is_exact_on_an_analytic_sphere() -> None:
    side, distance, radius = 65, 3.0, 0.8
    camera = Camera(eye=(0.0, 0.0, distance))
    hits = toy.cast(primitives(["sphere"], [(0.0, 0.0, 0.0)], [(radius, 0.0, 0.0)]), cameras_of(camera), side, side)
    assert hits.depth[0, side // 2, side // 2].item() == pytest.approx(distance - radius, abs=1e-3)
    # Off the axis too: every pixel whose ray clearly hits, against the float64 ray-sphere intersection.
    camera = Camera(eye=(0.6, 0.9, 2.8), target=(0.1, 0.0, 0.0))
    centre = np.array([0.2, -0.1, 0.1])
    hits = toy.cast(primitives(["sphere"], [tuple(centre)], [(radius, 0.0, 0.0)]), cameras_of(camera), side, side)
    expected = analytic_sphere_depth(camera, centre, radius, side)
    clear = np.isfinite(expected)
    assert clear.sum() > 1000
    assert np.all(hits.hit[0].numpy()[clear])
    assert np.abs(hits.depth[0].numpy()[clear] - expected[clear]).max() < 1e-3
    normals = hits.points[0].numpy()[clear] - centre
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    assert np.einsum("kc,kc->k", normals, hits.normals[0].numpy()[clear]).min() > 0.9999
    # The Newton steps at the end make a short march as exact (sphere tracing alone needs some 24 steps).
    short = toy.cast(primitives(["sphere"], [tuple(centre)], [(radius, 0.0, 0.0)]), cameras_of(camera), side, side, 12)
    assert np.all(short.hit[0].numpy()[clear])
    assert np.abs(short.depth[0].numpy()[clear] - expected[clear]).max() < 1e-3


def test_a_face_on_box_has_one_depth_and_is_brightest() -> None:
    box = primitives(["box"], [(0.0, 0.0, 0.0)], [(0.5, 0.4, 0.3)])
    hits = toy.cast(box, cameras_of(Camera(eye=(0.0, 0.0, 3.0))), 48, 48)
    hit = hits.hit[0]
    assert hit.sum() > 100
    assert torch.all((hits.depth[0][hit] - 2.7).abs() < 1e-3)
    image = toy.depth_image(hits)[0]
    torch.testing.assert_close(image[hit], torch.full_like(image[hit], DEPTH_RANGE[1]))
    assert torch.all(image[~hit] == 0.0)
    # Seen face-on, every hit faces the camera: the map's blue, (0.5, 0.5, 1).
    colours = toy.normal_image(hits, cameras_of(Camera(eye=(0.0, 0.0, 3.0))))[0][hit]
    torch.testing.assert_close(colours, torch.tensor([0.5, 0.5, 1.0]).expand_as(colours), atol=1e-3, rtol=0.0)


SIZES = {
    "sphere": (0.5, 0.0, 0.0),
    "box": (0.3, 0.5, 0.4),
    "torus": (0.5, 0.15, 0.0),
    "cone": (0.4, 0.5, 0.0),
    "cylinder": (0.35, 0.45, 0.0),
    "capsule": (0.3, 0.4, 0.0),
    "blob": (1.0, 0.15, 0.0),
}
BALLS = [[0.3, 0.0, 0.0, 0.3], [-0.3, 0.1, 0.0, 0.35], [0.0, 0.4, 0.1, 0.25], [0.0, 0.0, 0.0, 0.0]]


def every_kind(present: bool = True) -> toy.Primitives:
    """Seven views, view i holding kind i, turned and moved, between two padding slots (present False) that
    sit in front of the camera of :data:`KIND_CAMERA`."""
    count = len(toy.KINDS)
    turn = torch.tensor(y_rotation(0.7) @ np.array([[1.0, 0.0, 0.0], [0.0, 0.8, -0.6], [0.0, 0.6, 0.8]]))
    kind = torch.tensor([[0, index, 1] for index in range(count)])
    centre = torch.tensor([[0.0, 0.0, 2.0], [0.1, -0.2, 0.3], [0.0, 0.0, 1.0]]).expand(count, 3, 3)
    size = torch.tensor([[(0.4, 0.4, 0.4), SIZES[name], (0.3, 0.3, 0.3)] for name in toy.KINDS])
    blob = torch.zeros(count, 3, toy.BLOB_BALLS, 4)
    blob[:, 1] = torch.tensor(BALLS)
    return toy.Primitives(
        kind=kind,
        centre=centre.clone(),
        rotation=turn.float().expand(count, 3, 3, 3).clone(),
        size=size,
        blob=blob,
        present=torch.tensor([[False, present, False]]).expand(count, 3).clone(),
    )


KIND_CAMERA = Camera(eye=(0.2, 0.5, 3.5), target=(0.1, -0.2, 0.3))


def test_cast_hits_every_kind_and_never_padding() -> None:
    scene = every_kind()
    cameras = toy.Cameras.look_at(torch.tensor([KIND_CAMERA.eye] * len(toy.KINDS)), KIND_CAMERA.target)
    hits = toy.cast(scene, cameras, 48, 48)
    for view, name in enumerate(toy.KINDS):
        seen = hits.object_index[view]
        # The centre looks at the primitive, or through the torus's hole.
        assert seen[24, 24] == (-1 if name == "torus" else 1), name
        assert (seen == 1).sum() > 80, name
        assert set(seen.flatten().tolist()) <= {-1, 1}, name
        # Hit points are on the surface and normals face the camera.
        distance = toy.signed_distances(scene, hits.points[view][seen == 1][None].expand(len(toy.KINDS), -1, -1))
        assert distance[view, 1].abs().max() < 2e-3, name  # the worst, a grazing ray on the outline
        assert distance[view, 1].abs().quantile(0.99) < 1e-4, name
        towards = (torch.tensor(KIND_CAMERA.eye) - hits.points[view][seen == 1]) * hits.normals[view][seen == 1]
        assert torch.all(towards.sum(dim=-1) > 0.0), name
    assert not toy.cast(every_kind(present=False), cameras, 16, 16).hit.any()
    assert torch.all(toy.depth_image(toy.cast(every_kind(present=False), cameras, 16, 16)) == 0.0)


def test_a_one_ball_blob_is_a_sphere() -> None:
    camera = cameras_of(Camera.orbit(azimuth_deg=40.0, elevation_deg=10.0, distance=3.0))
    sphere = primitives(["sphere"], [(0.1, 0.2, 0.0)], [(0.6, 0.0, 0.0)])
    blob = primitives(["blob"], [(0.0, 0.0, 0.0)], [(2.0, 0.2, 0.0)])
    blob.blob[0, 0, 0] = torch.tensor([0.05, 0.1, 0.0, 0.3])  # times scale 2: centre (0.1, 0.2, 0), radius 0.6
    ours, theirs = toy.cast(blob, camera, 48, 48), toy.cast(sphere, camera, 48, 48)
    assert torch.equal(ours.hit, theirs.hit)
    assert (ours.depth[ours.hit] - theirs.depth[theirs.hit]).abs().max() < 1e-4


def test_surface_points_lie_on_every_kind_and_cover_it() -> None:
    scene = every_kind()
    count = len(toy.KINDS)
    points, owner = toy.sample_surface_points(scene, 20000, torch.Generator().manual_seed(0))
    assert points.shape == (count, 20000, 3)
    assert torch.all(owner == 1)
    distance = toy.signed_distances(scene, points)[:, 1]
    assert distance.abs().max() < 1e-3
    # Compare the SDF with brute force: the distance from random points near each primitive to the nearest
    # sampled point. Exact kinds agree up to the sampling's spacing; a sampler that missed part of a surface
    # (a cap, a face) or an SDF that is off would not. The blob's smooth union is only a lower bound.
    spread = torch.rand(count, 1500, 3, generator=torch.Generator().manual_seed(2)) * 2.0 - 1.0
    queries = scene.centre[:, 1:2] + spread
    sdf = toy.signed_distances(scene, queries)[:, 1]
    brute = torch.cdist(queries, points).amin(dim=-1)
    for view, name in enumerate(toy.KINDS):
        assert torch.all(sdf[view].abs() <= brute[view] + 1e-4), name
        if name != "blob":
            assert torch.all(sdf[view].abs() >= brute[view] - 0.025), name
    # Inside is negative: every kind but the torus holds its own centre.
    inside = toy.signed_distances(scene, scene.centre[:, 1:2].expand(count, 1, 3).contiguous())[:, 1, 0]
    for view, name in enumerate(toy.KINDS):
        assert (inside[view] > 0.0) == (name == "torus"), name
