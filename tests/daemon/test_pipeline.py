"""The AnyI2V pipeline on a seeded tiny model: controls, injection, optimization, cache, cancel, determinism."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from anyi2v.daemon.pipeline import controls
from anyi2v.daemon.pipeline import generate as generate_module
from anyi2v.daemon.pipeline.controls import (
    ControlLayers,
    ControlledSelfAttention,
    ControlState,
    FeatureBank,
    Injection,
    LayerNotFoundError,
    Optimize,
    Record,
    Sample,
    StopForward,
    install_controls,
)
from anyi2v.daemon.pipeline.features import low_rank_pca, patch_adain, semantic_mask
from anyi2v.daemon.pipeline.generate import Cancelled, CancelToken, InputError, Progress, StepEvent, generate
from anyi2v.daemon.pipeline.inversion import InversionCache
from anyi2v.daemon.pipeline.models import Models, random_models
from anyi2v.daemon.pipeline.trajectory import update_region
from anyi2v.shared.document import parse_shot
from anyi2v.shared.settings import DEFAULT_QUERY_LAYERS, DEFAULT_RESIDUAL_LAYERS
from anyi2v.shared.shot import Shot

SIZE, FRAMES = 64, 4


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    return random_models("tiny", seed=0, tokenizer_dir=tmp_path_factory.mktemp("tokenizer"))


def make_shot(
    method: dict[str, Any] | None = None, frames: int = FRAMES, size: int = SIZE, max_frames: int = 32, **extra: Any
) -> Shot:
    document: dict[str, Any] = {
        "schema_version": 3,
        "prompt": "a red ball",
        "output": {"width": size, "height": size, "n_frames": frames},
        "sampling": {"seed": 7, "steps": 3, "guidance_scale": 7.5},
        "conditions": [{"source": {"kind": "image", "path": "c.png"}, "modality": "depth"}],
        "tracks": [
            {"id": "ball", "query_points": [[0.3, 0.4]],
             "keyframes": [{"frame": 0, "box": [0.1, 0.2, 0.5, 0.6]},
                           {"frame": frames - 1, "box": [0.4, 0.3, 0.9, 0.8]}]},
            {"id": "bg", "role": "anchor",
             "keyframes": [{"frame": 0, "box": [0.6, 0.0, 1.0, 0.3]},
                           {"frame": frames - 1, "box": [0.5, 0.0, 0.9, 0.3]}]},
        ],
        "method": {"inversion_timestep": 5, "injection_steps": 2, "optimization_steps": 2, "optimization_iterations": 3,
                   **(method or {})},
        **extra,
    }  # fmt: skip
    return parse_shot(document, source="test", max_frames=max_frames)


def condition(size: int = SIZE) -> np.ndarray:
    ys, xs = np.mgrid[0:size, 0:size] / size
    image = np.stack([xs, ys, np.hypot(xs - 0.3, ys - 0.4) < 0.2], axis=2) * 255
    return image.astype(np.uint8)


class UNetCalls:
    def __init__(self, models: Models) -> None:
        self.count = 0
        self.handle = models.unet.register_forward_pre_hook(self._hook)

    def _hook(self, *args: Any) -> None:
        self.count += 1


def hooks_of(models: Models) -> dict[str, int]:
    return {name: len(m._forward_hooks) + len(m._forward_pre_hooks) for name, m in models.unet.named_modules()}


def test_controls_resolve_and_leave_the_model_exactly_as_found(models: Models) -> None:
    processors = dict(models.unet.attn_processors)
    hooks = hooks_of(models)
    layers = ControlLayers(DEFAULT_QUERY_LAYERS, DEFAULT_RESIDUAL_LAYERS, captured=(DEFAULT_QUERY_LAYERS[1],))
    seen: dict[str, Any] = {}

    def use_then_fail() -> None:
        with install_controls(models.unet, layers, ControlState(), FeatureBank()):
            seen["processors"] = dict(models.unet.attn_processors)
            seen["hooks"] = hooks_of(models)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        use_then_fail()
    ours = [k for k, v in seen["processors"].items() if isinstance(v, ControlledSelfAttention)]
    assert sorted(ours) == sorted(f"{p}.processor" for p in DEFAULT_QUERY_LAYERS)
    assert seen["hooks"] != hooks
    after = models.unet.attn_processors
    assert all(after[k] is processors[k] for k in processors)
    assert hooks_of(models) == hooks


def test_a_capturing_forward_stops_right_after_the_last_captured_feature(models: Models) -> None:
    ran: list[str] = []
    watched = ["up_blocks.1.attentions.1", "up_blocks.2.resnets.0", "up_blocks.2.attentions.0", "up_blocks.2.resnets.1"]
    handles = [
        models.unet.get_submodule(path).register_forward_pre_hook(lambda *_, p=path: ran.append(p)) for path in watched
    ]
    captured = (DEFAULT_QUERY_LAYERS[1], DEFAULT_QUERY_LAYERS[2])  # up_blocks.1.attentions.1, up_blocks.2.attentions.0
    state = ControlState(Optimize(step=0, capture=frozenset(captured)))
    latent = torch.randn(1, 4, 2, 8, 8)
    embeds = torch.randn(2, 77, models.text_encoder.config.hidden_size)
    try:
        controls = install_controls(models.unet, ControlLayers((), (), captured), state, FeatureBank())
        with controls, pytest.raises(StopForward):
            models.unet(latent, 10, encoder_hidden_states=embeds)
    finally:
        for handle in handles:
            handle.remove()
    assert ran == watched[:3]  # stopped inside up_blocks.2.attentions.0, before up_blocks.2.resnets.1
    assert set(state.captured) == set(captured)
    assert state.captured[captured[1]].shape[0] == 2


def test_a_missing_layer_fails_loudly_naming_it(models: Models) -> None:
    layers = ControlLayers(("up_blocks.9.attentions.0.transformer_blocks.0.attn1",), ("up_blocks.1.attentions.0",))
    controls = install_controls(models.unet, layers, ControlState(), FeatureBank())
    with pytest.raises(LayerNotFoundError, match=r"up_blocks\.9\.attentions.*does not exist"):
        controls.__enter__()
    shot = make_shot({"query_layers": ["up_blocks.1.attentions.0.transformer_blocks.0.attn9"]})
    with pytest.raises(InputError, match="attn9"):
        generate(models, shot, condition())


def _attention() -> Attention:
    torch.manual_seed(0)
    return Attention(query_dim=8, heads=2, dim_head=4)


@pytest.mark.parametrize("halves", ["conditional", "both"])
def test_controlled_attention_equals_diffusers_when_idle_and_copies_frame0_kv_when_injecting(halves: str) -> None:
    attn = _attention()
    frames, tokens = 3, 5
    hidden = torch.randn(2 * frames, tokens, 8)
    reference = AttnProcessor2_0()(attn, hidden)
    state, bank = ControlState(), FeatureBank()
    processor = ControlledSelfAttention("a", state, bank, inject_query=True, controlled_kv=True)
    torch.testing.assert_close(processor(attn, hidden), reference)

    bank.queries["a"] = torch.randn(1, tokens, 8)
    state.set(Sample(0, Injection(frames, conditional_index=1, kv_copy=True, kv_copy_halves=halves)))
    out = processor(attn, hidden)
    for item in range(2):
        for frame in range(frames):
            row = item * frames + frame
            # the conditional item (1) attends to its frame 0's K/V; the other one too only for "both"
            source = item * frames if item == 1 or halves == "both" else row
            k0, v0 = attn.to_k(hidden[source]), attn.to_v(hidden[source])
            q = bank.queries["a"][0] if row == frames else attn.to_q(hidden[row])
            heads = [
                torch.softmax(q[:, h * 4 : h * 4 + 4] @ k0[:, h * 4 : h * 4 + 4].T / 2.0, dim=-1)
                @ v0[:, h * 4 : h * 4 + 4]
                for h in range(2)
            ]
            expected = attn.to_out[0](torch.cat(heads, dim=1))
            torch.testing.assert_close(out[row], expected, atol=1e-5, rtol=1e-5)


def test_injection_touches_frame0_of_the_conditional_half_only(models: Models) -> None:
    bank = FeatureBank()
    first = "up_blocks.1.resnets.0"  # the first controlled layer the forward reaches
    layers = ControlLayers(DEFAULT_QUERY_LAYERS, DEFAULT_RESIDUAL_LAYERS)
    state = ControlState()
    torch.manual_seed(1)
    image_latent = torch.randn(1, 4, 1, 8, 8)
    text = torch.randn(1, 77, 32)
    with torch.no_grad(), install_controls(models.unet, layers, state, bank):
        state.set(Record())
        models.unet(image_latent, 5, encoder_hidden_states=text)
    seen: list[torch.Tensor] = []
    sample = torch.randn(2, 4, FRAMES, 8, 8)
    embeds = torch.randn(2, 77, 32).repeat_interleave(FRAMES, dim=0)
    with torch.no_grad(), install_controls(models.unet, layers, state, bank):
        # Registered after the controls' hook, so it sees what the injection wrote.
        conv2 = models.unet.get_submodule(first).conv2
        handle = conv2.register_forward_hook(lambda m, a, out: seen.append(out.clone()))
        try:
            for inject in (False, True):
                state.set(Sample(0, Injection(FRAMES, conditional_index=1) if inject else None))
                models.unet(sample, 500, encoder_hidden_states=embeds)
        finally:
            handle.remove()
    plain, injected = seen
    changed = [row for row in range(2 * FRAMES) if not torch.equal(plain[row], injected[row])]
    assert changed == [FRAMES]  # batch item 1 (conditional), frame 0
    saved = bank.residuals[first][0]
    torch.testing.assert_close(injected[FRAMES], patch_adain(saved, plain[FRAMES], 4))


def test_patch_adain_matches_a_direct_computation_and_the_target_statistics() -> None:
    generator = torch.Generator().manual_seed(0)
    source = torch.randn(3, 8, 12, generator=generator, dtype=torch.float64) * 3 + 1
    target = torch.randn(3, 8, 12, generator=generator, dtype=torch.float64) * 0.5 - 2
    out = patch_adain(source, target, 4)
    for c in range(3):
        for y in range(0, 8, 4):
            for x in range(0, 12, 4):
                s, t, o = (a[c, y : y + 4, x : x + 4] for a in (source, target, out))
                expected = (s - s.mean()) / (s.std(unbiased=False) + 1e-6) * t.std(unbiased=False) + t.mean()
                torch.testing.assert_close(o, expected)
                assert float(o.mean()) == pytest.approx(float(t.mean()), abs=1e-9)
                assert float(o.std(unbiased=False)) == pytest.approx(float(t.std(unbiased=False)), rel=1e-5)


def test_pca_keeps_the_gradient_and_orders_components_by_variance() -> None:
    generator = torch.Generator().manual_seed(0)
    scales = torch.tensor([5.0, 3.0, 1.0, 0.1])
    features = (torch.randn(2, 200, 4, generator=generator) * scales).requires_grad_(True)
    projected = low_rank_pca(features, 2)
    assert projected.shape == (2, 200, 2)
    variances = projected.detach().reshape(-1, 2).var(0)
    assert float(variances[0]) > float(variances[1]) > 1.0
    projected.sum().backward()
    assert features.grad is not None
    assert float(features.grad.abs().sum()) > 0
    assert low_rank_pca(features, None) is features


def test_semantic_masks_follow_each_object() -> None:
    grid = torch.zeros(4, 10, 10)
    grid[0, 2:5, 2:5] = 1.0  # object A's feature
    grid[1, 6:9, 6:9] = 1.0  # object B's feature
    grid[2] = 0.1  # background
    mask_a = semantic_mask(grid[:, 3, 3][None], grid)
    mask_b = semantic_mask(grid[:, 7, 7][None], grid)
    assert mask_a.shape == (10, 10)
    assert int(mask_a.sum()) == 9
    assert bool(mask_a[2:5, 2:5].all())
    assert bool(mask_b[6:9, 6:9].all())
    assert not torch.equal(mask_a, mask_b)


def test_the_loss_decreases_and_only_the_latent_moves(models: Models) -> None:
    before = {k: v.clone() for k, v in models.unet.state_dict().items()}
    result = generate(models, make_shot(), condition())
    per_step = np.reshape(result.losses, (2, 3))
    assert np.all(per_step[:, -1] < per_step[:, 0])
    after = models.unet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in models.unet.parameters())


@pytest.mark.parametrize("region", ["latent", "boxes"])
def test_an_update_region_of_boxes_moves_the_latent_inside_the_boxes_only(
    models: Models, region: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    moves: list[tuple[torch.Tensor, torch.Tensor]] = []
    optimize = generate_module._optimize

    def spy(*args: Any) -> torch.Tensor:
        new = optimize(*args)
        moves.append((args[2].detach().clone(), new.clone()))
        return new

    monkeypatch.setattr(generate_module, "_optimize", spy)
    shot = make_shot({"update_region": region})
    generate(models, shot, condition())
    assert len(moves) == 2
    _, _, _frames, height, width = moves[0][0].shape
    inside = update_region(shot, height, width).bool()  # (F, h, w)
    assert 0 < int(inside.sum()) < inside.numel()
    for before, after in moves:
        moved = (after != before).any(1)[0]  # (F, h, w): any channel changed
        assert bool(moved[inside].any())
        if region == "boxes":
            assert not bool(moved[~inside].any())
        else:
            assert bool(moved[~inside].any())
    # each frame's boxes, rounded outwards and grown by one cell: on a 32 x 32 grid, frame 0 holds the
    # ball's box (x 3.2 .. 16, y 6.4 .. 19.2 -> 2 .. 17, 5 .. 21) and the anchor's (x 19.2 .. 32, y 0 .. 9.6
    # -> 18 .. 32, 0 .. 11), nothing else
    grid = update_region(shot, 32, 32)
    assert bool(grid[0, 5:21, 2:17].all())
    assert bool(grid[0, 0:11, 18:32].all())
    assert int(grid[0].sum()) == 16 * 15 + 11 * 14


@pytest.mark.parametrize(
    "method",
    [
        {"kv_copy": False},
        {"kv_copy_halves": "both"},
        {"pca_components": None},
        {"mask": "static"},
        {"mask": "none"},
        {"optimize_features": "residual"},
        {"gaussian_weighting": True, "high_frequency_filter": True},
        {"fresh_optimizer_each_iteration": False, "residual_adain": False},
    ],
    ids=lambda m: ",".join(m),
)
def test_every_ablation_runs_and_changes_the_result(models: Models, method: dict[str, Any]) -> None:
    base = generate(models, make_shot(), condition())
    ablated = generate(models, make_shot(method), condition())
    assert len(ablated.frames) == FRAMES
    assert ablated.frames[0].shape == (SIZE, SIZE, 3)
    assert any(not np.array_equal(a, b) for a, b in zip(base.frames, ablated.frames, strict=True))


def test_kv_is_copied_from_frame0_in_the_injected_calls_only_over_a_whole_run(
    models: Models, monkeypatch: pytest.MonkeyPatch
) -> None:
    shot = make_shot({"kv_copy": True})
    method = shot.method
    calls = UNetCalls(models)
    seen: list[tuple[int, bool]] = []  # (UNet call, frames 1..F of the conditional clip carry frame 0's K and V)
    unconditional: list[bool] = []  # in guided calls: whether the unconditional clip carries them
    real = torch.nn.functional.scaled_dot_product_attention

    def carries(clips_k: torch.Tensor, clips_v: torch.Tensor, item: int) -> bool:
        k, v = clips_k[item], clips_v[item]
        return bool((k == k[:1]).all()) and bool((v == v[:1]).all())

    def spy(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **options: Any) -> torch.Tensor:
        if k.shape[0] > 1:  # inversion runs one frame: nothing to compare
            clips_k, clips_v = (x.reshape(-1, FRAMES, *x.shape[1:]) for x in (k, v))
            seen.append((calls.count, carries(clips_k, clips_v, -1)))  # [uncond, cond]: the last is conditional
            if len(clips_k) == 2:
                unconditional.append(carries(clips_k, clips_v, 0))
        return real(q, k, v, **options)

    monkeypatch.setattr(controls, "functional", SimpleNamespace(scaled_dot_product_attention=spy))
    try:
        generate(models, shot, condition())
    finally:
        calls.handle.remove()
    copied_calls = sorted({call for call, copied in seen if copied})
    plain_calls = sorted({call for call, copied in seen if not copied})
    passes = method.optimization_steps * method.optimization_iterations
    assert len(copied_calls) == passes + method.injection_steps  # every optimization pass, injected steps
    assert len(plain_calls) == shot.sampling.steps - method.injection_steps  # the later steps copy nothing
    assert max(copied_calls) < min(plain_calls)
    assert not set(copied_calls) & set(plain_calls)  # within a call, every controlled layer agrees
    assert unconditional
    assert not any(unconditional)  # the authors copy in the conditional half only


def test_the_inversion_cache_skips_inversion(models: Models, tmp_path: Any) -> None:
    shot = make_shot()
    cache = InversionCache(folder=tmp_path)
    calls = UNetCalls(models)
    try:
        first = generate(models, shot, condition(), cache=cache)
        first_calls, calls.count = calls.count, 0
        again = generate(models, make_shot(sampling={"seed": 9, "steps": 3}), condition(), cache=cache)
        assert again.inversion_cached
        assert first_calls - calls.count == shot.method.inversion_timestep + 1
        calls.count = 0
        from_disk = generate(models, shot, condition(), cache=InversionCache(folder=tmp_path))
        assert from_disk.inversion_cached
        assert all(np.array_equal(a, b) for a, b in zip(first.frames, from_disk.frames, strict=True))
    finally:
        calls.handle.remove()


def test_same_seed_same_video_and_no_control_is_the_baseline(models: Models) -> None:
    one = generate(models, make_shot(), condition())
    two = generate(models, make_shot(), condition())
    assert all(np.array_equal(a, b) for a, b in zip(one.frames, two.frames, strict=True))
    plain = generate(models, make_shot(), None, control=False)
    assert not plain.losses
    assert any(not np.array_equal(a, b) for a, b in zip(one.frames, plain.frames, strict=True))


def assert_cancel_after_first_step(models: Models, image: np.ndarray | None, **options: Any) -> None:
    """A cancel during the first sampling step's callback: ``Cancelled``, no further UNet call, no frame."""
    token = CancelToken()
    decoded: list[int] = []
    calls = UNetCalls(models)

    def on_step(event: StepEvent) -> None:
        if event.stage == "sampling" and event.done == 1:
            token.cancel()
            calls.count = 0

    try:
        with pytest.raises(Cancelled):
            generate(models, make_shot(), image, progress=Progress(on_step, lambda i, f: decoded.append(i)),
                     cancel=token, **options)  # fmt: skip
    finally:
        calls.handle.remove()
    assert calls.count == 0
    assert decoded == []


