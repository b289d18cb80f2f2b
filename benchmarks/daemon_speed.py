"""The daemon's own speed on loopback: status round trips and frame streaming latency.

    python benchmarks/daemon_speed.py [--requests 5000] [--frames 200] [--size 512]

The server runs in this process; the client in a process of its own (so they share no interpreter
lock), as with a real desktop. The worker is replaced by a pump that only sends frames: each frame's
first eight bytes carry the CLOCK_MONOTONIC time (system-wide on Linux) at which the pump sent it, so
the client measures the whole way a frame goes: the worker's pipe, the server's loop, ZeroMQ over
loopback and the client's decoding. Frames are sent 20 ms apart, so the figure is latency, not queueing.
Prints the median and the 90th and 99th percentiles.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import struct
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

import anyi2v.daemon.supervisor as supervisor_module
from anyi2v.daemon.server import Server, ServerConfig


def pump_main(config: Any, connection: Any) -> None:
    """A worker that loads nothing and streams ``n_frames`` stamped frames for each job."""
    connection.send(("ready", {"device": "pump", "dtype": "none", "max_frames": 10**6, "modalities": ["depth"]}))
    while True:
        message = connection.recv()
        if message[0] == "stop":
            return
        if message[0] != "run":
            continue
        job = message[1]
        size = job["shot"]["output"]["width"]
        pixels = bytearray(np.random.default_rng(0).integers(0, 256, size * size * 3, dtype=np.uint8).tobytes())
        for index in range(job["shot"]["output"]["n_frames"]):
            time.sleep(0.02)
            pixels[:8] = struct.pack("<d", time.monotonic())
            connection.send(("frame", job["job_id"], index, size, size, bytes(pixels)))
        connection.send(("cancelled", job["job_id"]))


def shot(size: int, frames: int) -> dict[str, Any]:
    return {
        "schema_version": 3,
        "prompt": "benchmark",
        "output": {"width": size, "height": size, "n_frames": frames, "fps": 8},
        "conditions": [{"source": {"kind": "image", "path": "c.png"}, "modality": "depth"}],
    }


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return f"median {statistics.median(ordered):.3f} ms, p90 {pick(0.9):.3f} ms, p99 {pick(0.99):.3f} ms"


def client_main(address: str, requests: int, frames: int, size: int, results: Any) -> None:
    from anyi2v.daemon.client import DaemonClient

    with DaemonClient(address, timeout=30) as client:
        client.hello()
        for _ in range(200):  # warm-up
            client.status()
        round_trips = []
        for _ in range(requests):
            started = time.perf_counter()
            client.status()
            round_trips.append((time.perf_counter() - started) * 1000)
        latencies = []
        client.submit("stream", shot(size, frames), None, control=False, subscribe=False)
        for event in client.events("stream"):
            if event.type == "frame":
                sent = struct.unpack("<d", event.buffers[0][:8])[0]
                latencies.append((time.monotonic() - sent) * 1000)
    results.put((round_trips, latencies))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    arguments = parser.parse_args()

    supervisor_module.worker_main = pump_main  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as data:
        config = ServerConfig(data_dir=Path(data), bind="tcp://127.0.0.1:*")
        config.limits = config.limits.model_copy(update={"max_n_frames": max(64, arguments.frames)})
        server = Server(config)
        thread = threading.Thread(target=server.serve, daemon=True)
        thread.start()
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        process = context.Process(
            target=client_main, args=(server.address, arguments.requests, arguments.frames, arguments.size, results)
        )
        process.start()
        round_trips, latencies = results.get(timeout=600)
        process.join()
        server.stop()
        thread.join(30)
        server.close()
    frame_mib = arguments.size * arguments.size * 3 / 2**20
    print(f"status round trip, {len(round_trips)} requests: {percentiles(round_trips)}  (target: median < 1 ms)")
    print(
        f"{arguments.size}x{arguments.size} RGB frame ({frame_mib:.2f} MiB) from worker to subscriber,"
        f" {len(latencies)} frames: {percentiles(latencies)}  (target: median < 5 ms)"
    )


if __name__ == "__main__":
    main()
