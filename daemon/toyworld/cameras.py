"""The toy world's pinhole cameras: look-at, focal length, and the rays through the pixel centres.

Cameras follow ``anyi2v.render.camera``: camera space has x right, y down, z forward; the field of view is
vertical; pixel (0, 0) is the top-left corner of the top-left pixel and rays go through pixel centres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["Cameras", "Vector3", "pixel_rays"]

Vector3 = tuple[float, float, float]


@dataclass
class Cameras:
    """B pinhole cameras.

    eye : (B, 3) world position
    rotation : (B, 3, 3) world-to-camera; rows are the camera's x (right), y (down), z (forward) axes,
        exactly as ``render.camera.Camera.rotation()``
    fov_deg : vertical field of view; focal = (H / 2) / tan(fov / 2), principal point at the image centre
    """

    eye: torch.Tensor
    rotation: torch.Tensor
    fov_deg: float = 50.0

    @classmethod
    def look_at(
        cls,
        eye: torch.Tensor | Vector3,
        target: torch.Tensor | Vector3,
        up: torch.Tensor | Vector3 = (0.0, 1.0, 0.0),
        fov_deg: float = 50.0,
    ) -> Cameras:
        """Cameras at ``eye`` looking at ``target``, each (B, 3) or (3,) (tensors or tuples, broadcast to one
        B); the same maths as ``render.camera.Camera``. Float32, on the device of the first tensor given."""
        if not 1.0 < fov_deg < 170.0:
            raise ValueError(f"fov_deg must be in (1, 170), got {fov_deg}")
        device = next((value.device for value in (eye, target, up) if isinstance(value, torch.Tensor)), None)
        eye_t, target_t, up_t = (
            torch.as_tensor(value, dtype=torch.float32, device=device).reshape(-1, 3) for value in (eye, target, up)
        )
        batch = max(eye_t.shape[0], target_t.shape[0], up_t.shape[0])
        eye_t, target_t, up_t = (value.expand(batch, 3) for value in (eye_t, target_t, up_t))
        forward = target_t - eye_t
        if bool((forward.norm(dim=-1) < 1e-9).any()):
            raise ValueError("camera target equals eye: no viewing direction")
        forward = forward / forward.norm(dim=-1, keepdim=True)
        right = torch.linalg.cross(forward, up_t)
        if bool((right.norm(dim=-1) < 1e-9 * up_t.norm(dim=-1)).any()):
            raise ValueError("camera up is parallel to the viewing direction")
        right = right / right.norm(dim=-1, keepdim=True)
        down = torch.linalg.cross(forward, right)
        return cls(eye=eye_t.contiguous(), rotation=torch.stack([right, down, forward], dim=1), fov_deg=fov_deg)

    def focal(self, height: int) -> float:
        """Focal length in pixels for images ``height`` pixels tall."""
        return (height / 2.0) / math.tan(math.radians(self.fov_deg) / 2.0)


def pixel_rays(cameras: Cameras, height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit world-space directions (B, H*W, 3) through the pixel centres, and the planar depth of a unit
    step along each, (H*W,)."""
    focal = cameras.focal(height)
    columns = (torch.arange(width, device=device, dtype=torch.float32) + 0.5 - width / 2.0) / focal
    rows = (torch.arange(height, device=device, dtype=torch.float32) + 0.5 - height / 2.0) / focal
    camera_dirs = torch.stack(
        [
            columns[None, :].expand(height, width),
            rows[:, None].expand(height, width),
            torch.ones(height, width, device=device),
        ],
        dim=-1,
    ).reshape(-1, 3)
    length = camera_dirs.norm(dim=-1)
    world = torch.einsum("pj,bji->bpi", camera_dirs / length[:, None], cameras.rotation.to(device).float())
    return world, 1.0 / length
