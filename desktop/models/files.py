"""Shots from files the artist opens, the studio's settings (recent files, the connection), and the
history of results kept beside each shot."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from platformdirs import user_config_path, user_data_path

from anyi2v.render.assets import SUFFIXES as ASSET_SUFFIXES
from anyi2v.shared.document import parse_shot
from anyi2v.shared.durable import write_file
from anyi2v.shared.errors import ShotError
from anyi2v.shared.shot import SCHEMA_VERSION, Shot

from .condition import default_scene_camera
from .connection import ConnectionSettings

log = logging.getLogger(__name__)

APP_NAME = "anyi2v"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
MAX_RECENT = 10
# A new shot starts at the size the embedded toy-world model makes in seconds on a CPU; a real model
# wants 512x512 (Settings > Size).
NEW_SHOT_OUTPUT = {"width": 128, "height": 128, "n_frames": 16, "fps": 8.0}


def config_dir() -> Path:
    """The studio's settings folder: ``$XDG_CONFIG_HOME/anyi2v`` (``~/.config/anyi2v``) on Linux,
    ``~/Library/Application Support/anyi2v`` on macOS, ``%LOCALAPPDATA%\\anyi2v`` on Windows."""
    return user_config_path(APP_NAME, appauthor=False)


def data_dir() -> Path:
    """The studio's data (its embedded daemon's jobs, untitled shots' results): ``$XDG_DATA_HOME/anyi2v/studio``
    (``~/.local/share/anyi2v/studio``) on Linux, the platform's user data folder elsewhere."""
    return user_data_path(APP_NAME, appauthor=False) / "studio"


def is_asset(path: Path) -> bool:
    return path.suffix.lower() in ASSET_SUFFIXES


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def output_size_for(width: int, height: int, long_side: int = 128) -> tuple[int, int]:
    """A new shot's size for an image: its aspect ratio, the long side ``long_side``, both multiples of
    8 and at least 64 (what a shot accepts)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"an image of {width}x{height} pixels")
    scale = long_side / max(width, height)
    return max(64, round(width * scale / 8) * 8), max(64, round(height * scale / 8) * 8)


def shot_for_file(path: Path, prompt: str = "") -> Shot:
    """A new shot around a mesh or point cloud (rendered to depth from a three-quarter view) or an image
    brought as it is; the path is stored absolute until the shot is saved somewhere."""
    document: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "name": path.stem,
        "output": dict(NEW_SHOT_OUTPUT),
        "prompt": prompt,
    }
    if is_asset(path):
        camera = default_scene_camera()
        document["scene"] = {
            "path": str(path.resolve()),
            "camera": {"eye": list(camera.eye), "target": list(camera.target), "fov_deg": camera.fov_deg},
        }
        document["conditions"] = [{"source": {"kind": "scene"}, "modality": "depth"}]
    elif is_image(path):
        from anyi2v.render.shot_conditions import image_size

        # the header only, refused (a ValueError naming the file) past an image layer's pixel cap
        width, height = output_size_for(*image_size(path, where="new shot"))
        document["output"].update(width=width, height=height)
        document["conditions"] = [{"source": {"kind": "image", "path": str(path.resolve())}, "modality": "other"}]
    else:
        known = ", ".join(ASSET_SUFFIXES + IMAGE_SUFFIXES)
        raise ValueError(f"{path.name}: not a mesh, point cloud or image this studio reads ({known})")
    return parse_shot(document, source=str(path))


@dataclass
class StudioConfig:
    """What the studio remembers between runs (``studio.json`` in the config folder)."""

    recent: list[str] = field(default_factory=list)
    connection: ConnectionSettings = field(default_factory=ConnectionSettings)
    problem: str = ""  # why the file could not be read, for the user (never saved)

    @classmethod
    def load(cls, path: Path) -> StudioConfig:
        """A missing file gives the defaults; an unreadable one is kept aside (``.bad``), logged, and
        said in ``problem`` (the window shows it)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            connection = ConnectionSettings(**data.get("connection", {})).checked()
            recent = [item for item in data.get("recent", []) if isinstance(item, str)][:MAX_RECENT]
            return cls(recent, connection)
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError, TypeError, AttributeError) as error:
            kept = path.with_suffix(".bad")
            log.warning("%s is unreadable (%s): starting from defaults; the file is kept as %s", path, error, kept)
            with contextlib.suppress(OSError):
                path.replace(kept)
            return cls(problem=f"the studio's settings ({path}) were unreadable ({error}); defaults are used and "
                              f"the file is kept as {kept.name}")  # fmt: skip

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"recent": self.recent, "connection": asdict(self.connection)}, indent=2)
        write_file(path, data.encode("utf-8"))

    def add_recent(self, path: Path) -> None:
        name = str(path.resolve())
        self.recent = [name, *(item for item in self.recent if item != name)][:MAX_RECENT]


