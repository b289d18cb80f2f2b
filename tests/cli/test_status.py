"""`anyi2v status`: what a daemon runs on and how busy it is; exit 0 when it answers, 1 when none does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anyi2v.cli import main
from anyi2v.daemon.client import DaemonClient
from anyi2v.daemon.server import Server
from anyi2v.library import readable_size
from anyi2v.status import combination, duration
from tests.daemon.daemon_helpers import condition_image, free_port, shot_document


def test_status_names_the_device_model_and_queue(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--daemon", server.address, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["address"] == server.address
    assert report["device"] == "cpu"
    assert report["model"]["name"]
    assert report["queue"] == {"queued": 0, "running": None}
    assert report["uptime_seconds"] > 0
    assert report["disk"]["cap_bytes"] > 0

    with DaemonClient(server.address, timeout=60) as client:  # a job done: it shows as used disk
        client.submit("status-job", shot_document(), condition_image(), subscribe=False)
        client.follow("status-job", lambda event: None)
    assert main(["status", "--daemon", server.address]) == 0
    lines = capsys.readouterr().out.splitlines()
    labels = [line.split()[0] for line in lines]
    assert labels == ["daemon", "device", "model", "loaded", "library", "queue", "uptime", "disk"]
    assert lines[5].split(None, 1)[1] == "0 waiting, nothing running"
    assert "nothing yet" not in lines[3]  # the worker holds its model after a job
    assert not lines[7].endswith("0 B of")
    assert " of " in lines[7]


def test_no_daemon_is_exit_1_naming_the_address(capsys: pytest.CaptureFixture[str]) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    assert main(["status", "--daemon", address, "--timeout", "0.5"]) == 1
    err = capsys.readouterr().err
    assert "no daemon answered" in err
    assert address in err


def test_bad_arguments_are_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--server-key", str(tmp_path / "server.key")]) == 2
    assert "--client-key" in capsys.readouterr().err
    missing = ["--server-key", str(tmp_path / "server.key"), "--client-key", str(tmp_path / "me.key_secret")]
    assert main(["status", *missing]) == 2
    assert "no such key file" in capsys.readouterr().err
    assert main(["status", "--daemon", "not an address", "--timeout", "0.5"]) == 2
    assert "not an address" in capsys.readouterr().err
    assert main(["status", "--timeout", "0"]) == 2


def test_the_lines_read_as_words() -> None:
    assert duration(42) == "42 s"
    assert duration(125) == "2 min 5 s"
    assert duration(7260) == "2 h 1 min"
    assert duration(90000) == "1 d 1 h"
    assert readable_size(512, binary=True) == "512 B"
    assert readable_size(3 * 2**20, binary=True) == "3.0 MiB"
    assert readable_size(5 * 2**40, binary=True) == "5120.0 GiB"
    loaded = {"checkpoint": "rv51", "motion_module": "mm_v3", "loras": [{"name": "ink", "weight": 0.6}]}
    assert combination(loaded) == "checkpoint rv51, motion module mm_v3, LoRAs ink:0.6"
    assert combination({}) == "the daemon's default"
