"""The model library: a models folder kept the way artists keep files for AnimateDiff tools.

The layout is :data:`LAYOUT` (``checkpoints/``, ``animatediff_models/`` for motion modules,
``animatediff_motion_lora/``, ``loras/``, ``vae/``), but nothing depends on it: every ``.safetensors``,
``.ckpt``, ``.pt``, ``.pth`` and ``.bin`` file and every diffusers folder anywhere inside is an entry,
recognised by its content (:mod:`model_kinds`), never by its folder or file name. A safetensors file is
read up to the end of its header only and nothing imports torch for it; a pickled file is opened with
``torch.load(weights_only=True, mmap=True)`` (see :mod:`model_headers`). A file that cannot be read is
listed with its problem; the scan never fails on one.

Names: an entry's name is its path inside the library without the file's suffix
(``checkpoints/realisticVision_v51``); two files differing only in suffix keep theirs. Its short name
(``realisticVision_v51``) is the last part, when no other entry of its kind has the same one.
:meth:`Library.resolve` takes either (or the file's own relative path) and a kind, and resolves inside
the library only: absolute paths, ``..`` and ``~`` are refused, as is a name of another kind or an entry
that cannot be used; each is a :class:`LibraryError` (a :class:`ModelLoadError`) saying what the library
holds instead.

Symbolic links are followed: a file or folder linked in from elsewhere (a shared drive, another tool's
models folder) is listed and loaded, under the link's own name and path inside the library; a folder
reached twice (a link back up the tree) is walked once.
"""

from __future__ import annotations

import difflib
import os
import shlex
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Literal

from platformdirs import user_data_path

from anyi2v.daemon.pipeline.load_errors import ModelLoadError, first_few
from anyi2v.daemon.pipeline.model_headers import HeaderError, read_pickle_tensors, read_safetensors_header
from anyi2v.daemon.pipeline.model_kinds import KINDS, Kind, Recognition, recognise_folder, recognise_tensors

__all__ = [
    "APP_NAME",
    "LAYOUT",
    "Library",
    "LibraryEntry",
    "LibraryError",
    "MissingLibraryError",
    "ModelNameError",
    "UnusableModelError",
    "default_models_dir",
    "describe_path",
    "layout_hint",
    "scan_library",
]

APP_NAME = "anyi2v"
"""The app's name for platformdirs, as the CLI's and the studio's folders use it."""

LAYOUT: dict[Kind, str] = {
    "checkpoint": "checkpoints",
    "motion_module": "animatediff_models",
    "motion_lora": "animatediff_motion_lora",
    "lora": "loras",
    "vae": "vae",
}
"""Where each kind goes, as AnimateDiff tools lay out a models folder (only a convention: content decides)."""

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
MODEL_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)
_OLD_PICKLE = "pickled in torch's old format: what it holds is known only when it is loaded (with weights_only=True)"

Storage = Literal["safetensors", "pickle", "diffusers", "folder"]


class LibraryError(ModelLoadError):
    """The models folder, or a name in it, is not what was asked for; the message says what it holds."""


class MissingLibraryError(LibraryError):
    """The models folder does not exist; the message names it and its layout."""


class ModelNameError(LibraryError):
    """No entry of the asked kind has the name (or it is a path, not a name); the message lists those there are."""


class UnusableModelError(LibraryError):
    """The name is an entry that cannot be used; the message names its file and why."""


def default_models_dir() -> Path:
    """The models folder when none is given: ``models`` in the app's data folder (``$XDG_DATA_HOME/anyi2v/
    models``, ``~/.local/share/anyi2v/models`` on Linux), beside the daemon's and the studio's data."""
    return user_data_path(APP_NAME, appauthor=False) / "models"


def layout_hint(root: Path) -> str:
    """How a models folder is laid out and made, for messages."""
    folders = ",".join(LAYOUT.values())
    return (
        "a models folder holds checkpoints/, animatediff_models/ (motion modules), animatediff_motion_lora/, "
        f"loras/ and vae/: mkdir -p {shlex.quote(str(root))}/{{{folders}}} and put model files in them"
    )


@dataclass(frozen=True)
class LibraryEntry:
    """One model of the library. ``path`` is inside the library (a link's own path, not its target)."""

    name: str
    file: str  # the path inside the library, suffix and all
    path: Path
    kind: Kind
    storage: Storage
    size_bytes: int
    family: str | None = None
    version: str | None = None  # a motion module's AnimateDiff version (v1, v2, v3, AnimateLCM)
    frame_limit: int | None = None  # the frames a motion module's position encoding holds
    lora_format: str | None = None  # kohya or diffusers
    problem: str | None = None  # why it cannot be used
    note: str | None = None  # what is worth knowing and does not stop its use
    short_name: str | None = None
    stamp: tuple[int, int] | None = field(default=None, compare=False)  # a file's (size, mtime_ns) when read

    @property
    def usable(self) -> bool:
        return self.problem is None

    def as_dict(self) -> dict[str, Any]:
        """The entry as JSON values (no absolute path: names are what clients use)."""
        return {
            "name": self.name,
            "short_name": self.short_name,
            "file": self.file,
            "kind": self.kind,
            "family": self.family,
            "storage": self.storage,
            "version": self.version,
            "frame_limit": self.frame_limit,
            "lora_format": self.lora_format,
            "size_bytes": self.size_bytes,
            "problem": self.problem,
            "note": self.note,
        }


