"""Why an asset file cannot be used: ``AssetError`` and one subclass per reason.

Imports only the standard library, so ``safe_load`` (whose child process caps its memory before numpy,
trimesh or Open3D is loaded) can import it at the top.
"""

from __future__ import annotations

import os
from pathlib import PurePath
from typing import Any


class AssetError(Exception):
    """A file that cannot be used. ``path`` names it, ``reason`` says why; ``str()`` reads ``cube.stl: reason``."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(self.path, reason)

    def __str__(self) -> str:
        return f"{PurePath(self.path).name or self.path}: {self.reason}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.reason))


class UnreadableAsset(AssetError):  # noqa: N818 (the names the issue gives)
    """Missing, not a regular file, not permitted, an unknown extension, or not parseable as its format."""


class EmptyAsset(AssetError):  # noqa: N818 (the names the issue gives)
    """No vertices, faces or points after loading."""


class NonFiniteAsset(AssetError):  # noqa: N818 (the names the issue gives)
    """NaN or infinite coordinates (or colours)."""


class BadFaceIndices(AssetError):  # noqa: N818 (the names the issue gives)
    """A face refers to a vertex that does not exist."""


class AssetTooLarge(AssetError):  # noqa: N818 (the names the issue gives)
    """More faces, points or bytes than ``LoadLimits`` allows."""


class PathEscapes(AssetError):  # noqa: N818 (the names the issue gives)
    """The file refers to another file outside its own folder (``mtllib``, a glTF ``uri``)."""


class LoadTimeout(AssetError):  # noqa: N818 (the names the issue gives)
    """Parsing took longer than ``LoadLimits.timeout_s``; the loader process was stopped."""


class LoaderCrashed(AssetError):  # noqa: N818 (the names the issue gives)
    """The loader process died (``exitcode`` < 0 is the signal number, negated) or ran out of memory."""

    def __init__(self, path: str | os.PathLike[str], reason: str, exitcode: int | None = None) -> None:
        super().__init__(path, reason)
        self.exitcode = exitcode

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.reason, self.exitcode))
