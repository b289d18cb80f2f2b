"""The daemon's requests (PROTOCOL.md, Requests and replies): one function per request type.

Each handler is named after the request type it answers and takes the :class:`HandlerContext` (what
the server lends it: the job store, the worker's supervisor, the fan-out, the limits), the peer (the
ROUTER identity to answer) and the decoded :class:`~anyi2v.shared.protocol.Message`. It sends exactly
one reply, ``<verb>_reply``, or raises :class:`~anyi2v.shared.protocol.ProtocolError`, which
:func:`handle` turns into the ``error_reply``; any other exception becomes an ``internal`` error
reply, so a handler's bug never ends the server's loop (ipykernel's rule).

:data:`HANDLERS` is the table, keyed by the protocol's request types (``REQUESTS`` in
``anyi2v.shared.protocol``): building it fails at import when a request type has no handler.
Handlers answer at once: nothing here waits on the GPU, which is the worker process's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from anyi2v.daemon import TINY_RANDOM, TOY_WORLD
from anyi2v.shared.document import parse_shot
from anyi2v.shared.errors import Problem, ShotError
from anyi2v.shared.protocol import (
    PROTOCOL_VERSION,
    REPLIES,
    REQUESTS,
    Content,
    FetchReply,
    FetchRequest,
    HelloReply,
    JobReply,
    JobRequest,
    JobStateReply,
    Limits,
    ListReply,
    ListRequest,
    Message,
    ModelCombination,
    ModelInfo,
    ModelsReply,
    ProtocolError,
    ServerStatus,
    StatusReply,
    StatusRequest,
    SubmitReply,
    SubmitRequest,
    SubscribeReply,
    SubscribeRequest,
)
from anyi2v.shared.shot import Shot

from .fanout import Fanout
from .model_index import Listing, ModelIndex, choice_problems, motion_frame_limit
from .ownership import LOCAL, Caller
from .result_parts import NoSuchFrameError, ResultGoneError, locate_part, read_chunk
from .store import Store
from .supervisor import Supervisor

log = logging.getLogger("anyi2v.daemon")
SERVER_NAME = "anyi2v-studio daemon"
ERROR_REPLY: Final = "error_reply"


@dataclass(frozen=True)
class HandlerContext:
    """What the server lends its handlers."""

    store: Store
    supervisor: Supervisor
    fanout: Fanout
    limits: Limits
    model: str | None  # the model the worker loads (None: the embedded toy model)
    heartbeat_seconds: float
    disk_cap_bytes: int
    started: float  # time.time() when the server started
    send: Callable[[bytes, Message], None]  # to one peer, never blocking
    purge: Callable[[], None]  # the retention sweep
    caller: Caller = LOCAL  # who sent the request being handled (ownership.py); set per request
    models: ModelIndex | None = None  # the model library (model_index.py); None: the daemon has none
    default_models: ModelCombination = field(default_factory=ModelCombination)  # the daemon's own, as its flags say


Handler = Callable[[HandlerContext, bytes, Message], None]


def reply_type(request_type: str) -> str:
    """The reply that answers a request: ``<verb>_request`` -> ``<verb>_reply``."""
    return request_type.removesuffix("_request") + "_reply"


def error_message(parent: str | None, error: ProtocolError) -> Message:
    """The ``error_reply`` for ``error``, answering the message ``parent`` (None when it had no usable id)."""
    return Message(type=ERROR_REPLY, content=error.reply(), parent=parent)


def handle(context: HandlerContext, peer: bytes, message: Message) -> None:
    """Answer one decoded request through its handler. Never raises: a :class:`ProtocolError` becomes
    its ``error_reply``, any other exception an ``internal`` one."""
    try:
        handler = HANDLERS.get(message.type)
        if handler is None:
            raise ProtocolError("unknown_type", f"unknown message type {message.type!r}", (), message.id, message.type)
        handler(context, peer, message)
    except ProtocolError as error:
        context.send(peer, error_message(message.id, error))
    except Exception as error:  # a handler's bug must never end the loop
        log.exception("internal error handling %s", message.type)
        internal = ProtocolError("internal", f"internal error: {type(error).__name__}: {error}")
        context.send(peer, error_message(message.id, internal))


def _reply(
    context: HandlerContext, peer: bytes, request: Message, content: Content, buffers: tuple[bytes, ...] = ()
) -> None:
    context.send(peer, Message(type=reply_type(request.type), content=content, parent=request.id, buffers=buffers))


def _job(context: HandlerContext, job_id: str) -> Any:
    """The job's row; ``unknown_job`` when there is none, or when it is another key's (the same error:
    whether another key's job exists is never told)."""
    row = context.store.get(job_id)
    if row is None or not context.caller.may_see(row["owner"]):
        raise ProtocolError("unknown_job", f"no job {job_id!r} (never submitted, or deleted)")
    return row


# Handlers, one per request type -----------------------------------------------------------------


def hello_request(context: HandlerContext, peer: bytes, message: Message) -> None:
    """Who this server is: its model, device, limits and heartbeat."""
    info = context.supervisor.info or {}
    name = context.model or TOY_WORLD
    kind = "embedded toy model" if name == TOY_WORLD else ("random" if name == TINY_RANDOM else "diffusers")
    reply = HelloReply(
        server=SERVER_NAME,
        protocol=PROTOCOL_VERSION,
        model=ModelInfo(name=Path(name).name if kind == "diffusers" else name, kind=kind),
        device=str(info.get("device", "loading")),
        modalities=list(info.get("modalities", [])),
        limits=context.limits,
        heartbeat_seconds=context.heartbeat_seconds,
    )
    _reply(context, peer, message, reply)


def _parsed(shot: dict[str, Any], max_frames: int) -> Shot:
    try:
        return parse_shot(shot, source="shot", max_frames=max_frames)
    except ShotError as error:
        problems = [Problem(f"shot.{p.where}" if p.where else "shot", p.why) for p in error.problems]
        raise ProtocolError("invalid_shot", "the shot is not valid", problems) from None


def check_submission(context: HandlerContext, request: SubmitRequest) -> int:
    """The shot's frame count, after every check that needs no model; raises ProtocolError."""
    limits = context.limits
    shot = _parsed(request.shot, limits.max_n_frames)
    listing = context.models.current if context.models is not None else None
    if shot.model is not None:
        problems = choice_problems(shot.model, listing or Listing(Path(), None, "it was started without one", 0.0))
        if problems:
            raise ProtocolError("invalid_shot", "the shot names models this daemon does not have", problems)
    # The motion module's frame limit: the one the shot names, else the one the worker loaded at start.
    module_limit = motion_frame_limit(shot.model, listing) if listing is not None else None
    if module_limit is None and context.supervisor.info is not None:
        module_limit = int(context.supervisor.info["max_frames"])
    if module_limit is not None and shot.output.n_frames > module_limit:
        shot = _parsed(request.shot, min(limits.max_n_frames, module_limit))  # the shot's own error, as before
    out = shot.output
    if out.width * out.height > limits.max_pixels:
        raise ProtocolError(
            "invalid_shot",
            f"output {out.width}x{out.height} is over this daemon's limit of {limits.max_pixels} pixels",
            [Problem("shot.output", "too many pixels")],
        )
    condition = request.condition
    if request.control and condition is None:
        raise ProtocolError(
            "invalid_shot", "AnyI2V needs a condition image (or submit with control false)",
            [Problem("condition", "missing")],
        )  # fmt: skip
    if condition is not None and (condition.width, condition.height) != (out.width, out.height):
        raise ProtocolError(
            "invalid_shot",
            f"the condition image is {condition.width}x{condition.height}, the shot's output is"
            f" {out.width}x{out.height}",
            [Problem("condition", "size differs from shot.output")],
        )
    return out.n_frames


def submit_request(context: HandlerContext, peer: bytes, message: Message) -> None:
    """Queue a new job (or answer with the state of the same job submitted before)."""
    store = context.store
    request = message.content
    assert isinstance(request, SubmitRequest)
    payload = request.model_dump(mode="json", exclude={"job_id", "subscribe"})
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode())
    for buffer in message.buffers:
        digest.update(buffer)
    row = store.get(request.job_id)
    if row is not None and not context.caller.may_see(row["owner"]):
        raise ProtocolError("job_conflict", f"job id {request.job_id!r} is taken; submit with another job id")
    if row is not None:
        if row["digest"] != digest.hexdigest():
            raise ProtocolError("job_conflict", f"job {request.job_id!r} was submitted before with different content")
        if request.subscribe:
            context.fanout.subscribe(peer, request.job_id, message.id)
        position = store.position(request.job_id)
        reply = SubmitReply(job_id=request.job_id, state=row["state"], created=False, position=position)
        _reply(context, peer, message, reply)
        return
    n_frames = check_submission(context, request)
    if store.count("queued") >= context.limits.max_queued:
        raise ProtocolError("queue_full", f"{context.limits.max_queued} jobs are already waiting; try again later")
    incoming = sum(len(b) for b in message.buffers)
    if store.disk_bytes() + incoming > context.disk_cap_bytes:
        context.purge()
        if store.disk_bytes() + incoming > context.disk_cap_bytes:
            raise ProtocolError(
                "disk_full", "the daemon's results are at its disk cap; delete old results and try again"
            )
    condition = message.buffers[0] if message.buffers else None
    store.add(request.job_id, digest.hexdigest(), payload, n_frames, condition, owner=context.caller.owner)
    if request.subscribe:
        context.fanout.subscribe(peer, request.job_id, message.id)
    position = store.position(request.job_id)
    events = store.transition(
        request.job_id,
        "queued",
        [("accepted", {"n_frames": n_frames}), ("queued", {"position": position, "attempt": 1})],
    )
    _reply(context, peer, message, SubmitReply(job_id=request.job_id, state="queued", created=True, position=position))
    context.fanout.emit_all(request.job_id, events)


