"""Tiny model files in the real formats, written for tests: what an artist's models folder holds.

Key names, dtypes and file formats are the real ones (the CompVis / A1111 single-file layout, original
AnimateDiff motion modules, kohya LoRAs, AnimateDiff motion LoRAs, a VAE file); the shapes are tiny
wherever nothing reads them, and real where a recogniser does (the text width 768 of SD 1.5, 2048 of
SD XL, the frame count of a motion module's position encoding). The SD 1.5 checkpoint, the motion
modules, the VAE and the LoRA are derived from the seeded tiny models the pipeline tests use, so they
load (:func:`write_configs` writes the config folder a single tiny file loads against).

Files that only need to be recognised are written by :func:`write_safetensors` with realistic shapes and
no data on disk: the header is real and the data region is a hole (a sparse file of zeros), so a
"4 GB" checkpoint costs nothing.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

Parts = tuple[Any, Any, Any, Any]  # UNet2DConditionModel, MotionAdapter, AutoencoderKL, CLIPTextModel

# --- our map from diffusers keys back to the original layouts -------------------------------------------

_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}


def unet_to_ldm(state: dict[str, torch.Tensor], layers: int) -> dict[str, torch.Tensor]:
    """A diffusers SD UNet state dict in the CompVis layout (``model.diffusion_model.*``)."""
    up_with_attention = {
        int(key.split(".")[1]) for key in state if key.startswith("up_blocks.") and ".attentions." in key
    }
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        top = ".".join(parts[:-1])
        if top in _UNET_TOP:
            new = f"{_UNET_TOP[top]}.{parts[-1]}"
        elif parts[0] in ("down_blocks", "up_blocks", "mid_block"):
            if parts[0] == "mid_block":
                kind, index, rest = parts[1], int(parts[2]), parts[3:]
                base = f"middle_block.{index * 2 if kind == 'resnets' else 1}"
            else:
                block, kind, index, rest = int(parts[1]), parts[2], int(parts[3]), parts[4:]
                if parts[0] == "down_blocks":
                    if kind == "downsamplers":
                        base, rest = f"input_blocks.{(block + 1) * (layers + 1)}.0.op", rest[1:]
                    else:
                        base = f"input_blocks.{1 + block * (layers + 1) + index}.{0 if kind == 'resnets' else 1}"
                elif kind == "upsamplers":
                    position = 2 if block in up_with_attention else 1
                    base = f"output_blocks.{block * (layers + 1) + layers}.{position}"
                else:
                    base = f"output_blocks.{block * (layers + 1) + index}.{0 if kind == 'resnets' else 1}"
            if kind == "resnets":
                rest = [_RESNET.get(rest[0], rest[0]), *rest[1:]]
            new = ".".join([base, *rest])
        else:
            raise AssertionError(f"unmapped UNet key {key}")
        out["model.diffusion_model." + new] = value
    return out


def vae_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A diffusers AutoencoderKL state dict in the CompVis layout (``first_stage_model.*``)."""
    up_blocks = 1 + max(int(key.split(".")[2]) for key in state if key.startswith("decoder.up_blocks."))
    attention = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out": "proj_out"}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] in ("quant_conv", "post_quant_conv") or parts[1] in ("conv_in", "conv_out"):
            new = key
        elif parts[1] == "conv_norm_out":
            new = f"{parts[0]}.norm_out.{parts[2]}"
        elif parts[1] in ("down_blocks", "up_blocks"):
            block = int(parts[2]) if parts[1] == "down_blocks" else up_blocks - 1 - int(parts[2])
            name = "down" if parts[1] == "down_blocks" else "up"
            if parts[3] == "resnets":
                tail = ".".join(parts[5:]).replace("conv_shortcut", "nin_shortcut")
                new = f"{parts[0]}.{name}.{block}.block.{parts[4]}.{tail}"
            else:
                new = f"{parts[0]}.{name}.{block}.{'downsample' if name == 'down' else 'upsample'}.conv.{parts[-1]}"
        elif parts[1] == "mid_block" and parts[2] == "resnets":
            new = f"{parts[0]}.mid.block_{int(parts[3]) + 1}.{'.'.join(parts[4:])}"
        elif parts[1] == "mid_block" and parts[2] == "attentions":
            new = f"{parts[0]}.mid.attn_1.{attention[parts[4]]}.{parts[-1]}"
            if value.ndim == 2:  # the original stores these as 1x1 convolutions
                value = value[:, :, None, None]
        else:
            raise AssertionError(f"unmapped VAE key {key}")
        out["first_stage_model." + new] = value
    return out


