"""Daemon connections without Qt: settings, the embedded local daemon, and a session whose threads
talk ZeroMQ so the GUI thread never waits on it.

A :class:`DaemonSession` reports through callbacks that run on its own threads; the Qt layer turns
them into queued signals. Each thread owns its own :class:`DaemonClient` (ZeroMQ sockets are not
thread-safe): one watches the daemon (status every few seconds, reconnecting with back-off), one
follows each job, and cancels go out on short-lived clients of their own.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from anyi2v.daemon import TOY_WORLD
from anyi2v.daemon.client import ClientKeys, DaemonClient, DaemonError, DaemonTimeoutError, Event
from anyi2v.daemon.datalock import running_address

if TYPE_CHECKING:
    from anyi2v.shared.protocol import ModelsReply

log = logging.getLogger(__name__)

ConnectionState = Literal["none", "starting", "connecting", "connected", "disconnected", "error"]


def local_daemon_installed() -> bool:
    """Whether this install can run a daemon itself: the pipeline's torch and diffusers are importable."""
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "diffusers"))


@dataclass(frozen=True)
class ConnectionSettings:
    """``local``: a daemon the studio starts and stops (``model`` empty: the embedded toy-world model).
    ``remote``: a daemon at ``address``, with CURVE keys when it is not on loopback."""

    mode: Literal["local", "remote"] = "local"
    address: str = ""
    server_key: str = ""  # the daemon's public key file (NAME.key)
    client_key: str = ""  # this machine's secret key file (NAME.key_secret)
    model: str = ""
    device: str = ""
    low_memory: bool = False  # the local daemon's low-memory mode (``anyi2v daemon --low-memory``)

    def problem(self) -> str | None:
        """Why these settings cannot connect, or None."""
        if self.mode == "local":
            if not local_daemon_installed():
                return (
                    "this install has no local daemon (no torch and diffusers: the `daemon` extra, or a remote-only"
                    " desktop bundle); connect to a daemon elsewhere (Generate > Connect…)"
                )
            return None
        if not self.address.startswith(("tcp://", "ipc://")):
            return f"the daemon address {self.address!r} must look like tcp://HOST:PORT"
        if bool(self.server_key) != bool(self.client_key):
            return "CURVE needs both the daemon's public key (NAME.key) and your secret key (NAME.key_secret)"
        for path in (self.server_key, self.client_key):
            if path and not Path(path).expanduser().is_file():
                return f"{path}: no such key file (create keys with `anyi2v keys create NAME`)"
        return None

    def keys(self) -> ClientKeys | None:
        if self.mode == "local" or not self.server_key:
            return None
        return ClientKeys.from_files(Path(self.server_key).expanduser(), Path(self.client_key).expanduser())

    def checked(self) -> ConnectionSettings:
        """These settings as read from a file someone may have edited: raises ValueError on a wrong type."""
        for name, value in asdict(self).items():
            if name == "low_memory":
                if not isinstance(value, bool):
                    raise ValueError(f"connection.low_memory must be true or false, not {value!r}")
            elif not isinstance(value, str):
                raise ValueError(f"connection.{name} must be text, not {value!r}")
        if self.mode not in ("local", "remote"):
            raise ValueError(f"connection.mode must be local or remote, not {self.mode!r}")
        return self


@dataclass(frozen=True)
class ConnectionStatus:
    state: ConnectionState
    address: str = ""
    model: str = ""
    device: str = ""
    queued: int = 0
    running: str | None = None
    message: str = ""

    @property
    def line(self) -> str:
        """The status bar's words."""
        if self.state == "connected":
            busy = f"busy ({self.queued} queued)" if self.running else "idle"
            return f"Connected: {self.model} on {self.device}, {busy}"
        if self.state == "none":
            return "Not connected: choose a daemon in Generate > Connect…"
        if self.state == "starting":
            return f"Starting the local daemon{f': {self.message}' if self.message else ''}"
        if self.state == "connecting":
            return f"Connecting to {self.address}"
        if self.state == "disconnected":
            return f"Disconnected from {self.address}: {self.message}"
        return f"Daemon error: {self.message}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class EmbeddedDaemon:
    """``anyi2v daemon`` as a child process on a free loopback port, for as long as the studio runs (also when
    the studio is killed: the daemon is started with ``--exit-with-parent`` and the studio's pid). When a daemon
    already holds the data folder (``daemon.datalock``), :meth:`start` connects to it instead and starts none."""

    def __init__(self, data_dir: Path, model: str = "", device: str = "", low_memory: bool = False) -> None:
        self.data_dir = data_dir
        self.model = model or TOY_WORLD
        self.device = device
        self.low_memory = low_memory
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "daemon.log"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        running = running_address(self.data_dir)
        if running is not None:  # another studio's daemon holds the folder: use it (and leave it running)
            self.address = running
            return
        # a desktop bundle's executable is the `anyi2v` command itself (packaging/desktop)
        launcher = [sys.executable] if getattr(sys, "frozen", False) else [sys.executable, "-m", "anyi2v.cli"]
        command = [*launcher, "daemon", "--bind", self.address,
                   "--data-dir", str(self.data_dir), "--model", self.model,
                   "--exit-with-parent", str(os.getpid())]  # fmt: skip
        if self.device:
            command += ["--device", self.device]
        if self.low_memory:
            command.append("--low-memory")
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )

    def exit_problem(self) -> str | None:
        """Why the daemon process is gone (with the end of its log), or None while it runs."""
        if self.process is None or self.process.poll() is None:
            return None
        tail = ""
        with contextlib.suppress(OSError):
            tail = self.log_path.read_text(errors="replace").strip().splitlines()[-1]
        return f"the local daemon exited ({self.process.returncode}): {tail} (log: {self.log_path})"

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the daemon (and its worker) to stop; kill them if they do not within ``timeout``."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)


