"""Thin asyncio adapters: a one-shot request and a Unix-socket server helper.

For code on bare asyncio that does not load anyio (the supervisor, which
only pings, reloads and answers a few control requests); the protocol work
is ``ClientState``'s and ``FrameDecoder``'s, as in the trio adapters.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
from typing import TYPE_CHECKING

from ._client import MAX_RECV, ClientState
from ._codec import DEFAULT_MAX_FRAME
from ._protocol import SOCKET_MODE

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
    from pathlib import Path

    from ._codec import Frame

__all__ = ["request_once", "unix_server"]


async def request_once(
    path: str | Path,
    type: str,
    fields: Mapping[str, object] | None = None,
    blobs: Sequence[bytes] = (),
    *,
    max_frame: int = DEFAULT_MAX_FRAME,
) -> Frame:
    """Connect to a service socket, send one request, return its answer, close.

    Args:
        path: the service socket.
        type: the request type.
        fields: its JSON fields.
        blobs: its binary parts.
        max_frame: the largest answer accepted.

    Raises:
        OSError: nothing listens on ``path``, or the connection broke.
        RequestError: the service answered ``error``.
        IpcClosedError: the connection closed before the answer.
        FrameError: the service broke the framing.
    """
    reader, writer = await asyncio.open_unix_connection(os.fspath(path))
    try:
        state = ClientState(max_frame=max_frame)
        rid, data = state.start_request(type, fields, blobs)
        writer.write(data)
        await writer.drain()
        while True:
            received = await reader.read(MAX_RECV)
            answered, _events = state.receive_data(received)
            if rid in answered or not received:
                return state.take_response(rid)
    finally:
        writer.close()


async def _remove_stale_socket(path: str) -> None:
    """Unlink ``path`` if it is a socket nobody listens on; refuse a live one."""
    try:
        _reader, writer = await asyncio.open_unix_connection(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOTSOCK, errno.ECONNRESET):
            raise
        os.unlink(path)
        return
    writer.close()
    raise OSError(errno.EADDRINUSE, f"another process is listening on {path}")


@contextlib.asynccontextmanager
async def unix_server(
    path: str | Path,
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[object]],
    *,
    backlog: int = 128,
) -> AsyncIterator[asyncio.Server]:
    """Listen on a Unix socket while the ``async with`` block runs.

    The asyncio twin of ``serve_unix_socket``: a stale socket file is
    removed, a live listener's refused; mode 0660 is set before the first
    connection is accepted; ``handler(reader, writer)`` runs per connection
    and its writer is closed when it returns. A connection that breaks ends
    only its own handler. The socket file is removed on exit.

    Raises:
        OSError: the path is in use by a live listener, or cannot be bound.
    """
    spath = os.fspath(path)
    os.makedirs(os.path.dirname(spath) or ".", exist_ok=True)
    await _remove_stale_socket(spath)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(spath)
        os.chmod(spath, SOCKET_MODE)
    except BaseException:
        sock.close()
        raise

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except ConnectionError:
            pass  # the peer went away: nothing to answer
        finally:
            writer.close()

    server = await asyncio.start_unix_server(serve, sock=sock, backlog=backlog)
    try:
        yield server
    finally:
        server.close()
        with contextlib.suppress(OSError):
            os.unlink(spath)
