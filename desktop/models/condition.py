"""The condition view without Qt: the orbit camera, a renderer that keeps the loaded asset and its
ray-casting scene between renders, and a worker on which the latest request wins.
"""

from __future__ import annotations

import importlib
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np

from anyi2v.render.camera import orbit_angles, orbit_eye
from anyi2v.shared.shot import Camera, Shot

if TYPE_CHECKING:
    from anyi2v.render.geometry import Asset
    from anyi2v.render.raycast import MeshScene
    from anyi2v.render.shot_conditions import ShotConditions

# The renderer's imports (Open3D, SciPy, trimesh: about 1.5 s on two cores) happen on the worker
# thread or in warm_up(), so the window shows before they are done.
HEAVY_MODULES = ("anyi2v.render.shot_conditions", "open3d", "scipy.interpolate")

Request = TypeVar("Request")
Result = TypeVar("Result")
Vector3 = tuple[float, float, float]


@dataclass(frozen=True)
class OrbitCamera:
    """A camera on a sphere around ``target`` (Y up): the view's orbit, pan and zoom move this, and it
    goes back into the shot as a look-at camera."""

    target: Vector3
    azimuth_deg: float
    elevation_deg: float
    distance: float
    fov_deg: float = 50.0

    @classmethod
    def from_camera(cls, camera: Camera) -> OrbitCamera:
        azimuth, elevation, distance = orbit_angles(np.subtract(camera.eye, camera.target))
        target = (float(camera.target[0]), float(camera.target[1]), float(camera.target[2]))
        return cls(target, azimuth, elevation, distance, camera.fov_deg)

    @property
    def eye(self) -> Vector3:
        return orbit_eye(self.azimuth_deg, self.elevation_deg, self.distance, self.target)

    def orbit(self, d_azimuth_deg: float, d_elevation_deg: float) -> OrbitCamera:
        """Turn around the target; elevation stops short of the poles, where Y-up look-at is undefined."""
        elevation = max(-89.0, min(89.0, self.elevation_deg + d_elevation_deg))
        azimuth = (self.azimuth_deg + d_azimuth_deg + 180.0) % 360.0 - 180.0
        return OrbitCamera(self.target, azimuth, elevation, self.distance, self.fov_deg)

    def pan(self, right: float, up: float) -> OrbitCamera:
        """Slide the target (and the eye with it) in the view plane; ``right`` and ``up`` are fractions
        of the visible height at the target's distance, so a drag moves the scene with the mouse."""
        eye = np.asarray(self.eye)
        forward = np.asarray(self.target) - eye
        forward /= np.linalg.norm(forward)
        right_axis = np.cross(forward, (0.0, 1.0, 0.0))
        right_axis /= np.linalg.norm(right_axis)
        up_axis = np.cross(right_axis, forward)
        visible = 2.0 * self.distance * math.tan(math.radians(self.fov_deg) / 2.0)
        moved = np.asarray(self.target) + visible * (right * right_axis + up * up_axis)
        return OrbitCamera((float(moved[0]), float(moved[1]), float(moved[2])), self.azimuth_deg,
                           self.elevation_deg, self.distance, self.fov_deg)  # fmt: skip

    def zoom(self, factor: float) -> OrbitCamera:
        """Move towards (factor < 1) or away from (factor > 1) the target; kept between 0.05 and 100."""
        distance = max(0.05, min(100.0, self.distance * factor))
        return OrbitCamera(self.target, self.azimuth_deg, self.elevation_deg, distance, self.fov_deg)


