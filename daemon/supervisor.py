"""The server's side of the worker process: start it, hand it jobs, read what it says, notice when it
dies or hangs, and kill it. Everything here is called from the server's loop; nothing blocks: the pipe
is read and written by threads (``worker_pipe``), so a worker that stops reading or stops halfway
through a message leaves the loop free, and the hang timer ends it."""

from __future__ import annotations

import logging
import multiprocessing
import time
from typing import Any

from .worker import WorkerConfig, worker_main
from .worker_pipe import WorkerPipe

log = logging.getLogger("anyi2v.daemon")
_PIPE_SECONDS = 5.0  # how long the rest of a dead worker's messages may take to read


class Supervisor:
    """One worker process at a time. ``state``: ``loading``, ``ready`` or ``stopped``.

    ``job_id`` is the job the worker runs; ``cancel_asked`` says a client asked to cancel it (the
    worker is told once). ``longest_silence`` is the longest time the current job went without a
    message from the worker: what the hang timeout must stay above.
    """

    def __init__(self, config: WorkerConfig, hang_timeout: float, load_timeout: float) -> None:
        self.config = config
        self.hang_timeout = hang_timeout
        self.load_timeout = load_timeout
        self.info: dict[str, Any] | None = None
        self.loaded: dict[str, Any] | None = None  # the models the worker holds, by name (``ModelCombination``)
        self.job_loading = False  # the running job loads models: the load timeout applies, not the hang one
        self.job_id: str | None = None
        self.cancel_asked = False
        self.state = "stopped"
        self.last_activity = time.monotonic()
        self.longest_silence = 0.0
        self.deaths_loading = 0  # workers in a row that ended before they were ready
        self._process: Any = None
        self._pipe: WorkerPipe | None = None

    def start(self) -> None:
        context = multiprocessing.get_context("spawn")
        here, there = context.Pipe(duplex=True)
        self._process = context.Process(
            target=worker_main, args=(self.config, there), daemon=True, name="anyi2v-worker"
        )
        self._process.start()
        there.close()
        self._pipe = WorkerPipe(here, f"anyi2v-worker-{self._process.pid}")
        self.state = "loading"
        self.loaded = None
        self.job_loading = False
        self.job_id = None
        self.cancel_asked = False
        self.last_activity = time.monotonic()
        log.info("worker started (pid %s), loading the model", self._process.pid)

    @property
    def pid(self) -> int | None:
        return None if self._process is None else int(self._process.pid)

    def fds(self) -> list[int]:
        if self._process is None or self._pipe is None:
            return []
        return [self._pipe.fileno(), self._process.sentinel]

    @property
    def idle(self) -> bool:
        return self.state == "ready" and self.job_id is None

    def run(self, job: dict[str, Any]) -> None:
        self.job_id = job["job_id"]
        self.job_loading = False
        self.cancel_asked = False
        self.last_activity = time.monotonic()
        self.longest_silence = 0.0
        self._send(("run", job))

    def cancel(self, job_id: str) -> None:
        """Ask the worker to stop the job it runs (once: asking again sends nothing)."""
        if self.job_id == job_id and not self.cancel_asked:
            self.cancel_asked = True
            self._send(("cancel", job_id))

    def _send(self, message: tuple[Any, ...]) -> None:
        if self._pipe is not None:
            self._pipe.send(message)

    def receive(self) -> list[tuple[Any, ...]]:
        """Every message the worker has sent so far; ``("died", exit code)`` last if it has ended."""
        if self._process is None or self._pipe is None:
            return []
        ended = not self._process.is_alive()
        messages = self._pipe.finish(_PIPE_SECONDS) if ended else self._pipe.take()
        if messages:
            now = time.monotonic()
            if self.job_id is not None:
                self.longest_silence = max(self.longest_silence, now - self.last_activity)
            self.last_activity = now
        for message in messages:
            if message[0] == "ready":
                self.info = message[1]
                self.loaded = message[1].get("loaded")
                self.state = "ready"
                self.deaths_loading = 0
            elif message[0] == "loaded":
                self.loaded = message[1]
            elif message[0] == "progress" and message[1] == self.job_id:
                self.job_loading = message[2] == "loading" and message[3] < message[4]
        if ended:
            if self.state == "loading":
                self.deaths_loading += 1
            self._process.join()
            messages.append(("died", self._process.exitcode))
            self._forget()
        return messages

    def overdue(self, now: float) -> str | None:
        """``"hung"`` when a job made no progress within the hang timeout, ``"job_load"`` when a job's
        loading of its models took longer than the load timeout, ``"load"`` when the worker's first loading
        did, else None."""
        if self.state == "loading" and now - self.last_activity > self.load_timeout:
            return "load"
        limit = self.load_timeout if self.job_loading else self.hang_timeout
        if self.job_id is not None and now - self.last_activity > limit:
            return "job_load" if self.job_loading else "hung"
        return None

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()  # SIGKILL ends a stopped process too
            self._process.join(10)
            self._forget()

    def stop(self) -> None:
        """Ask the worker to end; kill it if it does not within a few seconds."""
        if self._process is None:
            return
        self._send(("stop",))
        self._process.join(0 if self.job_id is not None else 5)
        self.kill()

    def _forget(self) -> None:
        if self._pipe is not None:
            self._pipe.close(_PIPE_SECONDS)  # the process has ended: blocked reads and writes have returned
        self._process = None
        self._pipe = None
        self.state = "stopped"
