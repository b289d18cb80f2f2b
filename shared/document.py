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
import stat
from collections import Counter
from collections.abc import Sequence
from pathlib import Path, PurePath
from typing import Any

from pydantic import BaseModel, ValidationError

from .durable import write_file
from .errors import Problem, ShotError, json_path
from .shot import DEFAULT_MAX_FRAMES, SCHEMA_VERSION, ImageSource, MaskRegion, ObjectRegion, Shot
from .versions import CURRENT_VERSION, upgrade

MAX_DOCUMENT_BYTES = 16 * 2**20
MAX_JSON_DEPTH = 64  # a valid shot nests about 7 deep; the JSON parsers' own limits are far higher
MAX_INTEGER_DIGITS = 100  # Python refuses to convert more than 4300; no field of a shot needs more than 20
_MAX_STRUCTURE_PROBLEMS = 20
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


class _LongInteger(str):
    """The digits of an integer too long to convert, left in the document for :func:`_structure_problems`
    to report where it is."""


class _ObjectWithDuplicates(dict[str, Any]):
    """A JSON object that named some keys more than once (the last value kept, as ``json`` does)."""

    duplicates: dict[str, int]


_FLAGGED = (dict, list, _LongInteger)  # what the structure walk visits
_Link = tuple[str | int, "_Link"] | None  # a location as (last key, the parent's link)


def _parse_int(digits: str) -> int | _LongInteger:
    if len(digits.lstrip("-")) > MAX_INTEGER_DIGITS:
        return _LongInteger(digits)
    return int(digits)


def _parse_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) == len(pairs):
        return document
    flagged = _ObjectWithDuplicates(document)
    flagged.duplicates = {key: count for key, count in Counter(key for key, _ in pairs).items() if count > 1}
    return flagged


def _too_deep(location: Sequence[str | int]) -> Problem:
    # Name the field that holds the deep value: the path up to its last key among the first few parts.
    head = list(location[:8])
    while head and not isinstance(head[-1], str):
        head.pop()
    return Problem(json_path(head), f"nested too deeply (more than {MAX_JSON_DEPTH} levels); a shot needs far fewer")


def _unlinked(link: _Link) -> list[str | int]:
    location: list[str | int] = []
    while link is not None:
        key, link = link
        location.append(key)
    return location[::-1]


def _structure_problems(document: Any) -> list[Problem]:
    """What JSON allows but a shot must not have: nesting deeper than ``MAX_JSON_DEPTH``, integers of more
    than ``MAX_INTEGER_DIGITS`` digits and duplicate keys, in document order (the first 20). Iterative, so any depth is
    safe to walk; only containers and long integers are visited, each with its depth and a link to its
    parent's location (a path is spelled out only for a problem)."""
    problems: list[Problem] = []
    stack: list[tuple[Any, int, _Link]] = [(document, 0, None)]
    while stack and len(problems) < _MAX_STRUCTURE_PROBLEMS:
        value, depth, link = stack.pop()
        if isinstance(value, _LongInteger):
            digits = len(value.lstrip("-"))
            why = f"an integer of {digits} digits is too long (at most {MAX_INTEGER_DIGITS} digits)"
            problems.append(Problem(json_path(_unlinked(link)), why))
        elif depth >= MAX_JSON_DEPTH:
            problem = _too_deep(_unlinked(link))
            if problem not in problems:
                problems.append(problem)
        elif isinstance(value, dict):
            if isinstance(value, _ObjectWithDuplicates):
                for key, count in value.duplicates.items():
                    times = "twice" if count == 2 else f"{count} times"
                    why = f"duplicate key: the object has it {times} (JSON readers disagree on which one wins)"
                    problems.append(Problem(json_path([*_unlinked(link), key]), why))
            flagged = [(child, depth + 1, (key, link)) for key, child in value.items() if isinstance(child, _FLAGGED)]
            stack.extend(reversed(flagged))
        elif isinstance(value, list):
            flagged = [
                (child, depth + 1, (index, link)) for index, child in enumerate(value) if isinstance(child, _FLAGGED)
            ]
            stack.extend(reversed(flagged))
    return problems


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
        return json.loads(data, parse_constant=_reject_constant, parse_int=_parse_int, object_pairs_hook=_parse_object)
    except json.JSONDecodeError as error:
        raise ShotError(
            source, [Problem("", f"not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}")]
        ) from None
    except RecursionError:
        why = f"not a usable shot: JSON nested too deeply (more than {MAX_JSON_DEPTH} levels)"
        raise ShotError(source, [Problem("", why)]) from None


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
    structure = _structure_problems(document)
    if structure:
        raise ShotError(source, structure)
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


