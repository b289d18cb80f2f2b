"""The kinds of condition a layer can be (a layer's ``modality``): one vocabulary for shot files, the CLI,
the studio and the renderer, and the older names that shot files may still use.

The names are the render passes': a 3D scene is rendered into one of :data:`SCENE_MODALITIES`, and an
image the user brings may also be a skeleton, a sketch, a plain picture (``rgb``) or something else.
Files written before this vocabulary used the method's words (``canny``, ``hed``, ``mesh_render``,
``point_cloud_render``); :data:`MODALITY_ALIASES` reads them as the current names, and a shot is always
saved with the current ones. That is not a schema version step: the kinds are the same, only the names
differ.

Imports only the standard library, so the CLI can offer these names without loading pydantic.
"""

from __future__ import annotations

import difflib
from typing import Literal, get_args

Modality = Literal[
    "depth",
    "normal",
    "silhouette",
    "segmentation",
    "edges",
    "soft_edges",
    "shaded",
    "splat",
    "skeleton",
    "sketch",
    "rgb",
    "other",
]
MODALITIES: tuple[str, ...] = get_args(Modality)

# What a 3D scene is rendered into: the renderer's passes, in the order the CLI and the studio list them.
SCENE_MODALITIES: tuple[str, ...] = (
    "depth",
    "normal",
    "silhouette",
    "segmentation",
    "edges",
    "soft_edges",
    "shaded",
    "splat",
)

# Older names, read from shot files (and accepted by ``anyi2v render --pass``) as the current name.
MODALITY_ALIASES: dict[str, str] = {
    "canny": "edges",
    "hed": "soft_edges",
    "mesh_render": "shaded",
    "point_cloud_render": "splat",
}

_SHOWN_CHARACTERS = 40  # of an unknown name, in the error

assert set(SCENE_MODALITIES) <= set(MODALITIES), "every render pass is a condition kind"
assert set(MODALITY_ALIASES.values()) <= set(MODALITIES), "an alias names a current kind"
assert not set(MODALITY_ALIASES) & set(MODALITIES), "an alias never shadows a current kind"


def upgraded_modality(name: str) -> str:
    """``name``, or the current name of an older one; any other name is returned as it is."""
    return MODALITY_ALIASES.get(name, name)


def current_modality(name: str) -> str:
    """The current name of the condition kind ``name`` (itself, or what an older name became).

    Raises ``ValueError`` for an unknown name, with the closest known name when one is close and every
    current name.
    """
    upgraded = upgraded_modality(name)
    if upgraded in MODALITIES:
        return upgraded
    shown = name if len(name) <= _SHOWN_CHARACTERS else name[:_SHOWN_CHARACTERS] + "..."
    hint = ""
    if len(name) <= _SHOWN_CHARACTERS:
        close = difflib.get_close_matches(name, [*MODALITIES, *MODALITY_ALIASES], n=1)
        hint = f" (did you mean {upgraded_modality(close[0])!r}?)" if close else ""
    known = ", ".join(repr(kind) for kind in MODALITIES)
    raise ValueError(f"unknown condition kind {shown!r}{hint}; the kinds are {known}")


def describe_aliases() -> str:
    """``canny`` is read as ``edges``, ...: for help texts and the schema."""
    return ", ".join(f"{old} as {new}" for old, new in MODALITY_ALIASES.items())
