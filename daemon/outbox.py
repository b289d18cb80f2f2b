"""What each connection has not read yet, bounded in bytes (PROTOCOL.md, Slow connections).

The server's ROUTER has ``ZMQ_ROUTER_MANDATORY`` and a small ``SNDHWM``: a send to a peer whose pipe
is full fails at once (EAGAIN) instead of queueing thousands of messages or dropping one silently.
What ZeroMQ refuses waits here, in the peer's :class:`_Outbox`, in order; the server's loop calls
:meth:`Outboxes.flush` every turn. Past ``Limits.max_outbox_bytes`` the peer's memory events go,
oldest first: previews, then frames, then progress events that a later progress of the same job
supersedes; replies, stored events and notices never. A peer that lost events gets a ``lagged``
notice per job before that job's next message. A peer whose undroppable messages pass
``Limits.max_outbox_hard_bytes`` is forgotten (its jobs go on; it reconnects and replays by ``seq``).
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import zmq

from anyi2v.shared.protocol import EVENTS, LaggedNotice, Limits, Message, encode

log = logging.getLogger("anyi2v.daemon")

#: The events dropped past the bound, in the order they go.
DROP_ORDER = ("preview", "frame", "progress")

#: Sends one message's frames to a peer without waiting: False when the peer's pipe is full (try
#: again later); raises :class:`PeerGoneError` when there is no such peer any more.
SendFrames = Callable[[bytes, list[bytes]], bool]


class PeerGoneError(Exception):
    """ZeroMQ no longer knows the peer (it disconnected): nothing can reach it."""


def router_sender(socket: zmq.Socket[Any]) -> SendFrames:
    """:data:`SendFrames` over a ROUTER socket that has ``ZMQ_ROUTER_MANDATORY`` set."""

    def send(peer: bytes, frames: list[bytes]) -> bool:
        try:
            socket.send_multipart([peer, *frames], flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:  # the peer's pipe is at SNDHWM
            return False
        except zmq.ZMQError as error:
            if error.errno == zmq.EHOSTUNREACH:
                raise PeerGoneError(peer.hex()) from None
            log.warning("send to a client failed: %s", error)  # not retried
        return True

    return send


@dataclass(eq=False)
class _Entry:
    """One queued message: its encoded frames and what the drop rule needs to know of it."""

    frames: list[bytes]
    size: int
    kind: str
    parent: str | None
    job_id: str | None = None  # events only
    seq: int = -1
    alive: bool = True  # False once sent or dropped (it may still sit in a deque until passed)


@dataclass
class _Lag:
    """What a peer lost of one job since its last ``lagged`` notice."""

    parent: str | None
    first_seq: int
    last_seq: int
    dropped: Counter[str] = field(default_factory=Counter)

    def notice(self, job_id: str) -> list[bytes]:
        content = LaggedNotice(
            job_id=job_id, first_seq=self.first_seq, last_seq=self.last_seq,
            dropped=dict(sorted(self.dropped.items())),  # type: ignore[arg-type]
        )  # fmt: skip
        return encode(Message(type="lagged", content=content, parent=self.parent), session="server")


class _Outbox:
    """One peer's queue: messages in order, the droppable ones also by type (oldest first)."""

    def __init__(self) -> None:
        self.entries: deque[_Entry] = deque()
        self.droppable: dict[str, deque[_Entry]] = {kind: deque() for kind in DROP_ORDER}
        self.n_bytes = 0  # of the live entries; written once per change, so another thread reads a settled value
        self.lags: dict[str, _Lag] = {}
        self._dropped_in_line = 0  # dropped entries still in ``entries`` (passed over by flush, or compacted)
        self._newest_progress: dict[str, int] = {}  # job id -> seq of its newest queued progress event

    @property
    def empty(self) -> bool:
        return not self.entries and not self.lags

    def put(self, entry: _Entry, bound: int) -> None:
        """Queue ``entry``, then drop droppable entries (``entry`` too) while over ``bound`` bytes."""
        self.entries.append(entry)
        if entry.kind in self.droppable:
            self.droppable[entry.kind].append(entry)
        if entry.kind == "progress" and entry.job_id is not None:
            self._newest_progress[entry.job_id] = entry.seq
        total = self.n_bytes + entry.size
        for kind in DROP_ORDER:
            candidates, kept = self.droppable[kind], []
            while total > bound and candidates:
                old = candidates.popleft()
                if not old.alive:
                    continue
                if kind == "progress" and old.seq >= self._newest_progress.get(old.job_id or "", -1):
                    kept.append(old)  # the newest progress of its job: nothing later says where it is
                    continue
                total -= old.size
                self._drop(old)
            candidates.extendleft(reversed(kept))
        self.n_bytes = total
        if self._dropped_in_line > 64 and self._dropped_in_line > len(self.entries) // 2:  # a peer that never reads
            self.entries = deque(entry for entry in self.entries if entry.alive)
            self._dropped_in_line = 0

    def _drop(self, entry: _Entry) -> None:
        entry.alive, entry.frames = False, []
        self._dropped_in_line += 1
        assert entry.job_id is not None  # only events are droppable
        lag = self.lags.get(entry.job_id)
        if lag is None:
            lag = self.lags[entry.job_id] = _Lag(entry.parent, entry.seq, entry.seq)
        lag.first_seq, lag.last_seq = min(lag.first_seq, entry.seq), max(lag.last_seq, entry.seq)
        lag.dropped[entry.kind] += 1

    def flush(self, peer: bytes, send: SendFrames) -> int:
        """Hand ZeroMQ what it takes, in order; a job's ``lagged`` notice goes before its first queued
        message after the gap (or at the end). Returns how many messages went."""
        sent = 0
        while self.entries:
            entry = self.entries[0]
            if not entry.alive:
                self.entries.popleft()
                self._dropped_in_line -= 1
                continue
            lag = self.lags.get(entry.job_id) if entry.job_id is not None else None
            if lag is not None and entry.seq > lag.first_seq:
                if not send(peer, lag.notice(entry.job_id or "")):
                    return sent
                del self.lags[entry.job_id or ""]
                sent += 1
            if not send(peer, entry.frames):
                return sent
            self.entries.popleft()
            entry.alive, entry.frames = False, []
            self.n_bytes -= entry.size
            sent += 1
            candidates = self.droppable.get(entry.kind)
            while candidates and not candidates[0].alive:  # sent entries leave the drop queues too
                candidates.popleft()
        for job_id, lag in list(self.lags.items()):
            if not send(peer, lag.notice(job_id)):
                return sent
            del self.lags[job_id]
            sent += 1
        self._newest_progress.clear()
        return sent


