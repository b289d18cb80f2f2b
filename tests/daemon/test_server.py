"""The daemon on random loopback ports with the tiny random model: jobs, events, results, errors,
cancel, injected faults, a killed worker and a killed daemon."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
import zmq

from anyi2v.daemon.client import DaemonClient, DaemonError
from anyi2v.daemon.endpoints import is_loopback
from anyi2v.daemon.server import ConfigError, Server, ServerConfig
from anyi2v.daemon.worker import FAULTS_VARIABLE, WorkerConfig
from anyi2v.shared.protocol import Message, StatusRequest, decode, encode

from .daemon_helpers import FRAMES, condition_image, free_port, running_server, shot_document, start_daemon, wait_ready


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("daemon")) as running:
        yield running


@pytest.fixture
def client(server: Server) -> Iterator[DaemonClient]:
    with DaemonClient(server.address, timeout=20) as connected:
        wait_ready(connected)
        yield connected


def test_a_job_streams_its_events_and_its_result_is_whole(client: DaemonClient, tmp_path: Path) -> None:
    hello = client.hello()
    assert hello.protocol == 1
    assert hello.device == "cpu"
    assert "depth" in hello.modalities
    reply = client.submit("whole", shot_document(), condition_image())
    assert reply.created
    assert reply.state == "queued"
    events = list(client.events("whole", subscribe=False))
    kinds = [e.type for e in events]
    assert kinds[:3] == ["accepted", "queued", "started"]
    assert kinds[-1] == "done"
    assert [e.seq for e in events] == list(range(len(events)))  # in order, none missing, none twice
    frames = [e for e in events if e.type == "frame"]
    assert [e.content.index for e in frames] == list(range(FRAMES))
    assert all(len(e.buffers[0]) == 64 * 64 * 3 for e in frames)
    assert {e.content.stage for e in events if e.type == "progress"} >= {"inversion", "sampling", "decode"}

    manifest = client.fetch_result("whole", tmp_path / "result")
    assert manifest["n_frames"] == FRAMES
    video = tmp_path / "result" / "video.mp4"
    assert hashlib.sha256(video.read_bytes()).hexdigest() == manifest["parts"]["video"]["sha256"]
    with av.open(str(video)) as container:
        assert sum(1 for _ in container.decode(video=0)) == FRAMES
    assert json.loads((tmp_path / "result" / "shot.json").read_text())["prompt"] == "a red ball"
    assert len(list((tmp_path / "result" / "frames").glob("*.png"))) == FRAMES

    again = client.submit("whole", shot_document(), condition_image())  # a resubmission after a timeout
    assert not again.created
    assert again.state == "done"
    with pytest.raises(DaemonError) as conflict:
        client.submit("whole", shot_document(seed=8), condition_image())
    assert conflict.value.code == "job_conflict"
    record = client.job("whole")
    assert record.state == "done"
    assert record.attempts == 1
    assert record.last_seq == events[-1].seq
    assert "whole" in [job.job_id for job in client.list(["done"])]


def test_a_warm_worker_inverts_a_condition_once_for_jobs_that_share_it(client: DaemonClient) -> None:
    """The worker keeps recent inversions: a job with the same model, condition image and prompt as an
    earlier one (other seed and track) starts sampling without inverting; another prompt inverts again."""

    def stages(job_id: str, document: dict[str, object]) -> set[str]:
        client.submit(job_id, document, condition_image())
        events = list(client.events(job_id, subscribe=False))
        assert events[-1].type == "done", events[-1]
        return {e.content.stage for e in events if e.type == "progress"}

    first = dict(shot_document(seed=1), prompt="a blue cube, inverted once")
    assert "inversion" in stages("inverts", first)
    again = dict(shot_document(seed=2), prompt="a blue cube, inverted once")
    again["tracks"] = [{"id": "cube", "keyframes": [{"frame": 0, "box": [0.5, 0.5, 0.9, 0.9]},
                                                    {"frame": FRAMES - 1, "box": [0.0, 0.0, 0.4, 0.4]}]}]  # fmt: skip
    reused = stages("reuses", again)
    assert "inversion" not in reused
    assert {"optimization", "sampling", "decode"} <= reused
    assert "inversion" in stages("another-prompt", dict(shot_document(seed=2), prompt="a green cone"))


def test_a_resumed_fetch_continues_from_what_it_has(client: DaemonClient, tmp_path: Path) -> None:
    client.submit("resume", shot_document(seed=3), condition_image(), subscribe=False)
    for _ in client.events("resume"):
        pass
    reply, chunk = client.fetch("resume", "video")
    partial = tmp_path / "video.mp4.partial"
    partial.write_bytes(chunk[: reply.size // 2])  # an interrupted download
    client.fetch_part("resume", "video", tmp_path / "video.mp4")
    assert hashlib.sha256((tmp_path / "video.mp4").read_bytes()).hexdigest() == reply.sha256
    assert not partial.exists()


def test_requests_that_cannot_be_served_get_typed_errors(client: DaemonClient) -> None:
    cases = [
        (lambda: client.status("nobody"), "unknown_job"),
        (lambda: client.submit("bad", {**shot_document(), "prompt": 5}, condition_image()), "invalid_shot"),
        (lambda: client.submit("nocondition", shot_document(), None), "invalid_shot"),
        (lambda: client.submit("toolong", shot_document(frames=65), condition_image()), "invalid_shot"),
    ]
    for call, code in cases:
        with pytest.raises(DaemonError) as caught:
            call()
        assert caught.value.code == code, caught.value
    client.submit("pending", shot_document(steps=50), condition_image(), subscribe=False)
    with pytest.raises(DaemonError) as caught:
        client.fetch("pending", "video")
    assert caught.value.code == "not_ready"
    client.cancel("pending")


def test_raw_bad_messages_get_error_replies_and_the_server_carries_on(server: Server, client: DaemonClient) -> None:
    raw = zmq.Context.instance().socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(server.address)
    try:
        good = Message(type="status_request", content=StatusRequest(), id="r1")
        header = json.loads(encode(good)[0])
        for frames, code in [
            ([b"not json"], "bad_message"),
            ([json.dumps({**header, "protocol": 99}).encode()], "unsupported_version"),
            ([json.dumps({**header, "type": "format_disk"}).encode()], "unknown_type"),
            ([json.dumps(header).encode(), *[b"x"] * 9], "too_large"),
        ]:
            raw.send_multipart(frames)
            assert raw.poll(10_000), f"no answer to a {code} message"
            reply = decode(raw.recv_multipart())
            assert reply.type == "error_reply"
            assert reply.content.code == code
    finally:
        raw.close(0)
    assert client.status().server.queued >= 0  # still serving


def test_cancel_during_a_step_ends_the_job_without_decoding(client: DaemonClient) -> None:
    client.submit("cancelme", shot_document(steps=40), condition_image())
    seen = []
    for event in client.events("cancelme", subscribe=False):
        seen.append(event.type)
        if event.type == "progress" and event.content.stage == "sampling" and event.content.done == 1:
            assert client.cancel("cancelme").state == "running"  # passed to the worker
    assert seen[-1] == "cancelled"
    assert "frame" not in seen
    assert client.job("cancelme").state == "cancelled"


def test_control_requests_are_answered_while_a_job_runs(client: DaemonClient) -> None:
    client.submit("busy", shot_document(steps=40), condition_image())
    for event in client.events("busy", subscribe=False):
        if event.type == "progress" and event.content.stage == "sampling":
            break
    started = time.perf_counter()
    status = client.status("busy")
    assert time.perf_counter() - started < 1.0
    assert status.server.running == "busy"
    client.cancel("busy")
    client.delete("cancelme")
    with pytest.raises(DaemonError, match="unknown_job"):
        client.status("cancelme")


def test_an_out_of_memory_fails_that_job_with_hints_and_the_next_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAULTS_VARIABLE, json.dumps({"oom": "oom", "full": "disk_full"}))
    with running_server(tmp_path) as server, DaemonClient(server.address, timeout=20) as client:
        wait_ready(client)
        client.submit("oom", shot_document(), condition_image(), subscribe=False)
        client.submit("full", shot_document(seed=2), condition_image(), subscribe=False)
        client.submit("after", shot_document(seed=1), condition_image(), subscribe=False)
        oom = list(client.events("oom"))[-1]
        assert oom.type == "failed"
        assert oom.content.reason == "out_of_memory"
        assert any("fewer frames" in hint for hint in oom.content.hints)
        full = list(client.events("full"))[-1]
        assert full.type == "failed"
        assert full.content.reason == "disk_full"
        assert not (tmp_path / "results" / "full").exists()
        assert not (tmp_path / "staging" / "full").exists()
        assert list(client.events("after"))[-1].type == "done"


def test_a_worker_killed_while_loading_again_and_again_stops_the_daemon_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that dies before it is ready (the system killing it for memory while it loads) is
    started again, but not for ever: the third death in a row ends ``serve`` with a ConfigError saying
    what happened, where a daemon used to restart it in a loop."""
    monkeypatch.setenv(FAULTS_VARIABLE, json.dumps({"worker_load": "crash"}))
    config = ServerConfig(
        data_dir=tmp_path, bind="tcp://127.0.0.1:*", worker=WorkerConfig(model="tiny-random", device="cpu"),
        heartbeat_seconds=0.5,
    )  # fmt: skip
    server = Server(config)
    try:
        with pytest.raises(ConfigError, match=r"ended while loading the model 3 times in a row \(last exit code -9"):
            server.serve()
        assert server.supervisor.pid is None  # no worker left behind
    finally:
        server.close()


