"""The open shot: its validated value, the file it lives in, and whether it changed since it was saved.

Every change goes through :meth:`ShotDocument.replace` with a new, validated :class:`Shot` (edits are
pure functions in :mod:`.edits`), so undo is putting the previous value back.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path, PurePath

from anyi2v.shared.document import load_shot, parse_shot, save_shot
from anyi2v.shared.shot import Shot

from .events import Emitter


class ShotDocument:
    """``shot`` is the current value; ``path`` the file (None until first saved); ``base_dir`` the folder
    the shot's relative paths start from."""

    def __init__(self, shot: Shot, path: Path | None = None, base_dir: Path | None = None) -> None:
        self.shot = shot
        self.path = path.resolve() if path is not None else None
        self.base_dir = (self.path.parent if self.path is not None else (base_dir or Path.cwd())).resolve()
        self._saved: Shot | None = shot if path is not None else None
        self.key = uuid.uuid4().hex[:12]  # names an untitled shot's results folder
        self.changed: Emitter[Shot] = Emitter()
        self.saved: Emitter[Path] = Emitter()

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> ShotDocument:
        """Raises ``ShotError`` naming every problem, or ``OSError``."""
        path = Path(path)
        return cls(load_shot(path), path)

    @property
    def dirty(self) -> bool:
        """True when there is something a save would keep that is not on disk."""
        return self._saved is None or self.shot != self._saved

    @property
    def title(self) -> str:
        name = self.path.name if self.path is not None else "untitled"
        return f"{name}{' *' if self.dirty else ''}"

    def replace(self, shot: Shot) -> None:
        if shot == self.shot:
            return
        self.shot = shot
        self.changed.emit(shot)

    def resolve(self, relative: str) -> Path:
        """A path the shot names, as a file on this machine."""
        return self.base_dir / relative

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the shot (atomically). Saving to a new folder rewrites its relative paths so they still
        name the same files; raises ``OSError`` and keeps the document unsaved when the write fails."""
        target = Path(path).resolve() if path is not None else self.path
        if target is None:
            raise ValueError("this shot has no file yet: save it under a name")
        shot = rebase_paths(self.shot, self.base_dir, target.parent)
        save_shot(shot, target)
        self.path, self.base_dir, self._saved = target, target.parent, shot
        if shot != self.shot:
            self.shot = shot
            self.changed.emit(shot)
        self.saved.emit(target)
        return target


def shot_relative(path: Path, base_dir: Path) -> str:
    """``path`` as a shot file keeps it: relative to the shot's folder (absolute across drives)."""
    absolute = path.resolve()
    try:
        return PurePath(os.path.relpath(absolute, base_dir.resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        return str(absolute)


def rebase_paths(shot: Shot, old_base: Path, new_base: Path) -> Shot:
    """``shot`` with every relative file path rewritten from ``old_base`` to ``new_base`` (as relative
    paths where the two share a root, absolute otherwise)."""
    document = shot.model_dump(mode="json")

    def moved(name: str) -> str:
        return shot_relative(old_base / name, new_base)

    if document.get("scene"):
        document["scene"]["path"] = moved(document["scene"]["path"])
    for layer in document["conditions"]:
        if layer["source"]["kind"] == "image":
            layer["source"]["path"] = moved(layer["source"]["path"])
        if layer.get("region") and layer["region"]["kind"] == "mask":
            layer["region"]["path"] = moved(layer["region"]["path"])
    return parse_shot(document)
