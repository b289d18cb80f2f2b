"""The evaluation harness: held-out toy-world shots run in every mode through the real pipeline.

Each held-out shot comes from a scene seed at or above :data:`HELD_OUT_SEEDS` (training never draws
one): its condition image is frame 0 rendered in a modality (depth, normal, edges or point splats,
in turn), its prompt the scene's caption, and its one track the rendered boxes of its largest object,
which is inside its first box in frame 0 of the condition. Every mode (no control; AnyI2V; each of
the paper's ablations; the K/V copy in both halves of the guidance batch, which the authors' code does
not do; the SG-I2V options) runs the same shots with the same seeds; the inversion is
cached across modes, since none of them changes it.

Metrics:

- trajectory error (ObjMC-style): the mean distance, over frames 2..F, between the target box's centre
  and the centre a tracker follows from the first box: pyramidal Lucas-Kanade (OpenCV) on corners
  inside the first box, the centre moved by the median displacement. The tracker never sees the
  scene's ground truth; its own error is measured on the rendered ground-truth clips.
- structure fidelity: the boundary F-score between the edges (Canny) of the generated frame 0 and the
  edges of the ground-truth render of that frame, with a 2-pixel tolerance.
- seconds per shot.
"""

from __future__ import annotations

import itertools
import json
import math
import queue
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from numpy.typing import NDArray
from scipy import ndimage

from anyi2v.daemon.pipeline.generate import generate
from anyi2v.daemon.pipeline.inversion import InversionCache
from anyi2v.daemon.pipeline.models import Models
from anyi2v.shared.document import parse_shot
from anyi2v.shared.shot import Shot

from .appearance import APPEARANCE_MODES, background_delta_e, mean_interval
from .dataset import MODALITIES, render_clips, render_conditions
from .scenes import Scene, sample_scene
from .train import HELD_OUT_SEEDS

BOUNDARY_TOLERANCE_PX = 2.0

# name -> (control, method settings changed from the defaults)
MODES: dict[str, tuple[bool, dict[str, Any]]] = {
    "no control": (False, {}),
    "AnyI2V": (True, {}),
    "w/o K&V consistency": (True, {"kv_copy": False}),
    "K&V copy in both CFG halves": (True, {"kv_copy_halves": "both"}),
    "w/o PCA reduction": (True, {"pca_components": None}),
    "static mask": (True, {"mask": "static"}),
    "w/o semantic mask": (True, {"mask": "none"}),
    "optimize residual states": (True, {"optimize_features": "residual"}),
    "w/o AdaIN debiasing": (True, {"residual_adain": False}),
    "SG-I2V Gaussian weighting": (True, {"gaussian_weighting": True}),
    "SG-I2V high-frequency filter": (True, {"high_frequency_filter": True}),
}
ALL_MODES = {**MODES, **APPEARANCE_MODES}  # the paper's modes, then the appearance ablations (appearance.py)


@dataclass
class HeldOutShot:
    """One evaluation shot: the scene, its Shot, the condition image (H, W, 3) uint8, the target boxes
    (F, 4) in pixels, the ground-truth clip (F, H, W, 3) uint8 and frame 0's ground-truth edges (H, W)."""

    seed: int
    scene: Scene
    shot: Shot
    condition: NDArray[np.uint8]
    target: NDArray[np.float64]
    clip: NDArray[np.uint8]
    edges: NDArray[np.bool_]
    boxes: NDArray[np.float64]  # (K, F, 4) every object's rendered box in pixels, NaN where it is hidden


