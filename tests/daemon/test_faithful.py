"""Details of the authors' code that ANYI2V-FACTS.md's second read settled, each held on the tiny model or
on the pure functions: the sampling grid, the K/V copy's half of the CFG batch, a box leaving the frame,
patch AdaIN on maps patches do not divide, motion modules that cannot be turned off, the detached
injection, SG-I2V's Gaussian, the pooled 2-means and the loss's normaliser."""

from __future__ import annotations

import copy
import itertools
import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as functional
from diffusers.models.attention_processor import Attention
from torch import nn

from anyi2v.daemon.pipeline import controls
from anyi2v.daemon.pipeline.controls import (
    ControlLayers,
    ControlledSelfAttention,
    ControlState,
    FeatureBank,
    Injection,
    Optimize,
    Record,
    Sample,
    install_controls,
)
from anyi2v.daemon.pipeline.features import gaussian_profile, patch_adain
from anyi2v.daemon.pipeline.generate import encode_prompt, generate
from anyi2v.daemon.pipeline.inversion import invert
from anyi2v.daemon.pipeline.models import Models, random_models
from anyi2v.daemon.pipeline.trajectory import track_boxes, trajectory_loss
from anyi2v.daemon.toyworld.evaluate import MODES
from anyi2v.shared.document import parse_shot
from anyi2v.shared.errors import ShotError
from anyi2v.shared.settings import DEFAULT_QUERY_LAYERS, DEFAULT_RESIDUAL_LAYERS, MethodSettings
from anyi2v.shared.shot import Shot

FRAMES = 3


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    return random_models("tiny", seed=0, tokenizer_dir=tmp_path_factory.mktemp("tokenizer"))


def shot_of(
    tracks: list[dict[str, Any]] | None = None, size: int = 64, frames: int = FRAMES, **sections: Any
) -> Shot:  # fmt: skip
    document: dict[str, Any] = {
        "schema_version": 3,
        "prompt": "a red ball",
        "output": {"width": size, "height": size, "n_frames": frames},
        "sampling": {"seed": 1, "steps": 3, "guidance_scale": 7.5},
        "conditions": [{"source": {"kind": "image", "path": "c.png"}, "modality": "depth"}],
        "tracks": tracks or [],
        "method": {"inversion_timestep": 3},
        **sections,
    }
    return parse_shot(document, source="test")


def condition(size: int = 64) -> np.ndarray:
    ys, xs = np.mgrid[0:size, 0:size] / size
    return (np.stack([xs, ys, np.hypot(xs - 0.3, ys - 0.4) < 0.2], axis=2) * 255).astype(np.uint8)


# 1. The sampling grid.


def sampled_timesteps(models: Models, shot: Shot) -> list[int]:
    seen: list[int] = []

    def spy(module: nn.Module, args: tuple[Any, ...]) -> None:
        seen.append(int(args[1]))

    handle = models.unet.register_forward_pre_hook(spy)
    try:
        generate(models, shot, None, control=False)
    finally:
        handle.remove()
    return seen


def test_sampling_runs_on_the_authors_leading_grid_and_linspace_is_a_setting(models: Models) -> None:
    authors = sampled_timesteps(models, shot_of(sampling={"seed": 1, "steps": 25, "guidance_scale": 1.0}))
    assert authors[:2] == [961, 921]
    assert authors == list(range(961, 0, -40))  # 961, 921, ..., 41, 1
    linspace = shot_of(sampling={"seed": 1, "steps": 25, "guidance_scale": 1.0, "timestep_spacing": "linspace"})
    assert sampled_timesteps(models, linspace) == [int(t) for t in np.linspace(0, 999, 25).round()[::-1]]
    assert sampled_timesteps(models, linspace)[:3] == [999, 957, 916]  # as before the fix


def test_a_shot_without_the_spacing_gets_the_authors_and_a_bad_one_is_named() -> None:
    assert shot_of().sampling.timestep_spacing == "leading"
    with pytest.raises(ShotError, match=r"sampling\.timestep_spacing"):
        shot_of(sampling={"timestep_spacing": "trailing"})


# 2. K/V from frame 0, in the conditional half only.


