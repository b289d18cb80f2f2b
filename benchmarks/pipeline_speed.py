"""AnyI2V pipeline speed and memory at SD 1.5 + AnimateDiff size (random weights), on a CUDA GPU.

    python benchmarks/pipeline_speed.py [--size 512] [--frames 16] [--steps 25] [--repeats 3]
    python benchmarks/pipeline_speed.py --device cpu --model tiny --size 64 --frames 4 --steps 4 --repeats 1

In one process, on the same seeded random models (fp16 on a GPU): diffusers' own
``AnimateDiffPipeline`` built from the same parts (the peer: same scheduler, steps, guidance, frames
and size, decoded to frames), our plain AnimateDiff sampling (no control), the full AnyI2V run with an
empty inversion cache, and the AnyI2V run with the inversion cached. For each: the pipeline's own
stage timings (inversion, optimization, injection steps, sampling, decode), the total, and the peak GPU
memory. Prints the ratios the targets are stated in (issue 21: against the peer). After one warm-up
round, the kinds run in turn ``--repeats`` times and each figure's median is reported. The second
command is a smoke run on the CPU (a tiny model; its times mean nothing).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import AnimateDiffPipeline, DDIMScheduler

from anyi2v.daemon.pipeline.generate import generate
from anyi2v.daemon.pipeline.inversion import InversionCache
from anyi2v.daemon.pipeline.models import Models, random_models
from anyi2v.shared.document import parse_shot


def shot_document(size: int, frames: int, steps: int) -> dict[str, Any]:
    """The benchmark shot as document data: two tracks, a depth condition."""
    return {
        "schema_version": 3,
        "prompt": "a red ball rolling across a wooden table",
        "negative_prompt": "blurry",
        "output": {"width": size, "height": size, "n_frames": frames, "fps": 8},
        "sampling": {"seed": 0, "steps": steps, "guidance_scale": 8.0},
        "conditions": [{"source": {"kind": "image", "path": "condition.png"}, "modality": "depth"}],
        "tracks": [
            {
                "id": "ball",
                "keyframes": [
                    {"frame": 0, "box": [0.1, 0.35, 0.35, 0.6]},
                    {"frame": frames - 1, "box": [0.6, 0.35, 0.85, 0.6]},
                ],
            },
            {
                "id": "cup",
                "keyframes": [
                    {"frame": 0, "box": [0.55, 0.1, 0.75, 0.3]},
                    {"frame": frames - 1, "box": [0.5, 0.15, 0.75, 0.4]},
                ],
            },
        ],
    }


def make_shot(size: int, frames: int, steps: int) -> object:
    return parse_shot(shot_document(size, frames, steps), source="benchmark")


def condition_image(size: int) -> np.ndarray:
    ys, xs = np.mgrid[0:size, 0:size] / size
    depth = np.clip(1.0 - np.hypot(xs - 0.3, ys - 0.45) * 3, 0, 1) * 0.7 + 0.3 * ys
    return np.repeat((depth * 255).astype(np.uint8)[..., None], 3, axis=2)


@dataclass
class PeerResult:
    frames: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)


def peer_pipeline(models: Models) -> AnimateDiffPipeline:
    """diffusers' AnimateDiffPipeline on the same UNet (with its motion modules), VAE, text encoder and
    tokenizer, and a scheduler of the same configuration."""
    scheduler = DDIMScheduler.from_config(models.scheduler.config)
    pipe = AnimateDiffPipeline(
        vae=models.vae, text_encoder=models.text_encoder, tokenizer=models.tokenizer, unet=models.unet,
        motion_adapter=None, scheduler=scheduler,
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run_peer(pipe: AnimateDiffPipeline, document: dict[str, Any], device: torch.device) -> PeerResult:
    """The shot's prompt, size, frames, steps, guidance and seed through the peer, decoded to frames."""
    output, sampling = document["output"], document["sampling"]
    start = time.perf_counter()
    result = pipe(
        prompt=document["prompt"], negative_prompt=document.get("negative_prompt"),
        num_frames=output["n_frames"], height=output["height"], width=output["width"],
        num_inference_steps=sampling["steps"], guidance_scale=sampling["guidance_scale"],
        generator=torch.Generator(device).manual_seed(sampling["seed"]), output_type="np",
    )  # fmt: skip
    frames = np.asarray(result.frames[0])
    return PeerResult(frames, {"total": time.perf_counter() - start})


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(work, device: torch.device, settle=None) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """``work``'s timings, wall time and peak memory; ``settle`` runs first, outside the measurement."""
    if settle is not None:
        settle()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _synchronize(device)
    start = time.perf_counter()
    result = work()
    _synchronize(device)
    figures = dict(result.timings)
    figures["wall"] = time.perf_counter() - start
    # the pipeline resets the peak after each stage and keeps each stage's (Result.peaks)
    peaks = dict(getattr(result, "peaks", {}))
    figures.update({f"peak {stage}": round(peak, 3) for stage, peak in peaks.items()})
    whole = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
    figures["peak_gib"] = max([whole, *peaks.values()])
    return figures


