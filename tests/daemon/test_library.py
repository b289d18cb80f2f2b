"""The model library: a models folder as artists keep it, recognised by content, listed by `anyi2v models`,
names resolved inside it only."""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from anyi2v.cli import main
from anyi2v.daemon.pipeline import model_headers
from anyi2v.daemon.pipeline.library import (
    Library,
    LibraryEntry,
    MissingLibraryError,
    ModelNameError,
    UnusableModelError,
    default_models_dir,
    scan_library,
)
from anyi2v.daemon.pipeline.load_errors import ModelLoadError
from anyi2v.daemon.pipeline.model_headers import TensorInfo
from anyi2v.daemon.pipeline.model_kinds import recognise_tensors
from tests.daemon.model_files import (
    LIBRARY,
    Parts,
    adapter_to_original,
    safetensors_header,
    sd15_parts,
    tiny_adapter,
    write_configs,
    write_library,
    write_safetensors,
)


@pytest.fixture(scope="module")
def parts() -> Parts:
    return sd15_parts(seed=0)


@pytest.fixture(scope="module")
def library_root(tmp_path_factory: pytest.TempPathFactory, parts: Parts) -> Path:
    return write_library(tmp_path_factory.mktemp("library") / "models", parts)


@pytest.fixture(scope="module")
def library(library_root: Path) -> Library:
    return scan_library(library_root)


def by_name(library: Library) -> dict[str, LibraryEntry]:
    return {entry.name: entry for entry in library.entries}


# --- what the library holds ----------------------------------------------------------------------------


def test_every_file_is_recognised_by_its_content(library: Library) -> None:
    entries = by_name(library)
    assert sorted(entries) == sorted(LIBRARY)
    for name, (kind, family, version, frame_limit, problem) in LIBRARY.items():
        entry = entries[name]
        assert (entry.kind, entry.family, entry.version, entry.frame_limit) == (kind, family, version, frame_limit), (
            name
        )
        if problem is None:
            assert entry.problem is None, (name, entry.problem)
        else:
            assert entry.problem is not None, name
            assert problem in entry.problem, (name, entry.problem)
    assert entries["loras/detail_tweaker"].lora_format == "kohya"
    assert entries["loras/xl_style"].lora_format == "kohya"
    assert entries["animatediff_models/v3_pickled"].storage == "pickle"
    assert entries["checkpoints/tiny_sd15"].storage == "safetensors"


def test_content_decides_not_the_folder(library_root: Path, tmp_path: Path) -> None:
    """The same files, all thrown in one folder with other names, are still told apart."""
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in LIBRARY:
        source = next(library_root.glob(name + ".*"))
        (mixed / (name.replace("/", "__") + source.suffix)).symlink_to(source)
    entries = by_name(scan_library(mixed))
    for name, (kind, family, version, frame_limit, _) in LIBRARY.items():
        entry = entries[name.replace("/", "__")]
        assert (entry.kind, entry.family, entry.version, entry.frame_limit) == (kind, family, version, frame_limit)


def test_entries_are_sorted_by_kind_then_name(library: Library) -> None:
    kinds = ["checkpoint", "motion_module", "motion_lora", "lora", "vae", "unknown"]
    order = [(kinds.index(entry.kind), entry.name.casefold()) for entry in library.entries]
    assert order == sorted(order)


def test_sizes_and_short_names(library: Library, library_root: Path) -> None:
    entries = by_name(library)
    checkpoint = entries["checkpoints/tiny_sd15"]
    assert checkpoint.size_bytes == (library_root / "checkpoints" / "tiny_sd15.safetensors").stat().st_size
    assert checkpoint.short_name == "tiny_sd15"
    assert checkpoint.file == "checkpoints/tiny_sd15.safetensors"
    assert checkpoint.path == library_root / "checkpoints" / "tiny_sd15.safetensors"
    assert entries["animatediff_models/mm_sd_v15_v2"].short_name == "mm_sd_v15_v2"