def clip_to_ldm(text: Any) -> dict[str, torch.Tensor]:
    prefix = (
        "cond_stage_model.transformer." if hasattr(text, "text_model") else "cond_stage_model.transformer.text_model."
    )
    out = {prefix + key: value for key, value in text.state_dict().items()}
    # Real checkpoints carry the position ids buffer, which the loader must ignore.
    out["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(77)[None]
    return out


def adapter_to_original(adapter: Any) -> dict[str, torch.Tensor]:
    """A diffusers MotionAdapter state dict in the original AnimateDiff motion-module layout."""
    out: dict[str, torch.Tensor] = {}
    for key, value in adapter.state_dict().items():
        head, _, tail = key.partition(".motion_modules.")
        index, _, rest = tail.partition(".")
        if rest.endswith("pos_embed.pe"):
            block = rest.removesuffix("pos_embed.pe")
            for attention in (0, 1):
                out[
                    f"{head}.motion_modules.{index}.temporal_transformer.{block}attention_blocks.{attention}.pos_encoder.pe"
                ] = value
            continue
        rest = (
            rest.replace(".norm1.", ".norms.0.")
            .replace(".norm2.", ".norms.1.")
            .replace(".norm3.", ".ff_norm.")
            .replace(".attn1.", ".attention_blocks.0.")
            .replace(".attn2.", ".attention_blocks.1.")
        )
        out[f"{head}.motion_modules.{index}.temporal_transformer.{rest}"] = value
    return out


def contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: value.detach().contiguous().clone() for key, value in state.items()}


# --- kohya LoRAs on tiny models ---------------------------------------------------------------------------

# Real kohya LoRAs cover every projection of an attention; diffusers tells their text-encoder format by out_proj.
UNET_TARGETS = (
    "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
    "up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_out.0",
)
TEXT_TARGETS = ("encoder.layers.0.self_attn.q_proj", "encoder.layers.1.self_attn.out_proj")


def kohya_lora(
    path: Path,
    parts: Parts,
    rank: int,
    alpha: float,
    seed: int,
    *,
    text_encoder: bool = True,
    unet_targets: Iterable[str] = UNET_TARGETS,
    text_targets: Iterable[str] = TEXT_TARGETS,
) -> dict[str, torch.Tensor]:
    """A kohya/A1111-format LoRA on a few UNet and text-encoder projections; returns each target's delta at
    weight 1 (``alpha / rank * up @ down``)."""
    unet, _, _, text = parts
    generator = torch.Generator().manual_seed(seed)
    files: dict[str, torch.Tensor] = {}
    deltas: dict[str, torch.Tensor] = {}
    targets = [("lora_unet_", unet, target) for target in unet_targets]
    targets += [("lora_te_text_model_", text, target) for target in text_targets if text_encoder]
    for prefix, model, target in targets:
        module = model.get_submodule(target)
        name = prefix + target.replace(".", "_")
        down = torch.randn(rank, module.in_features, generator=generator) * 0.1
        up = torch.randn(module.out_features, rank, generator=generator) * 0.1
        files[f"{name}.lora_down.weight"] = down
        files[f"{name}.lora_up.weight"] = up
        files[f"{name}.alpha"] = torch.tensor(alpha)
        deltas[target] = alpha / rank * up @ down
    save_file(files, path)
    return deltas


