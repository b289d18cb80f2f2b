"""AnyI2V generation: inversion (cached), injection, trajectory optimization, sampling, streamed decode.

:func:`generate` is the one entry point the CLI and the daemon share. It checks the inputs before any
model work, then:

1. encodes the prompts (in chunks of 75 tokens: ``prompts``); inverts the condition image unless the
   cache has its features;
2. samples from seeded noise with the chosen sampler (``samplers.py``: DDIM as the authors by default,
   Euler, DPM++ 2M Karras or LCM; the shot's ``model.scheduler``, else the ``scheduler`` argument), on
   the authors' grid (leading spacing with offset 1: 961, 921, ..., 1 for 25 DDIM steps) or on a
   linspace one (``sampling.timestep_spacing``); steps are counted by index. Before the UNet call of
   steps ``0 .. optimization_steps - 1`` the latent is optimized so each track's box content follows
   its path (conditional embedding only, no guidance, the forward stopped after the last optimized
   layer's block); during steps ``0 .. injection_steps - 1`` (and in every optimization pass) the
   inverted features are injected into frame 0 of the conditional half;
3. decodes and hands over one frame at a time.

A ``Progress`` callback gets every step (with a cheap preview of the clean latent the step predicts, DDIM's
``pred_original_sample`` or the other samplers' own: a picture from the first step on, where the noisy latent
shows static) and every
decoded frame. A :class:`CancelToken` is checked before every UNet call, optimizer iteration and decode; cancelling
raises :class:`Cancelled` and nothing more is decoded.

Optimizer: like the reference, a new AdamW is created at every iteration by default (so each update
is close to ``lr * sign(grad)``: a fixed-size step, robust to the loss's scale); with
``fresh_optimizer_each_iteration = false`` one AdamW lives through a step's iterations.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from einops import rearrange, repeat
from numpy.typing import NDArray

from anyi2v.shared.settings import MethodSettings
from anyi2v.shared.shot import Shot

from .controls import (
    ControlLayers,
    ControlState,
    FeatureBank,
    Injection,
    Optimize,
    StopForward,
    install_controls,
)
from .features import mix_frequencies
from .inversion import InversionCache, InversionKey, invert
from .low_memory import checkpointed, guided_noise
from .models import Models
from .prompts import PromptTooLongError, check_prompt_lengths, encode_prompts
from .prompts import encode_prompt as encode_prompt  # where callers have always found it
from .samplers import build_sampler, sampler_problem
from .trajectory import TrackBoxes, feature_grid, grid_size, track_boxes, trajectory_loss, update_region

# A fixed linear map from SD latent channels to RGB: a preview costs a matrix product, not a decode.
LATENT_RGB = torch.tensor(
    [[0.298, 0.207, 0.208], [0.187, 0.286, 0.173], [-0.158, 0.189, 0.264], [-0.184, -0.271, -0.473]]
)


class Cancelled(Exception):  # noqa: N818 (the user's request, not a failure)
    """The run was cancelled; no more frames are decoded."""


class InputError(ValueError):
    """The shot or the condition image cannot run on these models; checked before any model work."""


class CancelToken:
    """Thread-safe cancel flag, checked by the pipeline at every step and iteration."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled")


@dataclass(frozen=True)
class StepEvent:
    """stage : "inversion", "optimization", "sampling" or "decode"; done / total within the stage;
    preview : (frames, h, w, 3) uint8 latent preview of the step's predicted clean latent (x0) for sampling
    steps, else None."""

    stage: str
    done: int
    total: int
    preview: NDArray[np.uint8] | None = None


@dataclass
class Progress:
    on_step: Callable[[StepEvent], None] | None = None
    on_frame: Callable[[int, NDArray[np.uint8]], None] | None = None


@dataclass
class Result:
    frames: list[NDArray[np.uint8]]
    timings: dict[str, float] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)
    inversion_cached: bool = False
    peaks: dict[str, float] = field(default_factory=dict)  # on a GPU: each stage's peak memory allocated, GiB


def chosen_scheduler(shot: Shot, scheduler: str | None = None) -> str | None:
    """The sampler's name: the shot's ``model.scheduler``, else ``scheduler`` (None: the default, DDIM)."""
    if shot.model is not None and shot.model.scheduler is not None:
        return shot.model.scheduler
    return scheduler


