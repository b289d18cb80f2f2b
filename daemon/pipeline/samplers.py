"""The samplers a shot may ask for, by name, built on the models' own noise schedule.

``ddim`` (the default) is the AnyI2V authors' sampler; ``euler`` is diffusers' Euler; ``dpmpp_2m_karras``
is DPM++ 2M (``dpmsolver++``, second order) on Karras sigmas; ``lcm`` is the latent consistency sampler
that AnimateLCM motion modules are distilled for. Each is a diffusers scheduler made with ``from_config``
from the models' scheduler config (its betas and 1000 training steps), with the shot's timestep spacing
and offset 1 (``euler`` and ``ddim`` follow them; DPM++ places its steps by Karras sigmas and LCM on its
distillation grid, whatever the spacing). Inversion does not go through here: it stays DDIM on the
models' ``alphas_cumprod`` (``inversion.py``).

Two spaces of latents. DDIM, DPM++ and LCM keep the latent where the UNet sees it: ``sqrt(a) x0 +
sqrt(1 - a) eps`` for the noise level ``a`` of the step. Euler keeps ``x0 + sigma eps`` (sigma =
``sqrt((1 - a) / a)``), larger by ``sqrt(sigma^2 + 1)``, and the UNet sees it divided by that
(``scale_model_input``). :meth:`Sampler.model_input` is that division (nothing for the others: DDIM's
latent is passed through untouched, bit for bit), and :meth:`Sampler.from_model_input` the way back. The
AnyI2V optimisation works on the model input, so its AdamW steps (close to ``lr * sign(grad)``) are the
same size relative to the picture with every sampler, as the authors calibrated them for DDIM.

Steps are numbered by their index in :attr:`Sampler.timesteps`, never by the timestep's value (Euler's
and Karras timesteps are floats, and LCM's grid is not DDIM's): "the first K steps" of injection and
optimisation are the first K indices.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, LCMScheduler
from diffusers.configuration_utils import FrozenDict
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from anyi2v.shared.model_names import DEFAULT_SCHEDULER, SCHEDULERS

__all__ = ["Sampler", "SamplerError", "build_sampler", "sampler_problem"]


class SamplerError(ValueError):
    """A sampler that cannot run: an unknown name, or a step count it does not take; the message is one line."""


def _ddim_x0(scheduler: Any, output: Any) -> torch.Tensor:
    x0: torch.Tensor = output.pred_original_sample
    return x0


def _dpm_x0(scheduler: Any, output: Any) -> torch.Tensor:
    # dpmsolver++ turns the noise prediction into the clean latent it predicts and keeps it for the next
    # step's second-order update: the last one kept is this step's.
    x0: torch.Tensor = scheduler.model_outputs[-1]
    return x0


def _lcm_x0(scheduler: Any, output: Any) -> torch.Tensor:
    x0: torch.Tensor = output.denoised  # the consistency function's output: LCM's own clean estimate
    return x0


@dataclass(frozen=True)
class _Kind:
    scheduler: type[SchedulerMixin]
    settings: dict[str, Any]
    clean: Callable[[Any, Any], torch.Tensor]


_KINDS: dict[str, _Kind] = {
    "ddim": _Kind(DDIMScheduler, {}, _ddim_x0),
    "euler": _Kind(EulerDiscreteScheduler, {"use_karras_sigmas": False}, _ddim_x0),
    "dpmpp_2m_karras": _Kind(
        DPMSolverMultistepScheduler,
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
        _dpm_x0,
    ),
    "lcm": _Kind(LCMScheduler, {}, _lcm_x0),
}
assert tuple(_KINDS) == SCHEDULERS, "every name of shared.model_names.SCHEDULERS has a sampler here"


def _known(name: str | None) -> str:
    chosen = DEFAULT_SCHEDULER if name is None else name
    if chosen not in _KINDS:
        raise SamplerError(f"unknown scheduler {chosen!r}: choose one of {', '.join(SCHEDULERS)}")
    return chosen


def _configured(name: str, config: FrozenDict | dict[str, Any], spacing: str) -> SchedulerMixin:
    kind = _KINDS[name]
    accepted = inspect.signature(kind.scheduler.__init__).parameters
    settings = {**kind.settings, "steps_offset": 1}
    if "timestep_spacing" in accepted:
        settings["timestep_spacing"] = spacing
    # keys of the models' config that this scheduler does not take (DDIM's clip_sample for Euler, say)
    # are left out here rather than passed on for diffusers to warn about
    own = {key: value for key, value in dict(config).items() if key in accepted and key not in settings}
    scheduler: SchedulerMixin = kind.scheduler.from_config(own, **settings)
    return scheduler


def sampler_problem(name: str | None, steps: int, config: FrozenDict | dict[str, Any]) -> str | None:
    """Why ``name`` cannot sample ``steps`` steps on the schedule ``config`` (one line), or None."""
    try:
        chosen = _known(name)
    except SamplerError as error:
        return str(error)
    if chosen == "lcm":
        default = inspect.signature(LCMScheduler.__init__).parameters["original_inference_steps"].default
        limit = int(dict(config).get("original_inference_steps", default))
        if steps > limit:
            return f"sampling.steps = {steps}: the lcm scheduler takes at most {limit} steps (AnimateLCM runs 4 to 8)"
    return None


class Sampler:
    """One run's scheduler, fresh (its state is the run's own), with the timesteps set."""

    def __init__(self, name: str, scheduler: SchedulerMixin) -> None:
        self.name = name
        self.scheduler: Any = scheduler
        self._clean = _KINDS[name].clean

    @property
    def timesteps(self) -> torch.Tensor:
        timesteps: torch.Tensor = self.scheduler.timesteps
        return timesteps

    @property
    def init_noise_sigma(self) -> float | torch.Tensor:
        """What unit-variance noise is multiplied by to make the first latent."""
        sigma: float | torch.Tensor = self.scheduler.init_noise_sigma
        return sigma

    def model_input(self, latents: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``latents`` as the UNet takes them at timestep ``t`` (``scale_model_input``; DDIM's unchanged)."""
        scaled: torch.Tensor = self.scheduler.scale_model_input(latents, t)
        return scaled

    def from_model_input(self, model_input: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`model_input` at the same timestep."""
        scale = float(self.scheduler.scale_model_input(torch.ones(()), t))
        return model_input if scale == 1.0 else model_input / scale

    def step(
        self, noise: torch.Tensor, t: torch.Tensor, latents: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step from the (guided) noise prediction: (the next latent, the clean latent this step
        predicts). ``generator`` feeds the samplers that add fresh noise (LCM between its steps)."""
        output = self.scheduler.step(noise, t, latents, generator=generator)
        previous: torch.Tensor = output.prev_sample
        return previous, self._clean(self.scheduler, output)


def build_sampler(
    name: str | None, config: FrozenDict | dict[str, Any], spacing: str, steps: int, device: torch.device
) -> Sampler:
    """The sampler ``name`` (None: DDIM) on the schedule ``config`` (the models' scheduler config), with
    ``spacing`` ("leading", offset 1, as the authors; or "linspace") and ``steps`` steps.

    Raises :class:`SamplerError` for an unknown name or a step count the sampler does not take."""
    problem = sampler_problem(name, steps, config)
    if problem is not None:
        raise SamplerError(problem)
    chosen = _known(name)
    scheduler: Any = _configured(chosen, config, spacing)
    scheduler.set_timesteps(steps, device=device)
    return Sampler(chosen, scheduler)
