"""Pinhole cameras: look-at, orbit parameters (the one place their trigonometry lives), projection.

Conventions (OpenCV, as Open3D's ``RaycastingScene.create_rays_pinhole`` expects): camera space
has x right, y down, z forward; pixel (0, 0) is the top-left corner of the top-left pixel; the
field of view is vertical and pixels are square.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Vector3 = tuple[float, float, float]


def orbit_eye(azimuth_deg: float, elevation_deg: float, distance: float, target: Vector3 = (0.0, 0.0, 0.0)) -> Vector3:
    """The eye on a sphere of radius ``distance`` around ``target`` (Y up). Azimuth 0 looks from +Z
    towards -Z; positive azimuth turns the eye towards +X; positive elevation raises it. The angles are
    taken as given (callers keep the elevation off the poles)."""
    elevation = math.radians(elevation_deg)
    azimuth = math.radians(azimuth_deg)
    return (
        target[0] + distance * math.cos(elevation) * math.sin(azimuth),
        target[1] + distance * math.sin(elevation),
        target[2] + distance * math.cos(elevation) * math.cos(azimuth),
    )


def orbit_angles(offset: NDArray[np.float64]) -> tuple[float, float, float]:
    """(azimuth_deg, elevation_deg, distance) of an eye ``offset`` (3,) from its target: the inverse of
    :func:`orbit_eye`, azimuth in (-180, 180], elevation in [-90, 90]."""
    distance = float(np.linalg.norm(offset))
    azimuth = math.degrees(math.atan2(offset[0], offset[2]))
    elevation = math.degrees(math.asin(max(-1.0, min(1.0, offset[1] / distance))))
    return azimuth, elevation, distance


@dataclass(frozen=True)
class Camera:
    """A look-at pinhole camera. ``fov_deg`` is the vertical field of view."""

    eye: Vector3
    target: Vector3 = (0.0, 0.0, 0.0)
    up: Vector3 = (0.0, 1.0, 0.0)
    fov_deg: float = 50.0

    def __post_init__(self) -> None:
        forward = np.subtract(self.target, self.eye)
        if not np.all(np.isfinite(np.concatenate([self.eye, self.target, self.up]))):
            raise ValueError("camera eye, target and up must be finite")
        if np.linalg.norm(forward) < 1e-9:
            raise ValueError("camera target equals eye: no viewing direction")
        if np.linalg.norm(np.cross(forward, self.up)) < 1e-9 * np.linalg.norm(forward) * np.linalg.norm(self.up):
            raise ValueError("camera up is parallel to the viewing direction")
        if not 1.0 < self.fov_deg < 170.0:
            raise ValueError(f"fov_deg must be in (1, 170), got {self.fov_deg}")

    @classmethod
    def orbit(
        cls,
        azimuth_deg: float,
        elevation_deg: float,
        distance: float,
        target: Vector3 = (0.0, 0.0, 0.0),
        fov_deg: float = 50.0,
    ) -> Camera:
        """A camera on a sphere around ``target`` (Y up), at :func:`orbit_eye`; the elevation is kept
        within 89.9 degrees of the horizon, where a Y-up look-at is defined."""
        if distance <= 0:
            raise ValueError(f"orbit distance must be > 0, got {distance}")
        eye = orbit_eye(azimuth_deg, max(-89.9, min(89.9, elevation_deg)), distance, target)
        return cls(eye=eye, target=target, up=(0.0, 1.0, 0.0), fov_deg=fov_deg)

    def rotation(self) -> NDArray[np.float64]:
        """(3, 3) world-to-camera rotation; rows are the camera's x (right), y (down), z (forward) axes."""
        forward = np.subtract(self.target, self.eye).astype(np.float64)
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, np.asarray(self.up, dtype=np.float64))
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        return np.stack([right, down, forward])

    def extrinsic(self) -> NDArray[np.float64]:
        """(4, 4) world-to-camera transform."""
        rotation = self.rotation()
        matrix = np.eye(4)
        matrix[:3, :3] = rotation
        matrix[:3, 3] = -rotation @ np.asarray(self.eye, dtype=np.float64)
        return matrix

    def intrinsic(self, width: int, height: int) -> NDArray[np.float64]:
        """(3, 3) pinhole matrix for an image of ``width x height`` pixels."""
        focal = (height / 2.0) / math.tan(math.radians(self.fov_deg) / 2.0)
        return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])

    def to_camera(self, points: NDArray[np.float64]) -> NDArray[np.float64]:
        """points : (n, 3) world -> (n, 3) camera space (z is the depth along the view axis)."""
        rotation = self.rotation()
        moved: NDArray[np.float64] = (np.asarray(points, dtype=np.float64) - np.asarray(self.eye)) @ rotation.T
        return moved

    def project(
        self, points: NDArray[np.float64], width: int, height: int
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """points : (n, 3) world -> pixels (n, 2) as (x, y), and depth (n,). Points behind the camera get
        depth <= 0 and meaningless pixels: filter on depth."""
        camera_points = self.to_camera(points)
        depth = camera_points[:, 2]
        safe = np.where(np.abs(depth) < 1e-12, 1e-12, depth)
        k = self.intrinsic(width, height)
        x = k[0, 0] * camera_points[:, 0] / safe + k[0, 2]
        y = k[1, 1] * camera_points[:, 1] / safe + k[1, 2]
        return np.stack([x, y], axis=1), np.asarray(depth, dtype=np.float64)
