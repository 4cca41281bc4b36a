"""Encoders of the route protocol's verbs (``_route_events`` has the forms).

``account=None`` leaves the account out: the form of a route dedicated to
one account (``route_account`` in its INFO). The message encoders share the
reply/queue grammar with ``LMSG`` (``encode_leaf_route``), so a queue group
list is written as nats-server writes it: ``subject + reply q...`` or
``subject | q...``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, assert_never

from ._route import encode_leaf_route
from ._route_events import RHMsg, RLMsg, RLSub, RLUnsub, RMsg, RSub, RUnsub

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._route_events import RouteEvent

__all__ = [
    "RMSG_FRAME",
    "encode_rhmsg",
    "encode_rlmsg",
    "encode_rlsub",
    "encode_rlunsub",
    "encode_rmsg",
    "encode_route_event",
    "encode_rsub",
    "encode_runsub",
]

RMSG_FRAME: Final = b"RMSG %b%b %d\r\n%b\r\n"
"""``RMSG`` in one ``%``: account with its trailing blank (or ``b""``), route, size, payload."""


def _acc(account: bytes | None) -> bytes:
    return b"" if account is None else account + b" "


def encode_rsub(
    account: bytes | None, subject: bytes, queue: bytes | None = None, weight: int | None = None
) -> bytes:
    """``RS+ [acc] <subject> [<queue> <weight>]\\r\\n`` (a queue's weight defaults to 1)."""
    if queue is None:
        return b"RS+ %b%b\r\n" % (_acc(account), subject)
    return b"RS+ %b%b %b %d\r\n" % (_acc(account), subject, queue, 1 if weight is None else weight)


def encode_runsub(account: bytes | None, subject: bytes, queue: bytes | None = None) -> bytes:
    """``RS- [acc] <subject> [<queue>]\\r\\n``."""
    if queue is None:
        return b"RS- %b%b\r\n" % (_acc(account), subject)
    return b"RS- %b%b %b\r\n" % (_acc(account), subject, queue)


def encode_rlsub(
    origin: bytes,
    account: bytes | None,
    subject: bytes,
    queue: bytes | None = None,
    weight: int | None = None,
) -> bytes:
    """``LS+ <origin> [acc] <subject> [<queue> <weight>]\\r\\n``."""
    return b"LS+ %b %b" % (origin, encode_rsub(account, subject, queue, weight)[4:])


def encode_rlunsub(
    origin: bytes, account: bytes | None, subject: bytes, queue: bytes | None = None
) -> bytes:
    """``LS- <origin> [acc] <subject> [<queue>]\\r\\n`` (the peer said ``lnocu``).

    ``origin`` empty: ``LS- [acc] <subject> [<queue>]``, what a peer that said
    ``lnoc`` but not ``lnocu`` reads (nats-server's addRouteSubOrUnsubProtoToBuf).
    """
    if not origin:
        return b"LS- " + encode_runsub(account, subject, queue)[4:]
    return b"LS- %b %b" % (origin, encode_runsub(account, subject, queue)[4:])


def encode_rmsg(
    account: bytes | None,
    subject: bytes,
    reply: bytes | None,
    queues: Sequence[bytes],
    payload: bytes,
) -> bytes:
    """``RMSG [acc] <subject> [reply | + reply q... | | q...] <size>\\r\\n<payload>\\r\\n``."""
    route = encode_leaf_route(subject, reply, queues)
    return RMSG_FRAME % (_acc(account), route, len(payload), payload)


def encode_rhmsg(
    account: bytes | None,
    subject: bytes,
    reply: bytes | None,
    queues: Sequence[bytes],
    hdr_len: int,
    data: bytes,
) -> bytes:
    """``HMSG [acc] <subject> [route] <hdr_len> <total_len>\\r\\n<data>\\r\\n`` on a route."""
    route = encode_leaf_route(subject, reply, queues)
    return b"HMSG %b%b %d %d\r\n%b\r\n" % (_acc(account), route, hdr_len, len(data), data)


def encode_rlmsg(
    origin: bytes,
    account: bytes | None,
    subject: bytes,
    reply: bytes | None,
    queues: Sequence[bytes],
    hdr_len: int,
    data: bytes,
) -> bytes:
    """``LMSG <origin> [acc] <subject> [route] <hdr_len> <total_len>`` on a route."""
    return b"LMSG %b %b" % (
        origin,
        encode_rhmsg(account, subject, reply, queues, hdr_len, data)[5:],
    )


def encode_route_event(event: RouteEvent, *, pinned: bool = False) -> bytes:
    """Any route event as its line (and payload); ``pinned`` leaves the account out."""
    account = None if pinned else event.account
    match event:
        case RMsg():
            return encode_rmsg(account, event.subject, event.reply, event.queues, event.payload)
        case RHMsg():
            return encode_rhmsg(
                account, event.subject, event.reply, event.queues, event.hdr_len, event.data
            )
        case RLMsg():
            return encode_rlmsg(
                event.origin,
                account,
                event.subject,
                event.reply,
                event.queues,
                event.hdr_len,
                event.data,
            )
        case RSub():
            return encode_rsub(account, event.subject, event.queue, event.weight)
        case RUnsub():
            return encode_runsub(account, event.subject, event.queue)
        case RLSub():
            return encode_rlsub(event.origin, account, event.subject, event.queue, event.weight)
        case RLUnsub():
            return encode_rlunsub(event.origin, account, event.subject, event.queue)
        case _:
            assert_never(event)
