"""The pipeline in a child process: load the model once, then run jobs the server hands over.

The server and this process speak over one ``multiprocessing`` pipe, in tuples:

    server -> worker: ("run", job)  ("cancel", job_id)  ("stop",)
    worker -> server: ("ready", info)  ("progress", job_id, stage, done, total)
                      ("preview", job_id, stage, done, total, width, height, rgb bytes)
                      ("frame", job_id, index, width, height, rgb bytes)  ("alive", job_id)
                      ("done", job_id, manifest_sha256)  ("cancelled", job_id)
                      ("failed", job_id, reason, message, hints)  ("load_failed", message)

``job`` is a dict: ``job_id``, ``shot`` (the document as JSON data), ``control``, ``video_format``,
``condition`` (``width``, ``height``) and the paths the server chose (``input``, ``staging``). The
worker writes the whole result into the staging folder, fsynced, ``manifest.json`` last; the server
moves it into place. A crash here costs the job's attempt, never the server.

The server's hang timer counts from each message of a running job (``supervisor``): a job that
sends nothing within the hang timeout is taken for hung, its worker killed. So a job reports from its
own thread at every step (the pipeline's progress) and between its other stages (``alive``, for
the prologue and the writing), and never from another thread, which would hide a job that is stuck.
What a job would import (the video writer, PIL) is imported while loading, before ``ready``: a
worker's first job starts as fast as its later ones. Loading has its own, longer timeout.

Faults for tests: ``ANYI2V_INJECT_FAULTS`` holds JSON ``{job_id: fault}``, fault one of ``oom``,
``crash``, ``hang``, ``disk_full``, applied at the job's first sampling step (``crash`` and ``hang``
only on its first attempt, so a requeued job then succeeds). Nothing else reads it.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import queue
import signal
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FAULTS_VARIABLE = "ANYI2V_INJECT_FAULTS"
OOM_HINTS = [
    "fewer frames (output.n_frames)",
    "a smaller size (output.width and output.height)",
    "low-memory mode: a daemon started with --low-memory (and fp16 weights: --dtype fp16)",
    "fewer trajectory-optimization steps (method.optimization_steps)",
]


@dataclass(frozen=True)
class WorkerConfig:
    """The worker's default model, as ``anyi2v daemon``'s flags name it: library names in ``models_dir``
    (None: the app's models folder) or paths; ``loras`` and ``motion_loras`` are ``(name, weight)`` pairs."""

    model: str | None = None
    device: str | None = None
    dtype: str | None = None
    low_memory: bool = False  # the pipeline's low-memory mode for every job (low_memory.py)
    motion_adapter: str | None = None
    tokenizer: str | None = None
    loras: tuple[tuple[str, float], ...] = ()
    motion_loras: tuple[tuple[str, float], ...] = ()
    vae: str | None = None
    scheduler: str | None = None  # the sampler when a shot names none (None: DDIM)
    models_dir: str | None = None
    config_dir: str | None = None  # SD 1.5 configs single-file checkpoints are read against (None: shipped)


INVERSION_CACHE_BYTES = 512 << 20
"""Host memory the worker keeps recent inversions in (keyed by model, condition image, prompt and the
method's inversion settings; the least recently used leave first)."""


class InjectedOutOfMemoryError(RuntimeError):
    """Raised by the ``oom`` test fault; handled exactly as a real out-of-memory error."""


def is_out_of_memory(error: BaseException) -> bool:
    import torch

    if isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError, InjectedOutOfMemoryError)):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def _write_png(path: Path, frame: Any) -> str:
    """A lossless frame; zlib level 1 (level 6, Pillow's default, takes several times longer for a few
    percent less)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG", compress_level=1)
    return _write(path, buffer.getvalue())


def _write(path: Path, data: bytes) -> str:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return hashlib.sha256(data).hexdigest()


def _import_job_modules() -> None:
    """Import what :func:`run_job` needs, so that it is part of loading, not of a worker's first job."""
    import numpy  # noqa: F401
    from PIL import Image  # noqa: F401

    import anyi2v.daemon.pipeline.generate
    import anyi2v.daemon.pipeline.video
    import anyi2v.shared.document
    import anyi2v.shared.errors  # noqa: F401


