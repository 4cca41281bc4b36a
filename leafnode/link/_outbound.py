"""The one outbound buffer, its policy, and the batch flusher.

Theory of operation. The routing path is synchronous: it appends bytes to a
target connection's ``Outbound`` and never awaits another peer's socket
(STYLE §3.5). Who then writes them?

1. The task that produced the bytes, at the end of its batch. A reader
   processes everything one read returned with ``Flusher.batching`` set, then
   calls ``Flusher.flush``: each connection that got data is written with one
   non-blocking ``send`` on a duplicate of its socket, right there. No task
   switch stands between a publish and its delivery, which is what
   request/reply latency is made of.
2. The connection's writer task, for whatever the kernel did not take at once
   (a full socket buffer), or when its previous write is still in flight (to
   keep bytes in order), or for streams without a raw socket (TLS, WebSocket,
   memory streams). It waits for the socket under the write deadline.
3. The flusher task, for bytes queued outside a reader batch (pings, timers,
   replay): the first such write wakes it, and it flushes as in (1).

Either way a connection costs at most one syscall per batch.

Pending bytes, as nats-server counts them (client.go ``queueOutbound`` /
``flushOutbound``): every byte queued and not yet taken by the kernel, what
waits in ``out`` *and* what the writer holds in flight, which it subtracts as
each ``send`` returns.

What happens past ``max_pending`` is the policy's ``overflow``:

``Overflow.CLOSE`` (client connections, the router's data link)
    the connection is a slow consumer: ``on_slow_consumer("pending bytes")``,
    which discards and closes. So does a write blocked past the deadline.
``Overflow.DROP`` (the uplink's hub and router links)
    further *messages* (``write_msg``) are dropped and counted in ``dropped``
    (core NATS semantics: a message nobody could take is lost); control lines
    (``write``: interest, PING/PONG) are always queued, since losing one would
    desynchronise the peers.

Fast producers are held back before that (``OutboundPolicy.stall``). When a
connection's pending bytes pass three quarters of ``max_pending`` it closes
its *gate*; a producer whose batch delivered to such a connection may wait
(``Flusher.stall``) before it reads on, until every gate it met opens again or
``STALL_TOTAL_S`` has passed. A gate opens once the writer has written all it
took or pending is back under the mark. In a single-threaded router this is
what lets a consumer that reads as fast as it can keep up with a publisher
that does not pace itself. Only client readers stall (nats-server stalls
``kind == CLIENT`` producers only).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import trio

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["STALL_TOTAL_S", "Flusher", "Outbound", "OutboundPolicy", "Overflow", "raw_socket_of"]

log = logging.getLogger("leafnode.link")

# Longest a producer waits per read for the consumers it stalled, nats-server's
# stallTotalAllowed (10 ms): at 64 KiB a read, a consumer that stopped reading
# slows its producer to ~6 MB/s, and max_pending's last quarter lasts a while.
STALL_TOTAL_S: Final = 0.010


class Overflow(enum.Enum):
    """What an ``Outbound`` does once its pending bytes pass ``max_pending``."""

    #: The peer is a slow consumer: ``on_slow_consumer`` closes it (nats-server).
    CLOSE = "close"
    #: Messages are dropped and counted; control lines are still queued.
    DROP = "drop"


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """How one connection kind's outbound behaves (module doc).

    Attributes:
        max_pending: bytes queued and not yet taken by the kernel before
            ``overflow`` applies.
        overflow: close the slow consumer, or drop messages and count them.
        write_deadline_s: longest one blocked write may take before the peer
            is a slow consumer (``math.inf``: no deadline, as the uplink's
            links, which rely on PING/PONG staleness instead).
        stall: whether the outbound closes its gate past three quarters of
            ``max_pending`` so that producers may wait for it.
        direct: whether a flush writes straight to a duplicate of the socket
            (plain sockets only); False leaves every write to the writer task.
    """

    max_pending: int
    overflow: Overflow = Overflow.CLOSE
    write_deadline_s: float = math.inf
    stall: bool = True
    direct: bool = True

    @property
    def stall_mark(self) -> int:
        """Pending bytes past which producers wait (nats-server: 3/4 of max_pending)."""
        if not self.stall:
            return self.max_pending
        return self.max_pending - (self.max_pending >> 2)


def raw_socket_of(stream: trio.abc.Stream) -> socket.socket | None:
    """A non-blocking duplicate of the stream's socket, for direct sends.

    None for streams without a socket (TLS, WebSocket, memory streams), and
    when the process is out of file descriptors: the connection is then served
    through ``stream`` (slower, one descriptor) rather than refused.
    """
    if not isinstance(stream, trio.SocketStream):
        return None
    try:
        raw = socket.socket(fileno=os.dup(stream.socket.fileno()))
    except OSError as exc:
        log.warning("Cannot duplicate a client socket (%s): writing through trio instead", exc)
        return None
    raw.setblocking(False)
    return raw


class Flusher:
    """Writes every connection that got bytes during a batch, once.

    One per process: every reader's batch and every timer write of that
    process go through it, so one flush at a batch's end serves all the
    connections the batch wrote to (module doc).
    """

    __slots__ = ("_signalled", "_wakeup", "batching", "dirty", "stalled")

    def __init__(self) -> None:
        self.dirty: list[Outbound] = []
        self.batching = False
        # Connections the last flushed batch left past their stall mark.
        self.stalled: list[Outbound] = []
        self._wakeup = trio.Event()
        self._signalled = False

    def mark(self, outbound: Outbound) -> None:
        self.dirty.append(outbound)
        if not self.batching and not self._signalled:
            self._signalled = True
            self._wakeup.set()

    def flush(self) -> None:
        """Write out every dirty connection (end of a batch).

        Afterwards ``stalled`` lists those still past their stall mark: the
        batch's producer may wait for them with ``stall``.
        """
        if self.stalled:
            self.stalled = []
        dirty = self.dirty
        if dirty:
            self.dirty = []
            for outbound in dirty:
                outbound.flush()
                if outbound.gate is not None:
                    self.stalled.append(outbound)

    async def stall(self) -> None:
        """Hold the producer of the last batch until its consumers catch up.

        Waits until every gate in ``stalled`` opens, or ``STALL_TOTAL_S``.
        """
        stalled = self.stalled
        self.stalled = []
        with trio.move_on_after(STALL_TOTAL_S):
            for outbound in stalled:
                gate = outbound.gate
                if gate is not None:
                    await gate.wait()

    async def run(self) -> None:
        """Flush what was queued outside reader batches, until cancelled."""
        while True:
            await self._wakeup.wait()
            self._wakeup = trio.Event()
            self._signalled = False
            self.flush()


def _ignore_slow_consumer(reason: str) -> None:
    """The default ``on_slow_consumer`` until a shell installs its own."""


class Outbound:
    """Queued bytes for one stream, written by ``flush`` and ``run_writer``.

    The routing path may inline ``write`` (append to ``out``, add to
    ``pending``, call ``queued`` when past ``max_pending`` or not ``dirty``):
    those four attributes are its interface.
    """

    __slots__ = (
        "_busy",
        "_close_after_flush",
        "_drops",
        "_generation",
        "_signalled",
        "_wakeup",
        "before_flush",
        "dirty",
        "dropped",
        "flusher",
        "gate",
        "max_pending",
        "on_slow_consumer",
        "out",
        "pending",
        "policy",
        "raw",
        "stall_mark",
        "stream",
    )

    def __init__(
        self,
        stream: trio.abc.Stream,
        flusher: Flusher,
        policy: OutboundPolicy,
        *,
        on_slow_consumer: Callable[[str], None] = _ignore_slow_consumer,
    ) -> None:
        self.stream = stream
        self.flusher = flusher
        self.policy = policy
        self.raw = raw_socket_of(stream) if policy.direct else None
        self.out: list[bytes] = []
        # Bytes in ``out`` plus those the writer holds in flight (module doc).
        self.pending = 0
        self.max_pending = policy.max_pending
        self.stall_mark = policy.stall_mark
        self._drops = policy.overflow is Overflow.DROP
        # Messages ``write_msg`` dropped (Overflow.DROP).
        self.dropped = 0
        self.on_slow_consumer = on_slow_consumer
        # Called first by every ``flush``: a producer that holds bytes back
        # (the router's hub sink, which frames runs) hands them over then.
        self.before_flush: Callable[[], None] | None = None
        # Closed (an unset Event) while producers should wait for us.
        self.gate: trio.Event | None = None
        self._wakeup = trio.Event()
        self._signalled = False
        self.dirty = False
        self._busy = False
        self._close_after_flush = False
        # Bumped by ``discard``: bytes in flight before it no longer count.
        self._generation = 0

    def write(self, data: bytes) -> None:
        """Queue ``data``, a control line or bytes never dropped (synchronous)."""
        self.out.append(data)
        self.pending += len(data)
        if self.pending > self.max_pending or not self.dirty:
            self.queued()

    def write_msg(self, data: bytes) -> bool:
        """Queue a message; False when ``Overflow.DROP`` dropped it (peer too far behind)."""
        if self.pending > self.max_pending and self._drops:
            self.dropped += 1
            return False
        self.out.append(data)
        self.pending += len(data)
        if self.pending > self.max_pending or not self.dirty:
            self.queued()
        return True

    def queued(self) -> None:
        """After appending to ``out``: enforce the limit, schedule a flush.

        Callers that inline ``write`` call this only when the limit is passed
        or the buffer was clean, which keeps the common case call-free.
        """
        if self.pending > self.max_pending and not self._drops:
            self.on_slow_consumer("pending bytes")
            return
        if not self.dirty:
            self.dirty = True
            self.flusher.mark(self)

    def flush(self) -> None:
        """Write what is queued now without blocking; hand any rest to the writer."""
        self.dirty = False
        if self.before_flush is not None:
            self.before_flush()
        out = self.out
        if not out:
            return
        raw = self.raw
        if raw is None or self._busy or self._signalled:
            # The writer has bytes in flight or is about to run: it keeps the order.
            self._wake_writer()
            if self.pending > self.stall_mark or self.gate is not None:
                self._check_stall()
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
        self.pending -= sent
        if sent < len(data):
            out.append(data[sent:] if sent else data)
            self._wake_writer()
        if self.pending > self.stall_mark or self.gate is not None:
            self._check_stall()

    def _check_stall(self) -> None:
        """Close the gate past the stall mark; open it below."""
        if self.pending > self.stall_mark:
            if self.gate is None:
                self.gate = trio.Event()
        elif self.gate is not None:
            self._open_gate()

    def _open_gate(self) -> None:
        gate = self.gate
        if gate is not None:
            self.gate = None
            gate.set()

    def _wake_writer(self) -> None:
        if not self._signalled:
            self._signalled = True
            self._wakeup.set()

    def discard(self) -> None:
        """Drop everything queued (slow consumer: nothing more will be read)."""
        self.out.clear()
        self.pending = 0
        self._generation += 1
        self._open_gate()

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

    async def run_writer(self) -> str | None:
        """Write what ``flush`` could not, until ``close_after_flush`` or cancellation.

        Returns None once ``close_after_flush`` is done, otherwise why the
        writer gave up: the peer broke the connection, or a write exceeded the
        deadline (after reporting a slow consumer).
        """
        out = self.out
        deadline_s = self.policy.write_deadline_s
        while True:
            await self._wakeup.wait()
            self._wakeup = trio.Event()
            self._signalled = False
            if out:
                data = out[0] if len(out) == 1 else b"".join(out)
                out.clear()
                self._busy = True
                try:
                    with trio.move_on_after(deadline_s) as scope:
                        error = await self._send(data)
                        if error is not None:
                            return error
                finally:
                    self._busy = False
                if scope.cancelled_caught:
                    self.on_slow_consumer("write deadline exceeded")
                    return "write deadline exceeded"
                # All it took is written (flushOutbound's n == attempted); the
                # next flush closes the gate again if pending is still high.
                self._open_gate()
            if self._close_after_flush and not out:
                return None

    async def _send(self, data: bytes) -> str | None:
        """Write ``data``, counting it off ``pending`` as the kernel takes it.

        Returns why the write failed, None when it did not.
        """
        generation = self._generation
        raw = self.raw
        if raw is None:
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                return f"write failed: {exc.__cause__ or exc}"
            if generation == self._generation:
                self.pending -= len(data)
                if self.gate is not None:
                    self._check_stall()
            return None
        view = memoryview(data)
        offset = 0
        size = len(data)
        while offset < size:
            # The socket is full when the writer runs (flush tried first):
            # wait for room, then take what the kernel accepts.
            await trio.lowlevel.wait_writable(raw)
            try:
                sent = raw.send(view[offset:])
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:
                return f"write failed: {exc.strerror or exc}"
            offset += sent
            if generation == self._generation:
                self.pending -= sent
                if self.gate is not None:
                    self._check_stall()
        return None
