"""Procedural toy-world scenes: one to three primitives moving over a background, with a caption.

A :class:`Scene` is plain data (numpy), sampled deterministically from a seed by :func:`sample_scene`:
per frame, each object's position, rotation and scale, and the camera; the background pattern; and
the caption its attributes make ("a shiny red torus and a blue cube on a striped background").
Rendering happens elsewhere (``toyworld.render``, in torch), so scenes are cheap to sample on a CPU
while a GPU renders them.

World units: the camera looks at the origin from about 4 units away with a 50 degree field of view,
so the visible area around the origin is about 3.7 units across; objects are 0.5 to 1.4 units wide.
Motion: each object follows a smooth path through random control points (a monotone cubic per
coordinate, so it never overshoots them), or stays put; some grow or shrink; some spin; sometimes
the camera pans (eye and target move together).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.interpolate import PchipInterpolator
from scipy.spatial.transform import Rotation

FRAMES = 16
MAX_OBJECTS = 3
BLOB_BALLS = 4
FOV_DEG = 50.0
CAMERA_EYE = (0.0, 0.6, 4.0)

# Kind names as the renderer knows them, and the word a caption uses.
SHAPE_WORDS: dict[str, str] = {
    "sphere": "sphere",
    "box": "cube",
    "torus": "torus",
    "cone": "cone",
    "cylinder": "cylinder",
    "capsule": "capsule",
    "blob": "blob",
}
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.82, 0.12, 0.10),
    "orange": (0.95, 0.50, 0.10),
    "yellow": (0.95, 0.85, 0.15),
    "green": (0.15, 0.65, 0.20),
    "cyan": (0.15, 0.75, 0.80),
    "blue": (0.12, 0.25, 0.85),
    "purple": (0.50, 0.20, 0.70),
    "pink": (0.95, 0.55, 0.70),
    "brown": (0.50, 0.30, 0.15),
    "white": (0.92, 0.92, 0.92),
    "grey": (0.50, 0.50, 0.50),
    "black": (0.08, 0.08, 0.08),
}
BACKGROUNDS = ("solid", "gradient", "stripes", "checker", "noise")
BACKGROUND_PHRASES = {
    "solid": "a plain {colour} background",
    "gradient": "a {colour} gradient background",
    "stripes": "a striped background",
    "checker": "a checkered background",
    "noise": "a cloudy background",
}
MODALITY_PHRASES = {
    "depth": "a depth map of",
    "normal": "a normal map of",
    "edges": "an edge map of",
    "splat": "a point cloud of",
}


@dataclass(frozen=True)
class SceneObject:
    """One primitive over the clip. size : (3,) per kind (see ``toyworld.render``); blob : (BLOB_BALLS, 4)
    ball offsets and radii in units of size[0] (zeros for other kinds); positions : (F, 3);
    rotations : (F, 3, 3) object to world; scales : (F,) multiplying size and blob."""

    kind: str
    colour: str
    albedo: tuple[float, float, float]
    gloss: float
    size: NDArray[np.float64]
    blob: NDArray[np.float64]
    positions: NDArray[np.float64]
    rotations: NDArray[np.float64]
    scales: NDArray[np.float64]

    @property
    def phrase(self) -> str:
        words = (["shiny"] if self.gloss > 0 else []) + [self.colour, SHAPE_WORDS[self.kind]]
        article = "an" if words[0][0] in "aeiou" else "a"
        return " ".join([article, *words])


@dataclass(frozen=True)
class Background:
    """A screen-space pattern: kind, two colours (names and RGB), angle (radians), frequency (cycles
    across the image) and a seed for the noise kind."""

    kind: str
    colour: str
    first: tuple[float, float, float]
    second: tuple[float, float, float]
    angle: float
    frequency: float
    seed: int

    @property
    def phrase(self) -> str:
        return BACKGROUND_PHRASES[self.kind].format(colour=self.colour)


@dataclass(frozen=True)
class Scene:
    """objects, background; eyes and targets : (F, 3) camera per frame (Y up, vertical FOV_DEG)."""

    objects: tuple[SceneObject, ...]
    background: Background
    eyes: NDArray[np.float64]
    targets: NDArray[np.float64]
    seed: int

    @property
    def frames(self) -> int:
        return int(self.eyes.shape[0])

    def caption(self, modality: str | None = None) -> str:
        """The video's caption; with a modality, the caption of that condition image of the scene (no
        background: condition passes draw none)."""
        phrases = [o.phrase for o in self.objects]
        things = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
        if modality is not None:
            return f"{MODALITY_PHRASES[modality]} {things}"
        return f"{things} on {self.background.phrase}"


def vocabulary() -> list[str]:
    """Every word a caption can use, sorted."""
    words = {"a", "an", "and", "on", "of", "shiny", "background", "map", "point", "cloud"}
    words |= set(SHAPE_WORDS.values()) | set(COLOURS)
    for phrase in [*BACKGROUND_PHRASES.values(), *MODALITY_PHRASES.values()]:
        words |= {w for w in phrase.replace("{colour}", "").split() if w}
    return sorted(words)


def _path(rng: np.random.Generator, frames: int, moving: bool) -> NDArray[np.float64]:
    """(F, 3) positions: a monotone cubic through 2 to 4 control points spread over the clip."""
    start = np.array([rng.uniform(-1.2, 1.2), rng.uniform(-0.9, 0.9), rng.uniform(-0.6, 0.6)])
    if not moving or frames < 2:  # a single frame is the clip's starting state
        return np.repeat(start[None], frames, axis=0)
    count = int(rng.integers(2, 5))
    travel = rng.uniform(0.6, 2.2)  # total distance of the first leg's direction, in world units
    direction = rng.normal(size=3) * np.array([1.0, 0.8, 0.4])
    direction /= np.linalg.norm(direction) + 1e-9
    points = [start]
    for _ in range(count - 1):
        turn = rng.normal(size=3) * np.array([0.6, 0.6, 0.25])
        step = direction * travel / (count - 1) + turn * travel / (count - 1) * 0.5
        points.append(np.clip(points[-1] + step, [-1.6, -1.2, -0.9], [1.6, 1.2, 0.9]))
    times = np.linspace(0, frames - 1, count)
    curve = PchipInterpolator(times, np.stack(points), axis=0)
    positions: NDArray[np.float64] = curve(np.arange(frames))
    return positions


def _object(rng: np.random.Generator, frames: int, moving: bool) -> SceneObject:
    kind = str(rng.choice(list(SHAPE_WORDS)))
    colour = str(rng.choice(list(COLOURS)))
    albedo = tuple(float(c) for c in np.clip(np.array(COLOURS[colour]) + rng.normal(0, 0.03, 3), 0, 1))
    gloss = float(rng.uniform(0.4, 0.8)) if rng.random() < 0.35 else 0.0
    radius = rng.uniform(0.3, 0.6)
    size = {
        "sphere": [radius, 0.0, 0.0],
        "box": list(radius * rng.uniform(0.6, 1.0, 3)),
        "torus": [radius * 0.75, radius * 0.28, 0.0],
        "cone": [radius * 0.8, radius * 0.9, 0.0],
        "cylinder": [radius * 0.7, radius * 0.8, 0.0],
        "capsule": [radius * 0.45, radius * 0.6, 0.0],
        "blob": [radius, radius * 0.3, 0.0],
    }[kind]
    blob = np.zeros((BLOB_BALLS, 4))
    if kind == "blob":
        offsets = rng.normal(size=(BLOB_BALLS, 3))
        offsets *= rng.uniform(0.2, 0.6, (BLOB_BALLS, 1)) / (np.linalg.norm(offsets, axis=1, keepdims=True) + 1e-9)
        blob = np.concatenate([offsets, rng.uniform(0.35, 0.6, (BLOB_BALLS, 1))], axis=1)
    start = Rotation.random(random_state=rng)
    spin = rng.uniform(-0.15, 0.15) if rng.random() < 0.5 else 0.0  # radians per frame
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis) + 1e-9
    turns = Rotation.from_rotvec(np.outer(np.arange(frames) * spin, axis))
    rotations = (turns * start).as_matrix()
    scales = np.ones(frames)
    if rng.random() < 0.3:
        scales = np.linspace(1.0, rng.uniform(0.6, 1.5), frames)
    return SceneObject(
        kind=kind,
        colour=colour,
        albedo=(albedo[0], albedo[1], albedo[2]),
        gloss=gloss,
        size=np.asarray(size, dtype=np.float64),
        blob=blob,
        positions=_path(rng, frames, moving),
        rotations=rotations,
        scales=scales,
    )


def _background(rng: np.random.Generator) -> Background:
    kind = str(rng.choice(BACKGROUNDS))
    colour = str(rng.choice(list(COLOURS)))
    first = np.array(COLOURS[colour])
    second = np.clip(first * rng.uniform(0.3, 0.7) + rng.uniform(0.0, 0.5, 3), 0, 1)
    if kind in ("stripes", "checker"):
        second = np.array(COLOURS[str(rng.choice([c for c in COLOURS if c != colour]))])
    return Background(
        kind=kind,
        colour=colour,
        first=(float(first[0]), float(first[1]), float(first[2])),
        second=(float(second[0]), float(second[1]), float(second[2])),
        angle=float(rng.uniform(0, np.pi)),
        frequency=float(rng.uniform(2.0, 6.0)),
        seed=int(rng.integers(0, 2**31)),
    )


def sample_scene(seed: int, frames: int = FRAMES) -> Scene:
    """The scene of one seed: the same seed always gives the same scene."""
    rng = np.random.default_rng(seed)
    count = int(rng.integers(1, MAX_OBJECTS + 1))
    moving = rng.random(count) < 0.8
    if not moving.any() and rng.random() < 0.8:
        moving[0] = True
    objects = tuple(_object(rng, frames, bool(m)) for m in moving)
    eye = np.array(CAMERA_EYE) + rng.normal(0, 0.15, 3)
    target = rng.normal(0, 0.1, 3)
    pan = np.zeros(3)
    if rng.random() < 0.25:
        angle = rng.uniform(0, 2 * np.pi)
        pan = np.array([np.cos(angle), np.sin(angle) * 0.6, 0.0]) * rng.uniform(0.3, 0.9)
    ramp = np.linspace(0.0, 1.0, frames)[:, None]
    return Scene(
        objects=objects,
        background=_background(rng),
        eyes=eye[None] + ramp * pan[None],
        targets=target[None] + ramp * pan[None],
        seed=seed,
    )
