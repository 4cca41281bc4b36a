"""The websocket client port: nats-server's ``websocket { }`` block.

Browsers and nats.ws connect here; after the HTTP/1.1 upgrade
(``leafnode.websocket.websocket_accept``: origin checks, permessage-deflate)
the connection is an ordinary client (``ClientConnection`` with
``websocket=True``): same INFO, same protocol, same accounts and permissions,
only every byte travels in WebSocket frames. With ``tls { }`` the TLS
handshake comes first (``wss://``); ``no_tls: true`` allows plain ``ws://``.
The whole handshake is bounded by ``handshake_timeout``.

The block's own ``authorization`` and ``no_auth_user`` apply to these
clients (``Authenticator.for_websocket``); the upgrade request's cookies named
by ``jwt_cookie``, ``user_cookie``, ``pass_cookie`` and ``token_cookie``
stand in for the CONNECT fields a client leaves empty. Cookie values are
never logged.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from leafnode.clientport import peer_address
from leafnode.websocket import OriginPolicy, WebSocketRefused, websocket_accept

from .auth import cookie_credentials

if TYPE_CHECKING:
    import socket
    import ssl

    from leafnode.config import WebsocketSettings

    from .interfaces import WebsocketServer

__all__ = ["serve_websocket"]

log = logging.getLogger("leafnode.router")


async def serve_websocket(
    server: WebsocketServer,
    settings: WebsocketSettings,
    context: ssl.SSLContext | None,
    *,
    sock: socket.socket | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on the websocket port and serve its clients; reports the bound port.

    ``sock``: the port's listening socket when ``leafnode run`` bound it
    (and keeps it while the router restarts); otherwise it is bound here.
    """
    if sock is not None:
        listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(sock))]
    else:
        port = 0 if settings.port == -1 else settings.port
        listeners = await trio.open_tcp_listeners(port, host=settings.host or None)
    bound: int = listeners[0].socket.getsockname()[1]
    scheme = "wss" if context is not None else "ws"
    log.info("Listening for websocket clients on %s://%s:%d", scheme, settings.host, bound)
    if context is None:
        # nats-server's own warning for no_tls.
        log.warning("Websocket not configured with TLS. DO NOT USE IN PRODUCTION!")
    origins = OriginPolicy(settings.same_origin, settings.allowed_origins)
    # Connections run in ``handlers``; lame duck cancels ``accepting`` only.
    async with trio.open_nursery() as handlers:
        with server.websocket_accepting:
            async with trio.open_nursery() as accepting:
                for listener in listeners:
                    accepting.start_soon(
                        _accept_loop, server, listener, settings, context, origins, handlers
                    )
                task_status.started(bound)
        for listener in listeners:
            await listener.aclose()


async def _accept_loop(
    server: WebsocketServer,
    listener: trio.SocketListener,
    settings: WebsocketSettings,
    context: ssl.SSLContext | None,
    origins: OriginPolicy,
    handlers: trio.Nursery,
) -> None:
    while True:
        try:
            stream = await listener.accept()
        except OSError as exc:
            log.error("Error accepting websocket connection: %s", exc)
            await trio.sleep(0.1)
            continue
        handlers.start_soon(_upgrade, server, stream, settings, context, origins)


async def _upgrade(
    server: WebsocketServer,
    stream: trio.SocketStream,
    settings: WebsocketSettings,
    context: ssl.SSLContext | None,
    origins: OriginPolicy,
) -> None:
    host, port = peer_address(stream.socket)
    inner: trio.abc.Stream = stream
    try:
        with trio.fail_after(settings.handshake_timeout_s):
            if context is not None:
                inner = trio.SSLStream(stream, context, server_side=True)
                await inner.do_handshake()
            ws = await websocket_accept(
                inner,
                compression=settings.compression,
                origins=origins,
                tls=context is not None,
            )
    except (trio.TooSlowError, WebSocketRefused, trio.BrokenResourceError) as exc:
        reason = "timeout" if isinstance(exc, trio.TooSlowError) else str(exc.__cause__ or exc)
        log.error("%s:%d - websocket handshake error: %s", host, port, reason)
        with trio.CancelScope(shield=True):
            await stream.aclose()
        return
    await server.serve_websocket_client(ws, host, port, cookie_credentials(settings, ws.cookies))
