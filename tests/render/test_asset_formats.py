"""The format modules behind ``read_asset``: each malformed file is refused with the very words it was
refused with before the split, and by its format's own module (or by the checks after parsing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from anyi2v.render import assets, errors, limits, mesh_formats, point_formats
from anyi2v.render.assets import AssetError, read_asset
from tests.render import malformed

# The reason of every case of the corpus, as render/assets.py gave it before it was split by format.
REASONS = {
    "empty.obj": "the file is empty",
    "empty.glb": "the file is empty",
    "missing.ply": "no such file",
    "folder.obj": "is a directory, not a file",
    "fifo.ply": "not a regular file",
    "model.fbx": "unknown extension '.fbx'; expected one of .glb, .gltf, .obj, .ply, .stl, .off, .pcd, .xyz, .npy",
    "no_extension": "unknown extension '(none)'; expected one of .glb, .gltf, .obj, .ply, .stl, .off, .pcd, .xyz, .npy",
    "too_big_file.obj": "32 bytes, over the limit of 16",
    "random.obj": "binary data, not a text OBJ file",
    "random.ply": "not a PLY file: no 'ply' ... 'end_header' header",
    "random.glb": "not a GLB file: it must start with 'glTF'",
    "random.gltf": "binary data, not a text glTF file",
    "random.stl": "the binary STL header declares 64768119 faces (3238406034 bytes) but the file has 4097 bytes",
    "random.off": "binary data, not a text OFF file",
    "random.pcd": "not a PCD file: no DATA line in the header",
    "random.xyz": "binary data, not a text XYZ file",
    "random.npy": "not a .npy file: it must start with the NUMPY magic",
    "lying_header.stl": "the binary STL header declares 2147483648 faces (107374182484 bytes) "
    "but the file has 134 bytes",
    "cut_short.stl": "the binary STL header declares 4 faces (284 bytes) but the file has 264 bytes",
    "zero_faces.stl": "the mesh has no faces",
    "nan_vertex.stl": "the mesh has NaN or infinite coordinates at 1 of its 6 vertices",
    "too_many_faces.stl": "8 faces, over the limit of 4",
    "index_out_of_range.obj": "face index 9 is out of range for 3 vertices",
    "zero_index.obj": "face index 0 is out of range: OBJ indices start at 1",
    "negative_index.obj": "relative face index -9 points before the first vertex",
    "relative_then_vertices.obj": "negative (relative) face indices followed by more vertices are not supported",
    "word_index.obj": "a face refers to a vertex by something other than a whole number",
    "vertices_only.obj": "the mesh has no faces",
    "escaping_mtllib.obj": "mtllib '../../secret.mtl' points outside the file's folder",
    "absolute_mtllib.obj": "mtllib '/etc/passwd' points outside the file's folder",
    "truncated_binary.ply": "the PLY parser failed: ",
    "lying_header.ply": "truncated: the header declares 2147483648 vertices and 0 faces, "
    "which need at least 25769803776 bytes, but 96 follow",
    "index_out_of_range.ply": "the mesh has face index 7, out of range for 3 vertices",
    "negative_index.ply": "the mesh has face index -1, out of range for 8 vertices",
    "inf_points.ply": "the point cloud has no finite points: all 2 have NaN or infinite coordinates",
    "no_vertices.ply": "the header declares no vertices",
    "too_many_points.ply": "8 vertices and 0 faces, over the limits",
    "index_out_of_range.off": "face index 7 is out of range for 3 vertices",
    "truncated.off": "truncated: it declares 3 vertices and 2 faces but has 4 lines",
    "escaping_buffer.gltf": "glTF buffers[0].uri '../../../etc/passwd' points outside the file's folder",
    "absolute_buffer.gltf": "glTF buffers[0].uri '/etc/passwd' points outside the file's folder",
    "encoded_escape.gltf": "glTF buffers[0].uri '..%2F..%2Fsecret.bin' points outside the file's folder",
    "file_uri.gltf": "glTF buffers[0].uri 'file:///etc/passwd' points outside the file's folder",
    "symlinked_buffer.gltf": "glTF buffers[0].uri 'linked.bin' points outside the file's folder",
    "escaping_buffer.glb": "glTF buffers[0].uri '../../secret.bin' points outside the file's folder",
    "bad_json.gltf": "the glTF JSON is not valid: "
    "Expecting property name enclosed in double quotes: line 1 column 31 (char 30)",
    "no_meshes.gltf": "no meshes or points in the file",
    "truncated_binary.pcd": "truncated or corrupt: the header declares 5 points",
    "truncated_ascii.pcd": "truncated or corrupt: the header declares 5 points",
    "lying_header.pcd": "truncated or corrupt: the header declares 2147483648 points",
    "nan.pcd": "the point cloud has no finite points: all 2 have NaN or infinite coordinates",
    "garbage_lines.xyz": "only 2 of the 4 points could be read: corrupt or truncated",
    "inf.xyz": "the point cloud has no finite points: all 2 have NaN or infinite coordinates",
    "comments_only.xyz": "the point cloud has no points",
    "wrong_shape.npy": "the array has shape (5, 4), not (n, 3) or (n, 6)",
    "flat.npy": "the array has shape (9,), not (n, 3) or (n, 6)",
    "object_array.npy": "an object array, which needs pickle: refused",
    "pickle.npy": "not a .npy file: it must start with the NUMPY magic",
    "archive.npy": "an .npz archive, not a single .npy array",
    "strings.npy": "the array holds <U1, not real numbers",
    "no_points.npy": "the point cloud has no points",
    "nan_colors.npy": "the point cloud has NaN or infinite colours",
    "colors_over_255.npy": "colours must be in 0..1 or 0..255",
    "too_many_points.npy": "11 points, over the limit of 10",
}
# A reason that ends in a parser's own words (trimesh's) is compared up to them.
OPEN_ENDED = {"truncated_binary.ply"}
PARSERS = {
    ".npy": lambda file, data, caps: [point_formats.parse_npy(file, data)],
    ".pcd": lambda file, data, caps: [point_formats.parse_with_open3d(file, data, caps)],
    ".xyz": lambda file, data, caps: [point_formats.parse_with_open3d(file, data, caps)],
    **dict.fromkeys((".glb", ".gltf", ".obj", ".ply", ".stl", ".off"), mesh_formats.parse_with_trimesh),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return malformed.build_corpus(tmp_path_factory.mktemp("formats"))


def test_every_case_has_its_reason() -> None:
    assert set(REASONS) == {case.name for case in malformed.CORPUS}


@pytest.mark.parametrize("case", malformed.CORPUS, ids=lambda case: case.name)
def test_malformed_file_keeps_its_message(corpus: dict[str, Path], case: malformed.Malformed) -> None:
    with pytest.raises(AssetError) as caught:
        read_asset(corpus[case.name], limits=case.limits)
    assert type(caught.value) is case.error
    if case.name in OPEN_ENDED:
        assert caught.value.reason.startswith(REASONS[case.name])
    else:
        assert caught.value.reason == REASONS[case.name]
    assert str(caught.value) == f"{case.name}: {caught.value.reason}"


def _parse_and_check(path: Path, data: bytes, caps: limits.LoadLimits) -> None:
    assets._check_objects(path, PARSERS[path.suffix.lower()](path, data, caps), caps)


@pytest.mark.parametrize("case", malformed.CORPUS, ids=lambda case: case.name)
def test_the_format_module_or_the_after_checks_refuse_it(corpus: dict[str, Path], case: malformed.Malformed) -> None:
    """What the dispatcher raises is raised by the checked read (a missing, odd or oversized file, an
    unknown extension), or else by the format's own module on the same bytes, or else by the checks
    after parsing."""
    path = corpus[case.name]
    with pytest.raises(AssetError) as expected:
        read_asset(path, limits=case.limits)
    try:
        data = assets._read_checked(path, case.limits)
    except AssetError as error:
        caught: AssetError = error
    else:
        with pytest.raises(AssetError) as raised:
            _parse_and_check(path, data, case.limits)
        caught = raised.value
    assert (type(caught), str(caught)) == (type(expected.value), str(expected.value))


def test_errors_and_limits_have_one_home() -> None:
    """The front re-exports the errors and limits; they are the same objects, defined once."""
    for name in ("AssetError", "UnreadableAsset", "EmptyAsset", "NonFiniteAsset", "BadFaceIndices",
                 "AssetTooLarge", "PathEscapes", "LoadTimeout", "LoaderCrashed"):  # fmt: skip
        assert getattr(assets, name) is getattr(errors, name)
        assert getattr(errors, name).__module__ == "anyi2v.render.errors"
    for name in ("LoadLimits", "DEFAULT_LIMITS", "UpAxis", "Reader"):
        assert getattr(assets, name) is getattr(limits, name)
    assert assets.SUFFIXES == (".glb", ".gltf", ".obj", ".ply", ".stl", ".off", ".pcd", ".xyz", ".npy")
