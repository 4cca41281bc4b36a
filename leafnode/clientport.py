"""The client and monitoring ports' listening sockets: bound first, handed to the services.

Theory of operation
-------------------
nats-server accepts connections a few milliseconds after it is exec'd, and
client libraries' test harnesses connect as soon as the process exists: a
refused connection is an error to them. ``leafnode run`` therefore binds the
client port before it imports anything heavy (:func:`bind_early`, called by
``leafnode.cli`` with nothing but ``socket`` imported), keeps the socket for
the site's whole life and passes it to every router it starts (an inherited
file descriptor, ``--listen-fd``). Connections that arrive before the router
accepts wait in the kernel's backlog instead of being refused, and the port
stays bound while a crashed router restarts.

The address comes from the command line when it alone decides it (no
config file, or ``-p`` and ``-a`` both given); otherwise the supervisor binds
right after it has read the config file (:func:`take_socket` checks an
early socket against the final settings and rebinds when they differ).

The monitoring (http) port likewise (:func:`bind_early_monitor` from ``-m``
when no config file is given, else the supervisor right after reading the
config, before the client port): ``leafnode run`` holds it and hands it to
the api service (``--fd``), whose FastAPI stack takes a second or more to
import. Bound only then, the port a harness picked as free could be taken by
another process meanwhile (nats.js's suite starts servers concurrently and
restarts them on the ports they had), and an HTTP client that connected
early was refused.

Wildcard hosts (``0.0.0.0``, ``::`` or none) listen on IPv4 and IPv6 at once,
as nats-server (Go) does: one ``AF_INET6`` socket on ``::`` with
``IPV6_V6ONLY`` off, or plain IPv4 where the host has no IPv6.

This module imports only ``socket`` and ``errno``: it runs before the rest
of the program is loaded.
"""

from __future__ import annotations

import errno
import socket
from typing import TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "EarlyListener",
    "bind_client_port",
    "bind_early",
    "bind_early_monitor",
    "peer_address",
    "take_socket",
]

WILDCARD_HOSTS: Final = ("", "0.0.0.0", "::")
# Connections queued while the router starts (or restarts); the kernel caps
# it at net.core.somaxconn, which is what Go's listen asks for too.
BACKLOG: Final = 4096
DEFAULT_HOST: Final = "0.0.0.0"
DEFAULT_PORT: Final = 4222
# The monitoring port's host when only `-m` names it: leafnode.config's
# ApiSettings default (loopback; a unit test keeps the two equal).
DEFAULT_MONITOR_HOST: Final = "127.0.0.1"
# Flags after which `leafnode run` binds nothing (it prints and exits).
_NO_BIND_FLAGS: Final = ("-h", "--help", "-v", "--version", "-t", "--signal", "-sl")


def _wildcard_v6() -> socket.socket | None:
    """A dual-stack ``AF_INET6`` socket, or None when the host has no IPv6."""
    if not socket.has_ipv6:
        return None
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        return None
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    except OSError:
        sock.close()
        return None
    return sock


class _Connected(Protocol):
    """A connected socket (``socket.socket`` or trio's)."""

    def getpeername(self) -> Any: ...


def peer_address(sock: _Connected) -> tuple[str, int]:
    """A client's IP and port as nats-server shows them; ``("", 0)`` when it is gone.

    An IPv4 client of the dual-stack socket arrives as ``::ffff:a.b.c.d``;
    Go shows it as ``a.b.c.d`` (INFO's ``client_ip``, ``/connz``, logs).
    """
    try:
        peer = sock.getpeername()
    except OSError:
        return "", 0
    host, port = str(peer[0]), int(peer[1])
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]
    return host, port


