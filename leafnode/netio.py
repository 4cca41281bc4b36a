"""Reading a trio socket stream with one scheduler pass per read (router and uplink).

trio's ``receive_some`` yields to the scheduler *after* a successful ``recv``
as well as while waiting, so a message arriving on an idle connection costs
two scheduler passes before it is parsed. ``RawReceiver`` reads through a
non-blocking duplicate of the socket instead: a read that had to wait for the
socket returns at once; a read that found data without waiting first yields
once, so a busy connection cannot starve the others. Streams without a raw
socket (TLS, WebSocket) use ``receive_some``.

Each hop of a request across router, uplink and hub pays this, so it is a
large part of the round-trip latency a Python leaf adds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable

__all__ = ["RawReceiver"]


class RawReceiver:
    """Reads ``stream``, through ``get_raw()`` (its duplicate socket) when there is one."""

    __slots__ = ("_get_raw", "_waited", "stream")

    def __init__(
        self, stream: trio.abc.Stream, get_raw: Callable[[], socket.socket | None]
    ) -> None:
        self.stream = stream
        self._get_raw = get_raw
        self._waited = False

    async def receive(self, max_bytes: int) -> bytes | bytearray:
        """The next bytes; ``b""`` at EOF or when the peer broke the connection."""
        raw = self._get_raw()
        if raw is None:
            try:
                return await self.stream.receive_some(max_bytes)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return b""
        if not self._waited:
            await trio.lowlevel.checkpoint()
        self._waited = False
        while True:
            try:
                return raw.recv(max_bytes)
            except (BlockingIOError, InterruptedError):
                self._waited = True
                await trio.lowlevel.wait_readable(raw)
                raw = self._get_raw()
                if raw is None:
                    return b""
            except OSError:
                return b""
