"""The server's side of the worker process: start it, hand it jobs, read what it says, notice when it
dies or hangs, and kill it. Everything here is called from the server's loop; nothing blocks."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import time
from typing import Any

from .worker import WorkerConfig, worker_main

log = logging.getLogger("anyi2v.daemon")


class Supervisor:
    """One worker process at a time. ``state``: ``loading``, ``ready`` or ``stopped``."""

    def __init__(self, config: WorkerConfig, hang_timeout: float, load_timeout: float) -> None:
        self.config = config
        self.hang_timeout = hang_timeout
        self.load_timeout = load_timeout
        self.info: dict[str, Any] | None = None
        self.job_id: str | None = None
        self.state = "stopped"
        self.last_activity = time.monotonic()
        self._process: Any = None
        self._connection: Any = None

    def start(self) -> None:
        context = multiprocessing.get_context("spawn")
        here, there = context.Pipe(duplex=True)
        self._process = context.Process(
            target=worker_main, args=(self.config, there), daemon=True, name="anyi2v-worker"
        )
        self._process.start()
        there.close()
        self._connection = here
        self.state = "loading"
        self.job_id = None
        self.last_activity = time.monotonic()
        log.info("worker started (pid %s), loading the model", self._process.pid)

    @property
    def pid(self) -> int | None:
        return None if self._process is None else int(self._process.pid)

    def fds(self) -> list[int]:
        if self._process is None:
            return []
        return [self._connection.fileno(), self._process.sentinel]

    @property
    def idle(self) -> bool:
        return self.state == "ready" and self.job_id is None

    def run(self, job: dict[str, Any]) -> None:
        self.job_id = job["job_id"]
        self.last_activity = time.monotonic()
        self._connection.send(("run", job))

    def cancel(self, job_id: str) -> None:
        if self.job_id == job_id and self._connection is not None:
            self._connection.send(("cancel", job_id))

    def receive(self) -> list[tuple[Any, ...]]:
        """Every message the worker has sent so far; ``("died", exit code)`` last if it has ended."""
        messages: list[tuple[Any, ...]] = []
        if self._process is None:
            return messages
        try:
            while self._connection.poll():
                message = self._connection.recv()
                self.last_activity = time.monotonic()
                if message[0] == "ready":
                    self.info = message[1]
                    self.state = "ready"
                messages.append(message)
        except (EOFError, OSError):
            pass
        if not self._process.is_alive():
            self._process.join()
            messages.append(("died", self._process.exitcode))
            self._forget()
        return messages

    def overdue(self, now: float) -> str | None:
        """``"hung"`` when a job made no progress within the hang timeout, ``"load"`` when loading took
        longer than the load timeout, else None."""
        if self.state == "loading" and now - self.last_activity > self.load_timeout:
            return "load"
        if self.job_id is not None and now - self.last_activity > self.hang_timeout:
            return "hung"
        return None

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join(10)
            self._forget()

    def stop(self) -> None:
        """Ask the worker to end; kill it if it does not within a few seconds."""
        if self._process is None:
            return
        with contextlib.suppress(OSError):
            self._connection.send(("stop",))
        self._process.join(0 if self.job_id is not None else 5)
        self.kill()

    def _forget(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._process = None
        self._connection = None
        self.state = "stopped"
