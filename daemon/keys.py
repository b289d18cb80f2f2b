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
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("anyi2v.daemon")

SECRET_MODE = 0o600


class KeyFileError(ValueError):
    """A key file the daemon cannot use (missing, readable by others, not a certificate); says what to do."""


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


def check_secret_key(path: Path) -> tuple[bytes, bytes]:
    """The ``(public, secret)`` key pair in a ZeroMQ secret certificate. On POSIX, refuses a file that
    others can read; on Windows, logs that the file's ACL must grant only the user (see the module's
    docstring). Raises :class:`KeyFileError`."""
    import zmq.auth

    if not path.is_file():
        raise KeyFileError(f"{path}: no such secret key file (make one with `anyi2v keys create`)")
    if posix_permissions():
        mode = stat.S_IMODE(path.stat().st_mode)
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
