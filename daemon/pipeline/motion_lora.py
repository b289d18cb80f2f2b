"""AnimateDiff motion LoRAs (camera moves such as ``v2_lora_ZoomIn``) fused into the motion modules.

A motion LoRA is a low-rank update ``W += weight * scale * up @ down`` of the temporal attention
projections (``to_q``, ``to_k``, ``to_v``, ``to_out``) of the motion modules. The files come in the layout
AnimateDiff released them in (``...temporal_transformer.transformer_blocks.0.attention_blocks.0.processor
.to_q_lora.down.weight``), in diffusers' older one (``...attn1.to_q.lora.down.weight``, maybe under
``unet.``) or as PEFT pairs (``lora_A``/``lora_B``); kohya-style ``lora_down``/``lora_up`` pairs with an
``alpha`` are scaled by ``alpha / rank``, the others by 1, as AnimateDiff itself applies them. Each pair is
mapped onto the module of ``UNetMotionModel`` it changes with the same renaming diffusers uses for motion
modules, and checked before anything is changed: a LoRA made for another motion module (a v2 LoRA on a
v3 module, which has no mid block) or an image LoRA is an error naming the file.

diffusers' LoRA loading does not read this format; the update is a plain matrix product, fused once at
load time, so it costs nothing while sampling.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from anyi2v.daemon.pipeline.load_errors import ModelLoadError, first_few
from anyi2v.daemon.pipeline.model_formats import PathArg, read_checkpoint, weighted_files

__all__ = ["MotionLoraUpdate", "check_motion_loras", "fuse_motion_loras", "motion_lora_updates"]

_DOWN = re.compile(r"^(?P<base>.+?)(?P<tail>_lora\.down|\.lora\.down|\.lora_down|\.lora_A(?P<adapter>\.\w+)?)\.weight$")
_UP_TAILS = {"_lora.down": "_lora.up", ".lora.down": ".lora.up", ".lora_down": ".lora_up"}
_PREFIXES = ("base_model.model.", "unet.")
# The renaming of AnimateDiff's motion modules to diffusers' (as diffusers' single-file converter does).
_RENAMES = (
    (".temporal_transformer", ""),
    (".attention_blocks.0", ".attn1"),
    (".attention_blocks.1", ".attn2"),
    (".processor.", "."),
)


@dataclass(frozen=True)
class MotionLoraUpdate:
    """One low-rank update: the ``UNetMotionModel`` module it changes, and ``scale * up @ down`` at weight 1."""

    module: str
    down: torch.Tensor  # (rank, in_features)
    up: torch.Tensor  # (out_features, rank)
    scale: float


def check_motion_loras(loras: Sequence[tuple[PathArg, float]]) -> list[tuple[Path, float]]:
    """``(path, weight)`` pairs as existing files with a checkpoint suffix and float weights."""
    return weighted_files(loras, "motion LoRA")


def _module_name(base: str) -> str:
    for prefix in _PREFIXES:
        base = base.removeprefix(prefix)
    for old, new in _RENAMES:
        base = base.replace(old, new)
    return base + ".0" if base.endswith(".to_out") else base


def motion_lora_updates(path: Path) -> list[MotionLoraUpdate]:
    """The updates in the motion LoRA file ``path``; :class:`ModelLoadError` when it holds none, or pairs
    outside the motion modules (an image LoRA)."""
    tensors = read_checkpoint(path)
    updates: list[MotionLoraUpdate] = []
    outside: list[str] = []
    for key, down in tensors.items():
        match = _DOWN.match(key)
        if match is None:
            continue
        base, tail = match["base"], match["tail"]
        up_tail = _UP_TAILS.get(tail) or f".lora_B{match['adapter'] or ''}"
        up = tensors.get(f"{base}{up_tail}.weight")
        if up is None or down.ndim != 2 or up.ndim != 2 or up.shape[1] != down.shape[0]:
            raise ModelLoadError(f"{path}: {key} has no matching {base}{up_tail}.weight of rank {down.shape[0]}")
        module = _module_name(base)
        if ".motion_modules." not in f".{module}":
            outside.append(module)
            continue
        alpha = tensors.get(f"{base}.alpha")
        scale = float(alpha) / down.shape[0] if alpha is not None and alpha.numel() == 1 else 1.0
        updates.append(MotionLoraUpdate(module, down, up, scale))
    if outside or not updates:
        what = f"it changes {first_few(sorted(outside))}" if outside else "it holds no LoRA pairs"
        raise ModelLoadError(
            f"{path}: not a motion LoRA ({what}); a motion LoRA changes only the motion modules' attention, "
            "an image LoRA goes with the other LoRAs"
        )
    return updates


def fuse_motion_loras(
    unet: torch.nn.Module,
    loras: Sequence[tuple[Path, float]],
    keep: Callable[[torch.Tensor], None] | None = None,
) -> None:
    """Add each file's updates, at its weight, into ``unet``'s motion modules; every file is checked against
    the UNet before any weight changes. ``keep`` is shown each weight before it changes."""
    planned: list[tuple[torch.Tensor, MotionLoraUpdate, float]] = []
    for path, weight in loras:
        missing: list[str] = []
        misshapen: list[str] = []
        for update in motion_lora_updates(path):
            try:
                layer = unet.get_submodule(update.module)
            except AttributeError:
                missing.append(update.module)
                continue
            shape = (update.up.shape[0], update.down.shape[1])
            if not isinstance(layer, torch.nn.Linear) or tuple(layer.weight.shape) != shape:
                misshapen.append(update.module)
                continue
            planned.append((layer.weight, update, weight))
        if missing:
            raise ModelLoadError(
                f"{path}: the motion LoRA changes layers these motion modules do not have "
                f"({first_few(sorted(missing))}); it was made for another motion module (a v2 LoRA needs a v2 "
                "motion module)"
            )
        if misshapen:
            raise ModelLoadError(
                f"{path}: the motion LoRA's layers have other shapes than these motion modules' "
                f"({first_few(sorted(misshapen))}); it was made for another motion module"
            )
    if keep is not None:
        for parameter, _, _ in planned:
            keep(parameter)
    with torch.no_grad():
        for parameter, update, weight in planned:
            delta = (weight * update.scale) * (update.up.float() @ update.down.float())
            parameter.add_(delta.to(device=parameter.device, dtype=parameter.dtype))
