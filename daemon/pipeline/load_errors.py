"""The error of model loading, and how its messages list names.

Every module of loading raises :class:`ModelLoadError`; it lives here, imported by all and importing
none of them.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["ModelLoadError", "first_few"]


class ModelLoadError(ValueError):
    """Weights could not be loaded; the message names the file or folder and what was expected."""


def first_few(keys: Iterable[object], count: int = 5) -> str:
    """The first ``count`` of ``keys`` for a message, comma separated, with an ellipsis when there are more."""
    listed = [str(key) for key in keys]
    return ", ".join(listed[:count]) + (", …" if len(listed) > count else "")
