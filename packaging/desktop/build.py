"""Build the studio as a one-folder desktop bundle with PyInstaller.

    python packaging/desktop/build.py --flavour remote   # talks to daemons elsewhere: no torch
    python packaging/desktop/build.py --flavour full     # with the embedded daemon and the toy model

One folder, not one file, so that users can replace the Qt libraries the bundle ships (the LGPL's
terms for PySide6 and Qt). The folder gets the project's LICENSE and THIRD-PARTY-NOTICES.md with
licenses/ (notices.py: every distribution with a file in the bundle). Prints the bundle's path and size.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
NAME = "anyi2v-studio"

# What the remote-only flavour leaves out: the pipeline's stack and what only it imports.
PIPELINE = ["torch", "torchvision", "torchaudio", "diffusers", "transformers", "peft", "accelerate",
            "safetensors", "einops", "triton", "sympy", "anyi2v.daemon.pipeline.generate",
            "anyi2v.daemon.toyworld", "matplotlib", "cv2", "sklearn"]  # fmt: skip
# Test and notebook tooling, in neither flavour (torch needs sympy, and the full flavour keeps what the
# pipeline's libraries import, optional or not).
NEVER = ["tkinter", "IPython", "jupyter", "notebook", "pytest", "_pytest", "pluggy", "iniconfig", "hypothesis",
         "mypy", "ruff", "PyInstaller"]  # fmt: skip
# Open3D imports its web visualiser (plotly, dash: about 100 MB) whenever it is imported, so they stay.


def submodules(excluded: list[str]) -> list[str]:
    """Every module of the installed ``anyi2v`` package but the excluded ones (the CLI imports its
    subcommands lazily, so PyInstaller's analysis alone would miss them), found without importing any."""
    import pkgutil

    import anyi2v

    found: list[str] = []

    def walk(paths: list[str], prefix: str) -> None:
        for module in pkgutil.iter_modules(paths):
            name = prefix + module.name
            if any(name == item or name.startswith(item + ".") for item in excluded):
                continue
            found.append(name)
            if module.ispkg:
                walk([str(Path(module.module_finder.path) / module.name)], name + ".")  # type: ignore[union-attr]

    walk(list(anyi2v.__path__), "anyi2v.")
    return found


def pyinstaller_arguments(flavour: str, dist: Path, work: Path) -> list[str]:
    excluded = NEVER + (PIPELINE if flavour == "remote" else [])
    arguments = [
        str(HERE / "anyi2v_studio.py"),
        "--name", NAME, "--onedir", "--noconfirm", "--clean", "--log-level", "WARN",
        "--distpath", str(dist), "--workpath", str(work), "--specpath", str(work),
        "--copy-metadata", "anyi2v-studio",
    ]  # fmt: skip
    if flavour == "full":  # package data: the CLIP tokenizer, the configs, the toy model
        arguments += ["--collect-data", "anyi2v", "--collect-data", "diffusers"]
        if importlib.util.find_spec("kernels") is not None:  # transformers' hub kernels read their data at import
            arguments += ["--collect-data", "kernels"]
        for distribution in ("diffusers", "transformers", "torch", "peft"):  # they check their own and their
            arguments += ["--recursive-copy-metadata", distribution]  # dependencies' versions at import
    for module in excluded:
        arguments += ["--exclude-module", module]
    for module in submodules(excluded):
        arguments += ["--hidden-import", module]
    return arguments


def folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and not path.is_symlink())


def build(flavour: str, out: Path) -> Path:
    work = out / f"build-{flavour}"
    dist = out / flavour
    started = time.monotonic()
    command = [sys.executable, "-m", "PyInstaller", *pyinstaller_arguments(flavour, dist, work)]
    subprocess.run(command, check=True, cwd=REPO)
    bundle = dist / NAME
    shutil.copy(REPO / "LICENSE", bundle / "LICENSE")
    sys.path.insert(0, str(HERE))
    from notices import write_notices

    listed = write_notices(bundle, work / NAME)
    (bundle / "FLAVOUR").write_text(flavour + "\n")
    print(f"{bundle}: {folder_size(bundle) / 2**20:.0f} MiB, {listed} third-party distributions in its notices,"
          f" built in {time.monotonic() - started:.0f} s")  # fmt: skip
    return bundle


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flavour", choices=["remote", "full"], default="remote")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "desktop", help="default build/desktop")
    arguments = parser.parse_args()
    if shutil.which("pyinstaller") is None and not (Path(sys.executable).parent / "pyinstaller").exists():
        print("build.py: PyInstaller is not installed: pip install pyinstaller", file=sys.stderr)
        return 2
    build(arguments.flavour, arguments.out.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
