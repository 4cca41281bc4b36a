"""Cut a leaf link or data-link byte stream into messages and control events.

``Parser`` builds one event object per message; a process that only relays
messages (the uplink) or routes them at once (the router's data link) spends
more on that than on everything else it does per message. ``MessageFramer``
handles the two message verbs itself and gives every other line (interest,
PING, INFO, ``-ERR``: rare) to a ``Parser`` of the same ``Kind``, one line at
a time. The same limits apply: a control line longer than
``max_control_line``, a payload over ``max_payload``, a malformed size, too
few arguments or a payload not followed by CRLF raise ``RemoteProtocolError``.

Theory of operation
-------------------
``drain`` walks the buffer with ``bytes.find``. For each complete message it
calls ``on_msg(frame)`` with the framer's one ``MessageFrame``, refilled for
every message (so no object is built per message): the handler reads it
during the call and keeps nothing of it but the bytes it slices out.

Verbatim runs. A relay forwards most messages unchanged. When ``on_msg``
returns True the message joins the current *run*: consecutive kept messages
that ``on_run(run)`` receives as one ``Run`` (``run.data`` is the slice of
what was read, ``run.msgs`` messages, ``run.size`` payload bytes), so the
relay writes one piece per read instead of one per message. A run is handed
over before any control event, before an account change and when ``drain``
stops, so runs and events keep their order. A message ``on_msg`` does not
keep ends the run; if ``on_msg`` wrote it somewhere itself, that write goes
before the pending run, so a consumer must not write its own messages where
its runs go (the uplink never does: see ``services/uplink/service.py``).

Accounts on the data link (``accounts=True``): message lines are in the leaf
link's own form and belong to the account of the last ``ACC <acc>`` line
(``_datalink`` documents the data link). A message line before any ``ACC`` is
a framing error. On a hub link (``accounts=False``) ``ACC`` is an unknown verb
and the account is always None.

Whole runs on the data link. A ``RUN <bytes> <msgs> <size> <largest>`` line
says that the next ``<bytes>`` bytes are plain messages (no ``$`` subject) of
at most ``<largest>`` payload bytes. When the keep rule covers ``<largest>``
every one of them would be kept unasked, so the framer waits for the whole
run and hands it to ``on_run`` as it is, without cutting it into messages:
the uplink relays a router batch with no Python work per message. Otherwise
the line is skipped and the messages are read one by one, as without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ._errors import RemoteProtocolError
from ._parser import Parser
from ._route import parse_leaf_route

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._events import Event
    from ._kinds import Kind

    # -> keep verbatim; see the module doc.
    MessageHandler = Callable[["MessageFrame"], bool]
    RunHandler = Callable[["Run"], None]
    EventHandler = Callable[[Event], None]
    # account -> largest payload kept without asking on_msg; see drain().
    KeepRule = Callable[[bytes | None], int]

# Everything in __all__ gets re-exported as part of the leafnode.proto API.
__all__ = ["MessageFrame", "MessageFramer", "Run"]

_LMSG: Final = b"LMSG "
_HMSG: Final = b"HMSG "
_ACC: Final = b"ACC "
_RUN: Final = b"RUN "
# A RUN longer than this is read message by message rather than held whole:
# a run is one router batch, normally about one read (64 KiB) of publishes.
_MAX_RUN: Final = 16 * 1024 * 1024
# Digits of a RUN field (nats-server allows 9 for a size; a run holds many).
_MAX_DIGITS: Final = 12
_CRLF: Final = b"\r\n"
_BLANKS: Final = b" \t"
# First bytes of a subject the keep rule does not cover: a blank (not a plain
# line: the full parse decides) or "$" (module doc, ``drain``).
_NOT_PLAIN: Final = b" \t$"
# Messages larger than this that arrive in pieces are collected in a list
# (one join) rather than by growing the buffer with every read.
_LARGE: Final = 64 * 1024


class MessageFrame:
    """One message as the framer found it: ``LMSG`` or ``HMSG`` in the leaf link's form.

    The framer fills its one frame anew for every message and hands it to
    ``on_msg``: read it during the call, do not keep it.

    Attributes:
        account: the data link's current account (``ACC``); empty on a hub link.
        headers: an ``HMSG`` (its last two arguments are the sizes).
        args: the whitespace-split arguments after the verb; ``args[0]`` is
            the subject, ``args[-1]`` the (total) size.
        buf: the bytes being drained.
        start: where the line starts in ``buf``; ``buf[start:end + 2]`` is the
            whole message as read, verb to the payload's CRLF.
        body: where the payload (HMSG: headers and payload) starts.
        end: where it ends (its CRLF follows).
    """

    __slots__ = ("account", "args", "body", "buf", "end", "headers", "start")

    def __init__(self) -> None:
        self.account = b""
        self.headers = False
        self.args: list[bytes] = []
        self.buf = b""
        self.start = self.body = self.end = 0

    @property
    def subject(self) -> bytes:
        return self.args[0]

    @property
    def size(self) -> int:
        """Payload bytes (HMSG: headers included)."""
        return self.end - self.body

    @property
    def data(self) -> bytes:
        """The payload (HMSG: the header block followed by the payload)."""
        return self.buf[self.body : self.end]

    @property
    def hdr_len(self) -> int:
        """The header block's size (0 for LMSG)."""
        return int(self.args[-2]) if self.headers else 0

    @property
    def wire(self) -> bytes:
        """The whole message as read, verb to the payload's CRLF."""
        return self.buf[self.start : self.end + 2]

    def route(self) -> tuple[bytes | None, tuple[bytes, ...]]:
        """The reply and the queue groups named (``parse_leaf_route``).

        Raises:
            RemoteProtocolError: the arguments are not a leaf route.
        """
        args = self.args
        route = parse_leaf_route(args, 0, len(args) - (2 if self.headers else 1))
        if route is None:
            raise _error("bad LMSG/HMSG arguments", self.buf[self.start : self.body][:32])
        return route[1], route[2]