def test_pickles_needing_arbitrary_objects_are_listed_and_refused(tmp_path: Path) -> None:
    root = tmp_path / "models"
    (root / "checkpoints").mkdir(parents=True)
    state = {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2, 4, 1, 1)}
    torch.save(
        {"state_dict": state, "hyper_parameters": argparse.Namespace(lr=1e-4)}, root / "checkpoints" / "lit.ckpt"
    )
    torch.save(
        adapter_to_original(tiny_adapter("v2")), root / "checkpoints" / "old.pt", _use_new_zipfile_serialization=False
    )
    (root / "checkpoints" / "garbage.bin").write_bytes(b"not a pickle at all")
    entries = by_name(scan_library(root))
    lit = entries["checkpoints/lit"]
    assert lit.problem is not None
    assert "argparse.Namespace" in lit.problem
    assert "weights_only" in lit.problem
    assert ".safetensors" in lit.problem
    old = entries["checkpoints/old"]
    assert (old.kind, old.problem, old.storage) == ("unknown", None, "pickle")
    assert old.note is not None
    assert "weights_only=True" in old.note
    assert entries["checkpoints/garbage"].problem is not None
    # what an old pickle holds is left to the loader: its name resolves for any kind
    assert scan_library(root).resolve("old", "motion_module") == root / "checkpoints" / "old.pt"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "too short"),
        (b"\x05\x00\x00", "too short"),
        (struct.pack("<Q", 10**6) + b"{}", "header of 1000000 bytes"),
        (struct.pack("<Q", 12) + b"{not json!!}", "not JSON"),
        (struct.pack("<Q", 4) + b"[1] ", "not a JSON object"),
        (struct.pack("<Q", 2**63) + b"{}", "header of"),
    ],
)
def test_unreadable_safetensors_are_listed_with_their_problem(tmp_path: Path, content: bytes, problem: str) -> None:
    root = tmp_path / "models"
    (root / "loras").mkdir(parents=True)
    (root / "loras" / "bad.safetensors").write_bytes(content)
    write_safetensors(root / "loras" / "good.safetensors", {"lora_unet_x.lora_down.weight": ("F16", (4, 768))})
    entries = by_name(scan_library(root))
    bad = entries["loras/bad"]
    assert bad.kind == "unknown"
    assert bad.problem is not None
    assert problem in bad.problem, bad.problem
    assert entries["loras/good"].problem is None


def test_a_header_whose_data_runs_past_the_end_is_truncated(tmp_path: Path) -> None:
    root = tmp_path / "models"
    tensors = {"model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": ("F16", (320, 768))}
    (root / "checkpoints").mkdir(parents=True)
    (root / "checkpoints" / "cut.safetensors").write_bytes(safetensors_header(tensors) + b"\0" * 100)
    entry = by_name(scan_library(root))["checkpoints/cut"]
    assert entry.problem is not None
    assert "truncated" in entry.problem
    assert str(320 * 768 * 2) in entry.problem


