"""Sans-IO parser: bytes in, protocol events out (STYLE §3.3).

Theory of operation. The parser has two states.

*Control line* (``_need < 0``): a line ends at the next ``\n``; a ``\r``
before it is dropped, as nats-server does (``nc`` users typing ``PING\n``
work). ``_scan`` remembers where the last search stopped, so a line arriving
in pieces is never scanned twice. The line is split on whitespace runs once;
the first token picks a handler from our ``Kind``'s verb table (upper-cased
only when the exact spelling misses): nats-server's kind gating.

*Payload* (``_need >= 0``, the announced size): ``_pending`` holds the event
constructor and the parsed arguments, so the line is never parsed again while
the payload trickles in. The payload must be followed by ``\r\n``, else
``Unknown Protocol Operation``.

Buffering. ``_buf`` is immutable ``bytes`` and ``_pos`` its first unconsumed
byte, so a payload is cut out with one slice (one copy) and events never hold
views. While a payload is incomplete ``feed`` only appends chunks to
``_chunks``; the payload is then assembled by one ``b"".join`` over
memoryviews, so a 64 MiB payload read in 64 KiB pieces is copied once, not
1024 times (with ``bytes``, unlike STYLE's ``bytearray``, no view can block a
resize). In the line state ``feed`` joins the unconsumed tail and the new data.

Limits, all checked before the bytes they guard are waited for:
``max_control_line`` counts what follows the verb and its blanks, without the
line end, like nats-server's ``overMaxControlLineLimit`` (``PUB <4096 bytes>``
passes, one byte more is ``maximum control line exceeded``, CRLF present or
not); ``max_payload`` is checked on the control line (``Maximum Payload
Violation``); ``max_buffer`` bounds the unconsumed bytes ``feed`` accepts.

Errors. ``RemoteProtocolError.err_text`` is what nats-server answers
(tests/unit/golden/client_errors.txt). Where nats-server closes *without*
``-ERR`` (malformed PUB/SUB arguments, bad sizes, bad CONNECT JSON,
``hdr_len > total_len``), ``err_text`` is ``""``: close without sending
``-ERR``. Checks needing connection state (subject validity, pedantic, headers
negotiated, permissions) are the router's. After an error every call raises
the same error again (h11).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Final

from ._errors import RemoteProtocolError
from ._events import (
    Connect,
    Err,
    HMsg,
    HPub,
    Info,
    LHMsg,
    LMsg,
    LSub,
    LUnsub,
    Msg,
    Ok,
    Ping,
    Pong,
    Pub,
    Sub,
    Unsub,
)
from ._kinds import Kind
from ._limits import MAX_CONTROL_LINE, MAX_CONTROL_LINE_LEAF, MAX_PAYLOAD

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._events import Event

    _Handler = Callable[["Parser", list[bytes], bytes, int], "Event | None"]
    _Pending = tuple[Callable[..., Event], tuple[object, ...], tuple[object, ...]]

# Everything in __all__ gets re-exported as part of the leafnode.proto API.
__all__ = ["Parser"]

# nats-server's texts (server/parser.go parseErr, client.go maxPayloadViolation,
# errors.go ErrMaxControlLine); "" = nats-server closes without sending -ERR.
ERR_UNKNOWN_OP: Final = "Unknown Protocol Operation"
ERR_MAX_PAYLOAD: Final = "Maximum Payload Violation"
ERR_MAX_CONTROL_LINE: Final = "maximum control line exceeded"
ERR_SILENT: Final = ""

# One socket read (trio receive_some(MAX_RECV=64 KiB)) may sit on top of a full
# control line plus payload when the default max_buffer is computed.
BUFFER_SLACK: Final = 64 * 1024
# nats-server's parseSize accepts at most 9 decimal digits ("999M").
_MAX_SIZE_DIGITS: Final = 9
_CRLF: Final = b"\r\n"


def _size(token: bytes) -> int:
    """nats-server's parseSize: 1-9 ASCII digits, else -1 (no sign, no spaces)."""
    if len(token) > _MAX_SIZE_DIGITS or not token.isdigit():
        return -1
    return int(token)


