"""Meshes and point clouds from files into an ``Asset``, with every failure a typed ``AssetError``.

Meshes (.glb, .gltf, .obj, .ply with faces, .stl, .off) are parsed by trimesh; point clouds by trimesh
(.ply without faces), Open3D (.pcd, .xyz) or numpy (.npy). No parser is trusted: each file is checked
before parsing (header counts against the file size and the limits, references that leave the file's
folder, OBJ and OFF face indices) and every result after (empty, non-finite, face indices in range).

``read_asset`` parses in this process. ``load_asset`` parses in a child process with a time and a
memory limit (``safe_load``); use it on any file a person picked.
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
import struct
import urllib.parse
from dataclasses import replace
from pathlib import Path
from typing import Any

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
from .limits import DEFAULT_LIMITS, LoadLimits, Reader, UpAxis
from .safe_load import load_in_child

__all__ = [
    "DEFAULT_LIMITS",
    "MESH_SUFFIXES",
    "POINT_SUFFIXES",
    "SUFFIXES",
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
    if up_axis not in ("y", "z"):
        raise ValueError(f"up_axis must be 'y' or 'z', got {up_axis!r}")
    file = Path(path)
    data = _read_checked(file, limits)
    suffix = file.suffix.lower()
    objects: list[SceneObject]
    if suffix == ".npy":
        objects = [_parse_npy(file, data)]
    elif suffix in (".pcd", ".xyz"):
        objects = [_parse_open3d(file, data, limits)]
    else:
        objects = _parse_trimesh(file, data, limits)
    _check_objects(file, objects, limits)
    return normalize(Asset(source=str(file), objects=tuple(objects)), up_axis)


_Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def normalize(asset: Asset, up_axis: UpAxis = "y") -> Asset:
    """Y up, centred at the origin, largest extent 1: one rotation, scale and shift for the whole asset.

    ``up_axis="z"`` first maps (x, y, z) to (x, z, -y). An asset whose points all coincide is only moved.
    """
    if up_axis not in ("y", "z"):
        raise ValueError(f"up_axis must be 'y' or 'z', got {up_axis!r}")
    if not asset.objects:
        return asset
    coords = [_coords(item) for item in asset.objects]
    if up_axis == "z":
        coords = [points @ _Z_UP_TO_Y_UP.T for points in coords]
    stacked = np.concatenate(coords)
    low, high = stacked.min(axis=0), stacked.max(axis=0)
    centre = (low + high) / 2.0
    extent = float((high - low).max())
    scale = 1.0 / extent if extent > 0 and np.isfinite(1.0 / extent) else 1.0
    moved: list[SceneObject] = []
    for item, points in zip(asset.objects, coords, strict=True):
        fitted = (points - centre) * scale
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


def _require_text(file: Path, data: bytes, kind: str) -> None:
    if b"\0" in data[: 1 << 16]:
        raise UnreadableAsset(file, f"binary data, not a text {kind} file")


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _check_reference(file: Path, reference: str, what: str) -> None:
    """Refuse a reference that leaves ``file``'s folder: absolute, with a scheme, ``..`` or a link out."""
    if reference.startswith("data:"):
        return
    folder = file.parent.resolve()
    for candidate in (reference, urllib.parse.unquote(reference)):
        name = candidate.strip().replace("\\", "/")
        escapes = bool(_SCHEME.match(name)) or name.startswith("/")
        if not escapes and name:
            escapes = not (folder / name).resolve().is_relative_to(folder)
        if escapes:
            raise PathEscapes(file, f"{what} {reference!r} points outside the file's folder")


# --- checks before parsing ---------------------------------------------------------------------------


def _check_stl(file: Path, data: bytes, limits: LoadLimits) -> None:
    """Binary STL: 80-byte header, uint32 face count, 50 bytes per face; the count must match the size."""
    count = int.from_bytes(data[80:84], "little") if len(data) >= 84 else -1
    if count >= 0 and len(data) == 84 + 50 * count:
        if count == 0:
            raise EmptyAsset(file, "the mesh has no faces")
        if count > limits.max_faces:
            raise AssetTooLarge(file, f"{count} faces, over the limit of {limits.max_faces}")
        return
    if data.lstrip()[:5].lower() == b"solid" and b"\0" not in data[: 1 << 16]:
        faces = data.lower().count(b"endfacet")
        if faces > limits.max_faces:
            raise AssetTooLarge(file, f"{faces} faces, over the limit of {limits.max_faces}")
        return
    if count < 0:
        raise UnreadableAsset(file, f"{len(data)} bytes: too short for a binary STL and not an ASCII STL")
    raise UnreadableAsset(
        file,
        f"the binary STL header declares {count} faces ({84 + 50 * count} bytes) but the file has {len(data)} bytes",
    )


