"""Thin anyio adapter: the ipc client for code running on asyncio (the FastAPI api).

Same protocol core as the trio client (``ClientState``); only the waiting and
the socket differ. Works on any anyio backend.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from ._client import MAX_RECV, ClientState, IpcClosedError
from ._codec import DEFAULT_MAX_FRAME, FrameError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping, Sequence
    from pathlib import Path

    from ._codec import Frame

__all__ = ["AnyioIpcClient", "open_anyio_client"]


class AnyioIpcClient:
    """A request/response client over one anyio byte stream.

    Build it with ``open_anyio_client``. Concurrent ``request`` calls are
    pipelined and matched by id. Error handling is the trio client's: an
    ``error`` answer raises ``RequestError``, a lost connection
    ``IpcClosedError``, and a send interrupted half-way closes the connection.
    """

    def __init__(self, stream: anyio.abc.ByteStream, *, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self._stream = stream
        self._state = ClientState(max_frame=max_frame)
        self._waiters: dict[int, anyio.Event] = {}
        self._events_ready = anyio.Event()
        self._send_lock = anyio.Lock()

    async def request(
        self, type: str, fields: Mapping[str, object] | None = None, blobs: Sequence[bytes] = ()
    ) -> Frame:
        """Send one request and wait for its answer (see ``TrioIpcClient.request``)."""
        rid, data = self._state.start_request(type, fields, blobs)
        return await self._exchange(rid, data)

    async def request_prepared(self, build: Callable[[int], bytes]) -> Frame:
        """Like ``request`` for a frame made by a typed encoder: ``build(id) -> bytes``."""
        rid, data = self._state.encode_prepared(build)
        return await self._exchange(rid, data)

    async def wait_events(self) -> list[Frame]:
        """Wait for subscription events and return them (coalesced).

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
            self._events_ready = anyio.Event()

    async def aclose(self) -> None:
        """Close the connection; waiting requests get ``IpcClosedError``."""
        self._close(IpcClosedError("connection closed by the client"))
        await self._stream.aclose()

    async def _exchange(self, rid: int, data: bytes) -> Frame:
        done = self._waiters[rid] = anyio.Event()
        try:
            async with self._send_lock:
                try:
                    await self._stream.send(data)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
                    self._close(IpcClosedError(f"connection lost: {exc!r}"))
                    raise IpcClosedError(f"connection lost: {exc!r}") from exc
                except BaseException:
                    self._close(IpcClosedError("connection broken while sending"))
                    raise
            await done.wait()
            return self._state.take_response(rid)
        finally:
            self._waiters.pop(rid, None)
            self._state.abandon(rid)

    async def run_reader(self) -> None:
        """Receive and dispatch answers until the connection closes."""
        try:
            while True:
                try:
                    data = await self._stream.receive(MAX_RECV)
                except anyio.EndOfStream:
                    data = b""
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
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
async def open_anyio_client(
    path: str | Path, *, max_frame: int = DEFAULT_MAX_FRAME
) -> AsyncIterator[AnyioIpcClient]:
    """Connect to a service socket; the client lives for the ``async with`` block.

    Raises:
        OSError: nothing listens on ``path``.
    """
    stream = await anyio.connect_unix(os.fspath(path))
    client = AnyioIpcClient(stream, max_frame=max_frame)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.run_reader)
            try:
                yield client
            finally:
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The reader never raises: a group holds the body's one exception.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await client.aclose()
