"""How an accepted leaf connection is served: timers, auth helpers, TLS (issue 15).

The policy half of ``leafconn.py``: the shell's ``LinkPolicy`` for a leaf (a
nats-server hub's keepalive and auth timeout), the leafnode authorization
with its bcrypt checks moved to a thread, the ``import``/``export`` lists of
the ``connect_info`` INFO, the leaf port's TLS context, and the host a
wildcard listen address is reached at.
"""

from __future__ import annotations

import socket
import ssl
from typing import TYPE_CHECKING, Final

from leafnode.hubside import ERR_AUTH_TIMEOUT, Accepted, AsClient, LeafAuthorizer, Refused
from leafnode.link import Expiry, Keepalive, LinkPolicy, OutboundPolicy
from leafnode.proto import encode_err

if TYPE_CHECKING:
    from collections.abc import Mapping

    from leafnode.config import LeafAcceptSettings, SubjectPermission, TlsSettings

    from .interfaces import LeafServer

__all__ = [
    "CONNECTION_TYPE_LEAFNODE",
    "DEFAULT_AUTH_TIMEOUT_S",
    "ERR_MAX_ACCOUNT_CONNECTIONS",
    "WILDCARD_HOSTS",
    "DeferBcrypt",
    "leaf_policy",
    "leaf_ssl_context",
    "permission_lists",
    "reachable_host",
]

# nats-server's jwt connection type for leafnode connections.
CONNECTION_TYPE_LEAFNODE: Final = "LEAFNODE"
# A hub's first PING comes about a second after the leaf connects (§4.8).
FIRST_PING_S: Final = 1.0
# The leafnode auth timeout without TLS (nats-server's default, §4.2).
DEFAULT_AUTH_TIMEOUT_S: Final = 2.0
_STALE: Final = Expiry("Stale Connection", encode_err("Stale Connection"))
_AUTH_TIMEOUT: Final = Expiry(ERR_AUTH_TIMEOUT, encode_err(ERR_AUTH_TIMEOUT))
WILDCARD_HOSTS: Final = ("", "0.0.0.0", "::")
# nats-server's ErrTooManyAccountConnections, for an account over its leaf limit.
ERR_MAX_ACCOUNT_CONNECTIONS: Final = "maximum account active connections exceeded"


def leaf_policy(server: LeafServer, accept: LeafAcceptSettings) -> LinkPolicy:
    """How the shell serves an accepted leaf: a hub's keepalive and auth timeout."""
    settings = server.settings
    timeout = accept.auth_timeout_s
    if timeout is None:
        timeout = accept.tls.timeout_s + 1 if accept.tls is not None else DEFAULT_AUTH_TIMEOUT_S
    return LinkPolicy(
        outbound=OutboundPolicy(
            max_pending=settings.max_pending, write_deadline_s=settings.write_deadline_s
        ),
        eof_reason="Client Closed",
        keepalive=Keepalive(
            interval_s=settings.ping_interval_s,
            ping_max=settings.ping_max,
            stale=_STALE,
            first_s=FIRST_PING_S,
        ),
        handshake=(timeout, _AUTH_TIMEOUT),
        write_error_reason="Write Error",
    )


def permission_lists(perm: SubjectPermission | None) -> dict[str, object] | None:
    if perm is None or not (perm.allow or perm.deny):
        return None
    lists: dict[str, object] = {}
    if perm.allow:
        lists["allow"] = list(perm.allow)
    if perm.deny:
        lists["deny"] = list(perm.deny)
    return lists


class DeferBcrypt(LeafAuthorizer):
    """The leafnode authorization, with its bcrypt checks moved off the event loop.

    A CONNECT whose check would hash a bcrypt password comes back to the
    connection as ``Authenticate`` (``AsClient``), which runs the real check
    in a thread (``LeafConnection._authenticate``).
    """

    def check(self, options: Mapping[str, object], nonce: str) -> Accepted | AsClient | Refused:
        if self.is_expensive(options):
            return AsClient(default_account="")
        return super().check(options, nonce)

    def check_now(self, options: Mapping[str, object], nonce: str) -> Accepted | AsClient | Refused:
        """The real check (bcrypt included), for a worker thread."""
        return super().check(options, nonce)


def reachable_host(host: str) -> str:
    """The host a wildcard listen address is reached at (nats-server picks an interface's)."""
    if host not in WILDCARD_HOSTS:
        return host
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            # No packet is sent: connecting a UDP socket only picks a route.
            probe.connect(("192.0.2.1", 9))
            found: str = probe.getsockname()[0]
            return found
    except OSError:
        return "127.0.0.1"


def leaf_ssl_context(tls: TlsSettings) -> ssl.SSLContext:
    """The leaf port's server-side TLS context (``verify``: client certificates required)."""
    assert tls.cert_file is not None
    assert tls.key_file is not None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.ca_file:
        context.load_verify_locations(tls.ca_file)
    context.verify_mode = ssl.CERT_REQUIRED if tls.verify else ssl.CERT_NONE
    return context
