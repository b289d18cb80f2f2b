"""Loading SD 1.5 + AnimateDiff weights from local files, with no download.

:func:`load_models` turns what an artist has on disk into a :class:`~anyi2v.daemon.pipeline.models.Models`:

* **A diffusers SD 1.5 folder** (``unet/`` holding a ``UNet2DConditionModel``, ``vae/``, ``text_encoder/``,
  ``tokenizer/``; ``model_index.json`` and ``scheduler/`` are optional) plus motion modules: either
  ``motion_adapter=`` (a diffusers ``MotionAdapter`` folder, or a single ``.safetensors``/``.ckpt`` motion
  module in the original AnimateDiff layout such as ``mm_sd_v15_v2.ckpt``) or a ``motion_adapter/``
  folder inside the model folder.
* **A folder whose** ``unet/`` **is already a** ``UNetMotionModel`` (``AnimateDiffPipeline.save_pretrained``
  writes these). ``motion_adapter=`` is optional there: given, its motion modules replace the folder's.
* **A single SD 1.5 checkpoint** (``.safetensors``, or ``.ckpt`` read with ``weights_only=True``) in the
  original CompVis / A1111 layout, as community fine-tunes are shared, plus ``motion_adapter=``. Its keys
  are converted with diffusers' single-file converters against the SD 1.5 configs shipped in
  ``configs/sd15/`` (or ``config_dir=``), and loaded strictly: a missing or misshapen weight is an error,
  never a silently random layer. A single file carries no tokenizer, so its
  tokenizer comes from ``tokenizer=`` (any SD 1.5 ``tokenizer/`` folder, which holds ``vocab.json`` and
  ``merges.txt``), else from ``<config_dir>/tokenizer/``: the shipped configs hold CLIP ViT-L/14's (SD 1.5's
  own, ``configs/sd15/tokenizer/``), so none need be given; a ``config_dir=`` without one falls back, only
  with ``allow_network=True``, to the Hub (``openai/clip-vit-large-patch14``); otherwise
  :class:`ModelLoadError` says so.

A single-file motion module has no config: its architecture (channels, layers per block, mid block, frame
count of the position encoding) is read from its weights, the rest (attention heads, norm groups) from
``<config_dir>/motion_adapter/config.json`` (shipped: AnimateDiff's 8 heads, 32 groups).

The scheduler is always a ``DDIMScheduler`` built from :data:`ANIMATEDIFF_SCHEDULER`; a folder's own
``scheduler/`` is not read (SD 1.5 folders ship PNDM, which AnimateDiff does not use).

LoRA files (``loras=[(path, weight), ...]``, kohya/A1111 or diffusers format) are loaded through diffusers'
PEFT integration into the UNet and, where the file has such keys, the text encoder, then fused into the
weights and unloaded, so they cost nothing at run time. They need the ``peft`` package; without it a
request for LoRAs raises :class:`ModelLoadError`. AnimateDiff motion LoRAs (``motion_loras=``) are fused
into the motion modules' attention (``motion_lora``), and ``vae=`` (a VAE file or diffusers folder)
replaces the model's VAE (``vae_file``).

By name: :func:`load_named_models` and :func:`load_sources` take models as a user names them, library
names in a models folder or paths (``model_choice``), and their messages name the command line's flags.

Nothing is downloaded unless ``allow_network=True``: every diffusers / transformers call gets
``local_files_only=True`` and sources are always local paths. No global setting is changed: the libraries'
logging and progress bars are quieted during a load (``quiet``) and restored after it. Every failure
(missing path, missing part, unreadable or mismatched weights, a UNet without the layers AnyI2V hooks) is a
:class:`ModelLoadError` naming the file or folder and what was expected.

This module is the entry point; the work lives beside it: ``model_formats`` (what a path holds, and reading
it), ``single_file`` (single files converted offline), ``assembly`` (:func:`load_models`: the parts checked
against each other, LoRA fused) and ``load_errors`` (:class:`ModelLoadError`, imported by all of them).
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path

from anyi2v.daemon.pipeline.assembly import (
    REQUIRED_UNET_LAYERS,
    check_unet_layers,
    load_models,
    resolve_device,
    resolve_dtype,
)
from anyi2v.daemon.pipeline.load_errors import CLI_OPTIONS, ModelLoadError, OptionNames
from anyi2v.daemon.pipeline.model_choice import (
    RANDOM_MODELS,
    ModelSources,
    ResolvedModels,
    flag_sources,
    resolve_sources,
)
from anyi2v.daemon.pipeline.models import Models
from anyi2v.daemon.pipeline.quiet import quiet_libraries
from anyi2v.daemon.pipeline.single_file import HUB_TOKENIZER, SD15_CONFIG_DIR

__all__ = [
    "HUB_TOKENIZER",
    "REQUIRED_UNET_LAYERS",
    "SD15_CONFIG_DIR",
    "ModelLoadError",
    "check_unet_layers",
    "load_models",
    "load_named_models",
    "load_resolved",
    "load_sources",
    "resolve_device",
    "resolve_dtype",
]


def load_named_models(
    model: str | None,
    *,
    motion_adapter: str | None = None,
    tokenizer: str | None = None,
    loras: Sequence[tuple[str, float]] = (),
    motion_loras: Sequence[tuple[str, float]] = (),
    vae: str | None = None,
    models_dir: str | PathLike[str] | None = None,
    device: str | None = None,
    dtype: str | None = None,
) -> Models:
    """The models a user names with ``--model``, ``--motion-module``, ``--lora``, ``--motion-lora`` and
    ``--vae``: each a library name in ``models_dir`` (default: the app's models folder) or a path; ``model``
    may also be ``toy-world`` (also when None), ``tiny-random`` or ``sd15-random``. Raises
    :class:`ModelLoadError` (a ``model_choice.ModelChoiceError`` for a name or path that cannot be used) or
    ``ValueError``."""
    sources = flag_sources(
        model,
        motion_module=motion_adapter,
        loras=loras,
        motion_loras=motion_loras,
        vae=vae,
        models_dir=Path(models_dir) if models_dir is not None else None,
    )
    return load_sources(sources, tokenizer=tokenizer, device=device, dtype=dtype)


def load_sources(
    sources: ModelSources,
    *,
    tokenizer: str | PathLike[str] | None = None,
    device: str | None = None,
    dtype: str | None = None,
    options: OptionNames = CLI_OPTIONS,
) -> Models:
    """The models ``sources`` choose, resolved (``model_choice.resolve_sources``) and loaded; with no
    checkpoint, the embedded toy-world model. Raises :class:`ModelLoadError` or ``ValueError``."""
    return load_resolved(resolve_sources(sources), tokenizer=tokenizer, device=device, dtype=dtype, options=options)


def load_resolved(
    resolved: ResolvedModels,
    *,
    tokenizer: str | PathLike[str] | None = None,
    device: str | None = None,
    dtype: str | None = None,
    options: OptionNames = CLI_OPTIONS,
    config_dir: str | PathLike[str] | None = None,
) -> Models:
    """The models of resolved files (``model_choice.resolve_sources``); with no checkpoint, the embedded
    toy-world model. ``config_dir``: the SD 1.5 configs single files are read against (default: the
    shipped ones). Raises :class:`ModelLoadError` or ``ValueError``."""
    from anyi2v.daemon import TINY_RANDOM, TOY_WORLD
    from anyi2v.daemon.pipeline.models import random_models
    from anyi2v.daemon.toyworld import WEIGHTS

    if resolved.checkpoint in RANDOM_MODELS:
        target = resolve_device(device)
        with quiet_libraries():
            return random_models("tiny" if resolved.checkpoint == TINY_RANDOM else "sd15", seed=0).to(
                target, resolve_dtype(dtype, target)
            )
    return load_models(
        WEIGHTS if resolved.checkpoint in (None, TOY_WORLD) else resolved.checkpoint,
        motion_adapter=resolved.motion_module,
        loras=resolved.loras,
        motion_loras=resolved.motion_loras,
        vae=resolved.vae,
        tokenizer=tokenizer,
        device=device,
        dtype=dtype,
        options=options,
        config_dir=config_dir,
    )
