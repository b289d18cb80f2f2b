"""Turn a training run into the shipped model: fp16 safetensors in the diffusers layout, in shards of
at most 15 MB and at most 40 MB in all, plus the run's training log and a loss-curve image.

    python -m anyi2v.daemon.toyworld.export RUN [--out daemon/toyworld/weights] [--docs docs/toyworld]

``RUN`` is a folder ``train`` wrote (``vae/``, ``unet/``, ``text_encoder/``, ``tokenizer/``,
``train_state.json``, ``log.jsonl``). The weights folder is rewritten from scratch; the pipeline loads
it with ``load_models`` like any AnimateDiff folder whose ``unet/`` is a ``UNetMotionModel``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, UNetMotionModel
from transformers import CLIPTextModel

from . import WEIGHTS

SHARD_LIMIT = 15_000_000  # bytes per file
TOTAL_LIMIT = 40_000_000  # bytes in all
PARTS: dict[str, Any] = {"unet": UNetMotionModel, "vae": AutoencoderKL, "text_encoder": CLIPTextModel}


class ExportError(Exception):
    pass


def export_weights(run: Path, out: Path) -> int:
    """Write ``run``'s model into ``out`` in fp16; returns the total size in bytes. Raises
    :class:`ExportError` naming the part that is missing or the file that is too large."""
    for part in (*PARTS, "tokenizer"):
        if not (run / part).is_dir():
            raise ExportError(f"{run}: no {part}/ (is this a finished training run?)")
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for part, kind in PARTS.items():
        model = kind.from_pretrained(run / part, torch_dtype=torch.float16, local_files_only=True)
        model.save_pretrained(staging / part, max_shard_size="15MB", safe_serialization=True)
    shutil.copytree(run / "tokenizer", staging / "tokenizer")
    state = json.loads((run / "train_state.json").read_text()) if (run / "train_state.json").is_file() else {}
    (staging / "train_state.json").write_text(json.dumps(state, indent=1) + "\n")
    files = [path for path in staging.rglob("*") if path.is_file()]
    large = [path for path in files if path.stat().st_size > SHARD_LIMIT]
    if large:
        raise ExportError(f"{large[0]}: {large[0].stat().st_size} bytes, over the {SHARD_LIMIT}-byte shard limit")
    total = sum(path.stat().st_size for path in files)
    if total > TOTAL_LIMIT:
        raise ExportError(f"{run}: the model takes {total} bytes in fp16, over the {TOTAL_LIMIT}-byte limit")
    shutil.rmtree(out, ignore_errors=True)
    staging.replace(out)
    return total


def loss_curve(log: Path, image: Path, window: int = 20) -> None:
    """Plot each stage's logged loss against its step (a moving average over ``window`` records, the raw
    values faint behind it) into ``image``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    stages = sorted({record["stage"] for record in records})
    figure, axes = plt.subplots(1, len(stages), figsize=(6 * len(stages), 4), squeeze=False)
    for axis, stage in zip(axes[0], stages, strict=True):
        steps = np.array([r["step"] for r in records if r["stage"] == stage])
        losses = np.array([r["loss"] for r in records if r["stage"] == stage])
        order = np.argsort(steps, kind="stable")
        steps, losses = steps[order], losses[order]
        axis.plot(steps, losses, color="#bbbbbb", linewidth=0.6)
        if len(losses) >= window:
            smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
            axis.plot(steps[window - 1 :], smooth, color="#4477aa", label=f"mean of {window} records")
            axis.legend()
        axis.set_yscale("log")
        axis.set_xlabel("step")
        axis.set_ylabel("loss")
        axis.set_title(stage)
    figure.tight_layout()
    image.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(image, dpi=100)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Export a toy-world training run as the shipped model.")
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, default=WEIGHTS, help="weights folder (rewritten)")
    parser.add_argument("--docs", type=Path, help="also copy the training log here and plot loss.png")
    arguments = parser.parse_args(argv)
    try:
        total = export_weights(arguments.run, arguments.out)
    except ExportError as error:
        raise SystemExit(f"export: {error}") from None
    print(f"wrote {arguments.out} ({total / 1e6:.1f} MB)")
    if arguments.docs is not None:
        arguments.docs.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(arguments.run / "log.jsonl", arguments.docs / "training_log.jsonl")
        loss_curve(arguments.run / "log.jsonl", arguments.docs / "loss.png")
        print(f"wrote {arguments.docs / 'training_log.jsonl'} and {arguments.docs / 'loss.png'}")


if __name__ == "__main__":
    main()
