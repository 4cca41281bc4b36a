"""Cut a leaf or data-link byte stream into messages and control events.

The uplink relays messages without looking inside them: a message from the
router (``LMSG <acc> <subj> ... <size>``) leaves for the hub as the same bytes
minus the account, and a hub message leaves for the router with the account
added. Building an event object per message and encoding it again costs more
than everything else the uplink does per message, so this framer handles the
two message verbs itself and gives every other line (interest, PING, INFO,
``-ERR``: rare) to the shared sans-IO ``Parser``, one line at a time.

For a message the handler gets the verb (``b"LMSG "`` or ``b"HMSG "``), the
whitespace-split arguments, the buffer, where the arguments start (``start``)
and where the payload starts (``body``) and ends (``end``; its CRLF follows).
It can forward ``buf[start:end + 2]`` with one slice. The same limits as the ``Parser``
apply: a control line longer than ``max_control_line``, a payload over
``max_payload``, a payload not followed by CRLF or a malformed size raise
``RemoteProtocolError``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from leafnode.proto import Parser, RemoteProtocolError

if TYPE_CHECKING:
    from collections.abc import Callable

    from leafnode.proto import Event, Kind

    # (verb, args, buf, start, body, end): see the module doc.
    MessageHandler = Callable[[bytes, list[bytes], bytes, int, int, int], None]
    EventHandler = Callable[[Event], None]

__all__ = ["HMSG", "LINK_MAX_CONTROL_LINE", "LINK_MAX_PAYLOAD", "LMSG", "MessageFramer"]

# The largest message any hub may send (nats-server refuses max_payload above
# 64 MiB), and the control-line limit of leaf links on current servers (§1).
LINK_MAX_PAYLOAD: Final = 64 * 1024 * 1024
LINK_MAX_CONTROL_LINE: Final = 64 * 1024

LMSG: Final = b"LMSG "
HMSG: Final = b"HMSG "
_CRLF: Final = b"\r\n"
_BLANKS: Final = b" \t"
# Messages larger than this that arrive in pieces are collected in a list
# (one join) rather than by growing the buffer with every read.
_LARGE: Final = 64 * 1024


class MessageFramer:
    """Incremental framer: ``feed`` bytes, then ``drain`` them into the handlers.

    Args:
        kind: the parser kind for non-message lines (``Kind.LEAF`` or ``Kind.INTERNAL``).
        max_payload: largest message size (HMSG: total size) accepted.
        max_control_line: longest control line accepted.
    """

    def __init__(self, kind: Kind, *, max_payload: int, max_control_line: int) -> None:
        self._parser = Parser(kind, max_payload=max_payload, max_control_line=max_control_line)
        self._max_payload = max_payload
        self._max_line = max_control_line
        self._buf = b""
        # While a large message is incomplete: the bytes it needs in total, and
        # the chunks received for it, joined once instead of once per chunk.
        self._need = 0
        self._chunks: list[bytes] = []
        self._chunks_len = 0

    def feed(self, data: bytes | bytearray) -> None:
        if type(data) is not bytes:
            data = bytes(data)
        if self._need:
            self._chunks.append(data)
            self._chunks_len += len(data)
            if len(self._buf) + self._chunks_len < self._need:
                return
            self._buf = b"".join([self._buf, *self._chunks])
            self._chunks.clear()
            self._chunks_len = 0
            self._need = 0
            return
        self._buf = self._buf + data if self._buf else data

    def next_event(self) -> Event | None:
        """The next control event, for the handshake; None when more data is needed.

        Raises:
            RemoteProtocolError: garbage, or a message where none may come yet.
        """
        buf = self._buf
        eol = buf.find(_CRLF)
        if eol < 0:
            if len(buf) > self._max_line + 8:
                raise _error("maximum control line exceeded", buf[:32])
            return None
        if buf[:5] in (LMSG, HMSG) or _odd_message_verb(buf, 0, eol):
            raise _error("message before the handshake completed", buf[:32])
        self._buf = buf[eol + 2 :]
        parser = self._parser
        parser.feed(buf[: eol + 2])
        return parser.next_event()

    def drain(self, on_msg: MessageHandler, on_event: EventHandler) -> None:
        """Hand every complete message and event to the handlers.

        Raises:
            RemoteProtocolError: the peer broke the framing (see module doc).
        """
        if self._need:
            return  # Still waiting for the rest of a large message.
        parser = self._parser
        buf = self._buf
        n = len(buf)
        pos = 0
        find = buf.find
        startswith = buf.startswith
        max_payload = self._max_payload
        try:
            while pos < n:
                eol = find(_CRLF, pos)
                if eol < 0:
                    if n - pos > self._max_line + 8:
                        raise _error("maximum control line exceeded", buf[pos : pos + 32])
                    break
                # "LMSG " or "HMSG ", tested without slicing (hot path).
                first = buf[pos]
                if (first == 76 or first == 72) and startswith(b"MSG ", pos + 1):
                    verb = LMSG if first == 76 else HMSG
                else:
                    verb = _odd_message_verb(buf, pos, eol)
                if verb:
                    start = pos + 5
                    args = buf[start:eol].split()
                    try:
                        size = int(args[-1])
                    except (ValueError, IndexError):
                        raise _error("bad message size", buf[pos:eol]) from None
                    if size > max_payload or size < 0:
                        raise _error("bad message size or Maximum Payload Violation", buf[pos:eol])
                    body = eol + 2
                    end = body + size
                    if end + 2 > n:
                        if size > _LARGE:
                            self._need = end + 2 - pos
                        break
                    if not startswith(_CRLF, end):
                        raise _error("payload not followed by CRLF", buf[end : end + 32])
                    pos = end + 2
                    on_msg(verb, args, buf, start, body, end)
                else:
                    if eol - pos > self._max_line + 8:
                        raise _error("maximum control line exceeded", buf[pos : pos + 32])
                    parser.feed(buf[pos : eol + 2])
                    pos = eol + 2
                    while (event := parser.next_event()) is not None:
                        on_event(event)
        finally:
            self._buf = buf[pos:] if pos < n else b""


def _odd_message_verb(buf: bytes, pos: int, eol: int) -> bytes:
    """``b"LMSG "``/``b"HMSG "`` for the spellings nats-server also accepts
    (lower case, a tab after the verb); ``b""`` for any other line."""
    if eol - pos < 5 or buf[pos + 4] not in _BLANKS:
        return b""
    verb = buf[pos : pos + 4].upper()
    return verb + b" " if verb in (b"LMSG", b"HMSG") else b""


def _error(text: str, snippet: bytes) -> RemoteProtocolError:
    return RemoteProtocolError(f"framing: {text}", err_text="", snippet=snippet)
