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
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .contents import (
    ERROR_CODES,
    FINAL_STATES,
    IDENTIFIER_PATTERN,
    MAX_ERROR_MESSAGE_CHARS,
    MAX_LIBRARY_MODELS,
    PROTOCOL_VERSION,
    AcceptedEvent,
    CancelledEvent,
    ConditionSpec,
    Content,
    DoneEvent,
    DroppableEvent,
    Empty,
    ErrorCode,
    ErrorReply,
    FailedEvent,
    FailReason,
    FetchReply,
    FetchRequest,
    FrameEvent,
    HelloReply,
    HelloRequest,
    Identifier,
    JobEvent,
    JobRecord,
    JobReply,
    JobRequest,
    JobState,
    JobStateReply,
    LaggedNotice,
    LibraryModel,
    Limits,
    ListReply,
    ListRequest,
    ModelCombination,
    ModelInfo,
    ModelsReply,
    ModelsRequest,
    PreviewEvent,
    ProblemContent,
    ProgressEvent,
    QueuedEvent,
    ServerStatus,
    Stage,
    StartedEvent,
    StatusReply,
    StatusRequest,
    SubmitReply,
    SubmitRequest,
    SubscribeReply,
    SubscribeRequest,
    WeightedName,
)
from .errors import Problem, cut_text, json_path, listed_problems

__all__ = [
    "CONTENT_TYPES",
    "ERROR_CODES",
    "EVENTS",
    "FINAL_STATES",
    "IDENTIFIER_PATTERN",
    "MAX_ERROR_MESSAGE_CHARS",
    "MAX_LIBRARY_MODELS",
    "NOTICES",
    "PROTOCOL_VERSION",
    "REPLIES",
    "REQUESTS",
    "STORED_EVENTS",
    "AcceptedEvent",
    "CancelledEvent",
    "ConditionSpec",
    "Content",
    "DoneEvent",
    "DroppableEvent",
    "Empty",
    "ErrorCode",
    "ErrorReply",
    "FailReason",
    "FailedEvent",
    "FetchReply",
    "FetchRequest",
    "FrameEvent",
    "Header",
    "HelloReply",
    "HelloRequest",
    "Identifier",
    "JobEvent",
    "JobRecord",
    "JobReply",
    "JobRequest",
    "JobState",
    "JobStateReply",
    "LaggedNotice",
    "LibraryModel",
    "Limits",
    "ListReply",
    "ListRequest",
    "Message",
    "ModelCombination",
    "ModelInfo",
    "ModelsReply",
    "ModelsRequest",
    "PreviewEvent",
    "ProblemContent",
    "ProgressEvent",
    "ProtocolError",
    "QueuedEvent",
    "ServerStatus",
    "Stage",
    "StartedEvent",
    "StatusReply",
    "StatusRequest",
    "SubmitReply",
    "SubmitRequest",
    "SubscribeReply",
    "SubscribeRequest",
    "WeightedName",
    "decode",
    "encode",
    "new_id",
]

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
    "models_request": ModelsRequest,
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
    "models_reply": ModelsReply,
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
