"""On a CUDA GPU (skipped elsewhere): the pipelined decode (each frame copied to the host while the next
one decodes) gives exactly the frames a synchronous decode of each frame gives, in order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from einops import rearrange

from anyi2v.daemon.pipeline.generate import _decode
from anyi2v.daemon.pipeline.models import random_models

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_the_pipelined_decode_gives_the_synchronous_frames_in_order() -> None:
    models = random_models("tiny", seed=0).to(torch.device("cuda"), torch.float16)
    latents = torch.randn(1, 4, 8, 16, 16, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    out: list[np.ndarray] = []
    seen: list[tuple[int, np.ndarray]] = []
    _decode(models, latents, lambda *_: None, out, lambda index, frame: seen.append((index, frame.copy())))
    scaling = models.vae.config.scaling_factor
    assert [index for index, _ in seen] == list(range(8))
    for frame in range(8):
        with torch.no_grad():
            image = models.vae.decode((latents[:, :, frame] / scaling).half()).sample
        pixels = ((image[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        expected = rearrange(pixels, "c h w -> h w c").cpu().numpy()
        assert np.array_equal(out[frame], expected), frame
        assert np.array_equal(seen[frame][1], expected), frame
