"""Sampling previews show the predicted clean latent (x0), not the noisy one (issue 19, item 17): the
first steps' noisy latents preview as static, while DDIM's ``pred_original_sample`` already shows the
picture taking shape. Checked against x0 computed by hand from one guided UNet call on the tiny model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler
from einops import repeat

from anyi2v.daemon.pipeline.generate import Progress, StepEvent, encode_prompt, generate, latent_preview
from anyi2v.daemon.pipeline.models import ANIMATEDIFF_SCHEDULER, Models, random_models
from anyi2v.shared.document import parse_shot
from anyi2v.shared.shot import Shot

from .daemon_helpers import shot_document


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    return random_models("tiny", seed=0, tokenizer_dir=tmp_path_factory.mktemp("tokenizer"))


def ddim_start(models: Models, shot: Shot) -> tuple[DDIMScheduler, torch.Tensor, torch.Tensor]:
    """What plain guided DDIM on the authors' schedule starts from, written out: the scheduler with the shot's
    steps, the seeded noise and the (negative, prompt) embeddings repeated per frame."""
    frames, factor = shot.output.n_frames, models.vae_scale_factor
    shape = (1, models.unet.config.in_channels, frames, shot.output.height // factor, shot.output.width // factor)
    scheduler = DDIMScheduler(**ANIMATEDIFF_SCHEDULER)
    scheduler.set_timesteps(shot.sampling.steps)
    generator = torch.Generator("cpu").manual_seed(shot.sampling.seed)
    latents = torch.randn(shape, generator=generator, dtype=torch.float32) * scheduler.init_noise_sigma
    embeds = torch.cat([encode_prompt(models, shot.negative_prompt), encode_prompt(models, shot.prompt)])
    return scheduler, latents, repeat(embeds, "b n d -> (b f) n d", f=frames)


def first_step_by_hand(models: Models, shot: Shot) -> tuple[torch.Tensor, torch.Tensor]:
    """The first DDIM step of ``generate`` with no control, redone here: (x0 predicted, the noisy x_t-1)."""
    scheduler, latents, embeds = ddim_start(models, shot)
    t = scheduler.timesteps[0]
    with torch.no_grad():
        noise = models.unet(torch.cat([latents, latents]), t, encoder_hidden_states=embeds).sample
    uncond, cond = noise.chunk(2)
    epsilon = uncond + shot.sampling.guidance_scale * (cond - uncond)
    alpha = scheduler.alphas_cumprod[int(t)]
    x0 = (latents - (1 - alpha).sqrt() * epsilon) / alpha.sqrt()  # DDIM (Song et al. 2021), eq. 12
    return x0, scheduler.step(epsilon, t, latents).prev_sample


def test_the_first_preview_is_the_predicted_clean_latent(models: Models, tmp_path: Path) -> None:
    shot = parse_shot(shot_document(steps=4), source="test", max_frames=32)
    events: list[StepEvent] = []
    generate(models, shot, None, control=False, progress=Progress(on_step=events.append))
    previews = [event.preview for event in events if event.preview is not None]
    assert len(previews) == shot.sampling.steps
    x0, noisy = first_step_by_hand(models, shot)
    first = previews[0].astype(int)
    assert np.abs(first - latent_preview(x0).astype(int)).max() <= 1  # float order: a rounding step at most
    assert np.abs(first - latent_preview(noisy).astype(int)).mean() > 5  # the old, noisy preview differs
