"""A VAE and motion LoRAs on top of a model, and loading messages in the words of whoever asked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from diffusers import AutoencoderKL
from safetensors.torch import load_file, save_file

from anyi2v.daemon.pipeline.load_errors import CLI_OPTIONS, ModelLoadError
from anyi2v.daemon.pipeline.loading import load_models
from anyi2v.daemon.pipeline.models import byte_tokenizer, random_parts
from tests.daemon.model_files import (
    Parts,
    contiguous,
    kohya_lora,
    tiny_adapter,
    vae_to_ldm,
    write_configs,
    write_motion_lora,
    write_motion_module,
    write_sd15_checkpoint,
    write_vae,
)


@pytest.fixture(scope="module")
def parts() -> Parts:
    return random_parts("tiny", seed=0)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, parts: Parts) -> Path:
    root = tmp_path_factory.mktemp("parts")
    unet, _, vae, text = parts
    sd = root / "sd15"
    (sd / "unet").mkdir(parents=True)
    (sd / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    unet.save_pretrained(sd / "unet")
    vae.save_pretrained(sd / "vae")
    text.save_pretrained(sd / "text_encoder")
    byte_tokenizer(sd / "tokenizer")
    tiny_adapter("v2").save_pretrained(root / "v2")
    tiny_adapter("v3").save_pretrained(root / "v3")
    return root


@pytest.fixture(scope="module")
def plain(store: Path) -> Any:
    return load_models(store / "sd15", motion_adapter=store / "v2", device="cpu")


def assert_same(loaded: torch.nn.Module, reference: torch.nn.Module) -> None:
    mine = loaded.state_dict()
    for key, value in reference.state_dict().items():
        assert torch.equal(mine[key], value), key


# --- a VAE replacing the model's -------------------------------------------------------------------------


def test_a_vae_file_replaces_the_models_vae(store: Path, plain: Any, tmp_path: Path) -> None:
    other = random_parts("tiny", seed=1)[2]
    file = write_vae(tmp_path / "vae-ft-mse.safetensors", other)  # CompVis keys, no prefix
    models = load_models(store / "sd15", motion_adapter=store / "v2", vae=file, device="cpu")
    assert_same(models.vae, other)
    assert_same(models.unet, plain.unet)  # nothing else changes
    assert models.identity != plain.identity  # caches keyed by the model see a different model


def test_a_vae_folder_or_a_checkpoints_vae_replaces_it_too(store: Path, tmp_path: Path) -> None:
    other = random_parts("tiny", seed=2)[2]
    other.save_pretrained(tmp_path / "vae_folder")
    models = load_models(store / "sd15", motion_adapter=store / "v2", vae=tmp_path / "vae_folder", device="cpu")
    assert_same(models.vae, other)
    prefixed = tmp_path / "whole.safetensors"  # a VAE as a checkpoint carries it: first_stage_model.*
    save_file(contiguous(vae_to_ldm(other.state_dict())), prefixed)
    assert_same(load_models(store / "sd15", motion_adapter=store / "v2", vae=prefixed, device="cpu").vae, other)


def test_a_vae_of_another_shape_names_the_file(store: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    wide = AutoencoderKL(
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        layers_per_block=1,
        norm_num_groups=4,
    )
    file = write_vae(tmp_path / "other_shape.safetensors", wide)
    with pytest.raises(ModelLoadError, match="VAE") as caught:
        load_models(store / "sd15", motion_adapter=store / "v2", vae=file, device="cpu")
    assert str(file) in str(caught.value)


def test_a_file_that_is_no_vae_names_the_file(store: Path, tmp_path: Path) -> None:
    module = write_motion_module(tmp_path / "mm.safetensors", tiny_adapter("v2"))
    with pytest.raises(ModelLoadError, match=r"no VAE weights") as caught:
        load_models(store / "sd15", motion_adapter=store / "v2", vae=module, device="cpu")
    assert str(module) in str(caught.value)


# --- motion LoRAs ----------------------------------------------------------------------------------------

# The original AnimateDiff motion LoRA layout and the diffusers module each pair changes.
PAIRS = {
    "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.processor.to_q_lora":
        "down_blocks.0.motion_modules.0.transformer_blocks.0.attn1.to_q",
    "up_blocks.3.motion_modules.1.temporal_transformer.transformer_blocks.0.attention_blocks.1.processor.to_out_lora":
        "up_blocks.3.motion_modules.1.transformer_blocks.0.attn2.to_out.0",
    "mid_block.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.processor.to_v_lora":
        "mid_block.motion_modules.0.transformer_blocks.0.attn1.to_v",
}  # fmt: skip


def test_motion_loras_are_fused_into_the_motion_modules_at_their_weights(
    store: Path, plain: Any, tmp_path: Path
) -> None:
    zoom = write_motion_lora(tmp_path / "v2_lora_ZoomIn.safetensors", tiny_adapter("v2"), seed=0)
    pan = write_motion_lora(tmp_path / "v2_lora_PanLeft.safetensors", tiny_adapter("v2"), seed=1)
    models = load_models(
        store / "sd15", motion_adapter=store / "v2", motion_loras=[(zoom, 0.7), (pan, -1.5)], device="cpu"
    )
    zoom_tensors, pan_tensors = load_file(zoom), load_file(pan)
    for lora, module in PAIRS.items():
        expected = plain.unet.get_submodule(module).weight.clone()
        for tensors, weight in ((zoom_tensors, 0.7), (pan_tensors, -1.5)):
            expected += weight * tensors[f"{lora}.up.weight"] @ tensors[f"{lora}.down.weight"]
        torch.testing.assert_close(models.unet.get_submodule(module).weight, expected, rtol=1e-5, atol=1e-6)
    before, after = plain.unet.state_dict(), models.unet.state_dict()
    changed = {key for key, value in after.items() if not torch.equal(value, before[key])}
    assert len(changed) == len(zoom_tensors) // 2  # one weight per down/up pair, nothing else
    assert all(".motion_modules." in key for key in changed)
    assert models.identity != plain.identity


def test_a_motion_lora_for_another_motion_module_names_the_file(store: Path, tmp_path: Path) -> None:
    v2_lora = write_motion_lora(tmp_path / "v2_lora_ZoomIn.safetensors", tiny_adapter("v2"))
    with pytest.raises(ModelLoadError, match=r"mid_block\.motion_modules") as caught:
        load_models(store / "sd15", motion_adapter=store / "v3", motion_loras=[(v2_lora, 1.0)], device="cpu")
    assert str(v2_lora) in str(caught.value)


def test_an_image_lora_is_not_a_motion_lora(store: Path, parts: Parts, tmp_path: Path) -> None:
    image_lora = tmp_path / "detail.safetensors"
    kohya_lora(image_lora, parts, rank=2, alpha=1.0, seed=0)
    with pytest.raises(ModelLoadError, match="not a motion LoRA") as caught:
        load_models(store / "sd15", motion_adapter=store / "v2", motion_loras=[(image_lora, 1.0)], device="cpu")
    assert str(image_lora) in str(caught.value)


# --- messages in the words of the caller -------------------------------------------------------------------


def test_python_callers_read_keywords_and_the_command_line_reads_flags(
    store: Path, parts: Parts, tmp_path: Path
) -> None:
    with pytest.raises(ModelLoadError, match="motion_adapter="):
        load_models(store / "sd15", device="cpu")
    with pytest.raises(ModelLoadError) as caught:
        load_models(store / "sd15", device="cpu", options=CLI_OPTIONS)
    assert "--motion-module" in str(caught.value)
    assert "motion_adapter=" not in str(caught.value)

    checkpoint = write_sd15_checkpoint(tmp_path / "tiny.safetensors", parts)
    module = write_motion_module(tmp_path / "mm.safetensors", tiny_adapter("v2"))
    configs = write_configs(tmp_path / "configs", parts)
    with pytest.raises(ModelLoadError, match="pass it as --motion-module"):
        load_models(module, config_dir=configs, device="cpu", options=CLI_OPTIONS)
    with pytest.raises(ModelLoadError, match="has no motion modules; pass --motion-module"):
        load_models(checkpoint, config_dir=configs, device="cpu", options=CLI_OPTIONS)
    for part in (configs / "tokenizer").iterdir():
        part.unlink()
    (configs / "tokenizer").rmdir()
    with pytest.raises(ModelLoadError) as caught:
        load_models(checkpoint, motion_adapter=module, config_dir=configs, device="cpu", options=CLI_OPTIONS)
    message = str(caught.value)
    assert "pass --tokenizer" in message
    assert "tokenizer=" not in message
    assert "allow_network" not in message
