"""Loading SD 1.5 + AnimateDiff weights from local files, with no download.

:func:`load_models` turns what an artist has on disk into a :class:`~anyi2v.daemon.pipeline.models.Models`:

* **A diffusers SD 1.5 folder** (``unet/`` holding a ``UNet2DConditionModel``, ``vae/``, ``text_encoder/``,
  ``tokenizer/``; ``model_index.json`` and ``scheduler/`` are optional) plus motion modules: either
  ``motion_adapter=`` (a diffusers ``MotionAdapter`` folder, or a single ``.safetensors``/``.ckpt`` motion
  module in the original AnimateDiff layout such as ``mm_sd_v15_v2.ckpt``) or a ``motion_adapter/``
  folder inside the model folder.
* **A folder whose** ``unet/`` **is already a** ``UNetMotionModel`` (``AnimateDiffPipeline.save_pretrained``
  writes these). ``motion_adapter=`` is optional there: given, its motion modules replace the folder's.
* **A single SD 1.5 checkpoint** (``.safetensors``, or ``.ckpt`` read with ``weights_only=True``) in the
  original CompVis / A1111 layout, as community fine-tunes are shared, plus ``motion_adapter=``. Its keys
  are converted with diffusers' single-file converters against the SD 1.5 configs shipped in
  ``configs/sd15/`` (or ``config_dir=``), and loaded strictly: a missing or misshapen weight is an error,
  never a silently random layer. A single file carries no tokenizer, and the CLIP vocabulary is not
  shipped, so its tokenizer comes from ``tokenizer=`` (any SD 1.5 ``tokenizer/`` folder, which holds
  ``vocab.json`` and ``merges.txt``), else from ``<config_dir>/tokenizer/`` when that exists, else, only with
  ``allow_network=True``, from the Hub (``openai/clip-vit-large-patch14``); otherwise
  :class:`ModelLoadError` says so.

A single-file motion module has no config: its architecture (channels, layers per block, mid block, frame
count of the position encoding) is read from its weights, the rest (attention heads, norm groups) from
``<config_dir>/motion_adapter/config.json`` (shipped: AnimateDiff's 8 heads, 32 groups).

The scheduler is always a ``DDIMScheduler`` built from :data:`ANIMATEDIFF_SCHEDULER`; a folder's own
``scheduler/`` is not read (SD 1.5 folders ship PNDM, which AnimateDiff does not use).

LoRA files (``loras=[(path, weight), ...]``, kohya/A1111 or diffusers format) are loaded through diffusers'
PEFT integration into the UNet and, where the file has such keys, the text encoder, then fused into the
weights and unloaded, so they cost nothing at run time. They need the ``peft`` package; without it a
request for LoRAs raises :class:`ModelLoadError`.

Nothing is downloaded unless ``allow_network=True``: every diffusers / transformers call gets
``local_files_only=True`` and sources are always local paths. No global setting is changed. Every failure
(missing path, missing part, unreadable or mismatched weights, a UNet without the layers AnyI2V hooks) is a
:class:`ModelLoadError` naming the file or folder and what was expected.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    MotionAdapter,
    UNet2DConditionModel,
    UNetMotionModel,
)
from diffusers.loaders.single_file_utils import (
    convert_animatediff_checkpoint_to_diffusers,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from anyi2v.daemon.pipeline.models import ANIMATEDIFF_SCHEDULER, Models

__all__ = [
    "HUB_TOKENIZER",
    "REQUIRED_UNET_LAYERS",
    "SD15_CONFIG_DIR",
    "ModelLoadError",
    "check_unet_layers",
    "load_models",
    "resolve_device",
    "resolve_dtype",
]

logger = logging.getLogger(__name__)

PathArg = str | os.PathLike[str]

SD15_CONFIG_DIR = Path(__file__).parent / "configs" / "sd15"
"""SD 1.5 (and AnimateDiff motion adapter) configs shipped with the package, for single-file checkpoints."""

HUB_TOKENIZER = "openai/clip-vit-large-patch14"
"""Where SD 1.5's tokenizer is fetched from for a single-file checkpoint, only with ``allow_network=True``."""

