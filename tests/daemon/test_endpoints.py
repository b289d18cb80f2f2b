"""The daemon's --bind address is parsed strictly (issue 19, item 2): one tcp:// or ipc:// endpoint, host
and port checked; anything ZeroMQ would read as more than one loopback address is refused or needs keys."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from anyi2v.cli import main
from anyi2v.daemon.endpoints import EndpointError, is_loopback, parse_endpoint
from anyi2v.daemon.server import ConfigError, Server, ServerConfig

LOOPBACK = [
    "tcp://127.0.0.1:5557",
    "tcp://127.8.9.10:5557",
    "tcp://127.0.0.1:*",
    "tcp://localhost:5557",
    "tcp://[::1]:5557",
    "tcp://[::1]:*",
    "tcp://127.0.0.1:1",
    "tcp://127.0.0.1:65535",
    "ipc:///tmp/anyi2v-daemon.sock",
]
OPEN = [  # valid, but reachable from other machines: keys needed
    "tcp://0.0.0.0:5557",
    "tcp://*:5557",
    "tcp://*:*",
    "tcp://[::]:5557",
    "tcp://192.168.1.20:5557",
    "tcp://[::ffff:127.0.0.1]:5557",  # an IPv4-mapped address: not treated as loopback
    "tcp://[2001:db8::1]:5557",
]
INVALID = [
    "tcp://127.0.0.1:1;*:5555",  # ZeroMQ: source 127.0.0.1:1, listening on every interface
    "tcp://127.0.0.1:5557;",
    "tcp://0:5557",  # ZeroMQ reads 0 as 0.0.0.0
    "tcp://127.1:5557",
    "tcp://0x7f.0.0.1:5557",
    "tcp://eth0:5557",  # an interface name
    "tcp://lo:5557",
    "tcp://gpu-box:5557",
    "tcp://[fe80::1%eth0]:5557",
    "tcp://::1:5557",  # IPv6 without brackets
    "tcp://[::1]5557",
    "tcp://[::1:5557",
    "tcp://127.0.0.1",  # no port
    "tcp://127.0.0.1:",
    "tcp://:5557",
    "tcp://127.0.0.1:0",
    "tcp://127.0.0.1:70000",
    "tcp://127.0.0.1:-1",
    "tcp://127.0.0.1:+5",
    "tcp://127.0.0.1:5557/x",
    "tcp://127.0.0.1: 5557",
    " tcp://127.0.0.1:5557",
    "tcp://127.0.0.1:5557\n",
    "tcp://127.0.0.1\t:5557",
    "udp://127.0.0.1:5557",
    "TCP://127.0.0.1:5557",
    "ws://127.0.0.1:5557",
    "pgm://eth0;239.192.1.1:5555",
    "inproc://daemon",
    "127.0.0.1:5557",
    "ipc://",
    "",
]


@pytest.mark.parametrize("address", LOOPBACK)
def test_loopback_endpoints_parse_as_loopback(address: str) -> None:
    assert parse_endpoint(address).loopback
    assert is_loopback(address)


@pytest.mark.parametrize("address", OPEN)
def test_open_endpoints_parse_but_are_not_loopback(address: str) -> None:
    assert not parse_endpoint(address).loopback
    assert not is_loopback(address)


@pytest.mark.parametrize("address", INVALID)
def test_invalid_endpoints_are_refused_naming_them(address: str) -> None:
    with pytest.raises(EndpointError) as caught:
        parse_endpoint(address)
    assert repr(address) in str(caught.value)
    assert not is_loopback(address)


def test_a_port_of_star_is_for_binding_only() -> None:
    assert parse_endpoint("tcp://127.0.0.1:*").port is None
    assert parse_endpoint("tcp://[::1]:7").host == "::1"
    with pytest.raises(EndpointError, match="1-65535"):
        parse_endpoint("tcp://127.0.0.1:*", bind=False)


@pytest.mark.parametrize("address", INVALID + OPEN)
def test_the_server_refuses_invalid_and_open_endpoints_without_keys(address: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        Server(ServerConfig(data_dir=tmp_path, bind=address)).close()
    assert address in str(caught.value) or repr(address) in str(caught.value)


def test_the_server_binds_ipv6_loopback(tmp_path: Path) -> None:
    server = Server(ServerConfig(data_dir=tmp_path, bind="tcp://[::1]:*"))
    try:
        assert server.address.startswith("tcp://[::1]:")
    finally:
        server.close()


@pytest.mark.parametrize("address", INVALID + OPEN)
def test_the_daemon_command_exits_2_naming_the_endpoint(
    address: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Server, "serve", lambda self: None)  # were a bad address accepted: return, not serve
    assert main(["daemon", "--bind", address, "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert address in err or repr(address) in err


def test_the_bypass_from_the_issue_exits_2_as_a_process(tmp_path: Path) -> None:
    address = "tcp://127.0.0.1:1;*:5555"
    command = [sys.executable, "-m", "anyi2v.cli", "daemon", "--bind", address, "--data-dir", str(tmp_path)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:  # it listened
        pytest.fail(f"anyi2v daemon --bind {address!r} started")
    assert done.returncode == 2
    assert repr(address) in done.stderr
    assert "Traceback" not in done.stderr