def models_request(context: HandlerContext, peer: bytes, message: Message) -> None:
    """The model library as last scanned, the daemon's default models and what its worker holds."""
    listing = (
        context.models.current
        if context.models is not None
        else Listing(Path(), None, "this daemon was started without a model library", 0.0)
    )
    models, more = listing.models()
    folder = str(listing.folder) if context.models is not None else ""
    problem, scanned = listing.problem, listing.scanned
    loaded = context.supervisor.loaded
    reply = ModelsReply(
        folder=folder,
        models=models,
        more=more,
        problem=problem,
        scanned=scanned,
        default=context.default_models,
        loaded=ModelCombination.model_validate(loaded) if loaded is not None else None,
    )
    _reply(context, peer, message, reply)


def cancel_request(context: HandlerContext, peer: bytes, message: Message) -> None:
    """Cancel a queued job at once; ask the worker to stop a running one."""
    request = message.content
    assert isinstance(request, JobRequest)
    row = _job(context, request.job_id)
    state = row["state"]
    if state == "queued":
        events = context.store.transition(request.job_id, "cancelled", [("cancelled", {})])
        context.fanout.emit_all(request.job_id, events)
        state = "cancelled"
    elif state == "running":
        context.supervisor.cancel(request.job_id)
    _reply(context, peer, message, JobStateReply(job_id=request.job_id, state=state))


