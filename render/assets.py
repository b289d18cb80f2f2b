"""Meshes and point clouds from files into an ``Asset``, with every failure a typed ``AssetError``.

Meshes (.glb, .gltf, .obj, .ply with faces or triangle strips, .stl, .off) are parsed by trimesh
(``mesh_formats``); point clouds by trimesh (.ply without faces), Open3D (.pcd, .xyz) or numpy (.npy)
(``point_formats``). No parser is trusted: each file is checked before parsing (in its format's module:
header counts against the file size and the limits, references that leave the file's folder, OBJ and
OFF face indices) and every result after, here (empty, non-finite, face indices in range). A point
cloud's NaN points (a scan's holes) and a mesh's zero-area and duplicate triangles (``mesh_cleanup``)
are dropped and counted in ``Asset.warnings``.

``read_asset`` parses in this process. ``load_asset`` parses in a child process with a time and a
memory limit (``safe_load``); use it on any file a person picked. The errors live in ``errors``, the
limits in ``limits``; both are importable from here too.
"""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from .errors import (
    AssetError,
    AssetTooLarge,
    BadFaceIndices,
    EmptyAsset,
    LoaderCrashed,
    LoadTimeout,
    NonFiniteAsset,
    PathEscapes,
    UnreadableAsset,
)
from .geometry import Asset, MeshObject, PointObject, SceneObject
from .limits import DEFAULT_LIMITS, UP_AXES, LoadLimits, Reader, UpAxis
from .mesh_cleanup import drop_idle_faces
from .mesh_formats import parse_with_trimesh
from .point_formats import parse_npy, parse_with_open3d
from .safe_load import load_in_child

__all__ = [
    "DEFAULT_LIMITS",
    "MESH_SUFFIXES",
    "POINT_SUFFIXES",
    "SUFFIXES",
    "UP_AXES",
    "AssetError",
    "AssetTooLarge",
    "BadFaceIndices",
    "EmptyAsset",
    "LoadLimits",
    "LoadTimeout",
    "LoaderCrashed",
    "NonFiniteAsset",
    "PathEscapes",
    "Reader",
    "UnreadableAsset",
    "UpAxis",
    "load_asset",
    "normalize",
    "read_asset",
]


MESH_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl", ".off")
POINT_SUFFIXES = (".ply", ".pcd", ".xyz", ".npy")
SUFFIXES = tuple(dict.fromkeys(MESH_SUFFIXES + POINT_SUFFIXES))


def load_asset(
    path: str | os.PathLike[str],
    *,
    up_axis: UpAxis = "y",
    limits: LoadLimits = DEFAULT_LIMITS,
    reader: Reader | None = None,
) -> Asset:
    """``read_asset`` in a child process under ``limits.timeout_s`` and ``limits.memory_bytes``.

    Raises what ``read_asset`` raises, and ``LoadTimeout`` or ``LoaderCrashed``. ``reader`` replaces
    ``read_asset`` in the child (tests inject slow or crashing ones); it must be a module-level function.
    """
    return load_in_child(path, up_axis=up_axis, limits=limits, reader=reader or read_asset)


def read_asset(path: str | os.PathLike[str], up_axis: UpAxis = "y", limits: LoadLimits = DEFAULT_LIMITS) -> Asset:
    """Parse, check and ``normalize`` one file in this process. Raises an ``AssetError`` subclass."""
    _check_up_axis(up_axis)
    file = Path(path)
    data = _read_checked(file, limits)
    suffix = file.suffix.lower()
    objects: list[SceneObject]
    if suffix == ".npy":
        objects = [parse_npy(file, data)]
    elif suffix in (".pcd", ".xyz"):
        objects = [parse_with_open3d(file, data, limits)]
    else:
        objects = parse_with_trimesh(file, data, limits)
    objects, warnings = _check_objects(file, objects, limits)
    return normalize(Asset(source=str(file), objects=tuple(objects), warnings=warnings), up_axis)