def test_a_large_file_is_scanned_from_its_header_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 64 GiB checkpoint (a sparse file: a real header, then a hole) is recognised from its header: the
    scan reads nothing past it."""
    root = tmp_path / "models"
    tensors = {
        "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": ("F16", (49408, 768)),
        "first_stage_model.decoder.conv_in.weight": ("F16", (512, 4, 3, 3)),
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": ("F16", (320, 768)),
        "model.diffusion_model.huge": ("F32", (2**16, 2**16, 4)),
    }
    big = write_safetensors(root / "checkpoints" / "big.safetensors", tensors)
    assert big.stat().st_size > 64 * 2**30
    header_bytes = len(safetensors_header(tensors))
    read: list[int] = []
    real_open = open

    class Counting:
        def __init__(self, file: Any) -> None:
            self.file = file

        def __enter__(self) -> Counting:
            return self

        def __exit__(self, *_: object) -> None:
            self.file.close()

        def __getattr__(self, name: str) -> Any:
            return getattr(self.file, name)

        def read(self, size: int = -1) -> bytes:
            assert size >= 0, "a read to the end of the file"
            data: bytes = self.file.read(size)
            read.append(len(data))
            return data

    monkeypatch.setattr(model_headers, "open", lambda *a, **k: Counting(real_open(*a, **k)), raising=False)
    entry = by_name(scan_library(root))["checkpoints/big"]
    assert (entry.kind, entry.family, entry.problem) == ("checkpoint", "sd15", None)
    assert entry.size_bytes == big.stat().st_size
    assert 0 < sum(read) <= header_bytes


# --- motion modules and LoRAs by their keys --------------------------------------------------------------


def _infos(state: dict[str, torch.Tensor]) -> dict[str, TensorInfo]:
    return {key: TensorInfo("F32", tuple(value.shape)) for key, value in state.items()}


def test_animatelcm_has_no_position_encoding_and_the_shipped_frame_limit() -> None:
    state = {key: value for key, value in adapter_to_original(tiny_adapter("v3")).items() if "pos_encoder" not in key}
    found = recognise_tensors(_infos(state))
    assert (found.kind, found.family, found.version, found.frame_limit, found.problem) == (
        "motion_module",
        "sd15",
        "AnimateLCM",
        32,
        None,
    )


def test_the_recogniser_agrees_with_the_loader() -> None:
    """The key prefixes and the frame limit of a motion module without a position encoding are the loader's."""
    from anyi2v.daemon.pipeline import model_formats, model_kinds, single_file

    assert (model_kinds.LDM_UNET, model_kinds.LDM_VAE, model_kinds.LDM_CLIP) == (
        model_formats.LDM_UNET,
        model_formats.LDM_VAE,
        model_formats.LDM_CLIP,
    )
    config = json.loads((single_file.SD15_CONFIG_DIR / "motion_adapter" / "config.json").read_text())
    assert model_kinds.shipped_frame_limit() == config["motion_max_seq_length"]


def test_an_sdxl_motion_module_is_unsupported() -> None:
    state = {
        key: value
        for key, value in adapter_to_original(tiny_adapter("v1")).items()
        if not key.startswith(("down_blocks.3.", "up_blocks.3."))
    }
    found = recognise_tensors(_infos(state))
    assert (found.kind, found.family) == ("motion_module", "sdxl")
    assert found.problem == "SD XL motion module: AnyI2V runs on SD 1.5 only"
    hotshot = recognise_tensors(
        {"down_blocks.0.temporal_attentions.0.pos_encoder.positional_encoding": TensorInfo("F16", (1, 8, 320))}
    )
    assert (hotshot.kind, hotshot.family, hotshot.version) == ("motion_module", "sdxl", "HotshotXL")
    assert hotshot.problem == "SD XL motion module: AnyI2V runs on SD 1.5 only"


@pytest.mark.parametrize(
    ("keys", "kind", "family", "lora_format"),
    [
        (
            {"unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight": (4, 768)},
            "lora",
            "sd15",
            "diffusers",
        ),
        (
            {"unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora.down.weight": (4, 1024)},
            "lora",
            "sd2",
            "diffusers",
        ),
        (
            {"text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight": (4, 1280)},
            "lora",
            "sdxl",
            "diffusers",
        ),
        ({"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": (4, 768)}, "lora", "sd15", "kohya"),
        (
            {"lora_unet_input_blocks_1_1_transformer_blocks_0_attn2_to_k.lora_down.weight": (4, 768)},
            "lora",
            "sd15",
            "kohya",
        ),
        (
            {"down_blocks.0.attentions.0.transformer_blocks.0.attn2.processor.to_k_lora.down.weight": (4, 768)},
            "lora",
            "sd15",
            "diffusers",
        ),
    ],
)
def test_lora_formats_and_families(keys: dict[str, tuple[int, ...]], kind: str, family: str, lora_format: str) -> None:
    found = recognise_tensors({key: TensorInfo("F16", shape) for key, shape in keys.items()})
    assert (found.kind, found.family, found.lora_format) == (kind, family, lora_format)
    assert (found.problem is None) == (family == "sd15")


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ({"string_to_param.*": (1, 768)}, "textual inversion embedding"),
        ({"control_model.input_hint_block.0.weight": (16, 3, 3, 3)}, "ControlNet"),
        ({"some.random.weight": (3, 3)}, "some.random.weight"),
    ],
)
def test_other_files_are_unknown_and_say_what_they_are(keys: dict[str, tuple[int, ...]], problem: str) -> None:
    found = recognise_tensors({key: TensorInfo("F16", shape) for key, shape in keys.items()})
    assert found.kind == "unknown"
    assert found.problem is not None
    assert problem in found.problem