def check_inputs(
    models: Models, shot: Shot, condition: NDArray[np.uint8] | None, control: bool, scheduler: str | None = None
) -> None:
    """Every check that needs no model work; raises :class:`InputError` naming the problem."""
    problem = sampler_problem(chosen_scheduler(shot, scheduler), shot.sampling.steps, models.scheduler.config)
    if problem is not None:
        raise InputError(problem)
    try:
        check_prompt_lengths(models, shot.prompt, shot.negative_prompt)
    except PromptTooLongError as error:
        raise InputError(str(error)) from None
    out = shot.output
    factor = models.vae_scale_factor
    if out.width % factor or out.height % factor:
        raise InputError(
            f"output {out.width}x{out.height}: width and height must be multiples of {factor} for this VAE"
        )
    if out.n_frames > models.max_frames:
        raise InputError(
            f"output.n_frames = {out.n_frames}: the loaded motion adapter handles at most {models.max_frames} frames"
        )
    if not control:
        return
    if condition is None:
        raise InputError("no condition image: AnyI2V needs one (or run without control)")
    if condition.dtype != np.uint8 or condition.ndim != 3 or condition.shape[2] != 3:
        raise InputError(
            f"condition image must be (height, width, 3) uint8 RGB, got {condition.dtype} {condition.shape}"
        )
    if condition.shape[:2] != (out.height, out.width):
        raise InputError(
            f"condition image is {condition.shape[1]}x{condition.shape[0]},"
            f" the shot's output is {out.width}x{out.height}"
        )
    modules = dict(models.unet.named_modules())
    method = shot.method
    wanted = [*method.query_layers, *method.residual_layers, *optimized_layers(method)]
    missing = [path for path in dict.fromkeys(wanted) if path not in modules]
    if missing:
        raise InputError(f"layers not in the loaded UNet: {', '.join(missing)}")


def optimized_layers(method: MethodSettings) -> tuple[str, ...]:
    """The layers whose features the loss aligns: attention layers for queries; for residual states, the
    ResNet block at the same place (``up_blocks.X.attentions.Y...`` -> ``up_blocks.X.resnets.Y``)."""
    if method.optimize_features == "query":
        return tuple(method.optimized_layers)
    out = []
    for path in method.optimized_layers:
        parts = path.split(".")
        if len(parts) >= 4 and parts[2] == "attentions":
            out.append(".".join([parts[0], parts[1], "resnets", parts[3]]))
        else:
            out.append(path)
    return tuple(out)


