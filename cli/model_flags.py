"""The flags that choose models, the same on `anyi2v animate` and `anyi2v daemon` (its default model).

``--model``, ``--motion-module``, ``--lora NAME[:WEIGHT]`` (repeatable), ``--motion-lora NAME[:WEIGHT]``
(repeatable), ``--vae`` each take a name in the model library (``--models-dir``, listed by ``anyi2v
models``) or a path on this machine; ``--scheduler`` one of the samplers; ``--tokenizer`` a CLIP tokenizer
folder to use instead of the model's (a single-file checkpoint, which has none, gets the SD 1.5 one shipped with
AnyI2V). With ``--daemon`` the model flags name the daemon's library entries and go into the shot's ``model``
section (``shot_for_daemon``). ``--motion-adapter`` is the old, hidden name of
``--motion-module``. For ``animate`` the flags override the shot's ``model`` section part by part (a
``--lora`` replaces the shot's LoRAs), and the shot's parts are library names only.

Parsing imports nothing heavy (``shared.model_names`` is standard library); resolution is
``daemon.pipeline.model_choice``, imported when a command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from anyi2v.daemon import SD15_RANDOM, TINY_RANDOM, TOY_WORLD
from anyi2v.shared.model_names import MAX_WEIGHT, MIN_WEIGHT, SCHEDULERS, parse_weighted_name

if TYPE_CHECKING:
    from anyi2v.daemon.pipeline.model_choice import ModelSources
    from anyi2v.shared.shot import Shot

__all__ = [
    "add_model_choice_arguments",
    "chosen_scheduler",
    "chosen_sources",
    "model_error_line",
    "model_help",
    "shot_for_daemon",
]


def model_help() -> str:
    """What ``--model`` takes, for every command that has it."""
    return (
        "the checkpoint: a name in the model library (anyi2v models lists them), a diffusers SD 1.5 folder or"
        f" a .safetensors/.ckpt file; '{TOY_WORLD}' (the default, the embedded model), or random weights:"
        f" '{TINY_RANDOM}' (plumbing), '{SD15_RANDOM}' (SD 1.5 sizes, for speed measurements)"
    )


def _weighted(text: str) -> tuple[str, float]:
    try:
        return parse_weighted_name(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_model_choice_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """Every flag of the module's documentation, in a group of their own; ``what`` says whose models they
    choose, for the group's description."""
    group = parser.add_argument_group(
        "models",
        f"{what}: each a name in the model library (anyi2v models --models-dir DIR lists them) or a path here",
    )
    group.add_argument("--model", metavar="NAME|PATH", help=model_help())
    group.add_argument(
        "--models-dir",
        type=Path,
        metavar="DIR",
        help="the model library (default: models/ in the app's data folder, ~/.local/share/anyi2v/models on Linux)",
    )
    group.add_argument(
        "--motion-module",
        metavar="NAME|PATH",
        help="the AnimateDiff motion module (a MotionAdapter folder or a .safetensors/.ckpt file)",
    )
    group.add_argument("--motion-adapter", dest="motion_module", help=argparse.SUPPRESS)  # the old name
    weights = f"WEIGHT from {MIN_WEIGHT:g} to {MAX_WEIGHT:g}, default 1"
    group.add_argument(
        "--lora",
        dest="loras",
        action="append",
        type=_weighted,
        metavar="NAME[:WEIGHT]",
        help=f"a LoRA fused into the checkpoint ({weights}); repeat for several",
    )
    group.add_argument(
        "--motion-lora",
        dest="motion_loras",
        action="append",
        type=_weighted,
        metavar="NAME[:WEIGHT]",
        help=f"an AnimateDiff motion LoRA (a camera move) fused into the motion module ({weights}); repeatable",
    )
    group.add_argument("--vae", metavar="NAME|PATH", help="a VAE replacing the checkpoint's (a file or a folder)")
    group.add_argument("--scheduler", choices=SCHEDULERS, help="the sampler (default ddim, as the AnyI2V authors)")
    group.add_argument(
        "--tokenizer",
        type=Path,
        metavar="DIR",
        help="a CLIP tokenizer folder to use instead (default: the model's; for a single file, the shipped SD 1.5 one)",
    )


