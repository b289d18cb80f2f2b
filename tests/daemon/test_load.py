"""A live `anyi2v daemon` process under load and under attack: 100 concurrent clients, then
10,000+ malformed messages while a well-formed client keeps working. Its memory is watched throughout."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import psutil
import pytest
import zmq

from anyi2v.daemon.client import DaemonClient
from anyi2v.shared.protocol import ERROR_CODES, REPLIES, Limits, ProtocolError, decode

from .daemon_helpers import condition_image, free_port, shot_document, start_daemon, wait_ready
from .malformed import malformed_messages

CLIENTS = 100
MALFORMED = 10_000
MiB = 2**20


@dataclass
class Daemon:
    address: str
    process: subprocess.Popen[bytes]
    rss: list[int] = field(default_factory=list)

    def measure(self) -> int:
        rss = int(psutil.Process(self.process.pid).memory_info().rss)
        self.rss.append(rss)
        return rss


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    address = f"tcp://127.0.0.1:{free_port()}"
    process = start_daemon(address, tmp_path_factory.mktemp("loaded"))
    try:
        with DaemonClient(address, timeout=30) as client:
            wait_ready(client)
            client.submit("warm-up", shot_document(frames=2, steps=1), None, control=False)
            assert list(client.events("warm-up", subscribe=False))[-1].type == "done"
        running = Daemon(address, process)
        running.measure()
        yield running
        assert process.poll() is None, "the daemon died"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _one_client(address: str, index: int, outcome: dict[int, object]) -> None:
    job_id = f"load-{index:03d}"
    try:
        with DaemonClient(address, timeout=60) as client:
            client.submit(job_id, shot_document(seed=index, frames=2, steps=1), None, control=False)
            outcome[index] = [
                (event.type, event.seq, len(event.buffers)) for event in client.events(job_id, subscribe=False)
            ]
    except Exception as error:  # reported by the test
        outcome[index] = error


def test_a_hundred_concurrent_clients_each_get_their_job_done_once_with_its_frames(daemon: Daemon) -> None:
    outcome: dict[int, object] = {}
    threads = [threading.Thread(target=_one_client, args=(daemon.address, i, outcome)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        daemon.measure()
        time.sleep(0.5)
    failures = {i: result for i, result in outcome.items() if isinstance(result, Exception)}
    assert not failures, failures
    assert len(outcome) == CLIENTS
    for index, result in outcome.items():
        assert isinstance(result, list)
        kinds = [kind for kind, _, _ in result]
        assert kinds[0] == "accepted", (index, kinds)
        assert kinds.count("done") == 1
        assert kinds[-1] == "done"
        assert [seq for _, seq, _ in result] == list(range(len(result)))  # each event once, in order
        frames = [buffers for kind, _, buffers in result if kind == "frame"]
        assert frames == [1, 1], (index, kinds)
    with DaemonClient(daemon.address) as client:
        records = {job.job_id: job for job in client.list(["done"], limit=1000)}
    assert all(records[f"load-{i:03d}"].attempts == 1 for i in range(CLIENTS))
    growth = max(daemon.rss) - daemon.rss[0]
    assert growth < 32 * MiB, f"the daemon grew by {growth / MiB:.0f} MiB under load"


def _good_client(address: str, stop: threading.Event, served: Counter[str], errors: list[BaseException]) -> None:
    try:
        with DaemonClient(address, timeout=10) as client:
            client.submit("during-fuzz", shot_document(steps=2), condition_image(), subscribe=False)
            kinds = [event.type for event in client.events("during-fuzz")]
            served["job"] += kinds[-1] == "done"
            while not stop.is_set():
                client.status()
                served["status"] += 1
                time.sleep(0.01)
    except BaseException as error:  # reported by the test
        errors.append(error)


def test_malformed_messages_get_typed_errors_and_never_stop_the_daemon(daemon: Daemon) -> None:
    stop = threading.Event()
    served: Counter[str] = Counter()
    errors: list[BaseException] = []
    good = threading.Thread(target=_good_client, args=(daemon.address, stop, served, errors))
    good.start()
    fuzzer = zmq.Context.instance().socket(zmq.DEALER)
    fuzzer.setsockopt(zmq.LINGER, 0)
    fuzzer.connect(daemon.address)
    answers: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    limits = Limits()
    try:
        for number, (kind, frames) in enumerate(malformed_messages(MALFORMED, seed=20261122)):
            kinds[kind] += 1
            fuzzer.send_multipart(frames)
            assert fuzzer.poll(10_000), f"no answer to malformed message {number} ({kind}): {frames[0][:200]!r}"
            try:
                reply = decode(fuzzer.recv_multipart(), limits)
            except ProtocolError as error:
                raise AssertionError(f"message {number} ({kind}) got a reply that is not valid: {error}") from None
            assert reply.type in REPLIES, (number, kind, reply.type)
            if reply.type == "error_reply":
                assert reply.content.code in ERROR_CODES
                answers[reply.content.code] += 1
            else:
                answers["valid by chance"] += 1
            if number % 500 == 0:
                daemon.measure()
        # frames over libzmq's own limit: the connection is dropped before any of our code runs
        for _ in range(3):
            fuzzer.send_multipart([b"{}", b"\x00" * (limits.max_frame_bytes + 1)])
        time.sleep(1.0)
        daemon.measure()
        assert not fuzzer.poll(100), "a frame over the per-frame limit was answered"
    finally:
        stop.set()
        good.join(60)
        fuzzer.close(0)
    assert not errors, errors
    assert served["job"] == 1
    assert served["status"] > 20, served
    errors_answered = sum(count for code, count in answers.items() if code != "valid by chance")
    assert errors_answered >= 0.95 * MALFORMED, answers
    assert {"bad_message", "unknown_type", "invalid_content", "too_large", "unsupported_version"} <= set(answers)
    assert len(kinds) == 11, kinds
    growth = max(daemon.rss) - daemon.rss[0]
    assert growth < 32 * MiB, f"the daemon grew by {growth / MiB:.0f} MiB under malformed input"
    with DaemonClient(daemon.address) as client:
        assert client.status().server.running is None  # alive and idle