def _part(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return {"size": path.stat().st_size, "sha256": digest.hexdigest()}


def _injected_faults() -> dict[str, str]:
    """The test faults ``FAULTS_VARIABLE`` names: by job id, and ``worker_load`` for the worker's start."""
    faults: dict[str, str] = json.loads(os.environ.get(FAULTS_VARIABLE, "{}") or "{}")
    return faults


class _Fault:
    def __init__(self, job: dict[str, Any]) -> None:
        fault = _injected_faults().get(job["job_id"])
        if fault in ("crash", "hang") and job.get("attempt", 1) > 1:
            fault = None
        self.fault: str | None = fault

    def at_step(self, stage: str) -> None:
        if self.fault is None or stage != "sampling":
            return
        fault, self.fault = self.fault, None
        if fault == "oom":
            raise InjectedOutOfMemoryError("CUDA out of memory (injected for a test)")
        if fault == "crash":
            os.kill(os.getpid(), signal.SIGKILL)
        if fault == "hang":
            while True:
                time.sleep(3600)
        if fault == "disk_full":
            raise OSError(errno.ENOSPC, "No space left on device (injected for a test)")


def default_sources(config: WorkerConfig) -> Any:
    """The daemon's default models (``model_choice.ModelSources``) as its flags named them."""
    from anyi2v.daemon.pipeline.model_choice import flag_sources

    return flag_sources(
        config.model,
        motion_module=config.motion_adapter,
        loras=config.loras,
        motion_loras=config.motion_loras,
        vae=config.vae,
        models_dir=Path(config.models_dir) if config.models_dir is not None else None,
    )


def _job_models(cache: Any, config: WorkerConfig, shot: Any, job_id: str, send: Any) -> Any:
    """The job's models (its shot's ``model`` section over the daemon's default), loaded as the job's first
    stage when they differ from those held; ``("loaded", names)`` tells the server what is held now."""
    from anyi2v.daemon.pipeline.model_choice import job_sources

    before = cache.loads.total()
    try:
        return cache.get(
            job_sources(default_sources(config), shot.model),
            on_step=lambda done, total: send(("progress", job_id, "loading", done, total)),
        )
    finally:
        if cache.loads.total() != before or cache.models is None:
            send(("loaded", _held(cache, config)))


def _held(cache: Any, config: WorkerConfig) -> dict[str, Any] | None:
    return None if cache.names is None else {**cache.names, "scheduler": config.scheduler}


def run_job(
    cache: Any, config: WorkerConfig, job: dict[str, Any], send: Any, token: Any, inversions: Any = None
) -> None:
    """One job, start to finish; sends progress, frames and exactly one final message. ``inversions``
    (an ``InversionCache``) keeps the condition's inversion from job to job: a job that changes only the
    tracks, the seed or the sampling skips it."""
    import numpy as np

    from anyi2v.daemon.pipeline.generate import Cancelled, InputError, Progress, StepEvent, generate
    from anyi2v.daemon.pipeline.load_errors import ModelLoadError
    from anyi2v.daemon.pipeline.video import VideoWriter, sidecar_path
    from anyi2v.shared.document import dump_shot, parse_shot
    from anyi2v.shared.errors import ShotError

    job_id = job["job_id"]
    staging = Path(job["staging"])
    fault = _Fault(job)
    try:
        source = f"job {job_id}"
        models = _job_models(cache, config, parse_shot(job["shot"], source=source), job_id, send)
        shot = parse_shot(job["shot"], source=source, max_frames=int(models.max_frames))
        token.check()
        condition = None
        if job.get("condition") is not None:
            spec = job["condition"]
            data = Path(job["input"]).read_bytes()
            condition = np.frombuffer(data, dtype=np.uint8).reshape(spec["height"], spec["width"], 3).copy()
        (staging / "frames").mkdir(parents=True, exist_ok=True)
        video_name = f"video.{job['video_format']}"
        shot_json = dump_shot(shot)  # the same text `anyi2v animate` writes locally

        def on_step(event: StepEvent) -> None:
            fault.at_step(event.stage)
            if event.preview is not None:
                strip = np.concatenate(list(event.preview), axis=1)
                height, width = strip.shape[:2]
                send(("preview", job_id, event.stage, event.done, event.total, width, height, strip.tobytes()))
            else:
                send(("progress", job_id, event.stage, event.done, event.total))

        # Frames go into the video as they are decoded (as in `anyi2v animate`) and into PNGs on two
        # threads (zlib lets go of the GIL), so neither waits for the GPU to finish nor holds it up.
        writer = VideoWriter(staging / video_name, shot.output.fps, format=job["video_format"], shot_json=shot_json)
        pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="anyi2v-png")
        send(("alive", job_id))  # read and opened; the pipeline reports from here
        pngs: list[Future[str]] = []

        def on_frame(index: int, frame: Any) -> None:
            writer.add(frame)
            pngs.append(pool.submit(_write_png, staging / "frames" / f"{index:04d}.png", frame))
            height, width = frame.shape[:2]
            send(("frame", job_id, index, width, height, np.ascontiguousarray(frame).tobytes()))

        try:
            result = generate(
                models,
                shot,
                condition,
                control=bool(job.get("control", True)),
                progress=Progress(on_step=on_step, on_frame=on_frame),
                cancel=token,
                scheduler=config.scheduler,
                low_memory=config.low_memory,
                cache=inversions,
            )
            token.check()
            send(("progress", job_id, "encode", 0, 1))
            started = time.perf_counter()
            writer.close()
            for png in pngs:
                png.result()  # a failed write (a full disk) fails the job here
            send(("alive", job_id))  # written; what is left is checksums
        except BaseException:
            writer.abort()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        sidecar_path(staging / video_name).unlink(missing_ok=True)  # the shot is a part of its own here
        _write(staging / "shot.json", shot_json.encode())
        timings = {**result.timings, "encode": time.perf_counter() - started}
        first = result.frames[0]
        manifest = {
            "job_id": job_id,
            "n_frames": len(result.frames),
            "width": int(first.shape[1]),
            "height": int(first.shape[0]),
            "fps": shot.output.fps,
            "video_format": job["video_format"],
            "timings": timings,
            "parts": {
                "video": _part(staging / video_name),
                "shot": _part(staging / "shot.json"),
                "frames": [_part(staging / "frames" / f"{i:04d}.png") for i in range(len(result.frames))],
            },
        }
        digest = _write(staging / "manifest.json", json.dumps(manifest, indent=1).encode())
        send(("progress", job_id, "encode", 1, 1))
        send(("done", job_id, digest))
    except Cancelled:
        send(("cancelled", job_id))
    except (ShotError, InputError) as error:
        send(("failed", job_id, "invalid_input", str(error), []))
    except ModelLoadError as error:  # a model the job names cannot be loaded: the worker keeps serving
        hint = "anyi2v models lists the daemon's library; fix or remove the file, or choose another model"
        send(("failed", job_id, "invalid_input", str(error), [hint]))
    except OSError as error:
        if error.errno == errno.ENOSPC:
            send(("failed", job_id, "disk_full", f"the daemon's disk is full: {error}", ["free space on the GPU box"]))
        else:
            send(("failed", job_id, "internal", f"{type(error).__name__}: {error}", []))
    except BaseException as error:  # a job's failure must never end the worker silently
        if is_out_of_memory(error):
            _release_memory()
            send(("failed", job_id, "out_of_memory", f"out of memory: {error}", OOM_HINTS))
        else:
            send(("failed", job_id, "internal", "".join(traceback.format_exception_only(error)).strip(), []))


