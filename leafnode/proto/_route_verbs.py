"""Verb handlers of ``Kind.ROUTE``: the route protocol's lines (``_route_events``).

The same handler contract as ``_verbs`` (``(parser, parts, line, start)``),
so ``Parser`` reads a route as it reads any other connection: the table
``ROUTE_VERBS`` adds the route verbs to the common ones (PING, PONG, INFO,
CONNECT, +OK, -ERR). The account token is present unless the parser's
``route_account`` is set (a route dedicated to one account), exactly as
nats-server's ``processRemoteSub``/``processRoutedMsgArgs`` count arguments.

Malformed arguments close the route without ``-ERR`` (``ERR_SILENT``), as
nats-server closes on its parse errors; an oversized payload is ``Maximum
Payload Violation``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ._route import parse_leaf_route
from ._route_events import RHMsg, RLMsg, RLSub, RLUnsub, RMsg, RSub, RUnsub
from ._verbs import (
    _COMMON,
    _CONTROL,
    _CRLF,
    ERR_SILENT,
    _connect,
    _header_sizes,
    _size,
    _table,
)

if TYPE_CHECKING:
    from ._events import Event
    from ._handler import Handler
    from ._handler import VerbParser as Parser

__all__ = ["ROUTE_VERBS"]


def _account(p: Parser, parts: list[bytes], at: int) -> tuple[bytes, int]:
    """The account and the index of the subject, for an account token at ``at``."""
    pinned = p.route_account
    if pinned is not None:
        return pinned, at
    if len(parts) <= at:
        raise p._bad_args(parts, b" ".join(parts), "missing account")
    return parts[at], at + 1


def _interest(
    p: Parser, parts: list[bytes], line: bytes, at: int
) -> tuple[bytes, bytes, bytes | None, int | None]:
    """``[acc] <subject> [<queue> <weight>]`` from ``parts[at:]``."""
    account, subj = _account(p, parts, at)
    n = len(parts) - subj
    if n == 1:
        return account, parts[subj], None, None
    if n == 3:
        weight = _size(parts[subj + 2])
        if weight >= 0:
            return account, parts[subj], parts[subj + 1], weight
    raise p._bad_args(parts, line, f"{parts[0].decode()} needs [acc] <subject> [<queue> <weight>]")


def _no_interest(
    p: Parser, parts: list[bytes], line: bytes, at: int
) -> tuple[bytes, bytes, bytes | None]:
    """``[acc] <subject> [<queue>]`` from ``parts[at:]``."""
    account, subj = _account(p, parts, at)
    n = len(parts) - subj
    if n == 1:
        return account, parts[subj], None
    if n == 2:
        return account, parts[subj], parts[subj + 1]
    raise p._bad_args(parts, line, f"{parts[0].decode()} needs [acc] <subject> [<queue>]")


def _rsub(p: Parser, parts: list[bytes], line: bytes, start: int) -> Event | None:
    return RSub(*_interest(p, parts, line, 1))


def _runsub(p: Parser, parts: list[bytes], line: bytes, start: int) -> Event | None:
    return RUnsub(*_no_interest(p, parts, line, 1))


def _rlsub(p: Parser, parts: list[bytes], line: bytes, start: int) -> Event | None:
    if len(parts) < 3:
        raise p._bad_args(parts, line, "LS+ needs <origin> [acc] <subject> [<queue> <weight>]")
    return RLSub(parts[1], *_interest(p, parts, line, 2))


def _rlunsub(p: Parser, parts: list[bytes], line: bytes, start: int) -> Event | None:
    if len(parts) < 3:
        raise p._bad_args(parts, line, "LS- needs <origin> [acc] <subject> [<queue>]")
    return RLUnsub(parts[1], *_no_interest(p, parts, line, 2))


def _routing(
    p: Parser, parts: list[bytes], line: bytes, at: int, sizes: int
) -> tuple[bytes, bytes, bytes | None, tuple[bytes, ...]]:
    """Account, subject, reply and queues of a routed message line."""
    account, subj = _account(p, parts, at)
    route = parse_leaf_route(parts, subj, len(parts) - sizes) if len(parts) > subj + sizes else None
    if route is None:
        raise p._bad_args(parts, line, f"bad {parts[0].decode()} arguments")
    return account, route[0], route[1], route[2]


def _rmsg(p: Parser, parts: list[bytes], line: bytes, start: int) -> Event | None:
    account, subject, reply, queues = _routing(p, parts, line, 1, 1)
    size = _size(parts[-1])
    if size < 0:
        raise p._error_at(ERR_SILENT, "RMSG size is not a number", line)
    if size > p.max_payload:
        raise p._too_large(size, line)
    buf = p._buf
    end = start + size
    if end + 2 <= len(buf) and buf.startswith(_CRLF, end):
        p._pos = p._scan = end + 2
        return RMsg(account, subject, reply, queues, buf[start:end])
    return p._defer(start, size, RMsg, (account, subject, reply, queues))


def _rhmsg(p: Parser, parts: list[bytes], line: bytes, start: int) -> Event | None:
    account, subject, reply, queues = _routing(p, parts, line, 1, 2)
    hdr, size = _header_sizes(p, parts[-2], parts[-1], line)
    buf = p._buf
    end = start + size
    if end + 2 <= len(buf) and buf.startswith(_CRLF, end):
        p._pos = p._scan = end + 2
        return RHMsg(account, subject, reply, queues, hdr, buf[start:end])
    return p._defer(start, size, RHMsg, (account, subject, reply, queues, hdr))


def _rlmsg(p: Parser, parts: list[bytes], line: bytes, start: int) -> Event | None:
    if len(parts) < 2:
        raise p._bad_args(parts, line, "LMSG needs <origin> [acc] <subject> ...")
    origin = parts[1]
    account, subject, reply, queues = _routing(p, parts, line, 2, 2)
    hdr, size = _header_sizes(p, parts[-2], parts[-1], line)
    buf = p._buf
    end = start + size
    if end + 2 <= len(buf) and buf.startswith(_CRLF, end):
        p._pos = p._scan = end + 2
        return RLMsg(origin, account, subject, reply, queues, hdr, buf[start:end])
    return p._defer(start, size, RLMsg, (origin, account, subject, reply, queues, hdr))


_ROUTE: Final[dict[bytes, Handler]] = {
    b"RS+": _rsub,
    b"RS-": _runsub,
    b"LS+": _rlsub,
    b"LS-": _rlunsub,
    b"RMSG": _rmsg,
    b"HMSG": _rhmsg,
    b"LMSG": _rlmsg,
}
ROUTE_VERBS: Final[dict[bytes, Handler]] = _table(_COMMON, _CONTROL, _ROUTE, {b"CONNECT": _connect})
"""The verb table of ``Kind.ROUTE`` (``Parser`` picks it)."""
