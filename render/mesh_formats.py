"""The files trimesh parses: .glb, .gltf, .obj, .stl, .off and .ply (a .ply without faces is a point
cloud). Each is checked before trimesh sees it: header counts against the file size and the limits,
OBJ and OFF face indices, material and buffer references that leave the file's folder.
"""

from __future__ import annotations

import io
import json
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .errors import AssetTooLarge, BadFaceIndices, EmptyAsset, UnreadableAsset
from .file_checks import check_reference, require_text
from .geometry import MeshObject, PointObject, SceneObject
from .gltf_names import gltf_object_names
from .limits import LoadLimits

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
    vertices, faces = counts.get("vertex", 0), counts.get("face", 0) + counts.get("tristrips", 0)
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
    require_text(file, data, "OBJ")
    text = data.replace(b"\r\n", b"\n").replace(b"\\\n", b"")
    for match in _OBJ_MTLLIB.finditer(text):
        names = match.group(1).decode("utf-8", "replace")
        for name in (names, *names.split()):  # one name with spaces, or several names
            check_reference(file, name, "mtllib")
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
    require_text(file, data, "OFF")
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
                check_reference(file, uri, f"glTF {key}[{index}].uri")
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


# --- parsing -----------------------------------------------------------------------------------------


def parse_with_trimesh(file: Path, data: bytes, limits: LoadLimits) -> list[SceneObject]:
    """``data``, the bytes of ``file``, checked for its format and parsed: one object per scene node
    (meshes, or point clouds for a .ply without faces), placed by the node's transform."""
    import trimesh  # here, not at the top: importing it costs ~0.4 s that the studio's start does not need

    suffix = file.suffix.lower()
    mesh_only = suffix in (".obj", ".stl", ".off")
    gltf: dict[str, Any] | None = None
    if suffix == ".stl":
        _check_stl(file, data, limits)
    elif suffix == ".obj":
        _check_obj(file, data, limits)
    elif suffix == ".off":
        _check_off(file, data, limits)
    elif suffix == ".ply":
        mesh_only = _check_ply(file, data, limits)
    elif suffix == ".gltf":
        require_text(file, data, "glTF")
        gltf = _json_header(file, data, "glTF")
        _check_gltf(file, gltf, limits)
    else:
        gltf = _glb_header(file, data)
        _check_gltf(file, gltf, limits)
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
        nodes = {str(node): node for node in loaded.graph.nodes_geometry}  # trimesh's names, as strings

        def rank(name: str) -> int:
            return order.get(loaded.graph[nodes[name]][1], -1)

        names = {name: name for name in nodes}
        if gltf is not None:  # trimesh's names for unnamed glTF nodes change every run
            names = gltf_object_names(gltf, loaded.graph, list(nodes), rank)
        found = []
        for name in sorted(nodes, key=lambda name: (rank(name), names[name])):
            geometry_name, transform = loaded.graph[nodes[name]][1], loaded.graph[nodes[name]][0]
            found.append(_convert(names[name], loaded.geometry[geometry_name], transform))
    else:
        found = [_convert(file.stem, _strips_as_faces(file, loaded), None)]
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


def _strips_as_faces(file: Path, loaded: Any) -> Any:
    """A PLY whose faces are triangle strips (``element tristrips``), which trimesh reads as a point
    cloud, as a mesh of the strips' triangles; anything else as it is."""
    import trimesh

    raw = getattr(loaded, "metadata", {}).get("_ply_raw", {})
    if not isinstance(loaded, trimesh.PointCloud) or "tristrips" not in raw:
        return loaded
    try:
        rows = raw["tristrips"]["data"]["vertex_indices"]
        faces = strip_triangles([np.asarray(row, dtype=np.int64).reshape(-1) for row in rows])
    except (KeyError, TypeError, ValueError) as error:
        raise UnreadableAsset(file, f"unreadable PLY triangle strips: {error}") from None
    if len(faces) == 0:
        raise EmptyAsset(file, "the triangle strips hold no triangles")
    colors = loaded.colors if len(loaded.colors) == len(loaded.vertices) else None
    return trimesh.Trimesh(loaded.vertices, faces, vertex_colors=colors, process=False, validate=False)


def strip_triangles(strips: list[NDArray[np.int64]]) -> NDArray[np.int64]:
    """Triangle strips (a negative index restarts a strip; each list is a strip of its own) as (m, 3)
    triangles, every other one flipped so all keep the first one's winding; degenerate triangles (a
    repeated index, how strips are joined) are left out."""
    if not strips:
        return np.zeros((0, 3), dtype=np.int64)
    flat = np.concatenate([np.append(strip, -1) for strip in strips])
    positions = np.arange(len(flat))
    last_restart = np.maximum.accumulate(np.where(flat < 0, positions, -1))
    place = positions - last_restart - 1  # each index's place in its strip
    first, second, third = flat[:-2], flat[1:-1], flat[2:]
    keep = (first >= 0) & (second >= 0) & (third >= 0)
    keep &= (first != second) & (second != third) & (first != third)
    odd = place[:-2] % 2 == 1
    triangles = np.stack([np.where(odd, second, first), np.where(odd, first, second), third], axis=1)
    return np.ascontiguousarray(triangles[keep], dtype=np.int64)


def _unit_colors(raw: Any, count: int) -> NDArray[np.float64] | None:
    """(count, 3) float64 in 0..1 from (count, 3 or 4) colours in 0..1 or 0..255; None when absent."""
    colors = np.asarray(raw)
    if colors.ndim != 2 or len(colors) != count or count == 0 or colors.shape[1] < 3:
        return None
    rgb = colors[:, :3].astype(np.float64)
    if colors.dtype.kind in "iu" or np.nanmax(rgb) > 1.0:
        rgb /= 255.0
    return rgb
