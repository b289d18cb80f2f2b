"""One daemon per data folder (issue 19, item 1): a second daemon on a folder in use exits 2 naming the
first one's pid and address; the lock goes with the process that holds it, however that ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from anyi2v.cli import main
from anyi2v.daemon.datalock import DataFolderInUseError, DataLock, Holder, running_daemon
from anyi2v.daemon.server import ConfigError, Server, ServerConfig

from .daemon_helpers import free_port, start_daemon


def test_a_second_lock_on_a_folder_names_the_holder_until_it_is_released(tmp_path: Path) -> None:
    assert running_daemon(tmp_path) is None
    first = DataLock(tmp_path)
    first.acquire()
    assert running_daemon(tmp_path) == Holder(os.getpid(), None)
    with pytest.raises(DataFolderInUseError, match=r"in use by daemon pid \d+ \(still starting\)"):
        DataLock(tmp_path).acquire()
    first.publish("tcp://127.0.0.1:5557")
    assert running_daemon(tmp_path) == Holder(os.getpid(), "tcp://127.0.0.1:5557")
    with pytest.raises(DataFolderInUseError) as caught:
        DataLock(tmp_path).acquire()
    assert str(caught.value) == f"data folder {tmp_path} is in use by daemon pid {os.getpid()} at tcp://127.0.0.1:5557"
    first.release()
    assert running_daemon(tmp_path) is None
    second = DataLock(tmp_path)
    second.acquire()
    second.release()


def test_a_second_server_on_a_folder_in_use_is_refused(tmp_path: Path) -> None:
    first = Server(ServerConfig(data_dir=tmp_path, bind="tcp://127.0.0.1:*"))
    try:
        assert running_daemon(tmp_path) == Holder(os.getpid(), first.address)
        with pytest.raises(ConfigError, match=f"in use by daemon pid {os.getpid()} at {first.address}"):
            Server(ServerConfig(data_dir=tmp_path, bind="tcp://127.0.0.1:*"))
    finally:
        first.close()
    assert running_daemon(tmp_path) is None
    Server(ServerConfig(data_dir=tmp_path, bind="tcp://127.0.0.1:*")).close()


def test_the_daemon_command_exits_2_naming_the_holder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "models"  # a folder whose name says "model" is still bad input, not a model failure
    data.mkdir()
    holder = DataLock(data)
    holder.acquire()
    holder.publish("tcp://127.0.0.1:5557")
    monkeypatch.setattr(Server, "serve", lambda self: None)  # were the folder taken: return, not serve
    try:
        assert main(["daemon", "--bind", "tcp://127.0.0.1:*", "--data-dir", str(data)]) == 2
    finally:
        holder.release()
    message = f"data folder {data} is in use by daemon pid {os.getpid()} at tcp://127.0.0.1:5557"
    assert message in capsys.readouterr().err


def _wait_for_holder(folder: Path, pid: int, timeout: float = 60.0) -> Holder:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        holder = running_daemon(folder)
        if holder is not None and holder.pid == pid and holder.address:
            return holder
        time.sleep(0.1)
    raise AssertionError(f"daemon {pid} never took {folder}")


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


@pytest.mark.slow
def test_two_daemon_processes_on_one_folder_and_a_third_after_the_first_dies(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = start_daemon(f"tcp://127.0.0.1:{free_port()}", data)
    third = None
    try:
        holder = _wait_for_holder(data, first.pid)
        command = [sys.executable, "-m", "anyi2v.cli", "daemon", "--model", "tiny-random", "--device", "cpu",
                   "--bind", f"tcp://127.0.0.1:{free_port()}", "--data-dir", str(data)]  # fmt: skip
        try:
            second = subprocess.run(command, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail("a second daemon started on a data folder in use")
        assert second.returncode == 2
        assert f"data folder {data} is in use by daemon pid {first.pid} at {holder.address}" in second.stderr
        assert "Traceback" not in second.stderr
        _kill(first)  # kill -9: the OS gives the lock back
        assert running_daemon(data) is None
        third = start_daemon(f"tcp://127.0.0.1:{free_port()}", data)
        assert _wait_for_holder(data, third.pid).address
    finally:
        _kill(first)
        if third is not None:
            _kill(third)
