"""A subscriber that stops reading costs the server a bounded number of bytes (issue 19, item 5).

What a connection has not read waits in its outbox (daemon/outbox.py), bounded by
``max_outbox_bytes``: past it, previews go first, then frames, then progress a later one supersedes;
replies and stored events (``done``, ``failed``, ``cancelled``...) never. A connection that lost events
is sent a ``lagged`` notice; one whose undroppable messages pass ``max_outbox_hard_bytes`` is
forgotten. Before, the ROUTER queued up to 10,000 messages per connection (about 6 MiB per job of
previews) and then dropped anything, ``done`` included, silently.

The unit tests drive the outboxes with a fake pipe; the others run a server whose worker is a fake
that hands over many large previews (the tiny model's previews are a few hundred bytes: the kernel's
socket buffers would swallow them all).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import zmq

from anyi2v.daemon import server as server_module
from anyi2v.daemon.client import DaemonClient
from anyi2v.daemon.outbox import Outboxes, PeerGoneError
from anyi2v.daemon.server import Server, ServerConfig
from anyi2v.daemon.supervisor import Supervisor
from anyi2v.daemon.worker import WorkerConfig
from anyi2v.shared.protocol import (
    EVENTS,
    REPLIES,
    Empty,
    HelloReply,
    JobStateReply,
    LaggedNotice,
    Limits,
    Message,
    SubscribeRequest,
    decode,
    encode,
)

from .daemon_helpers import condition_image, shot_document

PREVIEW_WIDTH, PREVIEW_HEIGHT = 256, 64
PREVIEW = bytes(PREVIEW_WIDTH * PREVIEW_HEIGHT * 3)  # 48 KiB
TIMEOUT = 120.0  # seconds: generous, for a loaded 2-core machine


def _wait_for(predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# The outboxes on their own, with a fake pipe ----------------------------------------------------


class _Pipe:
    """A peer's ZeroMQ pipe: takes ``room`` messages, then refuses (EAGAIN) until given more room."""

    def __init__(self, room: int = 0) -> None:
        self.room = room
        self.delivered: list[Message] = []
        self.gone = False

    def __call__(self, peer: bytes, frames: list[bytes]) -> bool:
        if self.gone:
            raise PeerGoneError(peer)
        if self.room <= 0:
            return False
        self.room -= 1
        self.delivered.append(decode(frames))
        return True


def _event(kind: str, seq: int, job_id: str = "job", buffers: tuple[bytes, ...] = (), **content: Any) -> Message:
    fields: dict[str, Any] = {
        "accepted": {"n_frames": 4}, "queued": {"position": 0, "attempt": 1}, "started": {"attempt": 1},
        "progress": {"stage": "sampling", "done": seq, "total": 100},
        "preview": {"stage": "sampling", "done": seq, "total": 100, "width": 8, "height": 8},
        "frame": {"index": seq % 4, "width": 8, "height": 8}, "done": {"n_frames": 4, "manifest_sha256": "0" * 64},
        "failed": {"reason": "internal", "message": "boom", "hints": []}, "cancelled": {},
    }[kind]  # fmt: skip
    content = EVENTS[kind].model_validate({"job_id": job_id, "seq": seq, **fields, **content})
    return Message(type=kind, content=content, parent="subscribe-1", buffers=buffers)


def _reply(job_id: str = "job") -> Message:
    return Message(type="cancel_reply", content=JobStateReply(job_id=job_id, state="running"), parent="cancel-1")


def _outboxes(pipe: _Pipe, soft: int, hard: int = 2**30) -> tuple[Outboxes, list[bytes]]:
    forgotten: list[bytes] = []
    limits = Limits(max_outbox_bytes=soft, max_outbox_hard_bytes=hard)
    return Outboxes(pipe, limits, forget=forgotten.append), forgotten


