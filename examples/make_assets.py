"""Write the example meshes and point cloud (run once; the files are committed).

    python examples/make_assets.py

- assets/toy_car.glb: a toy car on a ground slab, one named object per part (multi-object file);
- assets/vase.obj: a vase, a surface of revolution;
- assets/statue_points.ply: a coloured point cloud of a torus on a pedestal;
- assets/torus.obj: a torus tipped towards the camera (the demo's mesh).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

HERE = Path(__file__).resolve().parent / "assets"


def toy_car() -> trimesh.Scene:
    scene = trimesh.Scene()
    ground = trimesh.creation.box(extents=(4.0, 0.1, 3.0))
    ground.apply_translation((0.0, -0.05, 0.0))
    scene.add_geometry(ground, node_name="ground", geom_name="ground")
    body = trimesh.creation.box(extents=(1.6, 0.45, 0.8))
    body.apply_translation((0.0, 0.45, 0.0))
    scene.add_geometry(body, node_name="body", geom_name="body")
    cabin = trimesh.creation.box(extents=(0.8, 0.35, 0.7))
    cabin.apply_translation((-0.1, 0.85, 0.0))
    scene.add_geometry(cabin, node_name="cabin", geom_name="cabin")
    for name, x, z in (
        ("wheel_fl", 0.5, 0.42),
        ("wheel_fr", 0.5, -0.42),
        ("wheel_rl", -0.5, 0.42),
        ("wheel_rr", -0.5, -0.42),
    ):
        wheel = trimesh.creation.cylinder(radius=0.22, height=0.16, sections=32)
        wheel.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (1.0, 0.0, 0.0)))
        wheel.apply_translation((x, 0.22, z))
        scene.add_geometry(wheel, node_name=name, geom_name=name)
    return scene


def vase() -> trimesh.Trimesh:
    heights = np.linspace(0.0, 1.0, 24)
    radii = 0.25 + 0.12 * np.sin(heights * np.pi * 1.6) + 0.05 * heights
    profile = np.column_stack([radii, heights])
    profile = np.vstack([[0.0, 0.0], profile, [0.0, 1.0]])
    return trimesh.creation.revolve(profile, sections=64)


def torus() -> trimesh.Trimesh:
    """A torus tipped towards the camera: a shape the embedded toy-world model knows (the demo's mesh)."""
    mesh = trimesh.creation.torus(major_radius=0.35, minor_radius=0.13, major_sections=96, minor_sections=48)
    mesh.apply_transform(trimesh.transformations.rotation_matrix(np.radians(-30.0), (1.0, 0.0, 0.0)))
    return mesh


def statue_points(n_points: int = 60_000, seed: int = 0) -> trimesh.PointCloud:
    rng = np.random.default_rng(seed)
    torus = trimesh.creation.torus(major_radius=0.5, minor_radius=0.18)
    torus.apply_translation((0.0, 1.0, 0.0))
    pedestal = trimesh.creation.box(extents=(0.8, 0.4, 0.8))
    pedestal.apply_translation((0.0, 0.2, 0.0))
    torus_points = torus.sample(n_points * 2 // 3, seed=rng.integers(2**31))
    pedestal_points = pedestal.sample(n_points // 3, seed=rng.integers(2**31))
    points = np.vstack([torus_points, pedestal_points])
    colors = np.vstack(
        [np.tile((220, 120, 40, 255), (len(torus_points), 1)), np.tile((150, 150, 160, 255), (len(pedestal_points), 1))]
    ).astype(np.uint8)
    return trimesh.PointCloud(points, colors=colors)


def main() -> None:
    HERE.mkdir(exist_ok=True)
    toy_car().export(HERE / "toy_car.glb")
    vase().export(HERE / "vase.obj")
    statue_points().export(HERE / "statue_points.ply")
    torus().export(HERE / "torus.obj")
    for path in sorted(HERE.iterdir()):
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
