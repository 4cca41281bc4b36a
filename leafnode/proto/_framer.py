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
calls ``on_msg(account, verb, args, buf, start, body, end)``: ``verb`` is
the ``LMSG``/``HMSG`` constant (with the blank; test it with ``is``), ``args``
the whitespace-split arguments,
``buf[start:end + 2]`` the line after the verb through the payload's CRLF,
and ``buf[body:end]`` the payload (HMSG: headers and payload).

Verbatim runs. A relay forwards most messages unchanged. When ``on_msg``
returns True the message joins the current *run*: consecutive kept messages
that ``on_run(buf, start, end, msgs, size)`` receives as one slice
``buf[start:end]`` (``msgs`` messages, ``size`` payload bytes), so the relay
writes one piece per read instead of one per message. A run is handed over
before any control event, before an account change and when ``drain``
stops, so runs and events keep their order. A message ``on_msg`` does not
keep ends the run; if ``on_msg`` wrote it somewhere itself, that write goes
before the pending run, so a consumer must not write its own messages where
its runs go (the uplink never does: see ``services/uplink/service.py``).

Accounts on the data link (``accounts=True``, DESIGN §2). Message lines name
their local account first (``LMSG <acc> <subject> ...``), the classic form,
until the sender writes ``ACC <acc>``: from then on message lines are in the
leaf link's own form, byte for byte what a hub sends or expects, and belong
to that account until the next ``ACC``. ``on_msg`` gets the account of a
leaf-form line; for a classic line it gets None and ``args[0]`` is the
account. On a hub link (``accounts=False``) ``ACC`` is an unknown verb and
the account is always None.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ._errors import RemoteProtocolError
from ._parser import Parser

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._events import Event
    from ._kinds import Kind

    # (account, verb, args, buf, start, body, end) -> keep verbatim; see the module doc.
    MessageHandler = Callable[[bytes | None, bytes, list[bytes], bytes, int, int, int], bool]
    # (buf, start, end, msgs, size): see the module doc.
    RunHandler = Callable[[bytes, int, int, int, int], None]
    EventHandler = Callable[[Event], None]
    # account -> largest payload kept without asking on_msg; see drain().
    KeepRule = Callable[[bytes | None], int]

# Everything in __all__ gets re-exported as part of the leafnode.proto API.
__all__ = ["HMSG", "LMSG", "MessageFramer", "encode_acc"]

LMSG: Final = b"LMSG "
HMSG: Final = b"HMSG "
_ACC: Final = b"ACC "
_CRLF: Final = b"\r\n"
_BLANKS: Final = b" \t"
# Messages larger than this that arrive in pieces are collected in a list
# (one join) rather than by growing the buffer with every read.
_LARGE: Final = 64 * 1024


def encode_acc(account: bytes) -> bytes:
    """``ACC <account>``: the data link's leaf-form message lines that follow belong to it."""
    return b"ACC %b\r\n" % account


