"""Who sent each request, and the authorized-keys folder kept current (PROTOCOL.md, Security).

Under CURVE, ZeroMQ's authenticator (ZAP) checks a client's key once, when its connection is made, and
libzmq then tags each message of that connection with the key's ``User-Id`` (its public key in Z85).
:class:`Keyring` turns that User-Id into a :class:`Caller` against the keys in force *now*, so a key
removed from the folder is refused on its next message even over a connection opened while it was
trusted (ZAP never looks at an open connection again). Without CURVE every request comes from one
caller, :data:`LOCAL`, who owns every job submitted and, holding the machine and the data folder,
sees all jobs (those kept from an earlier run under CURVE too).

The folder is read again on :meth:`Keyring.request_reload` (SIGHUP) and when :meth:`Keyring.tick`,
called from the server's loop, sees its ``*.key`` entries change (name, inode, size, modification
and change times, polled every few seconds). A folder that fails to load (a malformed key, a mode
that lets others write) keeps the previous keys in force and logs one error line naming the file.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from .keys import AuthorizedKey, KeyFileError, load_authorized_keys

log = logging.getLogger("anyi2v.daemon")

#: The owner of jobs submitted without CURVE, and of jobs stored before owners were recorded.
LOCAL_OWNER = "local"

Snapshot = tuple[tuple[str, int, int, int, int, int], ...] | None


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the owner its jobs get (a key's Z85 public key, or ``local``), a name for
    logs, and whether it may see and act on every job."""

    owner: str
    name: str
    admin: bool = False

    def may_see(self, owner: str) -> bool:
        """Whether a job owned by ``owner`` exists for this caller."""
        return self.admin or owner == self.owner


LOCAL = Caller(LOCAL_OWNER, "local", admin=True)


def folder_snapshot(folder: Path) -> Snapshot:
    """What :meth:`Keyring.tick` compares: each ``*.key`` entry's name, inode, size, mtime and ctime
    (following links), and the folder's mode; None when the folder cannot be listed."""
    try:
        entries = []
        for entry in os.scandir(folder):
            if not entry.name.endswith(".key"):
                continue
            try:
                status = entry.stat()
                entries.append(
                    (entry.name, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns, status.st_mode)
                )
            except OSError:  # a dangling link: its name alone, so a fixed target is seen
                entries.append((entry.name, -1, -1, -1, -1, -1))
        entries.append(("", 0, 0, 0, 0, stat.S_IMODE(folder.stat().st_mode)))
    except OSError:
        return None
    return tuple(sorted(entries))


class Keyring:
    """The authorized client keys in force, and the folder they come from. Used from the server's loop;
    :meth:`request_reload` may be called from a signal handler."""

    def __init__(
        self,
        folder: Path,
        keys: dict[bytes, AuthorizedKey],
        install: Callable[[dict[bytes, bool]], None],
        forget_peer: Callable[[bytes], None],
        poll_seconds: float = 2.0,
    ) -> None:
        self.folder = folder
        self.keys = keys
        self._install = install  # hands the set to ZeroMQ's authenticator, for new connections
        self._forget_peer = forget_peer  # ends a connection's subscriptions
        self.peers: dict[bytes, str] = {}  # connection (ROUTER identity) -> the owner last served on it
        self._refused: set[bytes] = set()  # connections whose revoked key was logged
        self.poll_seconds = poll_seconds
        self._snapshot = folder_snapshot(folder)
        self._last_poll = time.monotonic()
        self._reload_requested = False
        install(_certs(keys))

    def request_reload(self) -> None:
        """Read the folder again at the loop's next turn (safe from a signal handler)."""
        self._reload_requested = True

    def tick(self, now: float, alive: Collection[bytes]) -> list[bytes]:
        """Reload when asked, or when the folder changed since the last look (every ``poll_seconds``;
        0 turns polling off); forget connections not in ``alive`` (those the server still hears).
        Returns the keys that a reload revoked (empty when none ran)."""
        requested, self._reload_requested = self._reload_requested, False
        if not requested:
            if now - self._last_poll < (self.poll_seconds if self.poll_seconds > 0 else 1.0):
                return []
            self._last_poll = now
            self._keep_only(alive)
            if self.poll_seconds <= 0:
                return []
            snapshot = folder_snapshot(self.folder)
            if snapshot == self._snapshot:
                return []
            self._snapshot = snapshot
        else:
            self._snapshot = folder_snapshot(self.folder)
        return self.reload()

    def reload(self) -> list[bytes]:
        """Read the folder and put its keys in force; on failure keep the previous keys and log one
        error line naming the file. Returns the keys no longer in force."""
        try:
            if not self.folder.is_dir():
                raise KeyFileError(f"{self.folder}: no such folder of authorized client keys")
            keys = load_authorized_keys(self.folder)
        except (KeyFileError, OSError) as error:
            log.error("authorized keys not reloaded, the previous %d key(s) stay in force: %s", len(self.keys), error)
            return []
        revoked = [key for key in self.keys if key not in keys]
        gone = {key.decode() for key in revoked}
        for peer, owner in list(self.peers.items()):
            if owner in gone:  # its subscriptions end now, not when it next speaks
                del self.peers[peer]
                self._forget_peer(peer)
        added = [key for key in keys if key not in self.keys]
        changed = [key for key in keys if key in self.keys and keys[key] != self.keys[key]]
        self.keys = keys
        self._install(_certs(keys))
        log.info(
            "authorized keys reloaded from %s: %d in force (%d added, %d revoked, %d changed)",
            self.folder, len(keys), len(added), len(revoked), len(changed),
        )  # fmt: skip
        for key in revoked:
            log.info("key revoked: its connections are no longer served (%s)", key.decode())
        return revoked

    def admit(self, peer: bytes, user_id: str) -> Caller | None:
        """The caller of a message that came from connection ``peer`` tagged ``user_id``; None (logged
        once per connection) when the key is not in force, and the message must not be served."""
        caller = self.caller(user_id)
        if caller is None:
            if peer not in self._refused:
                self._refused.add(peer)
                log.warning("a message with a revoked key was not served (%s)", user_id)
            self.peers.pop(peer, None)
            self._forget_peer(peer)
            return None
        self._refused.discard(peer)
        if self.peers.get(peer, caller.owner) != caller.owner:  # an identity taken over by another key
            self._forget_peer(peer)
        self.peers[peer] = caller.owner
        return caller

    def _keep_only(self, alive: Collection[bytes]) -> None:
        for peer in [p for p in self.peers if p not in alive]:
            del self.peers[peer]
        if len(self._refused) > 10_000:  # bounded: a refused connection may be logged once more
            self._refused.clear()

    def caller(self, user_id: str) -> Caller | None:
        """The caller whose connection carries ``user_id`` (a Z85 public key); None when that key is
        not in force (revoked since the connection was made)."""
        key = self.keys.get(user_id.encode())
        if key is None:
            return None
        return Caller(user_id, key.name, key.admin)


def _certs(keys: dict[bytes, AuthorizedKey]) -> dict[bytes, bool]:
    """The keys as ``zmq.auth`` reads them (``certs[domain][z85 key]`` truthy means allowed)."""
    return dict.fromkeys(keys, True)
