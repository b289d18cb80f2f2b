"""Issue 19 item 8: what the daemon keeps on disk is bounded, and so is what it answers.

The disk cap counts the job database; a finished job keeps no input and no request blob; the purge
gives freed database pages back to the file system; an error reply (and `anyi2v validate`) lists a
bounded number of problems and says how many more there are. No socket and no worker: the handlers
run over a real store in a temporary folder."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from anyi2v.cli import main
from anyi2v.daemon.store import Store, folder_bytes
from anyi2v.shared.errors import MAX_LISTED_PROBLEMS, Problem, ShotError
from anyi2v.shared.protocol import JobRequest, Limits, ListRequest, ProtocolError, SubmitRequest, decode, encode

from .daemon_helpers import shot_document
from .store_context import RETENTION_SECONDS, Handlers, fake_result, wire_bytes

SIDE = 128  # the sizeable condition: 128 x 128 rgb8, 48 KiB per job


def _bulky_shot(seed: int) -> dict[str, Any]:
    """A valid shot of about 70 KB: sixteen condition layers with long paths and a long prompt (the
    kind of request whose blobs grew the database to 189 MiB)."""
    document = shot_document(seed=seed)
    document["output"] = {**document["output"], "width": SIDE, "height": SIDE}
    document["prompt"] = "a red ball " * 360
    document["conditions"] = [
        {"source": {"kind": "image", "path": f"layers/{'p' * 4000}{index}.png"}, "modality": "depth"}
        for index in range(16)
    ]
    return document


def _submit(handlers: Handlers, job_id: str, seed: int) -> None:
    condition = np.full((SIDE, SIDE, 3), seed % 251, np.uint8)
    request = SubmitRequest.model_validate(
        {"job_id": job_id, "shot": _bulky_shot(seed), "condition": {"width": SIDE, "height": SIDE}, "subscribe": False}
    )
    reply = handlers.call("submit_request", request, (condition.tobytes(),))
    assert reply.type == "submit_reply", reply


def _database_files(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.glob("jobs.sqlite3*"))


def test_the_disk_use_counts_the_database(tmp_path: Path) -> None:
    store = Store(tmp_path)
    try:
        for index in range(30):  # queued jobs keep their requests: about 2 MB of database
            store.add(f"job-{index}", "digest", {"shot": {"prompt": "x" * 70_000}}, 4, None)
        assert _database_files(tmp_path) > 2_000_000
        assert store.disk_bytes() >= _database_files(tmp_path)
    finally:
        store.close()


def test_200_submits_and_cancels_leave_a_small_database_after_the_purge(tmp_path: Path) -> None:
    store = Store(tmp_path)
    handlers = Handlers(store)
    try:
        for index in range(200):
            _submit(handlers, f"job-{index}", index)
            reply = handlers.call("cancel_request", JobRequest(job_id=f"job-{index}"))
            assert reply.type == "cancel_reply"
        handlers.purge()
        assert _database_files(tmp_path) < 2 * 2**20  # was 14 MB, every request's shot kept forever
        assert folder_bytes(tmp_path / "inputs") == 0  # a cancelled job's condition is not needed again
        assert store.disk_bytes() < 2 * 2**20
        listed = handlers.call("list_request", ListRequest(limit=1000)).content
        assert len(listed.jobs) == 200  # within the retention period the records stay
        assert {job.state for job in listed.jobs} == {"cancelled"}
    finally:
        store.close()


def test_a_queued_job_keeps_its_condition_and_request_until_it_is_final(tmp_path: Path) -> None:
    store = Store(tmp_path)
    handlers = Handlers(store)
    try:
        _submit(handlers, "waiting", 1)
        assert store.condition("waiting") is not None
        assert store.request("waiting")["shot"]["prompt"].startswith("a red ball")
        handlers.call("cancel_request", JobRequest(job_id="waiting"))
        assert store.condition("waiting") is None
    finally:
        store.close()


def test_over_the_cap_the_oldest_finished_jobs_go_until_all_files_fit(tmp_path: Path) -> None:
    store = Store(tmp_path)
    try:
        for index in range(10):
            store.add(f"done-{index}", "digest", {"shot": {}}, 2, None)
            fake_result(store, f"done-{index}", n_frames=2, frame_bytes=25_000)  # about 100 KB each
        store.add("waiting", "digest", {"shot": {"prompt": "x" * 200_000}}, 2, None)  # never purged
        cap = 600_000
        deleted = store.purge(RETENTION_SECONDS, cap)
        assert deleted == [f"done-{index}" for index in range(len(deleted))]  # oldest first
        assert folder_bytes(tmp_path) - folder_bytes(tmp_path / "daemon.lock") <= cap  # the database counted
        assert store.disk_bytes() <= cap
        assert store.get("waiting") is not None
        kept = [f"done-{index}" for index in range(len(deleted), 10)]
        assert kept
        assert all(store.result_path(job_id).is_dir() for job_id in kept)
    finally:
        store.close()


def test_9000_invalid_keyframes_get_a_bounded_error_reply(tmp_path: Path) -> None:
    document = shot_document()
    document["tracks"][0]["keyframes"] = [{"frame": 0, "box": [0.9, 0.9, 0.1, 0.1]}] * 9000
    store = Store(tmp_path)
    try:
        request = SubmitRequest.model_validate({"job_id": "bad", "shot": document, "control": False})
        reply = Handlers(store).call("submit_request", request)
    finally:
        store.close()
    assert reply.type == "error_reply"
    assert wire_bytes(reply) < 16_000  # was 1.07 MB: more than a client's header limit
    problems = reply.content.problems
    assert len(problems) == MAX_LISTED_PROBLEMS + 1
    assert problems[0].where == "shot.tracks[0].keyframes[0].box"
    assert problems[-1].why == f"and {9000 - MAX_LISTED_PROBLEMS:,} more"
    assert decode(encode(reply), Limits()).content == reply.content  # a client reads it whole


def test_a_protocol_error_cuts_long_texts_and_long_lists() -> None:
    error = ProtocolError("invalid_content", "m" * 100_000, [Problem("w" * 100_000, "y" * 100_000)] * 50)
    reply = error.reply()
    assert len(json.dumps(reply.model_dump())) < 16_000
    assert reply.problems[-1].why == f"and {50 - MAX_LISTED_PROBLEMS} more"


def test_a_shot_error_lists_the_first_problems_and_counts_the_rest() -> None:
    error = ShotError("shot.json", [Problem(f"tracks[{i}]", "bad") for i in range(9000)])
    lines = error.render().splitlines()
    assert lines[0] == "shot.json: 9000 problems"
    assert lines[1:3] == ["  tracks[0]: bad", "  tracks[1]: bad"]
    assert lines[-1] == f"  and {9000 - MAX_LISTED_PROBLEMS:,} more"
    assert len(lines) == MAX_LISTED_PROBLEMS + 2
    assert len(error.problems) == 9000  # the value keeps them all


def test_validate_prints_a_bounded_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = shot_document()
    document["conditions"][0]["source"]["path"] = "condition.png"
    document["tracks"][0]["keyframes"] = [{"frame": 0, "box": [0.9, 0.9, 0.1, 0.1]}] * 9000
    path = tmp_path / "shot.json"
    path.write_text(json.dumps(document))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err) < 8_000  # was 860 KB
    assert len(err.splitlines()) <= MAX_LISTED_PROBLEMS + 2
    more = re.search(r"and ([\d,]+) more", err)
    assert more is not None
    assert int(more.group(1).replace(",", "")) >= 9000 - MAX_LISTED_PROBLEMS
