"""The daemon's ``--bind`` address, parsed strictly: one ZeroMQ endpoint and whether it is loopback.

ZeroMQ reads more into an endpoint than a URL parser sees: ``tcp://SOURCE;HOST:PORT`` names a source
address, a host may be an interface name (``eth0``) or a short number (``0`` is 0.0.0.0), and ``*`` is every
interface. So the host and port are checked here against a small grammar, and anything outside it is
refused rather than guessed at:

- ``tcp://HOST:PORT`` where HOST is ``*``, ``localhost``, a dotted IPv4 address (four numbers) or an IPv6
  address in brackets (``[::1]``, no zone); PORT is 1-65535, or ``*`` (any free port) when binding;
- ``ipc://PATH`` (a local socket file: reachable from this machine only);
- no whitespace, no control characters, no ``;`` anywhere.

Loopback means tcp on 127.0.0.0/8, ``::1`` or ``localhost``, or ipc; everything else needs CURVE keys.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

_PORT = re.compile(r"[0-9]{1,5}")
_HOST_NAMES = frozenset({"localhost"})


class EndpointError(ValueError):
    """An endpoint that is not one plain tcp:// or ipc:// address; the message names it and says why."""


_Refuse = Callable[[str], EndpointError]  # parse_endpoint's ``refuse``: a reason in, an error naming the text out


@dataclass(frozen=True)
class Endpoint:
    text: str  # as given
    scheme: str  # "tcp" or "ipc"
    host: str = ""  # tcp: "*", "localhost", an IPv4 address or an IPv6 address (without brackets)
    port: int | None = None  # tcp: 1-65535, or None for "*" (any free port)
    path: str = ""  # ipc: the socket file

    @property
    def ipv6(self) -> bool:
        return ":" in self.host

    @property
    def loopback(self) -> bool:
        """True when only this machine can connect: ipc, or tcp on 127.0.0.0/8, ::1 or localhost."""
        if self.scheme == "ipc":
            return True
        if self.host in _HOST_NAMES:
            return True
        if self.host == "*":
            return False
        address = ipaddress.ip_address(self.host)
        if isinstance(address, ipaddress.IPv6Address):
            return address == ipaddress.IPv6Address("::1")
        return address in ipaddress.IPv4Network("127.0.0.0/8")


def parse_endpoint(text: str, *, bind: bool = True) -> Endpoint:
    """``text`` as an :class:`Endpoint`, or :class:`EndpointError` naming it. ``bind`` allows ``*`` as port."""

    def refuse(why: str) -> EndpointError:
        return EndpointError(f"{text!r} is not a daemon address: {why}")

    if any(c.isspace() or not c.isprintable() for c in text):
        raise refuse("it holds whitespace or control characters")
    if ";" in text:
        raise refuse("one endpoint only (';' names a second address for ZeroMQ)")
    scheme, separator, rest = text.partition("://")
    if not separator or scheme not in ("tcp", "ipc"):
        raise refuse("it must start with tcp:// or ipc://")
    if scheme == "ipc":
        if not rest:
            raise refuse("ipc:// needs a socket file path")
        return Endpoint(text, "ipc", path=rest)
    host, port = _split_host_port(rest, refuse)
    return Endpoint(text, "tcp", host=_check_host(host, refuse), port=_check_port(port, bind, refuse))


def is_loopback(address: str) -> bool:
    """True when ``address`` parses and only this machine can reach it (see :attr:`Endpoint.loopback`)."""
    try:
        return parse_endpoint(address).loopback
    except EndpointError:
        return False


def _split_host_port(rest: str, refuse: _Refuse) -> tuple[str, str]:
    if rest.startswith("["):
        host, bracket, tail = rest[1:].partition("]")
        if not bracket or not tail.startswith(":"):
            raise refuse("an IPv6 address is written [ADDRESS]:PORT")
        return host, tail[1:]
    host, colon, port = rest.rpartition(":")
    if not colon or not host:
        raise refuse("it needs HOST:PORT after tcp://")
    if ":" in host:
        raise refuse("an IPv6 address goes in brackets: tcp://[ADDRESS]:PORT")
    return host, port


def _check_host(host: str, refuse: _Refuse) -> str:
    if host == "*" or host in _HOST_NAMES:
        return host
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise refuse(
            f"the host {host!r} is neither '*', 'localhost', an IPv4 address (four numbers)"
            " nor an IPv6 address in brackets (interface and host names are not accepted)"
        ) from None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        raise refuse("an IPv6 zone (%NAME) is not accepted")
    return host


def _check_port(port: str, bind: bool, refuse: _Refuse) -> int | None:
    if port == "*" and bind:
        return None
    if not _PORT.fullmatch(port) or not 1 <= int(port) <= 65535:
        allowed = "1-65535 or '*' (any free port)" if bind else "1-65535"
        raise refuse(f"the port {port!r} is not {allowed}")
    return int(port)
