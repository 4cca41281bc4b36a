"""NATS over WebSocket: the framed stream both ends use, and the server's upgrade.

After the HTTP/1.1 upgrade every byte of the NATS protocol travels in binary
frames. ``WebSocketStream`` makes such a connection look like any other
``trio.abc.Stream`` (frames in, bytes out; PINGs answered; a CLOSE frame is
EOF), so the protocol code above it does not know about frames. The uplink
dials hubs with it (``services/uplink/websocket.py``); the router serves
browser and nats.ws clients with ``websocket_accept`` (nats-server's
``websocket { }`` block).

wsproto does the framing, masking (client side) and permessage-deflate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from wsproto.extensions import Extension

__all__ = [
    "MAX_RECV",
    "OriginPolicy",
    "WebSocketRefused",
    "WebSocketStream",
    "parse_cookies",
    "websocket_accept",
]

MAX_RECV: Final = 64 * 1024
# Whole request headers larger than this are refused (a client, not a browser bug).
MAX_REQUEST_BYTES: Final = 64 * 1024
_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}


class WebSocketStream(trio.abc.Stream):
    """A byte stream carried in binary WebSocket frames."""

    def __init__(self, stream: trio.abc.Stream, ws: WSConnection, pending: list[bytes]) -> None:
        self._stream = stream
        self._ws = ws
        self._pending = pending
        self._send_lock = trio.Lock()
        self._closed = False
        # Server side: the upgrade request's cookies, name -> value (the last
        # of a name wins, as Go's net/http reads them for nats-server).
        self.cookies: dict[str, str] = {}

    async def _send_raw(self, data: bytes) -> None:
        # Frames from the writer task and PONGs from the reader share the socket.
        async with self._send_lock:
            await self._stream.send_all(data)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise trio.ClosedResourceError("WebSocket closed")
        await self._send_raw(self._ws.send(BytesMessage(data=bytes(data))))

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        while not self._pending:
            if self._closed:
                return b""
            data = await self._stream.receive_some(MAX_RECV)
            if not data:
                self._closed = True
                return b""
            try:
                self._ws.receive_data(bytes(data))
                await self._handle_events()
            except RemoteProtocolError as exc:
                raise trio.BrokenResourceError(f"WebSocket protocol error: {exc}") from None
        if len(self._pending) == 1:
            return self._pending.pop()
        data = b"".join(self._pending)
        self._pending.clear()
        return data

    async def _handle_events(self) -> None:
        for event in self._ws.events():
            if isinstance(event, BytesMessage):
                self._pending.append(bytes(event.data))
            elif isinstance(event, TextMessage):
                self._pending.append(event.data.encode())
            elif isinstance(event, Ping):
                await self._send_raw(self._ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                self._closed = True
                try:
                    await self._send_raw(self._ws.send(event.response()))
                except (LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
                    pass  # The peer is gone already; the close is done either way.

    async def aclose(self) -> None:
        self._closed = True
        await self._stream.aclose()


class WebSocketRefused(Exception):
    """The upgrade was refused (answered with an HTTP error) or broke off."""


@dataclass(frozen=True, slots=True)
class OriginPolicy:
    """nats-server's ``same_origin`` and ``allowed_origins`` checks.

    A request without an ``Origin`` header passes (RFC 6455 §1.6: only
    browsers send one, and any other client could send anything).
    """

    same_origin: bool = False
    allowed_origins: tuple[str, ...] = ()

    def refusal(self, origin: str | None, host: str, tls: bool) -> str | None:
        """Why ``origin`` may not connect (None: it may), as nats-server's checkOrigin."""
        if not self.same_origin and not self.allowed_origins:
            return None
        if not origin:
            return None
        parts = urlsplit(origin)
        if not parts.scheme or not parts.hostname:
            return f"invalid origin {origin!r}"
        scheme = parts.scheme.lower()
        port = parts.port or _DEFAULT_PORTS.get(scheme, 80)
        if self.same_origin:
            request = urlsplit(f"//{host}")
            own_scheme = "https" if tls else "http"
            own_port = request.port or _DEFAULT_PORTS[own_scheme]
            if (parts.hostname, port, scheme) != (request.hostname, own_port, own_scheme):
                return "not same origin"
        if self.allowed_origins:
            for allowed in self.allowed_origins:
                want = urlsplit(allowed)
                want_scheme = want.scheme.lower()
                want_port = want.port or _DEFAULT_PORTS.get(want_scheme, 80)
                if (want.hostname, want_port, want_scheme) == (parts.hostname, port, scheme):
                    return None
            return "not in the allowed list"
        return None


