"""Single files to diffusers models, offline: SD 1.5 checkpoints and AnimateDiff motion modules.

A single SD 1.5 checkpoint in the original CompVis / A1111 layout is converted with diffusers' single-file
converters against the SD 1.5 configs shipped in ``configs/sd15/`` (or another config folder) and loaded
strictly; an original AnimateDiff motion module gets its architecture from its weights and the rest from
``<configs>/motion_adapter/config.json``. A single file carries no tokenizer: it comes from a folder given,
else the config folder's ``tokenizer/`` (the shipped configs hold CLIP ViT-L/14's, SD 1.5's own; see
``configs/sd15/tokenizer/README.md``), else, only when the network is allowed, the Hub.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, MotionAdapter, UNet2DConditionModel
from diffusers.loaders.single_file_utils import (
    convert_animatediff_checkpoint_to_diffusers,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from anyi2v.daemon.pipeline.load_errors import PYTHON_OPTIONS, ModelLoadError, OptionNames, first_few
from anyi2v.daemon.pipeline.model_formats import (
    CHECKPOINT_SUFFIXES,
    LDM_CLIP,
    load_pretrained,
    load_tokenizer,
    read_checkpoint,
    read_config,
)

__all__ = [
    "HUB_TOKENIZER",
    "SD15_CONFIG_DIR",
    "convert_sd15_checkpoint",
    "load_motion_adapter",
    "single_file_tokenizer",
]

logger = logging.getLogger(__name__)

SD15_CONFIG_DIR = Path(__file__).parent / "configs" / "sd15"
"""SD 1.5 (and AnimateDiff motion adapter) configs shipped with the package, for single-file checkpoints."""

HUB_TOKENIZER = "openai/clip-vit-large-patch14"
"""Where SD 1.5's tokenizer is fetched from for a single-file checkpoint, only with ``allow_network=True`` and a
config folder with no ``tokenizer/`` (the shipped one has it)."""


def convert_sd15_checkpoint(checkpoint: Mapping[str, torch.Tensor], src: Path, configs: Path) -> tuple[Any, Any, Any]:
    """The UNet (2D), VAE and text encoder of an SD 1.5 checkpoint, built from the configs in ``configs``."""
    unet_config = read_config(configs / "unet" / "config.json")
    vae_config = read_config(configs / "vae" / "config.json")
    text_config_file = configs / "text_encoder" / "config.json"
    read_config(text_config_file)

    unet2d = _build(UNet2DConditionModel.from_config, unet_config, configs / "unet")
    _convert_and_load(unet2d, lambda: convert_ldm_unet_checkpoint(checkpoint, unet_config), src, "UNet", configs)
    vae = _build(AutoencoderKL.from_config, vae_config, configs / "vae")
    _convert_and_load(vae, lambda: convert_ldm_vae_checkpoint(checkpoint, vae_config), src, "VAE", configs)
    text_encoder = _build(
        lambda path: CLIPTextModel(CLIPTextConfig.from_json_file(str(path))), text_config_file, text_config_file
    )
    _convert_and_load(text_encoder, lambda: _ldm_clip_state(checkpoint, text_encoder), src, "text encoder", configs)
    return unet2d, vae, text_encoder


def _ldm_clip_state(checkpoint: Mapping[str, torch.Tensor], text_encoder: torch.nn.Module) -> dict[str, torch.Tensor]:
    state = {key.removeprefix(LDM_CLIP): value for key, value in checkpoint.items() if key.startswith(LDM_CLIP)}
    if not hasattr(text_encoder, "text_model"):  # transformers >= 5.6 flattened CLIPTextModel
        state = {key.removeprefix("text_model."): value for key, value in state.items()}
    # Older checkpoints store the position ids buffer, which transformers computes.
    return {key: value for key, value in state.items() if not key.endswith("position_ids")}


def single_file_tokenizer(
    src: Path, tokenizer_dir: Path | None, configs: Path, local_only: bool, options: OptionNames = PYTHON_OPTIONS
) -> tuple[Any, Path | None]:
    """The tokenizer for the single file ``src`` and the folder it came from: ``tokenizer_dir``, else
    ``<configs>/tokenizer``, else (only when not ``local_only``) :data:`HUB_TOKENIZER` from the Hub (no folder).
    ``options`` names the options in the message when there is none."""
    if tokenizer_dir is not None:
        return load_tokenizer(tokenizer_dir, local_only), tokenizer_dir
    if (configs / "tokenizer").is_dir():
        return load_tokenizer(configs / "tokenizer", local_only), configs / "tokenizer"
    if not local_only:
        try:
            tok = CLIPTokenizer.from_pretrained(HUB_TOKENIZER, local_files_only=False)
        except Exception as error:
            raise ModelLoadError(f"{HUB_TOKENIZER}: could not fetch the SD 1.5 tokenizer: {error}") from error
        return tok, None
    network = f", or {options.allow_network} to fetch {HUB_TOKENIZER}" if options.allow_network else ""
    raise ModelLoadError(
        f"{src}: a single-file checkpoint carries no tokenizer and the config folder {configs} has no "
        "tokenizer/ (the shipped configs have one); pass "
        + options.given(
            options.tokenizer,
            "<a CLIP tokenizer folder with vocab.json and merges.txt, e.g. the tokenizer/ of any SD 1.5 diffusers "
            "folder>",
        )
        + network
    )


# --- motion modules ------------------------------------------------------------------------------------


def load_motion_adapter(path: Path, configs: Path, local_only: bool) -> Any:
    """A ``MotionAdapter`` from its diffusers folder, or from an original AnimateDiff motion module file
    (converted; its config from :func:`_infer_adapter_config` over ``<configs>/motion_adapter/config.json``)."""
    if path.is_dir():
        return load_pretrained(MotionAdapter, path, local_only)
    if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
        raise ModelLoadError(f"{path}: expected a MotionAdapter folder or a .safetensors/.ckpt motion module")
    checkpoint = read_checkpoint(path)
    if not any(".motion_modules." in key for key in checkpoint):
        raise ModelLoadError(f"{path}: no motion_modules.* weights; expected an AnimateDiff motion module")
    converted = convert_animatediff_checkpoint_to_diffusers(checkpoint)
    config_file = configs / "motion_adapter" / "config.json"
    config = read_config(config_file) if config_file.is_file() else {}
    config.update(_infer_adapter_config(checkpoint, converted, path))
    adapter = _build(MotionAdapter.from_config, config, config_file)
    _load_state(adapter, converted, path, f"an AnimateDiff motion module ({config_file} + shapes in the file)")
    return adapter


def _infer_adapter_config(
    original: Mapping[str, torch.Tensor], converted: Mapping[str, torch.Tensor], path: Path
) -> dict[str, Any]:
    """What a motion module's weights tell of its MotionAdapter config."""
    channels: list[int] = []
    while f"down_blocks.{len(channels)}.motion_modules.0.proj_in.weight" in converted:
        channels.append(int(converted[f"down_blocks.{len(channels)}.motion_modules.0.proj_in.weight"].shape[0]))
    if not channels:
        raise ModelLoadError(
            f"{path}: no down_blocks.0.motion_modules.0 weights; expected an AnimateDiff motion module"
        )
    pattern = re.compile(r"^down_blocks\.0\.motion_modules\.(\d+)\.")
    layers = {int(match.group(1)) for key in converted if (match := pattern.match(key))}
    inferred: dict[str, Any] = {
        "block_out_channels": channels,
        "motion_layers_per_block": max(layers) + 1,
        "use_motion_mid_block": any(key.startswith("mid_block.motion_modules.") for key in converted),
        "conv_in_channels": None,
    }
    encodings = [value for key, value in original.items() if key.endswith(("pos_encoder.pe", "pos_embed.pe"))]
    if encodings and encodings[0].ndim == 3:
        inferred["motion_max_seq_length"] = int(encodings[0].shape[1])
    return inferred


