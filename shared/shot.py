"""The Shot document: the one file a user saves and the daemon runs.

A shot says what to make (output size, frames, prompt), from what structure (condition layers:
images or a 3D scene rendered into a modality, each optionally restricted to a region; the kinds and
their older names are in ``modalities.py``), how things move (tracks of keyframed boxes), how the
method runs (sampling and AnyI2V settings) and, optionally, on which models (``model``: names in the
daemon's model library, never paths; ``model_names.py``).

Paths inside a shot are relative to the shot file's folder. Boxes and points are normalized.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from .curves import Interpolation
from .modalities import MODALITIES as MODALITIES  # re-exported: the shot's kinds
from .modalities import Modality, current_modality, describe_aliases
from .model import DocumentModel
from .model_names import (
    LIBRARY_NAME_PATTERN,
    MAX_LIBRARY_NAME_LENGTH,
    MAX_WEIGHT,
    MIN_WEIGHT,
    Scheduler,
    library_name_problem,
)
from .motion import Anchor, CameraKey, ObjectMotion, check_scene_motion
from .settings import MethodSettings, Sampling
from .tracks import Track

SCHEMA_VERSION = 4
DEFAULT_MAX_FRAMES = 32  # AnimateDiff motion adapters v2 and v3; v1 allows 24.


def _current_modality(value: object) -> object:
    # An older name becomes the current one; an unknown name is refused naming every kind (modalities.py).
    return current_modality(value) if isinstance(value, str) else value


def _relative_path(path: str) -> str:
    if "\x00" in path:
        raise ValueError("a path may not contain a NUL character")
    if not path.strip():
        raise ValueError("the path is empty")
    return path


def _library_name(name: str) -> str:
    problem = library_name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    return name


LibraryName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_LIBRARY_NAME_LENGTH,
        json_schema_extra={"pattern": LIBRARY_NAME_PATTERN},
        description=(
            "The name of an entry of the daemon's model library (anyi2v models lists them), such as"
            " 'checkpoints/realisticVision_v51' or its short name 'realisticVision_v51'; never a path."
        ),
    ),
    AfterValidator(_library_name),
]
FilePath = Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(_relative_path)]
Vector3 = tuple[float, float, float]


class Output(DocumentModel):
    """What the video is: size in pixels (multiples of 8), frame count and rate."""

    width: int = Field(512, ge=64, le=4096, multiple_of=8, description="Width in pixels, a multiple of 8.")
    height: int = Field(512, ge=64, le=4096, multiple_of=8, description="Height in pixels, a multiple of 8.")
    n_frames: int = Field(16, ge=2, le=1024, description="Frames in the clip; at most the motion module's limit.")
    fps: float = Field(8.0, gt=0.0, le=240.0, description="Playback rate, frames per second.")

    @field_validator("n_frames")
    @classmethod
    def _within_motion_module(cls, n_frames: int, info: ValidationInfo) -> int:
        limit = info.context.get("max_frames", DEFAULT_MAX_FRAMES) if isinstance(info.context, dict) else None
        limit = DEFAULT_MAX_FRAMES if limit is None else limit
        if n_frames > limit:
            raise ValueError(f"{n_frames} frames is more than the motion module allows ({limit})")
        return n_frames


class Camera(DocumentModel):
    """A look-at pinhole camera; ``fov_deg`` is the vertical field of view."""

    eye: Vector3 = Field(description="Camera position.")
    target: Vector3 = Field((0.0, 0.0, 0.0), description="The point the camera looks at.")
    up: Vector3 = Field((0.0, 1.0, 0.0), description="Up direction.")
    fov_deg: float = Field(50.0, gt=1.0, lt=170.0, description="Vertical field of view in degrees.")

    @field_validator("target")
    @classmethod
    def _target_differs_from_eye(cls, target: Vector3, info: ValidationInfo) -> Vector3:
        eye = info.data.get("eye")
        if eye is not None and tuple(eye) == tuple(target):
            raise ValueError("target equals eye: the camera has no viewing direction")
        return target


class Scene(DocumentModel):
    """A mesh or point cloud file, the camera that sees it at frame 0, and motion directed in 3D (see
    ``shared.motion``): a camera path, moving objects and anchors on static geometry."""

    path: FilePath = Field(description="Mesh (.glb .gltf .obj .ply .stl .off) or point cloud (.ply .pcd .xyz .npy).")
    up_axis: Literal["y", "z", "-y", "-z"] = Field(
        "y", description="Which axis of the file points up: y (glTF's), z, or -y or -z (a camera frame: y down)."
    )
    camera: Camera = Field(description="The camera at frame 0.")
    camera_interpolation: Interpolation = Field(
        "smooth", description="How the camera moves from frame 0 to the first key of camera_path."
    )
    camera_path: tuple[CameraKey, ...] = Field(
        (), max_length=10_000, description="Camera keys after frame 0 (orbit, dolly, pan); empty: a still camera."
    )
    motions: tuple[ObjectMotion, ...] = Field((), max_length=64, description="Objects keyframed in 3D.")
    anchors: tuple[Anchor, ...] = Field((), max_length=64, description="Static geometry tracked as camera motion.")

    @model_validator(mode="after")
    def _check_motion(self) -> Scene:
        check_scene_motion(self.camera_path, self.motions, self.anchors)
        ordered = tuple(sorted(self.camera_path, key=lambda key: key.frame))
        if ordered != self.camera_path:
            object.__setattr__(self, "camera_path", ordered)
        return self

    @property
    def derived_track_ids(self) -> tuple[str, ...]:
        """Ids of the 2D tracks the scene's motions and anchors produce."""
        return tuple(m.track for m in self.motions) + tuple(a.track for a in self.anchors)


