"""Pure encoders: values in, wire bytes out (STYLE §3.3.7).

Subjects, replies, sids, queue names and accounts are ``bytes`` tokens and are
written as given: they must be non-empty and free of whitespace (validate
subjects once, where they enter, with ``leafnode.proto._subject``). Payloads may
be any bytes-like object. Every function returns one ``bytes`` so a writer can
collect them and flush once per wakeup.

``account`` on the interest encoders selects the ``Kind.INTERNAL`` form, where
the account is the first argument (``_datalink``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Final, assert_never

from ._errors import LocalProtocolError
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
from ._route import encode_leaf_route
from ._route_events import RHMsg, RLMsg, RLSub, RLUnsub, RMsg, RSub, RUnsub
from ._route_writer import encode_route_event

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ._events import Event

# Everything in __all__ gets re-exported as part of the leafnode.proto API.
__all__ = [
    "HMSG_FRAME",
    "HMSG_REPLY_FRAME",
    "LMSG_FRAME",
    "MSG_FRAME",
    "MSG_REPLY_FRAME",
    "OK",
    "PING",
    "PONG",
    "encode_connect",
    "encode_err",
    "encode_event",
    "encode_hmsg",
    "encode_hpub",
    "encode_info",
    "encode_lhmsg",
    "encode_lmsg",
    "encode_lsub",
    "encode_lunsub",
    "encode_msg",
    "encode_msg_frame",
    "encode_pub",
    "encode_routed_hmsg",
    "encode_sub",
    "encode_unsub",
]

PING: Final = b"PING\r\n"
PONG: Final = b"PONG\r\n"
OK: Final = b"+OK\r\n"

_COMPACT: Final = (",", ":")

# Whole-message formats, applied with one ``%`` by the encoders below and by
# the router's two per-message paths (client delivery, hub-bound messages),
# where a function call per message would cost more than the format itself.
# Arguments, in order:
MSG_FRAME: Final = b"MSG %b %b %d\r\n%b\r\n"  # subject, sid, size, payload
MSG_REPLY_FRAME: Final = b"MSG %b %b %b %d\r\n%b\r\n"  # subject, sid, reply, size, payload
# subject, sid, [reply,] hdr_len, total size, headers + payload
HMSG_FRAME: Final = b"HMSG %b %b %d %d\r\n%b\r\n"
HMSG_REPLY_FRAME: Final = b"HMSG %b %b %b %d %d\r\n%b\r\n"
# Leaf link: route (the subject, or encode_leaf_route's), size, payload.
LMSG_FRAME: Final = b"LMSG %b %d\r\n%b\r\n"


def _json(options: Mapping[str, object]) -> bytes:
    return json.dumps(dict(options), separators=_COMPACT).encode()


def encode_info(options: Mapping[str, object]) -> bytes:
    """``INFO {json} \\r\\n``, with the space nats-server puts before CRLF (§1)."""
    return b"INFO " + _json(options) + b" \r\n"


def encode_connect(options: Mapping[str, object]) -> bytes:
    """``CONNECT {json}\\r\\n``."""
    return b"CONNECT " + _json(options) + b"\r\n"


def encode_err(text: str) -> bytes:
    """``-ERR '<text>'\\r\\n``.

    Raises:
        LocalProtocolError: ``text`` contains CR or LF (it would end the line).
    """
    if "\r" in text or "\n" in text:
        raise LocalProtocolError("-ERR text must be one line", err_text=text)
    return b"-ERR '" + text.encode() + b"'\r\n"


def encode_pub(subject: bytes, reply: bytes | None, payload: bytes) -> bytes:
    """``PUB <subject> [reply] <size>\\r\\n<payload>\\r\\n``."""
    if reply is None:
        return b"PUB %b %d\r\n%b\r\n" % (subject, len(payload), payload)
    return b"PUB %b %b %d\r\n%b\r\n" % (subject, reply, len(payload), payload)


def encode_hpub(subject: bytes, reply: bytes | None, hdr_len: int, data: bytes) -> bytes:
    """``HPUB <subject> [reply] <hdr_len> <total_len>\\r\\n<data>\\r\\n``.

    ``data`` is the header block followed by the payload; ``hdr_len`` its split.
    """
    if reply is None:
        return b"HPUB %b %d %d\r\n%b\r\n" % (subject, hdr_len, len(data), data)
    return b"HPUB %b %b %d %d\r\n%b\r\n" % (subject, reply, hdr_len, len(data), data)


def encode_sub(subject: bytes, queue: bytes | None, sid: bytes) -> bytes:
    """``SUB <subject> [queue] <sid>\\r\\n``."""
    if queue is None:
        return b"SUB %b %b\r\n" % (subject, sid)
    return b"SUB %b %b %b\r\n" % (subject, queue, sid)


def encode_unsub(sid: bytes, max_msgs: int | None = None) -> bytes:
    """``UNSUB <sid> [max_msgs]\\r\\n``."""
    if max_msgs is None:
        return b"UNSUB %b\r\n" % sid
    return b"UNSUB %b %d\r\n" % (sid, max_msgs)


def encode_msg(subject: bytes, sid: bytes, reply: bytes | None, payload: bytes) -> bytes:
    """``MSG <subject> <sid> [reply] <size>\\r\\n<payload>\\r\\n``."""
    if reply is None:
        return MSG_FRAME % (subject, sid, len(payload), payload)
    return MSG_REPLY_FRAME % (subject, sid, reply, len(payload), payload)


def encode_hmsg(
    subject: bytes, sid: bytes, reply: bytes | None, hdr_len: int, data: bytes
) -> bytes:
    """``HMSG <subject> <sid> [reply] <hdr_len> <total_len>\\r\\n<data>\\r\\n``."""
    if reply is None:
        return HMSG_FRAME % (subject, sid, hdr_len, len(data), data)
    return HMSG_REPLY_FRAME % (subject, sid, reply, hdr_len, len(data), data)


def encode_msg_frame(
    subject: bytes, sid: bytes, reply: bytes | None, hdr_len: int, data: bytes
) -> bytes:
    """A client delivery: ``HMSG`` when ``hdr_len``, else ``MSG``.

    ``data`` is the header block (``hdr_len`` bytes) followed by the payload.

    One ``%`` format per message. A client that did not negotiate headers
    gets ``encode_msg`` of the payload alone.
    """
    if hdr_len:
        if reply is None:
            return HMSG_FRAME % (subject, sid, hdr_len, len(data), data)
        return HMSG_REPLY_FRAME % (subject, sid, reply, hdr_len, len(data), data)
    if reply is None:
        return MSG_FRAME % (subject, sid, len(data), data)
    return MSG_REPLY_FRAME % (subject, sid, reply, len(data), data)


def encode_lsub(
    subject: bytes,
    queue: bytes | None = None,
    weight: int | None = None,
    account: bytes | None = None,
) -> bytes:
    """``LS+ [account] <subject> [<queue> <weight>]\\r\\n``.

    Raises:
        LocalProtocolError: only one of ``queue`` and ``weight`` was given (a
            queue without weight makes the hub drop the link, §4.4).
    """
    head = b"LS+ " if account is None else b"LS+ " + account + b" "
    if queue is None and weight is None:
        return head + subject + b"\r\n"
    if queue is None or weight is None:
        raise LocalProtocolError("LS+ needs both a queue and a weight", err_text="")
    return b"%b%b %b %d\r\n" % (head, subject, queue, weight)


def encode_lunsub(
    subject: bytes, queue: bytes | None = None, account: bytes | None = None
) -> bytes:
    """``LS- [account] <subject> [<queue>]\\r\\n``."""
    head = b"LS- " if account is None else b"LS- " + account + b" "
    if queue is None:
        return head + subject + b"\r\n"
    return head + subject + b" " + queue + b"\r\n"


def encode_lmsg(
    subject: bytes, reply: bytes | None, queues: Sequence[bytes], payload: bytes
) -> bytes:
    """``LMSG <subject> [reply | + reply q... | | q...] <size>``, payload."""
    if reply is None and not queues:
        return LMSG_FRAME % (subject, len(payload), payload)
    route = encode_leaf_route(subject, reply, queues)
    return LMSG_FRAME % (route, len(payload), payload)


def encode_lhmsg(
    subject: bytes, reply: bytes | None, queues: Sequence[bytes], hdr_len: int, data: bytes
) -> bytes:
    """Leaf ``HMSG <subject> [reply | + reply q... | | q...] <hdr_len> <total_len>``."""
    route = encode_leaf_route(subject, reply, queues)
    return b"HMSG %b %d %d\r\n%b\r\n" % (route, hdr_len, len(data), data)


def encode_routed_hmsg(route: bytes, headers: bytes, payload: bytes) -> bytes:
    """Leaf ``HMSG <route> <hdr_len> <total_len>`` of a header block and a payload.

    ``route`` is ``encode_leaf_route``'s; for a sender that builds the header
    block itself (the uplink stamps stored messages), in one ``%`` format.
    """
    size = len(headers)
    return b"HMSG %b %d %d\r\n%b%b\r\n" % (route, size, size + len(payload), headers, payload)


def encode_event(event: Event) -> bytes:
    """Encode any event as the verb it was parsed from.

    ``LHMsg`` becomes a leaf ``HMSG``; ``LSub``/``LUnsub`` with ``account``
    set get the ``Kind.INTERNAL`` form; route events their route form
    (``encode_route_event``, account included).
    """
    match event:
        case Pub():
            return encode_pub(event.subject, event.reply, event.payload)
        case HPub():
            return encode_hpub(event.subject, event.reply, event.hdr_len, event.data)
        case Msg():
            return encode_msg(event.subject, event.sid, event.reply, event.payload)
        case HMsg():
            return encode_hmsg(event.subject, event.sid, event.reply, event.hdr_len, event.data)
        case LMsg():
            return encode_lmsg(event.subject, event.reply, event.queues, event.payload)
        case LHMsg():
            return encode_lhmsg(event.subject, event.reply, event.queues, event.hdr_len, event.data)
        case Sub():
            return encode_sub(event.subject, event.queue, event.sid)
        case Unsub():
            return encode_unsub(event.sid, event.max_msgs)
        case LSub():
            return encode_lsub(event.subject, event.queue, event.weight, event.account)
        case LUnsub():
            return encode_lunsub(event.subject, event.queue, event.account)
        case Ping():
            return PING
        case Pong():
            return PONG
        case Ok():
            return OK
        case Err():
            return encode_err(event.text)
        case Info():
            return encode_info(event.options)
        case Connect():
            return encode_connect(event.options)
        case RSub() | RUnsub() | RLSub() | RLUnsub() | RMsg() | RHMsg() | RLMsg():
            return encode_route_event(event)
        case _:
            assert_never(event)