def test_kv_is_copied_in_the_conditional_half_only_and_in_both_as_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    attn = Attention(query_dim=8, heads=2, dim_head=4)
    frames, tokens = 3, 5
    hidden = torch.randn(2 * frames, tokens, 8)
    processor = ControlledSelfAttention("a", ControlState(), FeatureBank(), inject_query=True, controlled_kv=True)

    def keys_seen(injection: Injection) -> torch.Tensor:
        seen: list[torch.Tensor] = []
        real = functional.scaled_dot_product_attention

        def spy(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **options: Any) -> torch.Tensor:
            seen.append(k)
            return real(q, k, v, **options)

        processor.state.set(Sample(0, injection))
        monkeypatch.setattr(controls, "functional", SimpleNamespace(scaled_dot_product_attention=spy))
        processor(attn, hidden)
        monkeypatch.undo()
        return seen[0].reshape(2, frames, *seen[0].shape[1:])

    own = attn.to_k(hidden).reshape(2, frames, tokens, 8).reshape(2, frames, tokens, 2, 4).transpose(2, 3)
    default = keys_seen(Injection(frames, conditional_index=1))
    torch.testing.assert_close(default[0], own[0])  # unconditional half: its own keys
    torch.testing.assert_close(default[1], own[1, :1].expand(frames, -1, -1, -1))  # conditional: frame 0's
    both = keys_seen(Injection(frames, conditional_index=1, kv_copy_halves="both"))
    for item in range(2):
        torch.testing.assert_close(both[item], own[item, :1].expand(frames, -1, -1, -1))
    assert MethodSettings().kv_copy_halves == "conditional"


def test_the_evaluation_runs_both_kv_choices() -> None:
    assert MODES["AnyI2V"] == (True, {})
    choices = [changes.get("kv_copy_halves") for control, changes in MODES.values() if control]
    assert "both" in choices


# 3. A box that leaves the frame.


def test_a_box_half_outside_the_frame_is_the_whole_box_resized_then_cut() -> None:
    # Grid 16 x 16 (a 64-pixel shot). Frame 0's box is inside; frame 1's is 12 x 12, half of it past the
    # right edge.
    tracks = [{"id": "ball", "keyframes": [{"frame": 0, "box": [2 / 16, 4 / 16, 10 / 16, 12 / 16]},
                                           {"frame": 1, "box": [10 / 16, 2 / 16, 22 / 16, 14 / 16]}]}]  # fmt: skip
    shot = shot_of(tracks, frames=2)
    boxes = track_boxes(shot)
    grid = torch.randn(2, 5, 16, 16, generator=torch.Generator().manual_seed(0))
    loss = trajectory_loss([grid], boxes, MethodSettings(mask="none"))
    whole = functional.interpolate(grid[None, 0, :, 4:12, 2:10], size=(12, 12), mode="bicubic", align_corners=False)
    visible = whole[0, :, :, :6]  # the part of the whole box inside the frame: its left half
    expected = ((visible - grid[1, :, 2:14, 10:16]) ** 2).mean(0).mean()
    torch.testing.assert_close(loss, expected)
    squashed = functional.interpolate(grid[None, 0, :, 4:12, 2:10], size=(12, 6), mode="bicubic", align_corners=False)
    assert float(loss) != pytest.approx(float(((squashed[0] - grid[1, :, 2:14, 10:16]) ** 2).mean()))


def test_a_first_box_partly_outside_uses_only_what_frame_0_shows() -> None:
    # Frame 0's box is 8 wide with its left 2 columns outside; frame 1's is the same box moved in.
    tracks = [{"id": "ball", "keyframes": [{"frame": 0, "box": [-2 / 16, 4 / 16, 6 / 16, 12 / 16]},
                                           {"frame": 1, "box": [4 / 16, 4 / 16, 12 / 16, 12 / 16]}]}]  # fmt: skip
    grid = torch.randn(2, 5, 16, 16, generator=torch.Generator().manual_seed(1))
    loss = trajectory_loss([grid], track_boxes(shot_of(tracks, frames=2)), MethodSettings(mask="none"))
    # Same size: frame 0's visible columns 0..5 land on frame 1's columns 6..11; the 2 unseen columns add nothing.
    expected = ((grid[0, :, 4:12, 0:6] - grid[1, :, 4:12, 6:12]) ** 2).mean(0).mean()
    torch.testing.assert_close(loss, expected)


# 4. Patch AdaIN on maps the patch does not divide.


