"""The Qt-free client of `anyi2v daemon` (PROTOCOL.md), used by the CLI and the desktop.

Imports only ``zmq`` and ``anyi2v.shared``: no torch, so a laptop without the pipeline can use it.
One :class:`DaemonClient` owns one DEALER socket and must be used from one thread. Requests time
out with :class:`DaemonTimeoutError`; after a timeout the client reconnects with back-off and says hello
again. :meth:`DaemonClient.events` follows a job to its end across reconnects, resuming after the
last sequence number it saw; :meth:`DaemonClient.fetch_result` resumes interrupted downloads and
checks every part's checksum. The daemon is not trusted with sizes or names: manifests and fetch
replies go through ``manifest_checks`` before a byte is kept (:class:`ResultRefusedError`), and every
file is written inside the folder asked for.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from anyi2v.daemon import DEFAULT_ADDRESS
from anyi2v.shared.durable import write_file
from anyi2v.shared.errors import Problem, listed_problems
from anyi2v.shared.protocol import (
    FINAL_STATES,
    REPLIES,
    ConditionSpec,
    Content,
    Empty,
    ErrorReply,
    FetchReply,
    FetchRequest,
    HelloReply,
    HelloRequest,
    JobRecord,
    JobRequest,
    JobStateReply,
    LaggedNotice,
    Limits,
    ListReply,
    ListRequest,
    Message,
    ModelsReply,
    ModelsRequest,
    ProtocolError,
    StatusReply,
    StatusRequest,
    SubmitReply,
    SubmitRequest,
    SubscribeReply,
    SubscribeRequest,
    decode,
    encode,
    new_id,
)

from .manifest_checks import UntrustedResultError, check_chunk, check_manifest, inside, part_ceiling, planned_parts

log = logging.getLogger("anyi2v.client")


class DaemonError(Exception):
    """The daemon answered with an error: ``code`` and ``problems`` as in PROTOCOL.md."""

    def __init__(self, reply: ErrorReply) -> None:
        problems = listed_problems([Problem(p.where, p.why) for p in reply.problems])  # bounded, whatever came
        lines = [f"{reply.code}: {reply.message}", *(f"  {p}" for p in problems)]
        super().__init__("\n".join(lines))
        self.code = reply.code
        self.problems = reply.problems


class ResultRefusedError(DaemonError):
    """What the daemon said about a result cannot be right (a size of 2^50, a format that is a path, a
    checksum that differs): the client stopped before keeping or writing anything on its word."""

    def __init__(self, job_id: str, why: str) -> None:
        super().__init__(ErrorReply(code="internal", message=f"the result of job {job_id} was refused: {why}"))
        self.args = (f"the result of job {job_id} was refused: {why}",)


class DaemonTimeoutError(TimeoutError):
    """No answer in time: the daemon is down, unreachable, or (with CURVE) refused our keys silently."""


@dataclass(frozen=True)
class ClientKeys:
    """CURVE keys: the server's public key, and this client's public and secret keys (z85 bytes)."""

    server_public: bytes
    public: bytes
    secret: bytes

    @classmethod
    def from_files(cls, server_key: Path, client_key: Path) -> ClientKeys:
        import zmq.auth

        server_public, _ = zmq.auth.load_certificate(server_key)
        public, secret = zmq.auth.load_certificate(client_key)
        if secret is None:
            raise ValueError(f"{client_key}: holds no secret key (give the client's .key_secret file)")
        return cls(server_public, public, secret)


@dataclass(frozen=True)
class Event:
    """A job event: its type, content and buffers (a frame's or a preview's rgb8 bytes); or a
    ``lagged`` notice (PROTOCOL.md, Slow connections), which has no ``seq``."""

    type: str
    content: Any
    buffers: tuple[bytes, ...] = ()

    @property
    def seq(self) -> int:
        return int(self.content.seq)


def _skipped(notice: LaggedNotice) -> str:
    """'40 preview and 3 progress events (seq 12 to 80)'."""
    counts = " and ".join(f"{count} {kind}" for kind, count in notice.dropped.items())
    return f"{counts} events (seq {notice.first_seq} to {notice.last_seq})"


class DaemonClient:
    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        keys: ClientKeys | None = None,
        timeout: float = 10.0,
        name: str = "anyi2v-client",
    ) -> None:
        self.address = address
        self.keys = keys
        self.timeout = timeout
        self.name = name
        self.session = new_id()
        self.limits = Limits()
        self.server: HelloReply | None = None
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self._socket: zmq.Socket[bytes] | None = None
        self._pending: deque[Message] = deque()  # events that came while waiting for a reply
        self._last_sent = 0.0
        self._last_heard = time.monotonic()
        self._connect()

    # Connection ---------------------------------------------------------------------------------

    def _connect(self) -> None:
        socket = self._context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.RECONNECT_IVL, 100)
        socket.setsockopt(zmq.RECONNECT_IVL_MAX, 5000)
        socket.setsockopt(zmq.SNDTIMEO, int(self.timeout * 1000))  # no connection: a send would block forever
        # A frame over the protocol's largest is never taken in: ZeroMQ drops the connection instead of
        # reading gigabytes a lying or broken daemon announces (the request then times out).
        socket.setsockopt(zmq.MAXMSGSIZE, self.limits.max_frame_bytes)
        if self.keys is not None:
            socket.curve_serverkey = self.keys.server_public
            socket.curve_publickey = self.keys.public
            socket.curve_secretkey = self.keys.secret
        socket.connect(self.address)
        self._socket = socket
        self._pending.clear()

    def reconnect(self, attempts: int = 8) -> HelloReply:
        """A new socket, then hello, retried with back-off (0.1 s doubling to 5 s, with jitter)."""
        delay = 0.1
        for attempt in range(attempts):
            self.close()
            self._connect()
            try:
                return self.hello()
            except DaemonTimeoutError:
                if attempt == attempts - 1:
                    raise
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close(0)
            self._socket = None

    def __enter__(self) -> DaemonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Messages -----------------------------------------------------------------------------------

    def _send(self, kind: str, content: Content, buffers: tuple[bytes, ...] = (), flags: int = 0) -> Message:
        assert self._socket is not None, "the client is closed"
        message = Message(type=kind, content=content, session=self.session, buffers=buffers)
        try:
            self._socket.send_multipart(encode(message, session=self.session), flags=flags)
        except zmq.Again:
            raise DaemonTimeoutError(
                f"could not send {kind} to {self.address} within {self.timeout:.0f} s: no connection"
                + (" (with CURVE, a wrong key is refused silently: check the keys)" if self.keys else "")
            ) from None
        self._last_sent = time.monotonic()
        return message

    def _receive(self, timeout: float) -> Message | None:
        assert self._socket is not None, "the client is closed"
        if not self._socket.poll(int(max(timeout, 0) * 1000)):
            return None
        frames = self._socket.recv_multipart()
        self._last_heard = time.monotonic()
        try:
            return decode(frames, self.limits)
        except ProtocolError as error:
            raise DaemonError(error.reply()) from None

    def request(
        self, kind: str, content: Content, buffers: tuple[bytes, ...] = (), timeout: float | None = None
    ) -> Any:
        """Send a request and wait for its reply (events arriving meanwhile are kept for :meth:`events`).
        Raises :class:`DaemonError` for an error reply and :class:`DaemonTimeoutError` when none comes."""
        sent = self._send(kind, content, buffers)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            message = self._receive(deadline - time.monotonic())
            if message is None:
                raise DaemonTimeoutError(
                    f"no reply from {self.address} within {self.timeout:.0f} s to {kind}"
                    + (" (with CURVE, a wrong key is refused silently: check the keys)" if self.keys else "")
                )
            if message.parent == sent.id and message.type in REPLIES:
                if isinstance(message.content, ErrorReply):
                    raise DaemonError(message.content)
                if message.type == "fetch_reply":
                    return message
                return message.content
            if message.type != "heartbeat":
                self._pending.append(message)

    # Requests -----------------------------------------------------------------------------------

    def hello(self) -> HelloReply:
        reply: HelloReply = self.request("hello_request", HelloRequest(client=self.name))
        self.server = reply
        self.limits = reply.limits
        return reply

    def submit(
        self,
        job_id: str,
        shot: dict[str, Any],
        condition: Any | None,
        *,
        control: bool = True,
        video_format: str = "mp4",
        subscribe: bool = True,
    ) -> SubmitReply:
        """Submit a shot (document data) and its condition image ((h, w, 3) uint8 array, or None).
        Submitting the same job again is harmless: the reply says ``created=False``."""
        spec = None
        buffers: tuple[bytes, ...] = ()
        if condition is not None:
            height, width = condition.shape[:2]
            spec = ConditionSpec(width=int(width), height=int(height))
            buffers = (bytes(condition.tobytes()),)
        content = SubmitRequest(
            job_id=job_id, shot=shot, condition=spec, control=control, video_format=video_format,  # type: ignore[arg-type]
            subscribe=subscribe,
        )  # fmt: skip
        reply: SubmitReply = self.request("submit_request", content, buffers)
        return reply

    def cancel(self, job_id: str) -> JobStateReply:
        reply: JobStateReply = self.request("cancel_request", JobRequest(job_id=job_id))
        return reply

    def status(self, job_id: str | None = None) -> StatusReply:
        reply: StatusReply = self.request("status_request", StatusRequest(job_id=job_id))
        return reply

    def job(self, job_id: str) -> JobRecord:
        record = self.status(job_id).job
        assert record is not None
        return record

    def list(self, states: list[str] | None = None, limit: int = 100) -> list[JobRecord]:
        reply: ListReply = self.request("list_request", ListRequest(states=states or [], limit=limit))  # type: ignore[arg-type]
        return reply.jobs

    def delete(self, job_id: str) -> None:
        self.request("delete_request", JobRequest(job_id=job_id))

    def models(self) -> ModelsReply:
        """The daemon's model library, its default combination and what its worker has loaded."""
        reply: ModelsReply = self.request("models_request", ModelsRequest())
        return reply

    def subscribe(self, job_id: str, after_seq: int = -1) -> SubscribeReply:
        reply: SubscribeReply = self.request("subscribe_request", SubscribeRequest(job_id=job_id, after_seq=after_seq))
        return reply

    def heartbeat(self) -> None:
        """Tell the daemon we are here; never waits (with no connection there is no one to tell)."""
        with contextlib.suppress(DaemonTimeoutError):
            self._send("heartbeat", Empty(), flags=zmq.NOBLOCK)

    # Events -------------------------------------------------------------------------------------

    def events(self, job_id: str, after_seq: int = -1, *, subscribe: bool = True) -> Iterator[Event]:
        """The job's events, in order and each once, until its final event. Subscribes (unless the
        submit did) and, when the daemon goes quiet for three heartbeats, reconnects and resumes
        after the last event seen. A ``lagged`` notice (events the daemon skipped because we read too
        slowly; the result is whole) comes as an :class:`Event` too, logged."""
        last = after_seq
        if self.server is None:
            self.hello()  # learns the heartbeat interval
        assert self.server is not None
        interval = self.server.heartbeat_seconds
        if subscribe:
            self.subscribe(job_id, last)
        while True:
            message = self._pending.popleft() if self._pending else self._receive(interval / 2)
            now = time.monotonic()
            if now - self._last_sent > interval:  # also while events pour in: the daemon hears only what we send
                self.heartbeat()
            if message is None:
                if now - self._last_heard > 3 * interval:
                    log.warning("no word from %s for %.1f s: reconnecting", self.address, now - self._last_heard)
                    self.reconnect()
                    self.subscribe(job_id, last)
                continue
            content = message.content
            if isinstance(content, LaggedNotice) and content.job_id == job_id:
                log.info("%s: we read too slowly; the daemon skipped %s", job_id, _skipped(content))
                yield Event(message.type, content)  # no seq of its own: the stream goes on after it
                continue
            if getattr(content, "job_id", None) != job_id or not hasattr(content, "seq"):
                continue
            if content.seq <= last:
                continue  # a replayed event already seen
            last = content.seq
            yield Event(message.type, content, message.buffers)
            if message.type in FINAL_STATES:
                return

    def follow(self, job_id: str, on_event: Callable[[Event], None], after_seq: int = -1) -> Event:
        """:meth:`events` with a callback: calls ``on_event`` for each event and returns the final one."""
        final = None
        for event in self.events(job_id, after_seq):
            on_event(event)
            final = event
        assert final is not None
        return final

    # Results ------------------------------------------------------------------------------------

    def fetch(self, job_id: str, part: str, index: int = 0, offset: int = 0) -> tuple[FetchReply, bytes]:
        message: Message = self.request(
            "fetch_request",
            FetchRequest(job_id=job_id, part=part, index=index, offset=offset),  # type: ignore[arg-type]
        )
        assert isinstance(message.content, FetchReply)
        return message.content, message.buffers[0]

    def manifest(self, job_id: str) -> dict[str, Any]:
        """The result's manifest (parts with sizes and checksums, timings), read into memory and checked
        (:class:`ResultRefusedError` for one that cannot be right)."""
        return self._manifest(job_id)[1]

    def _manifest(self, job_id: str) -> tuple[bytes, dict[str, Any]]:
        data = b""
        limit, sha = part_ceiling("manifest", self.limits), None
        while True:
            reply, chunk = self.fetch(job_id, "manifest", offset=len(data))
            with _refusing(job_id):
                check_chunk(reply, chunk, (job_id, "manifest", 0, len(data)), limit, sha, self.limits)
            limit, sha = reply.size, reply.sha256  # the first reply's word holds for the rest
            data += chunk
            if len(data) >= reply.size:
                break
        if hashlib.sha256(data).hexdigest() != sha:
            raise DaemonError(ErrorReply(code="internal", message="manifest: checksum mismatch after download"))
        with _refusing(job_id):
            return data, check_manifest(data, job_id, self.limits)

    def fetch_part(
        self, job_id: str, part: str, path: Path, index: int = 0, *, size: int | None = None, sha256: str | None = None
    ) -> Path:
        """Download one part to ``path``, resuming from a ``path.partial`` left by an earlier try;
        the checksum is checked before the file takes its name. ``size`` and ``sha256`` are the
        manifest's for this part; without them, the first reply's are held to the most the part can
        be. A reply that breaks them raises :class:`ResultRefusedError` before its bytes are written."""
        partial = path.with_name(path.name + ".partial")
        limit = size if size is not None else part_ceiling(part, self.limits)
        offset = partial.stat().st_size if partial.exists() else 0
        with partial.open("ab") as handle:
            if offset > limit:  # a stale partial from another result
                handle.truncate(0)
                offset = 0
            while True:
                reply, chunk = self.fetch(job_id, part, index, offset)
                if offset > reply.size:  # a stale partial from another result
                    handle.truncate(0)
                    offset = 0
                    continue
                with _refusing(job_id):
                    check_chunk(reply, chunk, (job_id, part, index, offset), limit, sha256, self.limits)
                limit, sha256 = reply.size, reply.sha256  # the first reply's word holds for the rest
                handle.write(chunk)
                offset += len(chunk)
                if offset >= reply.size:
                    break
        if _file_sha256(partial) != sha256:
            partial.unlink()
            raise DaemonError(
                ErrorReply(code="internal", message=f"{part} {index}: checksum mismatch after download; fetch again")
            )
        partial.replace(path)
        return path

    def fetch_result(self, job_id: str, folder: Path, frames: bool = True) -> dict[str, Any]:
        """The job's video, shot, (optionally) PNG frames and manifest into ``folder``, the manifest last
        (so a folder with a manifest is whole); returns the manifest. Parts already there with the
        right checksum are not fetched again. Nothing is written outside ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        data, manifest = self._manifest(job_id)
        planned = planned_parts(manifest, frames)
        if frames:
            (folder / "frames").mkdir(exist_ok=True)
        with _refusing(job_id):
            paths = [inside(folder, part.name) for part in planned]
            manifest_path = inside(folder, "manifest.json")
        for part, path in zip(planned, paths, strict=True):
            if path.is_file() and path.stat().st_size == part.size and _file_sha256(path) == part.sha256:
                continue
            self.fetch_part(job_id, part.part, path, part.index, size=part.size, sha256=part.sha256)
        write_file(manifest_path, data)
        return manifest


@contextlib.contextmanager
def _refusing(job_id: str) -> Iterator[None]:
    """:class:`~.manifest_checks.UntrustedResultError` as the client's :class:`ResultRefusedError`."""
    try:
        yield
    except UntrustedResultError as error:
        raise ResultRefusedError(job_id, str(error)) from None


def _file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
