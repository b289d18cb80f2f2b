"""Clients that go away, and a worker that hangs: a client that disconnects mid-stream gets the rest
when it comes back; a result no one collects is kept, then purged by the retention rule; a worker
with no progress within the hang timeout is killed and its job run again."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from anyi2v.daemon.client import DaemonClient, DaemonError
from anyi2v.daemon.worker import FAULTS_VARIABLE

from .daemon_helpers import FRAMES, condition_image, running_server, shot_document, wait_ready

# The hang timeout of these tests: well above the longest wait between a job's messages on a 2-core
# machine with two CPU burners and other tests beside it (0.3 to 0.8 s at load 7 to 13, its worker on
# one thread; about 0.06 s of CPU), so a machine ten times slower still passes; the hung job waits it
# out once. Two torch threads on two busy cores wait for each other at every step (a 0.05 s step took
# 3 to 6 s; with 3 s and two threads busy jobs were taken for hung), hence OMP_NUM_THREADS=1.
HANG_TIMEOUT = 5.0


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_a_client_that_disconnects_mid_stream_gets_the_rest_and_the_result(tmp_path: Path) -> None:
    with running_server(tmp_path / "data") as server:
        with DaemonClient(server.address, timeout=20) as first:
            wait_ready(first)
            first.submit("walkaway", shot_document(steps=30), condition_image())
            seen = []
            for event in first.events("walkaway", subscribe=False):
                seen.append(event)
                if event.type == "progress" and event.content.stage == "sampling" and event.content.done == 2:
                    break
        # the first client's socket is closed mid-job; a new one (another session) picks up after it
        with DaemonClient(server.address, timeout=20) as second:
            rest = list(second.events("walkaway", after_seq=seen[-1].seq))
            assert [e.seq for e in rest] == list(range(seen[-1].seq + 1, rest[-1].seq + 1))  # no gap, no repeat
            assert rest[-1].type == "done"
            assert [e.content.index for e in rest if e.type == "frame"] == list(range(FRAMES))
            manifest = second.fetch_result("walkaway", tmp_path / "result")
            assert len(list((tmp_path / "result" / "frames").glob("*.png"))) == manifest["n_frames"] == FRAMES


def test_a_result_no_one_collects_is_kept_then_purged_by_the_retention_rule(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running_server(data, retention_seconds=4.0, purge_interval=0.2) as server:
        with DaemonClient(server.address, timeout=20) as gone:
            wait_ready(gone)
            gone.submit("orphan", shot_document(), condition_image(), subscribe=False)
            assert (data / "inputs" / "orphan.rgb").exists()
        # that client never comes back; someone else watches the daemon
        with DaemonClient(server.address, timeout=20) as watcher:
            _wait_for(lambda: watcher.job("orphan").state == "done", 60, "the orphan job to finish")
            finished = time.monotonic()
            assert (data / "results" / "orphan" / "manifest.json").exists()
            time.sleep(1.0)
            watcher.fetch_part("orphan", "manifest", tmp_path / "manifest.json")  # still kept
            assert json.loads((tmp_path / "manifest.json").read_text())["n_frames"] == FRAMES

            def purged() -> bool:
                try:
                    watcher.status("orphan")
                except DaemonError as error:
                    return error.code == "unknown_job"
                return False

            _wait_for(purged, 30, "the retention rule to purge the orphan job")
            assert time.monotonic() - finished > 2.5  # not before its retention period
            assert not (data / "results" / "orphan").exists()
            assert not (data / "inputs" / "orphan.rgb").exists()


def test_a_worker_that_hangs_is_killed_and_its_job_runs_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAULTS_VARIABLE, json.dumps({"stuck": "hang"}))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # read by the worker's torch
    with (
        running_server(tmp_path, hang_timeout=HANG_TIMEOUT) as server,
        DaemonClient(server.address, timeout=20) as client,
    ):
        wait_ready(client)
        client.submit("stuck", shot_document(), condition_image())
        client.submit("behind", shot_document(seed=2), condition_image(), subscribe=False)
        kinds = [event.type for event in client.events("stuck", subscribe=False)]
        assert kinds.count("started") == 2
        first_run = kinds[: kinds.index("started", kinds.index("started") + 1)]
        assert first_run[-1] == "queued"  # requeued after the hang, not failed
        assert kinds[-1] == "done"
        record = client.job("stuck")
        assert record.attempts == 2
        assert list(client.events("behind"))[-1].type == "done"
