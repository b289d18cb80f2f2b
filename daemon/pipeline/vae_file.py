"""A VAE replacing a model's own, as artists swap in ``vae-ft-mse-840000-ema-pruned`` for sharper decodes.

:func:`load_vae` reads a single file (``.safetensors``, or a pickle read with ``weights_only=True``) in the
layout VAEs are shared in: CompVis keys (``encoder.down.0.block.0...``), bare or under the prefix a whole
checkpoint gives them (``first_stage_model.``, ``vae.``), or diffusers' own keys
(``encoder.down_blocks.0.resnets.0...``); or a diffusers ``AutoencoderKL`` folder. A single file has no
config: it is built on the model's own VAE config and loaded strictly, so a VAE of another shape is an
error naming the file, never a silently random layer.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

from anyi2v.daemon.pipeline.load_errors import ModelLoadError, first_few
from anyi2v.daemon.pipeline.model_formats import CHECKPOINT_SUFFIXES, load_pretrained, read_checkpoint

__all__ = ["load_vae"]

logger = logging.getLogger(__name__)

_PREFIXES = ("first_stage_model.", "vae.")
_VAE_PARTS = ("encoder.", "decoder.", "quant_conv.", "post_quant_conv.")
_EXPECTED = "expected a VAE file (such as vae-ft-mse-840000-ema-pruned.safetensors) or a diffusers AutoencoderKL folder"


def load_vae(path: Path, reference: Mapping[str, Any], local_only: bool) -> Any:
    """The ``AutoencoderKL`` in ``path`` (a file or a diffusers folder); ``reference`` is the model's own
    VAE config, which a single file is built on. Raises :class:`ModelLoadError` naming ``path``."""
    if path.is_dir():
        vae = load_pretrained(AutoencoderKL, path, local_only)
        latents, expected = vae.config["latent_channels"], reference["latent_channels"]
        if latents != expected:
            raise ModelLoadError(f"{path}: a VAE with {latents} latent channels; the model's has {expected}")
        return vae
    if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
        raise ModelLoadError(f"{path}: {_EXPECTED}")
    state = _diffusers_state(read_checkpoint(path), path, reference)
    vae = AutoencoderKL.from_config(dict(reference))
    _load_strictly(vae, state, path)
    return vae


def _diffusers_state(
    checkpoint: Mapping[str, torch.Tensor], path: Path, reference: Mapping[str, Any]
) -> dict[str, torch.Tensor]:
    """The file's VAE weights under diffusers' names, whichever layout it holds them in."""
    bare = {_unprefixed(key): value for key, value in checkpoint.items()}
    vae_state = {key: value for key, value in bare.items() if key.startswith(_VAE_PARTS)}
    if any(key.startswith(("encoder.down_blocks.", "decoder.up_blocks.")) for key in vae_state):
        return vae_state  # diffusers' own names already
    if not any(key.startswith(("encoder.down.", "decoder.up.")) for key in vae_state):
        raise ModelLoadError(f"{path}: no VAE weights (encoder.* and decoder.* keys); {_EXPECTED}")
    try:
        converted: dict[str, torch.Tensor] = convert_ldm_vae_checkpoint(vae_state, dict(reference))
    except Exception as error:
        raise ModelLoadError(
            f"{path}: the VAE weights could not be converted for the model's VAE ({type(error).__name__}: {error})"
        ) from error
    return converted


def _unprefixed(key: str) -> str:
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def _load_strictly(vae: torch.nn.Module, state: Mapping[str, torch.Tensor], path: Path) -> None:
    own = vae.state_dict()
    misshapen = [key for key, value in state.items() if key in own and own[key].shape != value.shape]
    missing = [key for key in own if key not in state]
    if misshapen or missing:
        problems = [f"{len(misshapen)} weights of another shape ({first_few(misshapen)})"] if misshapen else []
        problems += [f"{len(missing)} weights missing ({first_few(missing)})"] if missing else []
        raise ModelLoadError(f"{path}: this VAE does not fit the model's (SD 1.5 AutoencoderKL): {'; '.join(problems)}")
    unused = [key for key in state if key not in own]
    if unused:
        logger.warning("%s: %d weights unused by the VAE (%s)", path, len(unused), first_few(unused))
    vae.load_state_dict({key: value for key, value in state.items() if key in own})
