"""CURVE key files (PROTOCOL.md, Security): making a key pair, and trusting a secret key.

Key files are ZeroMQ certificates: ``NAME.key`` (public) and ``NAME.key_secret`` (secret). A secret
key must be readable by its owner only, and what says so depends on the system:

* POSIX (Linux, macOS): the file's mode. :func:`create_key_pair` makes the secret file mode 0600, and
  :func:`check_secret_key` refuses one with any group or other bit set.
* Windows (``os.name == "nt"``): mode bits do not say who may read a file (Python reports 0666 or
  0444 for every file), so no mode is set or checked: the file's access control list (ACL) must grant
  only the user. Files made under the user's profile (``%LOCALAPPDATA%``, where ``anyi2v keys`` puts
  them by default) inherit such an ACL; a key copied elsewhere should be checked with
  ``icacls FILE``. The daemon logs this expectation each time it loads a secret key there.

On POSIX the secret key must also be owned by the user running the daemon, and the folder of
authorized client keys must not be writable by group or others (who could add a key). Each ``*.key``
in that folder is read by :func:`load_authorized_keys`, one file at a time: a file that cannot be read
or holds no valid public key refuses start-up naming it (a key the owner meant to trust is never
dropped silently); an entry that is not a regular file (FIFO, folder, socket) is skipped with a
warning and never opened.

A client key is marked admin (it sees and acts on every key's jobs, PROTOCOL.md Security) by an
indented line ``admin = true`` (quotes optional) in the ``metadata`` section of the daemon's copy of
its public key file; ``admin = false`` or no such line: not admin::

    metadata
        admin = true
    curve
        public-key = "..."
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("anyi2v.daemon")

SECRET_MODE = 0o600


class KeyFileError(ValueError):
    """A key file the daemon cannot use (missing, readable by others, not a certificate); says what to do."""


@dataclass(frozen=True)
class AuthorizedKey:
    """A client key the daemon trusts: its file's name (``NAME.key`` -> ``NAME``) and whether it is admin."""

    name: str
    admin: bool = False


def posix_permissions() -> bool:
    """True where a file's mode bits say who may read it (everywhere but Windows)."""
    return os.name != "nt"


def privacy_rule() -> str:
    """How a secret key file is kept private on this system, for messages to the user."""
    if posix_permissions():
        return f"mode {SECRET_MODE:04o}"
    return "an access list (ACL) that grants only you"