def test_patch_adain_keeps_its_patches_on_a_map_they_do_not_divide() -> None:
    # A 520-pixel SD 1.5 output: up_blocks.1 runs at 17 x 17, up_blocks.2 at 33 x 33 (gcd with 4 is 1).
    g = torch.Generator().manual_seed(0)
    source = torch.randn(3, 17, 33, generator=g, dtype=torch.float64) * 3 + 1
    target = torch.randn(3, 17, 33, generator=g, dtype=torch.float64) * 0.5 - 2
    out = patch_adain(source, target, 4)
    assert not torch.allclose(out, target)  # p = 1 would give the target back: no injection at all
    rows, columns = [0, 4, 8, 12, 17], [0, 4, 8, 12, 16, 20, 24, 28, 33]  # the remainder joins the last patch
    for y0, y1 in itertools.pairwise(rows):
        for x0, x1 in itertools.pairwise(columns):
            o, t = out[:, y0:y1, x0:x1].flatten(1), target[:, y0:y1, x0:x1].flatten(1)
            torch.testing.assert_close(o.mean(1), t.mean(1))
            torch.testing.assert_close(o.std(1, unbiased=False), t.std(1, unbiased=False), rtol=1e-5, atol=1e-6)
    small = patch_adain(source[:, :3, :3], target[:, :3, :3], 4)  # smaller than a patch: one patch
    torch.testing.assert_close(small.flatten(1).mean(1), target[:, :3, :3].flatten(1).mean(1))


def test_injection_changes_frame_0_at_a_size_whose_maps_patches_do_not_divide(models: Models) -> None:
    # 72 pixels: a 9 x 9 latent; up_blocks.1 runs at 3 x 3 and up_blocks.2 at 5 x 5.
    layers = ControlLayers(DEFAULT_QUERY_LAYERS, DEFAULT_RESIDUAL_LAYERS)
    bank, state = FeatureBank(), ControlState()
    torch.manual_seed(1)
    with torch.no_grad(), install_controls(models.unet, layers, state, bank):
        state.set(Record())
        models.unet(torch.randn(1, 4, 1, 9, 9), 5, encoder_hidden_states=torch.randn(1, 77, 32))
    assert bank.residuals["up_blocks.1.resnets.0"].shape[-2:] == (3, 3)
    seen: list[torch.Tensor] = []
    sample, embeds = torch.randn(1, 4, FRAMES, 9, 9), torch.randn(FRAMES, 77, 32)
    with torch.no_grad(), install_controls(models.unet, layers, state, bank):
        conv2 = models.unet.get_submodule("up_blocks.1.resnets.0").conv2
        handle = conv2.register_forward_hook(lambda m, a, out: seen.append(out.clone()))
        try:
            for injection in (None, Injection(FRAMES)):
                state.set(Sample(0, injection))
                models.unet(sample, 500, encoder_hidden_states=embeds)
        finally:
            handle.remove()
    plain, injected = seen
    assert [row for row in range(FRAMES) if not torch.equal(plain[row], injected[row])] == [0]


# 5. Motion modules that cannot be turned off.