def test_what_the_pipe_refuses_waits_in_order_and_goes_once_it_has_room() -> None:
    pipe = _Pipe(room=2)
    outboxes, _ = _outboxes(pipe, soft=2**20)
    sent = [_event("accepted", 0), _event("queued", 1), _event("started", 2), _reply(), _event("progress", 3)]
    for message in sent:
        assert outboxes.send(b"peer", message)
    assert [m.type for m in pipe.delivered] == ["accepted", "queued"]
    assert outboxes.queued_bytes(b"peer") == sum(len(b) for m in sent[2:] for b in encode(m, session="server"))
    assert outboxes.flush() == 0  # still no room: nothing goes, nothing is lost
    pipe.room = 100
    assert outboxes.flush() == 3
    assert [m.id for m in pipe.delivered] == [m.id for m in sent]
    assert outboxes.queued_bytes(b"peer") == 0
    assert not outboxes.pending


def _mixed_stream() -> list[Message]:
    """One job's events as a sampling loop sends them, with a reply among them: 17 events, seq 0 to 16."""
    big = bytes(1000)
    return [
        _event("accepted", 0), _event("started", 1), _event("progress", 2), _event("frame", 3, buffers=(big,)),
        *(_event("preview", seq, buffers=(big,)) for seq in range(4, 12)), _event("progress", 12), _reply(),
        _event("frame", 13, buffers=(big,)), _event("preview", 14, buffers=(big,)), _event("progress", 15),
        _event("done", 16),
    ]  # fmt: skip


def _deliver(soft: int) -> tuple[list[Message], list[int], LaggedNotice]:
    """Send the mixed stream to a peer that reads nothing until the end; what it then gets: every
    message, the seqs of the events, and the one lagged notice."""
    pipe = _Pipe()
    outboxes, forgotten = _outboxes(pipe, soft)
    peaks = []
    for message in _mixed_stream():
        assert outboxes.send(b"peer", message)
        peaks.append(outboxes.queued_bytes(b"peer"))
    assert max(peaks) <= max(soft, 2_000)  # past the bound only by what may not be dropped
    assert not forgotten
    pipe.room = 100
    outboxes.flush()
    assert not outboxes.pending
    kept = [m.content.seq for m in pipe.delivered if m.type in EVENTS]  # type: ignore[attr-defined]
    assert kept == sorted(kept)
    assert [m.type for m in pipe.delivered if m.type in REPLIES] == ["cancel_reply"]
    notices = [m for m in pipe.delivered if m.type == "lagged"]
    assert len(notices) == 1
    assert notices[0].parent == "subscribe-1"
    notice = notices[0].content
    assert isinstance(notice, LaggedNotice)
    assert notice.job_id == "job"
    dropped = set(range(17)) - set(kept)
    assert sum(notice.dropped.values()) == len(dropped)  # each event delivered or counted
    assert (notice.first_seq, notice.last_seq) == (min(dropped), max(dropped))
    # the notice comes where the gap is: after the events before it, before the job's next one
    position = pipe.delivered.index(notices[0])
    before = [m.content.seq for m in pipe.delivered[:position] if m.type in EVENTS]  # type: ignore[attr-defined]
    assert all(seq < notice.first_seq for seq in before)
    return pipe.delivered, kept, notice


def test_past_the_bound_previews_go_first() -> None:
    _, kept, notice = _deliver(soft=6_000)
    assert {2, 3, 12, 13, 15} <= set(kept)  # frames and progress stay while previews can go
    assert not set(range(4, 12)) & set(kept)
    assert set(notice.dropped) == {"preview"}


def test_then_frames_then_progress_that_a_later_one_supersedes() -> None:
    _, kept, notice = _deliver(soft=1)
    assert kept == [0, 1, 15, 16]  # the stored events, and the newest progress
    assert notice.dropped == {"preview": 9, "frame": 2, "progress": 2}


def test_a_peer_that_never_reads_holds_a_bounded_number_of_entries() -> None:
    pipe = _Pipe()
    outboxes, _ = _outboxes(pipe, soft=20_000)
    for seq in range(5_000):
        outboxes.send(b"peer", _event("preview", seq, buffers=(bytes(1000),)))
    assert outboxes.queued_bytes(b"peer") <= 20_000
    assert len(outboxes._boxes[b"peer"].entries) < 200  # dropped ones do not linger