REQUIRED_UNET_LAYERS = (
    "up_blocks.1.attentions.0.transformer_blocks.0.attn1",
    "up_blocks.1.attentions.1.transformer_blocks.0.attn1",
    "up_blocks.2.attentions.0.transformer_blocks.0.attn1",
    "up_blocks.2.attentions.1.transformer_blocks.0.attn1",
    "up_blocks.1.resnets.0",
    "up_blocks.1.resnets.1",
    "up_blocks.2.resnets.0",
    "up_blocks.2.resnets.1",
)
"""UNet modules whose features AnyI2V reads and replaces."""

_FOLDER_PARTS = ("unet", "vae", "text_encoder", "tokenizer")
_FOLDER_HINT = "a diffusers SD 1.5 folder has unet/, vae/, text_encoder/, tokenizer/"
_ADAPTER_HINT = (
    "pass motion_adapter=<a diffusers MotionAdapter folder, or an AnimateDiff motion module .safetensors/.ckpt>"
)
_CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
_WEIGHT_STEMS = ("diffusion_pytorch_model", "model", "pytorch_model")
_VARIANT = re.compile(r"^(?:diffusion_pytorch_model|model|pytorch_model)\.(\w+)\.(?:safetensors|bin)$")

# Keys of the original (CompVis / A1111) SD layout.
_LDM_UNET = "model.diffusion_model."
_LDM_VAE = "first_stage_model."
_LDM_CLIP = "cond_stage_model.transformer."

_DTYPES: dict[str, torch.dtype] = {
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp32": torch.float32,
    "float32": torch.float32,
    "float": torch.float32,
}


class ModelLoadError(ValueError):
    """Weights could not be loaded; the message names the file or folder and what was expected."""


