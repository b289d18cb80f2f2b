"""Toy-world batches and the training script, on the CPU at the smallest settings."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from anyi2v.daemon.pipeline.loading import load_models
from anyi2v.daemon.toyworld import export, train
from anyi2v.daemon.toyworld.dataset import MODALITIES, render_clips, render_conditions
from anyi2v.daemon.toyworld.scenes import sample_scene

CPU = torch.device("cpu")


def test_clips_have_pixels_in_range_captions_and_boxes_that_follow_the_objects() -> None:
    scenes = [sample_scene(seed, frames=4) for seed in (3, 4)]
    batch = render_clips(scenes, 48, CPU)
    assert batch.pixels.shape == (2, 3, 4, 48, 48)
    assert float(batch.pixels.min()) >= -1.0
    assert float(batch.pixels.max()) <= 1.0
    assert batch.captions == [scene.caption() for scene in scenes]
    assert batch.boxes.shape == (2, 3, 4, 4)
    for index, scene in enumerate(scenes):
        for k in range(3):
            boxes = batch.boxes[index, k]
            if k >= len(scene.objects):
                assert bool(torch.isnan(boxes).all())  # no such object
                continue
            seen = boxes[~torch.isnan(boxes).any(1)]
            assert bool((seen[:, 0] < seen[:, 2]).all())
            assert bool((seen[:, 1] < seen[:, 3]).all())


def test_conditions_come_in_every_modality_with_their_captions() -> None:
    scenes = [sample_scene(seed, frames=2) for seed in range(len(MODALITIES))]
    batch = render_conditions(scenes, list(MODALITIES), 40, CPU, generator=torch.Generator().manual_seed(0))
    assert batch.pixels.shape == (len(MODALITIES), 3, 1, 40, 40)
    for index, modality in enumerate(MODALITIES):
        image = batch.pixels[index, :, 0]
        assert float(image.max()) > float(image.min())  # something was drawn
        assert batch.captions[index].startswith({"depth": "a depth", "normal": "a normal", "edges": "an edge",
                                                 "splat": "a point"}[modality])  # fmt: skip
    with pytest.raises(ValueError, match="unknown modalities"):
        render_conditions(scenes[:1], ["sketch"], 40, CPU)


def test_the_learning_rate_warms_up_then_decays_along_a_cosine() -> None:
    assert train.schedule(0, 10, 0.0, 0.9) == pytest.approx(0.1)  # warm-up
    assert train.schedule(100, 10, 0.0, 0.9) == pytest.approx(1.0)
    assert train.schedule(100, 10, 0.5, 0.9) == pytest.approx(0.55)
    assert train.schedule(100, 10, 1.0, 0.9) == pytest.approx(0.1)
    assert train.schedule(100, 10, 3.0, 0.9) == pytest.approx(0.1)  # clamped past the end
    assert train.schedule(100, 10, 1.0, 0.0) == pytest.approx(1.0)  # no decay


def test_training_runs_resumes_and_saves_a_model_the_pipeline_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(train, "SIZE", 32)
    monkeypatch.setattr(
        "anyi2v.daemon.toyworld.train.sample_scene", lambda seed, frames=2: sample_scene(seed, frames=min(frames, 2))
    )
    out = tmp_path / "run"
    common = ["--out", str(out), "--device", "cpu", "--batch", "2", "--log-every", "1"]
    train.main(["vae", "--steps", "2", *common])
    state = json.loads((out / "train_state.json").read_text())
    assert state["vae_step"] == 2
    assert math.isfinite(state["scaling_factor"])
    assert state["scaling_factor"] > 0
    train.main(["diffusion", "--steps", "2", "--video-fraction", "0.5", "--decay", "0.5", *common])
    train.main(["diffusion", "--steps", "1", "--pool", "2", "--refresh-every", "1", *common])  # resumes, pooled
    state = json.loads((out / "train_state.json").read_text())
    assert state["diffusion_step"] == 3
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["stage"] == "diffusion"] == [0, 1, 2]
    # --lr 2e-4, warm-up 200 steps, then half the cosine's decay done at step 1 of 2
    assert [r["lr"] for r in records if r["stage"] == "diffusion"][:2] == pytest.approx([1e-6, 2e-6 * 0.75])
    assert all(math.isfinite(r["loss"]) for r in records)
    models = load_models(out)  # the pipeline's own loader, from the diffusers layout the run wrote
    assert models.vae.config.scaling_factor == pytest.approx(state["scaling_factor"])
    assert models.tokenizer.model_max_length == 77
    tokens = models.tokenizer.convert_ids_to_tokens(models.tokenizer("a shiny red cube").input_ids)
    assert tokens == ["<|startoftext|>", "a</w>", "shiny</w>", "red</w>", "cube</w>", "<|endoftext|>"]

    # export: fp16 safetensors the pipeline loads, the log and a loss curve; limits enforced by name
    weights = tmp_path / "weights"
    total = export.export_weights(out, weights)
    files = [path for path in weights.rglob("*") if path.is_file()]
    assert total == sum(path.stat().st_size for path in files)
    for path in weights.rglob("*.safetensors"):
        with safe_open(str(path), "pt") as handle:
            assert {handle.get_slice(key).get_dtype() for key in handle.keys()} == {"F16"}, path  # noqa: SIM118
    exported = load_models(weights, device="cpu", dtype="fp32")
    assert exported.vae.config.scaling_factor == pytest.approx(state["scaling_factor"])
    export.loss_curve(out / "log.jsonl", tmp_path / "loss.png")
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    resumed = tmp_path / "resumed"  # training goes on from the fp16 export, in fp32
    shutil.copytree(weights, resumed)
    train.main(["diffusion", "--steps", "1", *common[2:], "--out", str(resumed)])
    assert json.loads((resumed / "train_state.json").read_text())["diffusion_step"] == 4
    monkeypatch.setattr(export, "SHARD_LIMIT", 1000)
    with pytest.raises(export.ExportError, match="shard limit"):
        export.export_weights(out, weights)
    assert {path for path in weights.rglob("*") if path.is_file()} == set(files)  # the last export is kept
    shutil.rmtree(out / "unet")
    with pytest.raises(export.ExportError, match="no unet/"):
        export.export_weights(out, tmp_path / "other")


def test_a_run_is_reproducible_from_its_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs from scratch with the same seed log the same losses and save the same weights; another
    seed gives other ones."""
    monkeypatch.setattr(train, "SIZE", 32)
    monkeypatch.setattr(
        "anyi2v.daemon.toyworld.train.sample_scene", lambda seed, frames=2: sample_scene(seed, frames=min(frames, 2))
    )

    def run(name: str, seed: int) -> tuple[list[float], torch.Tensor]:
        out = tmp_path / name
        common = ["--out", str(out), "--device", "cpu", "--batch", "2", "--log-every", "1", "--seed", str(seed)]
        train.main(["vae", "--steps", "1", *common])
        train.main(["diffusion", "--steps", "2", "--video-fraction", "0.5", *common])
        losses = [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()]
        weights = load_models(out).unet.state_dict()
        return losses, torch.cat([tensor.flatten().float() for tensor in weights.values()])

    first, again, other = run("first", 3), run("again", 3), run("other", 4)
    assert first[0] == again[0]
    assert torch.equal(first[1], again[1])
    assert first[0] != other[0]
    assert not torch.equal(first[1], other[1])