def chosen_sources(arguments: argparse.Namespace, shot: Shot | None = None, shot_label: str = "shot") -> ModelSources:
    """What to load: each flag given, else the shot's ``model`` part (a library name only; labelled
    ``SHOT: model.<part>`` in messages), else the default."""
    from anyi2v.daemon.pipeline.model_choice import Chosen, ModelSources, flag_sources

    flags = flag_sources(
        getattr(arguments, "model", None),
        motion_module=getattr(arguments, "motion_module", None),
        loras=getattr(arguments, "loras", None) or (),
        motion_loras=getattr(arguments, "motion_loras", None) or (),
        vae=getattr(arguments, "vae", None),
        models_dir=getattr(arguments, "models_dir", None),
    )
    model = shot.model if shot is not None else None
    if model is None:
        return flags

    def named(part: str, value: str | None) -> Chosen | None:
        return None if value is None else Chosen(value, f"{shot_label}: model.{part}")

    def listed(part: str, entries: tuple[Chosen, ...], given: object) -> tuple[Chosen, ...]:
        chosen = getattr(model, part)
        if given is not None or chosen is None:
            return entries
        return tuple(
            Chosen(entry.name, f"{shot_label}: model.{part}[{index}].name", weight=entry.weight)
            for index, entry in enumerate(chosen)
        )

    return ModelSources(
        checkpoint=flags.checkpoint or named("checkpoint", model.checkpoint),
        motion_module=flags.motion_module or named("motion_module", model.motion_module),
        loras=listed("loras", flags.loras, getattr(arguments, "loras", None)),
        motion_loras=listed("motion_loras", flags.motion_loras, getattr(arguments, "motion_loras", None)),
        vae=flags.vae or named("vae", model.vae),
        models_dir=flags.models_dir,
    )


def chosen_scheduler(arguments: argparse.Namespace, shot: Shot | None = None) -> str | None:
    """``--scheduler``, else the shot's, else None (the default)."""
    flag: str | None = getattr(arguments, "scheduler", None)
    if flag is not None or shot is None or shot.model is None:
        return flag
    return shot.model.scheduler


def shot_for_daemon(arguments: argparse.Namespace, shot: Shot) -> Shot:
    """``shot`` with the model flags given (``--model``, ``--motion-module``, ``--lora``, ``--motion-lora``,
    ``--vae``, ``--scheduler``) written into its ``model`` section, for a daemon to load by name. Raises
    ``ValueError`` for a flag that only a local run takes or a value that is not a library name."""
    from anyi2v.shared.model_names import library_name_problem
    from anyi2v.shared.shot import ModelChoice, WeightedModel

    local = [flag for name, flag in (("models_dir", "--models-dir"), ("tokenizer", "--tokenizer"))
             if getattr(arguments, name, None) is not None]  # fmt: skip
    if local:
        raise ValueError(f"{', '.join(local)}: the daemon reads its own models folder; leave them out with --daemon")

    def name(flag: str, value: str) -> str:
        problem = library_name_problem(value)
        if problem is not None:
            raise ValueError(f"{flag} {value!r}: with --daemon, name the daemon's models ({problem})")
        return value

    update: dict[str, object] = {}
    for part, flag in (("model", "--model"), ("motion_module", "--motion-module"), ("vae", "--vae")):
        value = getattr(arguments, part, None)
        if value is not None:
            update["checkpoint" if part == "model" else part] = name(flag, str(value))
    for part, flag in (("loras", "--lora"), ("motion_loras", "--motion-lora")):
        given = getattr(arguments, part, None)
        if given is not None:
            update[part] = tuple(WeightedModel(name=name(flag, str(n)), weight=float(w)) for n, w in given)
    if getattr(arguments, "scheduler", None) is not None:
        update["scheduler"] = arguments.scheduler
    if not update:
        return shot
    model = (shot.model or ModelChoice()).model_copy(update=update)
    return shot.model_copy(update={"model": ModelChoice.model_validate(model.model_dump())})


def model_error_line(command: str, error: BaseException) -> str:
    """A loading error as one line for ``anyi2v COMMAND``; a choice refused in a library says how to list it."""
    from anyi2v.daemon.pipeline.model_choice import ModelChoiceError

    text = " ".join(str(error).split())
    if isinstance(error, ModelChoiceError) and error.library_root is not None:
        if error.library_root.is_dir():
            text += f"; anyi2v models --models-dir {error.library_root} lists the library"
        else:
            text += "; name the models folder with --models-dir DIR"
    return f"anyi2v {command}: {text}"
