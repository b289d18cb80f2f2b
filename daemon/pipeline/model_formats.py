"""What a path holds, and reading it as such, with no download unless asked.

Configs (``config.json``), checkpoints (``.safetensors``, or pickles read with ``weights_only=True``) and
which model a checkpoint is (an SD 1.5 model in the CompVis / A1111 layout, an AnimateDiff motion module,
SD XL or SD 2.x), diffusers / transformers part folders (their weight variant, strictly checked keys),
CLIP tokenizer folders, and LoRA files. Every failure is a :class:`ModelLoadError` naming the path.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from transformers import CLIPTokenizer

from anyi2v.daemon.pipeline.load_errors import PYTHON_OPTIONS, ModelLoadError, OptionNames, first_few

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "LDM_CLIP",
    "LDM_UNET",
    "LDM_VAE",
    "PathArg",
    "check_loras",
    "check_sd15_checkpoint",
    "existing_path",
    "load_pretrained",
    "load_tokenizer",
    "peft_available",
    "read_checkpoint",
    "read_config",
]

logger = logging.getLogger(__name__)

PathArg = str | os.PathLike[str]

CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
_WEIGHT_STEMS = ("diffusion_pytorch_model", "model", "pytorch_model")
_VARIANT = re.compile(r"^(?:diffusion_pytorch_model|model|pytorch_model)\.(\w+)\.(?:safetensors|bin)$")

# Keys of the original (CompVis / A1111) SD layout.
LDM_UNET = "model.diffusion_model."
LDM_VAE = "first_stage_model."
LDM_CLIP = "cond_stage_model.transformer."


def existing_path(path: PathArg, what: str) -> Path:
    """``path`` expanded and resolved; :class:`ModelLoadError` naming ``what`` when it does not exist."""
    resolved = Path(path).expanduser()
    if not resolved.exists():
        raise ModelLoadError(f"{resolved}: {what} not found")
    return resolved.resolve()


def read_config(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` (a part's ``config.json``)."""
    if not path.is_file():
        raise ModelLoadError(f"{path}: not found; expected a config.json of the model part")
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelLoadError(f"{path}: not a readable JSON config ({error})") from error
    if not isinstance(loaded, dict):
        raise ModelLoadError(f"{path}: expected a JSON object")
    return loaded


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file, or of a pickled checkpoint read with ``weights_only=True``."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            state: object = safetensors.torch.load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ModelLoadError(
            f"{path}: not a valid {suffix} checkpoint ({type(error).__name__}: {error}); pickled files are read "
            "with weights_only=True, so one holding other objects must be converted to .safetensors"
        ) from error
    while isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    tensors = (
        {key: value for key, value in state.items() if isinstance(key, str) and isinstance(value, torch.Tensor)}
        if isinstance(state, dict)
        else {}
    )
    if not tensors:
        raise ModelLoadError(f"{path}: holds no named tensors; expected a model checkpoint")
    return tensors


def check_sd15_checkpoint(
    checkpoint: Mapping[str, torch.Tensor], src: Path, options: OptionNames = PYTHON_OPTIONS
) -> None:
    """Raise :class:`ModelLoadError` unless ``checkpoint`` is an SD 1.5 model in the original layout (UNet,
    VAE and CLIP text encoder), saying what it is instead (a motion module, SD XL, SD 2.x, a part missing)."""
    keys = list(checkpoint)
    if any(".motion_modules." in key for key in keys) and not any(key.startswith(LDM_UNET) for key in keys):
        raise ModelLoadError(
            f"{src}: this is an AnimateDiff motion module, not an SD 1.5 model; pass it as {options.motion_adapter}"
        )
    if any(key.startswith("conditioner.embedders.") for key in keys):
        raise ModelLoadError(f"{src}: an SD XL checkpoint; only SD 1.5 is supported")
    if any(key.startswith("cond_stage_model.model.") for key in keys):
        raise ModelLoadError(f"{src}: an SD 2.x checkpoint (OpenCLIP text encoder); only SD 1.5 is supported")
    for prefix, part in ((LDM_UNET, "UNet"), (LDM_VAE, "VAE"), (LDM_CLIP, "CLIP text encoder")):
        if not any(key.startswith(prefix) for key in keys):
            raise ModelLoadError(
                f"{src}: no {part} weights ({prefix}* keys); expected an SD 1.5 checkpoint in the original "
                "CompVis/A1111 layout with UNet, VAE and text encoder"
            )