@pytest.mark.parametrize("pooled", [False, True])
def test_injection_aware_training_injects_each_clips_condition_and_leaves_the_model_plain(
    pooled: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--injected-fraction 1``: every video step records each clip's frame-0 condition render and
    trains with it injected at a timestep from the injection's range; the saved UNet has diffusers' own
    processors again (nothing of the controls is left in the model)."""
    monkeypatch.setattr(train, "SIZE", 32)
    monkeypatch.setattr(
        "anyi2v.daemon.toyworld.train.sample_scene", lambda seed, frames=2: sample_scene(seed, frames=min(frames, 2))
    )
    recorded: list[tuple[int, list[int]]] = []
    real_injecting = train.InjectedTraining.injecting
    timesteps: list[list[int]] = []
    real_step = train.DiffusionStep.__call__
    real_timesteps = train.InjectedTraining.timesteps

    def injecting(self, unet, conditions, embeds, frames):  # type: ignore[no-untyped-def]
        recorded.append((frames, list(conditions.shape)))
        return real_injecting(self, unet, conditions, embeds, frames)

    def step(self, latents, captions, video, generator, lr, conditions=None):  # type: ignore[no-untyped-def]
        assert conditions is not None  # every step injects at --injected-fraction 1
        assert conditions.shape[0] == latents.shape[0]
        assert conditions.shape[2] == 1
        return real_step(self, latents, captions, video, generator, lr, conditions)

    def drawn(self, count, total, generator, device):  # type: ignore[no-untyped-def]
        chosen = real_timesteps(self, count, total, generator, device)
        timesteps.append(chosen.tolist())
        return chosen

    monkeypatch.setattr(train.InjectedTraining, "injecting", injecting)
    monkeypatch.setattr(train.DiffusionStep, "__call__", step)
    monkeypatch.setattr(train.InjectedTraining, "timesteps", drawn)
    out = tmp_path / "run"
    common = ["--out", str(out), "--device", "cpu", "--batch", "2", "--log-every", "1"]
    train.main(["vae", "--steps", "1", *common])
    extra = ["--pool", "2", "--refresh-every", "1"] if pooled else []
    train.main(
        ["diffusion", "--steps", "2", "--video-fraction", "1", "--injected-fraction", "1",
         "--injected-min-timestep", "900", "--drift-std", "0.1", "--drift-from", "950", *extra, *common]
    )  # fmt: skip
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    diffusion = [r for r in records if r["stage"] == "diffusion"]
    assert [r["injected"] for r in diffusion] == [True, True]
    assert all(math.isfinite(r["loss"]) for r in diffusion)
    assert len(recorded) == 2
    assert all(frames == 2 and shape[0] == 2 and shape[2] == 1 for frames, shape in recorded)
    assert len(timesteps) == 2
    assert all(900 <= t < 1000 for each in timesteps for t in each)
    unet = load_models(out).unet
    assert not any(type(p).__name__ == "ControlledSelfAttention" for p in unet.attn_processors.values())


def test_a_drift_offsets_the_noisiest_examples_and_the_target_still_denoises_to_the_clean_clip() -> None:
    """``--drift-std``: examples from ``--drift-from`` up get one offset per clip, channel and frame
    (the same over the frame), the others none; the target noise takes it in, so that the clean latents
    come back from the noisy ones and the target exactly as the forward process defines it."""
    step = train.DiffusionStep.__new__(train.DiffusionStep)
    step.device, step.drift = CPU, (0.3, 700)
    step.alphas = torch.linspace(0.999, 0.01, 1000)
    latents, noise = torch.randn(4, 4, 3, 5, 5), torch.randn(4, 4, 3, 5, 5)
    timesteps = torch.tensor([10, 699, 700, 999])
    noisy, target = step.inputs(latents, timesteps, noise, torch.Generator().manual_seed(0))
    plain = step._noised(latents, timesteps, noise)
    offset = noisy - plain
    assert torch.allclose(offset[:2], torch.zeros_like(offset[:2]))
    assert torch.equal(target[:2], noise[:2])
    assert float(offset[2:].abs().amin(dim=(3, 4)).min()) > 0  # every channel and frame of the drifting clips moves
    assert torch.allclose(offset[2:], offset[2:, :, :, :1, :1].expand_as(offset[2:]))  # flat over each frame
    assert not torch.allclose(offset[2:, :, 0], offset[2:, :, 2])  # and not the same in every frame
    alpha = step.alphas[timesteps].view(-1, 1, 1, 1, 1)
    clean = (noisy - (1 - alpha).sqrt() * target) / alpha.sqrt()
    assert torch.allclose(clean, latents, atol=1e-4)
    step.drift = (0.0, 700)
    undrifted, same = step.inputs(latents, timesteps, noise, torch.Generator().manual_seed(0))
    assert torch.equal(undrifted, plain)
    assert torch.equal(same, noise)