_TO_Y_UP = {  # rotations (det +1) taking each up axis to +y
    "z": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]),  # (x, y, z) -> (x, z, -y)
    "-y": np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]]),  # (x, y, z) -> (x, -y, -z)
    "-z": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]),  # (x, y, z) -> (x, -z, y)
}


def _check_up_axis(up_axis: str) -> None:
    if up_axis not in UP_AXES:
        raise ValueError(f"up_axis must be one of {', '.join(UP_AXES)}; got {up_axis!r}")


def normalize(asset: Asset, up_axis: UpAxis = "y") -> Asset:
    """Y up, centred at the origin, largest extent 1: one rotation, scale and shift for the whole asset.

    ``up_axis="z"`` first maps (x, y, z) to (x, z, -y), ``"-y"`` (a camera frame: y down) to (x, -y, -z),
    ``"-z"`` to (x, -z, y). An asset whose points all coincide is only moved.
    Raises ``NonFiniteAsset`` (naming ``asset.source``) when the extent overflows or a result is not finite.
    """
    _check_up_axis(up_axis)
    if not asset.objects:
        return asset
    coords = [_coords(item) for item in asset.objects]
    if up_axis != "y":
        coords = [points @ _TO_Y_UP[up_axis].T for points in coords]
    stacked = np.concatenate(coords)
    low, high = stacked.min(axis=0), stacked.max(axis=0)
    with np.errstate(over="ignore", invalid="ignore"):
        centre = low / 2.0 + high / 2.0  # (low + high) / 2 to the last digit, without overflowing near 1e308
        extent = float((high - low).max())
    if not np.isfinite(extent) or not np.isfinite(centre).all():
        raise NonFiniteAsset(asset.source, "the coordinates span more than a float can hold (the extent overflows)")
    scale = 1.0 / extent if extent > 0 and np.isfinite(1.0 / extent) else 1.0
    moved: list[SceneObject] = []
    for item, points in zip(asset.objects, coords, strict=True):
        with np.errstate(over="ignore", invalid="ignore"):
            fitted = (points - centre) * scale
        if not np.isfinite(fitted).all():
            raise NonFiniteAsset(asset.source, "the coordinates are not finite once centred and scaled")
        moved.append(replace(item, vertices=fitted) if isinstance(item, MeshObject) else replace(item, points=fitted))
    return replace(asset, objects=tuple(moved))


def _coords(item: SceneObject) -> NDArray[np.float64]:
    """(n, 3) float64: a mesh's vertices or a cloud's points."""
    return np.asarray(item.points, dtype=np.float64)


# --- the file itself ---------------------------------------------------------------------------------


