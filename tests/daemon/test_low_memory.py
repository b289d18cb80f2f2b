"""Low-memory mode computes what the default mode computes: on the tiny model, the frames and the
optimisation's losses agree, while the optimisation's backward pass really recomputes (the controlled
layers run more often) and guided steps really run their halves apart (twice the UNet calls)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from anyi2v.daemon.pipeline import controls
from anyi2v.daemon.pipeline.controls import Injection, motion_modules
from anyi2v.daemon.pipeline.generate import generate
from anyi2v.daemon.pipeline.low_memory import item_injection
from anyi2v.daemon.pipeline.models import Models, random_models
from anyi2v.shared.document import parse_shot
from anyi2v.shared.shot import Shot

SIZE, FRAMES = 64, 4


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    return random_models("tiny", seed=1, tokenizer_dir=tmp_path_factory.mktemp("tokenizer"))


def shot(method: dict[str, Any] | None = None) -> Shot:
    document = {
        "schema_version": 4,
        "prompt": "a blue cube on a table",
        "output": {"width": SIZE, "height": SIZE, "n_frames": FRAMES},
        "sampling": {"seed": 3, "steps": 3, "guidance_scale": 6.0},
        "conditions": [{"source": {"kind": "image", "path": "c.png"}, "modality": "normal"}],
        "tracks": [{"id": "cube", "keyframes": [{"frame": 0, "box": [0.1, 0.1, 0.5, 0.5]},
                                                {"frame": FRAMES - 1, "box": [0.45, 0.4, 0.9, 0.85]}]}],
        "method": {"inversion_timestep": 5, "injection_steps": 2, "optimization_steps": 2,
                   "optimization_iterations": 2, **(method or {})},
    }  # fmt: skip
    return parse_shot(document, source="test")


def condition() -> np.ndarray:
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    return (np.stack([xs, 1 - ys, (np.abs(xs - 0.3) + np.abs(ys - 0.3)) < 0.2], axis=2) * 255).astype(np.uint8)


class Counts:
    def __init__(self) -> None:
        self.attention = 0
        self.unet = 0


def counted_run(models: Models, monkeypatch: pytest.MonkeyPatch, low_memory: bool, method: dict[str, Any]) -> Any:
    counts = Counts()
    call = controls.ControlledSelfAttention.__call__

    def counting(self: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        counts.attention += 1
        return call(self, *args, **kwargs)

    monkeypatch.setattr(controls.ControlledSelfAttention, "__call__", counting)
    handle = models.unet.register_forward_pre_hook(lambda *_: setattr(counts, "unet", counts.unet + 1))
    try:
        result = generate(models, shot(method), condition(), low_memory=low_memory)
    finally:
        handle.remove()
        monkeypatch.undo()
    return result, counts


@pytest.mark.parametrize(
    "method",
    [{}, {"injection_halves": "both", "kv_copy_halves": "both"}, {"optimize_features": "residual"}],
    ids=["defaults", "both halves", "residual features"],
)
def test_low_memory_makes_the_same_video_by_recomputing_and_running_the_halves_apart(
    models: Models, monkeypatch: pytest.MonkeyPatch, method: dict[str, Any]
) -> None:
    plain, plain_counts = counted_run(models, monkeypatch, False, method)
    low, low_counts = counted_run(models, monkeypatch, True, method)
    assert low_counts.attention > plain_counts.attention  # the backward pass recomputed controlled layers
    steps = 3
    assert low_counts.unet == plain_counts.unet + steps  # each guided step's two halves apart
    np.testing.assert_allclose(low.losses, plain.losses, rtol=1e-4, atol=1e-6)
    # and the model is left as it was found: no checkpointing, no wrapped motion module
    assert not any(getattr(m, "gradient_checkpointing", False) for m in models.unet.modules())
    assert not any("forward" in vars(m) for m in motion_modules(models.unet))
    for a, b in zip(low.frames, plain.frames, strict=True):
        assert int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max()) <= 1


def test_a_recompute_without_the_injection_would_change_the_result(
    models: Models, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the test above relies on: were the backward pass to recompute with the controls idle, the
    gradients, and so the video, would differ."""
    plain, _ = counted_run(models, monkeypatch, False, {})
    original = controls.ControlState.set

    def idle_after_capture(self: controls.ControlState, mode: controls.ControlMode) -> None:
        if isinstance(mode, controls.Optimize) and not mode.capture:
            mode = controls.Idle()
        original(self, mode)

    monkeypatch.setattr(controls.ControlState, "set", idle_after_capture)
    try:
        broken = generate(models, shot(), condition(), low_memory=True)
    finally:
        monkeypatch.undo()
    assert any(not np.array_equal(a, b) for a, b in zip(broken.frames, plain.frames, strict=True))


def test_each_half_alone_gets_what_it_gets_in_the_joint_batch() -> None:
    joint = Injection(frames=4, conditional_index=1)
    assert item_injection(joint, 1) == Injection(frames=4, conditional_index=0)
    assert item_injection(joint, 0) is None  # the authors inject the conditional half only
    both = Injection(frames=4, conditional_index=1, halves="both", kv_copy_halves="both")
    assert item_injection(both, 0) == Injection(frames=4, conditional_index=0, halves="both", kv_copy_halves="both")
    kv_only = Injection(frames=4, conditional_index=1, kv_copy_halves="both")
    alone = item_injection(kv_only, 0)
    assert alone is not None
    assert (alone.query, alone.residual, alone.kv_copy) == (False, False, True)
