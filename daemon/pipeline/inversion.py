"""DDIM inversion of the condition image, and the cache that lets a re-run skip it.

The condition image is VAE-encoded (the latent distribution's mean: deterministic), then walked up the
1000-step training schedule one timestep at a time with the deterministic DDIM update, as a single
frame with the motion modules off, conditioned on the prompt and without classifier-free guidance.
The UNet call at ``inversion_timestep`` (201 by default) records the controlled layers' queries and
residual states into a :class:`FeatureBank`; nothing else of the inversion is kept.

We write the inverse update ourselves instead of using diffusers' ``DDIMInverseScheduler``: that class
refuses the ``linspace`` timestep spacing AnimateDiff's scheduler uses, and the inversion only needs
the scheduler's ``alphas_cumprod`` on the full 1000-step grid anyway.

Cost: ``inversion_timestep + 1`` UNet calls at batch 1, one frame.
"""

from __future__ import annotations

import hashlib
import io
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from anyi2v.shared.settings import MethodSettings

from .controls import ControlLayers, ControlState, FeatureBank, install_controls, motion_disabled
from .models import Models


def image_to_tensor(image: NDArray[np.uint8], models: Models) -> torch.Tensor:
    """(h, w, 3) uint8 RGB to a (1, 3, h, w) tensor in -1..1 on the models' device and dtype."""
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 127.5 - 1.0
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
) -> FeatureBank:
    """Invert ``image`` up to ``settings.inversion_timestep`` and return the features recorded there.

    prompt_embeds : (1, tokens, dim) conditional text embedding. ``on_step(done, total)`` is called after
    every UNet call (it may raise to cancel).
    """
    unet = models.unet
    last = settings.inversion_timestep
    alphas = models.scheduler.alphas_cumprod.to(device=models.device, dtype=torch.float32)
    if last >= len(alphas):
        raise ValueError(f"inversion_timestep {last} is past the scheduler's {len(alphas)} training steps")
    latent = encode_image(models, image).float()[:, :, None]  # (1, 4, 1, h, w): one frame
    bank = FeatureBank()
    state = ControlState(frames=1)
    total = last + 1
    with motion_disabled(unet), install_controls(unet, inversion_layers(settings), state, bank):
        for t in range(last):
            eps = unet(latent.to(models.dtype), t, encoder_hidden_states=prompt_embeds).sample.float()
            alpha, alpha_next = alphas[t], alphas[t + 1]
            clean = (latent - (1 - alpha).sqrt() * eps) / alpha.sqrt()
            latent = alpha_next.sqrt() * clean + (1 - alpha_next).sqrt() * eps
            if on_step is not None:
                on_step(t + 1, total)
        state.reset(frames=1, record=True)
        unet(latent.to(models.dtype), last, encoder_hidden_states=prompt_embeds)
        state.reset()
    if on_step is not None:
        on_step(total, total)
    return bank


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
    first), and in ``folder`` as ``<digest>.pt`` files when one is given."""

    def __init__(self, max_bytes: int = 1 << 30, folder: Path | None = None) -> None:
        self.max_bytes = max_bytes
        self.folder = folder
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
        self._entries[digest] = bank
        self._entries.move_to_end(digest)
        while len(self._entries) > 1 and sum(b.nbytes() for b in self._entries.values()) > self.max_bytes:
            self._entries.popitem(last=False)

    def _write(self, digest: str, bank: FeatureBank) -> None:
        assert self.folder is not None
        self.folder.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        on_cpu = bank.to("cpu")
        torch.save({"queries": on_cpu.queries, "residuals": on_cpu.residuals}, buffer)
        final = self.folder / f"{digest}.pt"
        partial = final.with_suffix(".pt.partial")
        partial.write_bytes(buffer.getvalue())
        partial.replace(final)

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
