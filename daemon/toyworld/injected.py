"""Injection-aware training: clips whose frame 0 carries a condition render's injected features.

At generation time AnyI2V writes the inverted condition image's self-attention queries and residual
states into frame 0 during the first denoising steps. A model that has only seen clean clips was never
asked to paint its caption's colours from queries that came from a depth or edge image, and the toy
model does not: its queries carry the condition's look into the video (docs/toyworld, the appearance
ablation). Training on some clips the way they will be generated teaches it that structure comes from
the injected features and appearance from the caption:

1. the clip's frame-0 condition render (a modality per clip), noised to the inversion timestep, goes
   through the UNet once with the motion modules off and no gradient, the controls recording its
   features (:class:`~anyi2v.daemon.pipeline.controls.Record`, one row per clip);
2. the clip is then denoised at a timestep from the injection's range (the first steps of a 25-step
   sampler), those features written into frame 0 of every clip as the pipeline writes them (queries,
   residual states through patch AdaIN, frame 0's keys and values for every frame), and the loss is
   the usual noise-prediction error on the whole clip.

The condition is an input only: the target is always the shaded clip.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from anyi2v.daemon.pipeline.controls import (
    ControlLayers,
    ControlState,
    FeatureBank,
    Injection,
    Record,
    Sample,
    install_controls,
    motion_disabled,
)
from anyi2v.shared.settings import MethodSettings


@dataclass(frozen=True)
class InjectedTraining:
    """Where and when a training step injects: the method's default layers, the inversion timestep
    features are recorded at, and the lowest timestep an injected clip is trained at."""

    record_timestep: int
    min_timestep: int
    layers: ControlLayers
    adain_patch: int

    @classmethod
    def of(cls, min_timestep: int, method: MethodSettings | None = None) -> InjectedTraining:
        method = method or MethodSettings()
        layers = ControlLayers(query_layers=tuple(method.query_layers), residual_layers=tuple(method.residual_layers))
        return cls(method.inversion_timestep, min_timestep, layers, method.adain_patch_size)

    def timesteps(self, count: int, total: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """Timesteps for ``count`` injected clips: uniform over [min_timestep, total)."""
        return torch.randint(self.min_timestep, total, (count,), generator=generator, device=device)

    @contextmanager
    def injecting(self, unet: nn.Module, conditions: torch.Tensor, embeds: torch.Tensor, frames: int) -> Iterator[None]:
        """Record ``conditions`` ((B, C, 1, h, w) latents already noised to ``record_timestep``, with
        ``embeds`` (B, tokens, dim)), then, inside the block, inject them into frame 0 of each of the B
        clips of every UNet call."""
        state, bank = ControlState(), FeatureBank()
        clips = conditions.shape[0]
        timestep = torch.full((clips,), self.record_timestep, device=conditions.device)
        with install_controls(unet, self.layers, state, bank):
            state.set(Record(rows=clips))
            with torch.no_grad(), motion_disabled(unet):
                unet(conditions, timestep, encoder_hidden_states=embeds.detach())
            injection = Injection(
                frames=frames, adain_patch=self.adain_patch, kv_copy_halves="both", halves="both"
            )  # every clip is "conditional" here: each gets its own condition's features
            state.set(Sample(step=0, injection=injection))
            try:
                yield
            finally:
                state.idle()
