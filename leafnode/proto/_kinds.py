"""Connection kinds: which verbs a parser accepts (nats-server's kind gating)."""

from __future__ import annotations

import enum

__all__ = ["Kind"]


class Kind(enum.Enum):
    """Who is on the other end of the bytes being parsed.

    - ``CLIENT``: a NATS client talking to our client port (CONNECT, PUB, HPUB,
      SUB, UNSUB, PING, PONG).
    - ``SERVER``: a NATS server's client port seen from a client (INFO, MSG,
      HMSG, PING, PONG, +OK, -ERR). Used by tests and tools.
    - ``LEAF``: the hub on a leafnode link (INFO, CONNECT, LS+, LS-, LMSG,
      HMSG with queue lists, PING, PONG, +OK, -ERR).
    - ``INTERNAL``: the router <-> uplink data link over ``router.sock``:
      leaf verbs with the local account as first argument (DESIGN §2).
    - ``ROUTE``: another node of a NATS cluster (INFO, CONNECT, RS+, RS-,
      LS+, LS-, RMSG, HMSG, LMSG with accounts, PING, PONG, +OK, -ERR;
      ``_route_events``).
    """

    CLIENT = "client"
    SERVER = "server"
    LEAF = "leaf"
    INTERNAL = "internal"
    ROUTE = "route"
