"""Stable, readable names for the objects of a glTF scene, the same every run.

trimesh names a scene node after the glTF node's ``name``, or its index (``2``) when it has none, and
each primitive of a mesh with several after the node and a random suffix (``3_d8a1f0``): a shot that
tracks such an object loses it the next time the file is loaded. Here each object is named from the
glTF itself:

- a named node holding a one-primitive mesh keeps trimesh's name for it (the node's name);
- an unnamed node is named by its nearest named ancestor and its mesh: ``chair/seat``, or
  ``chair/mesh_0`` when the mesh has no name either (just ``seat`` or ``mesh_0`` with no named ancestor);
- each primitive of a mesh with several is ``NAME/primitive_K``;
- a name met twice gets ``_2``, ``_3``... in the order the objects are listed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def gltf_object_names(
    tree: dict[str, Any], graph: Any, geometry_nodes: list[str], rank: Callable[[str], int]
) -> dict[str, str]:
    """``{trimesh node name: stable name}`` for ``geometry_nodes`` of trimesh's scene ``graph`` of the
    glTF whose JSON is ``tree``; ``rank`` orders them (their geometry's place in the file), and the glTF
    node index breaks ties, so repeated names get the same suffixes every run. A node that cannot be
    traced back to a glTF node keeps trimesh's name."""
    from trimesh.util import unique_name

    nodes = tree.get("nodes", [])
    meshes = tree.get("meshes", [])
    if not isinstance(nodes, list) or not isinstance(meshes, list):
        return {node: node for node in geometry_nodes}
    # trimesh's frame name for each glTF node: its own loop, run again over the same input
    frame_to_index: dict[str, int] = {}
    counts: dict[str, int] = {}
    for index, node in enumerate(nodes):
        own = node.get("name", str(index)) if isinstance(node, dict) else str(index)
        frame_to_index[unique_name(own, frame_to_index, counts=counts)] = index
    index_to_frame = {index: frame for frame, index in frame_to_index.items()}
    parents = _parents(nodes)
    primitives: dict[str, list[str]] = {}  # a multi-primitive node's frame: its primitives' nodes, in order
    traced: dict[str, tuple[int, str | None]] = {}
    for node_name in geometry_nodes:
        own_index = frame_to_index.get(node_name)
        if own_index is not None and _mesh_of(nodes, own_index) is not None:
            traced[node_name] = (own_index, None)
            continue
        parent = graph.transforms.parents.get(node_name)
        if parent in frame_to_index and _mesh_of(nodes, frame_to_index[parent]) is not None:
            traced[node_name] = (frame_to_index[parent], parent)
            primitives.setdefault(parent, []).append(node_name)
    names: dict[str, str] = {}
    taken: dict[str, int] = {}
    ordered = sorted(geometry_nodes, key=lambda node: (rank(node), traced.get(node, (len(nodes), None))[0], node))
    for node_name in ordered:
        if node_name not in traced:
            name = node_name
        else:
            index, parent = traced[node_name]
            name = _node_label(nodes, meshes, index, parents, index_to_frame)
            if parent is not None:
                name += f"/primitive_{primitives[parent].index(node_name)}"
        seen = taken.get(name, 0) + 1
        taken[name] = seen
        names[node_name] = name if seen == 1 else f"{name}_{seen}"
    return names


def _parents(nodes: list[Any]) -> dict[int, int]:
    """``{child index: parent index}`` from the nodes' ``children`` lists (the first parent wins)."""
    parents: dict[int, int] = {}
    for index, node in enumerate(nodes):
        children = node.get("children", []) if isinstance(node, dict) else []
        for child in children if isinstance(children, list) else []:
            if isinstance(child, int) and child != index:
                parents.setdefault(child, index)
    return parents


def _mesh_of(nodes: list[Any], index: int) -> int | None:
    node = nodes[index] if 0 <= index < len(nodes) else None
    mesh = node.get("mesh") if isinstance(node, dict) else None
    return mesh if isinstance(mesh, int) else None


def _node_label(
    nodes: list[Any], meshes: list[Any], index: int, parents: dict[int, int], frames: dict[int, str]
) -> str:
    """A named node's frame name; else the nearest named ancestor's, a slash, and the mesh's name."""
    if isinstance(nodes[index].get("name"), str):
        return frames[index]
    mesh_index = _mesh_of(nodes, index)
    mesh = meshes[mesh_index] if mesh_index is not None and 0 <= mesh_index < len(meshes) else None
    mesh_name = mesh.get("name") if isinstance(mesh, dict) else None
    label = mesh_name if isinstance(mesh_name, str) and mesh_name else f"mesh_{mesh_index}"
    ancestor, seen = parents.get(index), {index}
    while ancestor is not None and ancestor not in seen:
        if isinstance(nodes[ancestor], dict) and isinstance(nodes[ancestor].get("name"), str):
            return f"{frames[ancestor]}/{label}"
        seen.add(ancestor)
        ancestor = parents.get(ancestor)
    return label