def _visible(context: HandlerContext, job_id: str | None) -> str | None:
    """``job_id`` when the caller may see that job, else None."""
    row = None if job_id is None else context.store.get(job_id)
    return job_id if row is not None and context.caller.may_see(row["owner"]) else None


def server_status(context: HandlerContext) -> ServerStatus:
    return ServerStatus(
        queued=context.store.count("queued"),
        running=_visible(context, context.supervisor.job_id),
        uptime_seconds=time.time() - context.started,
        disk_bytes=context.store.disk_bytes(),
        disk_cap_bytes=context.disk_cap_bytes,
    )


def status_request(context: HandlerContext, peer: bytes, message: Message) -> None:
    """The server's queue and disk, and one job's record if asked."""
    request = message.content
    assert isinstance(request, StatusRequest)
    job = None
    if request.job_id is not None:
        _job(context, request.job_id)
        job = context.store.record(request.job_id)
    _reply(context, peer, message, StatusReply(server=server_status(context), job=job))


def list_request(context: HandlerContext, peer: bytes, message: Message) -> None:
    """The caller's job records (an admin's: everyone's), newest first."""
    request = message.content
    assert isinstance(request, ListRequest)
    owner = None if context.caller.admin else context.caller.owner
    jobs = context.store.records(list(request.states), request.limit, owner=owner)
    _reply(context, peer, message, ListReply(jobs=jobs))


