"""Issue 19, item 12: glTF objects are named from the node path and the mesh, the same every run, so a
shot's object tracks still find them when it is opened again."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import trimesh

from anyi2v.render.assets import read_asset

EXPECTED = ["chair/mesh_0", "chair/legmesh", "lampmesh/primitive_0", "lampmesh/primitive_1", "named_lamp"]


def _glb(tree: dict[str, object], binary: bytes) -> bytes:
    text = json.dumps(tree).encode()
    text += b" " * (-len(text) % 4)
    binary += b"\0" * (-len(binary) % 4)
    chunks = struct.pack("<I4s", len(text), b"JSON") + text + struct.pack("<I4s", len(binary), b"BIN\0") + binary
    return b"glTF" + struct.pack("<II", 2, 12 + len(chunks)) + chunks


def write_unnamed_scene(path: Path) -> None:
    """A chair frame holding two unnamed nodes (one with an unnamed mesh), an unnamed node whose mesh
    has two primitives, and a named node: written by trimesh, then its names removed from the JSON."""
    scene = trimesh.Scene()
    chair = trimesh.transformations.translation_matrix([2.0, 0.0, 0.0])
    scene.graph.update(frame_from=scene.graph.base_frame, frame_to="chair", matrix=chair)
    scene.add_geometry(trimesh.creation.box(), node_name="seat", geom_name="seat", parent_node_name="chair")
    scene.add_geometry(trimesh.creation.icosphere(), node_name="leg", geom_name="legmesh", parent_node_name="chair")
    scene.add_geometry(trimesh.creation.box(), node_name="lamp", geom_name="lampmesh")
    scene.add_geometry(
        trimesh.creation.box(),
        node_name="named_lamp",
        geom_name="other",
        transform=trimesh.transformations.translation_matrix([0.0, 3.0, 0.0]),
    )
    data = scene.export(file_type="glb")
    length = struct.unpack_from("<I", data, 12)[0]
    tree = json.loads(data[20 : 20 + length])
    binary = data[20 + length + 8 :]
    nodes, meshes = tree["nodes"], tree["meshes"]
    for node in nodes:
        if node.get("name") in ("seat", "leg", "lamp"):
            del node["name"]
    seat_mesh = nodes[[node.get("mesh") for node in nodes].index(0)]["mesh"]
    del meshes[seat_mesh]["name"]
    lamp = next(node for node in nodes if "name" not in node and "children" not in node and node["mesh"] == 2)
    meshes[lamp["mesh"]]["primitives"].append(dict(meshes[1]["primitives"][0]))
    path.write_bytes(_glb(tree, binary))


def _names_in_a_fresh_process(path: Path) -> list[str]:
    code = (
        "import sys, json; from anyi2v.render.assets import read_asset;"
        "print(json.dumps([o.name for o in read_asset(sys.argv[1]).objects]))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    return list(json.loads(done.stdout))


def test_unnamed_gltf_nodes_get_the_same_readable_names_in_every_process(tmp_path: Path) -> None:
    path = tmp_path / "unnamed.glb"
    write_unnamed_scene(path)
    first, second = _names_in_a_fresh_process(path), _names_in_a_fresh_process(path)
    assert first == second
    assert sorted(first) == sorted(EXPECTED)


def test_unnamed_gltf_objects_keep_their_places(tmp_path: Path) -> None:
    path = tmp_path / "unnamed.glb"
    write_unnamed_scene(path)
    unnormalised = {item.name: item for item in read_asset(path).objects}
    assert len(unnormalised) == len(EXPECTED)
    # the chair's children sit right of the lamps: the chair frame's transform was applied
    assert unnormalised["chair/mesh_0"].points[:, 0].mean() > unnormalised["lampmesh/primitive_0"].points[:, 0].mean()


def test_named_gltf_nodes_keep_their_names(tmp_path: Path) -> None:
    scene = trimesh.Scene()
    scene.add_geometry(trimesh.creation.box(), node_name="crate", geom_name="crate")
    scene.add_geometry(trimesh.creation.icosphere(), node_name="ball", geom_name="ball")
    scene.export(tmp_path / "named.glb")
    assert sorted(item.name for item in read_asset(tmp_path / "named.glb").objects) == ["ball", "crate"]
