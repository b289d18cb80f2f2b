"""DDIM inversion of the condition image, and the cache that lets a re-run skip it.

The condition image is VAE-encoded (the latent distribution's mean: deterministic), then walked up the
1000-step training schedule one timestep at a time with the deterministic DDIM update, as a single
frame with the motion modules off, conditioned on the prompt and without classifier-free guidance.
The UNet call at ``inversion_timestep`` (201 by default) records the controlled layers' queries and
residual states into a :class:`FeatureBank`; nothing else of the inversion is kept.

The walk does not depend on the sampling grid (``Sampling.timestep_spacing``): as in the authors' code,
it stops at t = 201 on the 1000-step schedule whatever the grid, and the features recorded there are
injected during the first denoising steps (at 961, 921, 881 and 841 on the authors' 25-step grid).

We write the inverse update ourselves instead of using diffusers' ``DDIMInverseScheduler``: the
inversion only needs the scheduler's ``alphas_cumprod`` on the full 1000-step grid, one step at a time,
and that class refuses the ``linspace`` spacing a shot may ask for.

A UNet whose motion modules cannot be turned off is refused (``controls.MotionModulesNotFound``)
before any UNet call, never inverted with its temporal layers on.

Cost: ``inversion_timestep + 1`` UNet calls at batch 1, one frame; on CUDA all but the few first and
the last are replayed from a CUDA graph (:class:`GraphedCall`).
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from numpy.typing import NDArray
from torch import nn

from anyi2v.shared.durable import write_file
from anyi2v.shared.settings import MethodSettings

from .controls import ControlLayers, ControlState, FeatureBank, Record, install_controls, motion_disabled
from .models import Models

logger = logging.getLogger(__name__)


def image_to_tensor(image: NDArray[np.uint8], models: Models) -> torch.Tensor:
    """(h, w, 3) uint8 RGB to a (1, 3, h, w) tensor in -1..1 on the models' device and dtype."""
    tensor = rearrange(torch.from_numpy(np.ascontiguousarray(image)), "h w c -> 1 c h w").float() / 127.5 - 1.0
    return tensor.to(device=models.device, dtype=models.dtype)


@torch.no_grad()
def encode_image(models: Models, image: NDArray[np.uint8]) -> torch.Tensor:
    """(1, 4, h/8, w/8) scaled latent of the image (the mean of the VAE's latent distribution)."""
    posterior = models.vae.encode(image_to_tensor(image, models)).latent_dist
    latent: torch.Tensor = posterior.mean * models.vae.config.scaling_factor
    return latent


def inversion_layers(settings: MethodSettings) -> ControlLayers:
    """The layers whose features inversion records: those that injection will write."""
    return ControlLayers(query_layers=tuple(settings.query_layers), residual_layers=tuple(settings.residual_layers))


@torch.no_grad()
def invert(
    models: Models,
    image: NDArray[np.uint8],
    prompt_embeds: torch.Tensor,
    settings: MethodSettings,
    on_step: Callable[[int, int], None] | None = None,
    cuda_graph: bool | None = None,
) -> FeatureBank:
    """Invert ``image`` up to ``settings.inversion_timestep`` and return the features recorded there.

    prompt_embeds : (1, tokens, dim) conditional text embedding. ``on_step(done, total)`` is called after
    every UNet call (it may raise to cancel). ``cuda_graph``: replay the UNet calls from a CUDA graph
    (:class:`GraphedCall`); by default on CUDA devices.
    """
    unet = models.unet
    last = settings.inversion_timestep
    alphas = models.scheduler.alphas_cumprod.to(device=models.device, dtype=torch.float32)
    if last >= len(alphas):
        raise ValueError(f"inversion_timestep {last} is past the scheduler's {len(alphas)} training steps")
    latent = rearrange(encode_image(models, image).float(), "b c h w -> b c 1 h w")  # one frame
    bank = FeatureBank()
    state = ControlState()  # idle until the last call
    total = last + 1
    graphed = models.device.type == "cuda" if cuda_graph is None else cuda_graph
    with motion_disabled(unet, models.identity), install_controls(unet, inversion_layers(settings), state, bank):
        call = GraphedCall(unet, prompt_embeds, models.dtype) if graphed else None
        for t in range(last):
            if call is not None:
                eps = call(latent, t)
            else:
                eps = unet(latent.to(models.dtype), t, encoder_hidden_states=prompt_embeds).sample.float()
            alpha, alpha_next = alphas[t], alphas[t + 1]
            clean = (latent - (1 - alpha).sqrt() * eps) / alpha.sqrt()
            latent = alpha_next.sqrt() * clean + (1 - alpha_next).sqrt() * eps
            if on_step is not None:
                on_step(t + 1, total)
        del call  # frees the graph's memory pool
        state.set(Record())
        unet(latent.to(models.dtype), last, encoder_hidden_states=prompt_embeds)
        state.idle()
    if on_step is not None:
        on_step(total, total)
    return bank


