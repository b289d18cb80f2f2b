"""The published JSON Schema of the Shot document, for tools that write shots (a Blender add-on, a script)."""

from __future__ import annotations

from typing import Any

from .shot import SCHEMA_VERSION, Shot

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def shot_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the current Shot version.

    It states structure, types, ranges and unknown-field rejection. Rules that relate several fields
    (keyframes inside the clip, x0 < x1, unique ids) are checked by ``anyi2v validate``.
    """
    schema = Shot.model_json_schema(mode="validation")
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": f"urn:anyi2v-studio:shot:{SCHEMA_VERSION}",
        **schema,
        "title": f"AnyI2V Studio shot, schema version {SCHEMA_VERSION}",
    }
