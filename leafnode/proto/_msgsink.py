"""One client's MSG/HMSG output: the per-delivery half of the local routing path.

Theory of operation. A delivered message becomes bytes on its subscriber's
``Outbound`` (leafnode.link): appended to ``out``, counted in ``pending``,
and the outbound marked dirty so that the batch's end writes it (one
``b"".join`` and one ``send`` per connection per batch). ``MsgSink.msg`` does
that for one subscriber, with no allocation in the common case: the control
line of the last plain ``MSG`` (subject, sid, size) is kept, and a message
with the same three (a subscription fed one subject, as most are) queues
that line, the payload as the parser cut it, and the line end, three
references and no new bytes; the join at the flush copies each once. Other
messages (a reply subject, headers, another subject or size) are formatted
in full, as ``encode_msg_frame`` does.

Limits as ``Outbound.write``: past ``max_pending`` the outbound's ``queued``
runs its overflow policy (a client is then a slow consumer).

This module is compiled by mypyc (pyproject ``[tool.leafnode.compile]``);
the source is the pure-Python fallback, so it keeps to precise types: the
outbound is reached through the ``MsgQueue`` protocol.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["MsgQueue", "MsgSink"]

# The wire forms (leafnode-protocol.md §2), as _writer's MSG_FRAME & co.
_MSG_HEAD: Final = b"MSG %b %b %d\r\n"  # subject, sid, size; then payload, CRLF
_MSG_REPLY_FRAME: Final = b"MSG %b %b %b %d\r\n%b\r\n"
_HMSG_FRAME: Final = b"HMSG %b %b %d %d\r\n%b\r\n"
_HMSG_REPLY_FRAME: Final = b"HMSG %b %b %b %d %d\r\n%b\r\n"
_CRLF: Final = b"\r\n"


class MsgQueue(Protocol):
    """The part of ``leafnode.link.Outbound`` the routing path writes to."""

    out: list[bytes]
    pending: int
    max_pending: int
    dirty: bool

    def queued(self) -> None: ...


class MsgSink:
    """Formats and queues the messages delivered to one client (module doc).

    Attributes:
        headers: the client negotiated headers; without, an HMSG is sent as
            a MSG with the headers cut off.
        out_msgs: messages queued so far; ``out_bytes``: their payload
            bytes (as nats-server counts them).
        on_reply: called with the reply subject of each message that has one
            (a client whose permissions allow responses), else None.
    """

    __slots__ = (
        "_head",
        "_sid",
        "_size",
        "_subject",
        "headers",
        "on_reply",
        "out",
        "out_bytes",
        "out_msgs",
        "outbound",
    )

    def __init__(self, outbound: MsgQueue) -> None:
        self.outbound = outbound
        # The outbound's queue: the same list for the outbound's lifetime.
        self.out: list[bytes] = outbound.out
        self.headers = False
        self.out_msgs = 0
        self.out_bytes = 0
        self.on_reply: Callable[[bytes], None] | None = None
        # The last plain MSG's subject, sid and size, and its control line.
        self._subject = b""
        self._sid = b""
        self._size = -1
        self._head = b""

    def msg(
        self, subject: bytes, sid: bytes, reply: bytes | None, hdr_len: int, data: bytes
    ) -> None:
        """Queue one MSG/HMSG (``hdr_len`` > 0: ``data`` starts with that many header bytes)."""
        out = self.out
        if reply is not None and self.on_reply is not None:
            self.on_reply(reply)
        if hdr_len and not self.headers:
            data = data[hdr_len:]
            hdr_len = 0
        size = len(data)
        if hdr_len:
            if reply is None:
                frame = _HMSG_FRAME % (subject, sid, hdr_len, size, data)
            else:
                frame = _HMSG_REPLY_FRAME % (subject, sid, reply, hdr_len, size, data)
            out.append(frame)
            n = len(frame)
        elif reply is None:
            if size == self._size and subject == self._subject and sid == self._sid:
                head = self._head
            else:
                head = _MSG_HEAD % (subject, sid, size)
                self._subject = subject
                self._sid = sid
                self._size = size
                self._head = head
            out.append(head)
            out.append(data)
            out.append(_CRLF)
            n = len(head) + size + 2
        else:
            frame = _MSG_REPLY_FRAME % (subject, sid, reply, size, data)
            out.append(frame)
            n = len(frame)
        self.out_msgs += 1
        self.out_bytes += size
        outbound = self.outbound
        pending = outbound.pending + n
        outbound.pending = pending
        if pending > outbound.max_pending or not outbound.dirty:
            outbound.queued()
