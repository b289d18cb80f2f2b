"""The samplers (issue 20, item 5): DDIM as the authors (the default, its output unchanged), Euler, DPM++ 2M
Karras and LCM. Each on the tiny random model: frames with finite latents, cancel mid-sampling, the UNet
given its input at the step's noise level, injection and optimisation on the first steps by index; and on
the toy-world model: control still moves the box."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch

from anyi2v.daemon.pipeline.controls import ControlMode, ControlState, Optimize, Sample
from anyi2v.daemon.pipeline.generate import (
    InputError,
    Progress,
    StepEvent,
    chosen_scheduler,
    generate,
    latent_preview,
)
from anyi2v.daemon.pipeline.inversion import InversionCache
from anyi2v.daemon.pipeline.loading import load_models
from anyi2v.daemon.pipeline.models import Models, random_models
from anyi2v.daemon.pipeline.samplers import Sampler, SamplerError, build_sampler
from anyi2v.daemon.toyworld import WEIGHTS
from anyi2v.daemon.toyworld.evaluate import held_out_shots, track_centres
from anyi2v.shared.model_names import SCHEDULERS
from anyi2v.shared.shot import Shot

from .test_pipeline import FRAMES, SIZE, UNetCalls, assert_cancel_after_first_step, condition, make_shot
from .test_previews import ddim_start


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    return random_models("tiny", seed=0, tokenizer_dir=tmp_path_factory.mktemp("tokenizer"))


@dataclass
class Run:
    """One controlled run and what it showed on the way."""

    frames: list[np.ndarray]
    losses: list[float]
    modes: list[Sample | Optimize] = field(default_factory=list)  # every Sample / Optimize the loop set
    inputs: list[tuple[Sample | Optimize, float]] = field(default_factory=list)  # (mode, std of the UNet's input)
    finite: list[bool] = field(default_factory=list)  # per sampler step: next latent and x0 finite


def watched_run(models: Models, shot: Shot, scheduler: str | None) -> Run:
    run = Run([], [])
    current: list[ControlMode | None] = [None]
    real_set, real_step = ControlState.set, Sampler.step

    def set_mode(state: ControlState, mode: ControlMode) -> None:
        current[0] = mode
        if isinstance(mode, Sample | Optimize):
            run.modes.append(mode)
        real_set(state, mode)

    def step(sampler: Sampler, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        latents, clean = real_step(sampler, *args, **kwargs)
        run.finite.append(bool(torch.isfinite(latents).all()) and bool(torch.isfinite(clean).all()))
        return latents, clean

    def unet_input(module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        mode = current[0]
        if isinstance(mode, Sample | Optimize):  # inversion's calls leave the mode idle
            run.inputs.append((mode, float(args[0].detach().float().std())))

    handle = models.unet.register_forward_pre_hook(unet_input)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(ControlState, "set", set_mode)
            patch.setattr(Sampler, "step", step)
            result = generate(models, shot, condition(), scheduler=scheduler)
    finally:
        handle.remove()
    run.frames, run.losses = result.frames, result.losses
    return run


@pytest.fixture(scope="module")
def runs(models: Models) -> dict[str, Run]:
    """Every sampler once, controlled, from the same seed."""
    return {name: watched_run(models, make_shot(), name) for name in SCHEDULERS}


@pytest.mark.parametrize("name", SCHEDULERS)
def test_each_sampler_makes_frames_from_finite_latents(runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    shot = make_shot()
    assert len(run.frames) == FRAMES
    assert all(frame.shape == (SIZE, SIZE, 3) and frame.dtype == np.uint8 for frame in run.frames)
    assert run.finite == [True] * shot.sampling.steps
    assert np.isfinite(run.losses).all()
    assert len(run.losses) == shot.method.optimization_steps * shot.method.optimization_iterations


@pytest.mark.parametrize("name", SCHEDULERS)
def test_injection_and_optimisation_fall_on_the_first_steps_by_index(runs: dict[str, Run], name: str) -> None:
    """Euler's and Karras timesteps are floats and LCM's grid is its own: "the first K steps" are indices."""
    method, steps = make_shot().method, make_shot().sampling.steps
    samples = [mode for mode in runs[name].modes if isinstance(mode, Sample)]
    assert [mode.step for mode in samples] == list(range(steps))
    assert [mode.step for mode in samples if mode.injection is not None] == list(range(method.injection_steps))
    # each pass's forward captures; its backward keeps injecting without capturing (a recompute's mode)
    optimized = [mode.step for mode in runs[name].modes if isinstance(mode, Optimize) and mode.capture]
    iterations = method.optimization_iterations
    assert optimized == [step for step in range(method.optimization_steps) for _ in range(iterations)]


@pytest.mark.parametrize("name", SCHEDULERS)
def test_the_unet_sees_its_input_at_the_noise_level_of_the_step(runs: dict[str, Run], name: str) -> None:
    """The first step's latent is unit noise times the sampler's ``init_noise_sigma`` (about 14.6 for
    Euler): scaled back for every UNet call of that step, optimisation passes included, the UNet sees
    unit noise whatever the sampler."""
    first = [std for mode, std in runs[name].inputs if mode.step == 0]
    assert len(first) == make_shot().method.optimization_iterations + 1
    assert all(0.8 < std < 1.25 for std in first), first


def test_different_samplers_give_different_frames_from_the_same_seed(runs: dict[str, Run]) -> None:
    for one, two in itertools.combinations(SCHEDULERS, 2):
        pairs = zip(runs[one].frames, runs[two].frames, strict=True)
        assert any(not np.array_equal(a, b) for a, b in pairs), (one, two)


def test_ddim_is_the_default_from_the_argument_or_the_shot(models: Models, runs: dict[str, Run]) -> None:
    default = generate(models, make_shot(), condition())
    chosen = make_shot(schema_version=4, model={"scheduler": "ddim"})
    by_shot = generate(models, chosen, condition(), scheduler="euler")  # the shot's choice wins
    for other in (default, by_shot):
        assert all(np.array_equal(a, b) for a, b in zip(runs["ddim"].frames, other.frames, strict=True))
        assert other.losses == runs["ddim"].losses


def test_the_shots_scheduler_comes_before_the_argument() -> None:
    assert chosen_scheduler(make_shot(), None) is None
    assert chosen_scheduler(make_shot(), "lcm") == "lcm"
    assert chosen_scheduler(make_shot(schema_version=4, model={"scheduler": "euler"}), "lcm") == "euler"
    assert chosen_scheduler(make_shot(schema_version=4, model={"checkpoint": "x"}), "lcm") == "lcm"


def ddim_by_hand(models: Models, shot: Shot) -> tuple[list[np.ndarray], torch.Tensor]:
    """Plain (uncontrolled) guided DDIM on the authors' schedule, written out: the previews and the last latent."""
    scheduler, latents, embeds = ddim_start(models, shot)
    previews = []
    for t in scheduler.timesteps:
        with torch.no_grad():
            uncond, cond = models.unet(torch.cat([latents, latents]), t, encoder_hidden_states=embeds).sample.chunk(2)
        stepped = scheduler.step(uncond + shot.sampling.guidance_scale * (cond - uncond), t, latents)
        latents = stepped.prev_sample
        previews.append(latent_preview(stepped.pred_original_sample))
    return previews, latents


