"""The daemon protocol (PROTOCOL.md): the envelope, every message's content, and their codec.

A message on the wire is a list of frames: one UTF-8 JSON header, then ``header.buffers`` raw
frames. :func:`encode` and :func:`decode` are the only ways in and out; ``decode`` never lets a
parser error escape, it raises :class:`ProtocolError` with a code from :data:`ERROR_CODES`.
No ZeroMQ here: the daemon and the client own the sockets.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import Problem, cut_text, json_path, listed_problems

PROTOCOL_VERSION = 1

IDENTIFIER_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=IDENTIFIER_PATTERN)]
JobState = Literal["queued", "running", "done", "failed", "cancelled"]
FINAL_STATES: frozenset[str] = frozenset({"done", "failed", "cancelled"})
Stage = Literal["loading", "inversion", "optimization", "sampling", "decode", "encode"]
FailReason = Literal[
    "invalid_input", "out_of_memory", "worker_crashed", "worker_hung", "too_many_attempts", "disk_full", "internal"
]
ErrorCode = Literal[
    "bad_message",
    "unsupported_version",
    "unknown_type",
    "invalid_content",
    "too_large",
    "invalid_shot",
    "unknown_job",
    "job_conflict",
    "not_ready",
    "result_gone",
    "queue_full",
    "disk_full",
    "internal",
]
ERROR_CODES: tuple[str, ...] = ErrorCode.__args__  # type: ignore[attr-defined]
MAX_ERROR_MESSAGE_CHARS = 1000  # an error_reply's message; its problems are listed_problems (errors.py)


class Limits(BaseModel):
    """The server's application limits (PROTOCOL.md, Limits); sent in ``hello_reply``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_frame_bytes: int = 64 * 2**20
    max_buffers: int = 4
    max_message_bytes: int = 96 * 2**20
    max_header_bytes: int = 2**20
    max_chunk_bytes: int = 4 * 2**20
    max_n_frames: int = 64
    max_pixels: int = 1024 * 1024
    max_queued: int = 1000
    max_replay_events: int = 512
    max_replay_bytes: int = 64 * 2**20
    max_outbox_bytes: int = 16 * 2**20  # queued for one connection: past it, its previews are dropped first
    max_outbox_hard_bytes: int = 128 * 2**20  # replies and lasting events queued: past it, the connection is dropped


class Content(BaseModel):
    """Base of every message's content: strict, no unknown fields, no NaN."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class Empty(Content):
    pass


# Requests ---------------------------------------------------------------------------------------


class HelloRequest(Content):
    client: str = Field("", max_length=200)


class ConditionSpec(Content):
    width: int = Field(ge=1, le=16384)
    height: int = Field(ge=1, le=16384)
    encoding: Literal["rgb8"] = "rgb8"

    @property
    def n_bytes(self) -> int:
        return self.width * self.height * 3


class SubmitRequest(Content):
    job_id: Identifier
    shot: dict[str, Any]
    condition: ConditionSpec | None = None
    control: bool = True
    video_format: Literal["mp4", "webm", "gif"] = "mp4"
    subscribe: bool = True


class JobRequest(Content):
    job_id: Identifier


class StatusRequest(Content):
    job_id: Identifier | None = None


class ListRequest(Content):
    states: list[JobState] = Field(default_factory=list, max_length=5)
    limit: int = Field(100, ge=1, le=1000)


class SubscribeRequest(Content):
    job_id: Identifier
    after_seq: int = Field(-1, ge=-1, le=2**53)


class FetchRequest(Content):
    job_id: Identifier
    part: Literal["manifest", "video", "frame", "shot"]
    index: int = Field(0, ge=0, le=100_000)
    offset: int = Field(0, ge=0, le=2**53)
    length: int | None = Field(None, ge=1, le=2**53)


# Replies ----------------------------------------------------------------------------------------


class ModelInfo(Content):
    name: str
    kind: str


class HelloReply(Content):
    server: str
    protocol: int
    model: ModelInfo
    device: str
    modalities: list[str]
    limits: Limits
    heartbeat_seconds: float


class JobRecord(Content):
    job_id: Identifier
    state: JobState
    attempts: int
    created: float
    updated: float
    position: int | None = None
    reason: str | None = None
    message: str | None = None
    n_frames: int
    last_seq: int


class SubmitReply(Content):
    job_id: Identifier
    state: JobState
    created: bool
    position: int | None = None


class JobStateReply(Content):
    job_id: Identifier
    state: JobState


class ServerStatus(Content):
    queued: int
    running: str | None
    uptime_seconds: float
    disk_bytes: int
    disk_cap_bytes: int


class StatusReply(Content):
    server: ServerStatus
    job: JobRecord | None = None


class ListReply(Content):
    jobs: list[JobRecord]


class SubscribeReply(Content):
    job_id: Identifier
    state: JobState
    last_seq: int


class JobReply(Content):
    job_id: Identifier


class FetchReply(Content):
    job_id: Identifier
    part: str
    index: int
    offset: int
    size: int
    sha256: str


class ProblemContent(Content):
    where: str
    why: str


class ErrorReply(Content):
    code: ErrorCode
    message: str
    problems: list[ProblemContent] = Field(default_factory=list)


# Events -----------------------------------------------------------------------------------------


class JobEvent(Content):
    job_id: Identifier
    seq: int = Field(ge=0)


class AcceptedEvent(JobEvent):
    n_frames: int


class QueuedEvent(JobEvent):
    position: int
    attempt: int


class StartedEvent(JobEvent):
    attempt: int


class ProgressEvent(JobEvent):
    stage: Stage
    done: int
    total: int


class PreviewEvent(ProgressEvent):
    width: int
    height: int


class FrameEvent(JobEvent):
    index: int
    width: int
    height: int


class DoneEvent(JobEvent):
    n_frames: int
    manifest_sha256: str


class FailedEvent(JobEvent):
    reason: FailReason
    message: str
    hints: list[str] = Field(default_factory=list)


class CancelledEvent(JobEvent):
    pass


# Notices ----------------------------------------------------------------------------------------

DroppableEvent = Literal["progress", "preview", "frame"]


class LaggedNotice(Content):
    """A connection read too slowly: the server dropped some of a job's memory events queued for it."""

    job_id: Identifier
    first_seq: int = Field(ge=0)  # the dropped events' seqs lie in first_seq .. last_seq
    last_seq: int = Field(ge=0)
    dropped: dict[DroppableEvent, int]  # how many of each type