class ImageSource(DocumentModel):
    """A condition image the user brings (a depth map, a sketch, a skeleton...)."""

    kind: Literal["image"]
    path: FilePath = Field(description="Image file, relative to the shot file.")


class SceneSource(DocumentModel):
    """This layer is rendered from the shot's scene in the layer's modality."""

    kind: Literal["scene"]


class MaskRegion(DocumentModel):
    """Restrict a layer to the white part of a mask image (or to its black part with ``invert``)."""

    kind: Literal["mask"]
    path: FilePath
    invert: bool = False


class ObjectRegion(DocumentModel):
    """Restrict a layer to the silhouette of a named object of the scene (or to the rest with ``invert``)."""

    kind: Literal["object"]
    object: str = Field(min_length=1, max_length=200, description="Object name in the scene file.")
    invert: bool = False


class ConditionLayer(DocumentModel):
    """One layer of the conditional image. Later layers are drawn over earlier ones inside their region."""

    source: ImageSource | SceneSource = Field(discriminator="kind")
    modality: Annotated[Modality, BeforeValidator(_current_modality)] = Field(
        description=(
            "What the layer shows: a 3D scene renders into depth, normal, silhouette, segmentation, edges,"
            " soft_edges, shaded or splat; an image may also be a skeleton, a sketch, rgb (the image as it is)"
            f" or other. Older names are read as current ones: {describe_aliases()}."
        )
    )
    region: MaskRegion | ObjectRegion | None = Field(None, discriminator="kind")


class WeightedModel(DocumentModel):
    """A LoRA or motion LoRA of the library and the weight it is applied at."""

    name: LibraryName
    weight: float = Field(
        1.0,
        ge=MIN_WEIGHT,
        le=MAX_WEIGHT,
        description=(
            f"A finite number from {MIN_WEIGHT:g} to {MAX_WEIGHT:g}: 1 is the file's full strength, 0 turns it"
            " off, a negative weight pushes the other way."
        ),
    )