# --- header-true files with no data ------------------------------------------------------------------------

_ITEM_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}

TensorSpec = tuple[str, tuple[int, ...]]  # (safetensors dtype, shape)


def safetensors_header(tensors: Mapping[str, TensorSpec], metadata: Mapping[str, str] | None = None) -> bytes:
    """The 8-byte length and the JSON header of a safetensors file holding ``tensors`` in order."""
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for key, (dtype, shape) in tensors.items():
        count = 1
        for size in shape:
            count *= size
        end = offset + count * _ITEM_BYTES[dtype]
        header[key] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, end]}
        offset = end
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format pads the header to 8 bytes
    return struct.pack("<Q", len(text)) + text


def data_bytes(tensors: Mapping[str, TensorSpec]) -> int:
    total = 0
    for dtype, shape in tensors.values():
        count = 1
        for size in shape:
            count *= size
        total += count * _ITEM_BYTES[dtype]
    return total


def write_safetensors(path: Path, tensors: Mapping[str, TensorSpec], metadata: Mapping[str, str] | None = None) -> Path:
    """A valid safetensors file of zeros: the real header, then the data region as a hole (sparse)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = safetensors_header(tensors, metadata)
    with path.open("wb") as file:
        file.write(header)
        file.truncate(len(header) + data_bytes(tensors))
    return path


# --- the tiny models, SD 1.5-shaped where it is read ---------------------------------------------------------

SD15_TEXT_WIDTH = 768  # SD 1.5's CLIP ViT-L/14 width: the UNet's cross-attention context
TINY_LAYERS = 1  # layers_per_block of random_parts("tiny")
# LoRA targets on sd15_parts(): one text layer, and attn2.to_k, whose input width tells a LoRA's family.
LIBRARY_UNET_TARGETS = (*UNET_TARGETS, "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k")
LIBRARY_TEXT_TARGETS = ("encoder.layers.0.self_attn.q_proj", "encoder.layers.0.self_attn.out_proj")


def sd15_parts(seed: int = 0) -> Parts:
    """``random_parts("tiny")`` with SD 1.5's text width: the UNet attends to 768-wide text features and the
    text encoder (one layer) makes them, so a checkpoint of it reads as SD 1.5 and still loads in seconds."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from anyi2v.daemon.pipeline.models import random_parts

    unet, adapter, vae, text = random_parts("tiny", seed=seed)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_config({**unet.config, "cross_attention_dim": SD15_TEXT_WIDTH})
    config = text.config.to_dict() | {
        "hidden_size": SD15_TEXT_WIDTH,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "projection_dim": SD15_TEXT_WIDTH,
    }
    return unet, adapter, vae, CLIPTextModel(CLIPTextConfig(**config))


def tiny_adapter(version: str, seed: int = 0) -> Any:
    """The tiny motion adapter of ``random_parts("tiny")`` shaped as AnimateDiff ``version`` is: v1 has no
    mid block and 24 positions, v2 a mid block and 32, v3 no mid block and 32."""
    from diffusers import MotionAdapter

    from anyi2v.daemon.pipeline.models import random_parts

    config = dict(random_parts("tiny", seed=seed)[1].config)
    config |= {"use_motion_mid_block": version == "v2", "motion_max_seq_length": 24 if version == "v1" else 32}
    torch.manual_seed(seed)
    return MotionAdapter.from_config(config)


def write_sd15_checkpoint(path: Path, parts: Parts) -> Path:
    """A loadable single-file SD 1.5 checkpoint (UNet, VAE, CLIP in the CompVis / A1111 layout)."""
    unet, _, vae, text = parts
    checkpoint = unet_to_ldm(unet.state_dict(), TINY_LAYERS) | vae_to_ldm(vae.state_dict()) | clip_to_ldm(text)
    checkpoint["alphas_cumprod"] = torch.linspace(1.0, 0.0, 1000)  # scheduler buffers of the LDM wrapper
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(contiguous(checkpoint), path)
    return path


