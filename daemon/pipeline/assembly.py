"""Assembly: the parts of a model source checked against each other into :class:`Models`, LoRA fused.

:func:`load_models` reads a diffusers folder or a single SD 1.5 checkpoint (see ``loading`` for every
source it takes), puts the motion modules into the UNet, checks that the parts fit (text width,
vocabulary, latent channels, the layers AnyI2V hooks), builds the AnimateDiff DDIM scheduler, replaces the
VAE with another one (``vae_file``), fuses motion LoRAs (``motion_lora``) and LoRAs and moves everything to
the device and dtype asked for, the libraries' chatter silenced meanwhile (``quiet``). Messages that tell
the user what to pass name the options as the caller does (``load_errors.OptionNames``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    UNet2DConditionModel,
    UNetMotionModel,
)
from transformers import CLIPTextModel

from anyi2v.daemon.pipeline.load_errors import PYTHON_OPTIONS, ModelLoadError, OptionNames
from anyi2v.daemon.pipeline.model_formats import (
    CHECKPOINT_SUFFIXES,
    PathArg,
    check_loras,
    check_sd15_checkpoint,
    existing_path,
    load_pretrained,
    load_tokenizer,
    read_checkpoint,
    read_config,
)
from anyi2v.daemon.pipeline.models import ANIMATEDIFF_SCHEDULER, Models
from anyi2v.daemon.pipeline.motion_lora import check_motion_loras, fuse_motion_loras
from anyi2v.daemon.pipeline.quiet import quiet_libraries
from anyi2v.daemon.pipeline.single_file import (
    SD15_CONFIG_DIR,
    convert_sd15_checkpoint,
    load_motion_adapter,
    single_file_tokenizer,
)
from anyi2v.daemon.pipeline.vae_file import load_vae

__all__ = [
    "REQUIRED_UNET_LAYERS",
    "check_unet_layers",
    "fuse_loras",
    "load_models",
    "model_identity",
    "resolve_device",
    "resolve_dtype",
]

REQUIRED_UNET_LAYERS = (
    "up_blocks.1.attentions.0.transformer_blocks.0.attn1",
    "up_blocks.1.attentions.1.transformer_blocks.0.attn1",
    "up_blocks.2.attentions.0.transformer_blocks.0.attn1",
    "up_blocks.2.attentions.1.transformer_blocks.0.attn1",
    "up_blocks.1.resnets.0",
    "up_blocks.1.resnets.1",
    "up_blocks.2.resnets.0",
    "up_blocks.2.resnets.1",
)
"""UNet modules whose features AnyI2V reads and replaces."""

_FOLDER_PARTS = ("unet", "vae", "text_encoder", "tokenizer")
_FOLDER_HINT = "a diffusers SD 1.5 folder has unet/, vae/, text_encoder/, tokenizer/"

_DTYPES: dict[str, torch.dtype] = {
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp32": torch.float32,
    "float32": torch.float32,
    "float": torch.float32,
}


# --- device and dtype ----------------------------------------------------------------------------------


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` is CUDA when available, else the CPU; strings are anything ``torch.device`` reads."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as error:
        raise ModelLoadError(f"device {device!r}: not a torch device ({error})") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r}: CUDA is not available on this machine; use 'cpu'")
    return resolved


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``None`` is float16 on CUDA and float32 elsewhere; strings: fp16/float16/half, bf16/bfloat16,
    fp32/float32/float (a ``torch.`` prefix is allowed)."""
    if dtype is None:
        return torch.float16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in _DTYPES.values():
            raise ModelLoadError(f"dtype {dtype}: expected float16, bfloat16 or float32")
        return dtype
    name = dtype.strip().lower().removeprefix("torch.")
    if name not in _DTYPES:
        raise ModelLoadError(f"dtype {dtype!r}: expected one of {', '.join(sorted(_DTYPES))}")
    return _DTYPES[name]


# --- the entry point -----------------------------------------------------------------------------------


@dataclass
class _Parts:
    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    kind: str
    inputs: list[Path]


