"""What loading one file is given: the caps (``LoadLimits``), the up axis and a reader's signature.

Imports only the standard library at run time, like ``errors``, so ``safe_load`` can import it at the top.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .geometry import Asset

UpAxis = Literal["y", "z", "-y", "-z"]
UP_AXES: tuple[UpAxis, ...] = ("y", "z", "-y", "-z")
"""The axis of a file that points up: ``-y`` for camera-frame clouds (OpenCV: y down, z forward)."""
Reader = Callable[[Path, UpAxis, "LoadLimits"], "Asset"]


@dataclass(frozen=True)
class LoadLimits:
    """Caps for one file. ``max_points`` counts point-cloud points and mesh vertices."""

    max_faces: int = 5_000_000
    max_points: int = 20_000_000
    max_file_bytes: int = 1 << 30
    timeout_s: float = 30.0
    memory_bytes: int = 4 << 30

    def __post_init__(self) -> None:
        for name in ("max_faces", "max_points", "max_file_bytes", "timeout_s", "memory_bytes"):
            if not getattr(self, name) > 0:
                raise ValueError(f"LoadLimits.{name} must be > 0, got {getattr(self, name)!r}")


DEFAULT_LIMITS = LoadLimits()