@dataclass(frozen=True)
class ResultEntry:
    folder: Path
    job_id: str
    created: float
    n_frames: int

    @property
    def title(self) -> str:
        return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.created))}  ({self.n_frames} frames)"


class ResultHistory:
    """Results of a shot, newest first, in ``<shot>.results/`` beside the shot file; an unsaved shot
    keeps its own in the studio's data folder (``unsaved-results/<key>``, the document's key) until its
    first save adopts them. Each result is a folder as the daemon's client fetches it:
    ``manifest.json``, ``video.*``, ``shot.json`` and ``frames/NNNN.png``."""

    def __init__(self, shot_path: Path | None, unsaved_key: str = "untitled") -> None:
        if shot_path is not None:
            self.root = shot_path.with_name(f"{shot_path.stem}.results")
        else:
            self.root = data_dir() / "unsaved-results" / unsaved_key

    def adopt(self, other: ResultHistory) -> list[Path]:
        """Move ``other``'s results into this history (a shot saved for the first time takes the results
        made while it was untitled); returns their new folders. Run it off the GUI thread: across file
        systems a move copies."""
        moved: list[Path] = []
        if not other.root.is_dir() or other.root == self.root:
            return moved
        self.root.mkdir(parents=True, exist_ok=True)
        for folder in sorted(p for p in other.root.iterdir() if p.is_dir()):
            target = self.root / folder.name
            if target.exists():
                continue  # never overwrite a result
            moved.append(Path(shutil.move(str(folder), str(target))))
        with contextlib.suppress(OSError):
            other.root.rmdir()  # only when it is empty
        return moved

    def new_folder(self, job_id: str) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return self.root / f"{stamp}-{job_id[-8:]}"

    def entries(self) -> list[ResultEntry]:
        found: list[ResultEntry] = []
        if not self.root.is_dir():
            return found
        for manifest_path in self.root.glob("*/manifest.json"):
            try:
                manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
                found.append(ResultEntry(manifest_path.parent, str(manifest.get("job_id", "")),
                                         manifest_path.stat().st_mtime, int(manifest["n_frames"])))  # fmt: skip
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("skipping an unreadable result in %s", manifest_path.parent)
        return sorted(found, key=lambda entry: entry.created, reverse=True)


@dataclass(frozen=True)
class LoadedResult:
    """A result read back from its folder: its frames and the shot that made it (None when its
    ``shot.json`` is missing or no longer valid)."""

    folder: Path
    frames: list[NDArray[np.uint8]]
    shot: Shot | None
    condition: NDArray[np.uint8] | None = None  # the condition it was made from, when the studio kept it


CONDITION_FILE = "condition.png"  # the studio keeps the condition sent beside each result


def save_condition(folder: Path, condition: NDArray[np.uint8]) -> Path:
    from PIL import Image

    path = folder / CONDITION_FILE
    Image.fromarray(condition).save(path)
    return path


def load_result(folder: Path) -> LoadedResult:
    from PIL import Image

    shot = None
    with contextlib.suppress(OSError, ValueError, ShotError):
        shot = parse_shot(json.loads((folder / "shot.json").read_text(encoding="utf-8")))
    condition = None
    with contextlib.suppress(OSError, ValueError), Image.open(folder / CONDITION_FILE) as image:
        condition = np.asarray(image.convert("RGB"))
    return LoadedResult(folder, load_frames(folder), shot, condition)


def load_frames(folder: Path) -> list[NDArray[np.uint8]]:
    """A result's frames (``frames/NNNN.png``) as ``(h, w, 3)`` arrays, in order."""
    from PIL import Image

    frames = []
    for path in sorted((folder / "frames").glob("*.png")):
        with Image.open(path) as image:
            frames.append(np.asarray(image.convert("RGB")))
    if not frames:
        raise FileNotFoundError(f"{folder}: no frames in this result")
    return frames


# The export dialog's file types, and the format each writes.
EXPORT_FORMATS: dict[str, str] = {
    "MP4 video (*.mp4)": "mp4",
    "WebM video (*.webm)": "webm",
    "GIF (*.gif)": "gif",
    "PNG frames (a folder)": "png",
}


def export_target(path: Path, chosen: str) -> tuple[Path, str]:
    """Where an export goes and in which format: the suffix typed decides when it names a format,
    else the file type chosen in the dialog (whose suffix is then added; PNG frames go to a folder)."""
    typed = {".mp4": "mp4", ".webm": "webm", ".gif": "gif"}.get(path.suffix.lower())
    if typed is not None:
        return path, typed
    video_format = EXPORT_FORMATS.get(chosen, "mp4")
    return (path if video_format == "png" else path.with_name(path.name + "." + video_format)), video_format


def default_export_path(shot_path: Path | None, base_dir: Path) -> Path:
    """Beside the shot, named after it: ``demo.json`` exports to ``demo.mp4``."""
    return base_dir / f"{shot_path.stem if shot_path is not None else 'result'}.mp4"