def write_motion_module(path: Path, adapter: Any) -> Path:
    """An original AnimateDiff motion module file: ``.safetensors``, or a pickle (``torch.save``) otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = contiguous(adapter_to_original(adapter))
    if path.suffix == ".safetensors":
        save_file(state, path)
    else:
        torch.save(state, path)
    return path


def write_motion_lora(path: Path, adapter: Any, rank: int = 2, seed: int = 0) -> Path:
    """An AnimateDiff motion LoRA (the v2 camera LoRAs' layout: ``...attention_blocks.N.processor.to_q_lora.down
    .weight``) on every temporal attention projection of ``adapter``."""
    generator = torch.Generator().manual_seed(seed)
    files: dict[str, torch.Tensor] = {}
    for key, value in adapter_to_original(adapter).items():
        for projection, name in (("to_q", "to_q"), ("to_k", "to_k"), ("to_v", "to_v"), ("to_out.0", "to_out")):
            if key.endswith(f".{projection}.weight") and ".attention_blocks." in key:
                base = key.removesuffix(f"{projection}.weight") + f"processor.{name}_lora"
                files[f"{base}.down.weight"] = torch.randn(rank, value.shape[1], generator=generator) * 0.1
                files[f"{base}.up.weight"] = torch.randn(value.shape[0], rank, generator=generator) * 0.1
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(files, path)
    return path


def write_vae(path: Path, vae: Any) -> Path:
    """A VAE file as they are shared (``vae-ft-mse-840000-ema-pruned``): the CompVis VAE keys, no prefix."""
    state = {key.removeprefix("first_stage_model."): value for key, value in vae_to_ldm(vae.state_dict()).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(contiguous(state), path)
    return path


def write_configs(folder: Path, parts: Parts) -> Path:
    """The config folder a tiny single file loads against (``config_dir=``): the parts' configs, a tokenizer."""
    from anyi2v.daemon.pipeline.models import byte_tokenizer

    unet, adapter, vae, text = parts
    unet.save_config(folder / "unet")
    vae.save_config(folder / "vae")
    text.config.save_pretrained(folder / "text_encoder")
    adapter.save_config(folder / "motion_adapter")
    byte_tokenizer(folder / "tokenizer")
    return folder


# --- files read only for what they are, at real sizes -----------------------------------------------------


def write_sdxl_checkpoint(path: Path) -> Path:
    """SD XL base as one file: two text encoders under ``conditioner.embedders``, a 2048-wide context."""
    return write_safetensors(
        path,
        {
            "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": ("F16", (49408, 768)),
            "conditioner.embedders.1.model.token_embedding.weight": ("F16", (49408, 1280)),
            "first_stage_model.decoder.conv_in.weight": ("F16", (512, 4, 3, 3)),
            "model.diffusion_model.input_blocks.0.0.weight": ("F16", (320, 4, 3, 3)),
            "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": ("F16", (640, 2048)),
            "model.diffusion_model.label_emb.0.0.weight": ("F16", (1280, 2816)),
        },
    )


def write_sd2_checkpoint(path: Path) -> Path:
    """SD 2.1 as one file: the OpenCLIP text encoder under ``cond_stage_model.model``, a 1024-wide context."""
    return write_safetensors(
        path,
        {
            "cond_stage_model.model.token_embedding.weight": ("F16", (49408, 1024)),
            "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight": ("F16", (3072, 1024)),
            "first_stage_model.decoder.conv_in.weight": ("F16", (512, 4, 3, 3)),
            "model.diffusion_model.input_blocks.0.0.weight": ("F16", (320, 4, 3, 3)),
            "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": ("F16", (320, 1024)),
        },
    )


