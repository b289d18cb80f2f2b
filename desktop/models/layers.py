"""The condition layers panel without Qt: what each modality is called, which regions a layer can be
limited to, and the layer documents that adding an image or a mask makes (paths relative to the shot's
folder, as the shot file keeps them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from anyi2v.shared.modalities import MODALITIES

from .document import shot_relative

# What the panel shows for each kind: the name the shot file stores (as the CLI and the docs say it),
# and for some a hint in plain words.
MODALITY_LABELS: dict[str, str] = {
    "depth": "depth",
    "normal": "normal",
    "silhouette": "silhouette",
    "segmentation": "segmentation (a colour per object)",
    "edges": "edges (Canny)",
    "soft_edges": "soft_edges (HED)",
    "shaded": "shaded (grey mesh render)",
    "splat": "splat (point cloud render)",
    "skeleton": "skeleton",
    "sketch": "sketch",
    "rgb": "rgb (the image as it is)",
    "other": "other",
}
assert set(MODALITY_LABELS) == set(MODALITIES), "every modality of the shot needs a label"
assert all(label.split(" (")[0] == name for name, label in MODALITY_LABELS.items()), "a label starts with its name"

Region = dict[str, Any] | None


@dataclass(frozen=True)
class RegionChoice:
    label: str
    region: Region  # the layer's ``region`` document; None: everywhere


def region_choices(object_names: tuple[str, ...], current: Region) -> list[RegionChoice]:
    """Everywhere, each object's silhouette or all but it, and the layer's mask when it has one
    (with its inverse); the current region is always among them, even for an object not in view."""
    choices = [RegionChoice("everywhere", None)]
    names = list(object_names)
    if current is not None and current["kind"] == "object" and current["object"] not in names:
        names.append(current["object"])
    for name in names:
        choices.append(RegionChoice(f"object: {name}", {"kind": "object", "object": name, "invert": False}))
        choices.append(RegionChoice(f"all but {name}", {"kind": "object", "object": name, "invert": True}))
    if current is not None and current["kind"] == "mask":
        name = PurePath(current["path"]).name
        choices.append(RegionChoice(f"mask: {name}", {"kind": "mask", "path": current["path"], "invert": False}))
        choices.append(RegionChoice(f"outside mask: {name}", {"kind": "mask", "path": current["path"], "invert": True}))
    return choices


def choice_index(choices: list[RegionChoice], current: Region) -> int:
    normalized = None if current is None else {**current, "invert": bool(current.get("invert", False))}
    return next((i for i, choice in enumerate(choices) if choice.region == normalized), 0)


def image_layer(path: Path, base_dir: Path, modality: str = "other") -> dict[str, Any]:
    """A layer showing an image the user brings; choose what it shows (sketch, skeleton...) after."""
    return {"source": {"kind": "image", "path": shot_relative(path, base_dir)}, "modality": modality, "region": None}


def mask_region(path: Path, base_dir: Path, invert: bool = False) -> dict[str, Any]:
    return {"kind": "mask", "path": shot_relative(path, base_dir), "invert": invert}
