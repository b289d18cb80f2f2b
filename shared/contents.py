"""What each daemon message carries (PROTOCOL.md): the contents of requests, replies, events and notices,
the server's limits, and the names and codes they use. The envelope, the tables of types and the codec
are :mod:`protocol`'s, which re-exports everything here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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


class ModelsRequest(Content):
    """The daemon's model library (as its last look at the models folder found it: at most a few seconds old)."""


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


class WeightedName(Content):
    name: str = Field(max_length=500)
    weight: float


class ModelCombination(Content):
    """Models by name: a daemon's default (as its flags gave them) or what its worker has loaded."""

    checkpoint: str | None = Field(None, max_length=500)
    motion_module: str | None = Field(None, max_length=500)
    loras: list[WeightedName] = Field(default_factory=list, max_length=64)
    motion_loras: list[WeightedName] = Field(default_factory=list, max_length=64)
    vae: str | None = Field(None, max_length=500)
    scheduler: str | None = Field(None, max_length=40)


class LibraryModel(Content):
    """One entry of the library, as ``anyi2v models --json`` lists it (names, never the daemon's paths)."""

    name: str = Field(max_length=500)
    short_name: str | None = Field(None, max_length=500)
    kind: str = Field(max_length=40)
    family: str | None = Field(None, max_length=100)
    version: str | None = Field(None, max_length=100)
    frame_limit: int | None = None
    size_bytes: int = Field(ge=0)
    problem: str | None = Field(None, max_length=1000)
    note: str | None = Field(None, max_length=1000)


MAX_LIBRARY_MODELS = 2000


class ModelsReply(Content):
    """The daemon's library: ``folder`` (on the daemon's machine), ``models`` (the first
    ``MAX_LIBRARY_MODELS`` entries; ``more`` says how many were left out), ``problem`` (why there is no
    library, e.g. no such folder; None when it was read), ``scanned`` (Unix seconds of the listing),
    ``default`` (the daemon's own choice) and ``loaded`` (what its worker holds now; None while none is)."""

    folder: str
    models: list[LibraryModel] = Field(max_length=MAX_LIBRARY_MODELS)
    more: int = Field(0, ge=0)
    problem: str | None = None
    scanned: float
    default: ModelCombination
    loaded: ModelCombination | None = None


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
