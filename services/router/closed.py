"""Why client connections closed, and the ring of recently closed ones.

nats-server records a reason for every closed client (its ``ClosedState``),
logs it at debug level (``... - Client connection closed: <reason>``) and
keeps the last ``max_closed_clients`` connections, with that reason and their
stop time, for ``/connz?state=closed``. The router does the same: a connection
sets its reason where it decides to close (``ClientConnection.close_reason``);
when it is gone, ``Server.remove_client`` snapshots it into ``ClosedClients``.

A snapshot copies the few numbers and names ``/connz`` shows, so a closed
connection keeps no socket, buffer or subscription object alive.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .interfaces import Client

__all__ = [
    "AUTH_EXPIRED",
    "AUTH_FAILURE",
    "AUTH_TIMEOUT",
    "BAD_PROTOCOL",
    "CLIENT_CLOSED",
    "MAX_CONNECTIONS",
    "MAX_CONTROL_LINE",
    "MAX_PAYLOAD",
    "NO_RESPONDERS_NEEDS_HEADERS",
    "PARSE_ERROR",
    "PROTOCOL_VIOLATION",
    "SERVER_SHUTDOWN",
    "SLOW_CONSUMER_PENDING",
    "SLOW_CONSUMER_WRITE_DEADLINE",
    "STALE_CONNECTION",
    "TLS_HANDSHAKE",
    "WRITE_ERROR",
    "ClosedClient",
    "ClosedClients",
    "ClosedSub",
]

# nats-server's ClosedState strings (monitor.go, ClosedState.String): tools
# and people grep logs and /connz for these exact words.
CLIENT_CLOSED: Final = "Client Closed"
AUTH_TIMEOUT: Final = "Authentication Timeout"
AUTH_FAILURE: Final = "Authentication Failure"
AUTH_EXPIRED: Final = "Authentication Expired"
TLS_HANDSHAKE: Final = "TLS Handshake Failure"
WRITE_ERROR: Final = "Write Error"
SLOW_CONSUMER_PENDING: Final = "Slow Consumer (Pending Bytes)"
SLOW_CONSUMER_WRITE_DEADLINE: Final = "Slow Consumer (Write Deadline)"
PARSE_ERROR: Final = "Parse Error"
STALE_CONNECTION: Final = "Stale Connection"
PROTOCOL_VIOLATION: Final = "Protocol Violation"
BAD_PROTOCOL: Final = "Bad Client Protocol Version"
MAX_CONNECTIONS: Final = "Maximum Connections Exceeded"
MAX_PAYLOAD: Final = "Maximum Message Payload Exceeded"
MAX_CONTROL_LINE: Final = "Maximum Control Line Exceeded"
SERVER_SHUTDOWN: Final = "Server Shutdown"
NO_RESPONDERS_NEEDS_HEADERS: Final = "No Responders Requires Headers"

# nats-server's default max_closed_clients (DEFAULT_MAX_CLOSED_CLIENTS); the
# config key sets another.
MAX_CLOSED_CLIENTS: Final = 10_000


class ClosedSub:
    """What ``/connz?subs=detail`` shows of a closed connection's subscription."""

    __slots__ = ("delivered", "max_msgs", "queue", "sid", "subject")

    def __init__(
        self, subject: bytes, queue: bytes | None, sid: bytes, delivered: int, max_msgs: int
    ) -> None:
        self.subject = subject
        self.queue = queue
        self.sid = sid
        self.delivered = delivered
        self.max_msgs = max_msgs


class ClosedClient:
    """A snapshot of a closed connection: the ``/connz`` fields, ``stop`` and ``reason``."""

    __slots__ = (
        "account_name",
        "cid",
        "conn_type",
        "host",
        "in_bytes",
        "in_msgs",
        "lang",
        "last_activity",
        "name",
        "out_bytes",
        "out_msgs",
        "port",
        "reason",
        "started_at",
        "stop",
        "subs",
        "tls",
        "user",
        "version",
    )

    def __init__(self, client: Client, reason: str, stop: float, subs: list[ClosedSub]) -> None:
        self.cid: int = client.cid
        self.host: str = client.host
        self.port: int = client.port
        self.started_at: float = client.started_at
        self.last_activity: float = client.last_activity
        self.in_msgs: int = client.in_msgs
        self.in_bytes: int = client.in_bytes
        self.out_msgs: int = client.out_msgs
        self.out_bytes: int = client.out_bytes
        self.name: str = client.name
        self.lang: str = client.lang
        self.version: str = client.version
        self.user: str | None = client.user
        self.account_name: str = client.account.name
        self.tls: bool = client.tls
        self.conn_type: str = client.conn_type
        self.subs: list[ClosedSub] = subs
        self.stop: float = stop
        self.reason: str = reason


class ClosedClients:
    """The last ``limit`` closed connections, oldest first."""

    def __init__(self, limit: int = MAX_CLOSED_CLIENTS) -> None:
        self._ring: deque[ClosedClient] = deque(maxlen=limit)

    def resize(self, limit: int) -> None:
        """A reloaded ``max_closed_clients``: keep the newest that fit."""
        if limit != self._ring.maxlen:
            self._ring = deque(self._ring, maxlen=limit)

    def __len__(self) -> int:
        return len(self._ring)

    def __iter__(self) -> Iterator[ClosedClient]:
        return iter(self._ring)

    def add(self, client: Client, reason: str, stop: float) -> None:
        subs = [
            ClosedSub(s.subject, s.queue, s.sid, s.delivered, s.max_msgs)
            for s in client.closed_subs
        ]
        self._ring.append(ClosedClient(client, reason, stop, subs))
