"""The control kind: request frames over a control socket, answered in order.

``router.ctl`` and ``uplink.ctl`` (DESIGN §2) carry ``leafnode.ipc`` frames:
a client sends a request, the service answers it, and the next request is
read only once the answer is queued, so answers come back in request order.
``ControlConnection`` is that connection kind's protocol object on the one
shell (``Link``): each read is cut into frames (``FrameDecoder``), and the
frames of one read are answered, one after the other, by an awaitable the
shell runs before its next read.

A malformed frame is logged as ``<name>: bad frame from a client`` and ends
the connection once the answers to the frames before it are written; a
client that goes away ends it quietly (the shell's EOF).

Answers are queued on the link's ``Outbound`` and written at once
(``Flusher.flush``): a control connection has its own ``Flusher``, since
nothing else of the process writes in its batches. Its outbound never drops
nor closes for size: an answer may be large (``connz`` of every client), and
the client asked for it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from leafnode.ipc import FrameDecoder, FrameError

from ._outbound import Flusher, OutboundPolicy, Overflow
from ._shell import Link, LinkPolicy

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import trio

    from leafnode.ipc import Frame

__all__ = ["CONTROL_POLICY", "ControlConnection", "serve_control"]

log = logging.getLogger("leafnode.link")

# Answers are never dropped (``Overflow.DROP`` drops only messages, and an
# answer is queued as a control line); the limit only decides when the writer
# takes over from the direct write.
CONTROL_POLICY: Final = LinkPolicy(
    outbound=OutboundPolicy(max_pending=64 * 1024 * 1024, overflow=Overflow.DROP, stall=False),
    eof_reason="control client closed",
    close_grace_s=0,
)


class ControlConnection:
    """One control client: frames in, one answer per frame, in order."""

    __slots__ = ("_answer", "_decoder", "_link", "_name")

    def __init__(
        self, link: Link, answer: Callable[[Frame], Awaitable[bytes]], *, name: str
    ) -> None:
        self._link = link
        self._answer = answer
        self._name = name
        self._decoder = FrameDecoder()

    def data_received(self, data: bytes) -> Awaitable[None] | None:
        """Cut ``data`` into frames; answer them (and a bad frame's error) after this read."""
        decoder = self._decoder
        frames: list[Frame] = []
        error: FrameError | None = None
        try:
            decoder.feed(data)
            while (frame := decoder.next_frame()) is not None:
                frames.append(frame)
        except FrameError as exc:
            error = exc
        else:
            decoder.compact()
        if not frames and error is None:
            return None
        return self._answer_all(frames, error)

    async def _answer_all(self, frames: list[Frame], error: FrameError | None) -> None:
        link = self._link
        for frame in frames:
            answer = await self._answer(frame)
            if link.closing:
                return
            link.outbound.write(answer)
            link.flusher.flush()
        if error is not None:
            log.error("%s: bad frame from a client: %s", self._name, error)
            link.close_after_flush(f"bad frame: {error}")

    def send_ping(self) -> None:
        """No keepalive on a control socket (``CONTROL_POLICY``)."""


async def serve_control(
    stream: trio.abc.Stream, answer: Callable[[Frame], Awaitable[bytes]], *, name: str
) -> str:
    """Serve one control connection on its own shell until it ends; returns why."""
    link = Link(stream, Flusher(), CONTROL_POLICY)
    return await link.run(ControlConnection(link, answer, name=name))
