"""Key files: one place makes them and one place trusts them, per system. POSIX: the secret is made
0600 and a group/other bit is refused. Windows (exercised here on Linux through the platform
predicate): no mode is set or checked, the ACL expectation is logged. And the default key and data
folders of `anyi2v daemon` / `anyi2v keys`, from platformdirs, equal the XDG paths of before."""

from __future__ import annotations

import logging
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq.auth

from anyi2v.cli import main
from anyi2v.daemon import keys
from anyi2v.daemon.keys import KeyFileError, check_secret_key, create_key_pair, posix_permissions, privacy_rule
from anyi2v.serve import default_data_dir, default_keys_dir


@pytest.fixture
def windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Windows branch: file modes say nothing (os.name itself stays, or pathlib would break)."""
    monkeypatch.setattr(keys, "posix_permissions", lambda: False)


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield None
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_platform_predicate_reads_os_name(monkeypatch: pytest.MonkeyPatch) -> None:
    assert posix_permissions() is (os.name != "nt")
    with monkeypatch.context() as patched:
        patched.setattr(os, "name", "nt")
        on_windows = posix_permissions()
    assert on_windows is False


def test_on_posix_a_new_secret_is_0600_and_a_readable_one_is_refused(tmp_path: Path, umask_022: None) -> None:
    public, secret = create_key_pair(tmp_path, "server")
    assert (public.name, secret.name) == ("server.key", "server.key_secret")
    assert _mode(secret) == 0o600
    assert privacy_rule() == "mode 0600"
    public_key, secret_key = check_secret_key(secret)
    assert len(public_key) == 40
    assert len(secret_key) == 40
    for mode in (0o640, 0o604, 0o700 | 0o010):
        os.chmod(secret, mode)
        with pytest.raises(KeyFileError, match=f"readable by others \\(mode {mode:04o}\\); run `chmod 600 "):
            check_secret_key(secret)


@pytest.mark.usefixtures("windows")
def test_on_windows_no_mode_is_set_or_checked_and_the_acl_expectation_is_logged(
    tmp_path: Path, umask_022: None, caplog: pytest.LogCaptureFixture
) -> None:
    public, secret = create_key_pair(tmp_path, "server")
    assert _mode(secret) == 0o644  # as made: the folder's ACL decides on Windows, not a mode
    assert "ACL" in privacy_rule()
    os.chmod(secret, 0o666)  # what Python reports for any writable file on Windows
    with caplog.at_level(logging.INFO, logger="anyi2v.daemon"):
        public_key, _ = check_secret_key(secret)
    assert len(public_key) == 40
    assert "ACL should grant only your user" in caplog.text
    assert str(secret) in caplog.text
    with pytest.raises(KeyFileError, match="holds no secret key"):  # the other checks still hold
        check_secret_key(public)
    with pytest.raises(KeyFileError, match="no such secret key file"):
        check_secret_key(tmp_path / "nobody.key_secret")


@pytest.mark.usefixtures("windows")
def test_on_windows_the_daemon_command_accepts_a_secret_any_mode_would_refuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "create", "server", "--dir", str(tmp_path)]) == 0
    assert "an access list (ACL) that grants only you" in capsys.readouterr().out
    os.chmod(tmp_path / "server.key_secret", 0o666)
    (tmp_path / "authorized").mkdir()
    from anyi2v.daemon.server import Server, ServerConfig

    config = ServerConfig(
        data_dir=tmp_path / "data", bind="tcp://127.0.0.1:*", secret_key=tmp_path / "server.key_secret",
        authorized_keys=tmp_path / "authorized",
    )  # fmt: skip
    server = Server(config)  # would be refused on POSIX: readable by others
    server.close()


def test_not_a_certificate_is_named(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.key_secret"
    bogus.write_text("not a certificate")
    os.chmod(bogus, 0o600)
    with pytest.raises(KeyFileError, match=r"bogus\.key_secret: "):
        check_secret_key(bogus)


@pytest.mark.skipif(sys.platform != "linux", reason="XDG folders are Linux's")
def test_default_folders_are_the_xdg_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    # the paths as they were made by hand before platformdirs
    assert default_keys_dir() == Path(os.environ["XDG_CONFIG_HOME"]) / "anyi2v" / "keys"
    assert default_data_dir() == Path(os.environ["XDG_DATA_HOME"]) / "anyi2v" / "daemon"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_keys_dir() == Path.home() / ".config" / "anyi2v" / "keys"
    assert default_data_dir() == Path.home() / ".local" / "share" / "anyi2v" / "daemon"
    assert Path.home() == tmp_path / "home"


@pytest.mark.skipif(sys.platform != "linux", reason="XDG folders are Linux's")
def test_keys_go_to_the_xdg_config_folder_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert main(["keys", "create", "alice"]) == 0
    assert _mode(tmp_path / "config" / "anyi2v" / "keys" / "alice.key_secret") == 0o600
    assert "mode 0600" in capsys.readouterr().out
    assert main(["keys", "list"]) == 0
    assert "alice" in capsys.readouterr().out


# The authorized-keys folder (issue 19 item 7) ------------------------------------------------------


@pytest.fixture
def key_folder(tmp_path: Path) -> Path:
    """server.key_secret in tmp_path; alice.key and bob.key in tmp_path/authorized (mode 0755)."""
    for name in ("server", "alice", "bob"):
        create_key_pair(tmp_path, name)
    authorized = tmp_path / "authorized"
    authorized.mkdir()
    os.chmod(authorized, 0o755)
    for name in ("alice", "bob"):
        (authorized / f"{name}.key").write_bytes((tmp_path / f"{name}.key").read_bytes())
    return tmp_path


def _config(folder: Path) -> object:
    from anyi2v.daemon.server import ServerConfig

    return ServerConfig(
        data_dir=folder / "data", bind="tcp://127.0.0.1:*", secret_key=folder / "server.key_secret",
        authorized_keys=folder / "authorized",
    )  # fmt: skip


def _refused(folder: Path) -> str:
    """The daemon's refusal message for this key folder (fails the test when it starts)."""
    from anyi2v.daemon.server import ConfigError, Server, ServerConfig

    config = _config(folder)
    assert isinstance(config, ServerConfig)
    try:
        server = Server(config)
    except ConfigError as error:
        return str(error)
    server.close()
    raise AssertionError("the daemon started")