@dataclass(frozen=True)
class Library:
    """The entries of the models folder ``root``, sorted by kind (in :data:`KINDS` order), then name."""

    root: Path
    entries: tuple[LibraryEntry, ...] = field(default=())

    def of_kind(self, kind: Kind) -> tuple[LibraryEntry, ...]:
        return tuple(entry for entry in self.entries if entry.kind == kind)

    def as_json(self) -> list[dict[str, Any]]:
        return [entry.as_dict() for entry in self.entries]

    def resolve(self, name: str, kind: Kind) -> Path:
        """The path of the ``kind`` entry called ``name`` (see :meth:`find`)."""
        return self.find(name, kind).path

    def find(self, name: str, kind: Kind) -> LibraryEntry:
        """The ``kind`` entry whose name, short name or relative file is ``name``; an entry of unknown kind that
        has no problem (an old-format pickle) matches any kind, the loader then tells.

        Raises :class:`ModelNameError` for a path, an unknown or ambiguous name, or a name of another kind;
        :class:`UnusableModelError` for an entry that cannot be used.
        """
        text = name.strip()
        if not text or _is_path(text):
            raise ModelNameError(
                f"{name!r}: models are chosen by their name in the library {self.root}, not by a path "
                f"({self._listing(kind)})"
            )
        candidates = [entry for entry in self.entries if text in (entry.name, entry.file)] or [
            entry for entry in self.entries if _stem(entry) == text
        ]
        fitting = [entry for entry in candidates if entry.kind == kind or (entry.kind == "unknown" and entry.usable)]
        if len(fitting) > 1:
            listed = first_few(sorted(entry.name for entry in fitting))
            raise ModelNameError(f"{name!r} names {len(fitting)} {kind} entries: {listed}; give the full name")
        if fitting:
            entry = fitting[0]
            if entry.problem is not None:
                raise UnusableModelError(f"{entry.path}: {entry.problem}")
            return entry
        if candidates:
            other = candidates[0]
            raise ModelNameError(f"{name!r} is a {other.kind} ({other.file}), not a {kind}; {self._listing(kind)}")
        spellings = {entry.name: entry.name for entry in self.of_kind(kind)}
        spellings |= {entry.short_name: entry.name for entry in self.of_kind(kind) if entry.short_name}
        close = dict.fromkeys(spellings[match] for match in difflib.get_close_matches(text, spellings, n=3, cutoff=0.6))
        guess = f"; did you mean {' or '.join(repr(match) for match in close)}?" if close else ""
        raise ModelNameError(f"no {kind} named {name!r} in {self.root}{guess} ({self._listing(kind)})")

    def _listing(self, kind: Kind) -> str:
        names = [entry.name for entry in self.of_kind(kind)]
        if not names:
            folder = LAYOUT.get(kind, LAYOUT["checkpoint"])
            return f"the library has no {kind} entries: put them in {self.root / folder}"
        return f"{kind} entries: {first_few(names, 30)}"


def _is_path(text: str) -> bool:
    """Whether ``text`` is a path rather than a name inside the library: absolute (POSIX or Windows), with a
    drive, from a home folder, or climbing out with ``..``."""
    windows = PureWindowsPath(text)
    posix = PurePosixPath(text.replace("\\", "/"))
    return (
        posix.is_absolute()
        or windows.is_absolute()
        or bool(windows.drive)
        or text.startswith("~")
        or (".." in posix.parts)
    )


def _base(entry: LibraryEntry) -> str:
    """The entry's path inside the library without a file's suffix."""
    return entry.file if entry.storage in ("diffusers", "folder") else entry.file.rsplit(".", 1)[0]


# --- scanning ---------------------------------------------------------------------------------------------


def scan_library(models_dir: str | os.PathLike[str], previous: Library | None = None) -> Library:
    """Every model in ``models_dir`` (see the module's documentation); :class:`MissingLibraryError` when the
    folder does not exist, :class:`LibraryError` when it is itself one model rather than a folder of them.

    With ``previous`` (an earlier scan of the same folder), a file whose size and modification time are
    unchanged keeps what was read of it then, unopened: a scan of an unchanged library only lists folders."""
    root = Path(models_dir).expanduser().absolute()  # not resolved: a linked library keeps its own path
    if not root.is_dir():
        what = "not a folder" if root.exists() else "no such folder"
        raise MissingLibraryError(f"{root}: {what}; {layout_hint(root)}")
    try:
        with os.scandir(root):
            pass
    except OSError as error:
        raise LibraryError(f"{root}: the models folder cannot be read ({error.strerror or error})") from None
    if recognise_folder(root) is not None:
        raise LibraryError(
            f"{root}: this folder is one model, not a library of models; {layout_hint(root.parent / 'models')}"
        )
    known = {entry.path: entry for entry in previous.entries if entry.stamp is not None} if previous else {}
    found = [_known(known.get(path), path) or _entry(root, path, recognition) for path, recognition in _walk(root)]
    return Library(root, tuple(sorted(_named(found), key=_order)))