class MessageFramer:
    """Incremental framer: ``feed`` bytes, then ``drain`` them into the handlers.

    Args:
        kind: the parser kind for non-message lines (``Kind.LEAF`` or ``Kind.INTERNAL``).
        max_payload: largest message size (HMSG: total size) accepted.
        max_control_line: longest control line accepted.
        accounts: a data link: ``ACC`` lines and classic message lines (module doc).

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
        "_max_line",
        "_max_payload",
        "_need",
        "_parser",
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
        if buf[:5] in (LMSG, HMSG) or _odd_message_verb(buf, 0, eol):
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
        leaf-form message that is kept without asking ``on_msg``, if its
        subject does not start with ``$`` (-1: ask about every message): a
        relay whose checks all pass for such subjects skips a call per message.

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
        emit = on_run if on_run is not None else _no_run
        # Slice comparisons, not startswith(x, pos): parsing startswith's
        # arguments costs more than the slice (CPython 3.11).
        find = buf.find
        max_payload = self._max_payload
        max_line = self._max_line + 8
        accounts = self._accounts
        account = self.account
        classic = accounts and account is None
        # Fewest arguments of an LMSG: subject and size, plus the account of a
        # classic data-link line.
        least = 3 if classic else 2
        rule = keep_rule if keep else None
        fast = rule(account) if rule is not None and not classic else -1
        try:
            while pos < n:
                eol = find(_CRLF, pos)
                if eol < 0:
                    if n - pos > max_line:
                        raise _error("maximum control line exceeded", buf[pos : pos + 32])
                    break
                head = buf[pos : pos + 5]
                if head == LMSG:
                    verb = LMSG
                elif head == HMSG:
                    verb = HMSG
                else:
                    verb = _odd_message_verb(buf, pos, eol)
                if verb:
                    start = pos + 5
                    args = buf[start:eol].split()
                    try:
                        # int() also takes "+1" and "1_0": isdigit() refuses them.
                        size = int(args[-1]) if args[-1].isdigit() else -1
                    except (IndexError, ValueError):
                        size = -1
                    if size < 0 or len(args) < least:
                        raise _error("bad message arguments or size", buf[pos:eol])
                    if size > max_payload:
                        raise _error("Maximum Payload Violation", buf[pos:eol])
                    if verb is HMSG:
                        _check_headers(args, least, size, buf[pos:eol])
                    body = eol + 2
                    end = body + size
                    if end + 2 > n:
                        if size > _LARGE:
                            self._need = end + 2 - pos
                        break
                    if buf[end : end + 2] != _CRLF:
                        raise _error("payload not followed by CRLF", buf[end : end + 32])
                    if (size <= fast and args[0][0] != 36) or (
                        on_msg(account, verb, args, buf, start, body, end) and keep
                    ):
                        run_msgs += 1
                        run_size += size
                        pos = end + 2
                        continue
                    if run_msgs:
                        emit(buf, run, pos, run_msgs, run_size)
                        run_msgs = run_size = 0
                    pos = run = end + 2
                    continue
                if eol - pos > max_line:
                    raise _error("maximum control line exceeded", buf[pos : pos + 32])
                if run_msgs:
                    emit(buf, run, pos, run_msgs, run_size)
                    run_msgs = run_size = 0
                if accounts and buf[pos : pos + 4] == _ACC:
                    names = buf[pos + 4 : eol].split()
                    if len(names) != 1:
                        raise _error("bad ACC line", buf[pos:eol])
                    account = self.account = names[0]
                    classic = False
                    least = 2
                else:
                    parser.feed(buf[pos : eol + 2])
                    while (event := parser.next_event()) is not None:
                        on_event(event)
                pos = run = eol + 2
                # A control line may change what the rule allows (permissions).
                if rule is not None and not classic:
                    fast = rule(account)
        finally:
            if run_msgs:
                emit(buf, run, pos, run_msgs, run_size)
            self._buf = buf[pos:] if pos < n else b""


def _no_run(buf: bytes, start: int, end: int, msgs: int, size: int) -> None:
    """``on_run`` when the caller keeps no runs (never called)."""


def _check_headers(args: list[bytes], least: int, size: int, line: bytes) -> None:
    """HMSG: one more argument, the header size, at most the total size."""
    hdr = args[-2] if len(args) > least else b""
    if not hdr.isdigit() or len(hdr) > 9 or int(hdr) > size:  # nats-server: 9 digits
        raise _error("bad header size", line)


def _odd_message_verb(buf: bytes, pos: int, eol: int) -> bytes:
    """``b"LMSG "``/``b"HMSG "`` for the spellings nats-server also accepts
    (lower case, a tab after the verb); ``b""`` for any other line."""
    if eol - pos < 5 or buf[pos + 4] not in _BLANKS:
        return b""
    verb = buf[pos : pos + 4].upper()
    if verb == b"LMSG":
        return LMSG
    if verb == b"HMSG":
        return HMSG
    return b""


def _error(text: str, snippet: bytes) -> RemoteProtocolError:
    return RemoteProtocolError(f"framing: {text}", err_text="", snippet=snippet)
