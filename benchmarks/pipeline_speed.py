"""AnyI2V pipeline speed and memory at SD 1.5 + AnimateDiff size (random weights), on a CUDA GPU.

    python benchmarks/pipeline_speed.py [--size 512] [--frames 16] [--steps 25] [--repeats 3]

In one process, on the same seeded random models (fp16): plain AnimateDiff sampling (no control), the
full AnyI2V run with an empty inversion cache, and the AnyI2V run with the inversion cached. For each:
the pipeline's own stage timings (inversion, optimization, injection steps, sampling, decode), the
total, and the peak GPU memory. Prints the ratios the issue-4 targets are stated in. After one
warm-up round, the kinds run in turn ``--repeats`` times and each figure's median is reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anyi2v.daemon.pipeline.generate import generate
from anyi2v.daemon.pipeline.inversion import InversionCache
from anyi2v.daemon.pipeline.models import random_models
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


def run(work, device: torch.device) -> dict[str, float]:  # type: ignore[no-untyped-def]
    torch.cuda.reset_peak_memory_stats(device)
    torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = work()
    torch.cuda.synchronize(device)
    figures = dict(result.timings)
    figures["wall"] = time.perf_counter() - start
    figures["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
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
    arguments = parser.parse_args()
    device = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name(device)}, torch {torch.__version__}", flush=True)
    started = time.perf_counter()
    models = random_models("sd15", seed=0, tokenizer_dir=Path(tempfile.mkdtemp())).to(device, torch.float16)
    print(f"models built and moved in {time.perf_counter() - started:.1f} s", flush=True)
    shot = make_shot(arguments.size, arguments.frames, arguments.steps)
    image = condition_image(arguments.size)
    filled = InversionCache()
    kinds = {
        "plain AnimateDiff": lambda: generate(models, shot, None, control=False),
        "AnyI2V, inversion run": lambda: generate(models, shot, image, cache=InversionCache()),
        "AnyI2V, inversion cached": lambda: generate(models, shot, image, cache=filled),
    }
    generate(models, shot, image, cache=filled)  # fill the cache
    runs: dict[str, list[dict[str, float]]] = {label: [] for label in kinds}
    for repeat in range(arguments.repeats + 1):
        for label, work in kinds.items():  # interleaved, so a slow spell of the machine hits every kind
            figures = run(work, device)
            print(f"{'warm-up ' if repeat == 0 else ''}{label}: {json.dumps(median_figures([figures]))}", flush=True)
            if repeat > 0:
                runs[label].append(figures)
    results = {label: median_figures(measured) for label, measured in runs.items()}
    for label, figures in results.items():
        print(f"median of {arguments.repeats}, {label}: {json.dumps(figures)}", flush=True)
    plain = results["plain AnimateDiff"]["total"]
    inverted, cached = results["AnyI2V, inversion run"], results["AnyI2V, inversion cached"]
    print(
        f"ratios to plain sampling: with inversion {inverted['total'] / plain:.2f}x (target < 3),"
        f" cached {cached['total'] / plain:.2f}x (target < 2);"
        f" inversion {inverted['inversion']:.2f} s (target < 4);"
        f" peak {max(r['peak_gib'] for r in results.values()):.1f} GiB (target < 40 GB)"
    )


if __name__ == "__main__":
    main()