def _uint8(pixels: torch.Tensor) -> NDArray[np.uint8]:
    """(3, F, H, W) in -1..1 -> (F, H, W, 3) uint8."""
    image = ((pixels.permute(1, 2, 3, 0).float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return np.ascontiguousarray(image.cpu().numpy())


def held_out_shots(
    count: int, size: int = 128, frames: int = 16, steps: int = 25, method: dict[str, Any] | None = None,
    device: torch.device | None = None,
) -> list[HeldOutShot]:  # fmt: skip
    """``count`` shots from consecutive held-out seeds, skipping scenes whose objects are all hidden or
    leave the frame (the target must be visible throughout)."""
    device = device or torch.device("cpu")
    shots: list[HeldOutShot] = []
    seed = HELD_OUT_SEEDS
    while len(shots) < count:
        scene = sample_scene(seed, frames=frames)
        seed += 1
        clip = render_clips([scene], size, device)
        boxes = clip.boxes[0].cpu().numpy()  # (K, F, 4) normalized
        visible = ~np.isnan(boxes).any(axis=2).any(axis=1)
        if not visible.any():
            continue
        areas = np.where(
            visible, np.nan_to_num((boxes[:, 0, 2] - boxes[:, 0, 0]) * (boxes[:, 0, 3] - boxes[:, 0, 1])), -1
        )
        target = int(np.argmax(areas))
        modality = MODALITIES[len(shots) % len(MODALITIES)]
        condition = render_conditions(
            [scene], [modality], size, device, generator=torch.Generator(device).manual_seed(seed)
        )
        edges = render_conditions([scene], ["edges"], size, device)
        keys = [{"frame": f, "box": [float(v) for v in np.clip(boxes[target, f], 0.0, 1.0)]} for f in range(frames)]
        document = {
            "schema_version": 3,
            "prompt": scene.caption(),
            "output": {"width": size, "height": size, "n_frames": frames, "fps": 8},
            "sampling": {"seed": len(shots), "steps": steps, "guidance_scale": 7.5},
            "conditions": [{"source": {"kind": "image", "path": "condition.png"}, "modality": modality}],
            "tracks": [{"id": "target", "keyframes": keys}],
            "method": method or {},
        }
        shots.append(
            HeldOutShot(
                seed=seed - 1,
                scene=scene,
                shot=parse_shot(document, source=f"held-out seed {seed - 1}"),
                condition=_uint8(condition.pixels[0])[0],
                target=boxes[target] * size,
                clip=_uint8(clip.pixels[0]),
                edges=_uint8(edges.pixels[0])[0, :, :, 0] > 127,
                boxes=boxes * size,
            )
        )
    return shots


def track_centres(frames: NDArray[np.uint8], box: NDArray[np.float64]) -> NDArray[np.float64]:
    """(F, 2) centre of ``box`` (x0, y0, x1, y1 pixels, frame 0) followed through ``frames`` (F, H, W, 3):
    Lucas-Kanade on corners inside the box, the centre moved by the points' median displacement."""
    grey = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]
    height, width = grey[0].shape
    x0, y0, x1, y1 = (round(v) for v in box)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, max(x1, x0 + 1)), min(height, max(y1, y0 + 1))
    mask = np.zeros((height, width), np.uint8)
    mask[y0:y1, x0:x1] = 255
    points = cv2.goodFeaturesToTrack(grey[0], maxCorners=40, qualityLevel=0.01, minDistance=2, mask=mask)
    if points is None or len(points) < 4:  # a flat box: a grid of points instead
        ys, xs = np.mgrid[y0:y1:max(1, (y1 - y0) // 4), x0:x1:max(1, (x1 - x0) // 4)]  # fmt: skip
        points = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)[:, None]
    centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
    centres = [centre.copy()]
    for previous, current in itertools.pairwise(grey):
        if len(points):
            moved, status, _ = cv2.calcOpticalFlowPyrLK(
                previous,
                current,
                points,
                None,
                winSize=(15, 15),
                maxLevel=3,  # type: ignore[call-overload, unused-ignore]  # OpenCV 5 stubs accept it
            )
            good = status.ravel() == 1
            if good.any():
                centre = centre + np.median((moved - points)[good, 0], axis=0)
            points = moved[good]
        centres.append(centre.copy())
    return np.asarray(centres)


def trajectory_error(centres: NDArray[np.float64], target: NDArray[np.float64]) -> float:
    """Mean distance in pixels between tracked centres and target box centres over frames 2..F."""
    wanted = np.stack([(target[:, 0] + target[:, 2]) / 2, (target[:, 1] + target[:, 3]) / 2], axis=1)
    return float(np.linalg.norm(centres[1:] - wanted[1:], axis=1).mean())


def boundary_f_score(
    predicted: NDArray[np.bool_], truth: NDArray[np.bool_], tolerance: float = BOUNDARY_TOLERANCE_PX
) -> float:
    """F-score of edge pixels matched within ``tolerance`` pixels (precision: predicted near a true edge;
    recall: true edges near a predicted one). 1 when both are empty, 0 when one is."""
    if not predicted.any() and not truth.any():
        return 1.0
    if not predicted.any() or not truth.any():
        return 0.0
    to_truth = ndimage.distance_transform_edt(~truth)
    to_predicted = ndimage.distance_transform_edt(~predicted)
    precision = float((to_truth[predicted] <= tolerance).mean())
    recall = float((to_predicted[truth] <= tolerance).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def image_edges(image: NDArray[np.uint8]) -> NDArray[np.bool_]:
    """Canny edges of an RGB image (thresholds 50 / 150 on the grey image)."""
    return np.asarray(cv2.Canny(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), 50, 150) > 0)


@dataclass
class ModeResult:
    errors: list[float] = field(default_factory=list)
    f_scores: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    delta_es: list[float] = field(default_factory=list)  # background ΔE to the ground truth (appearance.py)
    first_frames: list[NDArray[np.uint8]] = field(default_factory=list)
    sample: list[NDArray[np.uint8]] = field(default_factory=list)  # the first shot's frames


@dataclass
class ShotOutcome:
    """One shot in one mode: its metrics, its first frame, and all its frames when it is shot 0."""

    error: float
    f_score: float
    seconds: float
    delta_e: float
    first_frame: NDArray[np.uint8]
    frames: list[NDArray[np.uint8]] | None


def _run_shot(models: Models, held: HeldOutShot, mode: str, cache: InversionCache, keep_frames: bool) -> ShotOutcome:
    control, changes = ALL_MODES[mode]
    method = held.shot.method.model_copy(update=changes)
    shot = held.shot.model_copy(update={"method": method})
    started = time.perf_counter()
    result = generate(models, shot, held.condition, control=control, cache=cache)
    seconds = time.perf_counter() - started
    frames = np.stack(result.frames)
    return ShotOutcome(
        error=trajectory_error(track_centres(frames, held.target[0]), held.target),
        f_score=boundary_f_score(image_edges(frames[0]), held.edges),
        seconds=seconds,
        delta_e=background_delta_e(frames, held.clip, held.boxes),
        first_frame=frames[0],
        frames=list(frames) if keep_frames else None,
    )


def _worker(
    load: Callable[[], Models], shots: Sequence[HeldOutShot], indices: Sequence[int], modes: Sequence[str],
    threads: int, messages: Any,
) -> None:  # fmt: skip
    """A worker process: its share of the shots in every mode, each outcome sent as it is made."""
    try:
        torch.set_num_threads(threads)
        models = load()
        cache = InversionCache()
        for mode in modes:
            for index, held in zip(indices, shots, strict=True):
                messages.put(("outcome", mode, index, _run_shot(models, held, mode, cache, index == 0)))
        messages.put(("done",))
    except BaseException:  # reported to the parent, which raises it there
        messages.put(("error", traceback.format_exc()))


def run_evaluation(
    models: Models | Callable[[], Models], shots: Sequence[HeldOutShot], modes: Sequence[str],
    progress: Callable[[str, int, int], None] | None = None,
    finished: Callable[[dict[str, ModeResult]], object] | None = None,
    workers: int = 1,
) -> dict[str, ModeResult]:  # fmt: skip
    """Every shot in every mode. ``finished`` is called with the results so far each time a mode is
    complete (so a long run can write its report as it goes).

    With ``workers`` > 1 the shots are dealt out to that many processes (``models`` must then be a
    picklable function that loads the model, which each process calls), all running every mode: at
    the toy model's size a GPU is bound by kernel launches, and several processes keep it busier. Each
    process keeps its own inversion cache, shared across modes, as a single process does."""
    unknown = [m for m in modes if m not in ALL_MODES]
    if unknown:
        raise ValueError(f"unknown modes {unknown}; known: {', '.join(ALL_MODES)}")
    outcomes: dict[str, dict[int, ShotOutcome]] = {mode: {} for mode in modes}
    results: dict[str, ModeResult] = {}

    def record(mode: str, index: int, outcome: ShotOutcome) -> None:
        outcomes[mode][index] = outcome
        if progress is not None:
            progress(mode, len(outcomes[mode]) - 1, len(shots))
        if len(outcomes[mode]) == len(shots):
            ordered = [outcomes[mode][i] for i in range(len(shots))]
            results[mode] = ModeResult(
                errors=[o.error for o in ordered],
                f_scores=[o.f_score for o in ordered],
                seconds=[o.seconds for o in ordered],
                delta_es=[o.delta_e for o in ordered],
                first_frames=[o.first_frame for o in ordered],
                sample=ordered[0].frames or [],
            )
            if finished is not None:
                finished({m: results[m] for m in modes if m in results})

    if workers <= 1 or len(shots) <= 1:
        loaded = models if isinstance(models, Models) else models()
        cache = InversionCache()
        for mode in modes:
            for index, held in enumerate(shots):
                record(mode, index, _run_shot(loaded, held, mode, cache, index == 0))
        return {m: results[m] for m in modes}
    if isinstance(models, Models):
        raise ValueError("several workers need a function that loads the model, not a loaded model")
    context = torch.multiprocessing.get_context("spawn")
    messages = context.Queue()
    count = min(workers, len(shots))
    threads = max(1, torch.get_num_threads() // count)
    processes = []
    for worker in range(count):
        indices = list(range(worker, len(shots), count))
        arguments = (models, [shots[i] for i in indices], indices, list(modes), threads, messages)
        processes.append(context.Process(target=_worker, args=arguments, daemon=True))
    for process in processes:
        process.start()
    try:
        running = count
        while running:
            try:
                message = messages.get(timeout=10)
            except queue.Empty:
                dead = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"an evaluation worker died (exit code {dead[0]})") from None
                continue
            if message[0] == "outcome":
                record(*message[1:])
            elif message[0] == "done":
                running -= 1
            else:
                raise RuntimeError(f"an evaluation worker failed:\n{message[1]}")
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()
    return {m: results[m] for m in modes}


def tracker_error(shots: Sequence[HeldOutShot]) -> float:
    """The tracker's own mean error on the ground-truth clips (pixels)."""
    return float(np.mean([trajectory_error(track_centres(s.clip, s.target[0]), s.target) for s in shots]))


def paired_difference(errors: Sequence[float], reference: Sequence[float]) -> tuple[float, float]:
    """Mean of ``errors - reference`` shot by shot, and the half-width of its 95% interval (1.96
    standard errors; nan with fewer than two shots)."""
    differences = np.asarray(errors, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
    if differences.size < 2:
        return float(differences.mean()), math.nan
    return float(differences.mean()), float(1.96 * differences.std(ddof=1) / math.sqrt(differences.size))


def write_report(
    folder: Path, results: dict[str, ModeResult], shots: Sequence[HeldOutShot], command: str, model: str,
    wall_seconds: float | None = None, workers: int = 1,
) -> Path:  # fmt: skip
    """report.md, results.json, plot.png and contact_sheet.png in ``folder``; returns the report's path.
    ``wall_seconds``: the run's wall time so far, with ``workers`` processes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    width = shots[0].clip.shape[2]
    baseline = float(np.mean(results["no control"].errors)) if "no control" in results else math.nan
    own = tracker_error(shots)
    reference = results.get("AnyI2V")
    rows = []
    summary: dict[str, dict[str, float]] = {}
    for mode, outcome in results.items():
        error = float(np.mean(outcome.errors))
        summary[mode] = {
            "trajectory_error_px": error,
            "trajectory_error_fraction": error / width,
            "relative_to_no_control": error / baseline if baseline > 0 else math.nan,
            "boundary_f_score": float(np.mean(outcome.f_scores)),
            "seconds_per_shot": float(np.mean(outcome.seconds)),
        }
        summary[mode]["background_delta_e"], summary[mode]["background_delta_e_95"] = mean_interval(outcome.delta_es)
        s = summary[mode]
        versus = "–"
        if reference is not None and outcome is not reference:
            difference, spread = paired_difference(outcome.errors, reference.errors)
            s["minus_anyi2v_px"], s["minus_anyi2v_95_px"] = difference, spread
            versus = f"{difference:+.2f} ± {spread:.2f}"
        rows.append(
            f"| {mode} | {s['trajectory_error_px']:.2f} | {s['trajectory_error_fraction']:.3f} |"
            f" {s['relative_to_no_control']:.2f} | {versus} | {s['boundary_f_score']:.3f} |"
            f" {s['background_delta_e']:.1f} ± {s['background_delta_e_95']:.1f} | {s['seconds_per_shot']:.1f} |"
        )
    lines = [
        "# Toy-world evaluation",
        "",
        f"Model: `{model}`. Command: `{command}`.",
        f"{len(shots)} held-out shots (scene seeds {shots[0].seed} to {shots[-1].seed}), {width}x{width},"
        f" {shots[0].clip.shape[0]} frames. Tracker (Lucas-Kanade) error on the ground-truth clips:"
        f" {own:.2f} px ({own / width:.3f} of the width).",
        *(
            [f"Wall time: {wall_seconds / 60:.1f} min with {workers} worker process{'es' if workers > 1 else ''}."]
            if wall_seconds is not None
            else []
        ),
        "",
        "| mode | trajectory error (px) | fraction of width | vs no control | minus AnyI2V (px, 95%) |"
        " boundary F-score (2 px) | background ΔE (95%) | s / shot |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        "\"Minus AnyI2V\" is the mean over shots of (this mode's error - AnyI2V's error) on the same shot,"
        " ± 1.96 standard errors: where the interval holds 0, the two modes are not told apart by this many shots."
        ' "Background ΔE" is the CIELAB distance between the mean colour of the generated clip outside every'
        " object's box and that of the ground truth there (the background the prompt names), ± 1.96 standard"
        " errors: 0 is the prompt's background, about 2.3 a just-noticeable difference.",
        "",
        "![metrics](plot.png)",
        "",
        "![first shot, every mode](contact_sheet.png)",
        "",
    ]
    report = folder / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    (folder / "results.json").write_text(
        json.dumps(
            {
                "tracker_error_px": own,
                "modes": summary,
                "per_shot": {
                    mode: {
                        "trajectory_error_px": outcome.errors,
                        "boundary_f_score": outcome.f_scores,
                        "background_delta_e": outcome.delta_es,
                    }
                    for mode, outcome in results.items()
                },
                "command": command,
                "model": model,
                "wall_seconds": wall_seconds,
                "workers": workers,
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    names = list(summary)
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    axes[0].barh(names, [summary[n]["trajectory_error_px"] for n in names], color="#4477aa")
    axes[0].axvline(own, color="grey", linestyle="--", label="tracker's own error")
    axes[0].set_xlabel("trajectory error (pixels, lower is better)")
    axes[0].legend()
    axes[1].barh(names, [summary[n]["boundary_f_score"] for n in names], color="#cc6677")
    axes[1].set_xlabel("frame-0 boundary F-score (higher is better)")
    axes[1].set_yticklabels([])
    figure.tight_layout()
    figure.savefig(folder / "plot.png", dpi=100)
    plt.close(figure)
    _contact_sheet(folder / "contact_sheet.png", results, shots[0])
    return report


def _contact_sheet(path: Path, results: dict[str, ModeResult], shot: HeldOutShot) -> None:
    """One row per mode (and the ground truth first): every other frame of the first shot, the target box
    drawn in each frame."""
    from PIL import Image, ImageDraw

    rows = {"ground truth": list(shot.clip), **{mode: outcome.sample for mode, outcome in results.items()}}
    picks = range(0, len(shot.clip), 2)
    size = shot.clip.shape[1]
    label = 190
    sheet = Image.new("RGB", (label + size * len(picks), size * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for row, (name, frames) in enumerate(rows.items()):
        draw.text((4, row * size + size // 2 - 6), name, fill="black")
        for column, frame in enumerate(picks):
            tile = Image.fromarray(frames[frame])
            box = shot.target[frame]
            ImageDraw.Draw(tile).rectangle([float(v) for v in box], outline=(255, 0, 255))
            sheet.paste(tile, (label + column * size, row * size))
    sheet.save(path)