def _known(entry: LibraryEntry | None, path: Path) -> LibraryEntry | None:
    """``entry`` when ``path`` is still the file it was read from (same size and modification time)."""
    if entry is None:
        return None
    try:
        status = path.stat()
    except OSError:
        return None
    return entry if entry.stamp == (status.st_size, status.st_mtime_ns) else None


def describe_path(path: str | os.PathLike[str]) -> LibraryEntry | None:
    """A model file or folder outside any library, recognised as a library entry is (named by its own name);
    None for a folder that is no model folder (whoever loads it then says what it expected)."""
    path = Path(path).expanduser().absolute()
    recognition = recognise_folder(path) if path.is_dir() else None
    if path.is_dir() and recognition is None:
        return None
    return _named([_entry(path.parent, path, recognition)])[0]


def _order(entry: LibraryEntry) -> tuple[int, str, str]:
    return KINDS.index(entry.kind), entry.name.casefold(), entry.name


def _walk(root: Path) -> Iterator[tuple[Path, Recognition | str | None]]:
    """Model files (with None), model folders (with what they are) and unreadable folders (with why), in
    name order, following links; hidden names are skipped and a folder reached twice is walked once."""
    seen: set[tuple[int, int]] = set()
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            status = folder.stat()
            children = sorted(os.scandir(folder), key=lambda child: child.name)
        except OSError as error:
            if folder != root:
                yield folder, f"cannot be read ({error.strerror or error})"
            continue
        if (status.st_dev, status.st_ino) in seen:
            continue
        seen.add((status.st_dev, status.st_ino))
        subfolders: list[Path] = []
        for child in children:
            if child.name.startswith("."):
                continue
            path = Path(child.path)
            if _is_folder(child):
                recognition = recognise_folder(path)
                if recognition is None:
                    subfolders.append(path)
                else:
                    yield path, recognition
            elif path.suffix.lower() in MODEL_SUFFIXES:
                yield path, None
        pending.extend(reversed(subfolders))


def _is_folder(child: os.DirEntry[str]) -> bool:
    try:
        return child.is_dir()  # follows links
    except OSError:
        return False


def _entry(root: Path, path: Path, recognition: Recognition | str | None) -> LibraryEntry:
    file = path.relative_to(root).as_posix()
    if isinstance(recognition, str):  # a folder that cannot be read
        return LibraryEntry(file, file, path, "unknown", "folder", 0, problem=recognition)
    if recognition is not None:
        return _with(LibraryEntry(file, file, path, "unknown", "diffusers", _folder_size(path)), recognition)
    storage: Storage = "safetensors" if path.suffix.lower() == ".safetensors" else "pickle"
    entry = LibraryEntry(file, file, path, "unknown", storage, 0)
    try:
        status = path.stat()
        entry = replace(entry, size_bytes=status.st_size, stamp=(status.st_size, status.st_mtime_ns))
    except FileNotFoundError:
        target = os.readlink(path) if path.is_symlink() else path
        return replace(entry, problem=f"a broken link to {target}")
    except OSError as error:
        return replace(entry, problem=f"cannot be read ({error.strerror or error})")
    try:
        if storage == "safetensors":
            header = read_safetensors_header(path)
            found = recognise_tensors(header.tensors, header.metadata)
            return _with(entry, replace(found, problem=header.problem or found.problem))
        tensors = read_pickle_tensors(path)
    except HeaderError as error:
        return replace(entry, problem=str(error))
    except OSError as error:
        return replace(entry, problem=f"cannot be read ({error.strerror or error})")
    if tensors is None:
        return replace(entry, note=_OLD_PICKLE)
    return _with(entry, recognise_tensors(tensors))


def _with(entry: LibraryEntry, found: Recognition) -> LibraryEntry:
    return replace(
        entry,
        kind=found.kind,
        family=found.family,
        version=found.version,
        frame_limit=found.frame_limit,
        lora_format=found.lora_format,
        problem=found.problem,
    )


def _folder_size(folder: Path) -> int:
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            try:
                total += (Path(parent) / name).stat().st_size
            except OSError:
                continue
    return total


def _named(entries: list[LibraryEntry]) -> list[LibraryEntry]:
    """Names from relative paths: without the suffix unless two entries would share one; short names (the
    last part) where no other entry of the same kind has it."""
    bases = Counter(_base(entry) for entry in entries)
    named = [replace(entry, name=entry.file if bases[_base(entry)] > 1 else _base(entry)) for entry in entries]
    stems = Counter((entry.kind, _stem(entry)) for entry in named)
    return [
        replace(entry, short_name=_stem(entry) if stems[(entry.kind, _stem(entry))] == 1 else None) for entry in named
    ]


def _stem(entry: LibraryEntry) -> str:
    return PurePosixPath(_base(entry)).name