def test_a_killed_worker_costs_the_job_one_attempt(tmp_path: Path) -> None:
    with running_server(tmp_path) as server, DaemonClient(server.address, timeout=20) as client:
        wait_ready(client)
        client.submit("survivor", shot_document(steps=30), condition_image())
        kinds = []
        for event in client.events("survivor", subscribe=False):
            kinds.append(event.type)
            if event.type == "progress" and event.content.stage == "sampling" and kinds.count("started") == 1:
                os.kill(server.supervisor.pid or 0, signal.SIGKILL)
        assert kinds.count("started") == 2
        assert kinds.count("done") == 1
        assert kinds[-1] == "done"
        assert client.job("survivor").attempts == 2


def test_a_killed_daemon_finishes_each_job_exactly_once_in_order_after_a_restart(tmp_path: Path) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    daemon = start_daemon(address, tmp_path)
    try:
        with DaemonClient(address, timeout=30) as client:
            wait_ready(client)
            client.submit("first", shot_document(steps=30), condition_image())
            for name in ("second", "third"):
                client.submit(name, shot_document(seed=len(name)), condition_image(), subscribe=False)
            last = -1
            for event in client.events("first", subscribe=False):
                last = event.seq
                if event.type == "progress" and event.content.stage == "sampling":
                    break
            os.killpg(daemon.pid, signal.SIGKILL)  # the daemon and its worker, mid-job
            daemon.wait()
            daemon = start_daemon(address, tmp_path)
            client.reconnect()
            wait_ready(client)
            rest = list(client.events("first", after_seq=last))
            assert rest[0].seq > last
            assert rest[-1].type == "done"
            assert [e.type for e in rest].count("done") == 1
            for name in ("second", "third"):
                assert list(client.events(name))[-1].type == "done"
            records = {job.job_id: job for job in client.list()}
            assert records["first"].attempts == 2
            assert records["second"].attempts == 1
            assert records["first"].updated < records["second"].updated < records["third"].updated  # queue order kept
            manifest = client.fetch_result("first", tmp_path / "fetched", frames=False)
            video = (tmp_path / "fetched" / "video.mp4").read_bytes()
            assert hashlib.sha256(video).hexdigest() == manifest["parts"]["video"]["sha256"]
    finally:
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait()


