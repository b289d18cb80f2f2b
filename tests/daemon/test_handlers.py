"""The daemon's request table: every request type of the protocol has its handler and its reply; an
unknown type and a handler's bug get typed error replies; the fan-out replays by seq and forgets
silent connections. No socket, no worker: fakes stand in for the store and the supervisor."""

from __future__ import annotations

import time
from typing import Any, cast

import pytest

from anyi2v.daemon import handlers
from anyi2v.daemon.fanout import MEMORY_EVENTS, Fanout
from anyi2v.daemon.handlers import HANDLERS, HandlerContext, handle, reply_type
from anyi2v.shared.protocol import (
    EVENTS,
    REPLIES,
    REQUESTS,
    STORED_EVENTS,
    Empty,
    ErrorReply,
    JobRequest,
    Limits,
    Message,
    StatusRequest,
)


class _Store:
    """Knows one job, ``known``; any other lookup is a bug (raises)."""

    def get(self, job_id: str) -> dict[str, Any] | None:
        if job_id == "broken":
            raise RuntimeError("the database went away")
        return {"state": "queued", "seq_used": 1} if job_id == "known" else None


def _context(sent: list[tuple[bytes, Message]]) -> HandlerContext:
    def send(peer: bytes, message: Message) -> None:
        sent.append((peer, message))

    return HandlerContext(
        store=cast(Any, _Store()), supervisor=cast(Any, None), fanout=Fanout(Limits(), send), limits=Limits(),
        model=None, heartbeat_seconds=1.0, disk_cap_bytes=2**30, started=time.time(), send=send, purge=lambda: None,
    )  # fmt: skip


def test_every_request_type_of_the_protocol_has_a_handler_and_a_reply() -> None:
    assert list(HANDLERS) == list(REQUESTS)
    for name, handler in HANDLERS.items():
        assert handler.__name__ == name
        assert reply_type(name) in REPLIES
        assert reply_type(name) == name.removesuffix("_request") + "_reply"
    assert "heartbeat" not in HANDLERS  # a sign of life, answered by nothing


def test_the_table_refuses_a_request_type_without_a_handler() -> None:
    with pytest.raises(RuntimeError, match="no handler for \\['submit_request'\\]"):
        handlers._table(*(h for name, h in HANDLERS.items() if name != "submit_request"))

    def format_disk_request(context: HandlerContext, peer: bytes, message: Message) -> None:
        raise AssertionError("never called")

    with pytest.raises(RuntimeError, match="no request \\['format_disk_request'\\]"):
        handlers._table(*HANDLERS.values(), format_disk_request)


@pytest.mark.parametrize("kind", ["format_disk", "hello_reply", "heartbeat", "progress"])
def test_a_type_that_is_not_a_request_gets_the_unknown_type_error(kind: str) -> None:
    sent: list[tuple[bytes, Message]] = []
    message = Message(type=kind, content=Empty())
    handle(_context(sent), b"peer", message)
    [(peer, reply)] = sent
    assert peer == b"peer"
    assert reply.type == "error_reply"
    assert reply.parent == message.id
    assert isinstance(reply.content, ErrorReply)
    assert reply.content.code == "unknown_type"
    assert kind in reply.content.message


def test_a_protocol_error_is_its_typed_reply_and_a_bug_is_internal() -> None:
    sent: list[tuple[bytes, Message]] = []
    context = _context(sent)
    unknown = Message(type="cancel_request", content=JobRequest(job_id="nobody"))
    handle(context, b"peer", unknown)
    broken = Message(type="status_request", content=StatusRequest(job_id="broken"))
    handle(context, b"peer", broken)  # raises inside the handler; handle() does not
    (_, first), (_, second) = sent
    assert isinstance(first.content, ErrorReply)
    assert isinstance(second.content, ErrorReply)
    assert (first.parent, first.content.code) == (unknown.id, "unknown_job")
    assert (second.parent, second.content.code) == (broken.id, "internal")
    assert "RuntimeError: the database went away" in second.content.message


def test_a_reply_answers_its_request_by_the_protocols_reply_type() -> None:
    sent: list[tuple[bytes, Message]] = []
    request = Message(type="unsubscribe_request", content=JobRequest(job_id="known"))
    handle(_context(sent), b"peer", request)
    [(_, reply)] = sent
    assert (reply.type, reply.parent) == ("unsubscribe_reply", request.id)


def test_memory_events_are_the_ones_not_stored() -> None:
    assert sorted(MEMORY_EVENTS) == ["frame", "preview", "progress"]
    assert set(EVENTS) == MEMORY_EVENTS | STORED_EVENTS


def test_the_fanout_replays_by_seq_and_forgets_silent_connections() -> None:
    sent: list[tuple[bytes, Message]] = []
    fanout = Fanout(Limits(max_replay_events=2), lambda peer, message: sent.append((peer, message)))
    for seq in range(3):  # only the last two are kept
        fanout.emit("job", "progress", {"job_id": "job", "seq": seq, "stage": "sampling", "done": seq, "total": 3})
    assert sent == []  # nobody follows the job yet
    stored = [("accepted", {"job_id": "job", "seq": 3, "n_frames": 4})]
    fanout.heard(b"late", "session", now=0.0)
    fanout.replay(b"late", "job", "subscribe-id", after_seq=0, stored=stored)
    assert [m.content.model_dump()["seq"] for _, m in sent] == [1, 2, 3]
    assert {m.parent for _, m in sent} == {"subscribe-id"}

    sent.clear()
    fanout.subscribe(b"late", "job", "subscribe-id")
    assert fanout.quiet(now=10.0, interval=1.0) == [b"late"]  # owed a heartbeat
    fanout.sent(b"late", now=10.0)
    assert fanout.quiet(now=10.5, interval=1.0) == []
    fanout.drop_silent(now=2.0, timeout=3.0)
    assert fanout.has_subscribers("job")
    fanout.drop_silent(now=3.5, timeout=3.0)  # not heard from for 3.5 s
    assert not fanout.has_subscribers("job")
    assert fanout.peers == {}
