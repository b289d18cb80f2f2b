"""The orbit's trigonometry, now in one place (``render.camera``): bit for bit what each of its three
former copies computed (``Camera.orbit``, the studio's ``OrbitCamera.eye``, ``motion._spherical``)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from anyi2v.render.camera import Camera, Vector3, orbit_angles, orbit_eye

AZIMUTHS = (-720.0, -359.9, -180.0, -135.5, -90.0, -45.0, -1e-9, 0.0, 1e-9, 13.7, 30.0, 90.0, 179.999, 180.0, 1000.1)
ELEVATIONS = (-95.0, -89.95, -89.9, -89.0, -60.0, -0.1, 0.0, 0.1, 20.0, 45.0, 89.0, 89.9, 89.95, 95.0)
DISTANCES = (1e-3, 0.05, 1.0, 1.7, math.pi, 100.0)
TARGETS: tuple[Vector3, ...] = ((0.0, 0.0, 0.0), (0.1, -0.2, 0.3), (-5.0, 2.5, 1e-7))
GRID = list(itertools.product(AZIMUTHS, ELEVATIONS, DISTANCES, TARGETS))


def old_camera_orbit_eye(azimuth_deg: float, elevation_deg: float, distance: float, target: Vector3) -> Vector3:
    """``Camera.orbit``'s eye as render/camera.py computed it before (elevation clamped to 89.9)."""
    elevation = math.radians(max(-89.9, min(89.9, elevation_deg)))
    azimuth = math.radians(azimuth_deg)
    offset = (
        distance * math.cos(elevation) * math.sin(azimuth),
        distance * math.sin(elevation),
        distance * math.cos(elevation) * math.cos(azimuth),
    )
    return (target[0] + offset[0], target[1] + offset[1], target[2] + offset[2])


def old_studio_eye(azimuth_deg: float, elevation_deg: float, distance: float, target: Vector3) -> Vector3:
    """``OrbitCamera.eye`` as desktop/models/condition.py computed it before (no clamp)."""
    azimuth, elevation = math.radians(azimuth_deg), math.radians(elevation_deg)
    return (
        target[0] + distance * math.cos(elevation) * math.sin(azimuth),
        target[1] + distance * math.sin(elevation),
        target[2] + distance * math.cos(elevation) * math.cos(azimuth),
    )


def old_spherical(offset: np.ndarray) -> tuple[float, float, float]:
    """``motion._spherical`` and ``OrbitCamera.from_camera`` before."""
    distance = float(np.linalg.norm(offset))
    azimuth = math.degrees(math.atan2(offset[0], offset[2]))
    elevation = math.degrees(math.asin(max(-1.0, min(1.0, offset[1] / distance))))
    return azimuth, elevation, distance


def test_orbit_eye_is_the_studios_old_formula_bit_for_bit() -> None:
    for azimuth, elevation, distance, target in GRID:
        assert orbit_eye(azimuth, elevation, distance, target) == old_studio_eye(azimuth, elevation, distance, target)


def test_camera_orbit_is_its_old_formula_bit_for_bit() -> None:
    for azimuth, elevation, distance, target in GRID:
        camera = Camera.orbit(azimuth, elevation, distance, target=target, fov_deg=40.0)
        assert camera.eye == old_camera_orbit_eye(azimuth, elevation, distance, target)
        assert (camera.target, camera.up, camera.fov_deg) == (target, (0.0, 1.0, 0.0), 40.0)


def test_orbit_angles_are_the_old_inverse_bit_for_bit_and_undo_orbit_eye() -> None:
    for azimuth, elevation, distance, target in GRID:
        offset = np.subtract(orbit_eye(azimuth, elevation, distance, target), target)
        assert orbit_angles(offset) == old_spherical(offset)
        if abs(elevation) < 89.0 and -180.0 < azimuth <= 180.0:
            back = orbit_angles(offset)
            np.testing.assert_allclose(back, (azimuth, elevation, distance), rtol=1e-6, atol=1e-6)


def test_orbit_distance_must_be_positive() -> None:
    with pytest.raises(ValueError, match="distance"):
        Camera.orbit(0.0, 0.0, 0.0)