def test_binding_off_loopback_needs_keys_and_a_private_secret_key(tmp_path: Path) -> None:
    assert is_loopback("tcp://127.0.0.1:5557")
    assert is_loopback("ipc:///tmp/x")
    assert is_loopback("tcp://[::1]:1")
    assert not is_loopback("tcp://0.0.0.0:5557")
    assert not is_loopback("tcp://*:5557")
    with pytest.raises(ConfigError, match="needs CURVE keys"):
        Server(ServerConfig(data_dir=tmp_path, bind="tcp://0.0.0.0:*"))
    import zmq.auth

    public, secret = zmq.auth.create_certificates(tmp_path, "server")
    os.chmod(secret, 0o644)
    (tmp_path / "clients").mkdir()
    with pytest.raises(ConfigError, match="readable by others"):
        Server(ServerConfig(data_dir=tmp_path / "data", bind="tcp://0.0.0.0:*", secret_key=Path(secret),
                            authorized_keys=tmp_path / "clients"))  # fmt: skip
    os.chmod(public, 0o600)
    with pytest.raises(ConfigError, match="holds no secret key"):
        Server(ServerConfig(data_dir=tmp_path / "data", bind="tcp://0.0.0.0:*", secret_key=Path(public),
                            authorized_keys=tmp_path / "clients"))  # fmt: skip
