"""Render speed on this CPU: the issue-3 targets.

    .venv/bin/python benchmarks/render_speed.py

- depth + normals + object ids of a ~100,000-triangle mesh at 512x512 (target < 100 ms);
- a 1,000,000-point cloud splatted at 512x512 (target < 200 ms).

Each figure is the median of several runs after one warm-up. The first mesh figure uses a fresh
SceneView each time, so the ray-casting acceleration structure (BVH) is rebuilt every run; the second
shares one MeshScene between views, as an orbit in the desktop or a camera path does.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import trimesh

from anyi2v.render.camera import Camera
from anyi2v.render.condition import SceneView
from anyi2v.render.geometry import Asset, MeshObject, PointObject
from anyi2v.render.raycast import MeshScene


def median_ms(work: Callable[[], object], repeats: int = 7) -> float:
    work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def main() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=6, radius=0.45)  # 81,920 triangles
    torus = trimesh.creation.torus(major_radius=0.3, minor_radius=0.08, major_sections=128, minor_sections=80)
    torus.apply_translation((0.0, 0.0, 0.4))
    meshes = (
        MeshObject("sphere", np.asarray(sphere.vertices), np.asarray(sphere.faces, dtype=np.int64)),
        MeshObject("torus", np.asarray(torus.vertices), np.asarray(torus.faces, dtype=np.int64)),
    )
    n_triangles = sum(len(m.faces) for m in meshes)
    camera = Camera.orbit(30.0, 20.0, 2.2)
    mesh_asset = Asset("bench", meshes)

    def mesh_passes() -> None:
        view = SceneView(mesh_asset, camera, 512, 512)
        view.render("depth")
        view.render("normal")
        view.render("segmentation")

    shared_scene = MeshScene(meshes)

    def mesh_passes_warm() -> None:
        view = SceneView(mesh_asset, camera, 512, 512, mesh_scene=shared_scene)
        view.render("depth")
        view.render("normal")
        view.render("segmentation")

    rng = np.random.default_rng(0)
    cloud = PointObject("cloud", rng.uniform(-0.5, 0.5, (1_000_000, 3)), rng.uniform(0.0, 1.0, (1_000_000, 3)))
    cloud_asset = Asset("cloud", (cloud,))

    def splat_pass() -> None:
        SceneView(cloud_asset, camera, 512, 512).render("splat")

    print(f"mesh depth+normals+ids, {n_triangles} triangles, 512x512: {median_ms(mesh_passes):.1f} ms (target < 100)")
    print(f"the same, BVH shared between views (an orbit step): {median_ms(mesh_passes_warm):.1f} ms")
    print(f"splat 1,000,000 points, 512x512: {median_ms(splat_pass):.1f} ms (target < 200)")


if __name__ == "__main__":
    main()