@pytest.mark.parametrize("final", ["done", "failed", "cancelled"])
def test_final_events_and_replies_are_never_dropped(final: str) -> None:
    pipe = _Pipe()
    outboxes, forgotten = _outboxes(pipe, soft=5_000)
    sent = [_event("accepted", 0)]
    for seq in range(1, 40):
        sent.append(_event("preview", seq, buffers=(bytes(2000),)))
        if seq % 10 == 0:
            sent.append(_reply())
    sent.append(_event(final, 40))
    for message in sent:
        outboxes.send(b"peer", message)
    assert not forgotten
    pipe.room = 1000
    outboxes.flush()
    types = [m.type for m in pipe.delivered]
    assert types[0] == "accepted"
    assert types[-1] == final
    assert types.count("cancel_reply") == 3
    assert "lagged" in types


def test_a_peer_past_the_hard_bound_with_nothing_droppable_is_forgotten(caplog: pytest.LogCaptureFixture) -> None:
    pipe = _Pipe()
    outboxes, forgotten = _outboxes(pipe, soft=1_000, hard=20_000)
    with caplog.at_level(logging.WARNING, logger="anyi2v.daemon"):
        for _ in range(200):
            if not outboxes.send(b"hostile", _reply()):
                break
    assert forgotten == [b"hostile"]
    assert outboxes.queued_bytes(b"hostile") == 0
    assert not outboxes.pending
    lines = [record.getMessage() for record in caplog.records]
    assert any("forgotten" in line and b"hostile".hex() in line for line in lines)


def test_heartbeats_are_not_queued_and_a_gone_peer_is_let_go() -> None:
    pipe = _Pipe()
    outboxes, _ = _outboxes(pipe, soft=2**20)
    assert outboxes.send(b"peer", Message(type="heartbeat", content=Empty()))
    assert not outboxes.pending  # a full pipe has plenty for the peer to read: no heartbeat waits behind it
    outboxes.send(b"peer", _reply())
    assert outboxes.pending
    pipe.gone = True
    outboxes.flush()
    assert not outboxes.pending
    assert not outboxes.send(b"peer", _reply())  # unreachable: dropped, not queued


def test_the_client_passes_a_lagged_notice_on_logs_it_and_follows_the_job_to_its_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with DaemonClient("tcp://127.0.0.1:1", timeout=1) as client:  # nothing listens: the messages are already here
        client.server = HelloReply.model_construct(heartbeat_seconds=1.0)
        notice = LaggedNotice(job_id="job", first_seq=3, last_seq=5, dropped={"preview": 2, "progress": 1})
        client._pending.extend([
            _event("preview", 2, buffers=(bytes(192),)), Message(type="lagged", content=notice, parent="subscribe-1"),
            _event("progress", 6), _event("done", 7),
        ])  # fmt: skip
        with caplog.at_level(logging.INFO, logger="anyi2v.client"):
            events = list(client.events("job", subscribe=False))
    assert [event.type for event in events] == ["preview", "lagged", "progress", "done"]
    assert events[1].content == notice
    assert any("skipped 2 preview and 1 progress events (seq 3 to 5)" in r.getMessage() for r in caplog.records)


# A server with a fake worker --------------------------------------------------------------------