def create_key_pair(folder: Path, name: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` and ``NAME.key_secret`` in ``folder`` (which must exist); returns their paths
    (public, secret). On POSIX the secret file is made mode 0600; on Windows it keeps the ACL it
    inherits from ``folder``."""
    import zmq.auth

    public, secret = zmq.auth.create_certificates(folder, name)
    if posix_permissions():
        os.chmod(secret, SECRET_MODE)
    return Path(public), Path(secret)


def _systemd_credential(path: Path) -> bool:
    """True for a file in the folder systemd names in ``$CREDENTIALS_DIRECTORY`` (``LoadCredential=``):
    systemd keeps such a file read-only and readable by the service's user alone, but may leave root its
    owner (granting the user through an ACL), so the owner check does not apply there."""
    folder = os.environ.get("CREDENTIALS_DIRECTORY")
    if not folder:
        return False
    try:
        return path.resolve().parent == Path(folder).resolve()
    except OSError:
        return False


def check_secret_key(path: Path) -> tuple[bytes, bytes]:
    """The ``(public, secret)`` key pair in a ZeroMQ secret certificate. On POSIX, refuses a file that
    others can read; on Windows, logs that the file's ACL must grant only the user (see the module's
    docstring). Raises :class:`KeyFileError`."""
    import zmq.auth

    if not path.is_file():
        raise KeyFileError(f"{path}: no such secret key file (make one with `anyi2v keys create`)")
    if posix_permissions():
        status = path.stat()
        mode = stat.S_IMODE(status.st_mode)
        if status.st_uid != os.geteuid() and not _systemd_credential(path):
            raise KeyFileError(
                f"{path}: the secret key is owned by another user (uid {status.st_uid}, not {os.geteuid()});"
                f" run `chown {os.geteuid()} {path}` or use a key of your own"
            )
        if mode & 0o077:
            raise KeyFileError(
                f"{path}: the secret key is readable by others (mode {mode:04o}); run `chmod 600 {path}`"
            )
    else:
        log.info(
            "%s: file modes mean nothing on Windows, so the secret key's permissions are not checked; its ACL"
            " should grant only your user (see `icacls %s`)",
            path,
            path,
        )
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (ValueError, OSError) as error:
        raise KeyFileError(f"{path}: not a ZeroMQ certificate: {error}") from None
    if secret is None:
        raise KeyFileError(f"{path}: holds no secret key (that is a public key file)")
    return public, secret


def load_authorized_keys(folder: Path) -> dict[bytes, AuthorizedKey]:
    """The client public keys (Z85, as ZeroMQ's authenticator keys them) of each ``*.key`` in
    ``folder``, each with its name and admin mark. Raises :class:`KeyFileError` naming the folder when
    group or others may write it (POSIX), or naming the file that cannot be read, holds no valid public
    key or an ``admin`` that is neither true nor false. Entries that are not regular files are skipped
    with a warning, unopened."""
    from zmq.utils import z85

    if posix_permissions():
        mode = stat.S_IMODE(folder.stat().st_mode)
        if mode & 0o022:
            raise KeyFileError(
                f"{folder}: the authorized-keys folder is writable by others (mode {mode:04o}), who could add"
                f" a key; run `chmod go-w {folder}`"
            )
    found: dict[bytes, AuthorizedKey] = {}
    for path in sorted(folder.glob("*.key")):
        try:
            if not stat.S_ISREG(path.stat().st_mode):
                log.warning("%s: not a regular file, skipped", path)
                continue
            text = path.read_bytes()
        except OSError as error:
            raise KeyFileError(f"{path}: cannot read this authorized key: {error.strerror}") from None
        found[_public_key(path, text, z85.decode)] = AuthorizedKey(path.stem, _admin(path, text))
    log.info("%d authorized client key(s) in %s", len(found), folder)
    return found


def _public_key(path: Path, text: bytes, decode: Callable[[bytes], bytes]) -> bytes:
    """The ``public-key`` of a ZeroMQ certificate's text, checked to be 40 Z85 characters (32 bytes)."""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(b"public-key") and b"=" in line:
            key = line.split(b"=", 1)[1].strip(b" \t'\"")
            try:
                valid = len(key) == 40 and len(decode(key)) == 32
            except (ValueError, KeyError, IndexError, TypeError):
                valid = False
            if not valid:
                raise KeyFileError(f"{path}: the public-key is not 40 Z85 characters; replace this file")
            return key
    raise KeyFileError(f"{path}: holds no public-key line (not a ZeroMQ certificate); replace or remove it")


def _admin(path: Path, text: bytes) -> bool:
    """Whether the certificate's ``metadata`` section says ``admin = true`` (quotes optional); False
    without one. A section starts at an unindented line; its entries are indented ``name = value``."""
    section = b""
    for raw in text.splitlines():
        line = raw.split(b"#", 1)[0].rstrip()
        if not line:
            continue
        if not line[:1].isspace():
            section = line.strip()
            continue
        name, equals, value = line.strip().partition(b"=")
        if section != b"metadata" or not equals or name.strip() != b"admin":
            continue
        word = value.strip().strip(b"'\"").lower()
        if word not in (b"true", b"false"):
            raise KeyFileError(
                f"{path}: metadata admin = {value.strip().decode(errors='replace')}: write admin = true or"
                " admin = false"
            )
        return word == b"true"
    return False