@dataclass(frozen=True)
class JobResult:
    job_id: str
    folder: Path
    manifest: dict[str, Any]


class DaemonSession:
    """Talks to one daemon from background threads. ``on_status`` gets a :class:`ConnectionStatus`
    whenever the watch thread learns something."""

    def __init__(
        self,
        address: str,
        keys: ClientKeys | None,
        on_status: Callable[[ConnectionStatus], None],
        *,
        poll_seconds: float = 2.0,
        timeout: float = 5.0,
        exit_problem: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.address, self.keys, self.on_status = address, keys, on_status
        self.poll_seconds, self.timeout = poll_seconds, timeout
        self.exit_problem = exit_problem
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.status = ConnectionStatus("connecting", address)

    def _client(self) -> DaemonClient:
        return DaemonClient(self.address, keys=self.keys, timeout=self.timeout, name="anyi2v-studio")

    def _spawn(self, target: Callable[[], None], name: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return thread

    def _report(self, status: ConnectionStatus) -> None:
        if self._stop.is_set():
            return  # a stopped session's late answers must not overwrite its successor's status
        if status != self.status:
            self.status = status
            self.on_status(status)

    def start(self) -> None:
        self._spawn(self._watch, "anyi2v-studio-watch")

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)

    def _watch(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            problem = self.exit_problem()
            if problem is not None:
                self._report(ConnectionStatus("error", self.address, message=problem))
                return
            client = None
            try:
                client = self._client()
                hello = client.hello()
                backoff = 0.5
                model, device = hello.model.name, hello.device
                while not self._stop.is_set():
                    if device == "loading":  # the worker is still loading the model: ask again
                        device = client.hello().device
                    server = client.status().server
                    self._report(
                        ConnectionStatus("connected", self.address, model, device, server.queued, server.running)
                    )
                    self._stop.wait(self.poll_seconds)
            except DaemonTimeoutError:
                message = f"no answer; retrying in {backoff:.0f} s" if backoff >= 1 else "no answer; retrying"
                state: ConnectionState = "starting" if self.status.state == "starting" else "disconnected"
                self._report(ConnectionStatus(state, self.address, message=message))
            except (DaemonError, OSError, ValueError) as error:
                self._report(ConnectionStatus("error", self.address, message=str(error)))
            finally:
                if client is not None:
                    client.close()
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 10.0)

    def run_job(
        self,
        job_id: str,
        document: dict[str, Any],
        condition: Any,
        result_dir: Path,
        on_event: Callable[[Event], None],
        on_result: Callable[[JobResult], None],
        on_error: Callable[[str], None],
    ) -> threading.Thread:
        """Submit and follow a job on a thread of its own; fetch the result into ``result_dir`` when done.
        Every event goes to ``on_event``, the final one too. It ends with ``on_result`` once a done job's
        result is fetched, with ``on_error`` when the job cannot be submitted, followed or fetched, and
        with only its final event when it failed or was cancelled (and silently when the session stops)."""

        def run() -> None:
            client = None
            try:
                client = self._client()
                client.submit(job_id, document, condition, subscribe=False)
                final = None
                for event in client.events(job_id):
                    on_event(event)
                    final = event
                    if self._stop.is_set():
                        return
                if final is not None and final.type == "done":
                    on_result(JobResult(job_id, result_dir, client.fetch_result(job_id, result_dir)))
            except DaemonError as error:
                on_error(f"the daemon refused the job: {error}")
            except DaemonTimeoutError as error:
                on_error(f"{error}; the job goes on if the daemon has it: generate again to follow it")
            except OSError as error:
                on_error(f"could not save the result in {result_dir}: {error}")
            except Exception as error:  # a job must never stay "running" because its thread died quietly
                log.exception("following job %s failed", job_id)
                on_error(f"lost track of the job ({type(error).__name__}: {error}); generate again to follow it")
            finally:
                if client is not None:
                    client.close()

        return self._spawn(run, f"anyi2v-studio-job-{job_id}")

    def models(self) -> ModelsReply:
        """The daemon's model library, asked on a client of its own. It waits for the answer: call it off the
        GUI thread. Raises ``DaemonError`` (``unknown_type`` from a daemon too old to list it) or
        ``DaemonTimeoutError``."""
        with self._client() as client:
            return client.models()

    def cancel(self, job_id: str, on_error: Callable[[str], None]) -> threading.Thread:
        def run() -> None:
            try:
                with self._client() as client:
                    client.cancel(job_id)
            except (DaemonError, DaemonTimeoutError) as error:
                on_error(f"could not cancel job {job_id}: {error}")

        return self._spawn(run, f"anyi2v-studio-cancel-{job_id}")


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes (for tests and shutdown)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()