_PLY_SIZES = {"char": 1, "uchar": 1, "int8": 1, "uint8": 1, "short": 2, "ushort": 2, "int16": 2, "uint16": 2}
_PLY_SIZES |= {"int": 4, "uint": 4, "int32": 4, "uint32": 4, "float": 4, "float32": 4, "double": 8, "float64": 8}
_PLY_FORMATS = ("ascii", "binary_little_endian", "binary_big_endian")


def _check_ply(file: Path, data: bytes, limits: LoadLimits) -> bool:
    """Check a PLY header against the file size and the limits; True when it declares faces."""
    end = data.find(b"end_header", 0, 1 << 16)
    if not data.startswith(b"ply") or end < 0:
        raise UnreadableAsset(file, "not a PLY file: no 'ply' ... 'end_header' header")
    body = data.find(b"\n", end)
    body = len(data) if body < 0 else body + 1
    counts: dict[str, int] = {}
    need = count = 0  # need: a lower bound on a binary body (scalar sizes and list counts; lists taken as empty)
    form = ""
    try:
        for line in data[:end].decode("ascii", "replace").splitlines()[1:]:
            words = line.split()
            if not words or words[0] in ("comment", "obj_info"):
                continue
            if words[0] == "format":
                form = words[1]
            elif words[0] == "element" and words[1] not in counts and int(words[2]) >= 0:
                count = counts[words[1]] = int(words[2])
            elif words[0] == "property" and counts:
                need += count * _PLY_SIZES[words[2] if words[1] == "list" else words[1]]
            else:
                raise ValueError(line)
    except (IndexError, KeyError, ValueError) as error:
        raise UnreadableAsset(file, f"malformed PLY header near {str(error)!r}") from None
    if form not in _PLY_FORMATS:
        raise UnreadableAsset(file, f"unknown PLY format {form!r}")
    vertices, faces = counts.get("vertex", 0), counts.get("face", 0)
    if form != "ascii" and len(data) - body < need:
        raise UnreadableAsset(
            file,
            f"truncated: the header declares {vertices} vertices and {faces} faces, which need at least "
            f"{need} bytes, but {len(data) - body} follow",
        )
    if faces > limits.max_faces or vertices > limits.max_points:
        raise AssetTooLarge(file, f"{vertices} vertices and {faces} faces, over the limits")
    if vertices == 0:
        raise EmptyAsset(file, "the header declares no vertices")
    return faces > 0


_OBJ_VERTEX = re.compile(rb"^[ \t]*v[ \t]", re.MULTILINE)
_OBJ_FACE = re.compile(rb"^[ \t]*f[ \t]+([^\n#]*)", re.MULTILINE)
_OBJ_MTLLIB = re.compile(rb"^[ \t]*mtllib[ \t]+([^\n#]*)", re.MULTILINE)
_OBJ_CORNER_TAIL = re.compile(rb"/\S*")  # "7/2/5" -> "7": only the vertex index matters here


