"""Verb handlers and the per-kind verb tables of the parser (``_parser``).

Each handler takes ``(parser, parts, line, start)``: ``parts`` is the
whitespace-split control line with the verb first, ``line`` the raw line
without its line end, and ``start`` the offset in the parser's buffer right
after the line (where a payload begins). The parser's position is already past
the line when a handler runs; a handler returns an event, or defers to the
payload state with ``parser._defer``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Final

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
from ._route import parse_leaf_route

if TYPE_CHECKING:
    from ._events import Event
    from ._handler import Handler
    from ._handler import VerbParser as Parser  # the parser as handlers see it

# nats-server's texts (server/parser.go parseErr, client.go maxPayloadViolation,
# errors.go ErrMaxControlLine); "" = nats-server closes without sending -ERR.
ERR_UNKNOWN_OP: Final = "Unknown Protocol Operation"
ERR_MAX_PAYLOAD: Final = "Maximum Payload Violation"
ERR_MAX_CONTROL_LINE: Final = "maximum control line exceeded"
ERR_SILENT: Final = ""

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


def _constant(event: Event) -> Handler:
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
    """Subject, reply and queues of LMSG/HMSG on a leaf link (``parse_leaf_route``).

    ``sizes`` is how many size tokens end the line (1 for LMSG, 2 for HMSG).
    """
    route = parse_leaf_route(parts, 1, len(parts) - sizes)
    if route is None:
        raise p._bad_args(parts, line, "bad LMSG/HMSG arguments")
    return route


def _lmsg(p: Parser, parts: list[bytes], line: bytes, start: int) -> Event | None:
    subject, reply, queues = _leaf_routing(p, parts, line, 1)
    size = _size(parts[-1])
    if size < 0:
        raise p._error_at(ERR_SILENT, "LMSG size is not a number", line)
    if size > p.max_payload:
        raise p._too_large(size, line)
    buf = p._buf
    end = start + size
    if end + 2 <= len(buf) and buf.startswith(_CRLF, end):
        p._pos = p._scan = end + 2
        return LMsg(subject, reply, queues, buf[start:end])
    return p._defer(start, size, LMsg, (subject, reply, queues))


def _lhmsg(p: Parser, parts: list[bytes], line: bytes, start: int) -> Event | None:
    subject, reply, queues = _leaf_routing(p, parts, line, 2)
    hdr, size = _header_sizes(p, parts[-2], parts[-1], line)
    buf = p._buf
    end = start + size
    if end + 2 <= len(buf) and buf.startswith(_CRLF, end):
        p._pos = p._scan = end + 2
        return LHMsg(subject, reply, queues, hdr, buf[start:end])
    return p._defer(start, size, LHMsg, (subject, reply, queues, hdr))


# Verbs nats-server accepts without a blank before what follows (see _unusual_verb).
_GLUED: Final = (b"CONNECT", b"INFO", b"PING", b"PONG", b"+OK")


def _table(*groups: dict[bytes, Handler]) -> dict[bytes, Handler]:
    # The lower-case spelling is common enough (telnet, tests) to skip upper().
    table = {verb: h for group in groups for verb, h in group.items()}
    table.update({verb.lower(): h for verb, h in table.items()})
    return table


_COMMON: Final[dict[bytes, Handler]] = {b"PING": _constant(Ping()), b"PONG": _constant(Pong())}
_INTEREST: Final[dict[bytes, Handler]] = {b"LS+": _lsub, b"LS-": _lunsub}
_LINK: Final[dict[bytes, Handler]] = {b"LMSG": _lmsg, b"HMSG": _lhmsg, **_INTEREST}
_CONTROL: Final[dict[bytes, Handler]] = {b"INFO": _info, b"+OK": _constant(Ok()), b"-ERR": _err}
_TABLES: Final[dict[Kind, dict[bytes, Handler]]] = {
    Kind.CLIENT: _table(
        _COMMON,
        {b"PUB": _pub, b"HPUB": _hpub, b"SUB": _sub, b"UNSUB": _unsub, b"CONNECT": _connect},
    ),
    Kind.SERVER: _table(_COMMON, _CONTROL, {b"MSG": _msg, b"HMSG": _hmsg}),
    Kind.LEAF: _table(_COMMON, _CONTROL, _LINK, {b"CONNECT": _connect}),
    # The data link has no verbose mode, so no +OK; its messages are cut by
    # MessageFramer under ACC lines (_datalink), never parsed here.
    Kind.INTERNAL: _table(_COMMON, _INTEREST, {b"INFO": _info, b"-ERR": _err}),
}