class ConditionRenderer:
    """Renders a shot's condition, loading its scene file once (again only when the file changes) and
    building the ray-casting scene once per loaded asset: an orbit step only casts rays. Renders from
    several threads (the view's worker, a generation being prepared) take turns."""

    def __init__(self) -> None:
        self._key: tuple[str, str, int, int] | None = None
        self._asset: Asset | None = None
        self._mesh_scene: MeshScene | None = None
        self._lock = threading.RLock()

    def asset(self, path: Path, up_axis: str) -> tuple[Asset, MeshScene | None]:
        """The asset at ``path`` and the ray-casting scene of its meshes, loaded when not cached."""
        from anyi2v.render.assets import load_asset
        from anyi2v.render.geometry import MeshObject
        from anyi2v.render.raycast import MeshScene

        stat = path.stat()
        key = (str(path.resolve()), up_axis, stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if key != self._key or self._asset is None:
                self._asset = load_asset(path, up_axis=up_axis)  # type: ignore[arg-type]
                self._mesh_scene = MeshScene([o for o in self._asset.objects if isinstance(o, MeshObject)])
                self._key = key
            return self._asset, self._mesh_scene

    def render(self, shot: Shot, base_dir: Path) -> ShotConditions:
        """Raises ``AssetError``, ``RenderError`` or ``OSError`` with what is wrong."""
        from anyi2v.render.shot_conditions import render_shot_conditions

        if shot.scene is None:
            return render_shot_conditions(shot, base_dir)
        path = base_dir / shot.scene.path
        if not path.is_file():
            raise FileNotFoundError(f"scene.path: {path} does not exist (was it moved?)")
        with self._lock:
            asset, mesh_scene = self.asset(path, shot.scene.up_axis)
            return render_shot_conditions(shot, base_dir, asset=asset, mesh_scene=mesh_scene)


def warm_up() -> threading.Thread:
    """Import the renderer's libraries on a background thread (an import the GUI thread needs later
    waits for this one instead of starting again)."""

    def run() -> None:
        for name in HEAVY_MODULES:
            importlib.import_module(name)

    thread = threading.Thread(target=run, name="anyi2v-warm-up", daemon=True)
    thread.start()
    return thread


class LatestWins(Generic[Request, Result]):
    """One worker thread running ``work``; a request that arrives while another waits replaces it, so
    during a fast orbit only the newest camera is rendered. ``on_done(generation, result)`` or
    ``on_error(generation, error)`` runs on the worker thread; generations grow with each submit."""

    def __init__(
        self,
        work: Callable[[Request], Result],
        on_done: Callable[[int, Result], None],
        on_error: Callable[[int, Exception], None],
        name: str = "anyi2v-latest-wins",
    ) -> None:
        self._work, self._on_done, self._on_error = work, on_done, on_error
        self._condition = threading.Condition()
        self._pending: tuple[int, Request] | None = None
        self._generation = 0
        self._closed = False
        self.busy = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, request: Request) -> int:
        with self._condition:
            self._generation += 1
            self._pending = (self._generation, request)
            self._condition.notify()
            return self._generation

    def close(self, timeout: float = 5.0) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify()
        self._thread.join(timeout)

    @property
    def latest(self) -> int:
        """The generation of the newest request (0 before any)."""
        with self._condition:
            return self._generation

    def is_latest(self, generation: int) -> bool:
        """Whether ``generation`` answers the newest request (so nothing newer is on its way)."""
        with self._condition:
            return generation == self._generation

    def idle(self) -> bool:
        with self._condition:
            return self._pending is None and not self.busy

    def _run(self) -> None:
        while True:
            with self._condition:
                while self._pending is None and not self._closed:
                    self._condition.wait()
                if self._closed:
                    return
                assert self._pending is not None
                generation, request = self._pending
                self._pending = None
                self.busy = True
            try:
                result = self._work(request)
            except Exception as error:  # reported to the view, which shows it; the worker lives on
                self._on_error(generation, error)
            else:
                self._on_done(generation, result)
            finally:
                with self._condition:
                    self.busy = False


def default_scene_camera(fov_deg: float = 50.0) -> Camera:
    """The condition view's first camera for a newly opened asset (three-quarter view, framed)."""
    from anyi2v.render.condition import default_camera

    camera = default_camera(fov_deg)
    return Camera(eye=camera.eye, target=camera.target, up=camera.up, fov_deg=camera.fov_deg)
