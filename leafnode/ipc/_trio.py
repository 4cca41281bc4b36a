"""Thin trio adapters: an ipc client and a Unix-socket server helper.

The protocol work is done by ``ClientState`` / ``FrameDecoder``; this module
only moves bytes and wakes tasks.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
from typing import TYPE_CHECKING

import trio

from ._client import MAX_RECV, ClientState, IpcClosedError
from ._codec import DEFAULT_MAX_FRAME, FrameError
from ._protocol import SOCKET_MODE

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
    from pathlib import Path

    from ._codec import Frame

__all__ = ["TrioIpcClient", "open_trio_client", "serve_unix_socket"]

log = logging.getLogger("leafnode.ipc")


class TrioIpcClient:
    """A request/response client over one trio stream.

    Build it with ``open_trio_client``. Any number of tasks may call
    ``request`` concurrently (requests are pipelined, answers matched by id).

    Error handling: an ``error`` answer raises ``RequestError``; a closed or
    broken connection raises ``IpcClosedError`` in every waiting and later
    call. A request cancelled while it is being written leaves a partial
    frame on the socket, so the client closes the connection then.
    """

    def __init__(self, stream: trio.abc.Stream, *, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self._stream = stream
        self._state = ClientState(max_frame=max_frame)
        self._waiters: dict[int, trio.Event] = {}
        self._events_ready = trio.Event()
        self._send_lock = trio.Lock()

    async def request(
        self, type: str, fields: Mapping[str, object] | None = None, blobs: Sequence[bytes] = ()
    ) -> Frame:
        """Send one request and wait for its answer.

        Args:
            type: the request type (see ``leafnode.ipc`` protocol docs).
            fields: the request's JSON fields.
            blobs: its binary parts.

        Returns:
            The answer frame (``ok``/``pong``).

        Raises:
            RequestError: the server answered ``error``.
            IpcClosedError: the connection closed first.
        """
        rid, data = self._state.start_request(type, fields, blobs)
        return await self._exchange(rid, data)

    async def request_prepared(self, build: Callable[[int], bytes]) -> Frame:
        """Like ``request`` for a frame made by a typed encoder: ``build(id) -> bytes``."""
        rid, data = self._state.encode_prepared(build)
        return await self._exchange(rid, data)

    async def wait_events(self) -> list[Frame]:
        """Wait for subscription events and return them (coalesced, see ``ClientState``).

        Raises:
            IpcClosedError: the connection closed.
        """
        while True:
            events = self._state.take_events()
            if events:
                return events
            if self._state.closed is not None:
                raise IpcClosedError(str(self._state.closed))
            await self._events_ready.wait()
            self._events_ready = trio.Event()

    async def aclose(self) -> None:
        """Close the connection; waiting requests get ``IpcClosedError``."""
        self._close(IpcClosedError("connection closed by the client"))
        await self._stream.aclose()

    async def _exchange(self, rid: int, data: bytes) -> Frame:
        done = self._waiters[rid] = trio.Event()
        try:
            async with self._send_lock:
                try:
                    await self._stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                    self._close(IpcClosedError(f"connection lost: {exc!r}"))
                    raise IpcClosedError(f"connection lost: {exc!r}") from exc
                except BaseException:
                    # A partial frame may be on the wire: nothing after it can be trusted.
                    self._close(IpcClosedError("connection broken while sending"))
                    raise
            await done.wait()
            return self._state.take_response(rid)
        finally:
            self._waiters.pop(rid, None)
            self._state.abandon(rid)

    async def run_reader(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Receive and dispatch answers until the connection closes (one task per client)."""
        task_status.started()
        try:
            while True:
                try:
                    data = await self._stream.receive_some(MAX_RECV)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                    self._close(IpcClosedError(f"connection lost: {exc!r}"))
                    return
                try:
                    answered, got_events = self._state.receive_data(data)
                except FrameError as exc:
                    self._close(IpcClosedError(f"bad frame from server: {exc}"))
                    return
                for rid in answered:
                    waiter = self._waiters.get(rid)
                    if waiter is not None:
                        waiter.set()
                if got_events:
                    self._events_ready.set()
                if not data:
                    self._wake_all()
                    return
        finally:
            self._close(IpcClosedError("connection closed"))

    def _close(self, reason: IpcClosedError) -> None:
        self._state.close(reason)
        self._wake_all()

    def _wake_all(self) -> None:
        for waiter in self._waiters.values():
            waiter.set()
        self._events_ready.set()


@contextlib.asynccontextmanager
async def open_trio_client(
    path: str | Path, *, max_frame: int = DEFAULT_MAX_FRAME
) -> AsyncIterator[TrioIpcClient]:
    """Connect to a service socket; the client lives for the ``async with`` block.

    Raises:
        OSError: nothing listens on ``path``.
    """
    stream = await trio.open_unix_socket(os.fspath(path))
    client = TrioIpcClient(stream, max_frame=max_frame)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run_reader)
            try:
                yield client
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The reader never raises, so a group holds the body's one exception:
        # hand it back as it was raised, not wrapped.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    finally:
        with trio.CancelScope(shield=True):
            await client.aclose()


async def _remove_stale_socket(path: str) -> None:
    """Unlink ``path`` if it is a socket nobody listens on; refuse a live one."""
    try:
        probe = await trio.open_unix_socket(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOTSOCK, errno.ECONNRESET):
            raise
        os.unlink(path)
        return
    await probe.aclose()
    raise OSError(errno.EADDRINUSE, f"another process is listening on {path}")


async def serve_unix_socket(
    path: str | Path,
    handler: Callable[[trio.SocketStream], Awaitable[object]],
    *,
    backlog: int = 128,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on a Unix socket and run ``handler(stream)`` for each connection.

    A stale socket file left by a killed process is removed; a socket another
    live process listens on is refused. The socket gets mode 0660 before the
    first connection is accepted (STYLE §3.7); ``task_status.started`` is
    called with ``[listener]`` once it accepts. Each stream is closed when
    its handler returns.

    Raises:
        OSError: the path is in use by a live listener, or cannot be bound.
    """
    spath = os.fspath(path)
    os.makedirs(os.path.dirname(spath) or ".", exist_ok=True)
    await _remove_stale_socket(spath)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await sock.bind(spath)
        os.chmod(spath, SOCKET_MODE)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    listener = trio.SocketListener(sock)
    try:
        # serve_listeners closes each stream after its handler returns and
        # rides out EMFILE-style accept errors.
        await trio.serve_listeners(handler, [listener], task_status=task_status)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(spath)
        sock.close()
