"""Models chosen by name or path, resolved to the files loading reads.

A choice (:class:`Chosen`) is a value as the user gave it and where they gave it (``label``: a flag such
as ``--lora``, or a shot's field such as ``shot.json: model.loras[0].name``). Each is resolved for the kind
asked (:func:`resolve_sources`):

1. ``toy-world``, ``tiny-random`` and ``sd15-random`` are the built-in models (checkpoints only);
2. a library name is looked up in the models folder (:mod:`library`): an entry of that kind that can be
   used, else the library's typed error (an unknown name with the entries there are, an entry of another
   kind, an unusable entry naming its file and why);
3. where paths are allowed (the command line: the user's own machine, never a shot or a client's job),
   a file or folder that exists is used as it is, after the same recognition the library applies to its
   files (a truncated file, a LoRA of another family, a LoRA given as a checkpoint are refused here too).

Every refusal is a :class:`ModelChoiceError` naming the label, the value and why, with the library
folder it looked in, so a command can say what to do. Nothing here imports torch (a pickled ``.ckpt``
given by path is read for its keys only, with ``weights_only=True``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anyi2v.daemon import SD15_RANDOM, TINY_RANDOM, TOY_WORLD
from anyi2v.daemon.pipeline.library import (
    Library,
    LibraryError,
    MissingLibraryError,
    ModelNameError,
    default_models_dir,
    describe_path,
    scan_library,
)
from anyi2v.daemon.pipeline.model_kinds import Kind
from anyi2v.shared.model_names import library_name_problem

if TYPE_CHECKING:
    from anyi2v.shared.shot import ModelChoice, WeightedModel

__all__ = [
    "BUILTIN_MODELS",
    "FLAG_LABELS",
    "RANDOM_MODELS",
    "Chosen",
    "ModelChoiceError",
    "ModelSources",
    "ResolvedModels",
    "flag_sources",
    "job_sources",
    "resolve_sources",
    "sources_names",
]

BUILTIN_MODELS = (TOY_WORLD, TINY_RANDOM, SD15_RANDOM)
RANDOM_MODELS = (TINY_RANDOM, SD15_RANDOM)


FLAG_LABELS = {
    "checkpoint": "--model",
    "motion_module": "--motion-module",
    "loras": "--lora",
    "motion_loras": "--motion-lora",
    "vae": "--vae",
}
"""The flags of ``anyi2v animate`` and ``anyi2v daemon`` that name each part."""


class ModelChoiceError(LibraryError):
    """A chosen model that cannot be used: ``label`` (where it was named), ``value`` (as given), ``reason``;
    ``library_root`` is the models folder it was looked for in (None when no library was needed)."""

    def __init__(self, label: str, value: str, reason: str, library_root: Path | None = None) -> None:
        super().__init__(f"{label} {value!r}: {reason}")
        self.label = label
        self.value = value
        self.reason = reason
        self.library_root = library_root


@dataclass(frozen=True)
class Chosen:
    """One model as the user named it; ``weight`` is a LoRA's."""

    value: str
    label: str
    paths_allowed: bool = False
    weight: float = 1.0


@dataclass(frozen=True)
class ModelSources:
    """What to load, as named; ``None`` (or no LoRAs) is the default: the toy-world model, no LoRAs, the
    checkpoint's own VAE. ``models_dir`` is the library (None: :func:`default_models_dir`)."""

    checkpoint: Chosen | None = None
    motion_module: Chosen | None = None
    loras: tuple[Chosen, ...] = ()
    motion_loras: tuple[Chosen, ...] = ()
    vae: Chosen | None = None
    models_dir: Path | None = None

    def extras(self) -> list[Chosen]:
        """Everything chosen besides the checkpoint."""
        module = [self.motion_module] if self.motion_module is not None else []
        vae = [self.vae] if self.vae is not None else []
        return [*module, *self.loras, *self.motion_loras, *vae]


@dataclass(frozen=True)
class ResolvedModels:
    """The files to load: ``checkpoint`` is a built-in model's name, a path, or None (the toy-world model)."""

    checkpoint: str | Path | None = None
    motion_module: Path | None = None
    loras: tuple[tuple[Path, float], ...] = ()
    motion_loras: tuple[tuple[Path, float], ...] = ()
    vae: Path | None = None


def flag_sources(
    checkpoint: str | None,
    *,
    motion_module: str | None = None,
    loras: Sequence[tuple[str, float]] = (),
    motion_loras: Sequence[tuple[str, float]] = (),
    vae: str | None = None,
    models_dir: Path | None = None,
) -> ModelSources:
    """Sources as the command line's flags name them (:data:`FLAG_LABELS`): library names or paths."""

    def flag(value: str | None, part: str) -> Chosen | None:
        return None if value is None else Chosen(str(value), FLAG_LABELS[part], paths_allowed=True)

    return ModelSources(
        checkpoint=flag(checkpoint, "checkpoint"),
        motion_module=flag(motion_module, "motion_module"),
        loras=tuple(Chosen(str(name), "--lora", True, float(weight)) for name, weight in loras),
        motion_loras=tuple(Chosen(str(name), "--motion-lora", True, float(weight)) for name, weight in motion_loras),
        vae=flag(vae, "vae"),
        models_dir=models_dir,
    )