def load_models(
    source: PathArg,
    *,
    motion_adapter: PathArg | None = None,
    loras: Sequence[tuple[PathArg, float]] = (),
    motion_loras: Sequence[tuple[PathArg, float]] = (),
    vae: PathArg | None = None,
    tokenizer: PathArg | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    allow_network: bool = False,
    config_dir: PathArg | None = None,
    options: OptionNames = PYTHON_OPTIONS,
) -> Models:
    """Load SD 1.5 + AnimateDiff weights from ``source`` (see :mod:`~anyi2v.daemon.pipeline.loading` for what
    it may be).

    ``motion_adapter``: a diffusers ``MotionAdapter`` folder or an original AnimateDiff motion module file;
    required unless ``source``'s UNet already has motion modules. ``loras``: ``(file, weight)`` pairs,
    fused into the weights. ``motion_loras``: AnimateDiff motion LoRA ``(file, weight)`` pairs, fused into
    the motion modules. ``vae``: a VAE file or diffusers folder replacing the source's. ``tokenizer``: a CLIP
    tokenizer folder, replacing the source's (needed for a single-file checkpoint). ``device``/``dtype``:
    see :func:`resolve_device` and :func:`resolve_dtype`. ``config_dir``: SD 1.5 configs for single files
    (default: the shipped :data:`SD15_CONFIG_DIR`). ``allow_network``: let diffusers/transformers reach the
    Hub (off: ``local_files_only=True``). ``options``: how messages name these options (the command line
    passes ``CLI_OPTIONS``).
    """
    target_device = resolve_device(device)
    target_dtype = resolve_dtype(dtype, target_device)
    local_only = not allow_network
    src = existing_path(source, "model source")
    configs = Path(config_dir).expanduser() if config_dir is not None else SD15_CONFIG_DIR
    adapter = existing_path(motion_adapter, "motion adapter") if motion_adapter is not None else None
    tokenizer_dir = existing_path(tokenizer, "tokenizer") if tokenizer is not None else None
    vae_source = existing_path(vae, "VAE") if vae is not None else None
    lora_files = check_loras(loras)
    motion_lora_files = check_motion_loras(motion_loras)

    with quiet_libraries():  # the libraries' chatter while loading says nothing to a user
        if src.is_dir():
            parts = _load_folder(src, adapter, tokenizer_dir, configs, local_only, options)
        else:
            parts = _load_single_file(src, adapter, tokenizer_dir, configs, local_only, options)
        if vae_source is not None:
            parts.vae = load_vae(vae_source, parts.vae.config, local_only)
            parts.inputs.append(vae_source)

        _check_fit(parts, src)
        check_unet_layers(parts.unet, src)
        if motion_lora_files:
            fuse_motion_loras(parts.unet, motion_lora_files)
        scheduler = DDIMScheduler(**ANIMATEDIFF_SCHEDULER)
        identity = model_identity(parts.kind, src, parts.inputs, lora_files, motion_lora_files)
        models = Models(parts.unet, parts.vae, parts.text_encoder, parts.tokenizer, scheduler, identity)
        if lora_files:
            fuse_loras(models, lora_files, local_only)
        return models.to(target_device, target_dtype)


def check_unet_layers(unet: torch.nn.Module, where: PathArg) -> None:
    """Raise :class:`ModelLoadError` unless ``unet`` has every module of :data:`REQUIRED_UNET_LAYERS`."""
    names = {name for name, _ in unet.named_modules()}
    missing = [name for name in REQUIRED_UNET_LAYERS if name not in names]
    if missing:
        raise ModelLoadError(
            f"{where}: the UNet lacks layers AnyI2V needs (SD 1.5 + AnimateDiff layout expected): {', '.join(missing)}"
        )


# --- sources -------------------------------------------------------------------------------------------


def _adapter_hint(options: OptionNames) -> str:
    return "pass " + options.given(options.motion_adapter, options.motion_adapter_value)


