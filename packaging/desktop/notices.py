"""THIRD-PARTY-NOTICES.md for a built bundle: every distribution that has a file in it, with its version,
its licence as its metadata states it, and its licence files copied to ``licenses/NAME/``.

Which files went in comes from PyInstaller's own tables of contents (``PYZ-00.toc``: the Python modules;
``COLLECT-00.toc``: libraries and data), each source path mapped to the installed distribution that
owns it; the bundle's Python itself is added by hand. The hand-written part (the Qt and FFmpeg terms)
is ``THIRD-PARTY-NOTICES.md`` beside this file; the generated table follows it.
"""

from __future__ import annotations

import ast
import shutil
from importlib.metadata import Distribution, distributions
from pathlib import Path

HERE = Path(__file__).resolve().parent
LICENCE_FILE_PREFIXES = ("license", "licence", "copying", "notice", "authors")


def _toc_sources(work: Path) -> set[Path]:
    """Source paths of everything PyInstaller put in the bundle."""
    sources: set[Path] = set()
    for name in ("PYZ-00.toc", "COLLECT-00.toc"):
        table = ast.literal_eval((work / name).read_text())
        entries = table[1] if name.startswith("PYZ") else table
        for entry in entries:
            if isinstance(entry, tuple) and len(entry) == 3 and isinstance(entry[1], str) and entry[1]:
                sources.add(Path(entry[1]).resolve())
    return sources


def _owners(sources: set[Path]) -> dict[str, Distribution]:
    """Installed distributions (by normalised name) owning at least one of ``sources``."""
    owners: dict[str, Distribution] = {}
    for dist in distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if not name or name in owners:
            continue
        for file in dist.files or ():
            if Path(str(dist.locate_file(file))).resolve() in sources:
                owners[name] = dist
                break
    return owners


def _licence(dist: Distribution) -> str:
    metadata = dist.metadata
    expression = metadata.get("License-Expression")
    if expression:
        return str(expression)
    classifiers = [c.split("::")[-1].strip() for c in metadata.get_all("Classifier") or [] if c.startswith("License")]
    if classifiers:
        return "; ".join(classifiers)
    text = (metadata.get("License") or "").strip().splitlines()
    return text[0][:80] if text else "not stated in its metadata (see its licence files)"


def _licence_files(dist: Distribution) -> list[Path]:
    found = []
    for file in dist.files or ():
        if file.name.lower().startswith(LICENCE_FILE_PREFIXES) and ".dist-info" in str(file):
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                found.append(path)
    return found


def write_notices(bundle: Path, work: Path) -> int:
    """Write ``bundle/THIRD-PARTY-NOTICES.md`` and ``bundle/licenses/``; returns how many distributions."""
    owners = _owners(_toc_sources(work))
    licences = bundle / "licenses"
    rows = []
    for name in sorted(owners):
        dist = owners[name]
        copied: list[str] = []
        for path in _licence_files(dist):
            target = licences / name / path.name
            if f"licenses/{name}/{path.name}" in copied:  # vendored copies of one name: the package's own first
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
            copied.append(f"licenses/{name}/{path.name}")
        rows.append(f"| {name} | {dist.version} | {_licence(dist)} | {', '.join(copied) or '(none shipped)'} |")
    table = ["| distribution | version | licence (its metadata) | licence files here |", "| --- | --- | --- | --- |"]
    text = (HERE / "THIRD-PARTY-NOTICES.md").read_text().rstrip() + "\n\n## What this bundle ships\n\n"
    (bundle / "THIRD-PARTY-NOTICES.md").write_text(text + "\n".join(table + rows) + "\n")
    return len(rows)
