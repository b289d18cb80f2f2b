"""What a model is, from its tensors' names and shapes, or from a diffusers folder's configs.

Pure functions over what :mod:`model_headers` reads (no torch): the kind (checkpoint, motion module,
motion LoRA, LoRA, VAE), the family (SD 1.5; SD 2.x, SD XL and others are unsupported, with the reason),
a motion module's AnimateDiff version and frame limit, a LoRA's format. What tells them apart:

* **Checkpoints** (CompVis / A1111 single files, ``model.diffusion_model.*``): the text encoder's keys:
  ``cond_stage_model.transformer.*`` (CLIP ViT-L) is SD 1.x, ``cond_stage_model.model.*`` (OpenCLIP) is
  SD 2.x, ``conditioner.embedders.*`` is SD XL; ``joint_blocks`` is SD 3, ``double_blocks`` Flux,
  ``time_stack`` Stable Video Diffusion. The UNet's cross-attention input width (``attn2.to_k``: 768 for
  SD 1.5, 1024 for SD 2.x, 2048 for SD XL) and its input channels (9: inpainting) are checked too.
* **Motion modules** (``*.motion_modules.*``, no UNet): four down blocks are SD 1.5, three SD XL
  (``temporal_attentions.*`` is HotshotXL, also SD XL). The position encoding (``pos_encoder.pe``, shape
  ``(1, frames, channels)``) gives the frame limit; AnimateDiff v1 has no mid-block motion module and 24
  positions, v2 a mid block and 32, v3 no mid block and 32; AnimateLCM has no stored position encoding
  at all (its frame limit is then the shipped adapter config's, which the loader uses). A ``conv_in``
  (PIA's image channels) is not supported.
* **LoRAs** (``lora_down``/``lora_up``, ``lora_A``/``lora_B``, ``*_lora.down``, LyCORIS ``hada``/``lokr``):
  a motion LoRA targets ``motion_modules``; the format is ``kohya`` (``lora_unet_*``/``lora_te*``) or
  ``diffusers``; the family comes from ``lora_te1_``/``lora_te2_``/``text_encoder_2`` (SD XL), else the
  input width of a cross-attention ``to_k``/``to_v`` or of the text encoder, else kohya's metadata.
* **VAEs** (``encoder.conv_in``, ``decoder.conv_in``, optionally under ``first_stage_model.``/``vae.``):
  4 latent channels fit SD 1.5 (the SD XL VAE has the same layout and cannot be told apart by its keys).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, cast

from anyi2v.daemon.pipeline.load_errors import first_few
from anyi2v.daemon.pipeline.model_headers import TensorInfo

__all__ = [
    "FAMILY_NAMES",
    "KINDS",
    "Kind",
    "Recognition",
    "recognise_folder",
    "recognise_tensors",
    "shipped_frame_limit",
]

Kind = Literal["checkpoint", "motion_module", "motion_lora", "lora", "vae", "unknown"]
KINDS: tuple[Kind, ...] = ("checkpoint", "motion_module", "motion_lora", "lora", "vae", "unknown")
"""Every kind, in the order a library lists them."""

FAMILY_NAMES = {
    "sd15": "SD 1.5",
    "sd2": "SD 2.x",
    "sdxl": "SD XL",
    "sd3": "SD 3",
    "flux": "Flux",
    "svd": "Stable Video Diffusion",
}
_KIND_WORDS = {
    "checkpoint": "checkpoint",
    "motion_module": "motion module",
    "motion_lora": "motion LoRA",
    "lora": "LoRA",
    "vae": "VAE",
    "unknown": "model",
}
_CONTEXT_FAMILIES = {768: "sd15", 1024: "sd2", 2048: "sdxl"}  # cross-attention input width: the text encoder's
_TEXT_FAMILIES = {768: "sd15", 1024: "sd2"}  # the one text encoder's width (CLIP ViT-L, OpenCLIP ViT-H)

# The original (CompVis / A1111) layout: the same prefixes as model_formats.LDM_* (which imports torch).
LDM_UNET = "model.diffusion_model."
LDM_VAE = "first_stage_model."
LDM_CLIP = "cond_stage_model.transformer."

_SHIPPED_ADAPTER_CONFIG = Path(__file__).parent / "configs" / "sd15" / "motion_adapter" / "config.json"

_LORA = re.compile(
    r"(\.lora_(down|up)\.weight|\.lora_[AB](\.\w+)?\.weight|\.lora\.(down|up)\.weight|_lora\.(down|up)\.weight"
    r"|\.lora_linear_layer\.(down|up)\.weight|\.(hada_w[12]_[ab]|lokr_w[12](_[ab])?))$"
)
_LORA_DOWN = re.compile(r"(\.lora_down|\.lora_A(\.\w+)?|\.lora\.down|_lora\.down|\.lora_linear_layer\.down)\.weight$")
_BLOCK = re.compile(r"(?:^|\.)(?:down|up)_blocks\.(\d+)\.")


@dataclass(frozen=True)
class Recognition:
    """What a file or folder is. ``problem`` says why it cannot be used (an unsupported family, a missing
    part, a variant AnyI2V does not run), or is None."""

    kind: Kind
    family: str | None = None
    version: str | None = None
    frame_limit: int | None = None
    lora_format: str | None = None
    problem: str | None = None


def unsupported(kind: Kind, family: str | None) -> str | None:
    """Why a ``kind`` of ``family`` cannot be used (None for SD 1.5 and for an unknown family)."""
    if family is None or family == "sd15":
        return None
    if family not in FAMILY_NAMES:
        return f"{_KIND_WORDS[kind]} of another model family: AnyI2V runs on SD 1.5 only"
    return f"{FAMILY_NAMES[family]} {_KIND_WORDS[kind]}: AnyI2V runs on SD 1.5 only"


def _found(kind: Kind, family: str | None, problem: str | None = None, **details: Any) -> Recognition:
    """A recognition whose problem is, first, its family's (when unsupported), else ``problem``."""
    return Recognition(kind, family, problem=unsupported(kind, family) or problem, **details)