# --- strict loading ------------------------------------------------------------------------------------


def _build(factory: Any, config: Any, where: Path) -> Any:
    try:
        return factory(config)
    except Exception as error:
        raise ModelLoadError(f"{where}: not a valid config ({type(error).__name__}: {error})") from error


def _convert_and_load(model: torch.nn.Module, convert: Any, src: Path, part: str, configs: Path) -> None:
    try:
        state = convert()
    except Exception as error:
        raise ModelLoadError(
            f"{src}: the {part} weights could not be converted with the configs in {configs} "
            f"({type(error).__name__}: {error}); expected an SD 1.5 checkpoint"
        ) from error
    _load_state(model, state, src, f"the SD 1.5 {part} configured in {configs}")


def _load_state(model: torch.nn.Module, state: Mapping[str, Any], src: Path, expected: str) -> None:
    """Load ``state`` into ``model``: a missing or misshapen weight is an error (a position-encoding buffer
    that the model computes itself may be missing)."""
    tensors = {key: value for key, value in state.items() if isinstance(value, torch.Tensor)}
    try:
        result = model.load_state_dict(tensors, strict=False)
    except RuntimeError as error:
        raise ModelLoadError(f"{src}: the weights do not fit {expected}: {error}") from error
    missing = [key for key in result.missing_keys if not key.endswith("pos_embed.pe")]
    if missing:
        raise ModelLoadError(
            f"{src}: {len(missing)} weights of {expected} are not in the file ({first_few(missing)}); "
            "the checkpoint and the config do not match"
        )
    if result.unexpected_keys:
        logger.warning(
            "%s: %d weights unused (%s)", src, len(result.unexpected_keys), first_few(result.unexpected_keys)
        )