def write_sdxl_lora(path: Path, rank: int = 8) -> Path:
    """A kohya SD XL LoRA: ``lora_te1_`` / ``lora_te2_`` text encoders, a 2048-wide cross-attention input."""
    tensors: dict[str, TensorSpec] = {}
    for name, width, out in (
        ("lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k", 2048, 640),
        ("lora_te1_text_model_encoder_layers_0_self_attn_q_proj", 768, 768),
        ("lora_te2_text_model_encoder_layers_0_self_attn_q_proj", 1280, 1280),
    ):
        tensors[f"{name}.alpha"] = ("F16", ())
        tensors[f"{name}.lora_down.weight"] = ("F16", (rank, width))
        tensors[f"{name}.lora_up.weight"] = ("F16", (out, rank))
    return write_safetensors(path, tensors, {"ss_network_module": "networks.lora"})


def write_truncated(path: Path, source: Path) -> Path:
    """The first half of ``source``: a download that stopped."""
    data = source.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) // 2])
    return path


# --- a whole library ----------------------------------------------------------------------------------------

# name: (kind, family, version, frame limit, what its problem says, or None when it is usable)
LIBRARY: dict[str, tuple[str, str | None, str | None, int | None, str | None]] = {
    "checkpoints/tiny_sd15": ("checkpoint", "sd15", None, None, None),
    "checkpoints/sdxl_base": ("checkpoint", "sdxl", None, None, "SD XL checkpoint: AnyI2V runs on SD 1.5 only"),
    "checkpoints/sd21": ("checkpoint", "sd2", None, None, "SD 2.x checkpoint: AnyI2V runs on SD 1.5 only"),
    "checkpoints/broken/half_download": ("checkpoint", "sd15", None, None, "truncated"),
    "animatediff_models/mm_sd_v15": ("motion_module", "sd15", "v1", 24, None),
    "animatediff_models/mm_sd_v15_v2": ("motion_module", "sd15", "v2", 32, None),
    "animatediff_models/v3_sd15_mm": ("motion_module", "sd15", "v3", 32, None),
    "animatediff_models/v3_pickled": ("motion_module", "sd15", "v3", 32, None),
    "animatediff_motion_lora/v2_lora_ZoomIn": ("motion_lora", "sd15", "v2", None, None),
    "loras/detail_tweaker": ("lora", "sd15", None, None, None),
    "loras/xl_style": ("lora", "sdxl", None, None, "SD XL LoRA: AnyI2V runs on SD 1.5 only"),
    "vae/tiny_vae": ("vae", "sd15", None, None, None),
}


def write_library(root: Path, parts: Parts) -> Path:
    """Every entry of :data:`LIBRARY` under ``root``, in the folders artists use for AnimateDiff tools."""
    checkpoint = write_sd15_checkpoint(root / "checkpoints" / "tiny_sd15.safetensors", parts)
    write_sdxl_checkpoint(root / "checkpoints" / "sdxl_base.safetensors")
    write_sd2_checkpoint(root / "checkpoints" / "sd21.safetensors")
    write_truncated(root / "checkpoints" / "broken" / "half_download.safetensors", checkpoint)
    models = root / "animatediff_models"
    write_motion_module(models / "mm_sd_v15.safetensors", tiny_adapter("v1"))
    v2 = tiny_adapter("v2")
    write_motion_module(models / "mm_sd_v15_v2.safetensors", v2)
    write_motion_module(models / "v3_sd15_mm.safetensors", tiny_adapter("v3"))
    write_motion_module(models / "v3_pickled.ckpt", tiny_adapter("v3", seed=1))
    write_motion_lora(root / "animatediff_motion_lora" / "v2_lora_ZoomIn.safetensors", v2)
    (root / "loras").mkdir(parents=True)
    kohya_lora(
        root / "loras" / "detail_tweaker.safetensors",
        parts,
        rank=2,
        alpha=1.0,
        seed=0,
        unet_targets=LIBRARY_UNET_TARGETS,
        text_targets=LIBRARY_TEXT_TARGETS,
    )
    write_sdxl_lora(root / "loras" / "xl_style.safetensors")
    write_vae(root / "vae" / "tiny_vae.safetensors", parts[2])
    (root / "loras" / "preview.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # not a model: never listed
    return root