# --- device and dtype ----------------------------------------------------------------------------------


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` is CUDA when available, else the CPU; strings are anything ``torch.device`` reads."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as error:
        raise ModelLoadError(f"device {device!r}: not a torch device ({error})") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r}: CUDA is not available on this machine; use 'cpu'")
    return resolved


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``None`` is float16 on CUDA and float32 elsewhere; strings: fp16/float16/half, bf16/bfloat16,
    fp32/float32/float (a ``torch.`` prefix is allowed)."""
    if dtype is None:
        return torch.float16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in _DTYPES.values():
            raise ModelLoadError(f"dtype {dtype}: expected float16, bfloat16 or float32")
        return dtype
    name = dtype.strip().lower().removeprefix("torch.")
    if name not in _DTYPES:
        raise ModelLoadError(f"dtype {dtype!r}: expected one of {', '.join(sorted(_DTYPES))}")
    return _DTYPES[name]


# --- the entry point -----------------------------------------------------------------------------------


@dataclass
class _Parts:
    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    kind: str
    inputs: list[Path]


def load_models(
    source: PathArg,
    *,
    motion_adapter: PathArg | None = None,
    loras: Sequence[tuple[PathArg, float]] = (),
    tokenizer: PathArg | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    allow_network: bool = False,
    config_dir: PathArg | None = None,
) -> Models:
    """Load SD 1.5 + AnimateDiff weights from ``source`` (see the module docstring for what it may be).

    ``motion_adapter``: a diffusers ``MotionAdapter`` folder or an original AnimateDiff motion module file;
    required unless ``source``'s UNet already has motion modules. ``loras``: ``(file, weight)`` pairs,
    fused into the weights. ``tokenizer``: a CLIP tokenizer folder, replacing the source's (needed for a
    single-file checkpoint). ``device``/``dtype``: see :func:`resolve_device` and :func:`resolve_dtype`.
    ``config_dir``: SD 1.5 configs for single files (default: the shipped :data:`SD15_CONFIG_DIR`).
    ``allow_network``: let diffusers/transformers reach the Hub (off: ``local_files_only=True``).
    """
    target_device = resolve_device(device)
    target_dtype = resolve_dtype(dtype, target_device)
    local_only = not allow_network
    src = _existing(source, "model source")
    configs = Path(config_dir).expanduser() if config_dir is not None else SD15_CONFIG_DIR
    adapter = _existing(motion_adapter, "motion adapter") if motion_adapter is not None else None
    tokenizer_dir = _existing(tokenizer, "tokenizer") if tokenizer is not None else None
    lora_files = _check_loras(loras)

    if src.is_dir():
        parts = _load_folder(src, adapter, tokenizer_dir, configs, local_only)
    else:
        parts = _load_single_file(src, adapter, tokenizer_dir, configs, local_only)

    _check_fit(parts, src)
    check_unet_layers(parts.unet, src)
    scheduler = DDIMScheduler(**ANIMATEDIFF_SCHEDULER)
    identity = _identity(parts.kind, src, parts.inputs, lora_files)
    models = Models(parts.unet, parts.vae, parts.text_encoder, parts.tokenizer, scheduler, identity)
    if lora_files:
        _fuse_loras(models, lora_files, local_only)
    return models.to(target_device, target_dtype)


def check_unet_layers(unet: torch.nn.Module, where: PathArg) -> None:
    """Raise :class:`ModelLoadError` unless ``unet`` has every module of :data:`REQUIRED_UNET_LAYERS`."""
    names = {name for name, _ in unet.named_modules()}
    missing = [name for name in REQUIRED_UNET_LAYERS if name not in names]
    if missing:
        raise ModelLoadError(
            f"{where}: the UNet lacks layers AnyI2V needs (SD 1.5 + AnimateDiff layout expected): {', '.join(missing)}"
        )


# --- sources -------------------------------------------------------------------------------------------


def _existing(path: PathArg, what: str) -> Path:
    resolved = Path(path).expanduser()
    if not resolved.exists():
        raise ModelLoadError(f"{resolved}: {what} not found")
    return resolved.resolve()


def _load_folder(
    src: Path, adapter: Path | None, tokenizer_dir: Path | None, configs: Path, local_only: bool
) -> _Parts:
    needed = [part for part in _FOLDER_PARTS if not (part == "tokenizer" and tokenizer_dir is not None)]
    missing = [part for part in needed if not (src / part).is_dir()]
    if missing:
        listed = ", ".join(f"{part}/" for part in missing)
        raise ModelLoadError(f"{src / missing[0]}: not found ({listed} missing); {_FOLDER_HINT}")
    if (src / "text_encoder_2").is_dir():
        raise ModelLoadError(f"{src}: an SD XL folder (it has text_encoder_2/); only SD 1.5 is supported")

    unet_dir = src / "unet"
    unet_class = _read_config(unet_dir / "config.json").get("_class_name")
    inputs = [src / part for part in needed]
    if tokenizer_dir is not None:
        inputs.append(tokenizer_dir)
    if unet_class == "UNetMotionModel":
        unet = _from_pretrained(UNetMotionModel, unet_dir, local_only)
        kind = "motion-folder"
        if adapter is not None:
            _replace_motion_modules(unet, unet_dir, _load_adapter(adapter, configs, local_only), adapter)
            inputs.append(adapter)
            if adapter.is_file():
                inputs.append(configs / "motion_adapter")
    elif unet_class == "UNet2DConditionModel":
        if adapter is None and (src / "motion_adapter").is_dir():
            adapter = src / "motion_adapter"
        if adapter is None:
            raise ModelLoadError(
                f"{unet_dir}: a 2D SD 1.5 UNet (UNet2DConditionModel) needs AnimateDiff motion modules; {_ADAPTER_HINT}"
            )
        unet2d = _from_pretrained(UNet2DConditionModel, unet_dir, local_only)
        unet = _combine(unet2d, unet_dir, _load_adapter(adapter, configs, local_only), adapter)
        kind = "sd15-folder"
        inputs.append(adapter)
        if adapter.is_file():  # its config comes partly from the config folder
            inputs.append(configs / "motion_adapter")
    else:
        raise ModelLoadError(
            f"{unet_dir / 'config.json'}: _class_name is {unet_class!r}; "
            "expected UNet2DConditionModel or UNetMotionModel"
        )
    if unet.config.get("addition_embed_type") is not None:
        raise ModelLoadError(f"{unet_dir}: an SD XL UNet (addition_embed_type is set); only SD 1.5 is supported")
    vae = _from_pretrained(AutoencoderKL, src / "vae", local_only)
    text_encoder = _from_pretrained(CLIPTextModel, src / "text_encoder", local_only)
    tok = _load_tokenizer(tokenizer_dir if tokenizer_dir is not None else src / "tokenizer", local_only)
    return _Parts(unet, vae, text_encoder, tok, kind, inputs)


def _load_single_file(
    src: Path, adapter: Path | None, tokenizer_dir: Path | None, configs: Path, local_only: bool
) -> _Parts:
    if src.suffix.lower() not in _CHECKPOINT_SUFFIXES:
        raise ModelLoadError(
            f"{src}: expected a diffusers SD 1.5 folder or a single .safetensors/.ckpt SD 1.5 checkpoint"
        )
    checkpoint = _read_checkpoint(src)
    _check_sd15_checkpoint(checkpoint, src)
    if adapter is None:
        raise ModelLoadError(f"{src}: a single-file SD 1.5 checkpoint has no motion modules; {_ADAPTER_HINT}")
    unet_config = _read_config(configs / "unet" / "config.json")
    vae_config = _read_config(configs / "vae" / "config.json")
    text_config_file = configs / "text_encoder" / "config.json"
    _read_config(text_config_file)

    unet2d = _build(UNet2DConditionModel.from_config, unet_config, configs / "unet")
    _convert_and_load(unet2d, lambda: convert_ldm_unet_checkpoint(checkpoint, unet_config), src, "UNet", configs)
    vae = _build(AutoencoderKL.from_config, vae_config, configs / "vae")
    _convert_and_load(vae, lambda: convert_ldm_vae_checkpoint(checkpoint, vae_config), src, "VAE", configs)
    text_encoder = _build(
        lambda path: CLIPTextModel(CLIPTextConfig.from_json_file(str(path))), text_config_file, text_config_file
    )
    _convert_and_load(text_encoder, lambda: _ldm_clip_state(checkpoint, text_encoder), src, "text encoder", configs)

    unet = _combine(unet2d, src, _load_adapter(adapter, configs, local_only), adapter)
    tok, tokenizer_input = _single_file_tokenizer(src, tokenizer_dir, configs, local_only)
    inputs = [src, adapter, configs]
    if tokenizer_input is not None:
        inputs.append(tokenizer_input)
    return _Parts(unet, vae, text_encoder, tok, "sd15-file", inputs)


def _check_sd15_checkpoint(checkpoint: Mapping[str, torch.Tensor], src: Path) -> None:
    keys = list(checkpoint)
    if any(".motion_modules." in key for key in keys) and not any(key.startswith(_LDM_UNET) for key in keys):
        raise ModelLoadError(
            f"{src}: this is an AnimateDiff motion module, not an SD 1.5 model; pass it as motion_adapter="
        )
    if any(key.startswith("conditioner.embedders.") for key in keys):
        raise ModelLoadError(f"{src}: an SD XL checkpoint; only SD 1.5 is supported")
    if any(key.startswith("cond_stage_model.model.") for key in keys):
        raise ModelLoadError(f"{src}: an SD 2.x checkpoint (OpenCLIP text encoder); only SD 1.5 is supported")
    for prefix, part in ((_LDM_UNET, "UNet"), (_LDM_VAE, "VAE"), (_LDM_CLIP, "CLIP text encoder")):
        if not any(key.startswith(prefix) for key in keys):
            raise ModelLoadError(
                f"{src}: no {part} weights ({prefix}* keys); expected an SD 1.5 checkpoint in the original "
                "CompVis/A1111 layout with UNet, VAE and text encoder"
            )


def _ldm_clip_state(checkpoint: Mapping[str, torch.Tensor], text_encoder: torch.nn.Module) -> dict[str, torch.Tensor]:
    state = {key.removeprefix(_LDM_CLIP): value for key, value in checkpoint.items() if key.startswith(_LDM_CLIP)}
    if not hasattr(text_encoder, "text_model"):  # transformers >= 5.6 flattened CLIPTextModel
        state = {key.removeprefix("text_model."): value for key, value in state.items()}
    # Older checkpoints store the position ids buffer, which transformers computes.
    return {key: value for key, value in state.items() if not key.endswith("position_ids")}


def _single_file_tokenizer(
    src: Path, tokenizer_dir: Path | None, configs: Path, local_only: bool
) -> tuple[Any, Path | None]:
    if tokenizer_dir is not None:
        return _load_tokenizer(tokenizer_dir, local_only), tokenizer_dir
    if (configs / "tokenizer").is_dir():
        return _load_tokenizer(configs / "tokenizer", local_only), configs / "tokenizer"
    if not local_only:
        try:
            tok = CLIPTokenizer.from_pretrained(HUB_TOKENIZER, local_files_only=False)
        except Exception as error:
            raise ModelLoadError(f"{HUB_TOKENIZER}: could not fetch the SD 1.5 tokenizer: {error}") from error
        return tok, None
    raise ModelLoadError(
        f"{src}: a single-file checkpoint carries no tokenizer and none is shipped; pass tokenizer=<a CLIP "
        "tokenizer folder with vocab.json and merges.txt, e.g. the tokenizer/ of any SD 1.5 diffusers folder>, "
        f"or allow_network=True to fetch {HUB_TOKENIZER}"
    )


# --- motion modules ------------------------------------------------------------------------------------


def _load_adapter(path: Path, configs: Path, local_only: bool) -> Any:
    if path.is_dir():
        return _from_pretrained(MotionAdapter, path, local_only)
    if path.suffix.lower() not in _CHECKPOINT_SUFFIXES:
        raise ModelLoadError(f"{path}: expected a MotionAdapter folder or a .safetensors/.ckpt motion module")
    checkpoint = _read_checkpoint(path)
    if not any(".motion_modules." in key for key in checkpoint):
        raise ModelLoadError(f"{path}: no motion_modules.* weights; expected an AnimateDiff motion module")
    converted = convert_animatediff_checkpoint_to_diffusers(checkpoint)
    config_file = configs / "motion_adapter" / "config.json"
    config = _read_config(config_file) if config_file.is_file() else {}
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


def _combine(unet2d: Any, unet_where: Path, adapter: Any, adapter_where: Path) -> Any:
    unet_channels = list(unet2d.config["block_out_channels"])
    adapter_channels = list(adapter.config["block_out_channels"])
    if unet_channels != adapter_channels:
        raise ModelLoadError(
            f"{adapter_where}: motion modules for block channels {adapter_channels} do not fit the UNet in "
            f"{unet_where} (channels {unet_channels})"
        )
    try:
        unet = UNetMotionModel.from_unet2d(unet2d, adapter)
    except Exception as error:
        raise ModelLoadError(f"{adapter_where}: motion modules do not fit the UNet in {unet_where}: {error}") from error
    return unet


def _replace_motion_modules(unet: Any, unet_where: Path, adapter: Any, adapter_where: Path) -> None:
    differences = [
        f"{unet_key}: UNet {unet.config[unet_key]!r}, adapter {adapter.config[adapter_key]!r}"
        for unet_key, adapter_key in (
            ("block_out_channels", "block_out_channels"),
            ("layers_per_block", "motion_layers_per_block"),
            ("use_motion_mid_block", "use_motion_mid_block"),
            ("motion_max_seq_length", "motion_max_seq_length"),
        )
        if _normalised(unet.config[unet_key], len(unet.config["block_out_channels"]))
        != _normalised(adapter.config[adapter_key], len(adapter.config["block_out_channels"]))
    ]
    if differences:
        raise ModelLoadError(
            f"{adapter_where}: motion modules do not fit the UNetMotionModel in {unet_where}: {'; '.join(differences)}"
        )
    try:
        unet.load_motion_modules(adapter)
    except Exception as error:
        raise ModelLoadError(f"{adapter_where}: motion modules do not fit the UNet in {unet_where}: {error}") from error


def _normalised(value: object, blocks: int) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        return [value] * blocks
    if isinstance(value, list | tuple):
        return list(value)
    return value


# --- reading weights -----------------------------------------------------------------------------------


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ModelLoadError(f"{path}: not found; expected a config.json of the model part")
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelLoadError(f"{path}: not a readable JSON config ({error})") from error
    if not isinstance(loaded, dict):
        raise ModelLoadError(f"{path}: expected a JSON object")
    return loaded


def _read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
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


def _from_pretrained(cls: Any, folder: Path, local_only: bool) -> Any:
    name = cls.__name__
    if not folder.is_dir():
        raise ModelLoadError(f"{folder}: not found; expected a {name} folder")
    config = _read_config(folder / "config.json")
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
        problems = [f"{len(missing)} weights missing ({_few(missing)})"] if missing else []
        problems += [f"{len(mismatched)} weights of the wrong shape ({_few(mismatched)})"] if mismatched else []
        raise ModelLoadError(f"{folder}: the weights do not match config.json: {'; '.join(problems)}")
    unexpected = sorted(info.get("unexpected_keys") or ())
    if unexpected:
        logger.warning("%s: %d weights unused by %s (%s)", folder, len(unexpected), name, _few(unexpected))
    return model


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
            f"{src}: {len(missing)} weights of {expected} are not in the file ({_few(missing)}); "
            "the checkpoint and the config do not match"
        )
    if result.unexpected_keys:
        logger.warning("%s: %d weights unused (%s)", src, len(result.unexpected_keys), _few(result.unexpected_keys))


def _load_tokenizer(folder: Path, local_only: bool) -> Any:
    if not folder.is_dir():
        raise ModelLoadError(f"{folder}: not found; expected a CLIP tokenizer folder (vocab.json, merges.txt)")
    try:
        return CLIPTokenizer.from_pretrained(str(folder), local_files_only=local_only)
    except Exception as error:
        raise ModelLoadError(
            f"{folder}: not a CLIP tokenizer folder (vocab.json, merges.txt): {type(error).__name__}: {error}"
        ) from error


def _check_fit(parts: _Parts, src: Path) -> None:
    """Parts that load one by one but could not run together."""
    hidden = int(parts.text_encoder.config.hidden_size)
    cross = parts.unet.config["cross_attention_dim"]
    if cross != hidden:
        raise ModelLoadError(
            f"{src}: the UNet attends to {cross}-wide text features but the text encoder gives {hidden}; "
            "they are not parts of one SD 1.5 model"
        )
    vocabulary = int(parts.text_encoder.config.vocab_size)
    if len(parts.tokenizer) > vocabulary:
        raise ModelLoadError(
            f"{src}: the tokenizer has {len(parts.tokenizer)} tokens but the text encoder embeds {vocabulary}; "
            "they do not belong together"
        )
    if parts.unet.config["in_channels"] != parts.vae.config["latent_channels"]:
        raise ModelLoadError(
            f"{src}: the UNet takes {parts.unet.config['in_channels']} channels but the VAE makes "
            f"{parts.vae.config['latent_channels']}; inpainting and other variants are not supported"
        )


def _few(keys: Iterable[object], count: int = 5) -> str:
    listed = [str(key) for key in keys]
    return ", ".join(listed[:count]) + (", …" if len(listed) > count else "")


# --- LoRA ----------------------------------------------------------------------------------------------


def _peft_available() -> bool:
    return importlib.util.find_spec("peft") is not None


def _check_loras(loras: Sequence[tuple[PathArg, float]]) -> list[tuple[Path, float]]:
    checked: list[tuple[Path, float]] = []
    for entry in loras:
        try:
            path, weight = entry
            number = float(weight)
        except (TypeError, ValueError) as error:
            raise ModelLoadError(f"loras: {entry!r} is not a (path, weight) pair") from error
        file = _existing(path, "LoRA file")
        if not file.is_file() or file.suffix.lower() not in _CHECKPOINT_SUFFIXES:
            raise ModelLoadError(f"{file}: expected a LoRA .safetensors (or .ckpt/.bin) file")
        checked.append((file, number))
    if checked and not _peft_available():
        raise ModelLoadError(
            f"{checked[0][0]}: LoRA files are loaded through diffusers' PEFT integration, which needs the peft "
            "package: pip install peft"
        )
    return checked


def _fuse_loras(models: Models, loras: Sequence[tuple[Path, float]], local_only: bool) -> None:
    """Load each LoRA as a PEFT adapter, fuse all at their weights into the UNet and text encoder, unload."""
    from diffusers import AnimateDiffPipeline  # a holder for diffusers' LoRA loading; imported only when used

    holder = AnimateDiffPipeline(
        vae=models.vae,
        text_encoder=models.text_encoder,
        tokenizer=models.tokenizer,
        unet=models.unet,
        motion_adapter=None,
        scheduler=models.scheduler,
    )
    names = [f"anyi2v_lora_{index}" for index in range(len(loras))]
    for name, (path, _) in zip(names, loras, strict=True):
        try:
            holder.load_lora_weights(
                str(path.parent), weight_name=path.name, adapter_name=name, local_files_only=local_only
            )
        except Exception as error:
            raise ModelLoadError(
                f"{path}: not a LoRA for this SD 1.5 UNet / text encoder ({type(error).__name__}: {error})"
            ) from error
    try:
        holder.set_adapters(names, adapter_weights=[weight for _, weight in loras])
        holder.fuse_lora(components=["unet", "text_encoder"], lora_scale=1.0, adapter_names=names)
        holder.unload_lora_weights()
    except Exception as error:
        files = ", ".join(str(path) for path, _ in loras)
        raise ModelLoadError(f"{files}: the LoRAs could not be fused ({type(error).__name__}: {error})") from error


# --- identity ------------------------------------------------------------------------------------------


def _identity(kind: str, src: Path, inputs: Iterable[Path], loras: Sequence[tuple[Path, float]]) -> str:
    """Resolved paths, sizes and modification times of every file read (no file content is hashed)."""
    digest = hashlib.sha256(kind.encode())
    for entry in inputs:
        if not entry.exists():
            continue
        files = sorted(p for p in entry.rglob("*") if p.is_file()) if entry.is_dir() else [entry]
        for file in files:
            stat = file.stat()
            digest.update(f"\n{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    for path, weight in loras:
        stat = path.stat()
        digest.update(f"\nlora|{path}|{stat.st_size}|{stat.st_mtime_ns}|{weight!r}".encode())
    return f"{kind}:{src.name}:{digest.hexdigest()[:20]}"


def load_named_models(
    model: str | None,
    *,
    motion_adapter: str | None = None,
    tokenizer: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
) -> Models:
    """The models a user names: a folder or checkpoint path, ``toy-world`` (also when ``model`` is
    None), ``tiny-random`` or ``sd15-random``; raises :class:`ModelLoadError` or ``ValueError``."""
    from anyi2v.daemon import SD15_RANDOM, TINY_RANDOM, TOY_WORLD
    from anyi2v.daemon.pipeline.models import random_models
    from anyi2v.daemon.toyworld import WEIGHTS

    if model in (TINY_RANDOM, SD15_RANDOM):
        resolved = resolve_device(device)
        return random_models("tiny" if model == TINY_RANDOM else "sd15", seed=0).to(
            resolved, resolve_dtype(dtype, resolved)
        )
    return load_models(
        WEIGHTS if model in (None, TOY_WORLD) else model,
        motion_adapter=motion_adapter,
        tokenizer=tokenizer,
        device=device,
        dtype=dtype,
    )
