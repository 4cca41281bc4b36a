"""Protocol events: one class per wire verb (leafnode-protocol.md §2, §4).

Hot-path events (``Pub``, ``HPub``, ``Msg``, ``HMsg``, ``LMsg``, ``LHMsg``) are
``@dataclass(slots=True)`` and immutable by convention: frozen costs ~3x on
construction (STYLE §2). Rare control events are frozen.

Subjects, replies, sids and queue names are ``bytes`` as they appeared on the
wire; the data path never decodes them. Messages with headers keep headers and
payload together in ``data`` with ``hdr_len`` marking the split, so a message
can be forwarded without re-joining the two.

On ``Kind.INTERNAL`` links the interest verbs carry the local account as their
first argument (``LS+ <acc> <subj> ...``); it lands in ``account``. On
``Kind.LEAF`` links ``account`` is always ``None``. The data link's messages
are not events: ``MessageFramer`` cuts them (``_datalink``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._route_events import RouteEvent

__all__ = [
    "Connect",
    "Err",
    "Event",
    "HMsg",
    "HPub",
    "Info",
    "LHMsg",
    "LMsg",
    "LSub",
    "LUnsub",
    "Msg",
    "Ok",
    "Ping",
    "Pong",
    "Pub",
    "Sub",
    "Unsub",
]


@dataclass(frozen=True)
class Info:
    """``INFO {json}``: ``options`` is the decoded JSON object."""

    options: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Connect:
    """``CONNECT {json}``: ``options`` is the decoded JSON object."""

    options: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class Pub:
    """``PUB <subject> [reply] <size>`` and its payload."""

    subject: bytes
    reply: bytes | None
    payload: bytes


@dataclass(slots=True)
class HPub:
    """``HPUB <subject> [reply] <hdr_len> <total_len>``; ``data`` = headers + payload."""

    subject: bytes
    reply: bytes | None
    hdr_len: int
    data: bytes


@dataclass(frozen=True)
class Sub:
    """``SUB <subject> [queue] <sid>``."""

    subject: bytes
    queue: bytes | None
    sid: bytes


@dataclass(frozen=True)
class Unsub:
    """``UNSUB <sid> [max_msgs]``."""

    sid: bytes
    max_msgs: int | None = None


@dataclass(slots=True)
class Msg:
    """``MSG <subject> <sid> [reply] <size>`` and its payload."""

    subject: bytes
    sid: bytes
    reply: bytes | None
    payload: bytes


@dataclass(slots=True)
class HMsg:
    """``HMSG <subject> <sid> [reply] <hdr_len> <total_len>`` (client protocol)."""

    subject: bytes
    sid: bytes
    reply: bytes | None
    hdr_len: int
    data: bytes


@dataclass(frozen=True)
class Ping:
    """``PING``."""


@dataclass(frozen=True)
class Pong:
    """``PONG``."""


@dataclass(frozen=True)
class Ok:
    """``+OK``."""


@dataclass(frozen=True)
class Err:
    """``-ERR '<text>'``: ``text`` without the quotes."""

    text: str


@dataclass(frozen=True)
class LSub:
    """``LS+ [acc] <subject> [<queue> <weight>]``."""

    subject: bytes
    queue: bytes | None = None
    weight: int | None = None
    account: bytes | None = None


@dataclass(frozen=True)
class LUnsub:
    """``LS- [acc] <subject> [<queue>]``."""

    subject: bytes
    queue: bytes | None = None
    account: bytes | None = None


@dataclass(slots=True)
class LMsg:
    """``LMSG <subject> [reply | + reply q... | | q...] <size>`` and payload."""

    subject: bytes
    reply: bytes | None
    queues: tuple[bytes, ...]
    payload: bytes


@dataclass(slots=True)
class LHMsg:
    """``HMSG`` on a leaf link: like ``LMsg`` with headers in ``data``."""

    subject: bytes
    reply: bytes | None
    queues: tuple[bytes, ...]
    hdr_len: int
    data: bytes


Event = (
    Info
    | Connect
    | Pub
    | HPub
    | Sub
    | Unsub
    | Msg
    | HMsg
    | Ping
    | Pong
    | Ok
    | Err
    | LSub
    | LUnsub
    | LMsg
    | LHMsg
    | RouteEvent  # Kind.ROUTE (_route_events)
)