def _read_checked(file: Path, limits: LoadLimits) -> bytes:
    """The file's bytes, after checking it is a regular file of a known type within the size limit."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)  # a FIFO must not block
    try:
        fd = os.open(file, flags)
    except FileNotFoundError:
        raise UnreadableAsset(file, "no such file") from None
    except IsADirectoryError:
        raise UnreadableAsset(file, "is a directory, not a file") from None
    except PermissionError:
        raise UnreadableAsset(file, "permission denied") from None
    except OSError as error:
        raise UnreadableAsset(file, f"cannot open: {error.strerror or error}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise UnreadableAsset(file, "is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableAsset(file, "not a regular file")
        suffix = file.suffix.lower()
        if suffix not in SUFFIXES:
            raise UnreadableAsset(
                file, f"unknown extension {suffix or '(none)'!r}; expected one of {', '.join(SUFFIXES)}"
            )
        if info.st_size > limits.max_file_bytes:
            raise AssetTooLarge(file, f"{info.st_size} bytes, over the limit of {limits.max_file_bytes}")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limits.max_file_bytes + 1)
    except OSError as error:
        raise UnreadableAsset(file, f"cannot read: {error.strerror or error}") from None
    finally:
        os.close(fd)
    if len(data) > limits.max_file_bytes:
        raise AssetTooLarge(file, f"over the limit of {limits.max_file_bytes} bytes")
    if not data:
        raise EmptyAsset(file, "the file is empty")
    return data


# --- checks after parsing ----------------------------------------------------------------------------


def _check_objects(
    file: Path, objects: list[SceneObject], limits: LoadLimits
) -> tuple[list[SceneObject], tuple[str, ...]]:
    """Sizes, emptiness, face indices and finiteness of what a parser returned: never trust it.

    Returns the objects, with a point cloud's NaN or infinite points dropped (a scan's holes: an
    organized PCD marks them so), and a warning for each cloud that lost some. A mesh with such a
    vertex, or a cloud with no finite point left, is refused."""
    if not objects:
        raise EmptyAsset(file, "no meshes or points in the file")
    faces = sum(len(item.faces) for item in objects if isinstance(item, MeshObject))
    points = sum(len(_coords(item)) for item in objects)
    if faces > limits.max_faces:
        raise AssetTooLarge(file, f"{faces} faces, over the limit of {limits.max_faces}")
    if points > limits.max_points:
        kinds = {"vertices" if isinstance(item, MeshObject) else "points" for item in objects}
        raise AssetTooLarge(file, f"{points} {' and '.join(sorted(kinds))}, over the limit of {limits.max_points}")
    checked: list[SceneObject] = []
    warnings: list[str] = []
    for item in objects:
        mesh = isinstance(item, MeshObject)
        label = ("the mesh" if mesh else "the point cloud") + (f" {item.name!r}" if len(objects) > 1 else "")
        coords = _coords(item)
        if coords.ndim != 2 or coords.shape[1] != 3:
            raise UnreadableAsset(file, f"{label} has coordinates of shape {coords.shape}, not (n, 3)")
        if len(coords) == 0:
            raise EmptyAsset(file, f"{label} has no {'vertices' if mesh else 'points'}")
        if isinstance(item, MeshObject):
            if item.faces.size == 0:
                raise EmptyAsset(file, f"{label} has no faces")
            low, high = int(item.faces.min()), int(item.faces.max())
            if low < 0 or high >= len(coords):
                bad = low if low < 0 else high
                raise BadFaceIndices(file, f"{label} has face index {bad}, out of range for {len(coords)} vertices")
        finite = np.isfinite(coords).all(axis=1)
        broken = int((~finite).sum())
        if broken and mesh:
            raise NonFiniteAsset(
                file, f"{label} has NaN or infinite coordinates at {broken} of its {len(coords)} vertices"
            )
        if broken == len(coords):
            raise NonFiniteAsset(file, f"{label} has no finite points: all {broken} have NaN or infinite coordinates")
        if isinstance(item, PointObject) and broken:
            colors = None if item.colors is None else item.colors[finite]
            item = replace(item, points=coords[finite], colors=colors)
            warnings.append(
                f"{file.name}: {label}: dropped {broken} of its {len(coords)} points with NaN or infinite coordinates"
            )
        colors = item.vertex_colors if isinstance(item, MeshObject) else item.colors
        if colors is not None and not np.isfinite(colors).all():
            raise NonFiniteAsset(file, f"{label} has NaN or infinite colours")
        if isinstance(item, MeshObject):
            item, warning = _without_idle_faces(file, label, item)
            warnings += [warning] if warning else []
        checked.append(item)
    return checked, tuple(warnings)


def _without_idle_faces(file: Path, label: str, mesh: MeshObject) -> tuple[MeshObject, str]:
    """The mesh without zero-area and repeated triangles (``mesh_cleanup``), and a warning if it lost any."""
    kept, flat, repeated = drop_idle_faces(mesh)
    if len(kept.faces) == 0:
        raise EmptyAsset(file, f"{label} has no triangle of non-zero area")
    if not flat and not repeated:
        return kept, ""
    parts = [f"{flat} zero-area"] * bool(flat) + [f"{repeated} duplicate"] * bool(repeated)
    return kept, f"{file.name}: {label}: dropped {' and '.join(parts)} triangles of its {len(mesh.faces)}"