def test_cancel_stops_within_a_step_and_decodes_nothing(models: Models) -> None:
    assert_cancel_after_first_step(models, condition())


def test_previews_and_frames_stream_in_order(models: Models) -> None:
    events: list[StepEvent] = []
    frames: list[int] = []
    generate(models, make_shot(), condition(), progress=Progress(events.append, lambda i, f: frames.append(i)))
    stages = [e.stage for e in events]
    assert stages.index("inversion") < stages.index("optimization") < stages.index("decode")
    previews = [e.preview for e in events if e.preview is not None]
    assert len(previews) == 3
    assert previews[0].shape == (FRAMES, SIZE // 8, SIZE // 8, 3)
    assert frames == list(range(FRAMES))
    decode = [e.done for e in events if e.stage == "decode"]
    assert decode == [*range(FRAMES), FRAMES]
    assert events[-1] == StepEvent("decode", FRAMES, FRAMES)


def test_inputs_are_checked_before_any_model_work(models: Models) -> None:
    calls = UNetCalls(models)
    try:
        with pytest.raises(InputError, match="motion adapter handles at most 32 frames"):
            generate(models, make_shot(frames=40, max_frames=64), condition())
        with pytest.raises(InputError, match="condition image is 32x32, the shot's output is 64x64"):
            generate(models, make_shot(), condition(32))
        with pytest.raises(InputError, match="uint8"):
            generate(models, make_shot(), condition().astype(np.float32))  # type: ignore[arg-type]
        with pytest.raises(InputError, match="needs one"):
            generate(models, make_shot(), None)
    finally:
        calls.handle.remove()
    assert calls.count == 0


def test_every_stage_ends_with_done_equal_to_total(models: Models) -> None:
    events: list[StepEvent] = []
    generate(models, make_shot(), condition(), progress=Progress(events.append))
    last = {event.stage: (event.done, event.total) for event in events}
    assert set(last) == {"inversion", "optimization", "sampling", "decode"}
    assert all(done == total for done, total in last.values()), last  # optimization stopped one short
