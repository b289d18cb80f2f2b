"""The protocol's codec: every message type round-trips; anything malformed is a typed ProtocolError."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anyi2v.shared.protocol import (
    CONTENT_TYPES,
    ERROR_CODES,
    EVENTS,
    NOTICES,
    REPLIES,
    REQUESTS,
    Limits,
    Message,
    ProtocolError,
    decode,
    encode,
)

RECORD = {"job_id": "j1", "state": "queued", "attempts": 0, "created": 1.0, "updated": 2.0, "position": 0,
          "n_frames": 16, "last_seq": 1}  # fmt: skip
EXAMPLES: dict[str, tuple[dict[str, Any], int]] = {
    "hello_request": ({"client": "test 1.0"}, 0),
    "submit_request": ({"job_id": "j1", "shot": {"schema_version": 3}, "condition": {"width": 2, "height": 1},
                        "control": True, "video_format": "webm", "subscribe": False}, 1),
    "cancel_request": ({"job_id": "j1"}, 0),
    "status_request": ({"job_id": None}, 0),
    "list_request": ({"states": ["done", "failed"], "limit": 5}, 0),
    "subscribe_request": ({"job_id": "j1", "after_seq": 3}, 0),
    "unsubscribe_request": ({"job_id": "j1"}, 0),
    "fetch_request": ({"job_id": "j1", "part": "frame", "index": 2, "offset": 10, "length": 100}, 0),
    "delete_request": ({"job_id": "j1"}, 0),
    "models_request": ({}, 0),
    "hello_reply": ({"server": "s", "protocol": 1, "model": {"name": "toy-world", "kind": "embedded"},
                     "device": "cpu", "modalities": ["depth"], "limits": Limits().model_dump(),
                     "heartbeat_seconds": 2.0}, 0),
    "submit_reply": ({"job_id": "j1", "state": "queued", "created": True, "position": 0}, 0),
    "cancel_reply": ({"job_id": "j1", "state": "cancelled"}, 0),
    "status_reply": ({"server": {"queued": 1, "running": None, "uptime_seconds": 3.0, "disk_bytes": 5,
                                 "disk_cap_bytes": 10}, "job": RECORD}, 0),
    "list_reply": ({"jobs": [RECORD]}, 0),
    "subscribe_reply": ({"job_id": "j1", "state": "running", "last_seq": 4}, 0),
    "unsubscribe_reply": ({"job_id": "j1"}, 0),
    "fetch_reply": ({"job_id": "j1", "part": "video", "index": 0, "offset": 0, "size": 3, "sha256": "ab"}, 1),
    "delete_reply": ({"job_id": "j1"}, 0),
    "models_reply": ({"folder": "/models", "models": [{"name": "checkpoints/a", "short_name": "a",
                      "kind": "checkpoint", "family": "sd15", "size_bytes": 10}], "more": 0, "problem": None,
                      "scanned": 5.0, "default": {"checkpoint": "a", "loras": [{"name": "b", "weight": 0.5}]},
                      "loaded": None}, 0),
    "error_reply": ({"code": "unknown_job", "message": "no job", "problems": [{"where": "job_id", "why": "x"}]}, 0),
    "accepted": ({"job_id": "j1", "seq": 0, "n_frames": 16}, 0),
    "queued": ({"job_id": "j1", "seq": 1, "position": 2, "attempt": 1}, 0),
    "started": ({"job_id": "j1", "seq": 2, "attempt": 1}, 0),
    "progress": ({"job_id": "j1", "seq": 3, "stage": "sampling", "done": 1, "total": 25}, 0),
    "preview": ({"job_id": "j1", "seq": 4, "stage": "sampling", "done": 1, "total": 25, "width": 1, "height": 1}, 1),
    "frame": ({"job_id": "j1", "seq": 5, "index": 0, "width": 1, "height": 1}, 1),
    "done": ({"job_id": "j1", "seq": 6, "n_frames": 16, "manifest_sha256": "ff"}, 0),
    "failed": ({"job_id": "j1", "seq": 6, "reason": "out_of_memory", "message": "oom", "hints": ["fewer frames"]}, 0),
    "cancelled": ({"job_id": "j1", "seq": 6}, 0),
    "lagged": ({"job_id": "j1", "first_seq": 3, "last_seq": 5, "dropped": {"preview": 2, "progress": 1}}, 0),
    "heartbeat": ({}, 0),
}  # fmt: skip


def _frames(header: dict[str, Any], *buffers: bytes) -> list[bytes]:
    return [json.dumps(header).encode(), *buffers]


def _header(kind: str = "status_request", **changes: Any) -> dict[str, Any]:
    return {"protocol": 1, "id": "m1", "type": kind, "session": "s1", "parent": None, "content": {}, "buffers": 0,
            **changes}  # fmt: skip


def test_the_examples_cover_every_type() -> None:
    assert set(EXAMPLES) == set(CONTENT_TYPES) == {*REQUESTS, *REPLIES, *EVENTS, *NOTICES, "heartbeat"}


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_every_message_type_round_trips(kind: str) -> None:
    data, count = EXAMPLES[kind]
    buffers = tuple(b"\x00" * (6 if kind == "submit_request" else 3) for _ in range(count))
    content = CONTENT_TYPES[kind].model_validate(data)
    sent = Message(type=kind, content=content, session="client1", parent="p1", buffers=buffers)
    frames = encode(sent)
    received = decode(frames)
    assert received == sent
    assert json.loads(frames[0])["buffers"] == count


def test_a_version_mismatch_names_both_versions() -> None:
    with pytest.raises(ProtocolError) as caught:
        decode(_frames(_header(protocol=2)))
    assert caught.value.code == "unsupported_version"
    assert "version 2" in str(caught.value)
    assert "version 1" in str(caught.value)
    assert caught.value.message_id == "m1"  # so the error reply can name the request


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([], "bad_message"),
        ([b"\xff\xfe"], "bad_message"),
        ([b"[1, 2]"], "bad_message"),
        ([b'{"protocol": 1, "id": "m", "type": "hello_request", "content": {}, "buffers": NaN}'], "bad_message"),
        (_frames(_header(id="has space")), "bad_message"),
        (_frames(_header(kind="launch_missiles")), "unknown_type"),
        (_frames(_header(buffers=1)), "bad_message"),
        (_frames(_header(), b"extra"), "bad_message"),
        (_frames(_header(content={"job_id": 5})), "invalid_content"),
        (_frames(_header(kind="list_request", content={"limit": 10**9})), "invalid_content"),
        (_frames(_header(kind="fetch_request", content={"job_id": "../etc", "part": "video"})), "invalid_content"),
        (_frames(_header(kind="submit_request", buffers=1,
                         content={"job_id": "j", "shot": {}, "condition": {"width": 4, "height": 4}}), b"short"),
         "invalid_content"),
        ([b"{}", *[b""] * 10], "too_large"),
        ([b" " * (2**20 + 1)], "too_large"),
    ],
)  # fmt: skip
def test_malformed_messages_get_typed_errors(frames: list[bytes], code: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode(frames)
    assert caught.value.code == code
    assert caught.value.code in ERROR_CODES
    assert caught.value.reply().message  # always something to say


def test_an_id_that_is_not_an_identifier_is_not_named_in_the_answer() -> None:
    with pytest.raises(ProtocolError) as caught:
        decode(_frames(_header(id="../../etc/passwd")))
    assert caught.value.message_id is None  # a reply with it as parent would itself be invalid


def test_only_accepted_types_pass() -> None:
    frames = encode(Message(type="done", content=EVENTS["done"].model_validate(EXAMPLES["done"][0])))
    with pytest.raises(ProtocolError, match="unknown message type") as caught:
        decode(frames, accept=frozenset(REQUESTS))
    assert caught.value.code == "unknown_type"


def test_a_message_over_the_total_limit_is_refused_whatever_its_frames() -> None:
    limits = Limits(max_message_bytes=1000)
    with pytest.raises(ProtocolError) as caught:
        decode([json.dumps(_header()).encode(), b"x" * 400, b"x" * 400, b"x" * 400], limits)
    assert caught.value.code == "too_large"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@given(
    header=st.dictionaries(
        st.sampled_from(["protocol", "id", "type", "session", "parent", "content", "buffers", "extra"]),
        json_values,
    ),
    kind=st.sampled_from(sorted(CONTENT_TYPES)),
    buffers=st.lists(st.binary(max_size=64), max_size=6),
)
def test_decode_never_raises_anything_but_protocol_errors(
    header: dict[str, Any], kind: str, buffers: list[bytes]
) -> None:
    header = {**_header(kind), **header}
    try:
        frames = [json.dumps(header).encode(), *buffers]
    except ValueError:
        return
    try:
        message = decode(frames)
    except ProtocolError as error:
        assert error.code in ERROR_CODES  # noqa: PT017 (either outcome is fine; only the type of failure is checked)
        answer = encode(Message(type="error_reply", content=error.reply(), parent=error.message_id))
        assert decode(answer).parent == error.message_id  # noqa: PT017 (the answer naming it is itself valid)
    else:
        assert message.type in CONTENT_TYPES
