"""Downstream leaf clusters' interest as the routes see it: ``LS+ <origin>`` (issue 14).

Theory of operation (nats-server ``server/route.go``
addRouteSubOrUnsubProtoToBuf, ``leafnode.go`` processLeafSub and
processMsgResults; seen on a 2.15.1 route: ``LS+ LC $G leaf.sub``,
``LS+ LC $G leaf.q grp 1``, ``LS- LC $G leaf.sub``):

A subscription of an accepted leaf whose CONNECT named a cluster has that
cluster as its *origin*. A route whose peer said ``lnoc`` in its INFO is
told it as ``LS+ <origin> <account> <subject> [<queue> <weight>]`` and
``LS- <origin> ...`` (``LS-`` without the origin to a peer that did not say
``lnocu``); a peer without ``lnoc`` gets ``RS+``/``RS-`` as for a client.
A message from a route that names an origin (``LMSG <origin> ...``) is never
given to a leaf of that cluster: a leaf cluster attached to several nodes
gets each of its own messages once, over its own routes, not back again
through the hub cluster. A leaf without a cluster name has no origin: its
interest is the node's own (``RS+``).

``OriginInterest`` keeps, per account: for each (origin, subject, queue)
the number of that cluster's leafs with the plain key, or the sum of their
weights for a queue key; and for each (subject, queue) the total of those,
which the account's ``LocalInterest`` counts too (the hub sees a leaf's
interest as ours), so a route's ``RS+`` count is the local count minus it
(``Account.local_count``).
"""

from __future__ import annotations

__all__ = ["OriginInterest", "OriginKey"]

OriginKey = tuple[bytes, bytes, bytes | None]
"""(origin cluster, subject, queue or None)."""


class OriginInterest:
    """One account's interest from leafs that named a cluster (module doc)."""

    __slots__ = ("counts", "shares")

    def __init__(self) -> None:
        self.counts: dict[OriginKey, int] = {}
        self.shares: dict[tuple[bytes, bytes | None], int] = {}

    def change(self, origin: bytes, subject: bytes, queue: bytes | None, delta: int) -> int:
        """Apply a leaf's change of ``delta``; returns the key's count before it."""
        key = (origin, subject, queue)
        old = self.counts.get(key, 0)
        new = max(old + delta, 0)
        if new:
            self.counts[key] = new
        else:
            self.counts.pop(key, None)
        pair = (subject, queue)
        share = self.shares.get(pair, 0) + new - old
        if share > 0:
            self.shares[pair] = share
        else:
            self.shares.pop(pair, None)
        return old

    def share(self, subject: bytes, queue: bytes | None) -> int:
        """How much of the local count of (subject, queue) leafs with an origin hold."""
        return self.shares.get((subject, queue), 0)
