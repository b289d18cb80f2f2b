"""CURVE on a live daemon: an authorized client is served; an unknown key, a wrong server key and a
plaintext client reach no application code. And `anyi2v keys`, which makes the keys."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from anyi2v.cli import main
from anyi2v.daemon.client import ClientKeys, DaemonClient, DaemonError, DaemonTimeoutError
from anyi2v.daemon.server import Server
from tests.conftest import EXAMPLES

from .daemon_helpers import condition_image, running_server, shot_document


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """server and alice (authorized); mallory (a key pair the daemon does not know); impostor (another server)."""
    folder = tmp_path_factory.mktemp("keys")
    for name in ("server", "alice", "mallory", "impostor"):
        assert main(["keys", "create", name, "--dir", str(folder)]) == 0
    authorized = folder / "authorized"
    authorized.mkdir()
    (authorized / "alice.key").write_bytes((folder / "alice.key").read_bytes())
    return folder


@pytest.fixture(scope="module")
def secure_server(keys: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("secure-daemon")
    with running_server(data, secret_key=keys / "server.key_secret", authorized_keys=keys / "authorized") as server:
        yield server


def _alice(server: Server, keys: Path) -> DaemonClient:
    return DaemonClient(server.address, keys=ClientKeys.from_files(keys / "server.key", keys / "alice.key_secret"))


def test_keys_creates_private_secrets_and_prints_the_public_line(
    keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = keys / "alice.key_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert main(["keys", "create", "alice", "--dir", str(keys)]) == 2  # never overwrites a key pair
    assert "exists" in capsys.readouterr().err
    assert main(["keys", "create", "../escape", "--dir", str(keys)]) == 2
    assert main(["keys", "show", "alice", "--dir", str(keys)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("alice.key: ")
    assert len(line.split(": ")[1]) == 40  # a z85 public key
    assert main(["keys", "list", "--dir", str(keys)]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in ("server", "alice", "mallory", "impostor"))
    assert main(["keys", "show", "nobody", "--dir", str(keys)]) == 2


def test_an_authorized_client_is_served(secure_server: Server, keys: Path) -> None:
    with _alice(secure_server, keys) as client:
        assert client.hello().protocol == 1
        assert client.status().server.queued >= 0


@pytest.mark.parametrize("who", ["unknown client key", "wrong server key", "plaintext client"])
def test_a_client_without_the_right_keys_reaches_no_application_code(
    who: str, secure_server: Server, keys: Path
) -> None:
    client_keys = {
        "unknown client key": ClientKeys.from_files(keys / "server.key", keys / "mallory.key_secret"),
        "wrong server key": ClientKeys.from_files(keys / "impostor.key", keys / "alice.key_secret"),
        "plaintext client": None,
    }[who]
    job_id = "intruder-" + who.replace(" ", "-")
    with DaemonClient(secure_server.address, keys=client_keys, timeout=1.5) as intruder:
        with pytest.raises(DaemonTimeoutError):
            intruder.submit(job_id, shot_document(), condition_image(), subscribe=False)
        with pytest.raises(DaemonTimeoutError):
            intruder.status()
    with _alice(secure_server, keys) as client:  # the submit never reached the daemon's code
        with pytest.raises(DaemonError) as caught:
            client.status(job_id)
        assert caught.value.code == "unknown_job"


def test_the_daemon_command_refuses_an_open_bind_without_keys_and_a_readable_secret(
    keys: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["daemon", "--bind", "tcp://0.0.0.0:*", "--data-dir", str(tmp_path)]) == 2
    assert "needs CURVE keys" in capsys.readouterr().err
    readable = tmp_path / "server.key_secret"
    readable.write_bytes((keys / "server.key_secret").read_bytes())
    os.chmod(readable, 0o640)
    command = ["daemon", "--bind", "tcp://0.0.0.0:*", "--data-dir", str(tmp_path), "--server-key", str(readable),
               "--authorized-keys", str(keys / "authorized")]  # fmt: skip
    assert main(command) == 2
    assert "chmod 600" in capsys.readouterr().err


def test_status_with_keys_answers_and_without_them_reports_no_answer(
    secure_server: Server, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command = ["status", "--daemon", secure_server.address, "--timeout", "1"]
    assert main(command) == 1  # plaintext: CURVE drops it without a word
    assert "no daemon answered" in capsys.readouterr().err
    mallory = [*command, "--server-key", str(keys / "server.key"), "--client-key", str(keys / "mallory.key_secret")]
    assert main(mallory) == 1
    alice = ["status", "--daemon", secure_server.address, "--server-key", str(keys / "server.key"),
             "--client-key", str(keys / "alice.key_secret")]  # fmt: skip
    assert main(alice) == 0
    assert capsys.readouterr().out.startswith("daemon ")


def test_animate_runs_a_shot_on_a_daemon_with_keys(secure_server: Server, keys: Path, tmp_path: Path) -> None:
    out = tmp_path / "clip.gif"
    command = ["animate", str(EXAMPLES / "quick_preview.json"), "--daemon", secure_server.address, "--out", str(out)]
    assert main([*command, "--timeout", "1"]) == 1  # without keys: refused
    assert not out.exists()
    keyed = [*command, "--server-key", str(keys / "server.key"), "--client-key", str(keys / "alice.key_secret")]
    assert main(keyed) == 0
    assert out.stat().st_size > 0