def _load_folder(
    src: Path, adapter: Path | None, tokenizer_dir: Path | None, configs: Path, local_only: bool, options: OptionNames
) -> _Parts:
    needed = [part for part in _FOLDER_PARTS if not (part == "tokenizer" and tokenizer_dir is not None)]
    missing = [part for part in needed if not (src / part).is_dir()]
    if missing:
        listed = ", ".join(f"{part}/" for part in missing)
        raise ModelLoadError(f"{src / missing[0]}: not found ({listed} missing); {_FOLDER_HINT}")
    if (src / "text_encoder_2").is_dir():
        raise ModelLoadError(f"{src}: an SD XL folder (it has text_encoder_2/); only SD 1.5 is supported")

    unet_dir = src / "unet"
    unet_class = read_config(unet_dir / "config.json").get("_class_name")
    inputs = [src / part for part in needed]
    if tokenizer_dir is not None:
        inputs.append(tokenizer_dir)
    if unet_class == "UNetMotionModel":
        unet = load_pretrained(UNetMotionModel, unet_dir, local_only)
        kind = "motion-folder"
        if adapter is not None:
            _replace_motion_modules(unet, unet_dir, load_motion_adapter(adapter, configs, local_only), adapter)
            inputs.append(adapter)
            if adapter.is_file():
                inputs.append(configs / "motion_adapter")
    elif unet_class == "UNet2DConditionModel":
        if adapter is None and (src / "motion_adapter").is_dir():
            adapter = src / "motion_adapter"
        if adapter is None:
            raise ModelLoadError(
                f"{unet_dir}: a 2D SD 1.5 UNet (UNet2DConditionModel) needs AnimateDiff motion modules; "
                + _adapter_hint(options)
            )
        unet2d = load_pretrained(UNet2DConditionModel, unet_dir, local_only)
        unet = _combine(unet2d, unet_dir, load_motion_adapter(adapter, configs, local_only), adapter)
        kind = "sd15-folder"
        inputs.append(adapter)
        if adapter.is_file():  # its config comes partly from the config folder
            inputs.append(configs / "motion_adapter")
    else:
        raise ModelLoadError(
            f"{unet_dir / 'config.json'}: _class_name is {unet_class!r}; "
            "expected UNet2DConditionModel or UNetMotionModel"
        )
    if unet.config.get("addition_embed_type") is not None:
        raise ModelLoadError(f"{unet_dir}: an SD XL UNet (addition_embed_type is set); only SD 1.5 is supported")
    vae = load_pretrained(AutoencoderKL, src / "vae", local_only)
    text_encoder = load_pretrained(CLIPTextModel, src / "text_encoder", local_only)
    tok = load_tokenizer(tokenizer_dir if tokenizer_dir is not None else src / "tokenizer", local_only)
    return _Parts(unet, vae, text_encoder, tok, kind, inputs)


def _load_single_file(
    src: Path, adapter: Path | None, tokenizer_dir: Path | None, configs: Path, local_only: bool, options: OptionNames
) -> _Parts:
    if src.suffix.lower() not in CHECKPOINT_SUFFIXES:
        raise ModelLoadError(
            f"{src}: expected a diffusers SD 1.5 folder or a single .safetensors/.ckpt SD 1.5 checkpoint"
        )
    checkpoint = read_checkpoint(src)
    check_sd15_checkpoint(checkpoint, src, options)
    if adapter is None:
        raise ModelLoadError(f"{src}: a single-file SD 1.5 checkpoint has no motion modules; {_adapter_hint(options)}")
    unet2d, vae, text_encoder = convert_sd15_checkpoint(checkpoint, src, configs)

    unet = _combine(unet2d, src, load_motion_adapter(adapter, configs, local_only), adapter)
    tok, tokenizer_input = single_file_tokenizer(src, tokenizer_dir, configs, local_only, options)
    inputs = [src, adapter, configs]
    if tokenizer_input is not None:
        inputs.append(tokenizer_input)
    return _Parts(unet, vae, text_encoder, tok, "sd15-file", inputs)


# --- motion modules ------------------------------------------------------------------------------------


def _combine(unet2d: Any, unet_where: Path, adapter: Any, adapter_where: Path) -> Any:
    unet_channels = list(unet2d.config["block_out_channels"])
    adapter_channels = list(adapter.config["block_out_channels"])
    if unet_channels != adapter_channels:
        raise ModelLoadError(
            f"{adapter_where}: motion modules for block channels {adapter_channels} do not fit the UNet in "
            f"{unet_where} (channels {unet_channels})"
        )
    try:
        unet = UNetMotionModel.from_unet2d(unet2d, adapter)
    except Exception as error:
        raise ModelLoadError(f"{adapter_where}: motion modules do not fit the UNet in {unet_where}: {error}") from error
    return unet


def _replace_motion_modules(unet: Any, unet_where: Path, adapter: Any, adapter_where: Path) -> None:
    differences = [
        f"{unet_key}: UNet {unet.config[unet_key]!r}, adapter {adapter.config[adapter_key]!r}"
        for unet_key, adapter_key in (
            ("block_out_channels", "block_out_channels"),
            ("layers_per_block", "motion_layers_per_block"),
            ("use_motion_mid_block", "use_motion_mid_block"),
            ("motion_max_seq_length", "motion_max_seq_length"),
        )
        if _normalised(unet.config[unet_key], len(unet.config["block_out_channels"]))
        != _normalised(adapter.config[adapter_key], len(adapter.config["block_out_channels"]))
    ]
    if differences:
        raise ModelLoadError(
            f"{adapter_where}: motion modules do not fit the UNetMotionModel in {unet_where}: {'; '.join(differences)}"
        )
    try:
        unet.load_motion_modules(adapter)
    except Exception as error:
        raise ModelLoadError(f"{adapter_where}: motion modules do not fit the UNet in {unet_where}: {error}") from error