class ModelChoice(DocumentModel):
    """Which models run the shot, each by its name in the daemon's model library. Every part left out (or
    null) is the daemon's default for it; an empty list of LoRAs means none."""

    checkpoint: LibraryName | None = Field(None, description="The SD 1.5 checkpoint (absent: the daemon's).")
    motion_module: LibraryName | None = Field(None, description="The AnimateDiff motion module (absent: the daemon's).")
    loras: tuple[WeightedModel, ...] | None = Field(
        None, max_length=16, description="LoRAs fused into the checkpoint (absent: the daemon's; empty: none)."
    )
    motion_loras: tuple[WeightedModel, ...] | None = Field(
        None,
        max_length=8,
        description="Motion LoRAs (camera moves) fused into the motion module (absent: the daemon's; empty: none).",
    )
    vae: LibraryName | None = Field(None, description="A VAE replacing the checkpoint's (absent: the daemon's).")
    scheduler: Scheduler | None = Field(
        None,
        description=(
            "The sampler: ddim (as the AnyI2V authors run it), euler, dpmpp_2m_karras or lcm (for AnimateLCM"
            " motion modules); absent: the daemon's, ddim unless it was started with another."
        ),
    )

    @field_validator("loras", "motion_loras")
    @classmethod
    def _each_once(
        cls, entries: tuple[WeightedModel, ...] | None, info: ValidationInfo
    ) -> tuple[WeightedModel, ...] | None:
        first_at: dict[str, int] = {}
        for index, entry in enumerate(entries or ()):
            if entry.name in first_at:
                raise ValueError(
                    f"{info.field_name}[{index}] names {entry.name!r} as {info.field_name}[{first_at[entry.name]}]"
                    " does; give each once, with the sum of the weights"
                )
            first_at[entry.name] = index
        return entries


class Shot(DocumentModel):
    """A shot: the document the desktop edits, the CLI reads and the daemon runs."""

    schema_version: Literal[4] = Field(description="Version of this document format.")
    name: str = Field("", max_length=200, description="A name for people.")
    output: Output = Output()
    prompt: str = Field(max_length=4000, description="What the video shows.")
    negative_prompt: str = Field("", max_length=4000, description="What it should not show.")
    sampling: Sampling = Sampling()
    scene: Scene | None = Field(None, description="The 3D asset that scene layers render; null for image-only shots.")
    conditions: tuple[ConditionLayer, ...] = Field(min_length=1, max_length=16)
    tracks: tuple[Track, ...] = Field((), max_length=64)
    method: MethodSettings = MethodSettings()
    model: ModelChoice | None = Field(
        None,
        description="Which models run the shot, by their names in the daemon's model library; absent: its default.",
    )

    @field_validator("conditions")
    @classmethod
    def _scene_layers_need_a_scene(
        cls, conditions: tuple[ConditionLayer, ...], info: ValidationInfo
    ) -> tuple[ConditionLayer, ...]:
        if "scene" in info.data and info.data["scene"] is not None:
            return conditions
        if "scene" not in info.data:  # the scene itself is invalid and already reported
            return conditions
        for index, layer in enumerate(conditions):
            if isinstance(layer.source, SceneSource):
                raise ValueError(f"conditions[{index}] renders the scene, but the shot has no scene")
            if isinstance(layer.region, ObjectRegion):
                raise ValueError(
                    f"conditions[{index}] is limited to object {layer.region.object!r}, but the shot has no scene"
                )
        return conditions

    @field_validator("tracks")
    @classmethod
    def _unique_track_ids(cls, tracks: tuple[Track, ...], info: ValidationInfo) -> tuple[Track, ...]:
        first_at: dict[str, int] = {}
        for index, track in enumerate(tracks):
            if track.id in first_at:
                raise ValueError(f"tracks[{first_at[track.id]}] and tracks[{index}] have the same id {track.id!r}")
            first_at[track.id] = index
        scene = info.data.get("scene")
        if isinstance(scene, Scene):
            for track_id in scene.derived_track_ids:
                if track_id in first_at:
                    raise ValueError(
                        f"tracks[{first_at[track_id]}] has id {track_id!r}, which the scene's 3D motion already"
                        " produces; rename one of them"
                    )
        return tracks
