"""The daemon's model library as the studio sees it, and what the Model section offers from it. No Qt.

:class:`ModelLibrary` is one ``models_reply`` (PROTOCOL.md): the entries by kind, the daemon's default
combination, what its worker has loaded. The choice functions turn it and the shot's ``model`` section
into what the Model section shows: each part's items (the daemon's default first, entries that cannot be
used listed but disabled with the reason) and the shot's own names, kept and marked when the library
lacks them, since a shot may come from another machine and a user's choice is never dropped silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from anyi2v.shared.model_names import DEFAULT_SCHEDULER, SCHEDULERS
from anyi2v.shared.protocol import LibraryModel, ModelCombination, ModelsReply
from anyi2v.shared.shot import ModelChoice, WeightedModel

NAMED_PARTS = ("checkpoint", "motion_module", "vae")
"""The parts of a ``model`` section that name one library entry."""
LIST_PARTS = ("loras", "motion_loras")
"""The parts that list entries, each with a weight."""
PART_KINDS = {"checkpoint": "checkpoint", "motion_module": "motion_module", "vae": "vae", "loras": "lora",
              "motion_loras": "motion_lora"}  # fmt: skip
"""The library kind each part takes."""
PART_TITLES = {"checkpoint": "checkpoint", "motion_module": "motion module", "vae": "VAE", "loras": "LoRA",
               "motion_loras": "motion LoRA", "scheduler": "scheduler"}  # fmt: skip
NOT_IN_LIBRARY = "(not in this daemon's library)"
_UNLISTED_DEFAULTS = {"checkpoint": "its own model", "motion_module": "the model's own", "vae": "the checkpoint's"}


@dataclass(frozen=True)
class Choice:
    """One item of a part's menu: ``value`` is what the shot's section gets (None: the daemon's default)."""

    label: str
    value: str | None
    enabled: bool = True
    tooltip: str = ""
    missing: bool = False  # a name of the shot the listed library does not have


@dataclass(frozen=True)
class Picker:
    """A part's menu and the item that shows the shot's current value."""

    choices: tuple[Choice, ...]
    index: int


@dataclass(frozen=True)
class ModelLibrary:
    """What a daemon said about its models. ``problem`` says why there is no listing (no models folder, a
    daemon too old to list): then ``entries`` is empty and every name of a shot is "not in the library"
    only when ``listed`` (the daemon answered, so its library is known to lack them)."""

    folder: str = ""
    entries: tuple[LibraryModel, ...] = ()
    default: ModelCombination = field(default_factory=ModelCombination)
    loaded: ModelCombination | None = None
    problem: str | None = None
    more: int = 0
    listed: bool = True

    @classmethod
    def from_reply(cls, reply: ModelsReply) -> ModelLibrary:
        return cls(reply.folder, tuple(reply.models), reply.default, reply.loaded, reply.problem, reply.more)

    @classmethod
    def unavailable(cls, problem: str) -> ModelLibrary:
        """No listing: the daemon could not be asked or cannot answer (its library is not known)."""
        return cls(problem=problem, listed=False)

    def of_kind(self, kind: str) -> tuple[LibraryModel, ...]:
        """The entries of ``kind``, in the daemon's order (by name)."""
        return tuple(entry for entry in self.entries if entry.kind == kind)

    def find(self, name: str, kind: str) -> LibraryModel | None:
        """The ``kind`` entry ``name`` names (its full name or its short name), as the daemon resolves names;
        a usable entry of unknown kind (an old pickle: its kind is found when loaded) fits any kind."""
        for entry in self.entries:
            if name in (entry.name, entry.short_name) and (
                entry.kind == kind or (entry.kind == "unknown" and entry.problem is None)
            ):
                return entry
        return None

    def missing(self, choice: ModelChoice | None) -> tuple[str, ...]:
        """The names of ``choice`` this library lacks, as ``checkpoint 'NAME'`` (none when not listed)."""
        if choice is None or not self.listed:
            return ()
        named = [(part, getattr(choice, part)) for part in NAMED_PARTS]
        named += [(part, entry.name) for part in LIST_PARTS for entry in getattr(choice, part) or ()]
        return tuple(
            f"{PART_TITLES[part]} {name!r}" for part, name in named
            if name is not None and self.find(name, PART_KINDS[part]) is None
        )  # fmt: skip

    @property
    def summary(self) -> str:
        """One line on the library: where it is and how many models it has, or why there is none."""
        if self.problem is not None:
            return self.problem if not self.listed else f"No models: {self.problem}"
        usable = sum(entry.problem is None for entry in self.entries)
        more = f" (and {self.more} not listed)" if self.more else ""
        return f"{len(self.entries)} models ({usable} usable){more} in {self.folder} on the daemon's machine"


def entry_tooltip(entry: LibraryModel) -> str:
    """What is known of an entry: its full name, family, version, frame limit, size, and any problem or note."""
    frames = f"up to {entry.frame_limit} frames" if entry.frame_limit else ""
    facts = [entry.kind.replace("_", " "), entry.family or "", entry.version or "", frames,
             f"{entry.size_bytes / 1e6:,.0f} MB"]  # fmt: skip
    lines = [entry.name, ", ".join(fact for fact in facts if fact)]
    if entry.problem is not None:
        lines.append(f"Cannot be used: {entry.problem}")
    if entry.note:
        lines.append(entry.note)
    return "\n".join(lines)


def entry_choice(entry: LibraryModel) -> Choice:
    label = entry.short_name or entry.name
    if entry.kind == "unknown":
        label += " (kind found when loaded)"
    return Choice(label, entry.name, entry.problem is None, entry_tooltip(entry))


def default_label(part: str, library: ModelLibrary | None) -> str:
    """``daemon default (NAME)``: the daemon's own choice for ``part``, when it is known."""
    if library is None or not library.listed:
        return "daemon default"
    if part == "scheduler":
        return f"daemon default ({library.default.scheduler or DEFAULT_SCHEDULER})"
    if part in LIST_PARTS:
        entries = getattr(library.default, part)
        return f"daemon default ({weighted_text(entries) if entries else 'none'})"
    name = getattr(library.default, part)
    return f"daemon default ({name if name else _UNLISTED_DEFAULTS[part]})"


def name_choices(part: str, library: ModelLibrary | None, current: str | None) -> Picker:
    """The menu of a part that names one entry: the daemon's default, the library's entries of its kind,
    and the shot's ``current`` name when the library lacks it (marked when the library is known)."""
    kind = PART_KINDS[part]
    choices = [Choice(default_label(part, library), None, tooltip="Whatever the daemon was started with")]
    entries = library.of_kind(kind) if library is not None else ()
    choices += [entry_choice(entry) for entry in entries]
    choices += [entry_choice(entry) for entry in (library.of_kind("unknown") if library is not None else ())
                if entry.problem is None]  # fmt: skip
    if current is None:
        return Picker(tuple(choices), 0)
    found = library.find(current, kind) if library is not None else None
    if found is not None:
        return Picker(tuple(choices), next(i for i, choice in enumerate(choices) if choice.value == found.name))
    choices.append(unlisted_choice(current, library))
    return Picker(tuple(choices), len(choices) - 1)


def unlisted_choice(name: str, library: ModelLibrary | None) -> Choice:
    """The shot's own name the library does not list: kept as it is."""
    if library is None or not library.listed:
        return Choice(name, name, tooltip=f"{name}: the daemon's library is not known, so it is not checked")
    return Choice(
        f"{name} {NOT_IN_LIBRARY}", name, missing=True,
        tooltip=f"{name}: the shot names it, the daemon's library ({library.folder}) lacks it; it is kept as it "
        "is. Choose another, or put the file in the daemon's models folder.",
    )  # fmt: skip


def scheduler_choices(library: ModelLibrary | None, current: str | None) -> Picker:
    choices = (Choice(default_label("scheduler", library), None), *(Choice(name, name) for name in SCHEDULERS))
    index = SCHEDULERS.index(current) + 1 if current in SCHEDULERS else 0
    return Picker(choices, index)


def addable_choices(part: str, library: ModelLibrary | None, current: Sequence[WeightedModel] | None) -> Picker:
    """The "add" menu of a list part: a title, then the entries of its kind not in the list yet."""
    taken = {entry.name for entry in current or ()}
    if library is not None:
        taken |= {found.name for entry in current or () if (found := library.find(entry.name, PART_KINDS[part]))}
    title = f"Add a {PART_TITLES[part]}…"
    entries = library.of_kind(PART_KINDS[part]) if library is not None else ()
    return Picker((Choice(title, None), *(entry_choice(e) for e in entries if e.name not in taken)), 0)


@dataclass(frozen=True)
class Row:
    """One entry of a list part, as its row shows it."""

    name: str
    weight: float
    label: str
    tooltip: str
    missing: bool


def list_rows(part: str, library: ModelLibrary | None, current: Sequence[WeightedModel] | None) -> tuple[Row, ...]:
    rows = []
    for entry in current or ():
        found = library.find(entry.name, PART_KINDS[part]) if library is not None else None
        choice = entry_choice(found) if found is not None else unlisted_choice(entry.name, library)
        rows.append(Row(entry.name, entry.weight, choice.label, choice.tooltip, choice.missing))
    return tuple(rows)


def weighted_text(entries: Sequence[Any]) -> str:
    """``a ×0.6, b``: names (short where the name has folders) and weights other than 1."""
    return ", ".join(
        entry.name.rsplit("/", 1)[-1] + ("" if entry.weight == 1 else f" ×{entry.weight:g}") for entry in entries
    )


def weighted_list(entries: Sequence[WeightedModel] | None) -> list[dict[str, Any]]:
    """A list part as the section's JSON (the value an edit writes)."""
    return [{"name": entry.name, "weight": entry.weight} for entry in entries or ()]


def loaded_line(library: ModelLibrary | None) -> str:
    """The status bar's words on what the daemon's worker holds ("" when no daemon has said)."""
    if library is None or not library.listed:
        return ""
    loaded = library.loaded
    if loaded is None:
        return "Loaded: nothing yet"
    parts = [name.rsplit("/", 1)[-1] for name in (loaded.checkpoint, loaded.motion_module, loaded.vae) if name]
    if loaded.loras:
        parts.append(f"LoRA {weighted_text(loaded.loras)}")
    if loaded.motion_loras:
        parts.append(f"motion LoRA {weighted_text(loaded.motion_loras)}")
    if loaded.scheduler:
        parts.append(loaded.scheduler)
    return f"Loaded: {', '.join(parts) if parts else 'the default model'}"
