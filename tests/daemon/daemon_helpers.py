"""Starting daemons on random loopback ports for tests, and a tiny shot to give them."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from anyi2v.daemon.client import DaemonClient
from anyi2v.daemon.server import Server, ServerConfig
from anyi2v.daemon.worker import WorkerConfig

SIZE, FRAMES = 64, 4


def shot_document(seed: int = 7, frames: int = FRAMES, steps: int = 3) -> dict[str, Any]:
    return {
        "schema_version": 3,
        "prompt": "a red ball",
        "output": {"width": SIZE, "height": SIZE, "n_frames": frames, "fps": 8.0},
        "sampling": {"seed": seed, "steps": steps, "guidance_scale": 7.5},
        "conditions": [{"source": {"kind": "image", "path": "/etc/passwd"}, "modality": "depth"}],
        "tracks": [
            {"id": "ball", "keyframes": [{"frame": 0, "box": [0.1, 0.2, 0.5, 0.6]},
                                         {"frame": frames - 1, "box": [0.4, 0.3, 0.9, 0.8]}]},
        ],
        "method": {"inversion_timestep": 5, "injection_steps": 1, "optimization_steps": 1,
                   "optimization_iterations": 2},
    }  # fmt: skip


def condition_image() -> np.ndarray:
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    return (np.stack([xs, ys, np.hypot(xs - 0.3, ys - 0.4) < 0.2], axis=2) * 255).astype(np.uint8)


def wait_ready(client: DaemonClient, timeout: float = 120.0) -> None:
    """Until the daemon's worker has loaded its model."""
    deadline = time.monotonic() + timeout
    while client.hello().device == "loading":
        if time.monotonic() > deadline:
            raise TimeoutError("the daemon's model did not load")
        time.sleep(0.2)


@contextmanager
def running_server(data_dir: Path, **options: Any) -> Iterator[Server]:
    """A daemon with the tiny random model (or ``worker=``) in a thread of this process, on a random loopback port."""
    worker = options.pop("worker", WorkerConfig(model="tiny-random", device="cpu"))
    config = ServerConfig(
        data_dir=data_dir, bind="tcp://127.0.0.1:*", worker=worker, heartbeat_seconds=0.5, **options,
    )  # fmt: skip
    server = Server(config)
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            server.serve()
        except BaseException as error:  # reported by the test
            logging.getLogger("anyi2v.daemon").exception("the test server failed")
            failure.append(error)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop()
        thread.join(30)
        server.close()
    assert not thread.is_alive(), "the server did not stop"
    assert not failure, failure


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_daemon(address: str, data: Path, *extra: str) -> subprocess.Popen[bytes]:
    """`anyi2v daemon` with the tiny random model as a process of its own (its own session, so
    ``os.killpg`` ends it and its worker together)."""
    command = [sys.executable, "-m", "anyi2v.cli", "daemon", "--model", "tiny-random", "--device", "cpu",
               "--bind", address, "--data-dir", str(data), *extra]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