def _reject_constant(name: str) -> object:
    # Go's encoding/json has no NaN/Infinity; Python's json would accept them.
    raise ValueError(name)


def _json_object(raw: bytes) -> dict[str, object] | None:
    """Decode a CONNECT/INFO body; None when nats-server would refuse it."""
    try:
        value = json.loads(raw.decode("utf-8", "replace"), parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None
    if value is None:  # Go unmarshals `null` into a struct as a no-op
        return {}
    return value if isinstance(value, dict) else None


class Parser:
    """Incremental parser for one direction of one NATS connection.

    Feed it whatever the socket returned, drain events, then compact::

        parser.feed(data)
        while (event := parser.next_event()) is not None:
            dispatch(event)
        parser.compact()

    Args:
        kind: who sends the bytes; selects the verb table (see ``Kind``).
        max_control_line: longest argument list of a control line. ``None``
            means ``MAX_CONTROL_LINE`` (4096) for CLIENT/SERVER and
            ``MAX_CONTROL_LINE_LEAF`` (64 KiB) for LEAF/INTERNAL.
        max_payload: largest payload (HPUB/HMSG: ``total_len``) accepted.
        max_buffer: most unconsumed bytes ``feed`` may hold. ``None`` means
            ``max_control_line + max_payload + 2 + BUFFER_SLACK``, recomputed
            when ``max_payload`` changes; enough for a caller that feeds at most
            64 KiB per call and drains events in between.

    Events as parsed: ``Unsub.max_msgs`` is ``None`` or >= 1 (nats-server
    unsubscribes at once for a max that is not a positive number); ``LSub.weight``
    may be 0; ``Err.text`` is unquoted; ``CONNECT null``/``INFO null`` give ``{}``.
    Sizes are 1-9 ASCII digits, as nats-server's ``parseSize`` demands.

    Error handling:
        ``feed`` and ``next_event`` raise ``RemoteProtocolError`` for peer
        violations. Its ``err_text`` is nats-server's ``-ERR`` text, or ``""``
        where nats-server closes without one: then close without ``-ERR``.
        After an error every call raises the same error again.
    """

    def __init__(
        self,
        kind: Kind,
        *,
        max_control_line: int | None = None,
        max_payload: int = MAX_PAYLOAD,
        max_buffer: int | None = None,
    ) -> None:
        self.kind = kind
        self.max_payload = max_payload
        if max_control_line is None:
            leafish = kind in (Kind.LEAF, Kind.INTERNAL)
            max_control_line = MAX_CONTROL_LINE_LEAF if leafish else MAX_CONTROL_LINE
        self._max_line = max_control_line
        self._max_buffer = max_buffer
        self._verbs: dict[bytes, _Handler] = _TABLES[kind]
        self._glued = tuple(v for v in _GLUED if v in self._verbs)
        # Index of the subject on leaf verbs: INTERNAL lines carry the account first.
        self._base = 2 if kind is Kind.INTERNAL else 1
        self._buf = b""
        self._pos = 0  # first unconsumed byte of _buf
        self._scan = 0  # where the next search for "\n" starts
        self._chunks: list[bytes] = []  # data fed while a payload is incomplete
        self._chunks_len = 0
        self._need = -1  # payload size in the payload state, -1 in the line state
        # Payload state: event constructor, its arguments before and after the
        # payload. Only read when _need >= 0; the initial value is a placeholder.
        self._pending: _Pending = (Ping, (), ())
        self._error: RemoteProtocolError | None = None

    # -- public API ---------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Bytes fed but not yet consumed by ``next_event``."""
        return len(self._buf) - self._pos + self._chunks_len

    def feed(self, data: bytes | bytearray) -> None:
        """Append received bytes.

        Raises:
            RemoteProtocolError: the unconsumed bytes would exceed ``max_buffer``,
                or the parser is already in the error state.
        """
        if self._error is not None:
            raise self._error
        n = len(data)
        if not n:
            return
        if type(data) is not bytes:
            data = bytes(data)
        buf, pos = self._buf, self._pos
        limit = self._max_buffer
        if limit is None:
            limit = self._max_line + self.max_payload + 2 + BUFFER_SLACK
        if len(buf) - pos + self._chunks_len + n > limit:
            self._error = RemoteProtocolError(
                f"read buffer limit of {limit} bytes exceeded",
                err_text=ERR_SILENT,
                snippet=buf[pos : pos + 32] or data,
            )
            raise self._error
        if pos == len(buf) and not self._chunks:
            self._buf = data
            self._pos = self._scan = 0
        elif self._need >= 0:
            self._chunks.append(data)
            self._chunks_len += n
        else:
            self._buf = buf[pos:] + data
            self._scan -= pos
            self._pos = 0

    def compact(self) -> None:
        """Drop consumed bytes; call once per receive, after draining events."""
        pos = self._pos
        if pos:
            self._buf = self._buf[pos:]
            self._scan -= pos
            self._pos = 0

    def drain(self) -> list[Event]:
        """Every complete event buffered now, in order: the batch form of ``next_event``.

        Runs of plain ``PUB`` lines (a client's hot path) are parsed by one tight
        loop; anything else, or anything unusual about a PUB, goes through
        ``next_event``. When an event is bad, the events before it are returned
        first and the next call raises, so a caller acts on everything the peer
        sent before the violation, as nats-server does.

        Raises:
            RemoteProtocolError: as ``next_event``, only with no event to return.
        """
        if self._error is not None:
            raise self._error
        events: list[Event] = []
        append = events.append
        fast = self.kind is Kind.CLIENT
        while True:
            if fast and self._need < 0:
                self._fast_pubs(append)
            try:
                event = self.next_event()
            except RemoteProtocolError:
                if events:
                    return events
                raise
            if event is None:
                return events
            append(event)

    def _fast_pubs(self, append: Callable[[Event], None]) -> None:
        """Parse consecutive well-formed ``PUB`` lines with complete payloads.

        Stops, leaving the position at the first line it does not fully
        understand, so ``next_event`` parses (or rejects) that one exactly.
        """
        buf = self._buf
        pos = self._pos
        n = len(buf)
        startswith = buf.startswith
        find = buf.find
        max_payload = self.max_payload
        max_line = self._max_line
        while startswith(b"PUB ", pos):
            nl = find(b"\n", pos)
            if nl < 0 or buf[nl - 1] != 13 or nl - pos > max_line:
                break
            parts = buf[pos + 4 : nl - 1].split()
            if len(parts) == 2:
                subject, size_b = parts
                reply = None
            elif len(parts) == 3:
                subject, reply, size_b = parts
            else:
                break
            if len(size_b) > _MAX_SIZE_DIGITS or not size_b.isdigit():
                break
            size = int(size_b)
            start = nl + 1
            end = start + size
            if size > max_payload or end + 2 > n or not startswith(_CRLF, end):
                break
            append(Pub(subject, reply, buf[start:end]))
            pos = end + 2
        self._pos = self._scan = pos

    def next_event(self) -> Event | None:
        """Return the next complete event, or ``None`` when more data is needed.

        Raises:
            RemoteProtocolError: the peer violated the protocol (see class doc).
        """
        if self._error is not None:
            raise self._error
        try:
            if self._need >= 0:
                return self._take_payload()
            buf = self._buf
            nl = buf.find(b"\n", self._scan)
            if nl < 0:
                self._partial_line()
                return None
            pos = self._pos
            end = nl - 1 if nl > pos and buf[nl - 1] == 13 else nl
            line = buf[pos:end]
            if end - pos > self._max_line:
                self._check_line_limit(line)
            self._pos = self._scan = nl + 1
            parts = line.split()
            if parts:
                handler = self._verbs.get(parts[0])
                if handler is None:
                    handler = self._verbs.get(parts[0].upper())
                if handler is not None:
                    return handler(self, parts, line, nl + 1)
            return self._unusual_verb(line, nl + 1)
        except RemoteProtocolError as exc:
            self._error = exc
            raise

    # -- control-line helpers -------------------------------------------------

    def _glued_verb(self, line: bytes) -> bytes | None:
        # nats-server reads CONNECT/INFO/PING/PONG/+OK byte by byte and needs no
        # blank after them: "CONNECT{}" and "PINGX" are accepted.
        upper = line[:8].upper()
        return next((verb for verb in self._glued if upper.startswith(verb)), None)

    def _unusual_verb(self, line: bytes, start: int) -> Event | None:
        verb = self._glued_verb(line)
        if verb is None:
            raise self._error_at(ERR_UNKNOWN_OP, "unknown protocol operation", line)
        line = verb + b" " + line[len(verb) :]
        return self._verbs[verb](self, line.split(), line, start)

    def _arg_length(self, line: bytes) -> int:
        """Length of what follows the verb and its blanks, or raise for an unknown verb."""
        head = line.split(None, 1)
        if head and head[0].upper() in self._verbs:
            return len(head[1]) if len(head) == 2 else 0
        verb = self._glued_verb(line)
        if verb is None:
            raise self._error_at(ERR_UNKNOWN_OP, "unknown protocol operation", line)
        return len(line) - len(verb)

    def _check_line_limit(self, line: bytes) -> None:
        if self._arg_length(line) > self._max_line:
            raise self._error_at(
                ERR_MAX_CONTROL_LINE, f"control line over {self._max_line} bytes", line
            )

    def _partial_line(self) -> None:
        buf, pos = self._buf, self._pos
        n = len(buf)
        if n - pos > self._max_line:
            # nats-server checks the argument bytes read so far; a trailing CR
            # is not part of them.
            self._check_line_limit(buf[pos : n - 1] if buf[n - 1] == 13 else buf[pos:])
        self._scan = n

    def _error_at(self, err_text: str, message: str, snippet: bytes) -> RemoteProtocolError:
        return RemoteProtocolError(
            f"{self.kind.value}: {message}", err_text=err_text, snippet=snippet
        )

    def _bad_args(self, parts: list[bytes], line: bytes, what: str) -> RemoteProtocolError:
        # "PUB\r\n" fails in nats-server's verb state machine (no blank after the
        # verb): Unknown Protocol Operation. "PUB \r\n" or "PUB a\r\n" reach the
        # argument parser, which closes the connection without -ERR.
        if len(parts) == 1 and line == parts[0]:
            return self._error_at(ERR_UNKNOWN_OP, "unknown protocol operation", line)
        return self._error_at(ERR_SILENT, what, line)

    def _too_large(self, size: int, line: bytes) -> RemoteProtocolError:
        message = f"payload of {size} bytes over {self.max_payload}"
        return self._error_at(ERR_MAX_PAYLOAD, message, line)

    # -- payload state --------------------------------------------------------

    def _defer(
        self,
        start: int,
        size: int,
        ctor: Callable[..., Event],
        head: tuple[object, ...],
        tail: tuple[object, ...] = (),
    ) -> Event | None:
        """Enter the payload state (the fast paths found the payload incomplete)."""
        self._pos = self._scan = start
        self._need = size
        self._pending = (ctor, head, tail)
        return self._take_payload()

    def _take_payload(self) -> Event | None:
        size = self._need
        buf, pos = self._buf, self._pos
        avail = len(buf) - pos + self._chunks_len
        if avail < size + 2:
            # nats-server fails on the first wrong byte: do not wait for the LF
            # when what stands where the CR belongs is already wrong.
            if avail == size + 1 and (self._chunks[-1] if self._chunks else buf)[-1] != 13:
                raise self._error_at(ERR_UNKNOWN_OP, "payload not followed by CRLF", buf[-32:])
            return None
        if self._chunks:
            payload = self._gather(size)
        else:
            end = pos + size
            if not buf.startswith(_CRLF, end):
                raise self._error_at(ERR_UNKNOWN_OP, "payload not followed by CRLF", buf[end:])
            payload = buf[pos:end]
            self._pos = self._scan = end + 2
        self._need = -1
        ctor, head, tail = self._pending
        return ctor(*head, payload, *tail)

    def _gather(self, size: int) -> bytes:
        """Assemble a payload spread over ``_buf`` and ``_chunks`` with one copy."""
        parts: list[bytes | memoryview] = [memoryview(self._buf)[self._pos :]]
        parts.extend(self._chunks)
        pieces: list[bytes | memoryview] = []
        need, i = size, 0
        while need:
            part = parts[i]
            if len(part) <= need:
                pieces.append(part)
                need -= len(part)
                i += 1
            else:
                view = memoryview(part)
                pieces.append(view[:need])
                parts[i] = view[need:]
                need = 0
        # join() returns a lone bytes piece as is, else copies each piece once.
        payload = b"".join(pieces)
        rest = b"".join(parts[i:])
        if not rest.startswith(_CRLF):
            raise self._error_at(ERR_UNKNOWN_OP, "payload not followed by CRLF", rest)
        self._buf = rest
        self._pos = self._scan = 2
        self._chunks = []
        self._chunks_len = 0
        return payload


# -- verb handlers -------------------------------------------------------------
# Each takes (parser, parts, line, start): ``parts`` is the whitespace-split
# line with the verb first, ``line`` the raw line without its line end, and
# ``start`` the offset in the buffer right after the line (where a payload
# begins). The parser's position is already past the line.


def _json_arg(p: Parser, line: bytes) -> dict[str, object]:
    """The CONNECT/INFO body, refused (silently, as nats-server does) unless an object."""
    head = line.split(None, 1)
    options = _json_object(head[1] if len(head) == 2 else b"")
    if options is None:
        raise p._error_at(ERR_SILENT, "argument is not a JSON object", line)
    return options


def _connect(p: Parser, parts: list[bytes], line: bytes, start: int) -> Event | None:
    return Connect(_json_arg(p, line))


def _info(p: Parser, parts: list[bytes], line: bytes, start: int) -> Event | None:
    return Info(_json_arg(p, line))


def _constant(event: Event) -> _Handler:
    """Handler for PING/PONG/+OK: arguments are ignored, as nats-server does."""
    return lambda p, parts, line, start: event


def _err(p: Parser, parts: list[bytes], line: bytes, start: int) -> Event | None:
    head = line.split(None, 1)
    if len(head) == 1 and line == head[0]:
        raise p._error_at(ERR_UNKNOWN_OP, "unknown protocol operation", line)
    text = head[1].strip() if len(head) == 2 else b""
    if len(text) >= 2 and text[:1] == b"'" and text[-1:] == b"'":
        text = text[1:-1]
    return Err(text.decode("utf-8", "replace"))


def _pub(p: Parser, parts: list[bytes], line: bytes, start: int) -> Event | None:
    n = len(parts)
    if n == 3:
        subject, size_b = parts[1], parts[2]
        reply = None
    elif n == 4:
        subject, reply, size_b = parts[1], parts[2], parts[3]
    else:
        raise p._bad_args(parts, line, "PUB needs <subject> [reply] <size>")
    if len(size_b) > _MAX_SIZE_DIGITS or not size_b.isdigit():
        raise p._error_at(ERR_SILENT, "PUB size is not a number", line)
    size = int(size_b)
    if size > p.max_payload:
        raise p._too_large(size, line)
    buf = p._buf
    end = start + size
    if end + 2 <= len(buf) and buf.startswith(_CRLF, end):
        p._pos = p._scan = end + 2
        return Pub(subject, reply, buf[start:end])
    return p._defer(start, size, Pub, (subject, reply))


def _header_sizes(p: Parser, hdr_b: bytes, total_b: bytes, line: bytes) -> tuple[int, int]:
    hdr, total = _size(hdr_b), _size(total_b)
    if hdr < 0 or total < 0:
        raise p._error_at(ERR_SILENT, "header or total size is not a number", line)
    if hdr > total:
        raise p._error_at(ERR_SILENT, "header size larger than total size", line)
    if total > p.max_payload:
        raise p._too_large(total, line)
    return hdr, total


def _hpub(p: Parser, parts: list[bytes], line: bytes, start: int) -> Event | None:
    n = len(parts)
    if n == 4:
        subject, hdr_b, total_b = parts[1], parts[2], parts[3]
        reply = None
    elif n == 5:
        subject, reply, hdr_b, total_b = parts[1], parts[2], parts[3], parts[4]
    else:
        raise p._bad_args(parts, line, "HPUB needs <subject> [reply] <hdr_len> <total_len>")
    hdr, size = _header_sizes(p, hdr_b, total_b, line)
    buf = p._buf
    end = start + size
    if end + 2 <= len(buf) and buf.startswith(_CRLF, end):
        p._pos = p._scan = end + 2
        return HPub(subject, reply, hdr, buf[start:end])
    return p._defer(start, size, HPub, (subject, reply, hdr))


def _sub(p: Parser, parts: list[bytes], line: bytes, start: int) -> Event | None:
    n = len(parts)
    if n == 3:
        return Sub(parts[1], None, parts[2])
    if n == 4:
        return Sub(parts[1], parts[2], parts[3])
    raise p._bad_args(parts, line, "SUB needs <subject> [queue] <sid>")


def _unsub(p: Parser, parts: list[bytes], line: bytes, start: int) -> Event | None:
    n = len(parts)
    if n == 2:
        return Unsub(parts[1])
    if n == 3:
        # nats-server unsubscribes at once when max is not a positive number.
        max_msgs = _size(parts[2])
        return Unsub(parts[1], max_msgs if max_msgs > 0 else None)
    raise p._bad_args(parts, line, "UNSUB needs <sid> [max_msgs]")


def _msg(p: Parser, parts: list[bytes], line: bytes, start: int) -> Event | None:
    n = len(parts)
    if n == 4:
        subject, sid, size_b = parts[1], parts[2], parts[3]
        reply = None
    elif n == 5:
        subject, sid, reply, size_b = parts[1], parts[2], parts[3], parts[4]
    else:
        raise p._bad_args(parts, line, "MSG needs <subject> <sid> [reply] <size>")
    size = _size(size_b)
    if size < 0:
        raise p._error_at(ERR_SILENT, "MSG size is not a number", line)
    if size > p.max_payload:
        raise p._too_large(size, line)
    buf = p._buf
    end = start + size
    if end + 2 <= len(buf) and buf.startswith(_CRLF, end):
        p._pos = p._scan = end + 2
        return Msg(subject, sid, reply, buf[start:end])
    return p._defer(start, size, Msg, (subject, sid, reply))


def _hmsg(p: Parser, parts: list[bytes], line: bytes, start: int) -> Event | None:
    n = len(parts)
    if n == 5:
        subject, sid, hdr_b, total_b = parts[1], parts[2], parts[3], parts[4]
        reply = None
    elif n == 6:
        subject, sid, reply, hdr_b, total_b = parts[1], parts[2], parts[3], parts[4], parts[5]
    else:
        raise p._bad_args(parts, line, "HMSG needs <subject> <sid> [reply] <hdr_len> <total_len>")
    hdr, size = _header_sizes(p, hdr_b, total_b, line)
    buf = p._buf
    end = start + size
    if end + 2 <= len(buf) and buf.startswith(_CRLF, end):
        p._pos = p._scan = end + 2
        return HMsg(subject, sid, reply, hdr, buf[start:end])
    return p._defer(start, size, HMsg, (subject, sid, reply, hdr))


def _lsub(p: Parser, parts: list[bytes], line: bytes, start: int) -> Event | None:
    base = p._base
    n = len(parts) - base
    if n == 1:
        return LSub(parts[base], None, None, parts[1] if base == 2 else None)
    if n == 3:
        weight = _size(parts[base + 2])
        if weight >= 0:
            return LSub(parts[base], parts[base + 1], weight, parts[1] if base == 2 else None)
    # A queue without a weight makes the hub drop the link without -ERR (§4.4).
    raise p._bad_args(parts, line, "LS+ needs <subject> [<queue> <weight>]")


def _lunsub(p: Parser, parts: list[bytes], line: bytes, start: int) -> Event | None:
    base = p._base
    n = len(parts) - base
    if n == 1:
        return LUnsub(parts[base], None, parts[1] if base == 2 else None)
    if n == 2:
        return LUnsub(parts[base], parts[base + 1], parts[1] if base == 2 else None)
    raise p._bad_args(parts, line, "LS- needs <subject> [<queue>]")


def _leaf_routing(
    p: Parser, parts: list[bytes], line: bytes, sizes: int
) -> tuple[bytes, bytes | None, tuple[bytes, ...]]:
    """Subject, reply and queues of LMSG/HMSG on a leaf link (§4.4, leafnode.go).

    ``sizes`` is how many size tokens end the line (1 for LMSG, 2 for HMSG).
    """
    base = p._base
    n = len(parts) - base - sizes  # tokens from the subject up to the sizes
    if n == 1:
        return parts[base], None, ()
    if n == 2:
        return parts[base], parts[base + 1], ()
    if n >= 3:
        marker = parts[base + 1]
        if marker == b"+":
            return parts[base], parts[base + 2], tuple(parts[base + 3 : -sizes])
        if marker == b"|":
            return parts[base], None, tuple(parts[base + 2 : -sizes])
    raise p._bad_args(parts, line, "bad LMSG/HMSG arguments")


def _lmsg(p: Parser, parts: list[bytes], line: bytes, start: int) -> Event | None:
    subject, reply, queues = _leaf_routing(p, parts, line, 1)
    size = _size(parts[-1])
    if size < 0:
        raise p._error_at(ERR_SILENT, "LMSG size is not a number", line)
    if size > p.max_payload:
        raise p._too_large(size, line)
    account = parts[1] if p._base == 2 else None
    buf = p._buf
    end = start + size
    if end + 2 <= len(buf) and buf.startswith(_CRLF, end):
        p._pos = p._scan = end + 2
        return LMsg(subject, reply, queues, buf[start:end], account)
    return p._defer(start, size, LMsg, (subject, reply, queues), (account,))


def _lhmsg(p: Parser, parts: list[bytes], line: bytes, start: int) -> Event | None:
    subject, reply, queues = _leaf_routing(p, parts, line, 2)
    hdr, size = _header_sizes(p, parts[-2], parts[-1], line)
    account = parts[1] if p._base == 2 else None
    buf = p._buf
    end = start + size
    if end + 2 <= len(buf) and buf.startswith(_CRLF, end):
        p._pos = p._scan = end + 2
        return LHMsg(subject, reply, queues, hdr, buf[start:end], account)
    return p._defer(start, size, LHMsg, (subject, reply, queues, hdr), (account,))


# Verbs nats-server accepts without a blank before what follows (see _unusual_verb).
_GLUED: Final = (b"CONNECT", b"INFO", b"PING", b"PONG", b"+OK")


def _table(*groups: dict[bytes, _Handler]) -> dict[bytes, _Handler]:
    # The lower-case spelling is common enough (telnet, tests) to skip upper().
    table = {verb: h for group in groups for verb, h in group.items()}
    table.update({verb.lower(): h for verb, h in table.items()})
    return table


_COMMON: Final[dict[bytes, _Handler]] = {b"PING": _constant(Ping()), b"PONG": _constant(Pong())}
_LINK: Final[dict[bytes, _Handler]] = {
    b"LMSG": _lmsg,
    b"HMSG": _lhmsg,
    b"LS+": _lsub,
    b"LS-": _lunsub,
}
_CONTROL: Final[dict[bytes, _Handler]] = {b"INFO": _info, b"+OK": _constant(Ok()), b"-ERR": _err}
_TABLES: Final[dict[Kind, dict[bytes, _Handler]]] = {
    Kind.CLIENT: _table(
        _COMMON,
        {b"PUB": _pub, b"HPUB": _hpub, b"SUB": _sub, b"UNSUB": _unsub, b"CONNECT": _connect},
    ),
    Kind.SERVER: _table(_COMMON, _CONTROL, {b"MSG": _msg, b"HMSG": _hmsg}),
    Kind.LEAF: _table(_COMMON, _CONTROL, _LINK, {b"CONNECT": _connect}),
    # The data link has no verbose mode, so no +OK (DESIGN §2).
    Kind.INTERNAL: _table(_COMMON, _LINK, {b"INFO": _info, b"-ERR": _err}),
}
