"""Loading weights from disk: diffusers folders, AnimateDiff folders, single-file SD 1.5 checkpoints.

Every model here is tiny and seeded; the files are written by the tests (diffusers' ``save_pretrained``,
and our own map back to the original CompVis / AnimateDiff key layouts in ``model_files``), then loaded
with no network.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from diffusers import AnimateDiffPipeline, DDIMScheduler, UNetMotionModel
from safetensors.torch import save_file
from transformers import CLIPTokenizer

from anyi2v.daemon.pipeline import loading, model_formats, single_file
from anyi2v.daemon.pipeline.loading import (
    REQUIRED_UNET_LAYERS,
    SD15_CONFIG_DIR,
    ModelLoadError,
    check_unet_layers,
    load_models,
    resolve_device,
    resolve_dtype,
)
from anyi2v.daemon.pipeline.models import ANIMATEDIFF_SCHEDULER, Models, byte_tokenizer, random_parts
from tests.daemon.model_files import (
    TEXT_TARGETS,
    TINY_LAYERS,
    UNET_TARGETS,
    Parts,
    adapter_to_original,
    clip_to_ldm,
    contiguous,
    kohya_lora,
    unet_to_ldm,
    vae_to_ldm,
)

# --- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def parts() -> Parts:
    return random_parts("tiny", seed=0)


@pytest.fixture(scope="module")
def other_adapter() -> Any:
    return random_parts("tiny", seed=1)[1]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, parts: Parts, other_adapter: Any) -> Path:
    """Every file the tests load, written once."""
    root = tmp_path_factory.mktemp("models")
    unet, adapter, vae, text = parts
    sd = root / "sd15"
    (sd / "unet").mkdir(parents=True)
    (sd / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    unet.save_pretrained(sd / "unet")
    vae.save_pretrained(sd / "vae")
    text.save_pretrained(sd / "text_encoder")
    byte_tokenizer(sd / "tokenizer")
    adapter.save_pretrained(root / "adapter")
    other_adapter.save_pretrained(root / "other_adapter")

    tokenizer = byte_tokenizer(root / "motion" / "tokenizer")
    pipe = AnimateDiffPipeline(
        vae=vae,
        text_encoder=text,
        tokenizer=tokenizer,
        unet=unet,
        motion_adapter=adapter,
        scheduler=DDIMScheduler(**ANIMATEDIFF_SCHEDULER),
    )
    pipe.save_pretrained(root / "motion")

    configs = root / "configs"
    unet.save_config(configs / "unet")
    vae.save_config(configs / "vae")
    text.config.save_pretrained(configs / "text_encoder")
    adapter.save_config(configs / "motion_adapter")
    byte_tokenizer(configs / "tokenizer")

    checkpoint = unet_to_ldm(unet.state_dict(), TINY_LAYERS) | vae_to_ldm(vae.state_dict()) | clip_to_ldm(text)
    checkpoint["alphas_cumprod"] = torch.linspace(1.0, 0.0, 1000)  # scheduler buffers of the LDM wrapper
    save_file(contiguous(checkpoint), root / "tiny-sd15.safetensors")
    torch.save(adapter_to_original(adapter), root / "mm_tiny.ckpt")
    save_file(contiguous(adapter_to_original(adapter)), root / "mm_tiny.safetensors")
    return root


def assert_same(loaded: torch.nn.Module, reference: torch.nn.Module, *, skip: str = "\0") -> int:
    """Every tensor of ``reference`` equals the one of the same name in ``loaded``; returns how many."""
    mine = loaded.state_dict()
    compared = 0
    for key, value in reference.state_dict().items():
        if skip in key:
            continue
        assert key in mine, key
        assert torch.equal(mine[key].cpu(), value.to(mine[key].dtype)), key
        compared += 1
    return compared


def assert_ready(models: Models) -> None:
    assert isinstance(models.unet, UNetMotionModel)
    assert isinstance(models.scheduler, DDIMScheduler)
    for key, value in ANIMATEDIFF_SCHEDULER.items():
        assert models.scheduler.config[key] == value, key
    for module in (models.unet, models.vae, models.text_encoder):
        assert not module.training
        assert not any(parameter.requires_grad for parameter in module.parameters())
    assert models.tokenizer("a cat").input_ids[0] == 0  # the byte tokenizer's start token
    check_unet_layers(models.unet, "loaded")


# --- sources --------------------------------------------------------------------------------------------


def test_diffusers_folder_with_adapter_folder(store: Path, parts: Parts) -> None:
    unet, adapter, vae, text = parts
    models = load_models(store / "sd15", motion_adapter=store / "adapter", device="cpu")
    assert_ready(models)
    assert models.device.type == "cpu"
    assert models.dtype == torch.float32
    assert assert_same(models.unet, unet) == len(unet.state_dict())
    assert assert_same(models.unet, adapter) == len(adapter.state_dict())
    assert_same(models.vae, vae)
    assert_same(models.text_encoder, text)
    assert models.identity.startswith("sd15-folder:sd15:")


def test_identity_is_stable_and_names_the_weights(store: Path) -> None:
    first = load_models(store / "sd15", motion_adapter=store / "adapter", device="cpu").identity
    again = load_models(store / "sd15", motion_adapter=store / "adapter", device="cpu").identity
    other = load_models(store / "sd15", motion_adapter=store / "other_adapter", device="cpu").identity
    assert first == again
    assert other != first


def test_motion_unet_folder_needs_no_adapter(store: Path, parts: Parts) -> None:
    unet, adapter, vae, text = parts
    assert json.loads((store / "motion" / "unet" / "config.json").read_text())["_class_name"] == "UNetMotionModel"
    models = load_models(store / "motion", device="cpu", dtype="bf16")
    assert_ready(models)
    assert models.dtype == torch.bfloat16
    assert assert_same(models.unet, unet) == len(unet.state_dict())
    assert_same(models.unet, adapter)
    assert_same(models.vae, vae)
    assert_same(models.text_encoder, text)
    assert models.identity.startswith("motion-folder:motion:")


def test_adapter_replaces_the_motion_modules_of_a_motion_folder(store: Path, parts: Parts, other_adapter: Any) -> None:
    models = load_models(store / "motion", motion_adapter=store / "other_adapter", device="cpu")
    assert_same(models.unet, other_adapter)
    assert_same(models.unet, parts[0])


def test_single_file_checkpoint_with_original_motion_module(store: Path, parts: Parts) -> None:
    unet, adapter, vae, text = parts
    models = load_models(
        store / "tiny-sd15.safetensors",
        motion_adapter=store / "mm_tiny.ckpt",
        config_dir=store / "configs",
        device="cpu",
    )
    assert_ready(models)
    assert assert_same(models.unet, unet) == len(unet.state_dict())
    assert assert_same(models.unet, adapter) == len(adapter.state_dict())
    assert models.max_frames == adapter.config.motion_max_seq_length
    assert_same(models.vae, vae)
    assert_same(models.text_encoder, text)
    assert models.identity.startswith("sd15-file:tiny-sd15.safetensors:")


def test_original_motion_module_with_a_diffusers_folder(store: Path, parts: Parts) -> None:
    models = load_models(
        store / "sd15", motion_adapter=store / "mm_tiny.safetensors", config_dir=store / "configs", device="cpu"
    )
    assert assert_same(models.unet, parts[1]) == len(parts[1].state_dict())


def test_single_file_without_a_tokenizer_says_where_to_get_one(store: Path, tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    for part in ("unet", "vae", "text_encoder", "motion_adapter"):
        (configs / part).mkdir(parents=True)
        (configs / part / "config.json").write_bytes((store / "configs" / part / "config.json").read_bytes())
    source = store / "tiny-sd15.safetensors"
    with pytest.raises(ModelLoadError, match=r"tokenizer=") as caught:
        load_models(source, motion_adapter=store / "mm_tiny.ckpt", config_dir=configs, device="cpu")
    assert str(source) in str(caught.value)
    models = load_models(
        source, motion_adapter=store / "mm_tiny.ckpt", config_dir=configs, tokenizer=store / "sd15" / "tokenizer"
    )
    assert models.tokenizer("a").input_ids[0] == 0


def test_network_tokenizer_is_fetched_only_when_allowed(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs = tmp_path / "configs"
    for part in ("unet", "vae", "text_encoder", "motion_adapter"):
        (configs / part).mkdir(parents=True)
        (configs / part / "config.json").write_bytes((store / "configs" / part / "config.json").read_bytes())
    calls: list[tuple[str, bool]] = []

    class Recording:
        @staticmethod
        def from_pretrained(name: str, *, local_files_only: bool) -> Any:
            calls.append((name, local_files_only))
            return CLIPTokenizer.from_pretrained(store / "sd15" / "tokenizer")

    monkeypatch.setattr(single_file, "CLIPTokenizer", Recording)
    load_models(
        store / "tiny-sd15.safetensors",
        motion_adapter=store / "mm_tiny.ckpt",
        config_dir=configs,
        allow_network=True,
        device="cpu",
    )
    assert calls == [(loading.HUB_TOKENIZER, False)]


def test_nothing_is_downloaded(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[str] = []

    def refuse(name: str) -> Callable[..., Any]:
        def raising(*args: object, **kwargs: object) -> Any:
            attempts.append(name)
            raise AssertionError(f"{name} called: loading must not reach the network")

        return raising

    import huggingface_hub

    names = ("hf_hub_download", "snapshot_download", "model_info", "get_hf_file_metadata", "try_to_load_from_cache")
    originals = {name: getattr(huggingface_hub, name) for name in names}
    for module in list(sys.modules.values()):
        for name, original in originals.items():
            if getattr(module, name, None) is original:
                monkeypatch.setattr(module, name, refuse(name))
    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))

    load_models(store / "sd15", motion_adapter=store / "adapter", device="cpu")
    load_models(store / "motion", device="cpu")
    load_models(
        store / "tiny-sd15.safetensors",
        motion_adapter=store / "mm_tiny.ckpt",
        config_dir=store / "configs",
        device="cpu",
    )
    assert attempts == []


# --- errors ---------------------------------------------------------------------------------------------


def test_missing_source_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ModelLoadError, match="not found") as caught:
        load_models(missing, device="cpu")
    assert str(missing) in str(caught.value)


def test_missing_unet_folder_names_it_and_the_layout(store: Path, tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    for part in ("vae", "text_encoder", "tokenizer"):
        (folder / part).mkdir(parents=True)
    with pytest.raises(ModelLoadError, match=r"unet/, vae/, text_encoder/, tokenizer/") as caught:
        load_models(folder, motion_adapter=store / "adapter", device="cpu")
    assert f"{folder / 'unet'}: not found" in str(caught.value)


def test_2d_folder_without_adapter_asks_for_one(store: Path) -> None:
    with pytest.raises(ModelLoadError, match="motion_adapter=") as caught:
        load_models(store / "sd15", device="cpu")
    assert str(store / "sd15" / "unet") in str(caught.value)


def test_corrupt_safetensors_names_the_file(store: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "broken.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(ModelLoadError, match=r"not a valid \.safetensors checkpoint") as caught:
        load_models(corrupt, motion_adapter=store / "adapter", config_dir=store / "configs", device="cpu")
    assert str(corrupt) in str(caught.value)
    with pytest.raises(ModelLoadError, match="not a valid") as caught:
        load_models(store / "sd15", motion_adapter=corrupt, device="cpu")
    assert str(corrupt) in str(caught.value)


def test_corrupt_weights_in_a_folder_name_the_folder(store: Path, tmp_path: Path) -> None:
    folder = tmp_path / "sd15"
    for part in ("unet", "vae", "text_encoder", "tokenizer"):
        (folder / part).mkdir(parents=True)
        for file in (store / "sd15" / part).iterdir():
            (folder / part / file.name).write_bytes(file.read_bytes())
    (folder / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelLoadError) as caught:
        load_models(folder, motion_adapter=store / "adapter", device="cpu")
    assert str(folder / "vae") in str(caught.value)


def test_config_weights_mismatch_names_file_and_config(store: Path, parts: Parts, tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    for part in ("vae", "text_encoder", "motion_adapter", "tokenizer"):
        (configs / part).mkdir(parents=True)
        for file in (store / "configs" / part).iterdir():
            (configs / part / file.name).write_bytes(file.read_bytes())
    unet_config = json.loads((store / "configs" / "unet" / "config.json").read_text())
    unet_config["cross_attention_dim"] = 48
    (configs / "unet").mkdir()
    (configs / "unet" / "config.json").write_text(json.dumps(unet_config))
    source = store / "tiny-sd15.safetensors"
    with pytest.raises(ModelLoadError, match="do not fit") as caught:
        load_models(source, motion_adapter=store / "mm_tiny.ckpt", config_dir=configs, device="cpu")
    assert str(source) in str(caught.value)
    assert str(configs) in str(caught.value)


def test_checkpoint_missing_a_part_says_which(store: Path, parts: Parts, tmp_path: Path) -> None:
    unet, _, _, text = parts
    source = tmp_path / "no-vae.safetensors"
    save_file(contiguous(unet_to_ldm(unet.state_dict(), TINY_LAYERS) | clip_to_ldm(text)), source)
    with pytest.raises(ModelLoadError, match=r"no VAE weights \(first_stage_model\.\* keys\)") as caught:
        load_models(source, motion_adapter=store / "mm_tiny.ckpt", config_dir=store / "configs", device="cpu")
    assert str(source) in str(caught.value)


def test_motion_module_given_as_source_is_pointed_at_motion_adapter(store: Path) -> None:
    with pytest.raises(ModelLoadError, match="pass it as motion_adapter="):
        load_models(store / "mm_tiny.safetensors", config_dir=store / "configs", device="cpu")


def test_incompatible_adapter_names_both(store: Path, tmp_path: Path) -> None:
    from diffusers import MotionAdapter

    wide = MotionAdapter(
        block_out_channels=(32, 32, 64, 64),
        motion_layers_per_block=1,
        motion_num_attention_heads=2,
        motion_norm_num_groups=8,
        use_motion_mid_block=False,
    )
    wide.save_pretrained(tmp_path / "wide")
    with pytest.raises(ModelLoadError, match="do not fit") as caught:
        load_models(store / "sd15", motion_adapter=tmp_path / "wide", device="cpu")
    assert str(tmp_path / "wide") in str(caught.value)
    with pytest.raises(ModelLoadError, match="block_out_channels") as caught:
        load_models(store / "motion", motion_adapter=tmp_path / "wide", device="cpu")
    assert str(store / "motion" / "unet") in str(caught.value)


def test_unet_without_anyi2v_layers_is_refused(parts: Parts) -> None:
    from diffusers import UNet2DConditionModel

    config = dict(parts[0].config)
    config["up_block_types"] = ("UpBlock2D", "UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D")
    unet = UNetMotionModel.from_unet2d(UNet2DConditionModel.from_config(config), parts[1], load_weights=False)
    with pytest.raises(ModelLoadError, match=r"up_blocks\.1\.attentions\.0\.transformer_blocks\.0\.attn1") as caught:
        check_unet_layers(unet, "/models/odd")
    assert "/models/odd" in str(caught.value)
    assert "up_blocks.2.attentions.0" not in str(caught.value)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (["down_blocks.0.motion_modules.0.temporal_transformer.proj_in.weight"], "an AnimateDiff motion module"),
        (["model.diffusion_model.x", "conditioner.embedders.0.x"], "an SD XL checkpoint"),
        (["model.diffusion_model.x", "cond_stage_model.model.x"], "an SD 2.x checkpoint"),
        (
            ["model.diffusion_model.x", "cond_stage_model.transformer.x"],
            r"no VAE weights \(first_stage_model\.\* keys\)",
        ),
        (["first_stage_model.x", "cond_stage_model.transformer.x"], "no UNet weights"),
    ],
)
def test_a_checkpoint_is_told_by_its_keys(keys: list[str], message: str) -> None:
    """model_formats: what a single checkpoint is, from its key names alone."""
    checkpoint = dict.fromkeys(keys, torch.zeros(1))
    with pytest.raises(ModelLoadError, match=message) as caught:
        model_formats.check_sd15_checkpoint(checkpoint, Path("/models/odd.safetensors"))
    assert "/models/odd.safetensors" in str(caught.value)
    sd15 = dict.fromkeys(
        ["model.diffusion_model.x", "first_stage_model.x", "cond_stage_model.transformer.x"], torch.zeros(1)
    )
    model_formats.check_sd15_checkpoint(sd15, Path("/models/sd15.safetensors"))


def test_loading_exports_the_split_modules_names() -> None:
    """``loading`` is the entry point: its names are the very objects of the modules that hold the code."""
    from anyi2v.daemon.pipeline import assembly, load_errors

    assert loading.load_models is assembly.load_models
    assert loading.check_unet_layers is assembly.check_unet_layers
    assert loading.resolve_device is assembly.resolve_device
    assert loading.resolve_dtype is assembly.resolve_dtype
    assert loading.REQUIRED_UNET_LAYERS is assembly.REQUIRED_UNET_LAYERS
    assert loading.ModelLoadError is load_errors.ModelLoadError
    assert loading.SD15_CONFIG_DIR is single_file.SD15_CONFIG_DIR
    assert loading.HUB_TOKENIZER is single_file.HUB_TOKENIZER
    assert single_file.SD15_CONFIG_DIR.is_dir()
    assert set(loading.__all__) <= set(dir(loading))


# --- device, dtype, shipped configs ---------------------------------------------------------------------


def test_device_and_dtype_strings() -> None:
    cpu = torch.device("cpu")
    assert resolve_device("cpu") == cpu
    assert resolve_dtype(None, cpu) == torch.float32
    assert resolve_dtype(None, torch.device("cuda")) == torch.float16
    for name, expected in [("fp16", torch.float16), ("float16", torch.float16), ("bf16", torch.bfloat16)]:
        assert resolve_dtype(name, cpu) == expected
    assert resolve_dtype("torch.float32", cpu) == torch.float32
    assert resolve_dtype(torch.bfloat16, cpu) == torch.bfloat16
    with pytest.raises(ModelLoadError, match="dtype 'fp8'"):
        resolve_dtype("fp8", cpu)
    with pytest.raises(ModelLoadError, match="not a torch device"):
        resolve_device("toaster")
    if not torch.cuda.is_available():
        assert resolve_device(None) == cpu
        with pytest.raises(ModelLoadError, match="CUDA is not available"):
            resolve_device("cuda:0")


def test_shipped_sd15_configs() -> None:
    def read(part: str, name: str = "config.json") -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((SD15_CONFIG_DIR / part / name).read_text())
        return loaded

    unet = read("unet")
    assert unet["_class_name"] == "UNet2DConditionModel"
    assert unet["block_out_channels"] == [320, 640, 1280, 1280]
    assert unet["cross_attention_dim"] == 768
    assert unet["layers_per_block"] == 2
    assert read("vae")["scaling_factor"] == 0.18215
    text = read("text_encoder")
    assert (text["hidden_size"], text["num_hidden_layers"], text["vocab_size"]) == (768, 12, 49408)
    adapter = read("motion_adapter")
    assert (adapter["motion_num_attention_heads"], adapter["motion_norm_num_groups"]) == (8, 32)
    scheduler = read("scheduler", "scheduler_config.json")
    assert {key: scheduler[key] for key in ANIMATEDIFF_SCHEDULER} == ANIMATEDIFF_SCHEDULER
    assert json.loads((SD15_CONFIG_DIR / "model_index.json").read_text())["unet"] == [
        "diffusers",
        "UNet2DConditionModel",
    ]
    assert (SD15_CONFIG_DIR / "tokenizer" / "vocab.json").is_file()  # CLIP's, checked in test_shipped_tokenizer
    assert len(REQUIRED_UNET_LAYERS) == 8


# --- LoRA -----------------------------------------------------------------------------------------------

HAS_PEFT = importlib.util.find_spec("peft") is not None


@pytest.mark.skipif(not HAS_PEFT, reason="LoRA loading needs peft, which this environment lacks")
def test_loras_are_fused_at_their_weights(store: Path, parts: Parts, tmp_path: Path) -> None:
    unet, _, _, text = parts
    first = kohya_lora(tmp_path / "style.safetensors", parts, rank=4, alpha=2.0, seed=0)
    second = kohya_lora(tmp_path / "detail.safetensors", parts, rank=2, alpha=2.0, seed=1)
    third = kohya_lora(tmp_path / "unet-only.safetensors", parts, rank=2, alpha=1.0, seed=2, text_encoder=False)
    models = load_models(
        store / "sd15",
        motion_adapter=store / "adapter",
        loras=[
            (tmp_path / "style.safetensors", 0.8),
            (tmp_path / "detail.safetensors", -0.5),
            (tmp_path / "unet-only.safetensors", 1.5),
        ],
        device="cpu",
    )
    for target in UNET_TARGETS:
        expected = unet.get_submodule(target).weight + 0.8 * first[target] - 0.5 * second[target] + 1.5 * third[target]
        torch.testing.assert_close(models.unet.get_submodule(target).weight, expected, rtol=1e-5, atol=1e-5)
    for target in TEXT_TARGETS:
        expected = text.get_submodule(target).weight + 0.8 * first[target] - 0.5 * second[target]
        torch.testing.assert_close(models.text_encoder.get_submodule(target).weight, expected, rtol=1e-5, atol=1e-5)
    for model in (models.unet, models.text_encoder):
        assert not any("lora" in key or "base_layer" in key for key in model.state_dict())  # fused, unloaded
    untouched = load_models(store / "sd15", motion_adapter=store / "adapter", device="cpu")
    changed = {
        key
        for key, value in models.unet.state_dict().items()
        if not torch.equal(value, untouched.unet.state_dict()[key])
    }
    assert changed == {f"{target}.weight" for target in UNET_TARGETS}
    assert models.identity != untouched.identity


def test_loras_without_peft_ask_for_it(store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lora = tmp_path / "style.safetensors"
    save_file({"lora_unet_x.lora_down.weight": torch.zeros(1, 1)}, lora)
    monkeypatch.setattr(model_formats, "peft_available", lambda: False)
    with pytest.raises(ModelLoadError, match="pip install peft") as caught:
        load_models(store / "sd15", motion_adapter=store / "adapter", loras=[(lora, 1.0)], device="cpu")
    assert str(lora) in str(caught.value)


@pytest.mark.skipif(not HAS_PEFT, reason="LoRA loading needs peft, which this environment lacks")
def test_fusing_several_loras_warns_nothing(store: Path, parts: Parts, tmp_path: Path) -> None:
    kohya_lora(tmp_path / "style.safetensors", parts, rank=2, alpha=1.0, seed=0)
    kohya_lora(tmp_path / "detail.safetensors", parts, rank=2, alpha=1.0, seed=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_models(
            store / "sd15",
            motion_adapter=store / "adapter",
            loras=[(tmp_path / "style.safetensors", 1.0), (tmp_path / "detail.safetensors", 1.0)],
            device="cpu",
        )
    assert [str(warning.message) for warning in caught if "peft_config" in str(warning.message)] == []