@cache
def shipped_frame_limit() -> int:
    """The frame limit of the shipped motion adapter config (``motion_max_seq_length``): what the loader gives
    a motion module that stores no position encoding."""
    config = json.loads(_SHIPPED_ADAPTER_CONFIG.read_text(encoding="utf-8"))
    return int(config["motion_max_seq_length"])


# --- tensors --------------------------------------------------------------------------------------------


def recognise_tensors(tensors: Mapping[str, TensorInfo], metadata: Mapping[str, str] | None = None) -> Recognition:
    """What a single file holding ``tensors`` (and ``metadata``, a safetensors file's strings) is."""
    keys = list(tensors)
    if not keys:
        return Recognition("unknown", problem="holds no tensors")
    lora_keys = [key for key in keys if _LORA.search(key)]
    if lora_keys:
        return _lora(tensors, lora_keys, metadata or {})
    if any(key.startswith(LDM_UNET) for key in keys):
        return _checkpoint(tensors)
    if any(".motion_modules." in key or _is_hotshot(key) for key in keys):
        return _motion_module(tensors)
    vae = _vae(tensors)
    if vae is not None:
        return vae
    return Recognition("unknown", problem=_what_else(keys))


def _checkpoint(tensors: Mapping[str, TensorInfo]) -> Recognition:
    keys = list(tensors)
    unet = [key for key in keys if key.startswith(LDM_UNET)]
    width = _width(tensors, (key for key in unet if ".attn2.to_k." in key or ".attn2.to_v." in key))
    if any(".joint_blocks." in key for key in unet):
        family: str | None = "sd3"
    elif any(".double_blocks." in key for key in unet):
        family = "flux"
    elif any(".time_stack." in key or ".time_mixer." in key for key in unet):
        family = "svd"
    elif any(key.startswith("conditioner.embedders.") for key in keys):
        family = "sdxl"
    elif any(key.startswith("cond_stage_model.model.") for key in keys):
        family = "sd2"
    elif any(key.startswith(LDM_CLIP) for key in keys):
        family = "sd15"
    else:  # a UNet alone: its cross-attention width tells
        family = _CONTEXT_FAMILIES.get(width, "other") if width is not None else None
    if family != "sd15":
        problem = (
            None if family is not None else "cannot tell which model this is (no text encoder, no cross-attention)"
        )
        return _found("checkpoint", family, problem)
    return _found("checkpoint", "sd15", _sd15_problem(tensors, width))


def _sd15_problem(tensors: Mapping[str, TensorInfo], width: int | None) -> str | None:
    """Why an SD 1.5-keyed checkpoint cannot run: another text width, a variant's input channels, a part missing."""
    if width is not None and width != 768:
        return f"an SD 1.5 layout with {width}-wide text features where SD 1.5 has 768: not a model AnyI2V can run"
    conv_in = tensors.get(LDM_UNET + "input_blocks.0.0.weight")
    channels = conv_in.shape[1] if conv_in is not None and len(conv_in.shape) == 4 else 4
    if channels == 9:
        return "an SD 1.5 inpainting checkpoint (9 input channels): not supported; use a base SD 1.5 checkpoint"
    if channels != 4:
        return f"an SD 1.5 variant with {channels} input channels (instruct-pix2pix or similar): not supported"
    for prefix, part in ((LDM_VAE, "VAE"), (LDM_CLIP, "CLIP text encoder")):
        if not any(key.startswith(prefix) for key in tensors):
            return (
                f"no {part} weights ({prefix}* keys): a single-file SD 1.5 checkpoint holds UNet, VAE and text "
                "encoder (this may be a UNet extracted from one)"
            )
    return None


