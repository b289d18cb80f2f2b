"""Loading models prints nothing but what a user can act on (issue 19, item 19).

diffusers, transformers and huggingface_hub talk while weights load: "There are modules in UNetMotionModel
that should be kept in float32: []" on every ``.to(dtype)``, a "Loading weights" tqdm bar per transformers
model, peft's "Already found a `peft_config`" per extra LoRA. None of it says anything to a user, and it
draws over the CLI's own progress. Our own warnings (weights a checkpoint holds that nothing uses) stay.

The loads run in a fresh interpreter, as the CLI and the worker do, so that what reaches the real stderr
is what is checked (the libraries' handlers hold the stderr of the moment they were made).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from anyi2v.daemon.toyworld import WEIGHTS

NOISE = (
    "should be kept in float32",
    "Loading weights",
    "%|",
    "it/s]",
    "peft_config",
    "were not used when initializing",  # diffusers' own, said again by ours below
)

_LOAD = """
import json, sys
import diffusers.utils.logging as d, transformers.utils.logging as t, huggingface_hub.utils as h
from anyi2v.daemon.pipeline.loading import load_named_models

def settings():
    return [d.get_verbosity(), d.is_progress_bar_enabled(), t.get_verbosity(), t.is_progress_bar_enabled(),
            h.are_progress_bars_disabled()]

before = settings()
for name in json.loads(sys.argv[1]):
    load_named_models(name, device="cpu")
print(json.dumps({"before": before, "after": settings()}))
"""


def load_in_a_fresh_process(names: list[str]) -> tuple[str, dict[str, list[object]]]:
    """What loading ``names`` printed on stderr, and the libraries' logging settings before and after."""
    done = subprocess.run(
        [sys.executable, "-c", _LOAD, json.dumps(names)],
        capture_output=True,
        text=True,
        timeout=600,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    return done.stderr, json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def toy_world_with_an_extra_weight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped toy-world folder, its VAE file holding one weight the VAE does not have."""
    folder = tmp_path_factory.mktemp("toy") / "weights"
    shutil.copytree(WEIGHTS, folder)
    vae = folder / "vae" / "diffusion_pytorch_model.safetensors"
    save_file(load_file(vae) | {"decoder.left_over.weight": torch.zeros(3)}, vae)
    return folder


def test_loading_prints_no_library_noise_and_keeps_our_warning(toy_world_with_an_extra_weight: Path) -> None:
    stderr, settings = load_in_a_fresh_process(["toy-world", "tiny-random", str(toy_world_with_an_extra_weight)])
    noisy = [line for line in stderr.splitlines() if any(noise in line for noise in NOISE)]
    assert noisy == [], stderr
    assert "1 weights unused by AutoencoderKL (decoder.left_over.weight)" in stderr  # ours, kept
    assert settings["after"] == settings["before"]  # the libraries' own settings are given back