class GraphedCall:
    """``unet(latent, t).sample`` for one latent shape, captured once as a CUDA graph and replayed.

    The inversion's UNet calls work on a single frame, so on a large GPU they are bound by launching
    about a thousand small kernels each, not by arithmetic; a replay launches them all at once (4x
    faster on an H200, identical output). The first :attr:`WARMUP` calls run eagerly on a side stream
    (capture needs warmed-up libraries), the next one captures, and the rest replay with the new latent
    and timestep copied into the graph's inputs. The controls' hooks must not change what they do
    between calls (during inversion they are idle until the final, eager, recording call). If capture
    fails, the remaining calls run eagerly and a warning says why.
    """

    WARMUP = 3

    def __init__(self, unet: nn.Module, prompt_embeds: torch.Tensor, dtype: torch.dtype) -> None:
        self.unet = unet
        self.embeds = prompt_embeds
        self.dtype = dtype
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.failed = False
        self.stream = torch.cuda.Stream(prompt_embeds.device)  # type: ignore[no-untyped-call]
        self.latent: torch.Tensor | None = None
        self.timestep = torch.zeros(1, dtype=torch.long, device=prompt_embeds.device)
        self.output: torch.Tensor | None = None

    def __call__(self, latent: torch.Tensor, t: int) -> torch.Tensor:
        if self.graph is None and not self.failed and self.calls >= self.WARMUP:
            self._capture(latent)
        self.calls += 1
        if self.graph is not None and self.latent is not None and self.output is not None:
            self.latent.copy_(latent)
            self.timestep.fill_(t)
            self.graph.replay()
            return self.output.float()
        current = torch.cuda.current_stream(latent.device)
        self.stream.wait_stream(current)
        with torch.cuda.stream(self.stream):
            eps: torch.Tensor = self.unet(latent.to(self.dtype), t, encoder_hidden_states=self.embeds).sample
        current.wait_stream(self.stream)
        return eps.float()

    def _capture(self, latent: torch.Tensor) -> None:
        self.latent = latent.to(self.dtype).clone()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                self.output = self.unet(self.latent, self.timestep, encoder_hidden_states=self.embeds).sample
        except RuntimeError as error:
            self.failed = True
            logger.warning("inversion runs without a CUDA graph: capture failed (%s)", error)
            return
        self.graph = graph


@dataclass(frozen=True)
class InversionKey:
    """Everything inversion's result depends on."""

    model: str
    image_digest: str
    width: int
    height: int
    prompt: str
    timestep: int
    query_layers: tuple[str, ...]
    residual_layers: tuple[str, ...]
    dtype: str

    @classmethod
    def of(cls, models: Models, image: NDArray[np.uint8], prompt: str, settings: MethodSettings) -> InversionKey:
        digest = hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()
        return cls(
            model=models.identity,
            image_digest=digest,
            width=int(image.shape[1]),
            height=int(image.shape[0]),
            prompt=prompt,
            timestep=settings.inversion_timestep,
            query_layers=tuple(settings.query_layers),
            residual_layers=tuple(settings.residual_layers),
            dtype=str(models.dtype),
        )

    def digest(self) -> str:
        return hashlib.sha256(repr(self).encode("utf-8")).hexdigest()[:32]


class InversionCache:
    """Feature banks by :class:`InversionKey`: in memory up to ``max_bytes`` (least recently used leave
    first), and in ``folder`` as ``<digest>.pt`` files when one is given. With ``keep_on`` ("cpu"), the
    banks held in memory are copies on that device, so a long-lived cache (the daemon worker's) takes no
    GPU memory from the jobs."""

    def __init__(self, max_bytes: int = 1 << 30, folder: Path | None = None, keep_on: str | None = None) -> None:
        self.max_bytes = max_bytes
        self.folder = folder
        self.keep_on = keep_on
        self._entries: OrderedDict[str, FeatureBank] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: InversionKey, device: torch.device) -> FeatureBank | None:
        digest = key.digest()
        bank = self._entries.get(digest)
        if bank is None and self.folder is not None:
            bank = self._read(digest)
            if bank is not None:
                self._remember(digest, bank)
        if bank is None:
            self.misses += 1
            return None
        self._entries.move_to_end(digest)
        self.hits += 1
        return bank.to(device)

    def put(self, key: InversionKey, bank: FeatureBank) -> None:
        digest = key.digest()
        self._remember(digest, bank)
        if self.folder is not None:
            self._write(digest, bank)

    def _remember(self, digest: str, bank: FeatureBank) -> None:
        self._entries[digest] = bank.to(self.keep_on) if self.keep_on is not None else bank
        self._entries.move_to_end(digest)
        while len(self._entries) > 1 and sum(b.nbytes() for b in self._entries.values()) > self.max_bytes:
            self._entries.popitem(last=False)

    def _write(self, digest: str, bank: FeatureBank) -> None:
        assert self.folder is not None
        self.folder.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        on_cpu = bank.to("cpu")
        torch.save({"queries": on_cpu.queries, "residuals": on_cpu.residuals}, buffer)
        write_file(self.folder / f"{digest}.pt", buffer.getvalue())

    def _read(self, digest: str) -> FeatureBank | None:
        assert self.folder is not None
        path = self.folder / f"{digest}.pt"
        if not path.is_file():
            return None
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
            return FeatureBank(dict(data["queries"]), dict(data["residuals"]))
        except (OSError, RuntimeError, KeyError, TypeError, ValueError):
            return None  # a damaged cache file is a miss, never a failure
