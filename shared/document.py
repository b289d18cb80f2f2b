"""Reading and writing Shot files, with every problem reported as path and reason.

``load_shot`` and ``parse_shot`` raise :class:`~.errors.ShotError` listing all problems found; they
never let a parser traceback reach the user. ``save_shot`` writes atomically, so a crash while saving
never leaves a half-written shot in place of a good one.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from .durable import write_file
from .errors import Problem, ShotError, json_path
from .shot import DEFAULT_MAX_FRAMES, SCHEMA_VERSION, ImageSource, MaskRegion, Shot
from .versions import CURRENT_VERSION, upgrade

MAX_DOCUMENT_BYTES = 16 * 2**20
_UNION_TAGS = {"source": {"image", "scene"}, "region": {"mask", "object"}}
_TYPE_ERRORS_SHOWING_INPUT = (
    "_type",
    "_parsing",
    "literal_error",
    "enum",
    "union_tag_invalid",
    "finite_number",
)

assert SCHEMA_VERSION == CURRENT_VERSION, "shot.SCHEMA_VERSION and versions.CURRENT_VERSION must agree"


def _all_field_names(model: type[BaseModel], seen: set[type[BaseModel]] | None = None) -> set[str]:
    seen = set() if seen is None else seen
    if model in seen:
        return set()
    seen.add(model)
    names = set(model.model_fields)
    for field in model.model_fields.values():
        for candidate in _nested_models(field.annotation):
            names |= _all_field_names(candidate, seen)
    return names


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for argument in getattr(annotation, "__args__", ()):
        found.extend(_nested_models(argument))
    return found


_FIELD_NAMES = sorted(_all_field_names(Shot))


def _location(loc: Sequence[str | int]) -> str:
    parts: list[str | int] = []
    for part in loc:
        # Discriminated unions add the tag to the location: ("source", "image", "path") -> source.path
        if isinstance(part, str) and parts and isinstance(parts[-1], str) and part in _UNION_TAGS.get(parts[-1], ()):
            continue
        parts.append(part)
    return json_path(parts)


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _problem_from_pydantic(error: Any) -> Problem:
    loc = tuple(error["loc"])
    kind = error["type"]
    message = str(error["msg"])
    if kind == "extra_forbidden":
        name = str(loc[-1]) if loc else ""
        close = difflib.get_close_matches(name, _FIELD_NAMES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return Problem(_location(loc), f"unknown field{hint}")
    if kind == "missing":
        return Problem(_location(loc), "required field is missing")
    if kind == "too_short":
        context = error.get("ctx", {})
        minimum = context.get("min_length", 1)
        return Problem(_location(loc), f"needs at least {minimum} item{'s' if minimum != 1 else ''}")
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    elif message.startswith("Assertion failed, "):
        message = message[len("Assertion failed, ") :]
    if any(marker in kind for marker in _TYPE_ERRORS_SHOWING_INPUT):
        with contextlib.suppress(TypeError, ValueError):
            message = f"{message} (got {_short(error['input'])})"
    return Problem(_location(loc), message[0].lower() + message[1:] if message else kind)


def _reject_constant(name: str) -> float:
    # NaN and infinities are not JSON; keep them as floats so that validation names their location.
    return float(name.replace("Infinity", "inf"))


def _decode(data: bytes | str, source: str) -> Any:
    if len(data) > MAX_DOCUMENT_BYTES:
        raise ShotError(
            source,
            [Problem("", f"{len(data)} bytes is too large for a shot (limit {MAX_DOCUMENT_BYTES // 2**20} MiB)")],
        )
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise ShotError(
                source,
                [Problem("", f"not a text file (invalid UTF-8 at byte {error.start}); a shot is JSON")],
            ) from None
    try:
        return json.loads(data, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise ShotError(
            source, [Problem("", f"not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}")]
        ) from None
    except RecursionError:
        raise ShotError(source, [Problem("", "not a usable shot: JSON nested too deeply")]) from None


def _checked_version(document: Any, source: str) -> int:
    if not isinstance(document, dict):
        raise ShotError(source, [Problem("", f"a shot is a JSON object, not {type(document).__name__}")])
    if "schema_version" not in document:
        raise ShotError(source, [Problem("schema_version", "required field is missing")])
    version = document["schema_version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise ShotError(source, [Problem("schema_version", f"must be an integer (got {_short(version)})")])
    if version > CURRENT_VERSION:
        raise ShotError(
            source,
            [
                Problem(
                    "schema_version",
                    f"{version} is newer than this anyi2v understands ({CURRENT_VERSION}); update anyi2v",
                )
            ],
        )
    if version < 1:
        raise ShotError(source, [Problem("schema_version", f"{version} is not a known version (1..{CURRENT_VERSION})")])
    return version


def _context(document: dict[str, Any], max_frames: int) -> dict[str, Any]:
    context: dict[str, Any] = {"max_frames": max_frames}
    output = document.get("output", {})
    n_frames = output.get("n_frames", 16) if isinstance(output, dict) else None
    if isinstance(n_frames, int) and not isinstance(n_frames, bool) and n_frames >= 1:
        context["n_frames"] = n_frames
    return context


def parse_shot(
    data: bytes | str | dict[str, Any], *, source: str = "<string>", max_frames: int = DEFAULT_MAX_FRAMES
) -> Shot:
    """Validate a shot from JSON text or already-decoded JSON data, upgrading older versions.

    ``max_frames`` is the loaded motion module's frame limit. Raises :class:`ShotError` with every
    problem found.
    """
    document = data if isinstance(data, dict) else _decode(data, source)
    _checked_version(document, source)
    document = upgrade(document)
    try:
        # Through JSON text, so that strict validation sees JSON types (arrays for tuples).
        text = json.dumps(document, allow_nan=True)
        return Shot.model_validate_json(text, context=_context(document, max_frames))
    except ValidationError as error:
        raise ShotError(source, _problems(error)) from None


def _problems(error: ValidationError) -> list[Problem]:
    errors = error.errors(include_url=False)
    locations = [tuple(item["loc"]) for item in errors]

    def has_item_errors(loc: tuple[Any, ...]) -> bool:
        # pydantic also reports "too short after validation" for a list whose items failed: noise.
        return any(len(other) > len(loc) and other[: len(loc)] == loc for other in locations)

    return [
        _problem_from_pydantic(item)
        for item, loc in zip(errors, locations, strict=True)
        if not (item["type"] == "too_short" and has_item_errors(loc))
    ]


def load_shot(path: str | os.PathLike[str], *, max_frames: int = DEFAULT_MAX_FRAMES) -> Shot:
    """Read and validate a shot file. Raises :class:`ShotError` naming the file."""
    path = Path(path)
    source = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_DOCUMENT_BYTES:
            raise ShotError(
                source,
                [Problem("", f"{size} bytes is too large for a shot (limit {MAX_DOCUMENT_BYTES // 2**20} MiB)")],
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise ShotError(source, [Problem("", "no such file")]) from None
    except IsADirectoryError:
        raise ShotError(source, [Problem("", "is a folder, not a shot file")]) from None
    except PermissionError:
        raise ShotError(source, [Problem("", "permission denied")]) from None
    except OSError as error:
        raise ShotError(source, [Problem("", f"cannot be read: {error.strerror or error}")]) from None
    return parse_shot(data, source=source, max_frames=max_frames)


def dump_shot(shot: Shot) -> str:
    """The shot as JSON text (two-space indent, trailing newline)."""
    return shot.model_dump_json(indent=2) + "\n"


def save_shot(shot: Shot, path: str | os.PathLike[str]) -> None:
    """Write a shot atomically and durably (:func:`~anyi2v.shared.durable.write_file`)."""
    write_file(Path(path), dump_shot(shot).encode("utf-8"))


def referenced_files(shot: Shot) -> list[tuple[str, str]]:
    """Every file a shot names, as ``(json path, file path)``; paths are relative to the shot's folder."""
    files: list[tuple[str, str]] = []
    if shot.scene is not None:
        files.append(("scene.path", shot.scene.path))
    for index, layer in enumerate(shot.conditions):
        if isinstance(layer.source, ImageSource):
            files.append((f"conditions[{index}].source.path", layer.source.path))
        if isinstance(layer.region, MaskRegion):
            files.append((f"conditions[{index}].region.path", layer.region.path))
    return files


def missing_files(shot: Shot, base_dir: str | os.PathLike[str]) -> list[Problem]:
    """A problem for each file the shot names that is not a readable file under ``base_dir``."""
    problems = []
    for where, name in referenced_files(shot):
        path = Path(base_dir) / name
        if not path.is_file():
            problems.append(Problem(where, f"file not found: {path}"))
    return problems


def load_checked_shot(path: str | os.PathLike[str], *, max_frames: int, check_files: bool = True) -> Shot:
    """Read and validate a shot and, with ``check_files``, check the files it names exist beside it.
    Raises :class:`ShotError` naming the file."""
    shot = load_shot(path, max_frames=max_frames)
    if check_files:
        missing = missing_files(shot, Path(path).parent)
        if missing:
            raise ShotError(str(path), missing)
    return shot
