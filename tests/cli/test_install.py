"""`pip install .` and `pip install -e .` in fresh virtual environments both give a working `anyi2v`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, REPO

pytestmark = pytest.mark.slow

SOURCES = ("cli", "shared", "render", "daemon", "desktop", "examples", "pyproject.toml", "README.md", "LICENSE")


def copy_sources(destination: Path) -> Path:
    """The package's sources without any build output of the working tree."""
    for name in SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, destination / name)
    return destination


@pytest.mark.parametrize("editable", [False, True], ids=["install", "editable"])
def test_fresh_install_works(tmp_path: Path, editable: bool) -> None:
    project = copy_sources(tmp_path / "project")
    environment = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(environment)
    python = environment / "bin" / "python"
    target = [str(project)] if not editable else ["-e", str(project)]
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *target],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr[-3000:]

    anyi2v = environment / "bin" / "anyi2v"
    help_run = subprocess.run([str(anyi2v), "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert help_run.returncode == 0, help_run.stderr
    assert "validate" in help_run.stdout

    example = EXAMPLES / "object_moves_across.json"
    validate = subprocess.run([str(anyi2v), "validate", str(example)], capture_output=True, text=True, cwd=tmp_path)
    assert validate.returncode == 0, validate.stderr

    # Namespaced: the installed names live under anyi2v, and nothing named `shared` is importable.
    probe = (
        "import importlib.util, anyi2v.shared, anyi2v.render, anyi2v.daemon, anyi2v.desktop\n"
        "print(importlib.util.find_spec('shared') is None, anyi2v.shared.__file__)\n"
    )
    imported = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    no_top_level_shared, location = imported.stdout.split()
    assert no_top_level_shared == "True"
    assert (str(project) in location) == editable
    assert sys.prefix not in location

    licence = (
        "from importlib.metadata import distribution\n"
        "d = distribution('anyi2v-studio')\n"
        "print(d.metadata['License-Expression'], any(f.name == 'LICENSE' for f in d.files or ()))\n"
    )
    declared = subprocess.run([str(python), "-c", licence], capture_output=True, text=True, cwd=tmp_path)
    assert declared.stdout.split() == ["Apache-2.0", "True"], declared.stderr
