"""The toy world's model: AnimateDiff's architecture at a size a 2-core CPU runs in seconds.

- VAE: ``AutoencoderKL`` with three levels (downsampling 4x): 128 x 128 frames, 32 x 32 x 4 latents.
- Text: ``CLIPTextModel`` (2 layers, width 64) over the caption grammar's tokenizer.
- UNet: SD 1.5's block structure (four down and four up blocks, cross-attention in the middle two of
  each, two ResNet + attention layers in every up block), so ``up_blocks.1`` and ``up_blocks.2`` have
  the self-attention and ResNet layers AnyI2V reads and writes. The highest-resolution blocks have
  no attention (as in SDXL): at 32 x 32 tokens that attention would cost most of the CPU time.
- Motion: a ``MotionAdapter`` with one temporal transformer per layer, up to 32 frames.

Measured on the 2-core CPU (fp32, 16 frames at 32 x 32 latents): a guided denoising step about
0.6 s, a single-frame UNet call about 40 ms, a forward and backward pass about 1 s; 5.2 M
parameters in the UNet and adapter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, MotionAdapter, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from .scenes import vocabulary
from .tokenizer import write_tokenizer

SIZE = 128  # frames are SIZE x SIZE pixels
FRAMES = 16
LATENT_CHANNELS = 4
CHANNELS = (32, 64, 96, 96)
TEXT_WIDTH = 64

UNET_CONFIG: dict[str, Any] = {
    "sample_size": SIZE // 4,
    "in_channels": LATENT_CHANNELS,
    "out_channels": LATENT_CHANNELS,
    "block_out_channels": CHANNELS,
    "layers_per_block": 1,
    "cross_attention_dim": TEXT_WIDTH,
    "attention_head_dim": 4,
    "norm_num_groups": 8,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
}
ADAPTER_CONFIG: dict[str, Any] = {
    "block_out_channels": CHANNELS,
    "motion_layers_per_block": 1,
    "motion_num_attention_heads": 4,
    "motion_norm_num_groups": 8,
    "motion_max_seq_length": 32,
    "use_motion_mid_block": False,
}
VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": (32, 64, 64),
    "down_block_types": ("DownEncoderBlock2D",) * 3,
    "up_block_types": ("UpDecoderBlock2D",) * 3,
    "layers_per_block": 1,
    "latent_channels": LATENT_CHANNELS,
    "norm_num_groups": 16,
    "sample_size": SIZE,
    "scaling_factor": 1.0,  # measured on the trained VAE's latents and written into its config
}
TEXT_CONFIG: dict[str, Any] = {
    "hidden_size": TEXT_WIDTH,
    "intermediate_size": 4 * TEXT_WIDTH,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 77,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "pad_token_id": 1,
}


def new_parts(
    tokenizer_dir: Path, seed: int = 0
) -> tuple[UNet2DConditionModel, MotionAdapter, AutoencoderKL, CLIPTextModel]:
    """Freshly initialized parts (seeded), the tokenizer written into ``tokenizer_dir``."""
    tokenizer = write_tokenizer(tokenizer_dir, vocabulary())
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**UNET_CONFIG)
    adapter = MotionAdapter(**ADAPTER_CONFIG)
    vae = AutoencoderKL(**VAE_CONFIG)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), **TEXT_CONFIG))
    return unet, adapter, vae, text