def _motion_module(tensors: Mapping[str, TensorInfo]) -> Recognition:
    keys = list(tensors)
    if any(_is_hotshot(key) for key in keys):
        return _found("motion_module", "sdxl", version="HotshotXL")
    family = _block_family(keys)
    encodings = [info for key, info in tensors.items() if key.endswith(("pos_encoder.pe", "pos_embed.pe"))]
    mid_block = any(key.startswith("mid_block.") or ".mid_block." in key for key in keys)
    problem = None
    if "conv_in.weight" in tensors:
        problem = "a PIA motion module (it takes the image as extra input channels): not supported"
    if family is None:
        problem = "motion modules in neither SD 1.5's four blocks nor SD XL's three: cannot tell what they are for"
    if not encodings:
        return _found("motion_module", family, problem, version="AnimateLCM", frame_limit=shipped_frame_limit())
    shape = encodings[0].shape
    frames = shape[1] if len(shape) == 3 else None
    return _found("motion_module", family, problem, version=_version(mid_block, frames), frame_limit=frames)


def _is_hotshot(key: str) -> bool:
    """HotshotXL's temporal layers (an SD XL motion module in its own layout)."""
    return key.startswith("temporal_attentions.") or ".temporal_attentions." in key


def _version(mid_block: bool, frames: int | None) -> str | None:
    """AnimateDiff's version: v2 has a mid-block motion module; v1 (24 positions) and v3 (32) do not."""
    if mid_block:
        return "v2"
    return {24: "v1", 32: "v3"}.get(frames) if frames is not None else None


def _lora(tensors: Mapping[str, TensorInfo], lora_keys: list[str], metadata: Mapping[str, str]) -> Recognition:
    lora_format = "kohya" if any(key.startswith(("lora_unet_", "lora_te")) for key in lora_keys) else "diffusers"
    if any("motion_modules" in key for key in lora_keys):
        version = "v2" if any("mid_block" in key for key in lora_keys) else None
        family = _block_family(lora_keys)
        return _found("motion_lora", family, version=version, lora_format=lora_format)
    return _found("lora", _lora_family(tensors, lora_keys, metadata), lora_format=lora_format)


def _lora_family(tensors: Mapping[str, TensorInfo], lora_keys: list[str], metadata: Mapping[str, str]) -> str | None:
    if any(
        key.startswith(("lora_te1_", "lora_te2_", "text_encoder_2.")) or ".text_encoder_2." in key for key in lora_keys
    ):
        return "sdxl"
    downs = [key for key in lora_keys if _LORA_DOWN.search(key)]
    cross = _width(tensors, (key for key in downs if "attn2" in key and ("to_k" in key or "to_v" in key)))
    if cross is not None:
        return _CONTEXT_FAMILIES.get(cross, "other")
    text = _width(
        tensors, (key for key in downs if key.startswith(("lora_te_", "text_encoder.")) or "text_model" in key)
    )
    if text is not None:
        return _TEXT_FAMILIES.get(text, "other")
    base = (metadata.get("ss_base_model_version", "") + " " + metadata.get("modelspec.architecture", "")).lower()
    for marker, family in (("xl", "sdxl"), ("sd_v2", "sd2"), ("-v2", "sd2"), ("sd_v1", "sd15"), ("-v1", "sd15")):
        if marker in base:
            return family
    return None


def _vae(tensors: Mapping[str, TensorInfo]) -> Recognition | None:
    keys = list(tensors)
    for prefix in (LDM_VAE, "vae."):
        if all(key.startswith(prefix) for key in keys):
            tensors = {key.removeprefix(prefix): info for key, info in tensors.items()}
            break
    decoder = tensors.get("decoder.conv_in.weight")
    if decoder is None or "encoder.conv_in.weight" not in tensors or len(decoder.shape) != 4:
        return None
    channels = decoder.shape[1]
    if channels == 4:
        return _found("vae", "sd15")
    return Recognition("vae", "other", problem=f"a VAE with {channels} latent channels (SD 1.5 has 4): not supported")


def _what_else(keys: list[str]) -> str:
    if any(key.startswith(("string_to_param", "emb_params")) for key in keys) or set(keys) <= {"clip_l", "clip_g"}:
        return "a textual inversion embedding: not used by AnyI2V"
    if any(
        key.startswith("control_model.") or "input_hint_block." in key or "controlnet_cond_embedding." in key
        for key in keys
    ):
        return "a ControlNet: not used by AnyI2V"
    if any(key.startswith(("image_proj.", "ip_adapter.")) for key in keys):
        return "an IP-Adapter: not used by AnyI2V"
    return f"not a model AnyI2V knows (keys such as {first_few(sorted(keys), 3)})"


