"""Events to the connections that follow a job (PROTOCOL.md, Events and Heartbeats).

:class:`Fanout` knows every connection the server has heard from, the jobs each one subscribed to,
and the recent memory events of each job (progress, previews, frames: the events that are not
stored), so a late subscriber gets what it missed by ``seq``. A connection not heard from for three
heartbeat intervals loses its subscriptions; its jobs go on. It sends through the function it is
given: the server owns the socket, and each connection's outbox (``outbox``) bounds what waits for it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from anyi2v.shared.protocol import EVENTS, STORED_EVENTS, Limits, Message

#: The events kept in memory only (the rest are stored with the state change they report).
MEMORY_EVENTS = frozenset(EVENTS) - STORED_EVENTS

#: An event as kept for replay: ``(seq, type, content, buffers)``.
KeptEvent = tuple[int, str, dict[str, Any], tuple[bytes, ...]]


@dataclass
class Peer:
    """A connection (a ROUTER identity): its session, when it was last heard and last sent to, and
    the jobs it ever subscribed to."""

    session: str
    last_seen: float
    last_sent: float = 0.0
    jobs: set[str] = field(default_factory=set)


class Fanout:
    """Subscriptions, replay by ``seq`` and the liveness of connections."""

    def __init__(self, limits: Limits, send: Callable[[bytes, Message], None]) -> None:
        self.limits = limits
        self._send = send
        self.peers: dict[bytes, Peer] = {}
        self._subscribers: dict[str, dict[bytes, str]] = {}  # job id -> peer -> the request that subscribed
        self._memory: dict[str, deque[KeptEvent]] = {}
        self._memory_bytes: dict[str, int] = {}

    # Connections --------------------------------------------------------------------------------

    def heard(self, peer: bytes, session: str, now: float) -> None:
        """A message came from ``peer``: any message is a sign of life."""
        known = self.peers.get(peer)
        if known is None:
            known = self.peers[peer] = Peer(session, now)
        known.last_seen = now

    def sent(self, peer: bytes, now: float) -> None:
        """A message went to ``peer``."""
        known = self.peers.get(peer)
        if known is not None:
            known.last_sent = now

    def drop_silent(self, now: float, timeout: float) -> list[bytes]:
        """Forget connections not heard from for more than ``timeout`` seconds, and their subscriptions;
        returns them."""
        silent = [peer for peer, known in self.peers.items() if now - known.last_seen > timeout]
        for peer in silent:
            self.forget_peer(peer)
        return silent

    def forget_peer(self, peer: bytes) -> None:
        """Forget a connection and its subscriptions (its jobs go on; it may subscribe again)."""
        known = self.peers.pop(peer, None)
        for job_id in known.jobs if known is not None else ():
            self._subscribers.get(job_id, {}).pop(peer, None)

    def quiet(self, now: float, interval: float) -> list[bytes]:
        """The subscribed connections sent nothing for more than ``interval`` seconds (they are owed a
        heartbeat)."""
        return [peer for peer, known in self.peers.items() if known.jobs and now - known.last_sent > interval]

    # Subscriptions ------------------------------------------------------------------------------

    def subscribe(self, peer: bytes, job_id: str, parent: str) -> None:
        """Send ``job_id``'s events to ``peer`` from now on, as answers to the request ``parent``."""
        self._subscribers.setdefault(job_id, {})[peer] = parent
        known = self.peers.get(peer)
        if known is not None:
            known.jobs.add(job_id)

    def unsubscribe(self, peer: bytes, job_id: str) -> None:
        self._subscribers.get(job_id, {}).pop(peer, None)

    def has_subscribers(self, job_id: str) -> bool:
        return bool(self._subscribers.get(job_id))

    # Events -------------------------------------------------------------------------------------

    def emit(self, job_id: str, kind: str, content: dict[str, Any], buffers: tuple[bytes, ...] = ()) -> None:
        """Send an event to the job's subscribers; keep memory events for late subscribers."""
        if kind in MEMORY_EVENTS:
            self._keep(job_id, (content["seq"], kind, content, buffers))
        subscribers = self._subscribers.get(job_id)
        if not subscribers:
            return
        event = EVENTS[kind].model_validate(content)
        for peer, parent in list(subscribers.items()):
            self._send(peer, Message(type=kind, content=event, parent=parent, buffers=buffers))

    def emit_all(self, job_id: str, events: Iterable[tuple[str, dict[str, Any]]]) -> None:
        for kind, content in events:
            self.emit(job_id, kind, content)

    def replay(
        self, peer: bytes, job_id: str, parent: str, after_seq: int, stored: Iterable[tuple[str, dict[str, Any]]]
    ) -> None:
        """Send ``peer`` the job's events with ``seq > after_seq`` in order: the ``stored`` ones (from the
        job database, already after ``after_seq``) and the memory events still held."""
        replay: list[KeptEvent] = [(content["seq"], kind, content, ()) for kind, content in stored]
        replay += [item for item in self._memory.get(job_id, ()) if item[0] > after_seq]
        for _, kind, content, buffers in sorted(replay, key=lambda item: item[0]):
            event = EVENTS[kind].model_validate(content)
            self._send(peer, Message(type=kind, content=event, parent=parent, buffers=buffers))

    def drop_memory(self, job_id: str) -> None:
        """Forget the job's memory events (its result, once stored, is the truth)."""
        self._memory.pop(job_id, None)
        self._memory_bytes.pop(job_id, None)

    def forget_job(self, job_id: str) -> None:
        """The job is gone (deleted or purged): no memory events, no subscribers."""
        self.drop_memory(job_id)
        self._subscribers.pop(job_id, None)

    def _keep(self, job_id: str, item: KeptEvent) -> None:
        """Hold a memory event, dropping the oldest beyond ``max_replay_events`` or ``max_replay_bytes``."""
        kept = self._memory.setdefault(job_id, deque())
        kept.append(item)
        self._memory_bytes[job_id] = self._memory_bytes.get(job_id, 0) + sum(len(b) for b in item[3])
        while kept and (
            len(kept) > self.limits.max_replay_events or self._memory_bytes[job_id] > self.limits.max_replay_bytes
        ):
            dropped = kept.popleft()
            self._memory_bytes[job_id] -= sum(len(b) for b in dropped[3])