def latent_preview(latents: torch.Tensor) -> NDArray[np.uint8]:
    """(1, 4, F, h, w) latents to (F, h, w, 3) uint8 through :data:`LATENT_RGB`."""
    rgb = torch.einsum("cfhw,cr->fhwr", latents[0].float().cpu(), LATENT_RGB)
    return np.asarray(((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy())


def generate(
    models: Models,
    shot: Shot,
    condition: NDArray[np.uint8] | None,
    *,
    control: bool = True,
    cache: InversionCache | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    scheduler: str | None = None,
    low_memory: bool = False,
) -> Result:
    """Run the shot. ``control=False`` is plain AnimateDiff from the same seed (the baseline). ``scheduler``:
    the sampler (a name of ``shared.model_names.SCHEDULERS``) when the shot's ``model.scheduler`` names
    none; None is DDIM. ``low_memory``: the same computation in less GPU memory (``low_memory.py``)."""
    check_inputs(models, shot, condition, control, scheduler)
    models.settle(low_memory)
    progress = progress or Progress()
    cancel = cancel or CancelToken()
    method = shot.method
    result = Result(frames=[])
    started = time.perf_counter()

    def stage_done(name: str, since: float) -> float:
        if models.device.type == "cuda":
            torch.cuda.synchronize(models.device)
            peak = torch.cuda.max_memory_allocated(models.device) / 2**30
            result.peaks[name] = max(result.peaks.get(name, 0.0), peak)
            torch.cuda.reset_peak_memory_stats(models.device)
        now = time.perf_counter()
        result.timings[name] = result.timings.get(name, 0.0) + now - since
        return now

    def report(stage: str, done: int, total: int, preview: NDArray[np.uint8] | None = None) -> None:
        cancel.check()
        if progress.on_step is not None:
            progress.on_step(StepEvent(stage, done, total, preview))

    guided = shot.sampling.guidance_scale > 1.0
    # prompts past 75 tokens come in chunks; the guidance batch's halves are padded to equal lengths
    with models.lent(models.text_encoder):
        prompts = encode_prompts(models, shot.prompt, shot.negative_prompt if guided else None)
    cond_embeds, uncond_embeds = prompts.conditional, prompts.unconditional
    # The UNet folds frames into the batch, so the text embedding goes with every frame.
    frames = shot.output.n_frames
    cond_frames = repeat(cond_embeds, "b n d -> (b f) n d", f=frames)
    embeds = (
        repeat(torch.cat([uncond_embeds, cond_embeds]), "b n d -> (b f) n d", f=frames)
        if uncond_embeds is not None
        else cond_frames
    )

    inject_any = control and method.structure_injection and method.injection_steps > 0
    optimize_any = control and method.trajectory_control and method.optimization_steps > 0 and bool(shot.tracks)
    bank = FeatureBank()
    mark = time.perf_counter()
    if inject_any or optimize_any:
        assert condition is not None
        key = InversionKey.of(models, condition, shot.prompt, method)
        cached = cache.get(key, models.device) if cache is not None else None
        if cached is not None:
            bank, result.inversion_cached = cached, True
        else:
            with models.lent(models.vae):
                bank = invert(models, condition, prompts.prompt, method, on_step=lambda d, t: report("inversion", d, t))
            if cache is not None:
                cache.put(key, bank)
    mark = stage_done("inversion", mark)

    factor = models.vae_scale_factor
    shape = (1, models.unet.config.in_channels, frames, shot.output.height // factor, shot.output.width // factor)
    generator = torch.Generator("cpu").manual_seed(shot.sampling.seed)
    sampler = build_sampler(
        chosen_scheduler(shot, scheduler),
        models.scheduler.config,
        shot.sampling.timestep_spacing,
        shot.sampling.steps,
        models.device,
    )
    latents = torch.randn(shape, generator=generator, dtype=torch.float32).to(models.device)
    latents = latents * sampler.init_noise_sigma

    layers = ControlLayers(
        query_layers=tuple(method.query_layers) if method.inject_query or method.kv_copy else (),
        residual_layers=tuple(method.residual_layers) if method.inject_residual else (),
        captured=optimized_layers(method) if optimize_any else (),
    )
    state = ControlState()
    tracks = track_boxes(shot) if optimize_any else []
    region = (
        update_region(shot, shape[-2], shape[-1]).to(models.device)
        if optimize_any and method.update_region == "boxes"
        else None
    )
    timesteps = sampler.timesteps
    controlled = install_controls(models.unet, layers, state, bank) if control else contextlib.nullcontext()
    with controlled, checkpointed(models.unet, low_memory and optimize_any):
        for index, t in enumerate(timesteps):
            inject = inject_any and index < method.injection_steps
            if optimize_any and index < method.optimization_steps:
                # on the UNet's input (samplers.py), so the steps have the size the authors chose for DDIM
                model_input = sampler.model_input(latents, t)
                model_input = _optimize(
                    models, shot, model_input, t, cond_frames, state, tracks, region, inject, index, result, report
                )
                latents = sampler.from_model_input(model_input, t)
                mark = stage_done("optimization", mark)
            report("sampling", index, len(timesteps))
            model_input = sampler.model_input(latents, t)
            injection = Injection.of(method, frames, conditional_index=1 if guided else 0) if inject else None
            noise = guided_noise(models, model_input, t, embeds, state, index, injection, apart=low_memory)
            if guided:
                uncond, cond = noise.chunk(2)
                noise = uncond + shot.sampling.guidance_scale * (cond - uncond)
            latents, clean = sampler.step(noise, t, latents, generator)
            # A stage's time is taken (a device sync) where the next step is of another stage: steps of
            # one stage queue up on the GPU without waiting for each other.
            following = index + 1
            if (
                following == len(timesteps)
                or (optimize_any and following < method.optimization_steps)
                or (inject_any and following == method.injection_steps)
            ):
                mark = stage_done("injection" if inject else "sampling", mark)
            # the clean latent this step predicts (early noisy latents would preview as static), made
            # only for a listener: it waits for the GPU
            preview = latent_preview(clean) if progress.on_step is not None else None
            report("sampling", index + 1, len(timesteps), preview)

    with models.lent(models.vae):
        _decode(models, latents, report, result.frames, progress.on_frame)
    if progress.on_step is not None:  # every stage ends with done == total
        progress.on_step(StepEvent("decode", frames, frames))
    stage_done("decode", mark)
    result.timings["total"] = time.perf_counter() - started
    return result


def _decode(
    models: Models,
    latents: torch.Tensor,
    report: Callable[[str, int, int], None],
    out: list[NDArray[np.uint8]],
    on_frame: Callable[[int, NDArray[np.uint8]], None] | None,
) -> None:
    """Decode ``latents`` (1, C, F, h, w) frame by frame into ``out`` (uint8 RGB), handing each frame to
    ``on_frame`` as it comes. On a GPU a frame is copied to the host while the next one decodes, so that
    neither the copy nor what ``on_frame`` does (encoding, PNGs, streaming) leaves the GPU idle."""
    scaling = models.vae.config.scaling_factor
    frames = latents.shape[2]
    waiting: tuple[int, torch.Tensor, torch.cuda.Event | None] | None = None
    for frame in range(frames + 1):
        decoded = None
        if frame < frames:
            report("decode", frame, frames)
            with torch.no_grad():
                image = models.vae.decode((latents[:, :, frame] / scaling).to(models.dtype)).sample
            pixels = rearrange(((image[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8), "c h w -> h w c")
            copied = torch.cuda.Event() if pixels.is_cuda else None  # type: ignore[no-untyped-call]
            decoded = (frame, pixels.to("cpu", non_blocking=copied is not None), copied)
            if copied is not None:
                copied.record()
        if waiting is not None:  # the frame before, whose copy ran while this one was decoded
            index, on_host, copied = waiting
            if copied is not None:
                copied.synchronize()
            out.append(np.array(on_host.numpy()))  # out of the (pinned) copy buffer
            if on_frame is not None:
                on_frame(index, out[-1])
        waiting = decoded


def _optimize(
    models: Models,
    shot: Shot,
    latents: torch.Tensor,
    t: torch.Tensor,
    cond_embeds: torch.Tensor,
    state: ControlState,
    tracks: list[TrackBoxes],
    region: torch.Tensor | None,
    inject: bool,
    step: int,
    result: Result,
    report: Callable[..., None],
) -> torch.Tensor:
    """Optimize the latent before one denoising step; returns the new latent (no gradient). ``latents`` is
    the UNet's input at ``t`` (``Sampler.model_input``), and so is what comes back. ``region`` (frames, h, w),
    when given, zeroes the gradient outside it, so the optimizer leaves that part of the latent alone."""
    method = shot.method
    original = latents.detach()
    latent = original.clone().requires_grad_(True)
    scaler = torch.amp.GradScaler(models.device.type, enabled=models.dtype == torch.float16)
    # The fused AdamW takes the scaler's inf check on the device: no host sync per iteration.
    fused = models.device.type == "cuda"
    optimizer = torch.optim.AdamW([latent], lr=method.learning_rate, fused=fused)
    captured_paths = optimized_layers(method)
    # Every optimization pass injects whenever structure injection is on (not only during its steps).
    injected = inject or method.structure_injection
    injection = Injection.of(method, shot.output.n_frames, conditional_index=0) if injected else None
    size = grid_size(shot)
    losses: list[torch.Tensor] = []
    passes = method.optimization_steps * method.optimization_iterations
    for iteration in range(method.optimization_iterations):
        report("optimization", step * method.optimization_iterations + iteration, passes)
        if method.fresh_optimizer_each_iteration:
            optimizer = torch.optim.AdamW([latent], lr=method.learning_rate, fused=fused)
        optimizer.zero_grad(set_to_none=True)
        state.set(Optimize(step, capture=frozenset(captured_paths), injection=injection))
        with contextlib.suppress(StopForward):
            models.unet(latent.to(models.dtype), t, encoder_hidden_states=cond_embeds)
        missing = [path for path in captured_paths if path not in state.captured]
        if missing:
            raise RuntimeError(f"the UNet's forward pass never ran {', '.join(missing)}")
        captured = [state.captured[path] for path in captured_paths]
        # still injecting, capturing nothing: a checkpointed backward pass recomputes what the forward made
        state.set(Optimize(step, capture=frozenset(), injection=injection))
        grids = feature_grid(captured, shot.output.n_frames, size, method.pca_components, method.pca_solver)
        loss = trajectory_loss(grids, tracks, method)
        losses.append(loss.detach())
        if loss.requires_grad:
            scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
            if region is not None and latent.grad is not None:
                latent.grad.mul_(region)  # (b, c, f, h, w) * (f, h, w)
            scaler.step(optimizer)
            scaler.update()
        state.idle()
    result.losses.extend(float(value) for value in torch.stack(losses).cpu())
    if step == method.optimization_steps - 1:  # the stage ends with done == total, as every stage does
        report("optimization", passes, passes)
    new = latent.detach()
    if region is not None:  # AdamW's weight decay moved the rest a little
        new = torch.where(region > 0, new, original)
    if method.high_frequency_filter:
        # per frame and channel: the FFT runs over the last two axes
        optimized, before = (rearrange(x, "b c f h w -> b f c h w") for x in (new, original))
        mixed = mix_frequencies(optimized, before, method.filter_cutoff, method.filter_order)
        new = rearrange(mixed, "b f c h w -> b c f h w")
    return new
