"""`anyi2v animate --daemon`: the shot runs on a daemon and the same files as a local run come back."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from anyi2v.cli import main
from anyi2v.daemon.client import DaemonClient
from anyi2v.daemon.server import Server
from tests.conftest import EXAMPLES

SHOT = EXAMPLES / "quick_preview.json"


def _frames(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(path)) for path in sorted(folder.glob("frame-*.png"))]


def test_a_remote_run_writes_what_a_local_run_writes(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    remote, local = tmp_path / "remote", tmp_path / "local"
    assert main(["animate", str(SHOT), "--daemon", server.address, "--out", str(remote)]) == 0
    captured = capsys.readouterr()
    assert "sampling [" in captured.err  # the same progress bar
    assert "timings (on the daemon)" in captured.err
    assert main(["animate", str(SHOT), "--model", "tiny-random", "--device", "cpu", "--out", str(local)]) == 0
    remote_frames, local_frames = _frames(remote), _frames(local)
    assert len(remote_frames) == 16
    for a, b in zip(remote_frames, local_frames, strict=True):
        np.testing.assert_array_equal(a, b)  # the daemon runs the very same computation
    assert json.loads((remote / "shot.json").read_text()) == json.loads((local / "shot.json").read_text())


def test_running_the_same_command_again_fetches_the_job_already_done(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "clip.mp4"
    assert main(["animate", str(SHOT), "--daemon", server.address, "--out", str(out)]) == 0
    first = out.read_bytes()
    with DaemonClient(server.address) as client:
        jobs = len(client.list())
    out.unlink()
    capsys.readouterr()
    assert main(["animate", str(SHOT), "--daemon", server.address, "--out", str(out)]) == 0
    assert "already on the daemon (done)" in capsys.readouterr().err
    assert out.read_bytes() == first
    with DaemonClient(server.address) as client:
        assert len(client.list()) == jobs  # not run twice
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 16
        assert json.loads(container.metadata["comment"])["prompt"] == json.loads(SHOT.read_text())["prompt"]
    assert json.loads(out.with_name("clip.mp4.shot.json").read_text())["prompt"]


def test_remote_runs_refuse_local_choices_and_name_a_missing_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "clip.mp4"
    daemon = ["animate", str(SHOT), "--daemon", "tcp://127.0.0.1:9", "--out", str(out)]
    assert main([*daemon, "--device", "cpu"]) == 2
    assert "--device: the daemon chooses" in capsys.readouterr().err
    assert main([*daemon, "--tokenizer", str(tmp_path)]) == 2
    assert "--tokenizer: the daemon reads its own models folder" in capsys.readouterr().err
    assert main([*daemon, "--model", str(tmp_path / "mine.safetensors")]) == 2  # a path of this machine
    assert "with --daemon, name the daemon's models" in capsys.readouterr().err
    command = ["animate", str(SHOT), "--daemon", "tcp://127.0.0.1:9", "--out", str(out)]
    assert main([*command, "--server-key", str(tmp_path / "server.key")]) == 2
    assert "needs both --server-key" in capsys.readouterr().err
    assert main([*command, "--timeout", "0.5"]) == 1
    assert "tcp://127.0.0.1:9 within 0 s" in capsys.readouterr().err
    assert not out.exists()


def test_two_keys_asking_for_the_same_work_get_two_job_ids() -> None:
    """Job ids are one namespace on a daemon and another key's job is invisible to a key, so the same
    shot from two keys must not share an id (the second got job_conflict)."""
    from anyi2v.remote import content_job_id

    document, condition = {"prompt": "a torus"}, np.zeros((4, 4, 3), np.uint8)
    local = content_job_id(document, condition, True, "mp4")
    alice = content_job_id(document, condition, True, "mp4", b"A" * 40)
    bob = content_job_id(document, condition, True, "mp4", b"B" * 40)
    assert len({local, alice, bob}) == 3
    assert alice == content_job_id(document, condition, True, "mp4", b"A" * 40)  # the same work again: found
    assert local == content_job_id(document, condition, True, "mp4", b"")
