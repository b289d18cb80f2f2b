"""The worker's models, kept from job to job: each job loads only what its choice changes.

A job's models (``model_choice.ModelSources``: the daemon's default with the shot's ``model`` section
over it) are resolved to files, then compared with what is held:

* the **base** (checkpoint, motion module, VAE, tokenizer; each file by path, size and modification
  time, so a file replaced on disk counts as another) is loaded only when it differs; the models held
  before are let go first, so one checkpoint is in memory at a time;
* the **LoRAs and motion LoRAs** (files and weights) are changed without reading the base again: the
  weights they change were kept (on the CPU) before they were first changed (:class:`WeightLedger`),
  so they are put back and the new set fused into them.

``loads`` counts each kind of load (``base``, ``loras``), which the tests use to show that a LoRA weight
changes nothing else. A load that fails leaves nothing half-fused: the LoRA weights are restored (or,
when the base failed, nothing is held), and the next job loads what it needs.
"""

from __future__ import annotations

import gc
import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import torch

from anyi2v.daemon.pipeline.assembly import fuse_loras
from anyi2v.daemon.pipeline.load_errors import CLI_OPTIONS, OptionNames
from anyi2v.daemon.pipeline.loading import load_resolved
from anyi2v.daemon.pipeline.model_choice import ModelSources, ResolvedModels, resolve_sources, sources_names
from anyi2v.daemon.pipeline.model_formats import check_loras
from anyi2v.daemon.pipeline.models import Models
from anyi2v.daemon.pipeline.motion_lora import check_motion_loras, fuse_motion_loras
from anyi2v.daemon.pipeline.quiet import quiet_libraries

__all__ = ["LoadStep", "ModelCache", "WeightLedger"]

LoadStep = Callable[[int, int], None]
"""Told ``(done, total)`` as loading moves: before the first step and after each."""


class WeightLedger:
    """The original values of the weights LoRAs changed, kept on the CPU, so that they can be put back."""

    def __init__(self) -> None:
        self._kept: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def keep(self, parameter: torch.Tensor) -> None:
        """Keep ``parameter``'s value now, unless it was kept before (the first value is the original)."""
        if id(parameter) not in self._kept:
            self._kept[id(parameter)] = (parameter, parameter.detach().to("cpu", copy=True))

    def restore(self) -> None:
        """Put every kept weight back to its original value."""
        with torch.no_grad():
            for parameter, original in self._kept.values():
                parameter.copy_(original.to(device=parameter.device, dtype=parameter.dtype))

    def __len__(self) -> int:
        return len(self._kept)


def _stamp(path: str | Path | None) -> tuple[str, int, int] | str | None:
    """A file or folder as a key: its path with size and modification time (a built-in name as it is)."""
    if path is None or not isinstance(path, Path):
        return path
    try:
        status = path.stat()
    except OSError:
        return (str(path), -1, -1)
    return (str(path), status.st_size, status.st_mtime_ns)


@dataclass(frozen=True)
class _Keys:
    base: tuple[Any, ...]
    loras: tuple[Any, ...]


def _keys(resolved: ResolvedModels, tokenizer: str | None) -> _Keys:
    base = (_stamp(resolved.checkpoint), _stamp(resolved.motion_module), _stamp(resolved.vae), tokenizer)
    loras = (
        tuple((_stamp(path), weight) for path, weight in resolved.loras),
        tuple((_stamp(path), weight) for path, weight in resolved.motion_loras),
    )
    return _Keys(base, loras)


class ModelCache:
    """One combination of models in memory; :meth:`get` changes it to what a job names."""

    def __init__(
        self,
        *,
        tokenizer: str | PathLike[str] | None = None,
        device: str | None = None,
        dtype: str | None = None,
        options: OptionNames = CLI_OPTIONS,
        config_dir: str | PathLike[str] | None = None,
    ) -> None:
        self.tokenizer = str(tokenizer) if tokenizer is not None else None
        self.config_dir = config_dir
        self.device = device
        self.dtype = dtype
        self.options = options
        self.models: Models | None = None
        self.names: dict[str, Any] | None = None  # what is held, by name (sources_names)
        self.loads: Counter[str] = Counter()
        self._keys: _Keys | None = None
        self._base_identity = ""
        self._ledger = WeightLedger()

    def get(self, sources: ModelSources, on_step: LoadStep | None = None) -> Models:
        """The models ``sources`` name, loading only what differs from those held. ``on_step`` hears
        ``(done, total)`` only when something is loaded. Raises ``ModelLoadError`` (a
        ``model_choice.ModelChoiceError`` for a name that cannot be used) or ``ValueError``."""
        resolved = resolve_sources(sources)
        keys = _keys(resolved, self.tokenizer)
        if self.models is not None and keys == self._keys:
            return self.models
        new_base = self.models is None or self._keys is None or keys.base != self._keys.base
        has_loras = bool(resolved.loras or resolved.motion_loras)
        total = int(new_base) + int(has_loras or not new_base)
        step = on_step or (lambda done, total: None)
        step(0, total)
        if new_base:
            self._let_go()
            base = ResolvedModels(resolved.checkpoint, resolved.motion_module, vae=resolved.vae)
            self.models = load_resolved(
                base,
                tokenizer=self.tokenizer,
                device=self.device,
                dtype=self.dtype,
                options=self.options,
                config_dir=self.config_dir,
            )
            self.loads["base"] += 1
            self._base_identity = self.models.identity
            self._keys = _Keys(keys.base, ((), ()))
            self.names = {**sources_names(sources), "loras": [], "motion_loras": []}
            step(1, total)
        models = self.models
        assert models is not None
        if keys.loras != (self._keys.loras if self._keys is not None else None):
            self._fuse(models, resolved)
            self.loads["loras"] += 1
        self._keys = keys
        self.names = sources_names(sources)
        step(total, total)
        return models

    def _fuse(self, models: Models, resolved: ResolvedModels) -> None:
        """Put back what earlier LoRAs changed, then fuse ``resolved``'s; a failure leaves the base clean."""
        self._ledger.restore()
        models.identity = self._base_identity
        self._keys = _Keys(self._keys.base if self._keys is not None else (), ((), ()))
        self.names = {**(self.names or {}), "loras": [], "motion_loras": []}
        if not (resolved.loras or resolved.motion_loras):
            return
        loras = check_loras(resolved.loras)
        motion_loras = check_motion_loras(resolved.motion_loras)
        try:
            with quiet_libraries():
                if motion_loras:
                    fuse_motion_loras(models.unet, motion_loras, keep=self._ledger.keep)
                if loras:
                    fuse_loras(models, loras, keep=self._ledger.keep)
        except BaseException:
            self._ledger.restore()
            raise
        digest = hashlib.sha256(repr(_keys(resolved, self.tokenizer).loras).encode()).hexdigest()[:12]
        models.identity = f"{self._base_identity}+loras:{digest}"

    def _let_go(self) -> None:
        """Drop the models held (and their kept weights), so that two checkpoints never share the memory."""
        on_cuda = self.models is not None and self.models.device.type == "cuda"
        self.models = None
        self.names = None
        self._keys = None
        self._ledger = WeightLedger()
        gc.collect()
        if on_cuda:
            torch.cuda.empty_cache()
