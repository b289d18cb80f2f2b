"""The shape of the code base: no import cycle between our modules, and no module that has grown into
two. These hold the layout of ARCHITECTURE.md in place the way import-linter holds its layers."""

from __future__ import annotations

from pathlib import Path

import grimp
import numpy as np
import pytest
from scipy.sparse import csr_array
from scipy.sparse.csgraph import connected_components

from tests.conftest import REPO

PACKAGES = ("shared", "render", "daemon", "desktop", "cli")
MAX_LINES = 500


def import_cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Every strongly connected group of more than one module: each is one or more import cycles.

    graph : the import graph, imports inside functions included (a lazy import that closes a circle
        is still a circle; it only fails later)
    modules : the module names to look at
    """
    names = sorted(modules)
    index = {name: i for i, name in enumerate(names)}
    rows, columns = [], []
    for name in names:
        for imported in graph.find_modules_directly_imported_by(name):
            if imported in index:
                rows.append(index[name])
                columns.append(index[imported])
    adjacency = csr_array((np.ones(len(rows)), (rows, columns)), shape=(len(names), len(names)))
    count, labels = connected_components(adjacency, directed=True, connection="strong")
    groups = [[names[i] for i in np.flatnonzero(labels == label)] for label in range(count)]
    return [group for group in groups if len(group) > 1]


def our_graph() -> tuple[grimp.ImportGraph, set[str]]:
    # Imports under `if TYPE_CHECKING:` never run: annotations may name each other freely.
    graph = grimp.build_graph("anyi2v", exclude_type_checking_imports=True, cache_dir=None)
    return graph, {module for module in graph.modules if module.startswith("anyi2v")}


def test_the_import_graph_sees_every_package() -> None:
    _, modules = our_graph()
    for package in ("anyi2v.shared", "anyi2v.render", "anyi2v.daemon", "anyi2v.desktop"):
        assert package in modules
    # the deepest modules are reached too, or the cycle test below would pass on a partial graph
    assert "anyi2v.daemon.pipeline.generate" in modules
    assert "anyi2v.desktop.qt.window" in modules


def test_no_module_imports_itself_back() -> None:
    graph, modules = our_graph()
    cycles = import_cycles(graph, modules)
    assert not cycles, "import cycles (each group imports itself back through the others): " + "; ".join(
        " <-> ".join(group) for group in cycles
    )


def test_the_cycle_finder_finds_a_planted_cycle() -> None:
    graph, modules = our_graph()
    graph.add_import(importer="anyi2v.shared.errors", imported="anyi2v.shared.document")
    cycles = import_cycles(graph, modules)
    assert any({"anyi2v.shared.errors", "anyi2v.shared.document"} <= set(group) for group in cycles)


def source_files() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (REPO / package).rglob("*.py"))


@pytest.mark.parametrize("path", source_files(), ids=lambda path: str(path.relative_to(REPO)))
def test_no_module_over_500_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, (
        f"{path.relative_to(REPO)} has {lines} lines (at most {MAX_LINES}): what second thing is it doing?"
    )


@pytest.mark.parametrize("path", source_files(), ids=lambda path: str(path.relative_to(REPO)))
def test_the_codemap_names_every_module(path: Path) -> None:
    """ARCHITECTURE.md's codemap is kept true in the change that adds a module (as `name.py`, under its
    package's section, or with its folder: `pipeline/name.py`)."""
    if path.name in ("__init__.py", "__main__.py"):
        return
    codemap = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")
    assert f"{path.name}`" in codemap, (
        f"{path.relative_to(REPO)} is not in ARCHITECTURE.md's codemap: add a row saying what it is"
    )
