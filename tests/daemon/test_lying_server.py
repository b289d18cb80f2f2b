"""Issue 19 item 8: a daemon that lies about a result makes the client refuse it with one clear
line, before it allocates or writes anything on that word, and never outside its output folder.

A fake daemon (a ROUTER socket on a random loopback port, in a thread) answers hello and fetch
requests with crafted manifests and replies; the checks are also called directly on crafted manifests."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import zmq

from anyi2v.daemon.client import DaemonClient, DaemonTimeoutError, ResultRefusedError
from anyi2v.daemon.manifest_checks import UntrustedResultError, check_manifest, inside, part_ceiling
from anyi2v.shared.protocol import (
    FetchReply,
    FetchRequest,
    HelloReply,
    Limits,
    Message,
    ModelInfo,
    decode,
    encode,
)

JOB = "job-1"
CHUNK = 4 * 2**20
BUDGET = 32 * 2**20  # the fake daemon sends no more in all: a client that believes it cannot fill the disk


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _honest_parts() -> dict[tuple[str, int], bytes]:
    return {("video", 0): b"v" * 1000, ("shot", 0): b"{}", ("frame", 0): b"f0" * 50, ("frame", 1): b"f1" * 50}


def _manifest(parts: dict[tuple[str, int], bytes], **changes: Any) -> dict[str, Any]:
    def part(key: tuple[str, int]) -> dict[str, Any]:
        return {"size": len(parts[key]), "sha256": _sha(parts[key])}

    manifest = {
        "job_id": JOB, "n_frames": 2, "width": 64, "height": 64, "fps": 8.0, "video_format": "mp4",
        "timings": {"sampling": 1.5},
        "parts": {"video": part(("video", 0)), "shot": part(("shot", 0)),
                  "frames": [part(("frame", 0)), part(("frame", 1))]},
    }  # fmt: skip
    for path, value in changes.items():  # "parts.video.size" = 2**50
        *keys, last = path.split(".")
        target: Any = manifest
        for key in keys:
            target = target[int(key)] if isinstance(target, list) else target[key]
        target[last] = value
    return manifest


# A reply maker: (request, the part's bytes) -> (reply content, the chunk sent)
Answer = Callable[[FetchRequest, bytes], tuple[FetchReply, bytes]]


def _honest(request: FetchRequest, data: bytes) -> tuple[FetchReply, bytes]:
    chunk = data[request.offset : request.offset + CHUNK]
    reply = FetchReply(
        job_id=request.job_id, part=request.part, index=request.index, offset=request.offset, size=len(data),
        sha256=_sha(data),
    )  # fmt: skip
    return reply, chunk


class FakeDaemon:
    """Answers hello honestly and fetches from ``files`` through ``answer`` (honest unless changed per part)."""

    def __init__(self, manifest: bytes, parts: dict[tuple[str, int], bytes]) -> None:
        self.files = {("manifest", 0): manifest, **parts}
        self.answers: dict[tuple[str, int], Answer] = {}
        self.fetched: list[tuple[str, int, int]] = []  # (part, index, offset) asked for
        self.sent_bytes = 0
        self.budget = BUDGET
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind("tcp://127.0.0.1:*")
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self.socket.poll(50):
                continue
            peer, *frames = self.socket.recv_multipart()
            request = decode(frames)
            if request.type == "hello_request":
                content: Any = HelloReply(
                    server="liar", protocol=1, model=ModelInfo(name="none", kind="random"), device="cpu",
                    modalities=["depth"], limits=Limits(), heartbeat_seconds=1.0,
                )  # fmt: skip
                reply = Message(type="hello_reply", content=content, parent=request.id)
            else:
                assert isinstance(request.content, FetchRequest)
                fetch = request.content
                key = (fetch.part, fetch.index)
                self.fetched.append((fetch.part, fetch.index, fetch.offset))
                content, chunk = self.answers.get(key, _honest)(fetch, self.files[key])
                chunk = chunk[: max(self.budget - self.sent_bytes, 0)]
                self.sent_bytes += len(chunk)
                reply = Message(type="fetch_reply", content=content, parent=request.id, buffers=(chunk,))
            self.socket.send_multipart([peer, *encode(reply)])

    def __enter__(self) -> FakeDaemon:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self.socket.close(0)
        self.context.term()


@contextmanager
def _fake(manifest: dict[str, Any] | bytes, parts: dict[tuple[str, int], bytes] | None = None) -> Iterator[FakeDaemon]:
    data = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    with FakeDaemon(data, parts if parts is not None else _honest_parts()) as daemon:
        yield daemon


def _files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


def _refused(daemon: FakeDaemon, tmp_path: Path, *, match: str) -> str:
    """Fetch the result into tmp_path/out: refused with a message matching ``match``; nothing lands
    outside out/, and no part file is there."""
    out = tmp_path / "out"
    with DaemonClient(daemon.address, timeout=30) as client:
        client.hello()
        with pytest.raises(ResultRefusedError, match=match) as refused:
            client.fetch_result(JOB, out)
    files = _files(tmp_path)
    assert all(name.startswith("out/") for name in files), files  # nothing outside the output folder
    assert all(name.endswith(".partial") and size == 0 for name, size in files.items()), files  # nor kept in it
    message = str(refused.value)
    assert message.startswith(f"the result of job {JOB} was refused: ")
    assert "\n" not in message
    return message


def test_an_honest_daemon_still_gives_the_whole_result(tmp_path: Path) -> None:
    parts = _honest_parts()
    with _fake(_manifest(parts), parts) as daemon, DaemonClient(daemon.address, timeout=30) as client:
        client.hello()
        manifest = client.fetch_result(JOB, tmp_path / "out")
    assert manifest["n_frames"] == 2
    assert (tmp_path / "out" / "video.mp4").read_bytes() == parts[("video", 0)]
    assert (tmp_path / "out" / "frames" / "0001.png").read_bytes() == parts[("frame", 1)]
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["job_id"] == JOB


def test_a_manifest_reply_claiming_2_to_the_50_bytes_is_refused_at_once(tmp_path: Path) -> None:
    parts = _honest_parts()
    with _fake(_manifest(parts), parts) as daemon:

        def endless(request: FetchRequest, data: bytes) -> tuple[FetchReply, bytes]:
            reply, _ = _honest(request, data)
            return reply.model_copy(update={"size": 2**50}), b"x" * CHUNK  # and bytes for ever

        daemon.answers[("manifest", 0)] = endless
        message = _refused(daemon, tmp_path, match="claims 1125899906842624 bytes")
        assert "manifest" in message
        assert daemon.fetched == [("manifest", 0, 0)]  # one chunk asked for, none kept


def test_a_reply_frame_larger_than_the_protocol_allows_is_never_taken_in(tmp_path: Path) -> None:
    """A frame over ``Limits.max_frame_bytes`` (a daemon that sends gigabytes) makes ZeroMQ drop the
    connection before the client holds it: the fetch times out, nothing is written, and the client
    still talks to the daemon afterwards."""
    parts = _honest_parts()
    with _fake(_manifest(parts), parts) as daemon:
        daemon.budget = 2**30

        def oversized(request: FetchRequest, data: bytes) -> tuple[FetchReply, bytes]:
            reply, _ = _honest(request, data)
            return reply, bytes(Limits().max_frame_bytes + 1)

        daemon.answers[("manifest", 0)] = oversized
        with DaemonClient(daemon.address, timeout=5) as client:
            client.hello()
            with pytest.raises(DaemonTimeoutError):
                client.fetch_result(JOB, tmp_path / "out")
            assert client.reconnect().server == "liar"  # a new connection, as after any timeout
    assert all(size == 0 for size in _files(tmp_path).values())


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"parts.video.size": 2**50}, r"manifest\.parts\.video\.size: 1125899906842624 bytes, more than"),
        ({"parts.frames.1.size": 2**50}, r"manifest\.parts\.frames\[1\]\.size: 1125899906842624 bytes"),
        ({"parts.shot.size": -1}, r"manifest\.parts\.shot\.size: Input should be greater than or equal to 0"),
        ({"parts.video.size": "10"}, r"manifest\.parts\.video\.size: Input should be a valid integer"),
        (
            {"video_format": "../../escaped"},
            r"manifest\.video_format: '\.\./\.\./escaped' is not one of gif, mp4, webm",
        ),
        ({"video_format": "/etc/x"}, r"manifest\.video_format: '/etc/x' is not one of"),
        ({"video_format": "mp4/../../escaped"}, r"manifest\.video_format"),
        ({"n_frames": 1}, r"manifest\.parts\.frames: 2 parts for n_frames 1"),
        ({"n_frames": 2**50}, r"manifest\.n_frames: Input should be less than or equal to 1024"),
        ({"n_frames": 100}, r"manifest\.n_frames: 100, over the daemon's limit of 64"),
        ({"width": 4096, "height": 4096}, r"manifest: 4096x4096, over the daemon's 1048576 pixels"),
        ({"job_id": "someone-else"}, r"manifest\.job_id: 'someone-else', not the job asked for"),
        ({"parts.video.sha256": "../../x"}, r"manifest\.parts\.video\.sha256: String should match pattern"),
        ({"timings.sampling": "slow"}, r"manifest\.timings\.sampling: Input should be a valid number"),
    ],
)
def test_a_manifest_that_cannot_be_right_is_refused_before_any_part_is_fetched(
    tmp_path: Path, changes: dict[str, Any], match: str
) -> None:
    parts = _honest_parts()
    with _fake(_manifest(parts, **changes), parts) as daemon:
        _refused(daemon, tmp_path, match=match)
        assert {part for part, _, _ in daemon.fetched} == {"manifest"}
    assert not (tmp_path / "escaped").exists()
    assert not (tmp_path / "out" / "manifest.json").exists()  # written last, when the result is whole


@pytest.mark.parametrize("garbage", [b"\xff\xfe", b"[1, 2]", b'{"job_id": NaN}', b"{" * 100_000])
def test_a_manifest_that_is_not_a_json_object_is_refused(tmp_path: Path, garbage: bytes) -> None:
    with _fake(garbage) as daemon:
        _refused(daemon, tmp_path, match="manifest")


def test_more_frames_than_the_frame_count_allows_are_refused(tmp_path: Path) -> None:
    parts = _honest_parts()
    manifest = _manifest(parts)
    manifest["parts"]["frames"] = manifest["parts"]["frames"] * 600  # 1200 parts for n_frames 2
    with _fake(manifest, parts) as daemon:
        _refused(daemon, tmp_path, match=r"manifest\.parts\.frames: List should have at most 1024 items")


def test_names_in_a_manifest_are_never_used_for_files(tmp_path: Path) -> None:
    parts = _honest_parts()
    manifest = _manifest(parts)
    manifest["parts"]["video"]["name"] = "../../escaped"  # not a field of the protocol: ignored
    manifest["parts"]["frames"][0]["path"] = str(tmp_path / "escaped")
    with _fake(manifest, parts) as daemon, DaemonClient(daemon.address, timeout=30) as client:
        client.hello()
        client.fetch_result(JOB, tmp_path / "out")
    assert set(_files(tmp_path)) == {f"out/{name}" for name in ("video.mp4", "shot.json", "manifest.json",
                                                              "frames/0000.png", "frames/0001.png")}  # fmt: skip


@pytest.mark.parametrize(
    ("lie", "match"),
    [
        (
            lambda reply, chunk: (reply.model_copy(update={"size": 2**50}), chunk),
            "claims 1125899906842624 bytes; the manifest says 1000",
        ),
        (
            lambda reply, chunk: (reply.model_copy(update={"size": 10}), chunk),
            "claims 10 bytes; the manifest says 1000",
        ),
        (
            lambda reply, chunk: (reply.model_copy(update={"sha256": "0" * 64}), chunk),
            "checksum differs from the manifest",
        ),
        (lambda reply, chunk: (reply, chunk * 3), "a chunk of 3000 bytes at offset 0 of 1000"),
        (lambda reply, chunk: (reply, b""), "a chunk of 0 bytes at offset 0 of 1000"),
        (lambda reply, chunk: (reply.model_copy(update={"part": "shot"}), chunk), "not what was asked"),
        (lambda reply, chunk: (reply.model_copy(update={"offset": 500}), chunk), "not what was asked"),
    ],
)
def test_a_fetch_reply_that_breaks_the_manifest_is_refused_before_its_bytes_are_written(
    tmp_path: Path, lie: Callable[[FetchReply, bytes], tuple[FetchReply, bytes]], match: str
) -> None:
    parts = _honest_parts()
    with _fake(_manifest(parts), parts) as daemon:
        daemon.answers[("video", 0)] = lambda request, data: lie(*_honest(request, data))
        _refused(daemon, tmp_path, match=match)
    partial = tmp_path / "out" / "video.mp4.partial"
    assert not partial.exists() or partial.stat().st_size == 0


def test_a_part_fetched_alone_is_held_to_the_most_it_can_be(tmp_path: Path) -> None:
    parts = _honest_parts()
    with _fake(_manifest(parts), parts) as daemon, DaemonClient(daemon.address, timeout=30) as client:
        client.hello()
        daemon.answers[("video", 0)] = lambda request, data: (
            _honest(request, data)[0].model_copy(update={"size": 2**50}),
            b"x" * CHUNK,
        )
        with pytest.raises(ResultRefusedError, match="the part can have at most"):
            client.fetch_part(JOB, "video", tmp_path / "video.mp4")
        assert daemon.fetched == [("video", 0, 0)]
        assert (tmp_path / "video.mp4.partial").stat().st_size == 0


def test_the_checks_read_crafted_manifests_directly() -> None:
    parts = _honest_parts()
    good = json.dumps(_manifest(parts)).encode()
    assert check_manifest(good, JOB, Limits())["n_frames"] == 2
    with pytest.raises(UntrustedResultError, match="more than a manifest can be"):
        check_manifest(b" " * (5 * 2**20), JOB, Limits())
    with pytest.raises(UntrustedResultError, match="video_format"):
        check_manifest(json.dumps(_manifest(parts, video_format="mp4\x00")).encode(), JOB, Limits())
    assert part_ceiling("video", Limits()) < 2**30  # 64 frames of 1024 x 1024: bounded, far from 2^50


def test_a_file_name_that_leaves_the_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "frames").mkdir(parents=True)
    assert inside(out, "frames/0000.png") == out / "frames" / "0000.png"
    for name in ("../escaped", "/etc/x", "frames/../../escaped"):
        with pytest.raises(UntrustedResultError, match="outside the output folder"):
            inside(out, name)
    (out / "linked").symlink_to(tmp_path)
    with pytest.raises(UntrustedResultError, match="outside the output folder"):
        inside(out, "linked/escaped")
