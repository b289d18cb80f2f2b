"""Errors a person can act on: every problem names where it is and why.

A location is a JSON path in the Shot document (``tracks[1].keyframes[2].box``), or a file name
when the problem is the file itself. Library code raises these; only the CLI turns them into exit codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_LISTED_PROBLEMS = 20  # problems listed in a message or a reply; the rest are counted
MAX_WHERE_CHARS = 200  # a listed problem's location, cut past this
MAX_WHY_CHARS = 300  # a listed problem's reason, cut past this


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a document: ``where`` (a JSON path, or ``""`` for the whole document) and ``why``."""

    where: str
    why: str

    def __str__(self) -> str:
        return f"{self.where}: {self.why}" if self.where else self.why


class ShotError(ValueError):
    """A Shot document that cannot be used, with every problem found in it.

    ``source`` names the file (or ``"<string>"``) so messages read ``shot.json: tracks[0].label: ...``.
    """

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        if not problems:
            raise ValueError("ShotError needs at least one problem")
        self.source = source
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__(self.render())

    def render(self) -> str:
        """All problems, one per line, headed by the source and their count."""
        count = len(self.problems)
        head = f"{self.source}: {count} problem{'s' if count != 1 else ''}"
        return "\n".join([head, *(f"  {problem}" for problem in listed_problems(self.problems))])


def cut_text(text: str, limit: int) -> str:
    """``text`` when it has at most ``limit`` characters, else its start and ``...`` (``limit`` in all)."""
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def listed_problems(problems: Sequence[Problem], limit: int = MAX_LISTED_PROBLEMS) -> list[Problem]:
    """What a message or a reply lists of ``problems``: the first ``limit``, each with its texts cut
    to a bounded length, then one more that counts the rest (``and 8,980 more``), so that nine
    thousand bad keyframes make a short answer."""
    listed = [
        Problem(cut_text(problem.where, MAX_WHERE_CHARS), cut_text(problem.why, MAX_WHY_CHARS))
        for problem in problems[:limit]
    ]
    if len(problems) > limit:
        listed.append(Problem("", f"and {len(problems) - limit:,} more"))
    return listed


def json_path(location: Sequence[str | int]) -> str:
    """Format a location such as ``("tracks", 1, "keyframes", 2, "box")`` as ``tracks[1].keyframes[2].box``."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text