_REASONS: Final = {400: "Bad Request", 403: "Forbidden"}


async def _refuse(stream: trio.abc.Stream, status: int, text: str) -> None:
    """Answer a plain HTTP error and raise ``WebSocketRefused``."""
    body = text.encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    try:
        await stream.send_all(head.encode() + body)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    raise WebSocketRefused(f"HTTP {status}: {text}")


async def websocket_accept(
    stream: trio.abc.Stream, *, compression: bool, origins: OriginPolicy, tls: bool
) -> WebSocketStream:
    """Serve the HTTP/1.1 upgrade on ``stream`` and return the framed stream.

    ``compression`` accepts permessage-deflate when the client offers it.
    The caller bounds the time this takes.

    Raises:
        WebSocketRefused: not a WebSocket upgrade, a refused origin (403, as
            nats-server), or the connection broke off.
    """
    ws = WSConnection(ConnectionType.SERVER)
    received = 0
    while True:
        try:
            data = await stream.receive_some(MAX_RECV)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise WebSocketRefused(f"connection lost during the upgrade: {exc}") from None
        if not data:
            raise WebSocketRefused("connection closed during the upgrade")
        received += len(data)
        try:
            ws.receive_data(bytes(data))
            for event in ws.events():
                if isinstance(event, Request):
                    return await _upgrade(stream, ws, event, compression, origins, tls)
        except RemoteProtocolError as exc:
            await _refuse(stream, 400, f"not a WebSocket upgrade: {exc}")
        if received > MAX_REQUEST_BYTES:
            raise WebSocketRefused("request headers too large")


async def _upgrade(
    stream: trio.abc.Stream,
    ws: WSConnection,
    request: Request,
    compression: bool,
    origins: OriginPolicy,
    tls: bool,
) -> WebSocketStream:
    headers = {name.lower(): value for name, value in request.extra_headers}
    cookies = parse_cookies(
        value for name, value in request.extra_headers if name.lower() == b"cookie"
    )
    origin = headers.get(b"origin") or headers.get(b"sec-websocket-origin")
    refusal = origins.refusal(
        origin.decode(errors="replace") if origin else None, request.host, tls
    )
    if refusal is not None:
        await _refuse(stream, 403, f"origin not allowed: {refusal}")
    extensions: list[Extension] = [PerMessageDeflate()] if compression else []
    pending: list[bytes] = []
    try:
        await stream.send_all(ws.send(AcceptConnection(extensions=extensions)))
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise WebSocketRefused(f"connection lost during the upgrade: {exc}") from None
    result = WebSocketStream(stream, ws, pending)
    result.cookies = cookies
    # Frames that came with the request (a CONNECT sent at once) are queued.
    await result._handle_events()
    return result


def parse_cookies(headers: Iterable[bytes]) -> dict[str, str]:
    """``Cookie`` header values -> name: value (RFC 6265 ``name=value; ...``).

    Leniently, as Go's ``http.Request.Cookies``: blanks around pairs are
    trimmed, a value in double quotes loses them, pairs without ``=`` or a
    name are skipped.
    """
    found: dict[str, str] = {}
    for header in headers:
        for pair in header.decode("latin-1").split(";"):
            name, sep, value = pair.strip().partition("=")
            if not sep or not name:
                continue
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            found[name] = value
    return found
