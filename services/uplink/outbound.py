"""Queued bytes for one stream and the task that writes them (STYLE §3.5).

Everything that produces bytes for a peer (the hub link, the router link) is
synchronous: it appends to ``Outbound`` and wakes the writer, which joins what
accumulated into one ``send_all`` per wakeup. A peer that does not drain is not
allowed to grow memory without bound: past ``max_pending`` further messages are
dropped and counted (core NATS semantics: a message nobody could take is
lost), while control lines (interest, PING/PONG) are always queued, since
losing one would desynchronise the peers.

Latency. Waking the writer task costs a trio scheduler pass, and every pass
polls epoll: a system call, which is expensive on the virtual machines we run
on. On a plain socket, messages (``write_msg``, called only by the readers)
therefore do not wake the writer: the reader calls ``flush_now`` once it has
handled everything one receive returned, which tries one non-blocking
``send`` right away and wakes the writer only for what the kernel did not
take. Order is kept because ``flush_now`` never sends while the writer is
mid-write. Control lines still wake the writer: they also come from tasks
that never call ``flush_now``.
"""

from __future__ import annotations

import os
import socket

import trio

__all__ = ["Outbound", "raw_socket"]


def raw_socket(stream: trio.abc.Stream) -> socket.socket | None:
    """A non-blocking duplicate of a plain socket stream's socket, for ``flush_now``.

    None for anything that is not a plain socket (TLS, WebSocket): those must
    go through their stream object. The caller closes the duplicate.
    """
    if not isinstance(stream, trio.SocketStream):
        return None
    sock = socket.socket(fileno=os.dup(stream.socket.fileno()))
    sock.setblocking(False)
    return sock


class Outbound:
    """Bytes waiting to be written to a stream."""

    __slots__ = (
        "_closing",
        "_raw",
        "_sending",
        "_signalled",
        "_wakeup",
        "dropped",
        "max_pending",
        "out",
        "pending",
    )

    def __init__(self, *, max_pending: int, raw: socket.socket | None = None) -> None:
        self.out: list[bytes] = []
        self.pending = 0
        self.max_pending = max_pending
        self.dropped = 0
        self._raw = raw
        self._sending = False
        self._wakeup = trio.Event()
        self._signalled = False
        self._closing = False

    def write(self, data: bytes) -> None:
        """Queue a control line (never dropped)."""
        self.out.append(data)
        self.pending += len(data)
        if not self._signalled:
            self._signalled = True
            self._wakeup.set()

    def write_msg(self, data: bytes) -> bool:
        """Queue a message unless the peer is too far behind; False when dropped."""
        if self.pending > self.max_pending:
            self.dropped += 1
            return False
        self.out.append(data)
        self.pending += len(data)
        # With a raw socket the reader that queued this calls flush_now when its
        # batch is done; waking the writer too would cost a scheduler pass.
        if self._raw is None and not self._signalled:
            self._signalled = True
            self._wakeup.set()
        return True

    def write_msg2(self, head: bytes, rest: bytes) -> bool:
        """``write_msg(head + rest)`` without building the concatenation."""
        if self.pending > self.max_pending:
            self.dropped += 1
            return False
        out = self.out
        out.append(head)
        out.append(rest)
        self.pending += len(head) + len(rest)
        if self._raw is None and not self._signalled:
            self._signalled = True
            self._wakeup.set()
        return True

    def flush_now(self) -> None:
        """Send what is queued with one non-blocking ``send``, if possible now.

        What cannot be sent at once is left to the writer task, which is woken.
        """
        raw = self._raw
        out = self.out
        if not out:
            return
        if raw is None or self._sending:
            self._kick()
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        try:
            sent = raw.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            sent = 0  # The writer's send_all hits the same error and reports it.
        if sent == len(data):
            out.clear()
            self.pending = 0
            return
        out[:] = [data[sent:]]
        self.pending = len(data) - sent
        self._kick()

    def _kick(self) -> None:
        if not self._signalled:
            self._signalled = True
            self._wakeup.set()

    def close_after_flush(self) -> None:
        """Make ``run_writer`` return once everything queued now is written."""
        self._closing = True
        if not self._signalled:
            self._signalled = True
            self._wakeup.set()

    async def run_writer(self, stream: trio.abc.SendStream) -> None:
        """Write queued bytes until ``close_after_flush`` or cancellation.

        Raises:
            trio.BrokenResourceError: the peer went away (the caller closes).
            trio.ClosedResourceError: the stream was closed under us.
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
                self._sending = True
                try:
                    await stream.send_all(data)
                finally:
                    self._sending = False
            if self._closing and not out:
                return
