"""The model bundle the pipeline runs, and seeded random models built from configs.

:class:`Models` is what loading produces: an AnimateDiff UNet (``UNetMotionModel``), a VAE, a CLIP text
encoder and tokenizer, and the DDIM scheduler configured as the AnyI2V authors run AnimateDiff.

:func:`random_models` builds the same architecture with seeded random weights, either tiny (for tests
and the CPU demo run: seconds on a CPU) or at SD 1.5 + AnimateDiff size (for GPU speed and memory
benchmarks). Its tokenizer is written by us: one token per byte-level character, so it tokenizes any
text with no vocabulary download.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from diffusers import AutoencoderKL, DDIMScheduler, MotionAdapter, UNet2DConditionModel, UNetMotionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

# The AnyI2V authors' DDIM scheduler (AnimateDiff's configs): 1000 training steps with betas linear from
# 0.00085 to 0.012 ("linear" here: AnimateDiff's configs say so, not SD 1.5's "scaled_linear"), no
# clipping, the final step to alphas_cumprod[0], and leading timestep spacing with offset 1, so 25 steps
# sample 961, 921, ..., 41, 1. A shot may ask for linspace spacing instead (999, 957, 916, ..., 0):
# ``Sampling.timestep_spacing``. Sampling builds a fresh scheduler of the chosen kind from this config for
# every run (``samplers.py``); inversion reads its ``alphas_cumprod``.
ANIMATEDIFF_SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "prediction_type": "epsilon",
}


@dataclass
class Models:
    """What the pipeline needs; ``identity`` names the weights (for caches keyed by model)."""

    unet: UNetMotionModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    scheduler: DDIMScheduler
    identity: str

    @property
    def device(self) -> torch.device:
        device: torch.device = self.unet.device
        return device

    @property
    def dtype(self) -> torch.dtype:
        dtype: torch.dtype = self.unet.dtype
        return dtype

    @property
    def vae_scale_factor(self) -> int:
        return int(2 ** (len(self.vae.config.block_out_channels) - 1))

    @property
    def max_frames(self) -> int:
        """The most frames the motion modules' position encoding covers."""
        return int(self.unet.config.motion_max_seq_length)

    def settle(self, low_memory: bool) -> None:
        """Place the text encoder and the VAE: beside the UNet, or with ``low_memory`` in CPU memory, from
        where :meth:`lent` brings each to the UNet's device only while it runs."""
        home = torch.device("cpu") if low_memory else self.device
        for module in (self.text_encoder, self.vae):
            if _device_of(module) != home:
                module.to(home)

    @contextmanager
    def lent(self, module: torch.nn.Module) -> Iterator[None]:
        """``module`` on the UNet's device for the block, then back where it was."""
        home = _device_of(module)
        if home == self.device:
            yield
            return
        module.to(self.device)
        try:
            yield
        finally:
            module.to(home)

    def to(self, device: torch.device | str, dtype: torch.dtype) -> Models:
        for module in (self.unet, self.vae, self.text_encoder):
            module.to(device=device, dtype=dtype)
            module.eval()
            module.requires_grad_(False)
        return self


def _device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def byte_tokenizer(folder: Path, max_length: int = 77) -> CLIPTokenizer:
    """A CLIP tokenizer whose vocabulary is the 256 byte-level characters (alone and word-final) with no
    merges, saved in ``folder`` and loaded from there."""
    folder.mkdir(parents=True, exist_ok=True)
    # GPT-2 / CLIP byte-to-unicode table: printable bytes map to themselves, the rest to 256 + n.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    characters, extra = [], 0
    for byte in range(256):
        if byte in printable:
            characters.append(chr(byte))
        else:
            characters.append(chr(256 + extra))
            extra += 1
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for character in characters:
        vocab[character] = len(vocab)
        vocab[character + "</w>"] = len(vocab)
    CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length).save_pretrained(folder)
    loaded: CLIPTokenizer = CLIPTokenizer.from_pretrained(folder)
    return loaded


Size = Literal["tiny", "sd15"]


Config = dict[str, Any]


def _configs(size: Size) -> tuple[Config, Config, Config, Config]:
    """UNet 2D, motion adapter, VAE and text encoder configs."""
    if size == "sd15":
        unet: Config = {
            "sample_size": 64,
            "block_out_channels": (320, 640, 1280, 1280),
            "layers_per_block": 2,
            "cross_attention_dim": 768,
            "attention_head_dim": 8,
        }
        adapter = {
            "block_out_channels": (320, 640, 1280, 1280),
            "motion_layers_per_block": 2,
            "motion_num_attention_heads": 8,
            "motion_norm_num_groups": 32,
            "motion_max_seq_length": 32,
            "use_motion_mid_block": False,
        }
        vae = {
            "block_out_channels": (128, 256, 512, 512),
            "down_block_types": ("DownEncoderBlock2D",) * 4,
            "up_block_types": ("UpDecoderBlock2D",) * 4,
            "layers_per_block": 2,
            "latent_channels": 4,
            "sample_size": 512,
            "scaling_factor": 0.18215,
        }
        text = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12}
        return unet, adapter, vae, text
    unet = {
        "sample_size": 16,
        "block_out_channels": (16, 32, 32, 32),
        "layers_per_block": 1,
        "cross_attention_dim": 32,
        "attention_head_dim": 4,
        "norm_num_groups": 8,
    }
    adapter = {
        "block_out_channels": (16, 32, 32, 32),
        "motion_layers_per_block": 1,
        "motion_num_attention_heads": 2,
        "motion_norm_num_groups": 8,
        "motion_max_seq_length": 32,
        "use_motion_mid_block": False,
    }
    vae = {
        "block_out_channels": (8, 16, 16, 16),
        "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4,
        "layers_per_block": 1,
        "latent_channels": 4,
        "norm_num_groups": 4,
        "sample_size": 128,
        "scaling_factor": 0.18215,
    }
    text = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
    return unet, adapter, vae, text


def random_parts(
    size: Size = "tiny", seed: int = 0
) -> tuple[UNet2DConditionModel, MotionAdapter, AutoencoderKL, CLIPTextModel]:
    """Seeded random weights in the SD 1.5 + AnimateDiff architecture (as separate parts, the way a
    diffusers SD 1.5 folder and a motion adapter are stored)."""
    unet_config, adapter_config, vae_config, text_config = _configs(size)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        **unet_config,
    )
    adapter = MotionAdapter(**adapter_config)
    vae = AutoencoderKL(**vae_config)
    text_cfg = CLIPTextConfig(
        vocab_size=2 + 2 * 256,
        max_position_embeddings=77,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        **text_config,
    )
    text = CLIPTextModel(text_cfg)
    return unet, adapter, vae, text


def random_models(size: Size = "tiny", seed: int = 0, tokenizer_dir: Path | None = None) -> Models:
    """A complete seeded random :class:`Models` (fp32, on the CPU; move it with :meth:`Models.to`)."""
    unet2d, adapter, vae, text = random_parts(size, seed)
    unet = UNetMotionModel.from_unet2d(unet2d, adapter)
    folder = tokenizer_dir if tokenizer_dir is not None else Path(tempfile.mkdtemp(prefix="anyi2v-tokenizer-"))
    tokenizer = byte_tokenizer(folder)
    scheduler = DDIMScheduler(**ANIMATEDIFF_SCHEDULER)
    models = Models(unet, vae, text, tokenizer, scheduler, identity=f"random-{size}-seed{seed}")
    return models.to("cpu", torch.float32)
