"""The CLIP ViT-L/14 tokenizer shipped in ``configs/sd15/tokenizer/``: a single SD 1.5 checkpoint needs no
``tokenizer=`` / ``--tokenizer``.

The files are read from the installed package (``SD15_CONFIG_DIR``), so these tests also check that the
package data carries them. The ids are CLIP's own (OpenAI's ``clip.tokenize``, and SD 1.5's tokenizer).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from anyi2v.daemon.pipeline.load_errors import CLI_OPTIONS
from anyi2v.daemon.pipeline.loading import SD15_CONFIG_DIR, load_models
from anyi2v.daemon.pipeline.models import random_parts
from anyi2v.daemon.pipeline.single_file import single_file_tokenizer
from tests.conftest import REPO
from tests.daemon.model_files import write_configs, write_motion_module, write_sd15_checkpoint

SHIPPED = SD15_CONFIG_DIR / "tokenizer"
CAT_IDS = [49406, 320, 1125, 539, 320, 2368, 49407]  # "a photo of a cat"
START, END = 49406, 49407


def shipped_tokenizer() -> Any:
    return CLIPTokenizer.from_pretrained(str(SHIPPED), local_files_only=True)


def test_the_shipped_tokenizer_is_clips() -> None:
    tokenizer = shipped_tokenizer()
    assert len(tokenizer) == 49408
    assert tokenizer("a photo of a cat").input_ids == CAT_IDS
    assert tokenizer("A Photo of a CAT").input_ids == CAT_IDS  # CLIP lower-cases
    assert tokenizer.model_max_length == 77
    assert (tokenizer.bos_token, tokenizer.bos_token_id) == ("<|startoftext|>", START)
    assert (tokenizer.eos_token, tokenizer.eos_token_id) == ("<|endoftext|>", END)
    assert (tokenizer.pad_token, tokenizer.pad_token_id) == ("<|endoftext|>", END)  # as SD 1.5's tokenizer pads


def test_the_shipped_tokenizer_pads_and_truncates_as_the_sd15_pipeline_asks() -> None:
    tokenizer = shipped_tokenizer()
    padded = tokenizer("a photo of a cat", padding="max_length", max_length=77, truncation=True).input_ids
    assert padded == CAT_IDS + [END] * (77 - len(CAT_IDS))
    long = tokenizer("cat " * 200, padding="max_length", max_length=77, truncation=True).input_ids
    assert len(long) == 77
    assert (long[0], long[1], long[-2], long[-1]) == (START, 2368, 2368, END)


def test_the_shipped_vocabulary_is_derived_from_the_shipped_merges() -> None:
    """vocab.json is what ``tools/clip_tokenizer_files.py`` derives from merges.txt (CLIP's own rule)."""
    tool = load_tool()
    merges = (SHIPPED / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert merges[0] == "#version: 0.2"
    assert len(merges) - 1 == tool.N_MERGES == 49152 - 256 - 2
    shipped = json.loads((SHIPPED / "vocab.json").read_text(encoding="utf-8"))
    assert shipped == tool.clip_vocabulary(merges[1:])
    assert list(shipped.values()) == list(range(49408))
    assert (shipped["!"], shipped["a</w>"], shipped["<|endoftext|>"]) == (0, 320, END)


def test_the_tool_reads_the_open_clip_merges_file(tmp_path: Path) -> None:
    """The regeneration tool takes CLIP's gzip BPE file (header line, then merges, then unused lines)."""
    tool = load_tool()
    merges = (SHIPPED / "merges.txt").read_text(encoding="utf-8").splitlines()[1:]
    source = tmp_path / "bpe_simple_vocab_16e6.txt.gz"
    source.write_bytes(gzip.compress(("header\n" + "\n".join([*merges, "un used", "lines</w> too"])).encode()))
    tool.write_tokenizer_files(tool.read_merges(source), tmp_path / "out")
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
        assert (tmp_path / "out" / name).read_bytes() == (SHIPPED / name).read_bytes(), name


def test_the_licence_and_the_source_are_stated() -> None:
    folder = REPO / "daemon" / "pipeline" / "configs" / "sd15" / "tokenizer"
    licence = (folder / "LICENSE").read_text(encoding="utf-8")
    assert "Copyright (c) 2021 OpenAI" in licence
    assert "MIT License" in licence
    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert "bpe_simple_vocab_16e6.txt.gz" in readme
    assert "tools/clip_tokenizer_files.py" in readme


# --- a single file finds it --------------------------------------------------------------------------------


def test_a_single_file_uses_the_shipped_tokenizer_by_default(tmp_path: Path) -> None:
    tokenizer, folder = single_file_tokenizer(tmp_path / "dreamshaper_8.safetensors", None, SD15_CONFIG_DIR, True)
    assert folder == SHIPPED
    assert tokenizer("a photo of a cat").input_ids == CAT_IDS


def test_a_single_file_loads_with_no_tokenizer_given(tmp_path: Path) -> None:
    """A tiny checkpoint whose text encoder embeds CLIP's 49408 tokens, against configs whose tokenizer/ is
    the shipped one (the tiny configs stand in for the shipped SD 1.5 ones, which only fit full-size weights)."""
    unet, adapter, vae, _ = random_parts("tiny", seed=0)
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            max_position_embeddings=77,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            bos_token_id=START,
            eos_token_id=END,
            pad_token_id=END,
        )
    )
    parts = (unet, adapter, vae, text)
    checkpoint = write_sd15_checkpoint(tmp_path / "tiny-sd15.safetensors", parts)
    module = write_motion_module(tmp_path / "mm_tiny.safetensors", adapter)
    configs = write_configs(tmp_path / "configs", parts)
    shutil.rmtree(configs / "tokenizer")
    shutil.copytree(SHIPPED, configs / "tokenizer")
    models = load_models(checkpoint, motion_adapter=module, config_dir=configs, device="cpu", options=CLI_OPTIONS)
    assert models.tokenizer("a photo of a cat").input_ids == CAT_IDS


# --- helpers ---------------------------------------------------------------------------------------------


def load_tool() -> ModuleType:
    """``tools/clip_tokenizer_files.py``, which is a script, not part of the package."""
    path = REPO / "tools" / "clip_tokenizer_files.py"
    spec = importlib.util.spec_from_file_location("clip_tokenizer_files", path)
    if spec is None or spec.loader is None:
        pytest.fail(f"{path}: not found")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
