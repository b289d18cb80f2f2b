"""Malformed asset files, generated (never downloaded), each with the exact error loading must raise.

``build_corpus(folder)`` writes every case of ``CORPUS`` into ``folder / "corpus"`` and returns the
paths by case name. The readers at the bottom are injected into ``load_asset`` by the child-process
tests: the child imports them by name, so they live at module level here.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anyi2v.render.assets import (
    DEFAULT_LIMITS,
    AssetError,
    AssetTooLarge,
    BadFaceIndices,
    EmptyAsset,
    LoadLimits,
    NonFiniteAsset,
    PathEscapes,
    UnreadableAsset,
    UpAxis,
)
from anyi2v.render.geometry import Asset

TRIANGLE = b"v 0 0 0\nv 1 0 0\nv 0 1 0\n"
_STL_FACE = np.dtype([("normal", "<f4", (3,)), ("corners", "<f4", (3, 3)), ("attribute", "<u2")])


@dataclass(frozen=True)
class Malformed:
    """One bad input: the file name it gets, the error it must raise, how to write it, the limits to use."""

    name: str
    error: type[AssetError]
    write: Callable[[Path], None]
    limits: LoadLimits = DEFAULT_LIMITS


def _bytes(data: bytes) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_bytes(data)

    return write


def _random(size: int = 4096) -> Callable[[Path], None]:
    return _bytes(b"\0" + np.random.default_rng(7).bytes(size))


def _npy(array: np.ndarray) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        with path.open("wb") as handle:
            np.save(handle, array, allow_pickle=True)

    return write


def _json(tree: object) -> Callable[[Path], None]:
    return _bytes(json.dumps(tree).encode())


def binary_stl(corners: np.ndarray, declared: int | None = None) -> bytes:
    """corners : (m, 3, 3) float -> a binary STL; ``declared`` overrides the header's face count."""
    faces = np.zeros(len(corners), dtype=_STL_FACE)
    faces["corners"] = corners
    count = len(corners) if declared is None else declared
    return b"corpus stl".ljust(80, b" ") + struct.pack("<I", count) + faces.tobytes()


def tetrahedron_stl(count: int = 4) -> bytes:
    corners = np.array([[[0, 0, 0], [1, 0, 0], [0, 1, 0]]] * count, dtype=np.float64)
    corners[:, :, 2] += np.arange(count)[:, None]
    return binary_stl(corners)


def _nan_stl() -> bytes:
    corners = np.array([[[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 0, 1], [1, 0, 1], [np.nan, 1, 1]]])
    return binary_stl(corners)


def binary_ply(vertices: np.ndarray, faces: np.ndarray | None) -> bytes:
    """vertices : (n, 3) float32, faces : (m, 3) int32 or None -> a little-endian binary PLY."""
    head = [b"ply", b"format binary_little_endian 1.0", b"element vertex %d" % len(vertices)]
    head += [b"property float x", b"property float y", b"property float z"]
    body = np.asarray(vertices, dtype="<f4").tobytes()
    if faces is not None:
        head += [b"element face %d" % len(faces), b"property list uchar int vertex_indices"]
        rows = np.zeros(len(faces), dtype=[("n", "u1"), ("corners", "<i4", (3,))])
        rows["n"], rows["corners"] = 3, faces
        body += rows.tobytes()
    return b"\n".join([*head, b"end_header"]) + b"\n" + body


_CUBE = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=np.float32)
_CUBE_FACES = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1]])


def _ascii_ply_faces(faces: str) -> bytes:
    head = "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
    head += "element face 1\nproperty list uchar int vertex_indices\nend_header\n"
    return (head + "0 0 0\n1 0 0\n0 1 0\n" + faces + "\n").encode()


def _pcd(points: int, data: str, payload: bytes) -> bytes:
    head = f"# .PCD v0.7\nVERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH {points}\n"
    return (head + f"HEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {points}\nDATA {data}\n").encode() + payload


def _gltf(uri: str) -> dict[str, object]:
    """A one-triangle glTF whose only buffer is at ``uri``."""
    return {
        "asset": {"version": "2.0"},
        "buffers": [{"uri": uri, "byteLength": 36}],
        "bufferViews": [{"buffer": 0, "byteLength": 36}],
        "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3"}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}],
        "nodes": [{"mesh": 0}],
        "scenes": [{"nodes": [0]}],
    }


def _glb_with_external_buffer(path: Path) -> None:
    text = json.dumps(_gltf("../../secret.bin")).encode()
    text += b" " * (-len(text) % 4)
    chunk = struct.pack("<II", len(text), 0x4E4F534A) + text
    path.write_bytes(b"glTF" + struct.pack("<II", 2, 12 + len(chunk)) + chunk)


