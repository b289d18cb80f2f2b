"""A seeded generator of malformed protocol messages, for fuzzing a live daemon.

Each case is a list of frames (as a DEALER sends them) and its kind. Nearly every case is wrong in
at least one way the protocol names: bad framing, bad JSON, a bad envelope, an unknown type, content
of the wrong type or out of range, NaN, huge numbers, too many or too large frames. A few mutations
(a flipped byte inside a string, a null parent) stay valid by chance; those ask for nothing that exists.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from typing import Any

from anyi2v.shared.protocol import Limits

_VALID_CONTENT: dict[str, dict[str, Any]] = {
    "hello_request": {"client": "fuzz"},
    "status_request": {"job_id": None},
    "list_request": {"states": ["done"], "limit": 10},
    "cancel_request": {"job_id": "fuzz-job"},
    "subscribe_request": {"job_id": "fuzz-job", "after_seq": -1},
    "unsubscribe_request": {"job_id": "fuzz-job"},
    "fetch_request": {"job_id": "fuzz-job", "part": "video", "index": 0, "offset": 0},
    "delete_request": {"job_id": "fuzz-job"},
    "submit_request": {"job_id": "fuzz-job", "shot": {"prompt": "x"}, "condition": None, "control": False},
}

_WEIRD_VALUES: list[Any] = [
    None, True, -1, 0, 2**63, -(2**63) - 1, 10**400, 1e308, -1e308, 0.5, "", "x" * 70, "\u0000", "\udcff",
    [], [1, [2, [3]]], {}, {"$ref": "#"}, "../../etc/passwd", "/etc/shadow",
]  # fmt: skip


def _header(kind: str, content: Any, buffers: int = 0, **changes: Any) -> dict[str, Any]:
    header = {
        "protocol": 1, "id": "fuzz", "type": kind, "session": "fuzz", "parent": None, "content": content,
        "buffers": buffers,
    }  # fmt: skip
    header.update(changes)
    return header


def _dump(value: Any) -> bytes:
    text = json.dumps(value, allow_nan=True)  # NaN and Infinity are written as the bare tokens
    return text.encode("utf-8", "surrogatepass")


def malformed_messages(count: int, seed: int = 0, limits: Limits | None = None) -> Iterator[tuple[str, list[bytes]]]:
    """``count`` malformed messages, (kind, frames); the same ``seed`` gives the same messages."""
    limits = limits or Limits()
    rng = random.Random(seed)
    kinds = list(_VALID_CONTENT)

    def pick_kind() -> str:
        return rng.choice(kinds)

    def non_json() -> list[bytes]:
        choice = rng.randrange(5)
        if choice == 0:
            return [rng.randbytes(rng.randrange(0, 200))]
        if choice == 1:  # JSON cut short
            text = _dump(_header(pick_kind(), _VALID_CONTENT["status_request"]))
            return [text[: rng.randrange(0, len(text))]]
        if choice == 2:  # not UTF-8
            return [b'{"protocol": 1, "id": "\xff\xfe"}']
        if choice == 3:  # nested deeper than the parser goes
            depth = rng.randrange(2_000, 200_000)
            return [b"[" * depth + b"]" * depth]
        return [b""]

    def not_an_object() -> list[bytes]:
        return [_dump(rng.choice([[], [1, 2], 5, "hello", None, 1.5, True]))]

    def bad_envelope() -> list[bytes]:
        kind = pick_kind()
        header = _header(kind, _VALID_CONTENT[kind])
        field = rng.choice(list(header))
        if rng.random() < 0.3:
            del header[field]
        else:
            header[field] = rng.choice(_WEIRD_VALUES)
        if field == "protocol" and header.get("protocol") == 1:
            header["protocol"] = 2
        if rng.random() < 0.3:
            header[rng.choice(["extra", "Type", "__proto__"])] = 1
        return [_dump(header)]

    def unknown_type() -> list[bytes]:
        kind = rng.choice(["format_disk", "submit", "hello_reply", "done", "error_reply", "", "x" * 65, "HELLO"])
        return [_dump(_header(kind, {}))]

    def wrong_content() -> list[bytes]:
        kind = pick_kind()
        content = dict(_VALID_CONTENT[kind])
        if kind == "hello_request" or rng.random() < 0.2:
            content[rng.choice(["unexpected", "job_id", "limit"])] = rng.choice(_WEIRD_VALUES)
            if kind == "hello_request":
                content["client"] = rng.choice([5, None, [], 1e308])
        else:
            field = rng.choice(list(content))
            content[field] = rng.choice(
                [v for v in _WEIRD_VALUES if v is not None and not isinstance(v, str)] + [float("nan"), float("inf")]
            )
        if rng.random() < 0.1:
            content = rng.choice([[], "content", 7, None])
        return [_dump(_header(kind, content))]

    def nan_and_huge() -> list[bytes]:
        kind = rng.choice(["list_request", "fetch_request", "subscribe_request"])
        content = dict(_VALID_CONTENT[kind])
        field = {"list_request": "limit", "fetch_request": "offset", "subscribe_request": "after_seq"}[kind]
        value = rng.choice(["NaN", "Infinity", "-Infinity", "1e999", "9" * 400, "-" + "9" * 400])
        text = _dump(_header(kind, content)).decode()
        return [text.replace(f'"{field}": {json.dumps(content[field])}', f'"{field}": {value}').encode()]

    def frame_count() -> list[bytes]:
        kind = pick_kind()
        announced = rng.randrange(0, limits.max_buffers + 1)
        sent = rng.choice([n for n in range(limits.max_buffers + 1) if n != announced])
        return [_dump(_header(kind, _VALID_CONTENT[kind], buffers=announced)), *[b"\x00" * 12] * sent]

    def many_small_frames() -> list[bytes]:
        extra = rng.randrange(limits.max_buffers + 1, 2000)
        return [_dump(_header("status_request", {"job_id": None})), *[b"x"] * extra]

    def large_header() -> list[bytes]:
        padding = "p" * (limits.max_header_bytes + rng.randrange(1, 4096))
        return [_dump(_header("hello_request", {"client": padding}))]

    def bad_condition() -> list[bytes]:
        width, height = rng.choice([(64, 64), (0, 64), (10**9, 10**9), (-8, 8), (64, 65)])
        content = {**_VALID_CONTENT["submit_request"], "condition": {"width": width, "height": height}}
        return [_dump(_header("submit_request", content, buffers=1)), rng.randbytes(rng.randrange(0, 4096))]

    def flipped() -> list[bytes]:
        kind = pick_kind()
        data = bytearray(_dump(_header(kind, _VALID_CONTENT[kind])))
        for _ in range(rng.randrange(1, 4)):
            position = rng.randrange(len(data))
            data[position] = rng.choice(b'{}[]":,0\\x\xff')
        return [bytes(data)]

    makers: list[tuple[str, Callable[[], list[bytes]], float]] = [
        ("non-JSON", non_json, 1.0), ("not an object", not_an_object, 0.5), ("bad envelope", bad_envelope, 2.0),
        ("unknown type", unknown_type, 0.5), ("wrong content", wrong_content, 2.0), ("NaN or huge", nan_and_huge, 1.0),
        ("frame count", frame_count, 1.0), ("many small frames", many_small_frames, 0.3),
        ("large header", large_header, 0.05), ("bad condition", bad_condition, 0.5), ("flipped bytes", flipped, 1.5),
    ]  # fmt: skip
    names = [name for name, _, _ in makers]
    weights = [weight for _, _, weight in makers]
    by_name = {name: maker for name, maker, _ in makers}
    for _ in range(count):
        name = rng.choices(names, weights)[0]
        yield name, by_name[name]()
