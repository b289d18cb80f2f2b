"""What the daemon adds to a job's time, against the same job in this process (as `anyi2v animate` runs it).

    python benchmarks/daemon_overhead.py [--model toy-world] [--device cpu] [--size 128] [--frames 16]
                                         [--steps 25] [--repeats 3]

In process: the models loaded once, then per job ``generate`` with frames streamed into the video
writer, as the CLI does, with an inversion cache kept from job to job as the daemon's worker keeps one
(so both sides invert the condition in the warm-up round only). On the daemon (`anyi2v daemon` as a
process of its own with the same model, device and dtype, loaded once): per job, from submit to the
video fetched and checked, with every event streamed to this client. Each side runs one warm-up job,
then the two alternate ``--repeats`` times; the figures are medians and the overhead is the ratio of the
medians less one. Model loading is left out on both sides (the daemon loads once; a local run's load is
counted by the pipeline benchmarks).
It also prints how long after submit the first progress event and the first latent preview came, with
the daemon warm and the condition's inversion cached by the warm-up round (issue 21's targets).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from pipeline_speed import condition_image, shot_document  # run as a script: its folder is on the path

from anyi2v.daemon.client import DaemonClient
from anyi2v.daemon.pipeline.generate import Progress, generate
from anyi2v.daemon.pipeline.inversion import InversionCache
from anyi2v.daemon.pipeline.loading import load_named_models
from anyi2v.daemon.pipeline.video import VideoWriter
from anyi2v.shared.document import dump_shot, parse_shot


def in_process(
    models: Any, document: dict[str, Any], condition: np.ndarray, folder: Path, cache: InversionCache
) -> tuple[float, float]:
    """(the job's time, its generate time); ``cache`` keeps the inversion from round to round, as the
    daemon's worker does."""
    shot = parse_shot(document, source="benchmark")
    started = time.perf_counter()
    with VideoWriter(folder / "local.mp4", shot.output.fps, shot_json=dump_shot(shot)) as writer:
        result = generate(
            models, shot, condition, cache=cache, progress=Progress(on_frame=lambda index, frame: writer.add(frame))
        )
        writer.close()
    return time.perf_counter() - started, result.timings["total"]


def on_daemon(
    client: DaemonClient, job_id: str, document: dict[str, Any], condition: np.ndarray, folder: Path
) -> tuple[float, float, dict[str, float]]:
    """(the job's time, submit to video fetched; its generate time in the worker; the time from submit to
    the first event of each type that came, e.g. "progress" and "preview")."""
    started = time.perf_counter()
    client.submit(job_id, document, condition, subscribe=False)
    first: dict[str, float] = {}
    final = ""
    for event in client.events(job_id):
        first.setdefault(event.type, time.perf_counter() - started)
        final = event.type
    assert final == "done", final
    client.fetch_part(job_id, "video", folder / f"{job_id}.mp4")
    elapsed = time.perf_counter() - started
    timings = client.manifest(job_id)["timings"]
    return elapsed, float(timings["total"]), first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="toy-world")
    parser.add_argument("--device")
    parser.add_argument("--dtype")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()

    document = shot_document(arguments.size, arguments.frames, arguments.steps)
    document["tracks"] = document["tracks"][:1]  # one track (the ball), as measured in BENCHMARKS.md
    condition = condition_image(arguments.size)
    models = load_named_models(arguments.model, device=arguments.device, dtype=arguments.dtype)
    print(f"model {models.identity} on {models.device} ({models.dtype})", flush=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    options = [f"--{name}={value}" for name in ("device", "dtype") if (value := getattr(arguments, name))]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        command = [sys.executable, "-m", "anyi2v.cli", "daemon", "--model", arguments.model, *options,
                   "--bind", address, "--data-dir", str(folder / "data")]  # fmt: skip
        daemon = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            with DaemonClient(address, timeout=60) as client:
                while client.hello().device == "loading":
                    time.sleep(0.5)
                local_times, daemon_times, firsts = [], [], []
                inversions = InversionCache()  # both sides invert in the warm-up round only
                for round_ in range(arguments.repeats + 1):  # round 0 is the warm-up of each side
                    local, local_stages = in_process(models, document, condition, folder, inversions)
                    remote, remote_stages, first = on_daemon(client, f"job-{round_}", document, condition, folder)
                    print(
                        f"round {round_}: in process {local:.2f} s (generate {local_stages:.2f} s),"
                        f" daemon {remote:.2f} s (generate {remote_stages:.2f} s); first events after submit:"
                        f" {', '.join(f'{kind} {seconds * 1000:.0f} ms' for kind, seconds in first.items())}",
                        flush=True,
                    )
                    if round_ > 0:
                        local_times.append(local)
                        daemon_times.append(remote)
                        firsts.append(first)
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(30)
    local_median, daemon_median = statistics.median(local_times), statistics.median(daemon_times)
    print(
        f"{arguments.size}x{arguments.size}, {arguments.frames} frames, {arguments.steps} steps, median of"
        f" {arguments.repeats}: in process {local_median:.2f} s, daemon {daemon_median:.2f} s,"
        f" overhead {100 * (daemon_median / local_median - 1):+.1f}%  (target: < +5%)"
    )
    # warm daemon, inversion cached (the warm-up round ran the same shot): issue 21's first-preview targets
    for kind, target in (("progress", 0.2), ("preview", 1.5)):
        seen = [first[kind] for first in firsts if kind in first]
        figure = f"{1000 * statistics.median(seen):.0f} ms" if seen else "none came"
        print(f"first {kind} event after submit, median of {len(seen)}: {figure} (target: <= {target * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