class _FakeWorker(Supervisor):
    """The real supervisor with no worker process behind it (so it keeps the attributes the server
    reads): a job is ``n_previews`` previews of 48 KiB with a progress event every tenth step, handed
    over ``batch`` per turn of the server's loop (at most one batch per ``interval`` seconds, as a
    real worker's steps take time) once ``go`` is set, then done (with a manifest, as the worker
    writes it). With no process, stop, kill and cancel have nothing to do."""

    n_previews = 100
    batch = 10
    interval = 0.0

    def __init__(self, config: WorkerConfig, hang_timeout: float, load_timeout: float) -> None:
        super().__init__(config, hang_timeout, load_timeout)
        self.go = threading.Event()
        self.go.set()
        self.handed_over = False
        self._last_batch = 0.0
        self._plan: deque[tuple[Any, ...]] = deque()

    def start(self) -> None:
        self.state = "ready"
        self.info = {"device": "fake", "modalities": ["depth"], "max_frames": 64}
        self._plan.append(("ready", self.info))

    def run(self, job: dict[str, Any]) -> None:
        job_id = self.job_id = job["job_id"]
        self.last_activity = time.monotonic()
        staging = Path(job["staging"])
        staging.mkdir(parents=True, exist_ok=True)
        (staging / "manifest.json").write_text(json.dumps({"n_frames": 4}))
        for step in range(1, self.n_previews + 1):
            size = (PREVIEW_WIDTH, PREVIEW_HEIGHT)
            self._plan.append(("preview", job_id, "sampling", step, self.n_previews, *size, PREVIEW))
            if step % 10 == 0:
                self._plan.append(("progress", job_id, "sampling", step, self.n_previews))
        self._plan.append(("done", job_id, "0" * 64))

    def receive(self) -> list[tuple[Any, ...]]:
        self.last_activity = time.monotonic()  # never hung
        if self._plan and self._plan[0][0] == "ready":
            return [self._plan.popleft()]
        if not self.go.is_set() or time.monotonic() - self._last_batch < self.interval:
            return []
        self._last_batch = time.monotonic()
        out = [self._plan.popleft() for _ in range(min(self.batch, len(self._plan)))]
        if out and out[-1][0] == "done":
            self.handed_over = True
        return out

    def overdue(self, now: float) -> str | None:
        return None


@contextmanager
def _fake_server(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, limits: Limits, n_previews: int, batch: int, interval: float = 0.0
) -> Iterator[Server]:
    worker = type("Worker", (_FakeWorker,), {"n_previews": n_previews, "batch": batch, "interval": interval})
    monkeypatch.setattr(server_module, "Supervisor", worker)
    config = ServerConfig(data_dir=data_dir, bind="tcp://127.0.0.1:*", heartbeat_seconds=2.0, limits=limits)
    server = Server(config)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop()
        thread.join(30)
        server.close()
    assert not thread.is_alive(), "the server did not stop"


def _raw_reader(context: zmq.Context[Any], address: str, identity: bytes) -> zmq.Socket[Any]:
    """A DEALER that buffers as little as ZeroMQ and the kernel let it."""
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.ROUTING_ID, identity)
    socket.setsockopt(zmq.RCVHWM, 1)
    socket.setsockopt(zmq.RCVBUF, 4096)
    socket.connect(address)
    return socket


def _receive(socket: zmq.Socket[Any]) -> Message:
    assert socket.poll(int(TIMEOUT * 1000)), "nothing came from the server"
    return decode(socket.recv_multipart())


def _read_until_done(socket: zmq.Socket[Any]) -> list[Message]:
    """Every message (heartbeats aside) up to the job's ``done``, read as fast as they come, saying
    we are alive as a client does."""
    messages: list[Message] = []
    deadline, last_heartbeat = time.monotonic() + TIMEOUT, 0.0
    while not messages or messages[-1].type != "done":
        assert time.monotonic() < deadline, f"no done after {len(messages)} messages"
        if time.monotonic() - last_heartbeat > 0.2:
            socket.send_multipart(encode(Message(type="heartbeat", content=Empty(), session="reader")))
            last_heartbeat = time.monotonic()
        if socket.poll(100):
            message = decode(socket.recv_multipart())
            if message.type != "heartbeat":
                messages.append(message)
    return messages