def test_ddim_through_the_sampler_is_bit_identical_to_ddim_by_hand(models: Models) -> None:
    shot = make_shot()
    previews: list[np.ndarray] = []
    decoded: list[torch.Tensor] = []

    def on_step(event: StepEvent) -> None:
        if event.preview is not None:
            previews.append(event.preview)

    handle = models.vae.post_quant_conv.register_forward_pre_hook(lambda module, args: decoded.append(args[0]))
    try:
        generate(models, shot, None, control=False, scheduler="ddim", progress=Progress(on_step))
    finally:
        handle.remove()
    expected_previews, latents = ddim_by_hand(models, shot)
    assert all(np.array_equal(a, b) for a, b in zip(previews, expected_previews, strict=True))
    scaling = models.vae.config.scaling_factor
    assert all(torch.equal(decoded[frame], latents[:, :, frame] / scaling) for frame in range(FRAMES))


def test_ddim_hands_the_optimisation_its_latent_untouched(models: Models) -> None:
    sampler = build_sampler("ddim", models.scheduler.config, "leading", 3, models.device)
    latents = torch.randn(1, 4, FRAMES, 8, 8)
    for t in sampler.timesteps:
        assert sampler.model_input(latents, t) is latents
        assert sampler.from_model_input(latents, t) is latents