def test_an_inpainting_checkpoint_is_told_apart(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_safetensors(
        root / "checkpoints" / "inpaint.safetensors",
        {
            "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": ("F16", (49408, 768)),
            "first_stage_model.decoder.conv_in.weight": ("F16", (512, 4, 3, 3)),
            "model.diffusion_model.input_blocks.0.0.weight": ("F16", (320, 9, 3, 3)),
        },
    )
    write_safetensors(
        root / "checkpoints" / "unet_only.safetensors",
        {"model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": ("F16", (320, 768))},
    )
    entries = by_name(scan_library(root))
    inpaint = entries["checkpoints/inpaint"]
    assert (inpaint.kind, inpaint.family) == ("checkpoint", "sd15")
    assert inpaint.problem is not None
    assert "inpainting" in inpaint.problem
    unet_only = entries["checkpoints/unet_only"]
    assert unet_only.problem is not None
    assert "no VAE weights" in unet_only.problem


# --- diffusers folders -----------------------------------------------------------------------------------


def test_diffusers_folders_are_one_entry_each(tmp_path: Path) -> None:
    root = tmp_path / "models"
    pipeline = root / "checkpoints" / "dreamshaper"
    for part, config in (
        ("unet", {"_class_name": "UNet2DConditionModel", "cross_attention_dim": 768, "in_channels": 4}),
        ("vae", {"_class_name": "AutoencoderKL", "latent_channels": 4}),
        ("text_encoder", {"architectures": ["CLIPTextModel"], "hidden_size": 768}),
        ("tokenizer", None),
    ):
        (pipeline / part).mkdir(parents=True)
        if config is not None:
            (pipeline / part / "config.json").write_text(json.dumps(config))
            write_safetensors(pipeline / part / "diffusion_pytorch_model.safetensors", {"w": ("F16", (8,))})
    (pipeline / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    xl = root / "checkpoints" / "sdxl"
    (xl / "text_encoder_2").mkdir(parents=True)
    (xl / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    adapter = root / "animatediff_models" / "animatediff-motion-adapter-v1-5-2"
    tiny_adapter("v2").save_pretrained(adapter)
    entries = by_name(scan_library(root))
    assert sorted(entries) == [
        "animatediff_models/animatediff-motion-adapter-v1-5-2",
        "checkpoints/dreamshaper",
        "checkpoints/sdxl",
    ]
    sd15 = entries["checkpoints/dreamshaper"]
    assert (sd15.kind, sd15.family, sd15.storage, sd15.problem) == ("checkpoint", "sd15", "diffusers", None)
    assert sd15.size_bytes == sum(path.stat().st_size for path in pipeline.rglob("*") if path.is_file())
    assert entries["checkpoints/sdxl"].problem == "SD XL checkpoint: AnyI2V runs on SD 1.5 only"
    motion = entries["animatediff_models/animatediff-motion-adapter-v1-5-2"]
    assert (motion.kind, motion.family, motion.version, motion.frame_limit) == ("motion_module", "sd15", "v2", 32)


# --- names ---------------------------------------------------------------------------------------------


def test_names_resolve_to_paths_inside_the_library(library: Library, library_root: Path) -> None:
    checkpoint = library_root / "checkpoints" / "tiny_sd15.safetensors"
    assert library.resolve("checkpoints/tiny_sd15", "checkpoint") == checkpoint
    assert library.resolve("tiny_sd15", "checkpoint") == checkpoint
    assert library.resolve("checkpoints/tiny_sd15.safetensors", "checkpoint") == checkpoint
    assert (
        library.resolve("mm_sd_v15_v2", "motion_module")
        == library_root / "animatediff_models" / "mm_sd_v15_v2.safetensors"
    )
    assert library.find("v3_pickled", "motion_module").frame_limit == 32


def test_an_unknown_name_lists_the_entries_of_its_kind(library: Library) -> None:
    with pytest.raises(ModelNameError) as caught:
        library.resolve("mm_sd_v15_v3", "motion_module")
    message = str(caught.value)
    assert "'mm_sd_v15_v3'" in message
    assert "did you mean" in message
    assert "mm_sd_v15_v2" in message
    for name in ("animatediff_models/mm_sd_v15", "animatediff_models/v3_sd15_mm"):
        assert name in message
    assert "checkpoints/tiny_sd15" not in message
    assert isinstance(caught.value, ModelLoadError)


def test_a_name_of_another_kind_says_what_it_is(library: Library) -> None:
    with pytest.raises(
        ModelNameError, match=r"'detail_tweaker' is a lora \(loras/detail_tweaker.safetensors\), not a checkpoint"
    ):
        library.resolve("detail_tweaker", "checkpoint")


@pytest.mark.parametrize(
    "name", ["../outside", "/etc/passwd", "checkpoints/../../outside", "C:\\models\\x.safetensors", "", "~/x"]
)
def test_paths_are_refused(library: Library, name: str) -> None:
    with pytest.raises(ModelNameError) as caught:
        library.resolve(name, "checkpoint")
    assert "library" in str(caught.value)


def test_an_unusable_entry_is_refused_naming_the_file_and_why(library: Library, library_root: Path) -> None:
    with pytest.raises(UnusableModelError) as caught:
        library.resolve("sdxl_base", "checkpoint")
    assert str(library_root / "checkpoints" / "sdxl_base.safetensors") in str(caught.value)
    assert "SD XL checkpoint: AnyI2V runs on SD 1.5 only" in str(caught.value)
    with pytest.raises(UnusableModelError, match="truncated"):
        library.resolve("checkpoints/broken/half_download", "checkpoint")


def test_same_stem_twice_keeps_the_suffix_and_short_names_stay_unique(tmp_path: Path) -> None:
    root = tmp_path / "models"
    lora = {"lora_unet_x_attn2_to_k.lora_down.weight": ("F16", (4, 768))}
    write_safetensors(root / "loras" / "style.safetensors", lora)
    write_safetensors(root / "loras" / "a" / "detail.safetensors", lora)
    write_safetensors(root / "loras" / "b" / "detail.safetensors", lora)
    torch.save({"lora_unet_x_attn2_to_k.lora_down.weight": torch.zeros(4, 768)}, root / "loras" / "style.ckpt")
    library = scan_library(root)
    entries = by_name(library)
    assert sorted(entries) == ["loras/a/detail", "loras/b/detail", "loras/style.ckpt", "loras/style.safetensors"]
    assert entries["loras/a/detail"].short_name is None
    with pytest.raises(ModelNameError, match="loras/a/detail, loras/b/detail"):
        library.resolve("detail", "lora")
    assert library.resolve("loras/b/detail", "lora") == root / "loras" / "b" / "detail.safetensors"


def test_symlinks_are_followed_and_named_inside_the_library(tmp_path: Path, library_root: Path) -> None:
    root = tmp_path / "models"
    (root / "checkpoints").mkdir(parents=True)
    outside = library_root / "checkpoints" / "tiny_sd15.safetensors"
    (root / "checkpoints" / "linked.safetensors").symlink_to(outside)
    (root / "shared_loras").symlink_to(library_root / "loras", target_is_directory=True)
    (root / "checkpoints" / "loop").symlink_to(root, target_is_directory=True)
    (root / "checkpoints" / "dangling.safetensors").symlink_to(tmp_path / "gone.safetensors")
    library = scan_library(root)
    entries = by_name(library)
    assert entries["checkpoints/linked"].kind == "checkpoint"
    assert entries["checkpoints/linked"].size_bytes == outside.stat().st_size
    assert library.resolve("linked", "checkpoint") == root / "checkpoints" / "linked.safetensors"
    assert entries["shared_loras/detail_tweaker"].kind == "lora"
    assert entries["checkpoints/dangling"].problem is not None
    assert "gone.safetensors" in entries["checkpoints/dangling"].problem
    assert not any(name.startswith("checkpoints/loop/checkpoints/loop") for name in entries)


def test_a_missing_library_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(MissingLibraryError) as caught:
        scan_library(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(caught.value)
    assert "checkpoints/" in str(caught.value)
    assert "animatediff_models/" in str(caught.value)


def test_the_default_models_folder_is_in_the_apps_data_folder() -> None:
    from platformdirs import user_data_path

    from anyi2v.serve import default_data_dir

    assert default_models_dir() == user_data_path("anyi2v", appauthor=False) / "models"
    assert default_models_dir().parent == default_data_dir().parent


# --- anyi2v models -------------------------------------------------------------------------------------


def test_anyi2v_models_prints_the_table(library_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--models-dir", str(library_root)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "FAMILY", "VERSION", "SIZE", "PROBLEM"]
    rows = {line.split()[0]: line for line in lines[1:] if line.strip() and not line.startswith(" ")}
    for name, (kind, family, version, frame_limit, problem) in LIBRARY.items():
        row = rows[name]
        assert kind in row
        assert (family or "") in row
        if version is not None and frame_limit is not None:
            assert f"{version}, {frame_limit} frames" in row
        if problem is not None:
            assert problem in row
    names = [line.split()[0] for line in lines[1 : 1 + len(LIBRARY)]]
    assert names == [entry.name for entry in scan_library(library_root).entries]


def test_anyi2v_models_json(library_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--models-dir", str(library_root), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [item["name"] for item in listed] == [entry.name for entry in scan_library(library_root).entries]
    item = next(item for item in listed if item["name"] == "animatediff_models/mm_sd_v15")
    assert item == {
        "name": "animatediff_models/mm_sd_v15",
        "short_name": "mm_sd_v15",
        "file": "animatediff_models/mm_sd_v15.safetensors",
        "kind": "motion_module",
        "family": "sd15",
        "storage": "safetensors",
        "version": "v1",
        "frame_limit": 24,
        "lora_format": None,
        "size_bytes": (library_root / "animatediff_models" / "mm_sd_v15.safetensors").stat().st_size,
        "problem": None,
        "note": None,
    }


def test_anyi2v_models_on_a_missing_folder_says_how_to_make_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere"
    assert main(["models", "--models-dir", str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert str(missing) in captured.err
    assert "mkdir" in captured.err
    assert "animatediff_motion_lora/" in captured.err
    assert "Traceback" not in captured.err


def test_anyi2v_models_on_an_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--models-dir", str(tmp_path)]) == 0
    assert "no models" in capsys.readouterr().out


def test_anyi2v_models_imports_no_torch(library_root: Path, tmp_path: Path) -> None:
    """Listing safetensors files reads headers with the standard library: torch is never imported."""
    root = tmp_path / "models"
    for name in ("checkpoints/sdxl_base", "loras/xl_style", "animatediff_models/mm_sd_v15_v2"):
        source = library_root / (name + ".safetensors")
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / (name + ".safetensors")).symlink_to(source)
    code = (
        "import sys; from anyi2v.cli import main; code = main(['models', '--models-dir', sys.argv[1]]);"
        " heavy = [m for m in ('torch', 'diffusers', 'transformers', 'safetensors', 'numpy') if m in sys.modules];"
        " print('HEAVY', heavy); sys.exit(code)"
    )
    result = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout
    assert "mm_sd_v15_v2" in result.stdout


# --- what the names load ---------------------------------------------------------------------------------


def test_the_library_files_load(library: Library, parts: Parts, tmp_path: Path) -> None:
    """A checkpoint, a motion module and a LoRA chosen by name are the files the loader takes."""
    from anyi2v.daemon.pipeline.loading import load_models
    from anyi2v.daemon.pipeline.model_formats import peft_available

    configs = write_configs(tmp_path / "configs", parts)
    loras = [(library.resolve("detail_tweaker", "lora"), 0.8)] if peft_available() else []
    models = load_models(
        library.resolve("tiny_sd15", "checkpoint"),
        motion_adapter=library.resolve("mm_sd_v15_v2", "motion_module"),
        loras=loras,
        config_dir=configs,
        device="cpu",
    )
    assert models.max_frames == library.find("mm_sd_v15_v2", "motion_module").frame_limit
    assert models.unet.config["cross_attention_dim"] == 768
