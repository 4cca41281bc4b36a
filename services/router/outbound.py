"""Per-connection outbound buffers, the batch flusher, and the writer task.

Theory of operation. The routing path is synchronous: it appends bytes to a
target connection's buffer and never awaits another peer's socket (STYLE
§3.5). Who then writes them?

1. The task that produced the bytes, at the end of its batch. A reader
   processes everything one ``receive_some`` returned with ``Flusher.batching``
   set, then calls ``Flusher.flush``: each connection that got data is written
   with one non-blocking ``send`` on a duplicate of its socket, right there.
   No task switch stands between a publish and its delivery, which is what
   request/reply latency is made of.
2. The connection's writer task, for whatever the kernel did not take at once
   (a full socket buffer), or when its previous write is still in flight (to
   keep bytes in order), or for streams without a raw socket (TLS). It waits
   for the socket with ``send_all`` under the write deadline.
3. The flusher task, for bytes queued outside a reader batch (pings, timers):
   the first such write wakes it, and it flushes as in (1).

Either way a connection costs at most one syscall per batch. A connection whose
queued bytes exceed ``max_pending``, or whose write blocks past the deadline,
is a slow consumer and is closed, so one stuck reader never stalls the router
nor grows without bound (nats-server's queueOutbound).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Flusher", "Outbound", "raw_socket_of"]

log = logging.getLogger("leafnode.router")


def raw_socket_of(stream: trio.abc.Stream) -> socket.socket | None:
    """A non-blocking duplicate of the stream's socket, for direct sends."""
    if not isinstance(stream, trio.SocketStream):
        return None
    raw = socket.socket(fileno=os.dup(stream.socket.fileno()))
    raw.setblocking(False)
    return raw


class Flusher:
    """Writes every connection that got bytes during a batch, once."""

    __slots__ = ("_signalled", "_wakeup", "batching", "dirty")

    def __init__(self) -> None:
        self.dirty: list[Outbound] = []
        self.batching = False
        self._wakeup = trio.Event()
        self._signalled = False

    def mark(self, outbound: Outbound) -> None:
        self.dirty.append(outbound)
        if not self.batching and not self._signalled:
            self._signalled = True
            self._wakeup.set()

    def flush(self) -> None:
        """Write out every dirty connection (end of a batch)."""
        dirty = self.dirty
        if dirty:
            self.dirty = []
            for outbound in dirty:
                outbound.flush()

    async def run(self) -> None:
        """Flush what was queued outside reader batches."""
        while True:
            await self._wakeup.wait()
            self._wakeup = trio.Event()
            self._signalled = False
            self.flush()


class Outbound:
    """Queued bytes for one stream."""

    __slots__ = (
        "_busy",
        "_close_after_flush",
        "_signalled",
        "_wakeup",
        "dirty",
        "flusher",
        "max_pending",
        "on_slow_consumer",
        "out",
        "pending",
        "raw",
        "stream",
        "write_deadline_s",
    )

    def __init__(
        self,
        stream: trio.abc.Stream,
        flusher: Flusher,
        *,
        max_pending: int,
        write_deadline_s: float,
        on_slow_consumer: Callable[[str], None],
    ) -> None:
        self.stream = stream
        self.flusher = flusher
        self.raw = raw_socket_of(stream)
        self.out: list[bytes] = []
        self.pending = 0
        self.max_pending = max_pending
        self.write_deadline_s = write_deadline_s
        self.on_slow_consumer = on_slow_consumer
        self._wakeup = trio.Event()
        self._signalled = False
        self.dirty = False
        self._busy = False
        self._close_after_flush = False

    def write(self, data: bytes) -> None:
        """Queue ``data`` (routing path: synchronous, no await)."""
        self.out.append(data)
        self.pending += len(data)
        if self.pending > self.max_pending or not self.dirty:
            self.queued()

    def queued(self) -> None:
        """After appending to ``out``: enforce the limit, schedule a flush.

        Callers that inline ``write`` call this only when the limit is passed
        or the buffer was clean, which keeps the common case call-free.
        """
        if self.pending > self.max_pending:
            self.on_slow_consumer("pending bytes")
            return
        if not self.dirty:
            self.dirty = True
            self.flusher.mark(self)

    def flush(self) -> None:
        """Write what is queued now without blocking; hand any rest to the writer."""
        self.dirty = False
        out = self.out
        if not out:
            return
        raw = self.raw
        if raw is None or self._busy:
            self._wake_writer()
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        try:
            sent = raw.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            # Broken peer: let the writer meet the error through trio and end.
            sent = 0
        if sent < len(data):
            out.append(data[sent:])
            self.pending = len(data) - sent
            self._wake_writer()
        else:
            self.pending = 0

    def _wake_writer(self) -> None:
        if not self._signalled:
            self._signalled = True
            self._wakeup.set()

    def discard(self) -> None:
        """Drop everything queued (slow consumer: nothing more will be read)."""
        self.out.clear()
        self.pending = 0

    def close_after_flush(self) -> None:
        """Ask the writer to return once what is queued now has been written."""
        self._close_after_flush = True
        self._wake_writer()

    def close_raw(self) -> None:
        """Close the duplicate socket (the peer sees EOF only once both are closed)."""
        if self.raw is not None:
            with contextlib.suppress(OSError):
                self.raw.close()
            self.raw = None

    async def run_writer(self) -> None:
        """Write what ``flush`` could not, until ``close_after_flush`` or cancellation.

        Error handling: a broken peer ends the writer quietly (the reader sees
        EOF too); a write that exceeds the deadline reports a slow consumer.
        """
        out = self.out
        while True:
            await self._wakeup.wait()
            self._wakeup = trio.Event()
            self._signalled = False
            if out:
                data = out[0] if len(out) == 1 else b"".join(out)
                out.clear()
                self.pending = 0
                self._busy = True
                try:
                    with trio.move_on_after(self.write_deadline_s) as scope:
                        await self.stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                finally:
                    self._busy = False
                if scope.cancelled_caught:
                    self.on_slow_consumer("write deadline exceeded")
                    return
            if self._close_after_flush and not out:
                return
