"""Sans-IO NATS wire protocol: client, leafnode and internal data-link verbs.

No sockets, clocks, trio or logging here: ``Parser`` turns bytes into events,
the ``encode_*`` functions turn values into bytes.
"""

from __future__ import annotations

from ._errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from ._events import (
    Connect,
    Err,
    Event,
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
from ._subject import (
    is_literal,
    is_valid_literal_subject,
    is_valid_queue,
    is_valid_subject,
    split_tokens,
    subject_is_subset,
    subject_matches,
)

__all__ = [
    "Connect",
    "Err",
    "Event",
    "HMsg",
    "HPub",
    "Info",
    "Kind",
    "LHMsg",
    "LMsg",
    "LSub",
    "LUnsub",
    "LocalProtocolError",
    "Msg",
    "Ok",
    "Ping",
    "Pong",
    "ProtocolError",
    "Pub",
    "RemoteProtocolError",
    "Sub",
    "Unsub",
    "is_literal",
    "is_valid_literal_subject",
    "is_valid_queue",
    "is_valid_subject",
    "split_tokens",
    "subject_is_subset",
    "subject_matches",
]