_FILE_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(mode: int) -> Problem | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return Problem("", "is a folder, not a shot file")
    kind = next((name for test, name in _FILE_KINDS if test(mode)), "a special file")
    return Problem("", f"not a regular file ({kind}); a shot is a JSON file")


def _too_large(size: int, exact: bool = True) -> Problem:
    amount = f"{size} bytes" if exact else f"more than {size} bytes"
    return Problem("", f"{amount} is too large for a shot (limit {MAX_DOCUMENT_BYTES // 2**20} MiB)")


def _read_capped(path: Path) -> bytes:
    """At most ``MAX_DOCUMENT_BYTES + 1`` bytes of a regular file. Anything else (a FIFO, a device, a
    socket) is refused from its ``stat``, before it is opened; opening does not block either (a FIFO put
    there since), and ``fstat`` checks the opened file again. Raises ShotError or OSError."""
    source = str(path)
    status = os.stat(path)
    problem = _not_regular(status.st_mode)
    if problem is None and status.st_size > MAX_DOCUMENT_BYTES:
        problem = _too_large(status.st_size)
    if problem is not None:
        raise ShotError(source, [problem])
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(descriptor, "rb") as handle:
        problem = _not_regular(os.fstat(descriptor).st_mode)
        if problem is not None:
            raise ShotError(source, [problem])
        data = handle.read(MAX_DOCUMENT_BYTES + 1)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise ShotError(source, [_too_large(MAX_DOCUMENT_BYTES, exact=False)])
    return data


def load_shot(path: str | os.PathLike[str], *, max_frames: int = DEFAULT_MAX_FRAMES) -> Shot:
    """Read and validate a shot file. Raises :class:`ShotError` naming the file."""
    path = Path(path)
    source = str(path)
    try:
        data = _read_capped(path)
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


def referenced_objects(shot: Shot) -> list[tuple[str, str]]:
    """Every object of the scene file a shot names, as ``(json path, object name)``: the objects its
    motions move and its anchors sit on, and those a condition layer is limited to. Whether the file has
    them is known only by loading it (``render``), which callers with ``--check-files`` do."""
    names: list[tuple[str, str]] = []
    if shot.scene is not None:
        for index, motion in enumerate(shot.scene.motions):
            names += [(f"scene.motions[{index}].objects[{i}]", name) for i, name in enumerate(motion.objects)]
        for index, anchor in enumerate(shot.scene.anchors):
            names += [(f"scene.anchors[{index}].objects[{i}]", name) for i, name in enumerate(anchor.objects)]
    for index, layer in enumerate(shot.conditions):
        if isinstance(layer.region, ObjectRegion):
            names.append((f"conditions[{index}].region.object", layer.region.object))
    return names


def _says_it_leaves(name: str) -> bool:
    """Whether a shot's file path names a place outside the shot's folder itself (absolute, or ``..`` first):
    the studio writes such paths for files it was given elsewhere, in plain sight in the shot."""
    relative = PurePath(name)
    return relative.is_absolute() or bool(relative.drive) or PurePath(os.path.normpath(name)).parts[:1] == ("..",)


def missing_files(shot: Shot, base_dir: str | os.PathLike[str]) -> list[Problem]:
    """A problem for each file the shot names that is not a readable file under ``base_dir``, or that
    lies in the shot's folder by its name but is (or passes through) a symbolic link leading out of it."""
    base = Path(base_dir)
    problems = []
    for where, name in referenced_files(shot):
        path = base / name
        if not path.is_file():
            problems.append(Problem(where, f"file not found: {path}"))
            continue
        if _says_it_leaves(name):
            continue
        target = path.resolve()
        if not target.is_relative_to(base.resolve()):
            problems.append(
                Problem(
                    where,
                    f"{name} is a symbolic link that leads out of the shot's folder (to {target}); "
                    "copy the file into the folder, or name it by its own path",
                )
            )
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