def _symlinked_buffer(path: Path) -> None:
    outside = path.parent.parent / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "secret.bin").write_bytes(bytes(36))
    (path.parent / "linked.bin").symlink_to(outside / "secret.bin")
    path.write_text(json.dumps(_gltf("linked.bin")))


def _object_array() -> np.ndarray:
    array = np.empty((2, 3), dtype=object)
    array[:] = 1.0
    return array


def _npz(path: Path) -> None:
    with path.open("wb") as handle:
        np.savez(handle, points=np.zeros((3, 3)))


def _colored(colors: list[float]) -> np.ndarray:
    return np.hstack([np.random.default_rng(1).random((3, 3)), np.array([colors] * 3)])


def _fifo(path: Path) -> None:
    os.mkfifo(path)


CORPUS: tuple[Malformed, ...] = (
    # nothing there, or not a file we know
    Malformed("empty.obj", EmptyAsset, _bytes(b"")),
    Malformed("empty.glb", EmptyAsset, _bytes(b"")),
    Malformed("missing.ply", UnreadableAsset, lambda path: None),
    Malformed("folder.obj", UnreadableAsset, lambda path: path.mkdir()),
    Malformed("fifo.ply", UnreadableAsset, _fifo),
    Malformed("model.fbx", UnreadableAsset, _bytes(b"Kaydara FBX Binary  \0")),
    Malformed("no_extension", UnreadableAsset, _bytes(TRIANGLE + b"f 1 2 3\n")),
    Malformed("too_big_file.obj", AssetTooLarge, _bytes(TRIANGLE + b"f 1 2 3\n"), LoadLimits(max_file_bytes=16)),
    # random bytes under each extension
    Malformed("random.obj", UnreadableAsset, _random()),
    Malformed("random.ply", UnreadableAsset, _random()),
    Malformed("random.glb", UnreadableAsset, _random()),
    Malformed("random.gltf", UnreadableAsset, _random()),
    Malformed("random.stl", UnreadableAsset, _random()),
    Malformed("random.off", UnreadableAsset, _random()),
    Malformed("random.pcd", UnreadableAsset, _random()),
    Malformed("random.xyz", UnreadableAsset, _random()),
    Malformed("random.npy", UnreadableAsset, _random()),
    # STL
    Malformed("lying_header.stl", UnreadableAsset, _bytes(binary_stl(np.zeros((1, 3, 3)), declared=2**31))),
    Malformed("cut_short.stl", UnreadableAsset, _bytes(tetrahedron_stl()[:-20])),
    Malformed("zero_faces.stl", EmptyAsset, _bytes(binary_stl(np.zeros((0, 3, 3))))),
    Malformed("nan_vertex.stl", NonFiniteAsset, _bytes(_nan_stl())),
    Malformed("too_many_faces.stl", AssetTooLarge, _bytes(tetrahedron_stl(8)), LoadLimits(max_faces=4)),
    # OBJ
    Malformed("index_out_of_range.obj", BadFaceIndices, _bytes(TRIANGLE + b"f 1 2 9\n")),
    Malformed("zero_index.obj", BadFaceIndices, _bytes(TRIANGLE + b"f 0 1 2\n")),
    Malformed("negative_index.obj", BadFaceIndices, _bytes(TRIANGLE + b"f -1 -2 -9\n")),
    Malformed("relative_then_vertices.obj", UnreadableAsset, _bytes(TRIANGLE + b"f -3 -2 -1\n" + TRIANGLE)),
    Malformed("word_index.obj", UnreadableAsset, _bytes(TRIANGLE + b"f one two three\n")),
    Malformed("vertices_only.obj", EmptyAsset, _bytes(TRIANGLE)),
    Malformed("escaping_mtllib.obj", PathEscapes, _bytes(b"mtllib ../../secret.mtl\n" + TRIANGLE + b"f 1 2 3\n")),
    Malformed("absolute_mtllib.obj", PathEscapes, _bytes(b"mtllib /etc/passwd\n" + TRIANGLE + b"f 1 2 3\n")),
    # PLY
    Malformed("truncated_binary.ply", UnreadableAsset, _bytes(binary_ply(_CUBE, _CUBE_FACES)[:-40])),
    Malformed(
        "lying_header.ply", UnreadableAsset, _bytes(binary_ply(_CUBE, None).replace(b"vertex 8", b"vertex 2147483648"))
    ),
    Malformed("index_out_of_range.ply", BadFaceIndices, _bytes(_ascii_ply_faces("3 0 1 7"))),
    Malformed("negative_index.ply", BadFaceIndices, _bytes(binary_ply(_CUBE, np.array([[0, 1, -1]])))),
    Malformed("inf_points.ply", NonFiniteAsset, _bytes(binary_ply(np.array([[np.inf, 0, 0], [1, np.inf, 0]]), None))),
    Malformed("no_vertices.ply", EmptyAsset, _bytes(binary_ply(np.zeros((0, 3)), None))),
    Malformed("too_many_points.ply", AssetTooLarge, _bytes(binary_ply(_CUBE, None)), LoadLimits(max_points=4)),
    # OFF
    Malformed("index_out_of_range.off", BadFaceIndices, _bytes(b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n")),
    Malformed("truncated.off", UnreadableAsset, _bytes(b"OFF\n3 2 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")),
    # glTF and GLB
    Malformed("escaping_buffer.gltf", PathEscapes, _json(_gltf("../../../etc/passwd"))),
    Malformed("absolute_buffer.gltf", PathEscapes, _json(_gltf("/etc/passwd"))),
    Malformed("encoded_escape.gltf", PathEscapes, _json(_gltf("..%2F..%2Fsecret.bin"))),
    Malformed("file_uri.gltf", PathEscapes, _json(_gltf("file:///etc/passwd"))),
    Malformed("symlinked_buffer.gltf", PathEscapes, _symlinked_buffer),
    Malformed("escaping_buffer.glb", PathEscapes, _glb_with_external_buffer),
    Malformed("bad_json.gltf", UnreadableAsset, _bytes(b'{"asset": {"version": "2.0"}, ')),
    Malformed("no_meshes.gltf", EmptyAsset, _json({"asset": {"version": "2.0"}})),
    # point clouds
    Malformed("truncated_binary.pcd", UnreadableAsset, _bytes(_pcd(5, "binary", bytes(12 * 4)))),
    Malformed("truncated_ascii.pcd", UnreadableAsset, _bytes(_pcd(5, "ascii", b"0 0 0\n1 1 1\n"))),
    Malformed("lying_header.pcd", UnreadableAsset, _bytes(_pcd(2**31, "binary", bytes(12 * 4)))),
    Malformed("nan.pcd", NonFiniteAsset, _bytes(_pcd(2, "ascii", b"0 nan 0\nnan 1 1\n"))),
    Malformed("garbage_lines.xyz", UnreadableAsset, _bytes(b"1 2 3\nhello\n4 5 6\n7 8\n")),
    Malformed("inf.xyz", NonFiniteAsset, _bytes(b"1 -inf 3\ninf 5 6\n")),
    Malformed("comments_only.xyz", EmptyAsset, _bytes(b"# x y z\n\n")),
    Malformed("wrong_shape.npy", UnreadableAsset, _npy(np.zeros((5, 4)))),
    Malformed("flat.npy", UnreadableAsset, _npy(np.zeros(9))),
    Malformed("object_array.npy", UnreadableAsset, _npy(_object_array())),
    Malformed("pickle.npy", UnreadableAsset, _bytes(pickle.dumps({"points": [[0, 0, 0]]}))),
    Malformed("archive.npy", UnreadableAsset, _npz),
    Malformed("strings.npy", UnreadableAsset, _npy(np.array([["a", "b", "c"]]))),
    Malformed("no_points.npy", EmptyAsset, _npy(np.zeros((0, 3)))),
    Malformed("nan_colors.npy", NonFiniteAsset, _npy(_colored([0.5, np.nan, 0.5]))),
    Malformed("colors_over_255.npy", UnreadableAsset, _npy(_colored([300.0, 0.0, 0.0]))),
    Malformed("too_many_points.npy", AssetTooLarge, _npy(np.zeros((11, 3))), LoadLimits(max_points=10)),
)


def build_corpus(folder: Path) -> dict[str, Path]:
    """Write every case of ``CORPUS`` into ``folder / "corpus"``; return each case's path by name."""
    corpus = folder / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    paths = {}
    for case in CORPUS:
        path = corpus / case.name
        case.write(path)
        paths[case.name] = path
    return paths


# --- readers injected into load_asset's child process --------------------------------------------


def slow_reader(path: Path, up_axis: UpAxis, limits: LoadLimits) -> Asset:
    """A parse that never ends in time."""
    time.sleep(600)
    raise AssertionError("the loader should have been stopped")


def killed_reader(path: Path, up_axis: UpAxis, limits: LoadLimits) -> Asset:
    """A parser that takes the process down with SIGKILL."""
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


def aborting_reader(path: Path, up_axis: UpAxis, limits: LoadLimits) -> Asset:
    """A native parser that aborts (SIGABRT), as a failed C++ assertion would."""
    os.abort()


def hungry_reader(path: Path, up_axis: UpAxis, limits: LoadLimits) -> Asset:
    """A parse that wants twice the memory the limit allows."""
    hoard = bytearray(2 * limits.memory_bytes)
    raise AssertionError(f"allocated {len(hoard)} bytes past the limit")


def broken_reader(path: Path, up_axis: UpAxis, limits: LoadLimits) -> Asset:
    """A reader with a bug: it raises something that is not an AssetError."""
    raise RuntimeError("a bug in the reader")
