"""Sans-IO client side of an ipc link: request ids, response matching, events.

The trio and anyio adapters own the socket and the waiting; everything they
share lives here, so both speak exactly the same protocol.

Theory of operation
-------------------
``start_request`` picks the next id and encodes the frame; the caller sends
the bytes and waits until ``receive_data`` reports the id as answered, then
takes the answer with ``take_response``. A request given up by its caller
(cancelled) is ``abandon``-ed so its late answer is dropped.

Frames whose id is not awaited are events (``appended``, ``rewind``). They
are coalesced by ``(type, id, remote)``: an ``appended`` event replaces the
older one (``last_seq`` only grows), a ``rewind`` keeps the smaller ``seq``.
So an application that reads events slowly holds at most one event per
subscription and remote, never an unbounded queue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._codec import DEFAULT_MAX_FRAME, Frame, FrameDecoder, IpcError, encode_frame
from ._protocol import RequestError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

__all__ = ["ClientState", "IpcClosedError"]

# Reads per receive call; a frame larger than this arrives in several.
MAX_RECV = 256 * 1024


class IpcClosedError(IpcError):
    """The connection closed (or broke) before the answer arrived."""


class ClientState:
    """Everything about a client connection except the I/O.

    Args:
        max_frame: the largest frame accepted from the server.
    """

    def __init__(self, *, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.decoder = FrameDecoder(max_frame=max_frame)
        self.max_frame = max_frame
        self._next_id = 1
        self._waiting: set[int] = set()
        self._answers: dict[int, Frame] = {}
        self._events: dict[tuple[str, int, object], Frame] = {}
        self.closed: IpcError | None = None

    def start_request(
        self, type: str, fields: Mapping[str, object] | None = None, blobs: Sequence[bytes] = ()
    ) -> tuple[int, bytes]:
        """A new request: its id and the bytes to send.

        Raises:
            IpcClosedError: the connection is closed.
        """
        if self.closed is not None:
            raise IpcClosedError(str(self.closed))
        rid = self._next_id
        self._next_id += 1
        data = encode_frame(type, rid, fields, blobs, max_frame=self.max_frame)
        self._waiting.add(rid)
        return rid, data

    def encode_prepared(self, build: Callable[[int], bytes]) -> tuple[int, bytes]:
        """Like ``start_request`` for frames built by a typed encoder (``encode_append``)."""
        if self.closed is not None:
            raise IpcClosedError(str(self.closed))
        rid = self._next_id
        self._next_id += 1
        data = build(rid)
        self._waiting.add(rid)
        return rid, data

    def abandon(self, rid: int) -> None:
        """The caller stopped waiting for ``rid``; drop its answer if it comes."""
        self._waiting.discard(rid)
        self._answers.pop(rid, None)

    def receive_data(self, data: bytes | bytearray) -> tuple[list[int], bool]:
        """Feed received bytes (``b""`` = EOF).

        Returns:
            The ids answered by these bytes, and whether new events arrived.

        Raises:
            FrameError: the server broke the framing (close the connection).
        """
        if not data:
            self.close(IpcClosedError("connection closed by the server"))
            return [], False
        dec = self.decoder
        dec.feed(data)
        answered: list[int] = []
        got_events = False
        while (frame := dec.next_frame()) is not None:
            if frame.id in self._waiting:
                self._waiting.discard(frame.id)
                self._answers[frame.id] = frame
                answered.append(frame.id)
            else:
                self._add_event(frame)
                got_events = True
        dec.compact()
        return answered, got_events

    def take_response(self, rid: int) -> Frame:
        """The answer to ``rid``.

        Raises:
            RequestError: the server answered ``error``.
            IpcClosedError: the connection closed first.
        """
        frame = self._answers.pop(rid, None)
        if frame is None:
            self._waiting.discard(rid)
            raise IpcClosedError(str(self.closed or "no answer"))
        if frame.type == "error":
            text = frame.fields.get("error")
            code = frame.fields.get("code")
            raise RequestError(
                str(text), code=code if isinstance(code, str) and code else "bad_request"
            )
        return frame

    def take_events(self) -> list[Frame]:
        """Every pending event, oldest key first, and forget them."""
        events = list(self._events.values())
        self._events.clear()
        return events

    def close(self, reason: IpcError) -> list[int]:
        """Mark the connection closed; returns the ids still waiting (wake them)."""
        if self.closed is None:
            self.closed = reason
        waiting = list(self._waiting)
        self._waiting.clear()
        return waiting

    def _add_event(self, frame: Frame) -> None:
        key = (frame.type, frame.id, frame.fields.get("remote"))
        old = self._events.get(key)
        if old is not None and frame.type == "rewind":
            old_seq, new_seq = old.fields.get("seq"), frame.fields.get("seq")
            if isinstance(old_seq, int) and isinstance(new_seq, int) and old_seq < new_seq:
                return
        # Re-insert so the dict keeps arrival order of the latest events.
        self._events.pop(key, None)
        self._events[key] = frame
