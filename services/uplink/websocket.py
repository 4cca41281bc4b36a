"""Leafnode over WebSocket: ``ws://`` and ``wss://`` remotes (leafnode-protocol.md §6).

The hub needs ``websocket {}`` plus a ``leafnodes {}`` listener; a request
whose path ends with ``/leafnode`` becomes a leaf connection (any other path a
client connection). After the ``101`` every byte of the NATS stream travels in
binary frames, ours masked (wsproto always masks client frames, which every
hub accepts, so ``ws_no_masking`` is not needed). ``ws_compression`` offers
permessage-deflate, which wsproto negotiates and applies itself.

``leafnode.websocket.WebSocketStream`` makes the framed connection look like
any other ``trio.abc.Stream``, so the leafnode code above it does not know
about frames (the router's WebSocket client port uses it too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, Request
from wsproto.extensions import PerMessageDeflate
from wsproto.utilities import RemoteProtocolError

from leafnode.websocket import MAX_RECV, WebSocketStream

from .dialer import DialError

if TYPE_CHECKING:
    from wsproto.extensions import Extension

    from .dialer import HubUrl

__all__ = ["WebSocketStream", "leafnode_path", "websocket_connect"]

LEAFNODE_PATH_SUFFIX: Final = "/leafnode"


def leafnode_path(path: str) -> str:
    """The request path: the URL path, ending with ``/leafnode``."""
    if path.endswith(LEAFNODE_PATH_SUFFIX):
        return path
    return path.rstrip("/") + LEAFNODE_PATH_SUFFIX


async def websocket_connect(
    stream: trio.abc.Stream, url: HubUrl, *, compression: bool, timeout_s: float
) -> WebSocketStream:
    """Upgrade ``stream`` to a leafnode WebSocket (HTTP/1.1 ``GET .../leafnode``).

    Raises:
        DialError: the hub refused the upgrade or did not answer in time.
    """
    ws = WSConnection(ConnectionType.CLIENT)
    extensions: list[Extension] = []
    if compression:
        extensions.append(PerMessageDeflate(client_no_context_takeover=True))
    host = url.address if url.port not in (80, 443) else url.host
    request = Request(host=host, target=leafnode_path(url.path), extensions=extensions)
    pending: list[bytes] = []
    try:
        with trio.fail_after(timeout_s):
            await stream.send_all(ws.send(request))
            while True:
                data = await stream.receive_some(MAX_RECV)
                if not data:
                    raise DialError("connection closed during the WebSocket upgrade")
                ws.receive_data(bytes(data))
                for event in ws.events():
                    if isinstance(event, AcceptConnection):
                        result = WebSocketStream(stream, ws, pending)
                        # Frames that came with the 101 (the hub's INFO) are queued.
                        await result._handle_events()
                        return result
                    if isinstance(event, RejectConnection):
                        raise DialError(f"WebSocket upgrade refused with HTTP {event.status_code}")
    except trio.TooSlowError:
        raise DialError(f"WebSocket upgrade timeout after {timeout_s:g}s") from None
    except RemoteProtocolError as exc:
        raise DialError(f"WebSocket upgrade failed: {exc}") from None
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise DialError(f"connection lost during the WebSocket upgrade: {exc}") from None
