"""Point clouds Open3D reads (.pcd, .xyz) and numpy arrays (.npy), each checked before parsing: the
PCD header against the file size and the limits, the XYZ line count, the NPY magic and no pickle.
"""

from __future__ import annotations

import io
import re
import struct
from pathlib import Path

import numpy as np

from .errors import AssetTooLarge, UnreadableAsset
from .file_checks import require_text
from .geometry import PointObject
from .limits import LoadLimits

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
    require_text(file, data, "XYZ")
    count = len(_TEXT_LINE.findall(data))
    if count > limits.max_points:
        raise AssetTooLarge(file, f"{count} points, over the limit of {limits.max_points}")
    return count


def parse_with_open3d(file: Path, data: bytes, limits: LoadLimits) -> PointObject:
    """A .pcd or .xyz file's points (and colours), all of those its header or lines declare."""
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


def parse_npy(file: Path, data: bytes) -> PointObject:
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
