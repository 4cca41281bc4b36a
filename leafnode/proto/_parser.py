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

from typing import TYPE_CHECKING, Final

from ._errors import RemoteProtocolError
from ._events import Ping, Pub
from ._kinds import Kind
from ._limits import MAX_CONTROL_LINE, MAX_CONTROL_LINE_LEAF, MAX_PAYLOAD
from ._route_verbs import ROUTE_VERBS
from ._verbs import (
    _CRLF,
    _GLUED,
    _MAX_SIZE_DIGITS,
    _TABLES,
    ERR_MAX_CONTROL_LINE,
    ERR_MAX_PAYLOAD,
    ERR_SILENT,
    ERR_UNKNOWN_OP,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._events import Event
    from ._handler import Handler as _Handler

    _Pending = tuple[Callable[..., Event], tuple[object, ...], tuple[object, ...]]
    # Called with (subject, reply, hdr_len, payload) for each plain PUB
    # (``drain``); hdr_len is always 0, the argument order route_local's.
    OnPub = Callable[[bytes, bytes | None, int, bytes], object]

# Everything in __all__ gets re-exported as part of the leafnode.proto API.
__all__ = ["Parser"]

# One socket read (trio receive_some(MAX_RECV=64 KiB)) may sit on top of a full
# control line plus payload when the default max_buffer is computed.
BUFFER_SLACK: Final = 64 * 1024


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
            leafish = kind in (Kind.LEAF, Kind.INTERNAL, Kind.ROUTE)
            max_control_line = MAX_CONTROL_LINE_LEAF if leafish else MAX_CONTROL_LINE
        self._max_line = max_control_line
        self._max_buffer = max_buffer
        self._verbs: dict[bytes, _Handler] = ROUTE_VERBS if kind is Kind.ROUTE else _TABLES[kind]
        self._glued = tuple(v for v in _GLUED if v in self._verbs)
        # Index of the subject on LS+/LS-: INTERNAL lines carry the account first.
        self._base = 2 if kind is Kind.INTERNAL else 1
        # Kind.ROUTE: the account of a route dedicated to one account (its
        # INFO's route_account); its lines then leave the account out.
        self.route_account: bytes | None = None
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
        # Plain PUBs ``drain`` handed to its ``on_pub``, and their payload
        # bytes: the caller's inbound counters, which it reads and resets.
        self.pubs = 0
        self.pub_bytes = 0

    # -- public API ---------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Bytes fed but not yet consumed by ``next_event``."""
        return len(self._buf) - self._pos + self._chunks_len

    def feed(self, data: bytes | bytearray | memoryview) -> None:
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

    def drain(self, on_pub: OnPub | None = None) -> list[Event]:
        """Every complete event buffered now, in order: the batch form of ``next_event``.

        Runs of plain ``PUB`` lines (a client's hot path) are parsed by one tight
        loop; anything else, or anything unusual about a PUB, goes through
        ``next_event``. When an event is bad, the events before it are returned
        first and the next call raises, so a caller acts on everything the peer
        sent before the violation, as nats-server does.

        With ``on_pub``, plain PUBs that come before any other event are not
        returned: ``on_pub(subject, reply, 0, payload)`` is called for each as
        it is parsed, with no ``Pub`` object and no second loop over the events
        (the router's hot path), and counted in ``pubs`` and ``pub_bytes``.
        Order holds: once another event is taken, the PUBs after it are
        returned as events, behind it.

        Raises:
            RemoteProtocolError: as ``next_event``, only with no event to return.
        """
        if self._error is not None:
            raise self._error
        events: list[Event] = []
        append = events.append
        kind = self.kind
        fast = self._fast_pubs if kind is Kind.CLIENT else None

        def as_event(subject: bytes, reply: bytes | None, hdr_len: int, payload: bytes) -> None:
            append(Pub(subject, reply, payload))

        while True:
            if fast is not None and self._need < 0:
                if on_pub is not None and not events:
                    fast(on_pub, True)
                else:
                    fast(as_event, False)
            try:
                event = self.next_event()
            except RemoteProtocolError:
                if events:
                    return events
                raise
            if event is None:
                return events
            if on_pub is not None and not events and type(event) is Pub:
                # A PUB whose payload came in pieces (each read of a stream of
                # PUBs starts with one): on_pub too, or every PUB behind it in
                # this read would go the slow way.
                self.pubs += 1
                self.pub_bytes += len(event.payload)
                on_pub(event.subject, event.reply, 0, event.payload)
                continue
            append(event)

    def _fast_pubs(self, emit: OnPub, count: bool) -> None:
        """Parse consecutive well-formed ``PUB`` lines with complete payloads.

        Stops, leaving the position at the first line it does not fully
        understand, so ``next_event`` parses (or rejects) that one exactly.
        ``count``: add them to ``pubs`` and ``pub_bytes``.
        """
        buf = self._buf
        pos = self._pos
        n = len(buf)
        # Slice comparisons, not startswith(x, pos): parsing startswith's
        # arguments costs more than the slice (CPython 3.11).
        find = buf.find
        max_payload = self.max_payload
        max_line = self._max_line
        pubs = 0
        pub_bytes = 0
        while buf[pos : pos + 4] == b"PUB ":
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
            if size > max_payload or end + 2 > n or buf[end : end + 2] != _CRLF:
                break
            emit(subject, reply, 0, buf[start:end])
            pubs += 1
            pub_bytes += size
            pos = end + 2
        self._pos = self._scan = pos
        if count:
            self.pubs += pubs
            self.pub_bytes += pub_bytes

    def next_route_event(
        self, on_msg: Callable[[bytes, bytes, bytes | None, bytes], object]
    ) -> Event | None:
        """``next_event`` for ``Kind.ROUTE``; plain ``RMSG`` lines handed over without an event.

        A route's hot path: every complete ``RMSG [acc] <subject> [reply]
        <size>`` line at the read position (no queue list; the account
        token left out on a route dedicated to one account, as
        ``route_account`` says) goes to ``on_msg(account, subject, reply,
        payload)`` at once; the first other line (or a message it does not
        fully understand) is parsed by ``next_event`` and returned.
        """
        if self._need < 0 and self._error is None:
            self._fast_rmsgs(on_msg)
        return self.next_event()

    def _fast_rmsgs(self, on_msg: Callable[[bytes, bytes, bytes | None, bytes], object]) -> None:
        buf = self._buf
        pos = self._pos
        n = len(buf)
        find = buf.find
        max_payload = self.max_payload
        max_line = self._max_line
        pinned = self.route_account
        while buf[pos : pos + 5] == b"RMSG ":
            nl = find(b"\n", pos)
            if nl < 0 or buf[nl - 1] != 13 or nl - pos > max_line:
                break
            parts = buf[pos + 5 : nl - 1].split()
            count = len(parts)
            if pinned is not None:
                if count == 2:
                    account, reply = pinned, None
                    subject, size_b = parts
                elif count == 3:
                    account = pinned
                    subject, reply, size_b = parts
                else:
                    break
            elif count == 3:
                reply = None
                account, subject, size_b = parts
            elif count == 4:
                account, subject, reply, size_b = parts
            else:
                break
            if len(size_b) > _MAX_SIZE_DIGITS or not size_b.isdigit():
                break
            size = int(size_b)
            start = nl + 1
            end = start + size
            if size > max_payload or end + 2 > n or buf[end : end + 2] != _CRLF:
                break
            pos = self._pos = self._scan = end + 2
            on_msg(account, subject, reply, buf[start:end])
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
