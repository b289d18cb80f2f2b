"""`anyi2v daemon`: the ZeroMQ job server (PROTOCOL.md), its socket loop.

One thread runs one loop over a ROUTER socket, the worker's pipe and timers: it drains the socket
(edge-triggered), decodes each message, notes that its sender is alive and hands requests to
``handlers`` (one function per request type; a handler's error becomes an error reply and never ends
the loop); events reach subscribers through ``fanout``. The loop also owns CURVE, heartbeats, the
worker's messages (``worker_inbox``), job transitions, recovery after a restart and the retention sweep. The pipeline
runs in the worker process (``supervisor``), so the loop is never busy with GPU work and control
requests are answered at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import zmq

from anyi2v.daemon import DEFAULT_ADDRESS
from anyi2v.shared.protocol import (
    REQUESTS,
    Empty,
    Limits,
    Message,
    ProtocolError,
    decode,
)

from .database import StoreError
from .datalock import DataFolderInUseError, DataLock
from .endpoints import EndpointError, parse_endpoint
from .fanout import Fanout
from .fdlimit import FdWatch, raise_fd_limit
from .handlers import HandlerContext, error_message, handle
from .keys import AuthorizedKey, KeyFileError, check_secret_key, load_authorized_keys
from .model_index import ModelIndex, default_combination
from .outbox import Outboxes, router_sender
from .ownership import LOCAL, Caller, Keyring
from .parent_watch import process_exists, watch_parent
from .store import MAX_ATTEMPTS, Store, folder_bytes
from .supervisor import Supervisor
from .worker import WorkerConfig
from .worker_inbox import JobRecorder, WorkerInbox

log = logging.getLogger("anyi2v.daemon")
HEARTBEAT = "heartbeat"
_ACCEPTED = frozenset({*REQUESTS, HEARTBEAT})


class ConfigError(ValueError):
    """The daemon cannot start as configured (bind address, keys, data folder); says what to change."""


@dataclass
class ServerConfig:
    data_dir: Path
    bind: str = DEFAULT_ADDRESS
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    secret_key: Path | None = None  # the server's ZeroMQ certificate (NAME.key_secret)
    authorized_keys: Path | None = None  # a folder of client public keys (NAME.key)
    heartbeat_seconds: float = 2.0
    hang_timeout: float = 300.0
    load_timeout: float = 900.0
    retention_seconds: float = 7 * 86400.0
    disk_cap_bytes: int = 20 * 2**30
    purge_interval: float = 60.0  # seconds between retention sweeps (one also follows each finished job)
    limits: Limits = field(default_factory=Limits)
    handshake_seconds: float = 10.0  # a peer that has not finished the ZeroMQ/CURVE handshake by then is dropped
    exit_with_parent: int | None = None  # run_server stops when this process is gone (parent_watch)
    keys_poll_seconds: float = 2.0  # how often the authorized-keys folder is checked for changes (0: only on SIGHUP)


class Server:
    """Construct, then :meth:`serve` until :meth:`stop` (from any thread) or a signal."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.limits = config.limits
        secure = config.secret_key is not None or config.authorized_keys is not None
        try:
            endpoint = parse_endpoint(config.bind)
        except EndpointError as error:
            raise ConfigError(str(error)) from None
        if not endpoint.loopback and not secure:
            raise ConfigError(
                f"{config.bind} is not a loopback address: binding it needs CURVE keys"
                " (--server-key and --authorized-keys; see `anyi2v keys`)"
            )
        keys = None
        authorized: dict[bytes, AuthorizedKey] = {}
        if secure:
            if config.secret_key is None or config.authorized_keys is None:
                raise ConfigError("CURVE needs both --server-key and --authorized-keys")
            if not config.authorized_keys.is_dir():
                raise ConfigError(f"{config.authorized_keys}: no such folder of authorized client keys")
            try:
                keys = check_secret_key(config.secret_key)
                authorized = load_authorized_keys(config.authorized_keys)
            except KeyFileError as error:
                raise ConfigError(str(error)) from None
        try:
            config.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"{config.data_dir}: cannot make the data folder: {error}") from None
        self.lock = DataLock(config.data_dir)  # one daemon per data folder, for this one's life
        try:
            self.lock.acquire()
        except (DataFolderInUseError, OSError) as error:
            raise ConfigError(str(error)) from None
        try:
            self.store = Store(config.data_dir)
        except StoreError as error:  # a damaged database, a file where a folder belongs: one line
            self.lock.release()
            raise ConfigError(str(error)) from None
        except BaseException:
            self.lock.release()
            raise
        self.context = zmq.Context()
        self.context.set(zmq.MAX_SOCKETS, 64)  # ZeroMQ sockets (not peers): the ROUTER, CURVE's and spares
        self._auth: Any = None
        self.keyring: Keyring | None = None  # None without CURVE: every request is LOCAL's
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.MAXMSGSIZE, self.limits.max_frame_bytes)
        self.socket.setsockopt(zmq.SNDHWM, 8)  # ZeroMQ holds a few messages per peer; the rest wait in outbox.py
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a full pipe says EAGAIN instead of dropping silently
        self.socket.setsockopt(zmq.RCVHWM, 10_000)
        self.socket.setsockopt(zmq.IPV6, int(endpoint.ipv6))
        self.socket.setsockopt(zmq.HANDSHAKE_IVL, int(config.handshake_seconds * 1000))
        if keys is not None:
            from zmq.auth.thread import ThreadAuthenticator

            self._auth = ThreadAuthenticator(self.context, log=logging.getLogger("anyi2v.daemon.auth"))
            self._auth.start()
            self._auth.allow_any = False
            self.keyring = Keyring(  # the keys in force, re-read on change and SIGHUP (ownership.py)
                config.authorized_keys or Path(), authorized, self._install_keys,
                self._forget_peer, config.keys_poll_seconds,
            )  # fmt: skip
            self.socket.curve_publickey, self.socket.curve_secretkey = keys
            self.socket.curve_server = True
        try:
            self.socket.bind(config.bind)
        except zmq.ZMQError as error:
            self.close()
            raise ConfigError(f"cannot bind {config.bind}: {error}") from None
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.lock.publish(self.address)
        self.supervisor = Supervisor(config.worker, config.hang_timeout, config.load_timeout)
        self.models = ModelIndex(config.worker.models_dir)  # the model library, rescanned by a thread
        self._stop = threading.Event()
        self.fanout = Fanout(self.limits, self._send)
        self.outboxes = Outboxes(router_sender(self.socket), self.limits, forget=self.fanout.forget_peer)
        self._handler_context = HandlerContext(
            store=self.store,
            supervisor=self.supervisor,
            fanout=self.fanout,
            limits=self.limits,
            model=config.worker.model,
            heartbeat_seconds=config.heartbeat_seconds,
            disk_cap_bytes=config.disk_cap_bytes,
            started=time.time(),
            send=self._send,
            purge=self._purge,
            models=self.models,
            default_models=default_combination(config.worker),
        )
        self.inbox = WorkerInbox(  # the worker's messages, each on its own (worker_inbox.py)
            self.store, self.fanout, self.supervisor, JobRecorder(self._finish, self._fail, self._lost, self._purge)
        )
        self.fd_watch = FdWatch()  # logs when open descriptors near the limit

    # Life ---------------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    @property
    def load_error(self) -> str | None:
        """Why the worker could not load the model (the daemon then stops), or None."""
        return self.inbox.load_error

    def _install_keys(self, certs: dict[bytes, bool]) -> None:
        self._auth.certs["*"] = certs  # read by keys.load_authorized_keys, not by zmq.auth

    def _forget_peer(self, peer: bytes) -> None:  # a connection whose key was revoked: nothing more is sent to it
        self.fanout.forget_peer(peer)
        self.outboxes.forget(peer)

    def reload_keys(self) -> None:
        """Read the authorized-keys folder again at the loop's next turn (SIGHUP; safe from a signal handler)."""
        if self.keyring is not None:
            self.keyring.request_reload()

    def close(self) -> None:
        self.socket.close(0)
        if self._auth is not None:
            self._auth.stop()
        self.context.term()
        self.store.close()
        self.lock.release()

    def serve(self) -> None:
        """Recover jobs left running, start the worker and answer until stopped. Raises
        :class:`ConfigError` when the model cannot be loaded."""
        self._recover()
        self.models.start()
        self.supervisor.start()
        log.info("listening on %s, data in %s", self.address, self.config.data_dir)
        last_purge = last_fd_check = 0.0
        try:
            while not self._stop.is_set():
                poller = zmq.Poller()
                poller.register(self.socket, zmq.POLLIN)
                for fd in self.supervisor.fds():
                    poller.register(fd, zmq.POLLIN)
                wait_ms = self.outboxes.wait_ms(min(200, int(self.config.heartbeat_seconds * 500)))
                ready = dict(poller.poll(timeout=wait_ms))
                try:
                    if self.socket in ready:
                        self._drain()
                    self.inbox.take(self.supervisor.receive())
                    now = time.monotonic()
                    self.inbox.retry(now)  # job ends that could not be recorded yet
                    overdue = self.supervisor.overdue(now)
                    if overdue is not None:
                        self.inbox.overdue(overdue)
                    self._heartbeats(now)
                    if self.keyring is not None:
                        self.keyring.tick(now, self.fanout.peers)
                    if now - last_fd_check > 1.0:
                        self.fd_watch.check()
                        last_fd_check = now
                    if time.time() - last_purge > self.config.purge_interval:
                        self._purge()
                        last_purge = time.time()
                    self._dispatch()
                    self.outboxes.flush()  # what slow peers' pipes now take (outbox.py)
                except Exception:  # a bug in job handling is logged; the server keeps answering
                    log.exception("internal error in the server loop")
                if self.load_error is not None:
                    raise ConfigError(f"the model could not be loaded: {self.load_error}")
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        job_id = self.supervisor.job_id
        self.models.stop()
        self.supervisor.stop()
        if job_id is not None:  # not the job's fault: back to the queue without spending an attempt
            row = self.store.get(job_id)
            if row is not None and row["state"] == "running":
                self.store.discard_staging(job_id)
                position = self.store.position(job_id, any_state=True)
                self.store.transition(
                    job_id, "queued", [("queued", {"position": position, "attempt": row["attempts"]})],
                    attempts=row["attempts"] - 1,
                )  # fmt: skip

    def _recover(self) -> None:
        """Jobs the store says are running were cut off: finish, requeue or fail each."""
        for job_id in self.store.running():
            result = self.store.result_path(job_id)
            staging = self.store.staging_path(job_id)
            if not (result / "manifest.json").exists() and (staging / "manifest.json").exists():
                self.store.promote(job_id)
            if (result / "manifest.json").exists():
                self._finish(job_id, hashlib.sha256((result / "manifest.json").read_bytes()).hexdigest())
                log.info("job %s had finished before the restart: marked done", job_id)
            else:
                self._lost(job_id, "the daemon stopped while it ran")
        for leftover in (self.config.data_dir / "staging").iterdir():
            row = self.store.get(leftover.name)
            if row is None or row["state"] != "running":
                self.store.discard_staging(leftover.name)

    # Sending ------------------------------------------------------------------------------------

    def _send(self, peer: bytes, message: Message) -> None:
        if self.outboxes.send(peer, message):  # sent, or queued for a peer that reads slowly (outbox.py)
            self.fanout.sent(peer, time.monotonic())

    # Receiving ----------------------------------------------------------------------------------

    def _drain(self) -> None:
        for _ in range(1000):  # edge-triggered: read all there is (bounded, so timers still run)
            try:
                frames = self.socket.recv_multipart(flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            if len(frames) < 2:
                continue
            peer, caller = frames[0].bytes, LOCAL
            if self.keyring is not None:  # CURVE: the key in force that sent it (ZAP checked it only at connect)
                admitted = self.keyring.admit(peer, str(frames[1].get("User-Id")))
                if admitted is None:
                    continue  # revoked since its connection was made: not served, no answer
                caller = admitted
            self._handle(peer, [frame.bytes for frame in frames[1:]], caller)

    def _handle(self, peer: bytes, frames: list[bytes], caller: Caller = LOCAL) -> None:
        try:
            message = decode(frames, self.limits, accept=_ACCEPTED)
        except ProtocolError as error:
            log.debug("refused a message: %s", error)
            self._send(peer, error_message(error.message_id, error))
            return
        self.fanout.heard(peer, message.session, time.monotonic())
        if message.type != HEARTBEAT:  # a heartbeat is only a sign of life
            handle(replace(self._handler_context, caller=caller), peer, message)

    # Jobs and the worker ------------------------------------------------------------------------

    def _dispatch(self) -> None:
        if not self.supervisor.idle:
            return
        job_id = self.store.next_queued()
        if job_id is None:
            return
        row = self.store.get(job_id)
        assert row is not None
        attempt = row["attempts"] + 1
        self.store.discard_staging(job_id)
        events = self.store.transition(job_id, "running", [("started", {"attempt": attempt})], attempts=attempt)
        request = json.loads(row["request"])
        job = {
            **request,
            "job_id": job_id,
            "attempt": attempt,
            "input": str(self.store.input_path(job_id)),
            "staging": str(self.store.staging_path(job_id)),
        }
        self.supervisor.run(job)
        self.fanout.emit_all(job_id, events)
        for queued in self.store.queued_ids():  # everyone behind moved up one (sent, not stored)
            if self.fanout.has_subscribers(queued):
                queued_row = self.store.get(queued)
                assert queued_row is not None
                content = {
                    "job_id": queued, "seq": self.store.take_seq(queued), "position": self.store.position(queued),
                    "attempt": queued_row["attempts"] + 1,
                }  # fmt: skip
                self.fanout.emit(queued, "queued", content)

    def _finish(self, job_id: str, manifest_sha: str) -> None:
        size = folder_bytes(self.store.result_path(job_id))
        manifest = json.loads((self.store.result_path(job_id) / "manifest.json").read_bytes())
        events = self.store.transition(
            job_id, "done", [("done", {"n_frames": manifest["n_frames"], "manifest_sha256": manifest_sha})],
            result_bytes=size, reason=None, message=None,
        )  # fmt: skip
        self.fanout.drop_memory(job_id)
        self.fanout.emit_all(job_id, events)

    def _fail(self, job_id: str, reason: str, text: str, hints: list[str]) -> None:
        self.store.discard_staging(job_id)
        events = self.store.transition(
            job_id,
            "failed",
            [("failed", {"reason": reason, "message": text, "hints": hints})],
            reason=reason,
            message=text,
        )
        self.fanout.drop_memory(job_id)
        self.fanout.emit_all(job_id, events)
        log.warning("job %s failed (%s): %s", job_id, reason, text)

    def _lost(self, job_id: str, why: str, reason: str = "worker_crashed") -> None:
        """The job's run ended without a result through no fault of its own: requeue it at its old
        place, or fail it on its last attempt."""
        row = self.store.get(job_id)
        if row is None or row["state"] != "running":
            return
        self.store.discard_staging(job_id)
        self.fanout.drop_memory(job_id)
        if row["attempts"] >= MAX_ATTEMPTS:
            self._fail(
                job_id, "too_many_attempts",
                f"{why}; the job was tried {row['attempts']} times ({reason.replace('_', ' ')}) and is not tried again",
                ["look at the daemon's log for the cause", "submit it again with a new job id to retry"],
            )  # fmt: skip
            return
        position = self.store.position(job_id, any_state=True)
        events = self.store.transition(
            job_id, "queued", [("queued", {"position": position, "attempt": row["attempts"] + 1})]
        )
        self.fanout.emit_all(job_id, events)
        log.warning("job %s: %s; queued again (attempt %d next)", job_id, why, row["attempts"] + 1)

    # Timers -------------------------------------------------------------------------------------

    def _heartbeats(self, now: float) -> None:
        interval = self.config.heartbeat_seconds
        for peer in self.fanout.drop_silent(now, 3 * interval):
            self.outboxes.forget(peer)
        for peer in self.fanout.quiet(now, interval):
            self._send(peer, Message(type=HEARTBEAT, content=Empty()))

    def _purge(self) -> None:
        for job_id in self.store.purge(self.config.retention_seconds, self.config.disk_cap_bytes):
            self.fanout.forget_job(job_id)
            log.info("job %s purged by the retention rule", job_id)


def run_server(config: ServerConfig, on_ready: Callable[[Server], None] | None = None) -> None:
    """Build and serve until SIGINT or SIGTERM, or until the process ``config.exit_with_parent`` is gone
    (the CLI's entry point)."""
    import signal

    parent = config.exit_with_parent
    if parent is not None and not process_exists(parent):
        raise ConfigError(f"--exit-with-parent {parent}: no such process")
    raise_fd_limit()  # idle client connections each hold a descriptor; the hard limit gives them room
    server = Server(config)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: server.stop())
    if hasattr(signal, "SIGHUP"):  # POSIX: re-read the authorized keys
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, lambda *_: server.reload_keys())
    watch = watch_parent(parent, server.stop) if parent is not None else None
    try:
        if on_ready is not None:
            on_ready(server)
        server.serve()
    finally:
        if watch is not None:
            watch.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.close()