def job_sources(default: ModelSources, choice: ModelChoice | None) -> ModelSources:
    """The models a job runs: its shot's ``model`` section over the daemon's ``default``, part by part. A part
    the shot leaves out is the default's; an empty list of LoRAs is none. A shot's names are library names
    only (labels ``shot.model.<part>``)."""
    if choice is None:
        return default

    def named(value: str | None, part: str, fallback: Chosen | None) -> Chosen | None:
        return fallback if value is None else Chosen(value, f"shot.model.{part}")

    def listed(entries: Sequence[WeightedModel] | None, part: str, fallback: tuple[Chosen, ...]) -> tuple[Chosen, ...]:
        if entries is None:
            return fallback
        return tuple(
            Chosen(entry.name, f"shot.model.{part}[{index}]", weight=entry.weight)
            for index, entry in enumerate(entries)
        )

    return ModelSources(
        checkpoint=named(choice.checkpoint, "checkpoint", default.checkpoint),
        motion_module=named(choice.motion_module, "motion_module", default.motion_module),
        loras=listed(choice.loras, "loras", default.loras),
        motion_loras=listed(choice.motion_loras, "motion_loras", default.motion_loras),
        vae=named(choice.vae, "vae", default.vae),
        models_dir=default.models_dir,
    )


def sources_names(sources: ModelSources) -> dict[str, Any]:
    """``sources`` as the protocol's ``ModelCombination`` names them: a library name as it was given
    (``checkpoints/realisticVision_v51`` stays whole), a path by its file name."""

    def shown(value: str) -> str:
        return value if library_name_problem(value) is None else Path(value).name

    def one(chosen: Any) -> str | None:
        return None if chosen is None else shown(chosen.value)

    return {
        "checkpoint": one(sources.checkpoint),
        "motion_module": one(sources.motion_module),
        "loras": [{"name": shown(c.value), "weight": c.weight} for c in sources.loras],
        "motion_loras": [{"name": shown(c.value), "weight": c.weight} for c in sources.motion_loras],
        "vae": one(sources.vae),
    }


class _LibraryOnce:
    """The models folder, scanned the first time a name needs it (never when only paths are given)."""

    def __init__(self, models_dir: Path | None) -> None:
        self.root = Path(models_dir if models_dir is not None else default_models_dir()).expanduser().absolute()
        self._library: Library | None = None
        self._missing: str | None = None

    def get(self) -> Library | None:
        """The library, or None when there is no such folder (:attr:`missing` says why)."""
        if self._library is None and self._missing is None:
            try:
                self._library = scan_library(self.root)
            except MissingLibraryError as error:
                self._missing = str(error)
        return self._library

    @property
    def missing(self) -> str:
        return self._missing or ""


def resolve_sources(sources: ModelSources) -> ResolvedModels:
    """The files ``sources`` name (see the module's documentation); :class:`ModelChoiceError` for the first
    that cannot be used."""
    library = _LibraryOnce(sources.models_dir)
    checkpoint: str | Path | None = None
    if sources.checkpoint is not None:
        checkpoint = (
            sources.checkpoint.value
            if sources.checkpoint.value in BUILTIN_MODELS
            else _resolve(sources.checkpoint, "checkpoint", library)
        )
    if checkpoint in RANDOM_MODELS:
        extras = sources.extras()
        if extras:
            raise ModelChoiceError(
                extras[0].label,
                extras[0].value,
                f"the model {checkpoint} is random weights: it takes no motion module, LoRA or VAE; choose a "
                "checkpoint with --model",
            )

    def each(entries: tuple[Chosen, ...], kind: Kind) -> tuple[tuple[Path, float], ...]:
        return tuple((_resolve(chosen, kind, library), chosen.weight) for chosen in entries)

    def one(chosen: Chosen | None, kind: Kind) -> Path | None:
        return None if chosen is None else _resolve(chosen, kind, library)

    return ResolvedModels(
        checkpoint=checkpoint,
        motion_module=one(sources.motion_module, "motion_module"),
        loras=each(sources.loras, "lora"),
        motion_loras=each(sources.motion_loras, "motion_lora"),
        vae=one(sources.vae, "vae"),
    )


def _resolve(chosen: Chosen, kind: Kind, library: _LibraryOnce) -> Path:
    """One chosen model: a library entry, else (where allowed) an existing path."""

    def refuse(reason: str, root: Path | None = library.root) -> ModelChoiceError:
        return ModelChoiceError(chosen.label, chosen.value, reason, root)

    name_problem = library_name_problem(chosen.value)
    if name_problem is None:
        found = library.get()
        if found is not None:
            try:
                return found.resolve(chosen.value, kind)
            except ModelNameError as error:  # not a name there: perhaps a path of the user's
                if not (chosen.paths_allowed and Path(chosen.value).expanduser().exists()):
                    raise refuse(_also_no_file(str(error), chosen)) from None
            except LibraryError as error:  # an entry that cannot be used: its file and why
                raise refuse(str(error)) from None
        elif not chosen.paths_allowed or not Path(chosen.value).expanduser().exists():
            raise refuse(_also_no_file(f"no models folder to find it in ({library.missing})", chosen))
    elif not chosen.paths_allowed:
        raise refuse(name_problem, None)
    path = Path(chosen.value).expanduser()
    if not path.exists():
        raise refuse(f"no such file or folder ({path.absolute()})", None)
    return _checked_path(path.absolute(), kind, lambda reason: refuse(reason, None))


def _also_no_file(reason: str, chosen: Chosen) -> str:
    return f"{reason}; nor is it a file here" if chosen.paths_allowed else reason


def _checked_path(path: Path, kind: Kind, refuse: Callable[[str], ModelChoiceError]) -> Path:
    """``path`` when what it holds may be a ``kind`` (the loader tells the rest); a file is recognised as
    the library recognises its files, a folder is left to the loader."""
    if path.is_dir():
        return path
    entry = describe_path(path)
    if entry is None:
        return path
    if entry.problem is not None:
        raise refuse(f"{path}: {entry.problem}")
    if entry.kind not in (kind, "unknown"):
        raise refuse(f"{path} is a {entry.kind}, not a {kind}")
    return path
