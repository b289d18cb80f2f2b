"""The appearance measure: the generated background's colour distance to the prompt's (CIELAB ΔE)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import Attention

from anyi2v.daemon.pipeline import controls
from anyi2v.daemon.pipeline.controls import (
    ControlledSelfAttention,
    ControlState,
    FeatureBank,
    Injection,
    Record,
    Sample,
)
from anyi2v.daemon.pipeline.features import patch_adain
from anyi2v.daemon.toyworld.appearance import (
    APPEARANCE_MODES,
    BOX_MARGIN_PX,
    background_delta_e,
    background_mask,
    mean_interval,
)
from anyi2v.daemon.toyworld.evaluate import MODES
from anyi2v.shared.settings import MethodSettings

F, H, W = 3, 32, 40


def clip(rgb: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, dtype=np.uint8), (F, H, W, 3)).copy()


BOXES = np.array([[[10.0, 8.0, 20.0, 18.0]] * F, [[np.nan] * 4] * F])  # one object, one hidden throughout


def test_the_mask_leaves_out_every_box_with_its_margin() -> None:
    mask = background_mask(BOXES, F, (H, W))
    assert mask.shape == (F, H, W)
    assert not mask[:, 8 - BOX_MARGIN_PX, 10 - BOX_MARGIN_PX].any()
    assert not mask[:, 17 + BOX_MARGIN_PX, 19 + BOX_MARGIN_PX].any()
    assert mask[:, 8 - BOX_MARGIN_PX - 1, 15].all()
    assert mask[:, 0, 0].all()
    assert mask.sum() == F * (H * W - (10 + 2 * BOX_MARGIN_PX) * (10 + 2 * BOX_MARGIN_PX))


def test_the_same_background_is_zero_and_black_for_blue_is_far() -> None:
    blue = clip((0, 0, 255))
    assert background_delta_e(blue, blue, BOXES) == pytest.approx(0.0, abs=1e-4)
    far = background_delta_e(clip((0, 0, 0)), blue, BOXES)
    assert 130 < far < 145  # pure blue is L 32, a 79, b -108 in CIELAB; black is 0, 0, 0
    near = background_delta_e(clip((0, 0, 245)), blue, BOXES)
    assert 0.5 < near < 6


def test_what_is_inside_a_box_does_not_count() -> None:
    truth = clip((40, 90, 200))
    generated = truth.copy()
    generated[:, 8:18, 10:20] = 0  # the object itself, any colour
    assert background_delta_e(generated, truth, BOXES) == pytest.approx(0.0, abs=1e-4)
    covered = np.array([[[0.0, 0.0, W, H]] * F])
    assert math.isnan(background_delta_e(generated, truth, covered))


def test_mean_interval() -> None:
    mean, spread = mean_interval([1.0, 2.0, 3.0, math.nan])
    assert mean == pytest.approx(2.0)
    assert spread == pytest.approx(1.96 * 1.0 / math.sqrt(3))
    assert math.isnan(mean_interval([4.0])[1])


def test_the_appearance_modes_are_valid_settings_and_new_names() -> None:
    assert not set(APPEARANCE_MODES) & set(MODES)
    assert not any("," in name for name in APPEARANCE_MODES)  # --modes takes a comma-separated list
    for name, (control, changes) in APPEARANCE_MODES.items():
        assert control, name
        MethodSettings.model_validate({**MethodSettings().model_dump(), **changes})


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """The queries every attention of the controls computes with (spied on the attention function)."""
    queries: list[torch.Tensor] = []
    real = controls.functional.scaled_dot_product_attention

    def spy(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **options: object) -> torch.Tensor:
        queries.append(q)
        return real(q, k, v, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(controls.functional, "scaled_dot_product_attention", spy)
    return queries


@pytest.mark.parametrize("halves", ["conditional", "both"])
def test_injection_in_both_halves_writes_frame_0_of_every_item(halves: str, seen: list[torch.Tensor]) -> None:
    torch.manual_seed(0)
    frames, tokens, channels = 3, 4, 8
    bank = FeatureBank(queries={"a": torch.randn(1, tokens, channels)}, residuals={"r": torch.randn(1, 2, 4, 4)})
    state = ControlState()
    state.set(Sample(0, Injection(frames, conditional_index=1, kv_copy=False, halves=halves)))
    injected_items = {0, 1} if halves == "both" else {1}

    attn = Attention(query_dim=channels, heads=2, dim_head=4)
    hidden = torch.randn(2 * frames, tokens, channels)
    ControlledSelfAttention("a", state, bank, inject_query=True, controlled_kv=True)(attn, hidden)
    queries = seen[0].transpose(1, 2).reshape(2, frames, tokens, channels)
    own = attn.to_q(hidden).reshape(2, frames, tokens, channels)
    for item in range(2):
        expected = bank.queries["a"][0] if item in injected_items else own[item, 0]
        torch.testing.assert_close(queries[item, 0], expected)
        torch.testing.assert_close(queries[item, 1:], own[item, 1:])  # later frames keep their own

    output = torch.randn(2 * frames, 2, 4, 4)
    hook = controls._residual_hook("r", state, bank, injected=True)
    written = hook(None, (), output.clone())
    for item in range(2):
        row = item * frames
        expected = patch_adain(bank.residuals["r"][0], output[row], 4) if item in injected_items else output[row]
        torch.testing.assert_close(written[row], expected)
        torch.testing.assert_close(written[row + 1 : row + frames], output[row + 1 : row + frames])


def test_a_bank_recorded_per_item_injects_each_item_its_own_features(seen: list[torch.Tensor]) -> None:
    """Injection-aware training records one condition per clip (``Record(rows=B)``) and writes each into
    its own clip's frame 0; a bank whose row count matches neither one nor the clips is refused."""
    torch.manual_seed(1)
    frames, tokens, channels, items = 2, 4, 8, 3
    attn = Attention(query_dim=channels, heads=2, dim_head=4)
    conditions = torch.randn(items, tokens, channels)  # one single-frame condition per clip
    state, bank = ControlState(), FeatureBank()
    processor = ControlledSelfAttention("a", state, bank, inject_query=True, controlled_kv=False)
    state.set(Record(rows=items))
    processor(attn, conditions)
    output = torch.randn(items, 2, 4, 4)
    controls._residual_hook("r", state, bank, injected=True)(None, (), output)
    assert bank.queries["a"].shape[0] == items
    assert bank.residuals["r"].shape[0] == items
    torch.testing.assert_close(bank.queries["a"], attn.to_q(conditions))

    state.set(Sample(0, Injection(frames, kv_copy=False, halves="both", residual_adain=False)))
    hidden = torch.randn(items * frames, tokens, channels)
    processor(attn, hidden)
    queries = seen[-1].transpose(1, 2).reshape(items, frames, tokens, channels)
    own = attn.to_q(hidden).reshape(items, frames, tokens, channels)
    for item in range(items):
        torch.testing.assert_close(queries[item, 0], bank.queries["a"][item])
        torch.testing.assert_close(queries[item, 1], own[item, 1])
    written = controls._residual_hook("r", state, bank, injected=True)(None, (), torch.randn(items * frames, 2, 4, 4))
    for item in range(items):
        torch.testing.assert_close(written[item * frames], bank.residuals["r"][item])

    state.set(Sample(0, Injection(frames, conditional_index=1, kv_copy=False)))  # one row, three in the bank
    with pytest.raises(RuntimeError, match="holds 3 items for 1 injected rows"):
        processor(attn, hidden)


def test_injection_stays_in_the_conditional_half_by_default() -> None:
    assert MethodSettings().injection_halves == "conditional"
    assert Injection.of(MethodSettings(), 4, 1).halves == "conditional"
    both = MethodSettings(injection_halves="both")
    assert Injection.of(both, 4, 1).halves == "both"