def test_the_samplers_are_the_diffusers_ones_on_the_models_schedule(models: Models) -> None:
    built = {name: build_sampler(name, models.scheduler.config, "leading", 25, models.device) for name in SCHEDULERS}
    assert [type(sampler.scheduler).__name__ for sampler in built.values()] == [
        "DDIMScheduler", "EulerDiscreteScheduler", "DPMSolverMultistepScheduler", "LCMScheduler"
    ]  # fmt: skip
    for sampler in built.values():
        config = sampler.scheduler.config
        assert (config.num_train_timesteps, config.beta_start, config.beta_end, config.beta_schedule) == (
            1000, 0.00085, 0.012, "linear"
        )  # fmt: skip
    assert built["ddim"].timesteps[:3].tolist() == [961, 921, 881]  # the authors' grid
    assert built["euler"].timesteps[:3].tolist() == [961, 921, 881]  # the same grid, as floats
    dpm = built["dpmpp_2m_karras"].scheduler.config
    assert (dpm.algorithm_type, dpm.solver_order, dpm.use_karras_sigmas) == ("dpmsolver++", 2, True)
    linspace = build_sampler("euler", models.scheduler.config, "linspace", 25, models.device)
    assert linspace.timesteps[0] == 999  # the shot's spacing reaches the schedulers that have one


def test_an_unknown_name_is_refused_in_one_line_before_any_model_work(models: Models) -> None:
    refusal = r"^unknown scheduler 'dpm\+\+': choose one of ddim, euler, dpmpp_2m_karras, lcm$"
    with pytest.raises(SamplerError, match=refusal):
        build_sampler("dpm++", models.scheduler.config, "leading", 3, models.device)
    calls = UNetCalls(models)
    try:
        with pytest.raises(InputError, match=r"^unknown scheduler 'dpm\+\+'"):
            generate(models, make_shot(), condition(), scheduler="dpm++")
        with pytest.raises(InputError, match=r"^sampling.steps = 60: the lcm scheduler takes at most 50 steps"):
            generate(models, make_shot(sampling={"seed": 1, "steps": 60}), condition(), scheduler="lcm")
    finally:
        calls.handle.remove()
    assert calls.count == 0


@pytest.mark.parametrize("name", SCHEDULERS)
def test_cancel_stops_each_sampler_mid_sampling_and_decodes_nothing(models: Models, name: str) -> None:
    assert_cancel_after_first_step(models, None, control=False, scheduler=name)


# --- the toy-world model: control still moves the box ------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> Models:
    return load_models(WEIGHTS, device="cpu", dtype="fp32")


@pytest.fixture(scope="module")
def inversions() -> InversionCache:
    return InversionCache()  # one inversion serves every sampler: it does not depend on the sampler


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "steps"),
    [
        ("euler", 10),
        ("dpmpp_2m_karras", 10),
        pytest.param(
            "lcm",
            4,
            marks=pytest.mark.xfail(
                strict=True,
                reason="on the toy model (not LCM-distilled) LCM's fresh noise at every step discards what the"
                " latent optimisation wrote: measured 1 px the wrong way where DDIM gains 16 px",
            ),
        ),
    ],
)
def test_control_moves_the_boxed_content_towards_its_target_with_each_sampler(
    shipped: Models, inversions: InversionCache, name: str, steps: int
) -> None:
    """The held-out shot and setting of ``test_toyworld_model`` (which holds DDIM's control; the box travels
    43 px), the same seed with and without control: with control, the tracked content ends further along
    the target's path, by a tenth of the path at least. Measured on the final frame: DDIM 16 px, Euler 10,
    DPM++ 2M Karras 94 (it overshoots: its first steps are noisier, from t = 999 where DDIM's 10 start at 901)."""
    held = held_out_shots(5, steps=steps)[4]
    centres = {}
    for control in (False, True):
        result = generate(shipped, held.shot, held.condition, control=control, cache=inversions, scheduler=name)
        centres[control] = track_centres(np.stack(result.frames), held.target[0])
    target = (held.target[:, :2] + held.target[:, 2:]) / 2
    path = target[-1] - target[0]
    gained = float((centres[True][-1] - centres[False][-1]) @ path / np.linalg.norm(path))
    assert gained > 0.1 * np.linalg.norm(path), (gained, centres)
