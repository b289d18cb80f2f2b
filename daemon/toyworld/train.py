"""Train the toy world's model on a GPU: the VAE first, then the UNet, motion modules and text encoder.

    python -m anyi2v.daemon.toyworld.train vae --out runs/toy --minutes 4
    python -m anyi2v.daemon.toyworld.train diffusion --out runs/toy --minutes 20

Every batch is rendered on the fly from scene seeds that depend only on ``--seed``, the step and the
position in the batch (training seeds stay below :data:`HELD_OUT_SEEDS`, where the evaluation's
scenes start), and every random draw of a step comes from a generator seeded the same way, so a run
is reproducible and a resumed run continues where it stopped. Checkpoints are the diffusers layout
(``vae/``, ``unet/`` holding the ``UNetMotionModel``, ``text_encoder/``, ``tokenizer/``, safetensors in
shards of at most 15 MB) plus ``train_state.json`` (stage, step, seed, the exponential moving average's
decay). ``unet/`` holds the moving average of the weights, and a resumed run continues from it; the
optimizer's moments are not kept (they would triple the size), so a resumed run restarts them with a
short warm-up. Each step's loss goes to ``log.jsonl``.

Diffusion training is joint: a fraction of the steps trains on videos with the motion modules on, the
rest on single images (condition renders in every modality and single video frames) with the motion
modules off, so that inverting one condition image, as AnyI2V does, is in distribution. One caption
in ten is dropped (empty prompt) so classifier-free guidance works.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNetMotionModel
from transformers import CLIPTextModel, CLIPTokenizer

from anyi2v.daemon.pipeline.controls import motion_disabled
from anyi2v.daemon.pipeline.models import ANIMATEDIFF_SCHEDULER

from .dataset import MODALITIES, Batch, render_clips, render_conditions
from .injected import InjectedTraining
from .model import SIZE, new_parts
from .scenes import sample_scene, vocabulary
from .tokenizer import write_tokenizer

HELD_OUT_SEEDS = 1_000_000_000  # training scenes use seeds below this; evaluation scenes start here
SHARD = "15MB"


def scene_seed(seed: int, step: int, index: int) -> int:
    return (seed * 7_919 + step * 1_031 + index) % HELD_OUT_SEEDS


def step_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device).manual_seed(seed * 1_000_003 + step)


def image_batch(seed: int, step: int, count: int, device: torch.device, generator: torch.Generator) -> Batch:
    """Half condition renders (a modality per scene, cycling), half single shaded frames. Single-frame
    scenes are sampled (a one-frame scene is a clip's random starting state), so no frame is rendered
    only to be thrown away."""
    conditions = count // 2
    scenes = [sample_scene(scene_seed(seed, step, i), frames=1) for i in range(count)]
    modalities = [MODALITIES[(step + i) % len(MODALITIES)] for i in range(conditions)]
    first = render_conditions(scenes[:conditions], modalities, SIZE, device, generator=generator)
    frames = render_clips(scenes[conditions:], SIZE, device)
    return Batch(
        torch.cat([first.pixels, frames.pixels]),
        first.captions + frames.captions,
        torch.cat([first.boxes, frames.boxes]),
    )


def render_clips_with_conditions(
    seed: int, step: int, count: int, device: torch.device, generator: torch.Generator
) -> tuple[Batch, Batch]:
    """``count`` clips drawn for ``step`` (the clips :func:`render_examples` draws) and each clip's frame 0
    as a condition render (modalities cycling), for injection-aware training."""
    scenes = [sample_scene(scene_seed(seed, step, i)) for i in range(count)]
    modalities = [MODALITIES[(step + i) % len(MODALITIES)] for i in range(count)]
    return render_clips(scenes, SIZE, device), render_conditions(scenes, modalities, SIZE, device, generator=generator)


def render_examples(
    seed: int, step: int, video: bool, count: int, device: torch.device, generator: torch.Generator
) -> Batch:
    """``count`` examples drawn for ``step``: whole clips (``video``) or single images (:func:`image_batch`)."""
    if video:
        return render_clips([sample_scene(scene_seed(seed, step, i)) for i in range(count)], SIZE, device)
    return image_batch(seed, step, count, device, generator)


class Run:
    """A training run's folder: checkpoints, state and log."""

    def __init__(self, out: Path) -> None:
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.state_path = out / "train_state.json"
        self.state: dict[str, Any] = json.loads(self.state_path.read_text()) if self.state_path.is_file() else {}

    def log(self, record: dict[str, Any]) -> None:
        with (self.out / "log.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def save_state(self) -> None:
        partial = self.state_path.with_suffix(".partial")
        partial.write_text(json.dumps(self.state, indent=1))
        partial.replace(self.state_path)


def _warmup(step: int, warmup: int) -> float:
    return min(1.0, (step + 1) / warmup)


def schedule(step: int, warmup: int, progress: float, decay: float) -> float:
    """The learning rate's factor: a linear warm-up over ``warmup`` steps, then, with ``decay`` > 0, a
    cosine from 1 down to ``1 - decay`` as ``progress`` (the fraction of the run's time or steps done,
    whichever is further) goes from 0 to 1."""
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
    return _warmup(step, warmup) * (1.0 - decay * (1.0 - cosine))


def train_vae(run: Run, arguments: argparse.Namespace, device: torch.device) -> None:
    tokenizer_dir = run.out / "tokenizer"
    if (run.out / "vae").is_dir():
        vae = AutoencoderKL.from_pretrained(run.out / "vae", local_files_only=True).float()
        write_tokenizer(tokenizer_dir, vocabulary())
    else:
        _, _, vae, _ = new_parts(tokenizer_dir, arguments.seed)
    vae.to(device).train()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=arguments.lr, weight_decay=0.0, fused=device.type == "cuda")
    start = int(run.state.get("vae_step", 0))
    started = time.monotonic()
    step = start
    while step < start + arguments.steps and time.monotonic() - started < arguments.minutes * 60:
        generator = step_generator(arguments.seed, step, device)
        batch = image_batch(arguments.seed, step, arguments.batch, device, generator)
        pixels = batch.pixels[:, :, 0]
        for group in optimizer.param_groups:
            group["lr"] = arguments.lr * _warmup(step - start, 100)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            posterior = vae.encode(pixels).latent_dist
            latent = posterior.mean + posterior.std * torch.randn(
                posterior.mean.shape, generator=generator, device=device
            )
            reconstruction = vae.decode(latent).sample
        error = reconstruction.float() - pixels
        loss = error.abs().mean() + error.square().mean() + 1e-6 * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        if step % arguments.log_every == 0:
            record = {
                "stage": "vae",
                "step": step,
                "loss": float(loss.detach()),
                "seconds": round(time.monotonic() - started, 1),
            }
            run.log(record)
            print(json.dumps(record), flush=True)
        step += 1
    vae.eval()
    with torch.no_grad():  # the scaling factor that gives the latents unit variance
        generator = step_generator(arguments.seed, HELD_OUT_SEEDS, device)
        sample = image_batch(arguments.seed, HELD_OUT_SEEDS, 64, device, generator).pixels[:, :, 0]
        scaling = 1.0 / float(vae.encode(sample).latent_dist.mean.std())
    vae.register_to_config(scaling_factor=scaling)
    vae.save_pretrained(run.out / "vae", max_shard_size=SHARD)
    run.state.update(vae_step=step, scaling_factor=scaling, seed=arguments.seed)
    run.save_state()
    print(f"vae: step {step}, scaling factor {scaling:.4f}", flush=True)


def _load_diffusion(run: Run, seed: int) -> tuple[UNetMotionModel, CLIPTextModel]:
    if (run.out / "unet").is_dir():
        # .float(): training keeps fp32 weights, also when resuming from the shipped fp16 export
        unet = UNetMotionModel.from_pretrained(run.out / "unet", local_files_only=True).float()
        text = CLIPTextModel.from_pretrained(run.out / "text_encoder", local_files_only=True).float()
        return unet, text
    unet2d, adapter, _, text = new_parts(run.out / "tokenizer", seed)
    return UNetMotionModel.from_unet2d(unet2d, adapter), text


def _save_diffusion(run: Run, unet: UNetMotionModel, text: CLIPTextModel) -> None:
    """``unet/`` holds the UNetMotionModel (the 2D UNet with its motion modules, as AnimateDiff pipelines save)."""
    unet.save_pretrained(run.out / "unet", max_shard_size=SHARD)
    text.save_pretrained(run.out / "text_encoder", max_shard_size=SHARD)


@torch.no_grad()
def encode_clips(vae: AutoencoderKL, pixels: torch.Tensor) -> torch.Tensor:
    """(B, 3, F, H, W) pixels to (B, C, F, h, w) scaled latents (the posterior means), 256 frames at a time."""
    clips, _, frames, height, width = pixels.shape
    flat = pixels.transpose(1, 2).reshape(clips * frames, 3, height, width)
    latents = torch.cat([vae.encode(part).latent_dist.mean for part in torch.split(flat, 256)])
    latents = latents * float(vae.config.scaling_factor)
    return latents.reshape(clips, frames, *latents.shape[1:]).transpose(1, 2)


POOL_STEP_OFFSET = 10_000_000  # pool chunks draw scene seeds as if they were steps from here on


class LatentPool:
    """Training examples rendered and VAE-encoded once and kept on the device, as a ring refreshed a
    chunk at a time: rendering a clip costs far more than a training step on it, so each example serves
    several steps. Chunk c is made from scene seeds of step ``POOL_STEP_OFFSET + c``, so a pool is
    reproducible from the seed and the refresh schedule. With ``conditions``, a video pool also keeps
    each clip's frame-0 condition render (injection-aware training)."""

    def __init__(
        self, kind: str, capacity: int, chunk: int, seed: int, vae: AutoencoderKL, device: torch.device,
        conditions: bool = False,
    ) -> None:  # fmt: skip
        self.kind, self.capacity, self.chunk, self.seed = kind, capacity, min(chunk, capacity), seed
        self.vae, self.device = vae, device
        self.with_conditions = conditions and kind == "video"
        self.latents: torch.Tensor | None = None
        self.conditions: torch.Tensor | None = None
        self.captions: list[str] = []
        self.made = 0  # chunks rendered so far
        self.filled = 0

    def _make(self) -> tuple[torch.Tensor, list[str], torch.Tensor | None]:
        step = POOL_STEP_OFFSET + self.made + (0 if self.kind == "video" else POOL_STEP_OFFSET)
        generator = step_generator(self.seed, step, self.device)
        self.made += 1
        if self.with_conditions:
            batch, first = render_clips_with_conditions(self.seed, step, self.chunk, self.device, generator)
            conditions = encode_clips(self.vae, first.pixels).half()
            return encode_clips(self.vae, batch.pixels).half(), batch.captions, conditions
        batch = render_examples(self.seed, step, self.kind == "video", self.chunk, self.device, generator)
        return encode_clips(self.vae, batch.pixels).half(), batch.captions, None

    def refresh(self) -> None:
        """Render one more chunk into the ring (over the oldest examples once it is full)."""
        latents, captions, conditions = self._make()
        if self.latents is None:
            self.latents = torch.empty((self.capacity, *latents.shape[1:]), dtype=torch.float16, device=self.device)
            self.captions = [""] * self.capacity
            if conditions is not None:
                shape = (self.capacity, *conditions.shape[1:])
                self.conditions = torch.empty(shape, dtype=torch.float16, device=self.device)
        start = ((self.made - 1) * self.chunk) % self.capacity
        count = min(len(captions), self.capacity - start)
        self.latents[start : start + count] = latents[:count]
        if conditions is not None and self.conditions is not None:
            self.conditions[start : start + count] = conditions[:count]
        self.captions[start : start + count] = captions[:count]
        self.filled = min(self.capacity, self.filled + count)

    def fill(self) -> None:
        while self.filled < self.capacity:
            self.refresh()

    def sample(
        self, count: int, generator: torch.Generator, with_conditions: bool = False
    ) -> tuple[torch.Tensor, list[str], torch.Tensor | None]:
        """``count`` random examples: latents, captions and, when asked of a video pool that keeps them,
        their frame-0 conditions (else None)."""
        assert self.latents is not None
        picks = torch.randint(0, self.filled, (count,), generator=generator, device=self.device)
        kept = self.conditions if with_conditions else None
        conditions = kept[picks].float() if kept is not None else None
        return self.latents[picks].float(), [self.captions[i] for i in picks.tolist()], conditions


class DiffusionStep:
    """One optimization step of the UNet, motion modules and text encoder on a batch of latents.

    The loss is the noise-prediction error, weighted per example by min(SNR, gamma) / SNR (Min-SNR
    weighting, Hang et al. 2023) when ``snr_gamma`` is set: the many nearly noise-free timesteps stop
    dominating the gradient (the paper reports 3.4x faster convergence).

    With ``drift`` (std, from-timestep), examples at timesteps from ``from`` up get a random offset per
    clip and latent channel (half of it constant, half growing from frame 0 to the last frame) added to
    their noisy latents, and the target noise takes the offset in (scaled by 1 / sqrt(1 - alpha-bar)), so
    that denoising from there still lands on the clean clip: the model learns to take the colours of
    its early, noisiest steps from the caption rather than from the latent's channel means, which
    AnyI2V's latent optimisation moves (docs/toyworld, issue 24)."""

    def __init__(
        self, unet: UNetMotionModel, text: CLIPTextModel, tokenizer: CLIPTokenizer, lr: float, device: torch.device,
        snr_gamma: float = 5.0, compile_unet: bool = False, injected: InjectedTraining | None = None,
        drift: tuple[float, int] = (0.0, 0),
    ) -> None:  # fmt: skip
        self.unet, self.text, self.tokenizer, self.device = unet, text, tokenizer, device
        self.injected = injected
        self.drift = drift
        self.parameters = [*unet.parameters(), *text.parameters()]
        self.optimizer = torch.optim.AdamW(self.parameters, lr=lr, weight_decay=0.01, fused=device.type == "cuda")
        self.alphas = DDIMScheduler(**ANIMATEDIFF_SCHEDULER).alphas_cumprod.to(device)
        self.snr_gamma = snr_gamma
        self.forward: Any = torch.compile(unet) if compile_unet else unet

    def __call__(
        self, latents: torch.Tensor, captions: Sequence[str], video: bool, generator: torch.Generator, lr: float,
        conditions: torch.Tensor | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """``latents`` (B, C, F, h, w) scaled; one caption in ten is dropped. With ``conditions`` (B, C, 1,
        h, w), each clip's frame 0 gets its condition's injected features (:mod:`.injected`) at a
        timestep from the injection's range. Returns the loss (a tensor, so that logging decides when
        to synchronize)."""
        clips, _, frames = latents.shape[:3]
        dropped = torch.rand(len(captions), generator=generator, device=self.device).lt(0.1).tolist()
        kept = ["" if drop else caption for caption, drop in zip(captions, dropped, strict=True)]
        ids = self.tokenizer(kept, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        noise = torch.randn(latents.shape, generator=generator, device=self.device)
        injected = self.injected if conditions is not None else None
        if injected is not None:
            timesteps = injected.timesteps(clips, len(self.alphas), generator, self.device)
        else:
            timesteps = torch.randint(0, len(self.alphas), (clips,), generator=generator, device=self.device)
        noisy, target = self.inputs(latents, timesteps, noise, generator)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            per_clip = self.text(ids.to(self.device))[0]
            embeds = per_clip.repeat_interleave(frames, dim=0)
            if injected is not None and conditions is not None:
                at = torch.full((clips,), injected.record_timestep, device=self.device)
                recorded = self._noised(
                    conditions, at, torch.randn(conditions.shape, generator=generator, device=self.device)
                )
                with injected.injecting(self.unet, recorded, per_clip, frames):
                    prediction = self.unet(noisy, timesteps, encoder_hidden_states=embeds).sample
            elif video:
                prediction = self.forward(noisy, timesteps, encoder_hidden_states=embeds).sample
            else:
                with motion_disabled(self.unet):
                    prediction = self.forward(noisy, timesteps, encoder_hidden_states=embeds).sample
        errors: torch.Tensor = (prediction.float() - target).square().mean(dim=(1, 2, 3, 4))
        if self.snr_gamma > 0:
            alpha = self.alphas[timesteps]
            snr = alpha / (1 - alpha)
            errors = errors * snr.clamp(max=self.snr_gamma) / snr
        loss = errors.mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(self.parameters, 1.0)
        self.optimizer.step()
        return loss.detach()

    def inputs(
        self, latents: torch.Tensor, timesteps: torch.Tensor, noise: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The noisy latents the UNet sees and the noise it is asked to predict (with the drift, if any)."""
        noisy = self._noised(latents, timesteps, noise)
        if self.drift[0] <= 0:
            return noisy, noise
        offset = self._drift(latents.shape, timesteps, generator)
        return noisy + offset, noise + offset / (1 - self.alphas[timesteps]).sqrt().view(-1, 1, 1, 1, 1)

    def _drift(self, shape: torch.Size, timesteps: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(B, C, F, 1, 1) offsets for latents of ``shape``: zero for examples below the drift's timestep."""
        std, start = self.drift
        clips, channels, frames = shape[:3]
        parts = torch.randn((2, clips, channels, 1, 1, 1), generator=generator, device=self.device) * std
        ramp = torch.linspace(0.0, 1.0, frames, device=self.device).view(1, 1, frames, 1, 1) if frames > 1 else 1.0
        drifting = (timesteps >= start).float().view(-1, 1, 1, 1, 1)
        offset: torch.Tensor = (parts[0] + parts[1] * ramp) * drifting / math.sqrt(2)
        return offset

    def _noised(self, latents: torch.Tensor, timesteps: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """(B, C, F, h, w) ``latents`` diffused to each example's timestep with ``noise`` (the forward process)."""
        alpha = self.alphas[timesteps].view(-1, 1, 1, 1, 1)
        noised: torch.Tensor = alpha.sqrt() * latents + (1 - alpha).sqrt() * noise
        return noised


def train_diffusion(run: Run, arguments: argparse.Namespace, device: torch.device) -> None:
    if not (run.out / "vae").is_dir():
        raise SystemExit(f"{run.out}: no vae/ yet; train the VAE first")
    vae = AutoencoderKL.from_pretrained(run.out / "vae", local_files_only=True).float()
    vae.to(device).eval().requires_grad_(False)
    unet, text = _load_diffusion(run, arguments.seed)
    tokenizer = CLIPTokenizer.from_pretrained(run.out / "tokenizer", model_max_length=77, local_files_only=True)
    unet.to(device).train()
    text.to(device).train()
    ema = copy.deepcopy(unet).requires_grad_(False)
    injected = InjectedTraining.of(arguments.injected_min_timestep) if arguments.injected_fraction > 0 else None
    train_step = DiffusionStep(
        unet, text, tokenizer, arguments.lr, device, arguments.snr_gamma, arguments.compile, injected,
        (arguments.drift_std, arguments.drift_from),
    )  # fmt: skip
    start = int(run.state.get("diffusion_step", 0))
    started = time.monotonic()
    pools: dict[bool, LatentPool] = {}
    if arguments.pool:
        pools = {
            True: LatentPool("video", arguments.pool, 64, arguments.seed, vae, device, conditions=injected is not None),
            False: LatentPool("image", arguments.pool * 4, 256, arguments.seed, vae, device),
        }
        for pool in pools.values():
            pool.fill()
        print(f"pools filled in {time.monotonic() - started:.1f} s", flush=True)
    step = start
    while step < start + arguments.steps and time.monotonic() - started < arguments.minutes * 60:
        generator = step_generator(arguments.seed, step, device)
        video = float(torch.rand((), generator=generator, device=device)) < arguments.video_fraction
        count = arguments.batch * (1 if video else 4)  # clips, or 4x as many single images
        inject = (
            video
            and injected is not None
            and float(torch.rand((), generator=generator, device=device)) < arguments.injected_fraction
        )
        conditions: torch.Tensor | None = None
        if pools:
            if arguments.refresh_every and step % arguments.refresh_every == 0 and step > start:
                for pool in pools.values():
                    pool.refresh()
            latents, captions, conditions = pools[video].sample(count, generator, with_conditions=inject)
        elif inject:
            batch, first = render_clips_with_conditions(arguments.seed, step, count, device, generator)
            latents, captions, conditions = (
                encode_clips(vae, batch.pixels),
                batch.captions,
                encode_clips(vae, first.pixels),
            )
        else:
            batch = render_examples(arguments.seed, step, video, count, device, generator)
            latents, captions = encode_clips(vae, batch.pixels), batch.captions
        progress = max((time.monotonic() - started) / (arguments.minutes * 60), (step - start) / arguments.steps)
        lr = arguments.lr * schedule(step - start, arguments.warmup, progress, arguments.decay)
        loss = train_step(latents, captions, video, generator, lr, conditions)
        with torch.no_grad():
            decay = min(arguments.ema, (step - start + 1) / (step - start + 10))
            torch._foreach_lerp_(list(ema.parameters()), list(unet.parameters()), 1.0 - decay)
        if step % arguments.log_every == 0:
            record = {
                "stage": "diffusion", "step": step, "loss": float(loss), "video": video, "injected": inject, "lr": lr,
                "seconds": round(time.monotonic() - started, 1),
            }  # fmt: skip
            run.log(record)
            print(json.dumps(record), flush=True)
        step += 1
        if arguments.save_every and step % arguments.save_every == 0:
            _save_diffusion(run, ema, text)
            run.state.update(diffusion_step=step, seed=arguments.seed)
            run.save_state()
    _save_diffusion(run, ema, text)
    run.state.update(diffusion_step=step, seed=arguments.seed, ema=arguments.ema)
    run.save_state()
    print(f"diffusion: step {step}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the toy world's model (resumes from --out).")
    parser.add_argument("stage", choices=["vae", "diffusion"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=math.inf, help="stop and save after this long")
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=8, help="clips per video step (images: 4x, VAE: this many)")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument(
        "--decay", type=float, default=0.0, help="diffusion: cosine-decay the learning rate by this fraction by the end"
    )
    parser.add_argument("--video-fraction", type=float, default=0.6)
    parser.add_argument("--ema", type=float, default=0.999)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--save-every", type=int, default=0)
    parser.add_argument("--pool", type=int, default=0, help="diffusion: keep this many encoded clips (and 4x images)")
    parser.add_argument("--refresh-every", type=int, default=50, help="diffusion: render a new pool chunk this often")
    parser.add_argument("--snr-gamma", type=float, default=5.0, help="diffusion: Min-SNR loss weighting (0: off)")
    parser.add_argument("--compile", action="store_true", help="diffusion: torch.compile the UNet (not yet measured)")
    parser.add_argument(
        "--injected-fraction", type=float, default=0.0,
        help="diffusion: train this fraction of video steps with frame 0 injected from a condition render",
    )  # fmt: skip
    parser.add_argument(
        "--injected-min-timestep", type=int, default=740,
        help="diffusion: injected clips train at timesteps from this up (the injection's first sampling steps)",
    )  # fmt: skip
    parser.add_argument(
        "--drift-std", type=float, default=0.0,
        help="diffusion: offset noisy latents per clip and channel by this std (target adjusted) from --drift-from up",
    )  # fmt: skip
    parser.add_argument("--drift-from", type=int, default=740, help="diffusion: the lowest timestep given a drift")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    arguments = parser.parse_args(argv)
    device = torch.device(arguments.device)
    if device.type == "cuda":
        # torch 2.11's cuDNN attention backward failed through the motion modules (FIELD-NOTES).
        torch.backends.cuda.enable_cudnn_sdp(False)
    run = Run(arguments.out)
    if arguments.stage == "vae":
        train_vae(run, arguments, device)
    else:
        train_diffusion(run, arguments, device)


if __name__ == "__main__":
    main()