def _weights_variant(folder: Path) -> str | None:
    """``None`` when ``folder`` has plain weight files, else the variant (``fp16``) of the ones it has."""
    names = [entry.name for entry in folder.iterdir() if entry.is_file()]
    plain = {f"{stem}.{ext}" for stem in _WEIGHT_STEMS for ext in ("safetensors", "bin")}
    plain |= {f"{name}.index.json" for name in plain}
    if any(name in plain for name in names):
        return None
    variants = sorted({match.group(1) for name in names if (match := _VARIANT.match(name))})
    if not variants:
        raise ModelLoadError(
            f"{folder}: no weights file; expected diffusion_pytorch_model.safetensors (diffusers) or "
            "model.safetensors (transformers)"
        )
    return "fp16" if "fp16" in variants else variants[0]


def load_pretrained(cls: Any, folder: Path, local_only: bool) -> Any:
    """A ``cls`` (diffusers or transformers) from its ``folder``: the declared class checked, the weight variant
    picked, and every weight of the config present with its shape (unused ones are logged)."""
    name = cls.__name__
    if not folder.is_dir():
        raise ModelLoadError(f"{folder}: not found; expected a {name} folder")
    config = read_config(folder / "config.json")
    declared = config.get("_class_name") or (config.get("architectures") or [None])[0]
    if declared is not None and declared != name:
        raise ModelLoadError(f"{folder / 'config.json'}: holds a {declared}; expected a {name}")
    variant = _weights_variant(folder)
    try:
        model, info = cls.from_pretrained(
            str(folder), local_files_only=local_only, output_loading_info=True, variant=variant
        )
    except Exception as error:
        raise ModelLoadError(f"{folder}: could not load a {name}: {type(error).__name__}: {error}") from error
    missing = sorted(info.get("missing_keys") or ())
    mismatched = list(info.get("mismatched_keys") or ())
    if missing or mismatched:
        problems = [f"{len(missing)} weights missing ({first_few(missing)})"] if missing else []
        problems += [f"{len(mismatched)} weights of the wrong shape ({first_few(mismatched)})"] if mismatched else []
        raise ModelLoadError(f"{folder}: the weights do not match config.json: {'; '.join(problems)}")
    unexpected = sorted(info.get("unexpected_keys") or ())
    if unexpected:
        logger.warning("%s: %d weights unused by %s (%s)", folder, len(unexpected), name, first_few(unexpected))
    return model


def load_tokenizer(folder: Path, local_only: bool) -> Any:
    """A ``CLIPTokenizer`` from a folder holding ``vocab.json`` and ``merges.txt``."""
    if not folder.is_dir():
        raise ModelLoadError(f"{folder}: not found; expected a CLIP tokenizer folder (vocab.json, merges.txt)")
    try:
        return CLIPTokenizer.from_pretrained(str(folder), local_files_only=local_only)
    except Exception as error:
        raise ModelLoadError(
            f"{folder}: not a CLIP tokenizer folder (vocab.json, merges.txt): {type(error).__name__}: {error}"
        ) from error


# --- LoRA files --------------------------------------------------------------------------------------


def peft_available() -> bool:
    """Whether the ``peft`` package, which diffusers' LoRA loading needs, is installed."""
    return importlib.util.find_spec("peft") is not None


def weighted_files(loras: Sequence[tuple[PathArg, float]], what: str) -> list[tuple[Path, float]]:
    """``(path, weight)`` pairs as existing files with a checkpoint suffix and float weights; ``what`` names
    them in messages ("LoRA", "motion LoRA")."""
    checked: list[tuple[Path, float]] = []
    for entry in loras:
        try:
            path, weight = entry
            number = float(weight)
        except (TypeError, ValueError) as error:
            raise ModelLoadError(f"{what}s: {entry!r} is not a (path, weight) pair") from error
        file = existing_path(path, f"{what} file")
        if not file.is_file() or file.suffix.lower() not in CHECKPOINT_SUFFIXES:
            raise ModelLoadError(f"{file}: expected a {what} .safetensors (or .ckpt/.bin) file")
        checked.append((file, number))
    return checked


def check_loras(loras: Sequence[tuple[PathArg, float]]) -> list[tuple[Path, float]]:
    """``(path, weight)`` pairs as resolved LoRA files and floats (:func:`weighted_files`), and ``peft``
    installed when there is any."""
    checked = weighted_files(loras, "LoRA")
    if checked and not peft_available():
        raise ModelLoadError(
            f"{checked[0][0]}: LoRA files are loaded through diffusers' PEFT integration, which needs the peft "
            "package: pip install peft"
        )
    return checked