class TemporalLayer(nn.Module):
    """A temporal layer of another class than diffusers' (as a re-implementation might ship)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        out: torch.Tensor = self.inner(hidden_states, *args, **kwargs)
        return out


def test_inversion_refuses_a_model_whose_motion_modules_it_cannot_find(models: Models) -> None:
    unet = copy.deepcopy(models.unet)
    for name, module in list(unet.named_modules()):
        if name.endswith("motion_modules"):
            for index in range(len(module)):
                module[index] = TemporalLayer(module[index])
    renamed = Models(unet, models.vae, models.text_encoder, models.tokenizer, models.scheduler, "renamed-motion")
    calls: list[int] = []
    handle = unet.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        embeds = encode_prompt(renamed, "a red ball")
        with pytest.raises(RuntimeError, match=r"renamed-motion.*motion modules"):
            invert(renamed, condition(), embeds, MethodSettings(inversion_timestep=3))
    finally:
        handle.remove()
    assert calls == []  # refused before any UNet call, never inverted with motion on


# 6. The injected residual is detached; SG-I2V's Gaussian.


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.conv2(x)
        return out


def test_no_gradient_of_the_optimization_flows_into_the_injected_residual() -> None:
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("block", Block())
    bank = FeatureBank(residuals={"block": torch.randn(1, 3, 8, 8)})
    state = ControlState(Optimize(0, frozenset(), Injection(FRAMES)))
    x = torch.randn(FRAMES, 3, 8, 8, requires_grad=True)
    weights = torch.randn(FRAMES, 3, 8, 8)
    with install_controls(model, ControlLayers((), ("block",)), state, bank):
        out = model(x)
    (out * weights).sum().backward()
    assert x.grad is not None
    assert float(x.grad[0].abs().sum()) == 0.0  # frame 0's residual is the injected one, a constant
    assert float(x.grad[1:].abs().sum()) > 0.0


def test_the_gaussian_weight_has_sigma_a_fifth_of_the_side() -> None:
    for length in (5, 10, 16):
        offsets = torch.arange(length, dtype=torch.float32) - (length - 1) / 2
        expected = torch.exp(-(offsets**2) / (2 * (0.2 * length) ** 2))
        torch.testing.assert_close(gaussian_profile(length, torch.device("cpu")), expected)


# The 2-means pooled over both optimized layers; the loss normalised over all frames.


def unit(cosine: float) -> list[float]:
    """A 2-channel feature whose cosine with (1, 0) is ``cosine``."""
    return [cosine, math.sqrt(1 - cosine**2)]


def test_the_semantic_masks_two_means_pools_both_layers() -> None:
    box, point = (2, 2, 6, 6), (3, 3)
    keys = [{"frame": frame, "box": [2 / 16, 2 / 16, 6 / 16, 6 / 16]} for frame in (0, 1)]
    track = track_boxes(shot_of([{"id": "ball", "query_points": [[3.5 / 16, 3.5 / 16]], "keyframes": keys}], 64, 2))
    assert track[0].boxes[0] == box
    assert track[0].points == (point,)
    # Layer A: object pixels (cosine 1 with the point) in the box's top half, background (cosine 0) below.
    clear = torch.zeros(2, 2, 16, 16)
    clear[:, 1] = 1.0
    clear[0, :, 2:4, 2:6] = torch.tensor([1.0, 0.0])[:, None, None]
    clear[1, :, 3:5, 2:6] = torch.tensor([2.0, 0.0])[:, None, None]  # the same direction, stronger
    # Layer B: nothing like the point anywhere but at the point itself in frame 0 (cosines 0.1 and 0.2).
    vague = torch.tensor(unit(0.1))[None, :, None, None].repeat(2, 1, 16, 16)
    vague[:, :, 3, :] = torch.tensor(unit(0.2))[:, None]
    vague[0, :, 3, 3] = torch.tensor([1.0, 0.0])
    settings = MethodSettings()
    alone = trajectory_loss([clear], track, settings)
    assert float(alone) > 0.0
    # Pooled with layer A's clear split, layer B's values are all background in frame 1: B adds nothing.
    # (Split on its own, B's 0.2 row would be foreground and add a term.)
    torch.testing.assert_close(trajectory_loss([clear, vague], track, settings), alone)


def test_the_loss_is_normalised_by_the_weights_over_all_frames() -> None:
    tracks = [{"id": "ball", "keyframes": [{"frame": 0, "box": [0.25, 0.25, 0.5, 0.5]},
                                           {"frame": 1, "box": [0.25, 0.25, 0.5, 0.5]},
                                           {"frame": 2, "box": [0.5, 0.5, 0.625, 0.625]}]}]  # fmt: skip
    boxes = track_boxes(shot_of(tracks, frames=3))  # grid 16: boxes 4 x 4, 4 x 4, 2 x 2
    grid = torch.randn(3, 5, 16, 16, generator=torch.Generator().manual_seed(2))
    reference = grid[0, :, 4:8, 4:8]
    small = functional.interpolate(reference[None], size=(2, 2), mode="bicubic", align_corners=False)[0]
    sums = [
        ((reference - grid[1, :, 4:8, 4:8]) ** 2).mean(0).sum(),
        ((small - grid[2, :, 8:10, 8:10]) ** 2).mean(0).sum(),
    ]
    loss = trajectory_loss([grid], boxes, MethodSettings(mask="none"))
    torch.testing.assert_close(loss, (sums[0] + sums[1]) / (16 + 4))


def test_inversion_records_at_its_timestep_whatever_the_sampling_grid(models: Models) -> None:
    """The features come from the call at ``inversion_timestep`` on the 1000-step schedule (201 by
    default), not from a timestep of the sampling grid."""
    recorded: list[int] = []

    def spy(module: nn.Module, args: tuple[Any, ...]) -> None:
        recorded.append(int(args[1]))

    handle = models.unet.register_forward_pre_hook(spy)
    try:
        embeds = encode_prompt(models, "a red ball")
        bank = invert(models, condition(), embeds, MethodSettings(inversion_timestep=7))
    finally:
        handle.remove()
    assert recorded == list(range(8))  # t = 0 .. 6 walk up, the call at 7 records
    assert set(bank.residuals) == set(DEFAULT_RESIDUAL_LAYERS)
    assert MethodSettings().inversion_timestep == 201