def test_a_subscriber_that_stops_reading_stays_under_the_bound_and_is_told_it_lagged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bound, n_previews = 2**20, 400  # 400 previews of 48 KiB: 19 MiB, far more than socket buffers hold
    limits = Limits(max_outbox_bytes=bound)
    with _fake_server(tmp_path / "data", monkeypatch, limits, n_previews, batch=40) as server:
        worker = server.supervisor
        assert isinstance(worker, _FakeWorker)
        worker.go.clear()
        context = zmq.Context()
        reader = _raw_reader(context, server.address, b"slow-reader")
        try:
            with DaemonClient(server.address, timeout=TIMEOUT) as control:
                control.submit("slow", shot_document(), condition_image(), subscribe=False)
                subscribe = Message(type="subscribe_request", content=SubscribeRequest(job_id="slow"), session="slow")
                reader.send_multipart(encode(subscribe))
                assert _receive(reader).type == "subscribe_reply"
                # from here the reader reads nothing, but says it is alive, as a busy client's other thread would
                worker.go.set()
                peak, last_heartbeat = 0, 0.0
                deadline = time.monotonic() + TIMEOUT
                while not (worker.handed_over and control.job("slow").state == "done"):
                    assert time.monotonic() < deadline, "the job did not end"
                    peak = max(peak, server.outboxes.queued_bytes(b"slow-reader"))
                    if time.monotonic() - last_heartbeat > 0.2:
                        reader.send_multipart(encode(Message(type="heartbeat", content=Empty(), session="slow")))
                        last_heartbeat = time.monotonic()
                    time.sleep(0.01)
                assert 0 < peak <= bound
                assert server.outboxes.queued_bytes(b"slow-reader") <= bound
            # now it reads: everything it missed is either there or counted, and the job's end is there
            messages = _read_until_done(reader)
        finally:
            reader.close(0)
            context.term()
        _wait_for(lambda: not server.outboxes.pending, "the outbox to empty")
    events = [m for m in messages if m.type in EVENTS]
    notices = [m.content for m in messages if m.type == "lagged"]
    assert notices, "the reader was not told it lagged"
    assert all(isinstance(n, LaggedNotice) and n.job_id == "slow" for n in notices)
    assert all(m.parent == subscribe.id for m in messages if m.type == "lagged")
    seqs = [m.content.seq for m in events]  # type: ignore[attr-defined]
    assert seqs == sorted(set(seqs))  # in order, none twice
    dropped = sum(sum(n.dropped.values()) for n in notices)  # type: ignore[attr-defined]
    assert len(events) + dropped == seqs[-1] + 1  # every event of the job delivered, or counted as dropped
    previews = sum(1 for m in events if m.type == "preview")
    assert previews + sum(n.dropped.get("preview", 0) for n in notices) == n_previews  # type: ignore[attr-defined]
    assert previews < n_previews
    assert [m.type for m in events if m.type in ("accepted", "queued", "started", "done")] == [
        "accepted", "queued", "started", "done"
    ]  # fmt: skip


def test_a_subscriber_that_keeps_up_is_never_lagged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    n_previews = 400  # 19 MiB, more than the default bound (16 MiB), handed over about 1 MiB at a time
    with _fake_server(tmp_path / "data", monkeypatch, Limits(), n_previews, batch=20, interval=0.15) as server:
        context = zmq.Context()
        reader = context.socket(zmq.DEALER)  # as a client's, reading all the time
        reader.setsockopt(zmq.LINGER, 0)
        reader.connect(server.address)
        try:
            with DaemonClient(server.address, timeout=TIMEOUT) as control:
                control.submit("fast", shot_document(), condition_image(), subscribe=False)
            subscribe = Message(type="subscribe_request", content=SubscribeRequest(job_id="fast"), session="fast")
            reader.send_multipart(encode(subscribe))
            messages = _read_until_done(reader)
        finally:
            reader.close(0)
            context.term()
        _wait_for(lambda: not server.outboxes.pending, "the outbox to empty")
    assert [m.type for m in messages if m.type == "lagged"] == []
    events = [m for m in messages if m.type in EVENTS]
    assert sum(1 for m in events if m.type == "preview") == n_previews
    assert events[-1].type == "done"
    assert [m.content.seq for m in events] == list(range(len(events)))  # type: ignore[attr-defined]
