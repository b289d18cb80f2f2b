"""The daemon's handlers over a real job store in a folder, with no socket and no worker: what a test
of storage, purging or fetching needs. Replies are collected in a list."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from anyi2v.daemon.fanout import Fanout
from anyi2v.daemon.handlers import HandlerContext, handle
from anyi2v.daemon.store import Store
from anyi2v.shared.protocol import Content, ErrorReply, Limits, Message, encode

RETENTION_SECONDS = 7 * 86400.0


class Handlers:
    """``call(type, content)`` answers one request as the server would; ``sent`` holds every reply."""

    def __init__(self, store: Store, disk_cap_bytes: int = 20 * 2**30) -> None:
        self.store = store
        self.sent: list[Message] = []
        self.cap = disk_cap_bytes
        supervisor = SimpleNamespace(info=None, job_id=None, cancel=lambda job_id: None)
        self.context = HandlerContext(
            store=store, supervisor=cast(Any, supervisor), fanout=Fanout(Limits(), self._send), limits=Limits(),
            model=None, heartbeat_seconds=1.0, disk_cap_bytes=disk_cap_bytes, started=time.time(), send=self._send,
            purge=self.purge,
        )  # fmt: skip

    def _send(self, peer: bytes, message: Message) -> None:
        self.sent.append(message)

    def purge(self) -> list[str]:
        return self.store.purge(RETENTION_SECONDS, self.cap)

    def call(self, kind: str, content: Content, buffers: tuple[bytes, ...] = ()) -> Message:
        """The reply to one request (its ``error_reply`` included)."""
        request = Message(type=kind, content=content, buffers=buffers)
        handle(self.context, b"peer", request)
        replies = [m for m in self.sent if m.parent == request.id]
        assert len(replies) == 1, replies
        return replies[0]

    def error(self, kind: str, content: Content) -> ErrorReply:
        reply = self.call(kind, content)
        assert isinstance(reply.content, ErrorReply), reply
        return reply.content


def wire_bytes(message: Message) -> int:
    """The bytes a message takes on the wire (header and buffers)."""
    return sum(len(frame) for frame in encode(message))


def fake_result(store: Store, job_id: str, n_frames: int = 2, frame_bytes: int = 100) -> int:
    """Write a result folder for ``job_id`` as the worker would (manifest last) and mark the job done;
    returns the result's size in bytes."""
    import hashlib

    staging = store.staging_path(job_id)
    (staging / "frames").mkdir(parents=True)

    def part(path: Path, data: bytes) -> dict[str, Any]:
        path.write_bytes(data)
        return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    manifest = {
        "job_id": job_id, "n_frames": n_frames, "width": 64, "height": 64, "fps": 8.0, "video_format": "mp4",
        "timings": {"sampling": 1.0},
        "parts": {
            "video": part(staging / "video.mp4", b"v" * frame_bytes * n_frames),
            "shot": part(staging / "shot.json", b"{}"),
            "frames": [part(staging / "frames" / f"{i:04d}.png", bytes([i]) * frame_bytes) for i in range(n_frames)],
        },
    }  # fmt: skip
    manifest_bytes = json.dumps(manifest).encode()
    (staging / "manifest.json").write_bytes(manifest_bytes)
    size = store.promote(job_id)
    done = {"n_frames": n_frames, "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest()}
    store.transition(job_id, "done", [("done", done)], result_bytes=size)
    return size