REQUESTS: dict[str, type[Content]] = {
    "hello_request": HelloRequest,
    "submit_request": SubmitRequest,
    "cancel_request": JobRequest,
    "status_request": StatusRequest,
    "list_request": ListRequest,
    "subscribe_request": SubscribeRequest,
    "unsubscribe_request": JobRequest,
    "fetch_request": FetchRequest,
    "delete_request": JobRequest,
}
REPLIES: dict[str, type[Content]] = {
    "hello_reply": HelloReply,
    "submit_reply": SubmitReply,
    "cancel_reply": JobStateReply,
    "status_reply": StatusReply,
    "list_reply": ListReply,
    "subscribe_reply": SubscribeReply,
    "unsubscribe_reply": JobReply,
    "fetch_reply": FetchReply,
    "delete_reply": JobReply,
    "error_reply": ErrorReply,
}
EVENTS: dict[str, type[Content]] = {
    "accepted": AcceptedEvent,
    "queued": QueuedEvent,
    "started": StartedEvent,
    "progress": ProgressEvent,
    "preview": PreviewEvent,
    "frame": FrameEvent,
    "done": DoneEvent,
    "failed": FailedEvent,
    "cancelled": CancelledEvent,
}
STORED_EVENTS = frozenset({"accepted", "queued", "started", "done", "failed", "cancelled"})
NOTICES: dict[str, type[Content]] = {"lagged": LaggedNotice}
CONTENT_TYPES: dict[str, type[Content]] = {**REQUESTS, **REPLIES, **EVENTS, **NOTICES, "heartbeat": Empty}
# How many buffers each type carries; submit_request's depends on its content (checked in decode).
_BUFFERS = {"preview": 1, "frame": 1, "fetch_reply": 1}


class Header(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)

    protocol: int
    id: Identifier
    type: str = Field(max_length=64)
    session: Identifier
    parent: Identifier | None = None
    content: dict[str, Any]
    buffers: int = Field(ge=0)


@dataclass(frozen=True)
class Message:
    """A decoded message: its envelope fields, its typed content and its buffers."""

    type: str
    content: Content
    id: str = field(default_factory=lambda: new_id())
    session: str = "anonymous"
    parent: str | None = None
    buffers: tuple[bytes, ...] = ()