class Run:
    """Consecutive messages ``on_msg`` kept, as read (module doc).

    The framer fills its one ``Run`` anew for every run: keep ``data``, not
    the run.

    Attributes:
        account: the account of every message in it (data link), else empty.
        data: the messages, byte for byte as read.
        msgs: how many messages.
        size: their payload bytes.
    """

    __slots__ = ("account", "data", "msgs", "size")

    def __init__(self) -> None:
        self.account = b""
        self.data = b""
        self.msgs = 0
        self.size = 0


class MessageFramer:
    """Incremental framer: ``feed`` bytes, then ``drain`` them into the handlers.

    Args:
        kind: the parser kind for non-message lines (``Kind.LEAF`` or ``Kind.INTERNAL``).
        max_payload: largest message size (HMSG: total size) accepted.
        max_control_line: longest control line accepted.
        accounts: a data link: ``ACC`` lines give the messages their account (module doc).

    Attributes:
        account: the data link's current account (after ``ACC``), else None.

    Error handling:
        ``next_event`` and ``drain`` raise ``RemoteProtocolError`` when the
        peer breaks the framing; ``drain`` hands over the messages and runs
        before the violation first. The link should then be closed.
    """

    __slots__ = (
        "_accounts",
        "_buf",
        "_chunks",
        "_chunks_len",
        "_frame",
        "_max_line",
        "_max_payload",
        "_need",
        "_parser",
        "_run",
        "account",
    )

    def __init__(
        self, kind: Kind, *, max_payload: int, max_control_line: int, accounts: bool = False
    ) -> None:
        self._parser = Parser(kind, max_payload=max_payload, max_control_line=max_control_line)
        self._max_payload = max_payload
        self._max_line = max_control_line
        self._accounts = accounts
        self.account: bytes | None = None
        self._buf = b""
        # While a large message is incomplete: the bytes it needs in total, and
        # the chunks received for it, joined once instead of once per chunk.
        self._need = 0
        self._chunks: list[bytes] = []
        self._chunks_len = 0
        # Refilled for every message and run: no object per message (module doc).
        self._frame = MessageFrame()
        self._run = Run()

    def feed(self, data: bytes | bytearray) -> None:
        """Append received bytes."""
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
        """The next control event, for a handshake; None when more data is needed.

        Raises:
            RemoteProtocolError: garbage, or a message where none may come yet.
        """
        buf = self._buf
        eol = buf.find(_CRLF)
        if eol < 0:
            if len(buf) > self._max_line + 8:
                raise _error("maximum control line exceeded", buf[:32])
            return None
        if buf[:5] in (_LMSG, _HMSG) or _odd_message_verb(buf, 0, eol):
            raise _error("message before the handshake completed", buf[:32])
        self._buf = buf[eol + 2 :]
        parser = self._parser
        parser.feed(buf[: eol + 2])
        return parser.next_event()

    def drain(
        self,
        on_msg: MessageHandler,
        on_event: EventHandler,
        on_run: RunHandler | None = None,
        keep_rule: KeepRule | None = None,
    ) -> None:
        """Hand every complete message, run and event to the handlers (module doc).

        Without ``on_run`` the return value of ``on_msg`` is ignored. With
        ``keep_rule`` (and ``on_run``), ``keep_rule(account)`` is asked at the
        start and after every control line for the largest payload of a
        message that is kept without asking ``on_msg``, if its subject does
        not start with ``$`` (-1: ask about every message): a relay whose
        checks all pass for such subjects skips a call per message.

        Raises:
            RemoteProtocolError: the peer broke the framing (module doc).
        """
        if self._need:
            return  # Still waiting for the rest of a large message.
        parser = self._parser
        buf = self._buf
        n = len(buf)
        pos = run = 0
        run_msgs = run_size = 0
        keep = on_run is not None
        emit = self._emit if on_run is not None else _no_run
        frame = self._frame
        frame.buf = buf
        # Slice comparisons, not startswith(x, pos): parsing startswith's
        # arguments costs more than the slice (CPython 3.11).
        find = buf.find
        max_payload = self._max_payload
        max_line = self._max_line + 8
        accounts = self._accounts
        account = self.account
        frame.account = account or b""
        # A data link's messages need an account: an ACC line before them.
        orphan = accounts and account is None
        rule = keep_rule if keep else None
        # Never above max_payload: a message kept by the rule passed every check.
        fast = min(rule(account), max_payload) if rule is not None and not orphan else -1
        rfind = buf.rfind
        try:
            while pos < n:
                eol = find(_CRLF, pos)
                if eol < 0:
                    if n - pos > max_line:
                        raise _error("maximum control line exceeded", buf[pos : pos + 32])
                    break
                head = buf[pos : pos + 5]
                if fast >= 0 and head == _LMSG:
                    # The relay's common case: an LMSG the rule keeps needs
                    # its size and its subject's first byte, not its arguments
                    # split (anything unusual takes the full parse below).
                    sp = rfind(b" ", pos + 6, eol)
                    if sp > 0 and buf[pos + 5] not in _NOT_PLAIN:
                        size_b = buf[sp + 1 : eol]
                        if size_b.isdigit():
                            size = int(size_b)
                            end = eol + 2 + size
                            if (
                                size <= fast
                                and end + 2 <= n
                                and buf[end] == 13  # CR
                                and buf[end + 1] == 10  # LF
                            ):
                                run_msgs += 1
                                run_size += size
                                pos = end + 2
                                continue
                if head == _LMSG:
                    verb = _LMSG
                elif head == _HMSG:
                    verb = _HMSG
                else:
                    verb = _odd_message_verb(buf, pos, eol)
                if verb:
                    args = buf[pos + 5 : eol].split()
                    try:
                        # int() also takes "+1" and "1_0": isdigit() refuses them.
                        size = int(args[-1]) if args[-1].isdigit() else -1
                    except (IndexError, ValueError):
                        size = -1
                    if size < 0 or len(args) < 2:
                        raise _error("bad message arguments or size", buf[pos:eol])
                    if size > max_payload:
                        raise _error("Maximum Payload Violation", buf[pos:eol])
                    if verb is _HMSG:
                        _check_headers(args, size, buf[pos:eol])
                    if orphan:
                        raise _error("message before ACC", buf[pos:eol])
                    body = eol + 2
                    end = body + size
                    if end + 2 > n:
                        if size > _LARGE:
                            self._need = end + 2 - pos
                        break
                    if buf[end] != 13 or buf[end + 1] != 10:  # CR LF
                        raise _error("payload not followed by CRLF", buf[end : end + 32])
                    if size <= fast and args[0][0] != 36:
                        run_msgs += 1
                        run_size += size
                        pos = end + 2
                        continue
                    frame.headers = verb is _HMSG
                    frame.args = args
                    frame.start = pos
                    frame.body = body
                    frame.end = end
                    if on_msg(frame) and keep:
                        run_msgs += 1
                        run_size += size
                        pos = end + 2
                        continue
                    if run_msgs:
                        emit(on_run, buf, run, pos, run_msgs, run_size)
                        run_msgs = run_size = 0
                    pos = run = end + 2
                    continue
                if eol - pos > max_line:
                    raise _error("maximum control line exceeded", buf[pos : pos + 32])
                if run_msgs:
                    emit(on_run, buf, run, pos, run_msgs, run_size)
                    run_msgs = run_size = 0
                if accounts and buf[pos : pos + 4] == _RUN:
                    if orphan:
                        raise _error("RUN before ACC", buf[pos:eol])
                    size_bytes, msgs, size, largest = _run_header(buf[pos + 4 : eol])
                    start = eol + 2
                    stop = start + size_bytes
                    if 0 <= largest <= fast and size_bytes <= _MAX_RUN:
                        if stop > n:
                            self._need = stop - pos  # the whole run, then drain again
                            break
                        emit(on_run, buf, start, stop, msgs, size)
                        pos = run = stop
                        continue
                    # Not ours to take whole: its messages are read one by one.
                    pos = run = start
                    continue
                if accounts and buf[pos : pos + 4] == _ACC:
                    names = buf[pos + 4 : eol].split()
                    if len(names) != 1:
                        raise _error("bad ACC line", buf[pos:eol])
                    account = self.account = frame.account = names[0]
                    orphan = False
                else:
                    parser.feed(buf[pos : eol + 2])
                    while (event := parser.next_event()) is not None:
                        on_event(event)
                pos = run = eol + 2
                # A control line may change what the rule allows (permissions).
                if rule is not None and not orphan:
                    fast = min(rule(account), max_payload)
        finally:
            if run_msgs:
                emit(on_run, buf, run, pos, run_msgs, run_size)
            self._buf = buf[pos:] if pos < n else b""
            frame.buf = b""

    def _emit(
        self, on_run: RunHandler | None, buf: bytes, start: int, end: int, msgs: int, size: int
    ) -> None:
        """Hand ``buf[start:end]`` to ``on_run`` as the framer's ``Run``."""
        run = self._run
        run.account = self.account or b""
        run.data = buf if end - start == len(buf) else buf[start:end]
        run.msgs = msgs
        run.size = size
        on_run(run)  # type: ignore[misc]  # never None: drain emits through _no_run then
        run.data = b""