def _release_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def worker_main(config: WorkerConfig, connection: Any) -> None:
    """The child process's entry point (spawned by the server)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when this process ends
    lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with lock:
            connection.send(message)

    if _injected_faults().get("worker_load") == "crash":
        os.kill(os.getpid(), signal.SIGKILL)  # a test's fault: the process killed while it loads
    try:
        from anyi2v.daemon.pipeline.generate import CancelToken
        from anyi2v.daemon.pipeline.inversion import InversionCache
        from anyi2v.daemon.pipeline.model_cache import ModelCache

        cache = ModelCache(
            tokenizer=config.tokenizer, device=config.device, dtype=config.dtype, config_dir=config.config_dir
        )
        models = cache.get(default_sources(config))
        inversions = InversionCache(max_bytes=INVERSION_CACHE_BYTES, keep_on="cpu")
        _import_job_modules()
    except BaseException as error:
        send(("load_failed", "".join(traceback.format_exception_only(error)).strip()))
        return
    from anyi2v.shared.shot import MODALITIES

    send(
        (
            "ready",
            {
                "device": str(models.device),
                "dtype": str(models.dtype).removeprefix("torch."),
                "max_frames": int(models.max_frames),
                "modalities": list(MODALITIES),
                "loaded": _held(cache, config),
            },
        )
    )
    jobs: queue.Queue[dict[str, Any] | None] = queue.Queue()
    current: dict[str, Any] = {}

    def read() -> None:
        while True:
            try:
                message = connection.recv()
            except (EOFError, OSError):  # the server is gone (killed): end now, mid-job or not
                os._exit(1)
            if message[0] == "run":
                current[message[1]["job_id"]] = CancelToken()  # before any cancel for it can be read
                jobs.put(message[1])
            elif message[0] == "cancel":
                token = current.get(message[1])
                if token is not None:
                    token.cancel()
            elif message[0] == "stop":
                jobs.put(None)
                return

    threading.Thread(target=read, daemon=True).start()
    while True:
        job = jobs.get()
        if job is None:
            return
        token = current.setdefault(job["job_id"], CancelToken())
        try:
            run_job(cache, config, job, send, token, inversions)
        finally:
            current.pop(job["job_id"], None)
