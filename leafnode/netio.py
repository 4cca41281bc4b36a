"""Reading a trio socket stream with one scheduler pass per read (router and uplink).

trio's ``receive_some`` yields to the scheduler *after* a successful ``recv``
as well as while waiting, so a message arriving on an idle connection costs
two scheduler passes before it is parsed. ``RawReceiver`` reads through a
non-blocking duplicate of the socket instead, and costs one pass per read:

* when the previous read emptied the socket (it returned less than asked
  for), it waits for readability first. Trying ``recv`` first would nearly
  always fail with ``EAGAIN``: a wasted system call plus an exception, paid on
  every message of a request/reply exchange;
* when the previous read filled the buffer (more is probably waiting), it
  yields once, so a busy connection cannot starve the others, then reads.
  A read of a quarter of the buffer or more tells ``leafnode.affinity``
  that input is queueing up.

Streams without a raw socket (TLS, WebSocket) use ``receive_some``.

Each hop of a request across router, uplink and hub pays this, and on a small
machine the processes of one round trip mostly share a CPU, so every system
call and interpreter step of each hop adds to the round-trip latency.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import trio

from leafnode.affinity import backlog_seen

if TYPE_CHECKING:
    import socket

__all__ = ["RawHolder", "RawReceiver"]


class RawHolder(Protocol):
    """Who holds the stream's duplicate socket (``leafnode.link.Outbound``).

    ``raw`` is None without one, and once it is closed.
    """

    @property
    def raw(self) -> socket.socket | None: ...


class RawReceiver:
    """Reads ``stream``, through ``holder.raw`` (its duplicate socket) when there is one."""

    __slots__ = ("_drained", "_holder", "stream")

    def __init__(self, stream: trio.abc.Stream, holder: RawHolder) -> None:
        self.stream = stream
        # An attribute read per use, not a call: this runs once per read.
        self._holder = holder
        # Whether the last read left the socket empty (see the module doc).
        self._drained = True

    async def receive(self, max_bytes: int) -> bytes | bytearray:
        """The next bytes; ``b""`` at EOF or when the peer broke the connection."""
        holder = self._holder
        raw = holder.raw
        if raw is None:
            try:
                return await self.stream.receive_some(max_bytes)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return b""
        if self._drained:
            await trio.lowlevel.wait_readable(raw)
        else:
            await trio.lowlevel.checkpoint()
        while True:
            raw = holder.raw
            if raw is None:
                return b""
            try:
                data = raw.recv(max_bytes)
            except (BlockingIOError, InterruptedError):
                # Another reader of the socket, or a spurious wakeup.
                await trio.lowlevel.wait_readable(raw)
                continue
            except OSError:
                return b""
            size = len(data)
            self._drained = size < max_bytes
            if size >= max_bytes >> 2:
                backlog_seen()
            return data
