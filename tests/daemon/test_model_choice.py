"""Models chosen by library name or by path, resolved to the files loading reads, every refusal typed."""

from __future__ import annotations

from pathlib import Path

import pytest

from anyi2v.daemon import TINY_RANDOM, TOY_WORLD
from anyi2v.daemon.pipeline.load_errors import ModelLoadError
from anyi2v.daemon.pipeline.model_choice import Chosen, ModelChoiceError, ModelSources, resolve_sources
from tests.daemon.model_files import Parts, sd15_parts, write_library, write_sdxl_lora


@pytest.fixture(scope="module")
def parts() -> Parts:
    return sd15_parts(seed=0)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, parts: Parts) -> Path:
    return write_library(tmp_path_factory.mktemp("choice") / "models", parts)


def flag(value: str, label: str, weight: float = 1.0) -> Chosen:
    return Chosen(value, label, paths_allowed=True, weight=weight)


def test_library_names_resolve_to_the_files(root: Path) -> None:
    resolved = resolve_sources(
        ModelSources(
            checkpoint=flag("tiny_sd15", "--model"),
            motion_module=flag("animatediff_models/mm_sd_v15_v2", "--motion-module"),
            loras=(flag("detail_tweaker", "--lora", 0.8),),
            motion_loras=(flag("v2_lora_ZoomIn", "--motion-lora", -0.5),),
            vae=flag("tiny_vae", "--vae"),
            models_dir=root,
        )
    )
    assert resolved.checkpoint == root / "checkpoints" / "tiny_sd15.safetensors"
    assert resolved.motion_module == root / "animatediff_models" / "mm_sd_v15_v2.safetensors"
    assert resolved.loras == ((root / "loras" / "detail_tweaker.safetensors", 0.8),)
    assert resolved.motion_loras == ((root / "animatediff_motion_lora" / "v2_lora_ZoomIn.safetensors", -0.5),)
    assert resolved.vae == root / "vae" / "tiny_vae.safetensors"


def test_paths_are_used_as_they_are_where_allowed(root: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "my_lora.safetensors"
    elsewhere.write_bytes((root / "loras" / "detail_tweaker.safetensors").read_bytes())
    resolved = resolve_sources(ModelSources(loras=(flag(str(elsewhere), "--lora"),), models_dir=root))
    assert resolved.loras == ((elsewhere, 1.0),)
    assert resolve_sources(ModelSources(models_dir=tmp_path / "no-library")).checkpoint is None  # the default
    for builtin in (TOY_WORLD, TINY_RANDOM):
        assert resolve_sources(ModelSources(checkpoint=flag(builtin, "--model"))).checkpoint == builtin


def test_an_unknown_name_is_refused_naming_the_flag_and_the_value(root: Path) -> None:
    with pytest.raises(ModelChoiceError) as caught:
        resolve_sources(ModelSources(loras=(flag("detail_tweakr", "--lora", 0.8),), models_dir=root))
    error = caught.value
    assert str(error).startswith("--lora 'detail_tweakr': ")
    assert "did you mean 'loras/detail_tweaker'" in str(error)
    assert (error.label, error.value, error.library_root) == ("--lora", "detail_tweakr", root)
    assert isinstance(error, ModelLoadError)


@pytest.mark.parametrize(
    ("value", "kind", "words"),
    [
        ("half_download", "checkpoint", "truncated"),
        ("xl_style", "lora", "SD XL LoRA"),
        ("sdxl_base", "checkpoint", "SD XL checkpoint"),
    ],
)
def test_an_unusable_entry_names_its_file(root: Path, value: str, kind: str, words: str) -> None:
    sources = (
        ModelSources(checkpoint=flag(value, "--model"), models_dir=root)
        if kind == "checkpoint"
        else ModelSources(loras=(flag(value, "--lora"),), models_dir=root)
    )
    with pytest.raises(ModelChoiceError, match=words) as caught:
        resolve_sources(sources)
    assert str(root) in str(caught.value)  # the file's own path


def test_a_path_is_recognised_as_a_library_entry_would_be(root: Path, tmp_path: Path) -> None:
    xl = write_sdxl_lora(tmp_path / "xl.safetensors")
    with pytest.raises(ModelChoiceError, match="SD XL LoRA") as caught:
        resolve_sources(ModelSources(loras=(flag(str(xl), "--lora"),), models_dir=root))
    assert str(xl) in str(caught.value)
    lora = root / "loras" / "detail_tweaker.safetensors"
    with pytest.raises(ModelChoiceError, match="a lora, not a checkpoint") as caught:
        resolve_sources(ModelSources(checkpoint=flag(str(lora), "--model"), models_dir=root))
    assert str(caught.value).startswith(f"--model {str(lora)!r}: ")


def test_names_from_a_shot_are_never_paths(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(root)  # "checkpoints/tiny_sd15.safetensors" is a file from here, but no library entry
    from_shot = Chosen("checkpoints/tiny_sd15.safetensors", "shot.json: model.checkpoint", paths_allowed=False)
    with pytest.raises(ModelChoiceError, match="no checkpoint named") as caught:
        resolve_sources(ModelSources(checkpoint=from_shot, models_dir=root / "animatediff_models"))
    assert str(caught.value).startswith("shot.json: model.checkpoint 'checkpoints/tiny_sd15.safetensors': ")
    as_flag = flag("checkpoints/tiny_sd15.safetensors", "--model")
    resolved = resolve_sources(ModelSources(checkpoint=as_flag, models_dir=root / "animatediff_models"))
    assert resolved.checkpoint == root / "checkpoints" / "tiny_sd15.safetensors"  # the user's own file
    with pytest.raises(ModelChoiceError, match="library name"):
        resolve_sources(ModelSources(checkpoint=Chosen("/etc/passwd", "model.checkpoint", paths_allowed=False)))


def test_a_missing_library_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ModelChoiceError) as caught:
        resolve_sources(ModelSources(checkpoint=flag("tiny_sd15", "--model"), models_dir=tmp_path / "none"))
    message = str(caught.value)
    assert message.startswith("--model 'tiny_sd15': ")
    assert str(tmp_path / "none") in message
    assert "no such folder" in message
    assert "nor is it a file here" in message


def test_random_weights_take_no_other_models(root: Path) -> None:
    with pytest.raises(ModelChoiceError, match="random weights") as caught:
        resolve_sources(
            ModelSources(
                checkpoint=flag(TINY_RANDOM, "--model"), loras=(flag("detail_tweaker", "--lora"),), models_dir=root
            )
        )
    assert str(caught.value).startswith("--lora 'detail_tweaker': ")