def _width(tensors: Mapping[str, TensorInfo], keys: Iterable[str]) -> int | None:
    """The input width (second dimension) of the first 2-D weight among ``keys``."""
    for key in keys:
        shape = tensors[key].shape
        if len(shape) == 2:
            return shape[1]
    return None


def _block_family(keys: Iterable[str]) -> str | None:
    """SD 1.5 for motion modules in four UNet blocks (``down_blocks.0..3``), SD XL for three."""
    blocks = [int(match.group(1)) for key in keys if (match := _BLOCK.search(key))]
    return {3: "sd15", 2: "sdxl"}.get(max(blocks)) if blocks else None


# --- diffusers folders ----------------------------------------------------------------------------------

_PIPELINE_PARTS = ("unet", "vae", "text_encoder", "tokenizer")
_PIPELINE_FAMILIES = {
    "StableDiffusionXLPipeline": "sdxl",
    "StableDiffusion3Pipeline": "sd3",
    "FluxPipeline": "flux",
    "StableVideoDiffusionPipeline": "svd",
}
_SD15_PIPELINES = ("StableDiffusionPipeline", "AnimateDiffPipeline")


def recognise_folder(folder: Path) -> Recognition | None:
    """What a diffusers folder is: a whole model (``model_index.json``, or ``unet/config.json``), a motion
    adapter or a VAE (``config.json``); a lone part of a model is unknown; None: not a model folder."""
    if (folder / "model_index.json").is_file() or (folder / "unet" / "config.json").is_file():
        return _pipeline(folder)
    if not (folder / "config.json").is_file():
        return None
    config = _read_json(folder / "config.json")
    if config is None:
        return Recognition("unknown", problem="config.json is not a readable JSON object")
    declared = config.get("_class_name") or (config.get("architectures") or [None])[0]
    weights = any(
        entry.name.startswith(("diffusion_pytorch_model", "model.", "pytorch_model")) for entry in folder.iterdir()
    )
    missing = None if weights else "no weights file (diffusion_pytorch_model.safetensors) beside config.json"
    if declared == "MotionAdapter":
        channels = config.get("block_out_channels") or ()
        family = {4: "sd15", 3: "sdxl"}.get(len(channels))
        frames = int(config.get("motion_max_seq_length", 32))
        version = _version(bool(config.get("use_motion_mid_block")), frames)
        return _found("motion_module", family, missing, version=version, frame_limit=frames)
    if declared == "AutoencoderKL":
        channels = config.get("latent_channels", 4)
        if channels != 4:
            return Recognition(
                "vae", "other", problem=f"a VAE with {channels} latent channels (SD 1.5 has 4): not supported"
            )
        return _found("vae", "sd15", missing)
    if isinstance(declared, str):
        return Recognition(
            "unknown",
            problem=f"a {declared} folder: one part of a diffusers model; put the whole model folder (with "
            "model_index.json) in checkpoints/",
        )
    return None


def _pipeline(folder: Path) -> Recognition:
    index = _read_json(folder / "model_index.json") or {}
    declared = index.get("_class_name")
    unet = _read_json(folder / "unet" / "config.json") or {}
    if (folder / "text_encoder_2").is_dir():
        return _found("checkpoint", "sdxl")
    if isinstance(declared, str) and declared not in _SD15_PIPELINES:
        family = _PIPELINE_FAMILIES.get(declared)
        if family is None:
            return Recognition(
                "checkpoint",
                "other",
                problem=f"a {declared} folder: AnyI2V runs SD 1.5 ({' or '.join(_SD15_PIPELINES)} folders)",
            )
        return _found("checkpoint", family)
    width = unet.get("cross_attention_dim")
    if not isinstance(width, int):
        text = _read_json(folder / "text_encoder" / "config.json") or {}
        width = text.get("hidden_size") if isinstance(text.get("hidden_size"), int) else None
    family = _CONTEXT_FAMILIES.get(width, "other") if isinstance(width, int) else None
    details: dict[str, Any] = {}
    if unet.get("_class_name") == "UNetMotionModel":
        frames = int(unet.get("motion_max_seq_length", 32))
        details = {"version": _version(bool(unet.get("use_motion_mid_block")), frames), "frame_limit": frames}
    problem = None
    missing = [part for part in _PIPELINE_PARTS if not (folder / part).is_dir()]
    if unet.get("in_channels", 4) != 4:
        problem = (
            f"an SD 1.5 variant with {unet.get('in_channels')} input channels (inpainting or similar): not supported"
        )
    elif missing:
        problem = (
            f"no {missing[0]}/ folder: a diffusers SD 1.5 folder has {', '.join(f'{p}/' for p in _PIPELINE_PARTS)}"
        )
    return _found("checkpoint", family, problem, **details)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return cast(dict[str, Any], loaded) if isinstance(loaded, dict) else None
