"""Events of the route protocol: what one NATS cluster node sends another.

A route carries interest and messages *per account*, unlike a leaf link
(whose account is the link's): every verb names the account first, except
on a route dedicated to one account (nats-server's pinned accounts, and the
system account ``$SYS``, which nats-server 2.10+ always gives a route of its
own), where the account is left out and known from the route's INFO
(``route_account``). The events always carry the account, wherever it came
from (``Parser.route_account``).

The wire forms (nats-server ``server/route.go``, ``client.go``):

- ``RS+ [acc] <subject> [<queue> <weight>]``: interest of the sender's
  clients; ``weight`` is how many queue members the sender has.
- ``RS- [acc] <subject> [<queue>]``: that interest is gone.
- ``LS+ <origin> [acc] <subject> [<queue> <weight>]``: interest of a leaf
  node connected to the sender, whose cluster is ``origin`` (sent to a peer
  whose INFO said ``lnoc``), so that messages from that leaf cluster are not
  sent back to it.
- ``LS- <origin> [acc] <subject> [<queue>]``: the origin is there when the
  receiver's INFO said ``lnocu`` (we always do, so ours always have it).
- ``RMSG [acc] <subject> [reply | + reply q... | | q...] <size>``: a message
  with the queue groups it is for on the receiver (the reply/queue grammar of
  ``LMSG``: ``leafnode.proto._route``).
- ``HMSG [acc] <subject> [route] <hdr_len> <total_len>``: the same with headers.
- ``LMSG <origin> [acc] <subject> [route] <hdr_len> <total_len>``: a message
  that came from leaf cluster ``origin``; on a route it always has headers.

Hot-path events (the messages) are ``slots`` dataclasses as ``_events``'
are; the interest events are frozen.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RHMsg", "RLMsg", "RLSub", "RLUnsub", "RMsg", "RSub", "RUnsub", "RouteEvent"]


@dataclass(frozen=True)
class RSub:
    """``RS+ [acc] <subject> [<queue> <weight>]``."""

    account: bytes
    subject: bytes
    queue: bytes | None = None
    weight: int | None = None


@dataclass(frozen=True)
class RUnsub:
    """``RS- [acc] <subject> [<queue>]``."""

    account: bytes
    subject: bytes
    queue: bytes | None = None


@dataclass(frozen=True)
class RLSub:
    """``LS+ <origin> [acc] <subject> [<queue> <weight>]`` (a leaf's interest, on a route)."""

    origin: bytes
    account: bytes
    subject: bytes
    queue: bytes | None = None
    weight: int | None = None


@dataclass(frozen=True)
class RLUnsub:
    """``LS- <origin> [acc] <subject> [<queue>]``."""

    origin: bytes
    account: bytes
    subject: bytes
    queue: bytes | None = None


@dataclass(slots=True)
class RMsg:
    """``RMSG [acc] <subject> [reply | + reply q... | | q...] <size>`` and payload."""

    account: bytes
    subject: bytes
    reply: bytes | None
    queues: tuple[bytes, ...]
    payload: bytes


@dataclass(slots=True)
class RHMsg:
    """``HMSG`` on a route: like ``RMsg``, headers and payload in ``data``."""

    account: bytes
    subject: bytes
    reply: bytes | None
    queues: tuple[bytes, ...]
    hdr_len: int
    data: bytes


@dataclass(slots=True)
class RLMsg:
    """``LMSG <origin> ...`` on a route: a message from leaf cluster ``origin``."""

    origin: bytes
    account: bytes
    subject: bytes
    reply: bytes | None
    queues: tuple[bytes, ...]
    hdr_len: int
    data: bytes


RouteEvent = RSub | RUnsub | RLSub | RLUnsub | RMsg | RHMsg | RLMsg
