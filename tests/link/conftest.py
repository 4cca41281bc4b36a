"""A line protocol for driving ``leafnode.link`` in-process (no sockets, virtual time)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio

from leafnode.link import Flusher
from leafnode.proto import RemoteProtocolError

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from leafnode.link import Link

__all__ = ["LineProtocol", "flusher"]


class LineProtocol:
    """A toy connection kind: ``PING``/``PONG``/``CONNECT``/``BAD`` lines, echo the rest.

    It shows what a real protocol object does with its link: answers on the
    outbound, ``pong``/``established`` for the shell's timers, a
    ``RemoteProtocolError`` for what it cannot parse.
    """

    def __init__(self, link: Link) -> None:
        self.link = link
        self.buf = b""
        self.lines: list[bytes] = []
        self.batches = 0

    def data_received(self, data: bytes) -> Awaitable[None] | None:
        self.batches += 1
        self.buf += data
        *lines, self.buf = self.buf.split(b"\r\n")
        for line in lines:
            self.lines.append(line)
            if line == b"PING":
                self.link.outbound.write(b"PONG\r\n")
            elif line == b"PONG":
                self.link.pong()
            elif line == b"CONNECT":
                self.link.established()
            elif line == b"BAD":
                raise RemoteProtocolError("unknown verb", err_text="Unknown Protocol Operation")
            else:
                self.link.outbound.write_msg(line + b"\r\n")
        return None

    def send_ping(self) -> None:
        self.link.outbound.write(b"PING\r\n")


@pytest.fixture
async def flusher(nursery: trio.Nursery) -> Flusher:
    """The process's flusher, with its task running (as each service runs it)."""
    flusher = Flusher()
    nursery.start_soon(flusher.run)
    return flusher