class ProtocolError(Exception):
    """A message that cannot be used: ``code`` (one of ERROR_CODES), a message, problems, and the
    id and type of the offending message when they could be read (so the reply can name it)."""

    def __init__(
        self, code: ErrorCode, message: str, problems: Sequence[Problem] = (),
        message_id: str | None = None, message_type: str | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.code: ErrorCode = code
        self.problems = tuple(problems)
        self.message_id = message_id
        self.message_type = message_type

    def reply(self) -> ErrorReply:
        return ErrorReply(
            code=self.code,
            message=cut_text(str(self), MAX_ERROR_MESSAGE_CHARS),  # bounded: a reply stays small
            problems=[ProblemContent(where=p.where, why=p.why) for p in listed_problems(self.problems)],
        )


def new_id() -> str:
    return secrets.token_hex(12)


_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _problems(error: ValidationError, prefix: str) -> list[Problem]:
    return [Problem(json_path([prefix, *e["loc"]]), e["msg"]) for e in error.errors(include_url=False)]


def encode(message: Message, session: str | None = None) -> list[bytes]:
    """The message's frames: its JSON header, then its buffers."""
    header = {
        "protocol": PROTOCOL_VERSION,
        "id": message.id,
        "type": message.type,
        "session": session or message.session,
        "parent": message.parent,
        "content": message.content.model_dump(mode="json"),
        "buffers": len(message.buffers),
    }
    return [json.dumps(header, allow_nan=False, separators=(",", ":")).encode(), *message.buffers]


def decode(frames: Sequence[bytes], limits: Limits | None = None, accept: frozenset[str] | None = None) -> Message:
    """Frames to a :class:`Message`, checked against ``limits`` and the type's schema.

    ``accept``: the types the receiver handles (others are ``unknown_type``); all known types by
    default. Raises :class:`ProtocolError` for anything wrong."""
    limits = limits or Limits()
    if not frames:
        raise ProtocolError("bad_message", "empty message: a header frame is needed")
    if len(frames) - 1 > limits.max_buffers:
        raise ProtocolError("too_large", f"{len(frames)} frames: at most {limits.max_buffers + 1} are allowed")
    total = sum(len(f) for f in frames)
    if total > limits.max_message_bytes:
        raise ProtocolError("too_large", f"message of {total} bytes: at most {limits.max_message_bytes}")
    raw = frames[0]
    if len(raw) > limits.max_header_bytes:
        raise ProtocolError("too_large", f"header of {len(raw)} bytes: at most {limits.max_header_bytes}")
    try:
        data = json.loads(bytes(raw).decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ProtocolError("bad_message", f"the header is not UTF-8 JSON: {error}") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_message", f"the header must be a JSON object, not {type(data).__name__}")
    # an id that is not a valid identifier cannot be named in the reply's parent
    message_id = data.get("id") if isinstance(data.get("id"), str) and _IDENTIFIER.match(data["id"]) else None
    message_type = data.get("type") if isinstance(data.get("type"), str) and len(data["type"]) <= 64 else None
    version = data.get("protocol")
    if version != PROTOCOL_VERSION or isinstance(version, bool):
        raise ProtocolError(
            "unsupported_version",
            f"protocol version {version!r} is not spoken here; this side speaks version {PROTOCOL_VERSION}",
            message_id=message_id,
            message_type=message_type,
        )
    try:
        header = Header.model_validate(data)
    except ValidationError as error:
        raise ProtocolError(
            "bad_message", "the envelope is not valid", _problems(error, "header"), message_id, message_type
        ) from None
    known = CONTENT_TYPES if accept is None else accept
    if header.type not in known or header.type not in CONTENT_TYPES:
        raise ProtocolError("unknown_type", f"unknown message type {header.type!r}", (), header.id, header.type)
    if header.buffers != len(frames) - 1:
        raise ProtocolError(
            "bad_message",
            f"the header announces {header.buffers} buffers but {len(frames) - 1} came",
            (),
            header.id,
            header.type,
        )
    try:
        content = CONTENT_TYPES[header.type].model_validate(header.content)
    except ValidationError as error:
        raise ProtocolError(
            "invalid_content", f"{header.type}: invalid content", _problems(error, "content"), header.id, header.type
        ) from None
    expected = _BUFFERS.get(header.type, 0)
    if isinstance(content, SubmitRequest):
        expected = 1 if content.condition is not None else 0
    if header.buffers != expected:
        raise ProtocolError(
            "bad_message", f"{header.type} carries {expected} buffers, not {header.buffers}", (), header.id, header.type
        )
    condition = content.condition if isinstance(content, SubmitRequest) else None
    if condition is not None and len(frames[1]) != condition.n_bytes:
        raise ProtocolError(
            "invalid_content",
            f"the condition buffer has {len(frames[1])} bytes; {condition.width}x{condition.height} rgb8"
            f" needs {condition.n_bytes}",
            (),
            header.id,
            header.type,
        )
    return Message(
        type=header.type,
        content=content,
        id=header.id,
        session=header.session,
        parent=header.parent,
        buffers=tuple(bytes(f) for f in frames[1:]),
    )
