"""How a shot and the command line name models: library names, LoRA weights, schedulers.

A shot chooses its models by their **library name**: an entry of the daemon's model library
(``anyi2v models`` lists them), such as ``checkpoints/realisticVision_v51`` or its short name
``realisticVision_v51``. Never by a path: a shot travels between machines, and a daemon opens nothing a
client names but entries of its own library. :func:`library_name_problem` says why a text is not a
library name (absolute, from a home folder, with a drive letter, a backslash, a ``:`` or a ``..`` part);
:data:`LIBRARY_NAME_PATTERN` states the same for the published JSON Schema.

The command line takes ``NAME[:WEIGHT]`` for LoRAs (:func:`parse_weighted_name`); there a path is allowed
too (the user's own machine). Standard library only, so the CLI parses its arguments without pydantic.
"""

from __future__ import annotations

import math
import re
from typing import Literal, get_args

__all__ = [
    "DEFAULT_SCHEDULER",
    "LIBRARY_NAME_PATTERN",
    "MAX_LIBRARY_NAME_LENGTH",
    "MAX_WEIGHT",
    "MIN_WEIGHT",
    "NAME_ADVICE",
    "SCHEDULERS",
    "Scheduler",
    "library_name_problem",
    "parse_weighted_name",
]

Scheduler = Literal["ddim", "euler", "dpmpp_2m_karras", "lcm"]
SCHEDULERS: tuple[str, ...] = get_args(Scheduler)
"""The samplers a shot or a daemon may ask for: DDIM as the AnyI2V authors run it (the default), Euler,
DPM++ 2M with Karras sigmas, and LCM (for AnimateLCM motion modules)."""
DEFAULT_SCHEDULER: Scheduler = "ddim"

MIN_WEIGHT = -4.0
MAX_WEIGHT = 4.0
"""The range of a LoRA's weight: 1 is the file's full strength, 0 turns it off, a negative weight pushes
the other way; past +-4 a LoRA only breaks the image."""

MAX_LIBRARY_NAME_LENGTH = 500

NAME_ADVICE = (
    "a shot names models by their library name, e.g. 'checkpoints/realisticVision_v51' (anyi2v models lists them)"
)

LIBRARY_NAME_PATTERN = (
    r"^(?![\s/~])(?![A-Za-z]:)(?!.*\s$)(?!(?:.*/)?\.{1,2}(?:/|$))(?!.*//)(?!.*/$)[^\\:\x00-\x1f\x7f]+$"
)
"""What :func:`library_name_problem` accepts, as a regular expression (ECMA 262 and Python agree on it)."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")


def _shown(name: str) -> str:
    text = repr(name)
    return text if len(text) <= 60 else text[:56] + "...'"


def library_name_problem(name: str) -> str | None:
    """Why ``name`` is not a library name (the reason names the text and says what to write), or None."""
    if not name.strip():
        return f"the name is empty; {NAME_ADVICE}"
    if _CONTROL.search(name):
        return f"{_shown(name)} has a control character; {NAME_ADVICE}"
    if name != name.strip():
        return f"{_shown(name)} starts or ends with a space; {NAME_ADVICE}"
    if len(name) > MAX_LIBRARY_NAME_LENGTH:
        return f"a name of {len(name)} characters is too long (at most {MAX_LIBRARY_NAME_LENGTH}); {NAME_ADVICE}"
    path_like = _path_problem(name)
    if path_like is not None:
        return f"{_shown(name)} {path_like}, not a library name; {NAME_ADVICE}"
    return None


def _path_problem(name: str) -> str | None:
    if name.startswith("/"):
        return "is an absolute path"
    if name.startswith("~"):
        return "starts with '~' (a home folder): it is a path"
    if _DRIVE.match(name):
        return "starts with a drive letter: it is a path"
    if "\\" in name:
        return "has a backslash: it is a Windows path (library names use '/')"
    if ":" in name:
        return "has a ':' (a URL or a drive): it is a location"
    parts = name.split("/")
    if ".." in parts:
        return "has a '..' part: it is a path that climbs out"
    if "." in parts:
        return "has a '.' part: it is a path"
    if "" in parts:
        return "has an empty part ('//' or a '/' at the end)"
    return None


def parse_weighted_name(text: str) -> tuple[str, float]:
    """``NAME[:WEIGHT]`` (a LoRA on the command line) as ``(name, weight)``; the weight is 1 when absent.

    The weight is what follows the last ``:`` unless that holds a path separator (``C:\\loras\\x``: a
    Windows path without a weight). Raises ``ValueError`` saying what is wrong: no name, a weight that is
    not a finite number from :data:`MIN_WEIGHT` to :data:`MAX_WEIGHT`.
    """
    name, weight = text, 1.0
    head, colon, tail = text.rpartition(":")
    if colon and not any(separator in tail for separator in "/\\"):
        name = head
        try:
            weight = float(tail)
        except ValueError:
            raise ValueError(
                f"{text!r}: {tail!r} is not a weight; write NAME or NAME:WEIGHT, the weight a number from "
                f"{MIN_WEIGHT:g} to {MAX_WEIGHT:g} (e.g. detail_tweaker:0.8)"
            ) from None
        if not math.isfinite(weight):
            raise ValueError(f"{text!r}: the weight must be a finite number from {MIN_WEIGHT:g} to {MAX_WEIGHT:g}")
        if not MIN_WEIGHT <= weight <= MAX_WEIGHT:
            raise ValueError(f"{text!r}: the weight {weight:g} is not from {MIN_WEIGHT:g} to {MAX_WEIGHT:g}")
    if not name.strip():
        raise ValueError(f"{text!r}: no name; write NAME or NAME:WEIGHT (e.g. detail_tweaker:0.8)")
    return name, weight