def median_figures(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per figure, the median over the runs (a figure missing from a run counts as 0)."""
    names = dict.fromkeys(name for figures in runs for name in figures)
    return {name: round(statistics.median(f.get(name, 0.0) for f in runs), 3) for name in names}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=3, help="measured runs of each kind, after one warm-up")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--model", choices=["sd15", "tiny"], default="sd15", help="random weights of this size")
    arguments = parser.parse_args()
    device = torch.device(arguments.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name}, torch {torch.__version__}", flush=True)
    started = time.perf_counter()
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    models = random_models(arguments.model, seed=0, tokenizer_dir=Path(tempfile.mkdtemp())).to(device, dtype)
    print(f"models built and moved in {time.perf_counter() - started:.1f} s", flush=True)
    document = shot_document(arguments.size, arguments.frames, arguments.steps)
    shot = parse_shot(document, source="benchmark")
    image = condition_image(arguments.size)
    filled = InversionCache()
    peer = peer_pipeline(models)
    kinds = {
        "diffusers AnimateDiffPipeline": lambda: run_peer(peer, document, device),
        "plain AnimateDiff": lambda: generate(models, shot, None, control=False),
        "AnyI2V, inversion run": lambda: generate(models, shot, image, cache=InversionCache()),
        "AnyI2V, inversion cached": lambda: generate(models, shot, image, cache=filled),
        "AnyI2V low memory, inversion run": lambda: generate(models, shot, image, low_memory=True),
    }
    # the text encoder and VAE go to CPU memory (or back beside the UNet) before a run is measured
    settles = {label: (lambda low=("low memory" in label): models.settle(low)) for label in kinds}
    generate(models, shot, image, cache=filled)  # fill the cache
    runs: dict[str, list[dict[str, float]]] = {label: [] for label in kinds}
    for repeat in range(arguments.repeats + 1):
        for label, work in kinds.items():  # interleaved, so a slow spell of the machine hits every kind
            figures = run(work, device, settles[label])
            print(f"{'warm-up ' if repeat == 0 else ''}{label}: {json.dumps(median_figures([figures]))}", flush=True)
            if repeat > 0:
                runs[label].append(figures)
    results = {label: median_figures(measured) for label, measured in runs.items()}
    for label, figures in results.items():
        print(f"median of {arguments.repeats}, {label}: {json.dumps(figures)}", flush=True)
    plain = results["plain AnimateDiff"]["total"]
    inverted, cached = results["AnyI2V, inversion run"], results["AnyI2V, inversion cached"]
    reference = results["diffusers AnimateDiffPipeline"]["total"]
    print(
        f"ratios to diffusers' AnimateDiffPipeline: plain {plain / reference:.2f}x (target <= 1),"
        f" AnyI2V cached {cached['total'] / reference:.2f}x (target <= 1.3),"
        f" with inversion {inverted['total'] / reference:.2f}x (target <= 1.5)"
    )
    print(
        f"ratios to plain sampling: with inversion {inverted['total'] / plain:.2f}x (target < 3),"
        f" cached {cached['total'] / plain:.2f}x (target < 2);"
        f" inversion {inverted['inversion']:.2f} s (target < 4);"
        f" peak {max(r['peak_gib'] for r in results.values()):.1f} GiB (target < 40 GB)"
    )
    low = results["AnyI2V low memory, inversion run"]
    print(
        f"low memory: peak {low['peak_gib']:.2f} GiB (target <= 8 GB) against {inverted['peak_gib']:.2f} GiB,"
        f" time {low['total'] / inverted['total']:.2f}x the default's with inversion"
    )


if __name__ == "__main__":
    main()
