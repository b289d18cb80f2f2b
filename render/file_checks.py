"""Checks on an untrusted file's bytes that more than one format needs: text, not binary, and no
reference that leaves the file's folder."""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

from .errors import PathEscapes, UnreadableAsset


def require_text(file: Path, data: bytes, kind: str) -> None:
    """Refuse a file of a text format (``kind``) whose first 64 KiB hold a NUL byte."""
    if b"\0" in data[: 1 << 16]:
        raise UnreadableAsset(file, f"binary data, not a text {kind} file")


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def check_reference(file: Path, reference: str, what: str) -> None:
    """Refuse a reference that leaves ``file``'s folder: absolute, with a scheme, ``..`` or a link out."""
    if reference.startswith("data:"):
        return
    folder = file.parent.resolve()
    for candidate in (reference, urllib.parse.unquote(reference)):
        name = candidate.strip().replace("\\", "/")
        escapes = bool(_SCHEME.match(name)) or name.startswith("/")
        if not escapes and name:
            escapes = not (folder / name).resolve().is_relative_to(folder)
        if escapes:
            raise PathEscapes(file, f"{what} {reference!r} points outside the file's folder")
