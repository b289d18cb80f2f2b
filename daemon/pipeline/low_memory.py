"""Low-memory mode (issue 21): the same computation in less GPU memory, for 8 to 12 GB cards.

Three things change where tensors live and when they exist, none what is computed:

- the text encoder and the VAE wait in CPU memory and are lent to the GPU only while they run
  (:meth:`Models.settle`, :meth:`Models.lent`);
- the trajectory optimisation's forward pass keeps only each block's input and recomputes the rest during
  the backward pass (diffusers' gradient checkpointing, :func:`checkpointed`); the controls keep injecting
  while the backward pass recomputes, so the recomputed features are the ones the forward pass made;
- a guided sampling step runs the guidance batch's two halves one after the other
  (:func:`guided_noise` with ``apart``), each with the injection its half gets in the joint batch.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from diffusers import UNetMotionModel
from torch.utils.checkpoint import checkpoint

from .controls import ControlState, Injection, Sample
from .models import Models


@contextmanager
def checkpointed(unet: UNetMotionModel, on: bool) -> Iterator[None]:
    """Gradient checkpointing in the UNet's blocks for the block (only passes with gradients use it), off
    again after. diffusers checkpoints ResNets, spatial transformers and the motion modules of its
    cross-attention up blocks; the other motion modules (down, middle and first up blocks) are wrapped here."""
    if not on:
        yield
        return
    unet.enable_gradient_checkpointing()
    wrapped = _unchecked_motion_modules(unet)
    for module in wrapped:
        module.forward = functools.partial(_checkpointed_call, module.forward)
    try:
        yield
    finally:
        for module in wrapped:
            del module.forward
        unet.disable_gradient_checkpointing()


def _unchecked_motion_modules(unet: UNetMotionModel) -> list[torch.nn.Module]:
    blocks = [*unet.down_blocks, unet.mid_block, *unet.up_blocks]
    return [
        module
        for block in blocks
        if type(block).__name__ != "CrossAttnUpBlockMotion"
        for module in getattr(block, "motion_modules", None) or []
    ]


def _checkpointed_call(forward: Callable[..., torch.Tensor], *args: Any, **kwargs: Any) -> torch.Tensor:
    if not torch.is_grad_enabled():
        return forward(*args, **kwargs)
    result: torch.Tensor = checkpoint(forward, *args, use_reentrant=False, **kwargs)
    return result


def item_injection(injection: Injection, item: int) -> Injection | None:
    """What batch item ``item`` of the joint guidance batch gets of ``injection``, as an injection of a
    batch holding that item alone (None: nothing)."""
    if item == injection.conditional_index:
        return dataclasses.replace(injection, conditional_index=0)
    alone = dataclasses.replace(
        injection,
        conditional_index=0,
        query=injection.query and injection.halves == "both",
        residual=injection.residual and injection.halves == "both",
        kv_copy=injection.kv_copy and injection.kv_copy_halves == "both",
    )
    return alone if alone.query or alone.residual or alone.kv_copy else None


def guided_noise(
    models: Models,
    model_input: torch.Tensor,
    t: torch.Tensor,
    embeds: torch.Tensor,
    state: ControlState,
    step: int,
    injection: Injection | None,
    apart: bool,
) -> torch.Tensor:
    """The UNet's noise for ``model_input`` (one clip, (1, C, F, h, w)) under each of its text embeddings
    (``embeds``: (items * F, n, d), item-major), as (items, C, F, h, w): in one batch, or with ``apart``
    one item after another. ``injection`` is that of the joint batch."""
    frames = model_input.shape[2]
    items = embeds.shape[0] // frames
    dtype = models.dtype
    with torch.no_grad():
        if not apart or items == 1:
            state.set(Sample(step, injection))
            batch = torch.cat([model_input] * items)
            noise: torch.Tensor = models.unet(batch.to(dtype), t, encoder_hidden_states=embeds).sample.float()
            state.idle()
            return noise
        parts = []
        for item in range(items):
            state.set(Sample(step, item_injection(injection, item) if injection is not None else None))
            own = embeds[item * frames : (item + 1) * frames]
            parts.append(models.unet(model_input.to(dtype), t, encoder_hidden_states=own).sample.float())
            state.idle()
        return torch.cat(parts)