@pytest.mark.parametrize(
    "content",
    [
        b"not a certificate\n",
        b'metadata\ncurve\n    public-key = "tooshort"\n',
        b'curve\n    public-key = "' + b"~" * 40 + b'"\n',
    ],
    ids=["no public key", "short key", "not z85"],
)
def test_a_malformed_key_among_good_ones_refuses_the_daemon_naming_it(key_folder: Path, content: bytes) -> None:
    broken = key_folder / "authorized" / "broken.key"
    broken.write_bytes(content)
    assert str(broken) in _refused(key_folder)


def test_an_unreadable_key_refuses_the_daemon_command_with_exit_2_naming_it(
    key_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dangling = key_folder / "authorized" / "gone.key"
    dangling.symlink_to(key_folder / "nowhere.key")
    assert str(dangling) in _refused(key_folder)  # before the command, which would serve forever on the old code
    command = ["daemon", "--bind", "tcp://127.0.0.1:*", "--data-dir", str(key_folder / "data"),
               "--server-key", str(key_folder / "server.key_secret"),
               "--authorized-keys", str(key_folder / "authorized")]  # fmt: skip
    assert main(command) == 2
    assert f"{dangling}: cannot read this authorized key" in capsys.readouterr().err


def test_a_fifo_in_the_folder_is_skipped_with_a_log_line_and_start_does_not_hang(
    key_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import threading

    from anyi2v.daemon.server import Server, ServerConfig

    fifo = key_folder / "authorized" / "trap.key"
    os.mkfifo(fifo)
    (key_folder / "authorized" / "folder.key").mkdir()
    config = _config(key_folder)
    assert isinstance(config, ServerConfig)
    started: list[Server] = []
    thread = threading.Thread(target=lambda: started.append(Server(config)), daemon=True)
    with caplog.at_level(logging.WARNING, logger="anyi2v.daemon"):
        thread.start()
        thread.join(timeout=10)
    hung = thread.is_alive()
    if hung:  # let the old code's blocked open go
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(timeout=10)
    for server in started:
        server.close()
    assert not hung, "start-up hung on a FIFO in the authorized-keys folder"
    assert started
    assert f"{fifo}: not a regular file, skipped" in caplog.text
    assert f"{key_folder / 'authorized' / 'folder.key'}: not a regular file, skipped" in caplog.text


@pytest.mark.skipif(not posix_permissions(), reason="mode bits mean nothing on Windows")
@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757])
def test_a_keys_folder_writable_by_others_is_refused(key_folder: Path, mode: int) -> None:
    os.chmod(key_folder / "authorized", mode)
    message = _refused(key_folder)
    assert f"chmod go-w {key_folder / 'authorized'}" in message


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown needs root")
def test_a_secret_key_owned_by_another_user_is_refused(key_folder: Path) -> None:
    secret = key_folder / "server.key_secret"
    os.chown(secret, 12345, -1)
    with pytest.raises(KeyFileError, match="owned by another user"):
        check_secret_key(secret)
    assert str(secret) in _refused(key_folder)


@pytest.mark.skipif(not posix_permissions(), reason="mode bits mean nothing on Windows")
def test_a_systemd_credential_may_keep_roots_ownership(
    key_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """systemd's LoadCredential= copy stays root's (the service user reads it through an ACL): accepted
    in $CREDENTIALS_DIRECTORY only, never elsewhere."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    copied = credentials / "server.key_secret"
    copied.write_bytes((key_folder / "server.key_secret").read_bytes())
    os.chmod(copied, 0o400)
    monkeypatch.setattr(os, "geteuid", lambda: copied.stat().st_uid + 1)  # the file is another user's
    with pytest.raises(KeyFileError, match="owned by another user"):
        check_secret_key(copied)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    assert check_secret_key(copied) == zmq.auth.load_certificate(key_folder / "server.key_secret")
    with pytest.raises(KeyFileError, match="owned by another user"):
        check_secret_key(key_folder / "server.key_secret")  # outside it: checked as ever


def test_a_good_folder_still_serves_each_of_its_keys(key_folder: Path) -> None:
    from anyi2v.daemon.client import ClientKeys, DaemonClient

    from .daemon_helpers import running_server

    (key_folder / "authorized" / "README.txt").write_text("not a key file: ignored")
    assert len(keys.load_authorized_keys(key_folder / "authorized")) == 2
    with running_server(
        key_folder / "data", secret_key=key_folder / "server.key_secret", authorized_keys=key_folder / "authorized"
    ) as server:
        for name in ("alice", "bob"):
            client_keys = ClientKeys.from_files(key_folder / "server.key", key_folder / f"{name}.key_secret")
            with DaemonClient(server.address, keys=client_keys) as client:
                assert client.hello().protocol == 1
