"""From an asset and a camera to condition images: passes, regions, composition and boxes.

A :class:`SceneView` casts the meshes and splats the point clouds once; every pass, region mask
and object box of that view reuses the result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import PurePath

import numpy as np
from numpy.typing import NDArray

from anyi2v.shared.modalities import SCENE_MODALITIES

from . import passes
from .camera import Camera
from .geometry import Asset, MeshObject, PointObject
from .raycast import CastTooSlow, MeshScene, RaycastHits
from .splat import Splats, splat

# The passes a view renders, named as a shot's condition kinds (``shared.modalities``): one vocabulary.
PASSES: tuple[str, ...] = SCENE_MODALITIES
NEEDS_MESH = {"normal", "edges", "soft_edges", "shaded"}


class RenderError(ValueError):
    """A pass, region or camera that cannot be rendered for this asset, with the reason."""


def fit_distance(fov_deg: float, radius: float = math.sqrt(3.0) / 2.0, margin: float = 1.1) -> float:
    """Camera distance at which a sphere of ``radius`` (a normalized asset's bound) fills the view."""
    return margin * radius / math.sin(math.radians(fov_deg) / 2.0)


def default_camera(fov_deg: float = 50.0) -> Camera:
    """A three-quarter view from the front, slightly above, that frames a normalized asset."""
    return Camera.orbit(azimuth_deg=30.0, elevation_deg=20.0, distance=fit_distance(fov_deg), fov_deg=fov_deg)


@dataclass
class SceneView:
    """One camera's view of one asset at one image size."""

    asset: Asset
    camera: Camera
    width: int
    height: int
    splat_radius_px: int = 1
    mesh_scene: MeshScene | None = None
    """The asset's meshes, ready to cast; pass one to share its BVH between views of the same asset."""
    _mesh_indices: list[int] = field(init=False)
    _cloud_indices: list[int] = field(init=False)

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.width % 8 or self.height % 8:
            raise RenderError(f"image size {self.width}x{self.height} must be positive multiples of 8")
        self._mesh_indices = [i for i, item in enumerate(self.asset.objects) if isinstance(item, MeshObject)]
        self._cloud_indices = [i for i, item in enumerate(self.asset.objects) if isinstance(item, PointObject)]

    @cached_property
    def meshes(self) -> tuple[MeshObject, ...]:
        """The asset's meshes, in the order of ``_mesh_indices``."""
        return tuple(m for m in (self.asset.objects[i] for i in self._mesh_indices) if isinstance(m, MeshObject))

    @cached_property
    def hits(self) -> RaycastHits:
        scene = self.mesh_scene if self.mesh_scene is not None else MeshScene(self.meshes)
        if [id(m) for m in scene.meshes] != [id(m) for m in self.meshes]:
            raise RenderError("the mesh scene passed to this view holds other meshes than its asset")
        try:
            return scene.cast(self.camera, self.width, self.height)
        except CastTooSlow as error:
            raise RenderError(f"ray casting {PurePath(self.asset.source).name} {error}") from None

    @cached_property
    def splats(self) -> Splats:
        clouds = [c for c in (self.asset.objects[i] for i in self._cloud_indices) if isinstance(c, PointObject)]
        return splat(clouds, self.camera, self.width, self.height, self.splat_radius_px)

    @cached_property
    def depth(self) -> NDArray[np.float64]:
        """(h, w) planar depth of the nearest surface or point; inf where empty."""
        return np.minimum(self.hits.depth, self.splats.depth)

    @cached_property
    def object_index(self) -> NDArray[np.int64]:
        """(h, w) index into ``asset.objects`` of the nearest surface or point; -1 where empty."""
        mesh_lookup = np.array([*self._mesh_indices, -1], dtype=np.int64)
        cloud_lookup = np.array([*self._cloud_indices, -1], dtype=np.int64)
        from_mesh = mesh_lookup[self.hits.object_index]  # -1 indexes the trailing -1
        from_cloud = cloud_lookup[self.splats.object_index]
        return np.where(self.splats.depth < self.hits.depth, from_cloud, from_mesh)

    def _merged_hits(self) -> RaycastHits:
        return replace(self.hits, depth=self.depth, object_index=self.object_index)

    def render(self, name: str) -> NDArray[np.float64]:
        """The pass ``name`` as an ``(h, w, 3)`` float image in 0..1."""
        if name not in PASSES:
            raise RenderError(f"unknown pass {name!r}; choose one of {', '.join(PASSES)}")
        if name in NEEDS_MESH and not self._mesh_indices:
            raise RenderError(f"the {name} pass needs a mesh, and {self.asset.source} holds only point clouds")
        if name == "depth":
            image = passes.depth_image(self._merged_hits())
        elif name == "silhouette":
            image = passes.silhouette(self._merged_hits())
        elif name == "segmentation":
            image = passes.object_colors(self._merged_hits())
        elif name == "normal":
            image = passes.normal_image(self.hits, self.camera)
        elif name == "edges":
            image = passes.edges(self.hits)
        elif name == "soft_edges":
            image = passes.soft_edges(self.hits)
        elif name == "shaded":
            image = passes.shaded(self.hits, self.meshes)
        else:  # splat
            if not self._cloud_indices:
                raise RenderError(f"the splat pass needs a point cloud, and {self.asset.source} holds only meshes")
            image = self.splats.color
        return as_rgb(image)

    def object_mask(self, name: str) -> NDArray[np.bool_]:
        """(h, w): where the object called ``name`` is the visible surface."""
        if name not in self.asset.names:
            known = ", ".join(repr(n) for n in self.asset.names)
            raise RenderError(f"no object named {name!r} in {self.asset.source}; it holds {known}")
        return np.asarray(self.object_index == self.asset.names.index(name))

    def object_boxes(self) -> dict[str, tuple[float, float, float, float]]:
        """Each object's 2D box (normalized, from its projected geometry, occluded parts included).

        Objects entirely behind the camera are left out."""
        boxes: dict[str, tuple[float, float, float, float]] = {}
        for item in self.asset.objects:
            pixels, depth = self.camera.project(item.points, self.width, self.height)
            front = depth > 1e-6
            if not np.any(front):
                continue
            low = pixels[front].min(axis=0) / (self.width, self.height)
            high = pixels[front].max(axis=0) / (self.width, self.height)
            boxes[item.name] = (float(low[0]), float(low[1]), float(high[0]), float(high[1]))
        return boxes


def as_rgb(image: NDArray[np.float64]) -> NDArray[np.float64]:
    """(h, w) or (h, w, 3) to (h, w, 3)."""
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image


def compose(layers: Sequence[tuple[NDArray[np.float64], NDArray[np.bool_] | None]]) -> NDArray[np.float64]:
    """Stack condition layers: each ``(image (h, w, 3), region (h, w) or None)`` is drawn over the ones
    before it, inside its region (everywhere when the region is None)."""
    if not layers:
        raise RenderError("nothing to compose: no layers")
    shape = layers[0][0].shape
    out = np.zeros(shape)
    for index, (image, region) in enumerate(layers):
        if image.shape != shape:
            raise RenderError(f"layer {index} is {image.shape[1]}x{image.shape[0]}, the first is {shape[1]}x{shape[0]}")
        if region is None:
            out = image.copy()
        else:
            out[region] = image[region]
    return out


def to_uint8(image: NDArray[np.float64]) -> NDArray[np.uint8]:
    """0..1 floats to 0..255 bytes."""
    return np.asarray(np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8))
