"""Our plain AnimateDiff sampling is diffusers' own: the performance benchmark's peer is a fair one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from anyi2v.daemon.pipeline.generate import generate
from anyi2v.daemon.pipeline.models import random_models
from anyi2v.shared.document import parse_shot
from benchmarks.pipeline_speed import peer_pipeline, run_peer, shot_document


def test_plain_sampling_makes_the_frames_diffusers_animatediff_pipeline_makes(tmp_path: Path) -> None:
    """Same parts, prompt, negative prompt, seed, steps and guidance: the frames agree to rounding, and
    another seed gives other frames (so agreement is not an accident of a blank model)."""
    models = random_models("tiny", seed=0, tokenizer_dir=tmp_path)
    document = shot_document(64, 4, 4)
    ours = np.stack(generate(models, parse_shot(document, source="peer"), None, control=False).frames)
    peer = run_peer(peer_pipeline(models), document, torch.device("cpu")).frames
    assert ours.shape == peer.shape == (4, 64, 64, 3)
    difference = np.abs(ours.astype(np.float64) - np.round(peer * 255.0))
    assert difference.max() <= 1.0
    assert difference.mean() < 0.01
    other = run_peer(
        peer_pipeline(models), {**document, "sampling": {**document["sampling"], "seed": 1}}, torch.device("cpu")
    )
    assert np.abs(ours.astype(np.float64) - np.round(other.frames * 255.0)).mean() > 1.0