def _check_obj(file: Path, data: bytes, limits: LoadLimits) -> None:
    """Material paths, counts and every face index of an OBJ, read from the text itself."""
    _require_text(file, data, "OBJ")
    text = data.replace(b"\r\n", b"\n").replace(b"\\\n", b"")
    for match in _OBJ_MTLLIB.finditer(text):
        names = match.group(1).decode("utf-8", "replace")
        for name in (names, *names.split()):  # one name with spaces, or several names
            _check_reference(file, name, "mtllib")
    vertex_count = len(_OBJ_VERTEX.findall(text))
    faces = _OBJ_FACE.findall(text)
    if vertex_count > limits.max_points:
        raise AssetTooLarge(file, f"{vertex_count} vertices, over the limit of {limits.max_points}")
    if not faces:
        raise EmptyAsset(file, "the mesh has no faces")
    tokens = _OBJ_CORNER_TAIL.sub(b"", b"\n".join(faces)).split()
    if len(tokens) - 2 * len(faces) > limits.max_faces:
        raise AssetTooLarge(file, f"{len(tokens) - 2 * len(faces)} triangles, over the limit of {limits.max_faces}")
    try:
        indices = np.array(tokens).astype(np.int64)
    except (ValueError, OverflowError):
        raise UnreadableAsset(file, "a face refers to a vertex by something other than a whole number") from None
    if (indices == 0).any():
        raise BadFaceIndices(file, "face index 0 is out of range: OBJ indices start at 1")
    if indices.size and indices.max() > vertex_count:
        raise BadFaceIndices(file, f"face index {indices.max()} is out of range for {vertex_count} vertices")
    if (indices < 0).any():
        _check_obj_relative(file, text, indices, vertex_count)


def _check_obj_relative(file: Path, text: bytes, indices: NDArray[np.int64], vertex_count: int) -> None:
    """Negative indices count back from the last vertex defined before their face line."""
    vertex_starts = np.fromiter((match.start() for match in _OBJ_VERTEX.finditer(text)), dtype=np.int64)
    face_lines = list(_OBJ_FACE.finditer(text))
    before = np.searchsorted(vertex_starts, [match.start() for match in face_lines])
    corners = [len(_OBJ_CORNER_TAIL.sub(b"", match.group(1)).split()) for match in face_lines]
    available = np.repeat(before, corners)
    relative = indices < 0
    if (indices[relative] < -available[relative]).any():
        worst = indices[relative][np.argmin(indices[relative] + available[relative])]
        raise BadFaceIndices(file, f"relative face index {worst} points before the first vertex")
    if (available[relative] != vertex_count).any():
        # trimesh counts negative indices back from the file's last vertex: it would join the wrong ones
        raise UnreadableAsset(file, "negative (relative) face indices followed by more vertices are not supported")


def _check_off(file: Path, data: bytes, limits: LoadLimits) -> None:
    """The counts line, the length and every face index of an OFF file."""
    _require_text(file, data, "OFF")
    lines = [line.split() for line in re.sub(rb"#[^\n]*", b"", data).splitlines() if line.strip()]
    if not lines or lines[0][0] not in (b"OFF", b"COFF"):
        raise UnreadableAsset(file, "not an OFF file: it must start with OFF")
    counts, body = (lines[0][1:], lines[1:]) if len(lines[0]) > 1 else (lines[1] if len(lines) > 1 else [], lines[2:])
    try:
        vertex_count, face_count = int(counts[0]), int(counts[1])
    except (IndexError, ValueError):
        raise UnreadableAsset(file, "malformed OFF counts line") from None
    if vertex_count < 0 or face_count < 0:
        raise UnreadableAsset(file, "negative counts in the OFF counts line")
    if len(body) < vertex_count + face_count:
        raise UnreadableAsset(
            file, f"truncated: it declares {vertex_count} vertices and {face_count} faces but has {len(body)} lines"
        )
    if face_count > limits.max_faces or vertex_count > limits.max_points:
        raise AssetTooLarge(file, f"{vertex_count} vertices and {face_count} faces, over the limits")
    if face_count == 0:
        raise EmptyAsset(file, "the mesh has no faces")
    for row in body[vertex_count : vertex_count + face_count]:
        try:
            corners = [int(token) for token in row[1 : int(row[0]) + 1]]
        except ValueError:
            raise UnreadableAsset(file, f"malformed OFF face line {b' '.join(row)!r}") from None
        if len(corners) < 3 or len(corners) != int(row[0]):
            raise UnreadableAsset(file, f"malformed OFF face line {b' '.join(row)!r}")
        if min(corners) < 0 or max(corners) >= vertex_count:
            bad = min(corners) if min(corners) < 0 else max(corners)
            raise BadFaceIndices(file, f"face index {bad} is out of range for {vertex_count} vertices")


def _json_header(file: Path, blob: bytes, kind: str) -> dict[str, Any]:
    try:
        tree = json.loads(blob)
    except (ValueError, RecursionError) as error:
        raise UnreadableAsset(file, f"the {kind} JSON is not valid: {error}") from None
    if not isinstance(tree, dict):
        raise UnreadableAsset(file, f"the {kind} JSON is not an object")
    return tree