def _no_run(
    on_run: RunHandler | None, buf: bytes, start: int, end: int, msgs: int, size: int
) -> None:
    """``emit`` when the caller keeps no runs (never called)."""


def _run_header(args: bytes) -> tuple[int, int, int, int]:
    """``RUN``'s bytes, messages, payload bytes and largest payload (``_datalink``)."""
    fields = args.split()
    # Unrolled (no generator): one RUN line per batch the router sends.
    if (
        len(fields) != 4
        or not (
            fields[0].isdigit()
            and fields[1].isdigit()
            and fields[2].isdigit()
            and fields[3].isdigit()
        )
        or max(len(fields[0]), len(fields[1]), len(fields[2]), len(fields[3])) > _MAX_DIGITS
    ):
        raise _error("bad RUN line", b"RUN " + args[:28])
    return int(fields[0]), int(fields[1]), int(fields[2]), int(fields[3])


def _check_headers(args: list[bytes], size: int, line: bytes) -> None:
    """HMSG: one more argument, the header size, at most the total size."""
    hdr = args[-2] if len(args) > 2 else b""
    if not hdr.isdigit() or len(hdr) > 9 or int(hdr) > size:  # nats-server: 9 digits
        raise _error("bad header size", line)


def _odd_message_verb(buf: bytes, pos: int, eol: int) -> bytes:
    """``_LMSG``/``_HMSG`` for the spellings nats-server also accepts
    (lower case, a tab after the verb); ``b""`` for any other line."""
    if eol - pos < 5 or buf[pos + 4] not in _BLANKS:
        return b""
    verb = buf[pos : pos + 4].upper()
    if verb == b"LMSG":
        return _LMSG
    if verb == b"HMSG":
        return _HMSG
    return b""


def _error(text: str, snippet: bytes) -> RemoteProtocolError:
    return RemoteProtocolError(f"framing: {text}", err_text="", snippet=snippet)
