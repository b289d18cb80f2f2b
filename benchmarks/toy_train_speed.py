"""Toy-world training throughput: how long a diffusion step takes at each batch size, eager and
compiled, and how long the data for it takes to render and encode.

    python3 benchmarks/toy_train_speed.py [--batches 8 32 64] [--compile] [--steps 20]

Steps run on random latents (the data path is timed on its own), with freshly initialized parts;
each figure is the median step time after warm-up steps (a compiled UNet compiles in its warm-up).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from diffusers import UNetMotionModel
from transformers import CLIPTokenizer

from anyi2v.daemon.toyworld import train
from anyi2v.daemon.toyworld.dataset import render_clips
from anyi2v.daemon.toyworld.model import FRAMES, LATENT_CHANNELS, SIZE, new_parts
from anyi2v.daemon.toyworld.scenes import sample_scene


def timed(work: Callable[[], object], device: torch.device, repeats: int, warmup: int = 3) -> float:
    """Median seconds of ``work`` after ``warmup`` calls."""
    times = []
    for index in range(warmup + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        work()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if index >= warmup:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 32, 64])
    parser.add_argument("--compile", action="store_true", help="also time a torch.compile'd UNet")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    arguments = parser.parse_args()
    device = torch.device(arguments.device)
    if device.type == "cuda":
        torch.backends.cuda.enable_cudnn_sdp(False)
    folder = Path(tempfile.mkdtemp())
    unet2d, adapter, vae, text = new_parts(folder / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer", model_max_length=77, local_files_only=True)
    vae.to(device).eval().requires_grad_(False)
    latent = SIZE // 4
    print(f"device {device}; {FRAMES} frames of {latent}x{latent} latents; video steps take B clips, image steps 4B")
    print("| batch B | compiled | video step (s) | image step (s) | clip-frames / s | peak GiB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for compiled in (False, True) if arguments.compile else (False,):
        unet = UNetMotionModel.from_unet2d(unet2d, adapter).to(device).train()
        text.to(device).train()
        step = train.DiffusionStep(unet, text, tokenizer, 1e-4, device, compile_unet=compiled)
        generator = torch.Generator(device).manual_seed(0)
        for batch in arguments.batches:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            videos = torch.randn((batch, LATENT_CHANNELS, FRAMES, latent, latent), device=device)
            images = torch.randn((4 * batch, LATENT_CHANNELS, 1, latent, latent), device=device)
            captions = [sample_scene(i, frames=1).caption() for i in range(4 * batch)]
            video = timed(lambda: step(videos, captions[:batch], True, generator, 1e-4), device, arguments.steps)  # noqa: B023
            image = timed(lambda: step(images, captions, False, generator, 1e-4), device, arguments.steps)  # noqa: B023
            peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
            rate = batch * FRAMES / video
            print(f"| {batch} | {compiled} | {video:.3f} | {image:.3f} | {rate:.0f} | {peak:.1f} |", flush=True)
    for clips in arguments.batches:
        scenes = [sample_scene(i) for i in range(clips)]
        render = timed(lambda: render_clips(scenes, SIZE, device), device, 3, warmup=1)  # noqa: B023
        pixels = render_clips(scenes, SIZE, device).pixels
        encode = timed(lambda: train.encode_clips(vae, pixels), device, 3, warmup=1)  # noqa: B023
        print(f"render {clips} clips: {render:.3f} s, encode: {encode:.3f} s", flush=True)


if __name__ == "__main__":
    main()
