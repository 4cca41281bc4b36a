"""Per-connection outbound buffer and its writer task (nats-server's queueOutbound).

The routing path is synchronous: it appends bytes to a target connection's
buffer and wakes that connection's writer, never awaiting another peer's
socket (STYLE §3.5). The writer joins everything queued since its last wakeup
into one ``send_all``, so a burst of messages costs one syscall per client per
scheduler pass. A connection whose queued bytes exceed ``max_pending``, or
whose write blocks longer than ``write_deadline_s``, is a slow consumer and is
closed, so one stuck reader can never stall the router or grow without bound.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Outbound"]

log = logging.getLogger("leafnode.router")


class Outbound:
    """Queued bytes for one stream, flushed by ``run_writer``."""

    __slots__ = (
        "_close_after_flush",
        "_signalled",
        "_wakeup",
        "max_pending",
        "on_slow_consumer",
        "out",
        "pending",
        "stream",
        "write_deadline_s",
    )

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        max_pending: int,
        write_deadline_s: float,
        on_slow_consumer: Callable[[str], None],
    ) -> None:
        self.stream = stream
        self.out: list[bytes] = []
        self.pending = 0
        self.max_pending = max_pending
        self.write_deadline_s = write_deadline_s
        self.on_slow_consumer = on_slow_consumer
        self._wakeup = trio.Event()
        self._signalled = False
        self._close_after_flush = False

    def write(self, data: bytes) -> None:
        """Queue ``data`` (routing path: synchronous, no await)."""
        self.out.append(data)
        self.pending += len(data)
        if self.pending > self.max_pending:
            self.on_slow_consumer("pending bytes")
            return
        if not self._signalled:
            self._signalled = True
            self._wakeup.set()

    def kick(self) -> None:
        """Wake the writer after appending to ``out`` directly (batch writers)."""
        if self.pending > self.max_pending:
            self.on_slow_consumer("pending bytes")
            return
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
        if not self._signalled:
            self._signalled = True
            self._wakeup.set()

    async def run_writer(self) -> None:
        """Write queued bytes until ``close_after_flush`` or cancellation.

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
                with trio.move_on_after(self.write_deadline_s) as scope:
                    try:
                        await self.stream.send_all(data)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        return
                if scope.cancelled_caught:
                    self.on_slow_consumer("write deadline exceeded")
                    return
            if self._close_after_flush and not out:
                return