class Outboxes:
    """Every peer's outbox. ``send`` and ``flush`` are called from the server's loop only;
    ``forget`` is told of a peer dropped for passing the hard bound."""

    def __init__(self, send_frames: SendFrames, limits: Limits, forget: Callable[[bytes], None]) -> None:
        self._send_frames = send_frames
        self.limits = limits
        self._forget = forget
        self._boxes: dict[bytes, _Outbox] = {}
        self._idle_flushes = 0  # flushes in a row that sent nothing (the loop waits longer between them)

    @property
    def pending(self) -> bool:
        return bool(self._boxes)

    def queued_bytes(self, peer: bytes) -> int:
        """Bytes waiting for ``peer`` in its outbox (ZeroMQ's few messages not counted)."""
        box = self._boxes.get(peer)
        return 0 if box is None else box.n_bytes

    def send(self, peer: bytes, message: Message) -> bool:
        """Send now, or queue behind what waits already. False when the message went nowhere: the peer
        is gone or was forgotten."""
        box = self._boxes.get(peer)
        if message.type == "heartbeat":  # never queued: a peer with unread messages has signs of life waiting
            if box is not None:
                return True
            try:
                self._send_frames(peer, encode(message, session="server"))
            except PeerGoneError:
                return False
            return True
        frames = encode(message, session="server")
        if box is None:
            try:
                if self._send_frames(peer, frames):
                    return True
            except PeerGoneError:
                log.debug("a message to the gone connection %s was dropped", peer.hex())
                return False
            box = self._boxes[peer] = _Outbox()
        entry = _Entry(frames, sum(len(frame) for frame in frames), message.type, message.parent)
        if message.type in EVENTS:
            entry.job_id, entry.seq = message.content.job_id, message.content.seq  # type: ignore[attr-defined]
        box.put(entry, self.limits.max_outbox_bytes)
        if box.n_bytes > self.limits.max_outbox_hard_bytes:
            log.warning(
                "connection %s does not read: %d bytes of replies and lasting events wait for it, over"
                " max_outbox_hard_bytes (%d); forgotten with its subscriptions (its jobs go on)",
                peer.hex(), box.n_bytes, self.limits.max_outbox_hard_bytes,
            )  # fmt: skip
            self.forget(peer)
            self._forget(peer)
            return False
        return True

    def flush(self) -> int:
        """Hand ZeroMQ what each outbox's peer now takes; returns how many messages went."""
        sent = 0
        for peer, box in list(self._boxes.items()):
            try:
                sent += box.flush(peer, self._send_frames)
            except PeerGoneError:
                log.debug("connection %s is gone: %d queued bytes dropped", peer.hex(), box.n_bytes)
                del self._boxes[peer]
                continue
            if box.empty:
                del self._boxes[peer]
        self._idle_flushes = 0 if sent else self._idle_flushes + 1
        return sent

    def wait_ms(self, idle_ms: int) -> int:
        """How long the loop may wait for its sockets before the next flush: ``idle_ms`` with nothing
        queued; 5 ms while messages leave, doubling while none does (ZeroMQ does not say when a peer's
        pipe has room again)."""
        if not self._boxes:
            return idle_ms
        return min(idle_ms, 5 << min(self._idle_flushes, 8))

    def forget(self, peer: bytes) -> None:
        """Drop what waits for ``peer`` (it is gone, or was dropped as silent)."""
        self._boxes.pop(peer, None)