def _glb_header(file: Path, data: bytes) -> dict[str, Any]:
    """GLB: 12-byte header ('glTF', version 2, length), then a JSON chunk (length, 'JSON', text)."""
    if len(data) < 20 or data[:4] != b"glTF":
        raise UnreadableAsset(file, "not a GLB file: it must start with 'glTF'")
    version, length, chunk_length, chunk_type = struct.unpack_from("<4I", data, 4)
    if version != 2:
        raise UnreadableAsset(file, f"GLB version {version}; only glTF 2 is supported")
    if length > len(data) or 20 + chunk_length > len(data):
        raise UnreadableAsset(file, f"truncated: the header declares {length} bytes but the file has {len(data)}")
    if chunk_type != 0x4E4F534A:
        raise UnreadableAsset(file, "the first GLB chunk is not JSON")
    return _json_header(file, data[20 : 20 + chunk_length], "GLB")


def _check_gltf(file: Path, tree: dict[str, Any], limits: LoadLimits) -> None:
    """Buffer and image URIs stay in the folder; declared positions and indices stay within the limits."""
    for key in ("buffers", "images"):
        entries = tree.get(key, [])
        if not isinstance(entries, list):
            raise UnreadableAsset(file, f"glTF {key!r} is not a list")
        for index, entry in enumerate(entries):
            uri = entry.get("uri") if isinstance(entry, dict) else None
            if uri is not None and not isinstance(uri, str):
                raise UnreadableAsset(file, f"glTF {key}[{index}].uri is not a string")
            if uri is not None:
                _check_reference(file, uri, f"glTF {key}[{index}].uri")
    points = faces = 0
    try:  # malformed details are left to the parser; this only counts what is well formed
        accessors = tree["accessors"]
        for mesh in tree.get("meshes", []):
            for primitive in mesh.get("primitives", []):
                count = int(accessors[primitive["attributes"]["POSITION"]]["count"])
                points += count
                if primitive.get("mode", 4) == 4:
                    faces += int(accessors[primitive["indices"]]["count"] if "indices" in primitive else count) // 3
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        pass
    if faces > limits.max_faces or points > limits.max_points:
        raise AssetTooLarge(file, f"{points} vertices and {faces} faces, over the limits")


_PCD_DATA = ("ascii", "binary", "binary_compressed")
_TEXT_LINE = re.compile(rb"^[ \t]*[^\s#]", re.MULTILINE)


def _check_pcd(file: Path, data: bytes, limits: LoadLimits) -> int:
    """Check a PCD header against the file size and the limits; return the point count it declares."""
    header: dict[str, list[str]] = {}
    offset = 0
    while "DATA" not in header:
        end = data.find(b"\n", offset, offset + 4096)
        if end < 0 or offset > 1 << 16:
            raise UnreadableAsset(file, "not a PCD file: no DATA line in the header")
        words = data[offset:end].decode("ascii", "replace").split()
        offset = end + 1
        if words and not words[0].startswith("#"):
            header[words[0].upper()] = words[1:]
    try:
        fields = header["FIELDS"]
        sizes = [int(size) for size in header["SIZE"]]
        repeats = [int(count) for count in header.get("COUNT", ["1"] * len(fields))]
        points, kind = int(header["POINTS"][0]), header["DATA"][0].lower()
    except (IndexError, KeyError, ValueError):
        raise UnreadableAsset(file, "malformed PCD header: needs FIELDS, SIZE, POINTS and DATA") from None
    if not {"x", "y", "z"} <= set(fields) or len(sizes) != len(fields) or len(repeats) != len(fields):
        raise UnreadableAsset(file, "malformed PCD header: needs fields x, y and z with a size each")
    if kind not in _PCD_DATA or points < 0:
        raise UnreadableAsset(file, f"malformed PCD header: DATA {kind!r}, POINTS {points}")
    row, payload = sum(size * count for size, count in zip(sizes, repeats, strict=True)), len(data) - offset
    if kind == "ascii":
        short = len(_TEXT_LINE.findall(data, offset)) < points
    elif kind == "binary":
        short = payload < points * row
    else:
        compressed, raw = struct.unpack_from("<II", data, offset) if payload >= 8 else (payload, -1)
        short = raw != points * row or compressed > payload - 8
    if short:
        raise UnreadableAsset(file, f"truncated or corrupt: the header declares {points} points")
    if points > limits.max_points:
        raise AssetTooLarge(file, f"{points} points, over the limit of {limits.max_points}")
    return points


