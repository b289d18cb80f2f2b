"""The method's hooks into the UNet: attention processors and forward hooks installed by module path.

:func:`install_controls` is a context manager. It resolves every configured layer path (failing loudly,
naming the missing ones), swaps our processor into each controlled self-attention layer, hooks each
controlled ResNet block's ``conv2`` (its output is the residual branch, before the skip is added), and
on exit puts back the exact original processors and removes every hook.

What the hooks do is decided per UNet call by the mode of a :class:`ControlState`, which the sampler
sets explicitly before every call (the step index travels with it; nothing is inferred from timesteps):

- :class:`Idle`: nothing (inversion's walk up the schedule, sampling steps after injection);
- :class:`Record`: keep each layer's query and residual state in the :class:`FeatureBank` (inversion);
- :class:`Sample` with an :class:`Injection`: write the banked features into frame 0 of the
  conditional batch item (with ``injection_halves = "both"``, of every item: our option, not the
  authors'; queries as they are, residual states through patch AdaIN, detached: no gradient flows into
  what is injected) and, with ``kv_copy``, give every frame of the conditional item
  (or, with ``kv_copy_halves = "both"``, of every item) its frame 0's keys and values in those layers;
- :class:`Optimize`: inject likewise (when given an :class:`Injection`), keep the captured layers'
  features with their gradient (trajectory optimization) and end the forward pass
  (:class:`StopForward`) as soon as all of them are kept, since nothing after them reaches the loss.

Batch layout inside the UNet: ``(batch * frames, ...)``, batch-major, so frame ``f`` of batch item
``b`` is row ``b * frames + f``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import torch
import torch.nn.functional as functional
from einops import rearrange, repeat
from torch import nn

from anyi2v.shared.settings import MethodSettings

from .features import patch_adain


class LayerNotFoundError(ValueError):
    """A configured layer path is not a module of the loaded UNet."""


class StopForward(Exception):  # noqa: N818 (a control-flow signal, not an error)
    """Raised once every captured feature is kept, to end a forward pass whose later layers are not needed."""


@dataclass
class FeatureBank:
    """Features of the inverted condition image, by layer path.

    queries : (1, N, C) per attention layer; residuals : (1, C, h, w) per ResNet block.
    """

    queries: dict[str, torch.Tensor] = field(default_factory=dict)
    residuals: dict[str, torch.Tensor] = field(default_factory=dict)

    def nbytes(self) -> int:
        tensors = [*self.queries.values(), *self.residuals.values()]
        return sum(t.numel() * t.element_size() for t in tensors)

    def to(self, device: torch.device | str) -> FeatureBank:
        return FeatureBank(
            {k: v.to(device) for k, v in self.queries.items()}, {k: v.to(device) for k, v in self.residuals.items()}
        )


@dataclass(frozen=True)
class Injection:
    """How one UNet call writes the inverted features into frame 0 of the conditional batch item.

    frames : frames per clip (the UNet's batch is ``(batch * frames)``, batch-major)
    conditional_index : which batch item is the conditional one (1 in an [uncond, cond] batch)
    query, residual : write the banked queries, residual states (``residual_adain``: through patch
        AdaIN with ``adain_patch`` x ``adain_patch`` patches)
    kv_copy : in the query layers, every frame attends to its item's frame-0 keys and values
    kv_copy_halves : which items copy: ``"conditional"`` (the authors') or ``"both"`` (every item)
    halves : which items get the injected queries and residual states: ``"conditional"`` (the
        authors') or ``"both"`` (ours: guidance then no longer amplifies the condition's look)
    """

    frames: int
    conditional_index: int = 0
    query: bool = True
    residual: bool = True
    residual_adain: bool = True
    adain_patch: int = 4
    kv_copy: bool = True
    kv_copy_halves: str = "conditional"
    halves: str = "conditional"

    @classmethod
    def of(cls, method: MethodSettings, frames: int, conditional_index: int) -> Injection:
        """The injection a shot's method settings ask for, on a batch of ``frames``-frame clips."""
        return cls(
            frames=frames,
            conditional_index=conditional_index,
            query=method.inject_query,
            residual=method.inject_residual,
            residual_adain=method.residual_adain,
            adain_patch=method.adain_patch_size,
            kv_copy=method.kv_copy,
            kv_copy_halves=method.kv_copy_halves,
            halves=method.injection_halves,
        )


@dataclass(frozen=True)
class Idle:
    """The hooks do nothing: the UNet computes what diffusers computes."""


@dataclass(frozen=True)
class Record:
    """Inversion's call at t_alpha: keep frame 0's query and residual state of every controlled layer in
    the :class:`FeatureBank`; with ``rows`` > 1 (a batch of single images, as the toy model's
    injection-aware training records), the first ``rows`` rows, one per batch item."""

    rows: int = 1


@dataclass(frozen=True)
class Sample:
    """Denoising step ``step``; with an ``injection``, the inverted features go into frame 0 of the
    conditional batch item."""

    step: int
    injection: Injection | None = None


@dataclass(frozen=True)
class Optimize:
    """An optimization forward pass before denoising step ``step``: inject (with an ``injection``), keep
    the ``capture`` layers' features with their gradient, and end the forward pass
    (:class:`StopForward`) as soon as all of them are kept."""

    step: int
    capture: frozenset[str]
    injection: Injection | None = None


ControlMode: TypeAlias = Idle | Record | Sample | Optimize


def _injection(mode: ControlMode) -> Injection | None:
    return mode.injection if isinstance(mode, Sample | Optimize) else None


@dataclass
class ControlState:
    """The mode of the next UNet call (the sampler sets it before every call) and what that call kept."""

    mode: ControlMode = field(default_factory=Idle)
    captured: dict[str, torch.Tensor] = field(default_factory=dict)

    def set(self, mode: ControlMode) -> None:
        """Switch to ``mode``, forgetting what an earlier call captured."""
        self.mode = mode
        self.captured = {}

    def idle(self) -> None:
        self.set(Idle())

    def keep(self, path: str, features: torch.Tensor) -> None:
        """Keep a captured layer's features; stop the forward pass when that was the last one wanted."""
        self.captured[path] = features
        if isinstance(self.mode, Optimize) and self.mode.capture <= self.captured.keys():
            raise StopForward(path)


def resolve(
    model: nn.Module, paths: tuple[str, ...] | list[str], kind: type[nn.Module] | None = None
) -> dict[str, nn.Module]:
    """Module by path; raises :class:`LayerNotFoundError` listing every missing or mistyped path."""
    modules = dict(model.named_modules())
    found: dict[str, nn.Module] = {}
    problems: list[str] = []
    for path in paths:
        module = modules.get(path)
        if module is None:
            problems.append(f"{path!r} does not exist")
        elif kind is not None and not isinstance(module, kind):
            problems.append(f"{path!r} is a {type(module).__name__}, not a {kind.__name__}")
        else:
            found[path] = module
    if problems:
        raise LayerNotFoundError(f"{type(model).__name__}: " + "; ".join(problems))
    return found


def _frame0_rows(injection: Injection, batch_frames: int) -> tuple[list[int], int]:
    """(the frame-0 rows that get the injection, frames) checked against the tensor's batch size: the
    conditional item's, or with ``halves == "both"`` every item's."""
    frames, item = injection.frames, injection.conditional_index
    if batch_frames % frames:
        raise RuntimeError(f"batch of {batch_frames} rows is not a whole number of {frames}-frame clips")
    items = batch_frames // frames
    if not 0 <= item < items:
        raise RuntimeError(f"conditional item {item} outside a batch of {items}")
    chosen = range(items) if injection.halves == "both" else [item]
    return [each * frames for each in chosen], frames


def _banked(saved: torch.Tensor, rows: list[int], device: torch.device) -> list[torch.Tensor]:
    """The banked value for each injected row: one shared by all, or one per row when the bank holds as
    many as there are rows."""
    if saved.shape[0] == 1:
        return [saved[0].to(device)] * len(rows)
    if saved.shape[0] != len(rows):
        raise RuntimeError(f"the bank holds {saved.shape[0]} items for {len(rows)} injected rows")
    return list(saved.to(device).unbind(0))


def _replace_rows(tensor: torch.Tensor, rows: list[int], values: list[torch.Tensor]) -> torch.Tensor:
    """``tensor`` with each of ``rows`` replaced by its value (out of place, so autograd sees it)."""
    parts, start = [], 0
    for row, value in zip(rows, values, strict=True):
        parts += [tensor[start:row], value[None].to(tensor.dtype)]
        start = row + 1
    return torch.cat([*parts, tensor[start:]], dim=0)


def _copy_frame0(tensor: torch.Tensor, frames: int, item: int | None) -> torch.Tensor:
    """Every frame of batch item ``item`` (of every item for None) gets that item's frame 0; the other
    items keep their own rows."""
    clips = rearrange(tensor, "(b f) n c -> b f n c", f=frames)
    copied = repeat(clips[:, 0], "b n c -> b f n c", f=frames)
    if item is not None:
        copied = torch.cat([clips[:item], copied[item : item + 1], clips[item + 1 :]])
    return rearrange(copied, "b f n c -> (b f) n c")


class ControlledSelfAttention:
    """A self-attention processor with the method's query injection, K/V copy and query capture.

    It computes what diffusers' ``AttnProcessor2_0`` computes for 3D (token) inputs without masks, the
    only kind the controlled ``attn1`` layers receive.
    """

    def __init__(
        self, path: str, state: ControlState, bank: FeatureBank, inject_query: bool, controlled_kv: bool
    ) -> None:
        self.path = path
        self.state = state
        self.bank = bank
        self.inject_query = inject_query  # this layer is one of the query layers
        self.controlled_kv = controlled_kv

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        if encoder_hidden_states is not None or attention_mask is not None or hidden_states.dim() != 3:
            raise RuntimeError(f"{self.path}: controlled layers must be plain self-attention over tokens")
        if attn.spatial_norm is not None or attn.group_norm is not None:
            raise RuntimeError(f"{self.path}: spatial or group norm in a controlled self-attention is not supported")
        mode = self.state.mode
        residual = hidden_states
        query = attn.to_q(hidden_states)
        key = attn.to_k(hidden_states)
        value = attn.to_v(hidden_states)

        if isinstance(mode, Record):
            self.bank.queries[self.path] = query[: mode.rows].detach().clone()
        injection = _injection(mode)
        if injection is not None:
            rows, frames = _frame0_rows(injection, query.shape[0])
            if self.inject_query and injection.query and self.path in self.bank.queries:
                query = _replace_rows(query, rows, _banked(self.bank.queries[self.path], rows, query.device))
            if injection.kv_copy and self.controlled_kv:
                item = None if injection.kv_copy_halves == "both" else injection.conditional_index
                key, value = _copy_frame0(key, frames, item), _copy_frame0(value, frames, item)
        if isinstance(mode, Optimize) and self.path in mode.capture:
            self.state.keep(self.path, query)

        q, k, v = (rearrange(x, "b n (h d) -> b h n d", h=attn.heads) for x in (query, key, value))
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        out = functional.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=False)
        out = rearrange(out, "b h n d -> b n (h d)").to(q.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + residual
        result: torch.Tensor = out / attn.rescale_output_factor
        return result


def _residual_hook(path: str, state: ControlState, bank: FeatureBank, injected: bool) -> Any:
    """A forward hook on a ResNet block's ``conv2``: record, inject (patch AdaIN) or capture its output."""

    def hook(module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor | None:
        changed = False
        mode = state.mode
        if isinstance(mode, Record):
            bank.residuals[path] = output[: mode.rows].detach().clone()
        injection = _injection(mode)
        if injection is not None and injected and injection.residual and path in bank.residuals:
            rows, _ = _frame0_rows(injection, output.shape[0])
            saved = _banked(bank.residuals[path], rows, output.device)
            # Detached, as the authors inject it: the optimization's gradient never reaches frame 0's
            # residual through the current statistics AdaIN borrows.
            new = [
                patch_adain(value, output[row].detach(), injection.adain_patch) if injection.residual_adain else value
                for row, value in zip(rows, saved, strict=True)
            ]
            output = _replace_rows(output, rows, new)
            changed = True
        if isinstance(mode, Optimize) and path in mode.capture:
            state.keep(path, output)
        return output if changed else None

    return hook


MOTION_MODULE_CLASS = "AnimateDiffTransformer3D"


class MotionModulesNotFound(RuntimeError):  # noqa: N818 (named for what the user reads)
    """The UNet's temporal layers cannot be found (or are of a kind we cannot turn off), so it cannot run
    as a per-frame image model."""


def motion_modules(unet: nn.Module) -> list[nn.Module]:
    """The temporal transformers of an AnimateDiff UNet (diffusers' ``AnimateDiffTransformer3D``)."""
    return [m for m in unet.modules() if type(m).__name__ == MOTION_MODULE_CLASS]


@contextmanager
def motion_disabled(unet: nn.Module, name: str | None = None) -> Iterator[None]:
    """Run the UNet as a per-frame image model: every motion module passes its input through unchanged
    (they add their output to a residual, so skipping them is exactly "no temporal layers").

    Raises :class:`MotionModulesNotFound` (naming the model: ``name``, else its class) when no module is an
    ``AnimateDiffTransformer3D``, or when a ``motion_modules`` list holds a module of another class:
    running on with temporal layers on would give features that are not the image's."""
    modules = motion_modules(unet)
    model = f"{name!r} ({type(unet).__name__})" if name else type(unet).__name__
    others = [
        f"{path}.{index} is a {type(child).__name__}"
        for path, module in unet.named_modules()
        if path.rsplit(".", 1)[-1] == "motion_modules" and isinstance(module, nn.ModuleList)
        for index, child in enumerate(module)
        if type(child).__name__ != MOTION_MODULE_CLASS
    ]
    if others or not modules:
        found = "; ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise MotionModulesNotFound(
            f"model {model}: cannot turn its motion modules off for the image inversion"
            + (f" ({found}, not an {MOTION_MODULE_CLASS})" if others else f" (no {MOTION_MODULE_CLASS} in it)")
            + "; load an AnimateDiff UNet whose temporal layers are diffusers' own"
        )

    def identity(hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return hidden_states

    for module in modules:
        module.forward = identity
    try:
        yield
    finally:
        for module in modules:
            del module.forward


@dataclass(frozen=True)
class ControlLayers:
    """Which layers each control touches (module paths of the UNet)."""

    query_layers: tuple[str, ...]
    residual_layers: tuple[str, ...]
    captured: tuple[str, ...] = ()


@contextmanager
def install_controls(unet: nn.Module, layers: ControlLayers, state: ControlState, bank: FeatureBank) -> Iterator[None]:
    """Install the processors and hooks; restore the model exactly on exit (also after an exception)."""
    captured_attention = [p for p in layers.captured if p not in layers.residual_layers and ".attentions." in p]
    attention_paths = tuple(dict.fromkeys([*layers.query_layers, *captured_attention]))
    residual_paths = tuple(
        dict.fromkeys([*layers.residual_layers, *(p for p in layers.captured if p not in attention_paths)])
    )
    attentions = resolve(unet, attention_paths)
    resnets = resolve(unet, residual_paths)
    for path, module in attentions.items():
        if not hasattr(module, "set_processor") or getattr(module, "is_cross_attention", False):
            raise LayerNotFoundError(f"{path!r} is not a self-attention layer ({type(module).__name__})")
    for path, module in resnets.items():
        if not isinstance(getattr(module, "conv2", None), nn.Conv2d):
            raise LayerNotFoundError(f"{path!r} is not a ResNet block with a conv2 ({type(module).__name__})")

    originals: dict[str, Any] = {}
    handles: list[torch.utils.hooks.RemovableHandle] = []
    try:
        for path, module in attentions.items():
            originals[path] = module.processor
            module.set_processor(  # type: ignore[operator]
                ControlledSelfAttention(
                    path,
                    state,
                    bank,
                    inject_query=path in layers.query_layers,
                    controlled_kv=path in layers.query_layers,
                )
            )
        for path, module in resnets.items():
            hook = _residual_hook(path, state, bank, injected=path in layers.residual_layers)
            conv2: nn.Module = module.get_submodule("conv2")
            handles.append(conv2.register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()
        for path, processor in originals.items():
            attentions[path].set_processor(processor)  # type: ignore[operator]
