"""Open a hub link: INFO, TLS, CONNECT, connect_info (leafnode-protocol.md §4.2, §11).

The steps, each bounded in time:

1. (``tls { handshake_first: true }``) TLS before anything is read.
2. The hub's INFO within ``first_info_timeout``. It must be a leafnode port's
   INFO (``is_leafnode_info``); otherwise we reached some other port (a client,
   route or gateway port) and give up, as nats-server does.
3. TLS when the INFO says ``tls_required`` or the remote has a ``tls {}`` block.
4. ``CONNECT`` with our identity and credentials. Never ``lang`` (the hub
   would take us for a client) nor ``account`` (an authorization violation),
   and no INFO first: that would start compression negotiation on 2.10+ hubs
   and is an authorization violation on 2.9 and on ``compression: off`` hubs.
5. When the INFO had ``info_on_connect``, the ``connect_info`` INFO within
   2 s, which carries the hub account and its import/export permissions. An
   ``-ERR`` here is the hub refusing our credentials.

The framer used here stays with the link: lines that arrived right behind the
``connect_info`` INFO (the hub's first ``LS+``) are still buffered in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import trio

from leafnode import SERVER_VERSION
from leafnode.proto import (
    PONG,
    Err,
    Info,
    Kind,
    MessageFramer,
    Ping,
    RemoteProtocolError,
    encode_connect,
)

from .auth import CredentialsError, connect_fields
from .dialer import DialError, dial, start_tls
from .framing import LINK_MAX_CONTROL_LINE, LINK_MAX_PAYLOAD

if TYPE_CHECKING:
    import ssl

    from leafnode.config import RemoteSettings
    from leafnode.proto import Event

    from .dialer import HubUrl

__all__ = [
    "CONNECT_INFO_TIMEOUT_S",
    "HandshakeError",
    "HubLink",
    "Identity",
    "backoff_for_error",
    "is_leafnode_info",
    "open_hub_link",
]

# A real leaf waits this long for the connect_info INFO (§4.2 step 6).
CONNECT_INFO_TIMEOUT_S: Final = 2.0
# nats-server's back-off after loop, permission and same-cluster errors (§4.7, §4.11).
LONG_BACKOFF_S: Final = 30.0
# ... and after a min_version rejection (§4.11).
VERSION_BACKOFF_S: Final = 5.0
MAX_RECV: Final = 64 * 1024
_LONG_BACKOFF_TEXTS: Final = ("loop detected", "permissions violation", "same cluster name")


class HandshakeError(Exception):
    """The hub link could not be established.

    Attributes:
        reason: one line for the log, naming what went wrong.
        backoff_s: how long to wait before the next attempt, when the reason
            dictates it (None: the normal reconnect delay).
    """

    def __init__(self, reason: str, *, backoff_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.backoff_s = backoff_s


def backoff_for_error(text: str) -> float | None:
    """The back-off an ``-ERR`` from the hub calls for (None: the normal delay)."""
    lowered = text.lower()
    if any(marker in lowered for marker in _LONG_BACKOFF_TEXTS):
        return LONG_BACKOFF_S
    if "minimum version" in lowered:
        return VERSION_BACKOFF_S
    return None


def is_leafnode_info(info: dict[str, object]) -> bool:
    """Whether the first INFO came from a hub's leafnode port.

    A leafnode port's INFO carries a non-zero ``client_id`` (a route's or a
    gateway's carries none) and, unlike a client port's, ``leafnode_urls`` or
    ``info_on_connect``. Checked live on 2.9.10 and 2.15.1: both always send
    ``"info_on_connect":true`` on the leafnode port and never on the client
    port; ``leafnode_urls`` is absent when a 2.15 hub has ``leafnodes {
    no_advertise: true }`` (2.9.10 still sends it). nats-server's own leaf
    demands ``leafnode_urls`` on 2.9 and so refuses such a 2.15 hub; 2.15's leaf
    connects to it, and so do we. ``leafnode_urls`` alone still marks a hub
    older than 2.2.2, which sent no ``info_on_connect``.
    """
    client_id = info.get("client_id")
    if not isinstance(client_id, int) or isinstance(client_id, bool) or not client_id:
        return False
    return "leafnode_urls" in info or info.get("info_on_connect") is True


@dataclass(frozen=True)
class Identity:
    """Who we are to every hub: ``server_id`` and the leaf ``name`` (§4.3)."""

    server_id: str
    name: str
    # The site cluster's name ("" for a lone node): CONNECT's ``cluster``.
    cluster: str = ""


@dataclass
class HubLink:
    """An established hub link, ready for interest and messages."""

    url: HubUrl
    stream: trio.abc.Stream
    framer: MessageFramer
    info: dict[str, object]
    connect_info: dict[str, object] = field(default_factory=dict)


async def _next_event(
    stream: trio.abc.Stream, framer: MessageFramer, timeout_s: float, what: str
) -> Event:
    """The next event from the hub, or HandshakeError when none comes in time."""
    with trio.move_on_after(timeout_s):
        try:
            while True:
                event = framer.next_event()
                if event is not None:
                    return event
                data = await stream.receive_some(MAX_RECV)
                if not data:
                    raise HandshakeError(f"connection closed by the hub while waiting for {what}")
                framer.feed(data)
        except RemoteProtocolError as exc:
            raise HandshakeError(
                f"invalid data from the hub while waiting for {what}: {exc}"
            ) from None
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise HandshakeError(f"connection lost while waiting for {what}: {exc}") from None
    raise HandshakeError(f"no {what} from the hub within {timeout_s:g}s")


def _refused(text: str, when: str) -> HandshakeError:
    return HandshakeError(f"hub answered -ERR '{text}' {when}", backoff_s=backoff_for_error(text))


def build_connect(
    remote: RemoteSettings, identity: Identity, url: HubUrl, info: dict[str, object]
) -> dict[str, object]:
    """The CONNECT options for this attempt (§4.3, §11 step 3)."""
    nonce = info.get("nonce")
    options: dict[str, object] = {
        "version": SERVER_VERSION,
        "server_id": identity.server_id,
        "name": identity.name,
        "headers": True,
        "remote_account": remote.account,
    }
    options.update(connect_fields(remote, url.userinfo, nonce if isinstance(nonce, str) else ""))
    if remote.deny_imports:
        options["deny_pub"] = list(remote.deny_imports)
    if remote.hub:
        options["is_hub"] = True
    if identity.cluster:
        options["cluster"] = identity.cluster
    return options


async def open_hub_link(
    url: HubUrl, remote: RemoteSettings, identity: Identity, tls_ctx: ssl.SSLContext
) -> HubLink:
    """Dial ``url`` and run the leafnode handshake.

    Raises:
        HandshakeError: any step failed; ``reason`` says which and why.
    """
    tls = remote.tls
    tls_timeout_s = tls.timeout_s if tls is not None else 2.0
    try:
        stream = await dial(url, timeout_s=remote.dial_timeout_s)
    except DialError as exc:
        raise HandshakeError(f"cannot connect: {exc}") from None
    try:
        return await _handshake(url, remote, identity, tls_ctx, stream, tls_timeout_s)
    except BaseException:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(stream)
        raise


async def _handshake(
    url: HubUrl,
    remote: RemoteSettings,
    identity: Identity,
    tls_ctx: ssl.SSLContext,
    stream: trio.abc.Stream,
    tls_timeout_s: float,
) -> HubLink:
    tls = remote.tls
    secured = False
    try:
        if url.websocket:
            # Imported here: wsproto (with h11) only for a ws:// or wss:// hub.
            from .websocket import websocket_connect

            if url.scheme == "wss":
                stream = await start_tls(stream, tls_ctx, url.host, timeout_s=tls_timeout_s)
            stream = await websocket_connect(
                stream, url, compression=remote.ws_compression, timeout_s=tls_timeout_s
            )
            # The WebSocket (or wss) is the transport: no TLS upgrade inside it.
            secured = True
        elif tls is not None and tls.handshake_first:
            stream = await start_tls(stream, tls_ctx, url.host, timeout_s=tls_timeout_s)
            secured = True
    except DialError as exc:
        raise HandshakeError(str(exc)) from None
    framer = MessageFramer(
        Kind.LEAF, max_payload=LINK_MAX_PAYLOAD, max_control_line=LINK_MAX_CONTROL_LINE
    )
    event = await _next_event(stream, framer, remote.first_info_timeout_s, "INFO")
    if isinstance(event, Err):
        raise _refused(event.text, "instead of INFO")
    if not isinstance(event, Info):
        raise HandshakeError(f"expected INFO from the hub, got {type(event).__name__}")
    info = event.options
    if not is_leafnode_info(info):
        raise HandshakeError(
            "the hub INFO has no client_id or no leafnode_urls/info_on_connect: "
            "this is not a leafnode port"
        )
    if not secured and (tls is not None or info.get("tls_required") is True):
        try:
            stream = await start_tls(stream, tls_ctx, url.host, timeout_s=tls_timeout_s)
        except DialError as exc:
            raise HandshakeError(str(exc)) from None
    try:
        connect = build_connect(remote, identity, url, info)
    except CredentialsError as exc:
        raise HandshakeError(f"credentials: {exc}") from None
    link = HubLink(url, stream, framer, info)
    await _send(stream, encode_connect(connect))
    if info.get("info_on_connect") is not True:
        return link
    while True:
        event = await _next_event(stream, framer, CONNECT_INFO_TIMEOUT_S, "connect_info INFO")
        if isinstance(event, Info) and event.options.get("connect_info") is True:
            link.connect_info = event.options
            return link
        if isinstance(event, Err):
            raise _refused(event.text, "to CONNECT")
        if isinstance(event, Ping):
            await _send(stream, PONG)


async def _send(stream: trio.abc.Stream, data: bytes) -> None:
    try:
        await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise HandshakeError(f"connection lost during the handshake: {exc}") from None
