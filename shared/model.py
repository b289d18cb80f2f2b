"""The base of every document model: frozen, strict, no unknown fields, no NaN or infinity."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class DocumentModel(BaseModel):
    """A value type of the Shot document.

    - ``extra="forbid"``: a misspelt field is an error, never silently ignored;
    - ``strict=True``: no coercion (``"8"`` is not a number, ``8.5`` is not a frame);
    - ``allow_inf_nan=False``: NaN and infinity are rejected wherever a number is expected;
    - ``frozen=True``: edits make new values (``model_copy(update=...)``), so they can be undone.
    """

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        frozen=True,
        validate_default=True,
        use_attribute_docstrings=False,
    )