def _check_xyz(file: Path, data: bytes, limits: LoadLimits) -> int:
    """The number of 'x y z' lines an .xyz file must yield (blank and '#' lines aside)."""
    _require_text(file, data, "XYZ")
    count = len(_TEXT_LINE.findall(data))
    if count > limits.max_points:
        raise AssetTooLarge(file, f"{count} points, over the limit of {limits.max_points}")
    return count


# --- parsing -----------------------------------------------------------------------------------------


def _parse_trimesh(file: Path, data: bytes, limits: LoadLimits) -> list[SceneObject]:
    import trimesh  # here, not at the top: importing it costs ~0.4 s that the studio's start does not need

    suffix = file.suffix.lower()
    mesh_only = suffix in (".obj", ".stl", ".off")
    if suffix == ".stl":
        _check_stl(file, data, limits)
    elif suffix == ".obj":
        _check_obj(file, data, limits)
    elif suffix == ".off":
        _check_off(file, data, limits)
    elif suffix == ".ply":
        mesh_only = _check_ply(file, data, limits)
    elif suffix == ".gltf":
        _require_text(file, data, "glTF")
        _check_gltf(file, _json_header(file, data, "glTF"), limits)
    else:
        _check_gltf(file, _glb_header(file, data), limits)
    try:
        loaded = trimesh.load(
            io.BytesIO(data),
            file_type=suffix[1:],
            resolver=trimesh.resolvers.FilePathResolver(str(file)),
            force=None,
            process=False,
            validate=False,
            skip_materials=True,
        )
    except MemoryError:
        raise
    except Exception as error:
        raise UnreadableAsset(
            file, f"the {suffix[1:].upper()} parser failed: {type(error).__name__}: {error}"
        ) from error
    if isinstance(loaded, trimesh.Scene):
        order = {name: index for index, name in enumerate(loaded.geometry)}
        nodes = sorted(loaded.graph.nodes_geometry, key=lambda node: (order.get(loaded.graph[node][1], -1), str(node)))
        found = [_convert(str(node), loaded.geometry[loaded.graph[node][1]], loaded.graph[node][0]) for node in nodes]
    else:
        found = [_convert(file.stem, loaded, None)]
    objects = [item for item in found if item is not None]
    if mesh_only and not any(isinstance(item, MeshObject) for item in objects):
        raise EmptyAsset(file, "the mesh has no faces")
    return objects


def _convert(name: str, geometry: Any, transform: Any) -> SceneObject | None:
    """A trimesh geometry, placed by its scene transform, as ours; None for kinds we do not draw (lines)."""
    import trimesh

    if not isinstance(geometry, trimesh.Trimesh | trimesh.PointCloud):
        return None
    points = np.array(geometry.vertices, dtype=np.float64).reshape(-1, 3)
    if transform is not None:
        matrix = np.asarray(transform, dtype=np.float64)
        with np.errstate(all="ignore"):
            points = points @ matrix[:3, :3].T + matrix[:3, 3]
    if isinstance(geometry, trimesh.PointCloud):
        return PointObject(name, points, _unit_colors(geometry.colors, len(points)))
    visual = geometry.visual
    colors = _unit_colors(visual.vertex_colors, len(points)) if getattr(visual, "kind", None) == "vertex" else None
    return MeshObject(name, points, np.array(geometry.faces, dtype=np.int64).reshape(-1, 3), colors)


def _unit_colors(raw: Any, count: int) -> NDArray[np.float64] | None:
    """(count, 3) float64 in 0..1 from (count, 3 or 4) colours in 0..1 or 0..255; None when absent."""
    colors = np.asarray(raw)
    if colors.ndim != 2 or len(colors) != count or count == 0 or colors.shape[1] < 3:
        return None
    rgb = colors[:, :3].astype(np.float64)
    if colors.dtype.kind in "iu" or np.nanmax(rgb) > 1.0:
        rgb /= 255.0
    return rgb