def bind_client_port(host: str, port: int, *, listen: bool = True) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``-1``: a free port), blocking.

    With ``listen=False`` the socket is bound but not yet listening: the
    caller calls ``sock.listen(BACKLOG)`` once it is ready for connections.

    Raises:
        OSError: the address is in use, unknown or not ours.
    """
    port = 0 if port == -1 else port
    sock: socket.socket | None = None
    address: tuple[str, int] | tuple[str, int, int, int] | tuple[int, bytes]
    if host in WILDCARD_HOSTS:
        sock = _wildcard_v6()
        address = ("::", port) if sock is not None else ("0.0.0.0", port)
    if sock is None:
        family, kind, proto, _, address = socket.getaddrinfo(
            host if host not in WILDCARD_HOSTS else "0.0.0.0",
            port,
            type=socket.SOCK_STREAM,
            flags=socket.AI_PASSIVE,
        )[0]
        sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if sock.family != socket.AF_INET6 or host not in WILDCARD_HOSTS:
                raise
            if exc.errno == errno.EADDRINUSE:
                raise
            # IPv6 exists but cannot be bound (disabled on every interface).
            sock.close()
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("0.0.0.0", port))
        if listen:
            sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


class EarlyListener:
    """A port ``leafnode run`` bound before reading its config (client or monitoring).

    ``host`` and ``port`` are what was asked for (``port`` may be -1);
    ``sock`` is None when binding failed (``error`` says why: reported once
    logging is set up, after the config confirmed the address). A plain
    class: ``dataclasses`` costs this early path 5 ms of imports.
    """

    __slots__ = ("error", "host", "port", "sock")

    def __init__(
        self, host: str, port: int, sock: socket.socket | None, error: OSError | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.sock = sock
        self.error = error


def _flag_value(argv: Sequence[str], names: Sequence[str]) -> str | None:
    """The value of the last of ``names`` in ``argv`` (``-p 1``, ``--port=1``, ``-p1``)."""
    value: str | None = None
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                value = argv[i + 1]
            elif name.startswith("--") and arg.startswith(name + "="):
                value = arg[len(name) + 1 :]
            elif len(name) == 2 and arg.startswith(name) and len(arg) > 2:
                value = arg[2:]
    return value


def _serves(argv: Sequence[str]) -> bool:
    """False for a ``leafnode run`` that prints and exits (``--help``, ``-t``, ...)."""
    return not any(arg in _NO_BIND_FLAGS or arg.startswith("--signal=") for arg in argv)


def _bind(host: str, port: int) -> EarlyListener:
    try:
        return EarlyListener(host, port, bind_client_port(host, port))
    except OSError as exc:
        return EarlyListener(host, port, None, exc)


def bind_early(argv: Sequence[str]) -> EarlyListener | None:
    """Bind the client port from ``leafnode run``'s flags alone, when they decide it.

    Returns None when they do not (a config file may name the address) or
    when the command will not serve (``--help``, ``-v``, ``-t``, ``--signal``).
    """
    if not _serves(argv):
        return None
    config = _flag_value(argv, ("-c", "--config"))
    port_text = _flag_value(argv, ("-p", "--port"))
    host = _flag_value(argv, ("-a", "--addr", "--net"))
    if config is not None and (port_text is None or host is None):
        return None
    try:
        port = int(port_text) if port_text is not None else DEFAULT_PORT
    except ValueError:
        return None  # argparse reports it
    return _bind(DEFAULT_HOST if host is None else host, port)


def bind_early_monitor(argv: Sequence[str]) -> EarlyListener | None:
    """Bind the monitoring port from ``-m``/``--http_port`` when no config file is given.

    Returns None with a config file (its ``http`` may name the host), without
    ``-m``, or when the command will not serve.
    """
    if not _serves(argv) or _flag_value(argv, ("-c", "--config")) is not None:
        return None
    port_text = _flag_value(argv, ("-m", "--http_port"))
    if port_text is None:
        return None
    try:
        port = int(port_text)
    except ValueError:
        return None  # argparse reports it
    return _bind(DEFAULT_MONITOR_HOST, port)


def take_socket(early: EarlyListener | None, host: str, port: int) -> socket.socket:
    """The listening socket for the final ``host:port``: ``early``'s when it matches.

    Raises:
        OSError: binding failed (early or now).
    """
    if early is not None and (early.host, early.port) == (host, port):
        if early.sock is None:
            assert early.error is not None
            raise early.error
        return early.sock
    if early is not None and early.sock is not None:
        early.sock.close()
    return bind_client_port(host, port)