def subscribe_request(context: HandlerContext, peer: bytes, message: Message) -> None:
    """Follow a job: the reply, then its events after ``after_seq`` still held, then new ones."""
    request = message.content
    assert isinstance(request, SubscribeRequest)
    row = _job(context, request.job_id)
    context.fanout.subscribe(peer, request.job_id, message.id)
    reply = SubscribeReply(job_id=request.job_id, state=row["state"], last_seq=row["seq_used"])
    _reply(context, peer, message, reply)
    stored = context.store.events_after(request.job_id, request.after_seq)
    context.fanout.replay(peer, request.job_id, message.id, request.after_seq, stored)


def unsubscribe_request(context: HandlerContext, peer: bytes, message: Message) -> None:
    """Stop following a job."""
    request = message.content
    assert isinstance(request, JobRequest)
    context.fanout.unsubscribe(peer, request.job_id)
    _reply(context, peer, message, JobReply(job_id=request.job_id))


def fetch_request(context: HandlerContext, peer: bytes, message: Message) -> None:
    """One chunk of a done job's result part, with the whole part's size and checksum."""
    request = message.content
    assert isinstance(request, FetchRequest)
    row = _job(context, request.job_id)
    if row["state"] != "done":
        raise ProtocolError("not_ready", f"job {request.job_id!r} is {row['state']}: only a done job has a result")
    max_chunk = context.limits.max_chunk_bytes
    try:
        found = locate_part(request.job_id, context.store.result_path(request.job_id), request.part, request.index)
        chunk = read_chunk(request.job_id, found, request.offset, min(request.length or max_chunk, max_chunk))
    except NoSuchFrameError as error:
        raise ProtocolError(
            "invalid_content", str(error), [Problem("content.index", f"at most {error.n_frames - 1}")]
        ) from None
    except ResultGoneError as error:  # deleted or damaged by hand: said on every fetch, and in the job's record
        if error.gone:
            context.store.mark_result_gone(request.job_id, str(error))
        raise ProtocolError("result_gone", str(error)) from None
    reply = FetchReply(
        job_id=request.job_id, part=request.part, index=request.index, offset=request.offset, size=found.size,
        sha256=found.sha256,
    )  # fmt: skip
    _reply(context, peer, message, reply, buffers=(chunk,))


def delete_request(context: HandlerContext, peer: bytes, message: Message) -> None:
    """Forget a job that is not running: its record, events and files."""
    request = message.content
    assert isinstance(request, JobRequest)
    row = _job(context, request.job_id)
    if row["state"] == "running":
        raise ProtocolError("not_ready", f"job {request.job_id!r} is running: cancel it first")
    context.fanout.forget_job(request.job_id)
    context.store.delete(request.job_id)
    _reply(context, peer, message, JobReply(job_id=request.job_id))


def _table(*handlers: Handler) -> Mapping[str, Handler]:
    """The handlers keyed by the protocol's request types, each found under its own name; refuses a
    request type without a handler, a handler for no request type, and a reply the protocol lacks."""
    by_name = {handler.__name__: handler for handler in handlers}
    missing = sorted(REQUESTS.keys() - by_name.keys())
    extra = sorted(by_name.keys() - REQUESTS.keys())
    unanswerable = sorted(name for name in REQUESTS if reply_type(name) not in REPLIES)
    if missing or extra or unanswerable:
        raise RuntimeError(f"handler table: no handler for {missing}, no request {extra}, no reply for {unanswerable}")
    return MappingProxyType({name: by_name[name] for name in REQUESTS})


#: Request type (the protocol's name) -> its handler.
HANDLERS: Final[Mapping[str, Handler]] = _table(
    hello_request,
    submit_request,
    cancel_request,
    status_request,
    list_request,
    subscribe_request,
    unsubscribe_request,
    fetch_request,
    delete_request,
    models_request,
)