def _parse_open3d(file: Path, data: bytes, limits: LoadLimits) -> PointObject:
    import open3d

    suffix = file.suffix.lower()
    expected = _check_pcd(file, data, limits) if suffix == ".pcd" else _check_xyz(file, data, limits)
    try:
        with open3d.utility.VerbosityContextManager(open3d.utility.VerbosityLevel.Error):
            cloud = open3d.io.read_point_cloud(
                file, format=suffix[1:], remove_nan_points=False, remove_infinite_points=False
            )
    except MemoryError:
        raise
    except Exception as error:
        raise UnreadableAsset(file, f"the {suffix[1:].upper()} reader failed: {error}") from error
    points = np.array(cloud.points, dtype=np.float64).reshape(-1, 3)
    if len(points) != expected:
        raise UnreadableAsset(file, f"only {len(points)} of the {expected} points could be read: corrupt or truncated")
    colors = np.array(cloud.colors, dtype=np.float64).reshape(-1, 3) if cloud.has_colors() else None
    return PointObject(file.stem, points, colors)


def _parse_npy(file: Path, data: bytes) -> PointObject:
    """(n, 3) points, or (n, 6) points and colours in 0..1 or 0..255 (0..255 for integer arrays)."""
    if data.startswith(b"PK\x03\x04"):
        raise UnreadableAsset(file, "an .npz archive, not a single .npy array")
    if not data.startswith(b"\x93NUMPY"):
        raise UnreadableAsset(file, "not a .npy file: it must start with the NUMPY magic")
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except MemoryError:
        raise
    except ValueError as error:
        pickled = "allow_pickle" in str(error)
        reason = "an object array, which needs pickle: refused" if pickled else f"not a readable .npy array: {error}"
        raise UnreadableAsset(file, reason) from error
    except Exception as error:
        raise UnreadableAsset(file, f"not a readable .npy array: {error}") from error
    if not isinstance(array, np.ndarray):
        raise UnreadableAsset(file, "not a single .npy array")
    if array.dtype.kind not in "fiu":
        raise UnreadableAsset(file, f"the array holds {array.dtype}, not real numbers")
    if array.ndim != 2 or array.shape[1] not in (3, 6):
        raise UnreadableAsset(file, f"the array has shape {array.shape}, not (n, 3) or (n, 6)")
    colors = None
    if array.shape[1] == 6 and len(array):
        colors = array[:, 3:].astype(np.float64)
        if np.nanmin(colors) < 0 or np.nanmax(colors) > 255:
            raise UnreadableAsset(file, "colours must be in 0..1 or 0..255")
        if array.dtype.kind in "iu" or np.nanmax(colors) > 1.0:
            colors /= 255.0
    return PointObject(file.stem, array[:, :3].astype(np.float64), colors)


# --- checks after parsing ----------------------------------------------------------------------------


def _check_objects(file: Path, objects: list[SceneObject], limits: LoadLimits) -> None:
    """Sizes, emptiness, face indices and finiteness of what a parser returned: never trust it."""
    if not objects:
        raise EmptyAsset(file, "no meshes or points in the file")
    faces = sum(len(item.faces) for item in objects if isinstance(item, MeshObject))
    points = sum(len(_coords(item)) for item in objects)
    if faces > limits.max_faces:
        raise AssetTooLarge(file, f"{faces} faces, over the limit of {limits.max_faces}")
    if points > limits.max_points:
        kinds = {"vertices" if isinstance(item, MeshObject) else "points" for item in objects}
        raise AssetTooLarge(file, f"{points} {' and '.join(sorted(kinds))}, over the limit of {limits.max_points}")
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
        broken = int((~np.isfinite(coords).all(axis=1)).sum())
        if broken:
            noun = "vertices" if mesh else "points"
            raise NonFiniteAsset(
                file, f"{label} has NaN or infinite coordinates at {broken} of its {len(coords)} {noun}"
            )
        colors = item.vertex_colors if isinstance(item, MeshObject) else item.colors
        if colors is not None and not np.isfinite(colors).all():
            raise NonFiniteAsset(file, f"{label} has NaN or infinite colours")