def _normalised(value: object, blocks: int) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        return [value] * blocks
    if isinstance(value, list | tuple):
        return list(value)
    return value


# --- the parts together --------------------------------------------------------------------------------


def _check_fit(parts: _Parts, src: Path) -> None:
    """Parts that load one by one but could not run together."""
    hidden = int(parts.text_encoder.config.hidden_size)
    cross = parts.unet.config["cross_attention_dim"]
    if cross != hidden:
        raise ModelLoadError(
            f"{src}: the UNet attends to {cross}-wide text features but the text encoder gives {hidden}; "
            "they are not parts of one SD 1.5 model"
        )
    vocabulary = int(parts.text_encoder.config.vocab_size)
    if len(parts.tokenizer) > vocabulary:
        raise ModelLoadError(
            f"{src}: the tokenizer has {len(parts.tokenizer)} tokens but the text encoder embeds {vocabulary}; "
            "they do not belong together"
        )
    if parts.unet.config["in_channels"] != parts.vae.config["latent_channels"]:
        raise ModelLoadError(
            f"{src}: the UNet takes {parts.unet.config['in_channels']} channels but the VAE makes "
            f"{parts.vae.config['latent_channels']}; inpainting and other variants are not supported"
        )


# --- LoRA ----------------------------------------------------------------------------------------------


def fuse_loras(
    models: Models,
    loras: Sequence[tuple[Path, float]],
    local_only: bool = True,
    keep: Callable[[torch.Tensor], None] | None = None,
) -> None:
    """Load each LoRA as a PEFT adapter, fuse all at their weights into the UNet and text encoder, unload.
    ``keep`` is shown every weight the LoRAs are about to change, before it changes (``model_cache`` keeps
    the originals, to take a LoRA out again)."""
    from diffusers import AnimateDiffPipeline  # a holder for diffusers' LoRA loading; imported only when used

    holder = AnimateDiffPipeline(
        vae=models.vae,
        text_encoder=models.text_encoder,
        tokenizer=models.tokenizer,
        unet=models.unet,
        motion_adapter=None,
        scheduler=models.scheduler,
    )
    names = [f"anyi2v_lora_{index}" for index in range(len(loras))]
    for name, (path, _) in zip(names, loras, strict=True):
        try:
            holder.load_lora_weights(
                str(path.parent), weight_name=path.name, adapter_name=name, local_files_only=local_only
            )
        except Exception as error:
            raise ModelLoadError(
                f"{path}: not a LoRA for this SD 1.5 UNet / text encoder ({type(error).__name__}: {error})"
            ) from error
    if keep is not None:
        for component in (models.unet, models.text_encoder):
            for module in component.modules():
                base = getattr(module, "base_layer", None)  # a PEFT LoRA layer wraps the layer it changes
                if isinstance(base, torch.nn.Module) and not hasattr(base, "base_layer"):
                    for parameter in base.parameters(recurse=False):
                        keep(parameter)
    try:
        holder.set_adapters(names, adapter_weights=[weight for _, weight in loras])
        holder.fuse_lora(components=["unet", "text_encoder"], lora_scale=1.0, adapter_names=names)
        holder.unload_lora_weights()
    except Exception as error:
        files = ", ".join(str(path) for path, _ in loras)
        raise ModelLoadError(f"{files}: the LoRAs could not be fused ({type(error).__name__}: {error})") from error


# --- identity ------------------------------------------------------------------------------------------


def model_identity(
    kind: str,
    src: Path,
    inputs: Iterable[Path],
    loras: Sequence[tuple[Path, float]],
    motion_loras: Sequence[tuple[Path, float]] = (),
) -> str:
    """Resolved paths, sizes and modification times of every file read (no file content is hashed)."""
    digest = hashlib.sha256(kind.encode())
    for entry in inputs:
        if not entry.exists():
            continue
        files = sorted(p for p in entry.rglob("*") if p.is_file()) if entry.is_dir() else [entry]
        for file in files:
            stat = file.stat()
            digest.update(f"\n{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    for path, weight in loras:
        stat = path.stat()
        digest.update(f"\nlora|{path}|{stat.st_size}|{stat.st_mtime_ns}|{weight!r}".encode())
    for path, weight in motion_loras:
        stat = path.stat()
        digest.update(f"\nmotion_lora|{path}|{stat.st_size}|{stat.st_mtime_ns}|{weight!r}".encode())
    return f"{kind}:{src.name}:{digest.hexdigest()[:20]}"
