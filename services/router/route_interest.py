"""Interest the other nodes of the cluster announced over routes (DESIGN §9).

Theory of operation (nats-server ``server/route.go`` processRemoteSub,
``sublist.go``): a peer announces its clients' interest per account with
``RS+ <acc> <subject> [<queue> <weight>]`` and withdraws it with ``RS-``,
keyed, as nats-server keys it, by the route connection, the subject and
the queue group. A plain key is there or not; a queue key carries the
number of members the peer has (its weight), replaced by every new ``RS+``.
``LS+``/``LS-`` (a leaf's interest behind the peer, with its origin
cluster) are kept the same way under their own key, as nats-server keeps
them apart from ``RS+``.

``RouteInterest`` holds one account's table in a sublist, so a publish asks
"which routes want this?" with one match: ``entries`` empty means the
cluster has no interest at all in the account and the routing path skips
everything here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from leafnode.proto import RMSG_FRAME, encode_leaf_route, encode_rhmsg, encode_rlmsg
from leafnode.sublist import Sublist

if TYPE_CHECKING:
    from collections.abc import Sequence

    from leafnode.link import Outbound

__all__ = ["RouteInterest", "RouteSub", "RouteTarget", "send_routed", "send_routed_from_leaf"]


class RouteTarget(Protocol):
    """A route connection as routing writes to it (``route_conn.RouteConnection``)."""

    outbound: Outbound
    # Whether lines leave the account out (a route dedicated to one account).
    pinned: bool
    # Whether the peer reads LS+/LMSG with a leaf cluster's name (its INFO's lnoc).
    lnoc: bool
    out_msgs: int
    out_bytes: int


class RouteSub:
    """One key of a peer's interest: a subject, perhaps a queue group and its weight."""

    __slots__ = ("conn", "origin", "queue", "subject", "weight")

    def __init__(
        self,
        conn: RouteTarget,
        origin: bytes | None,
        subject: bytes,
        queue: bytes | None,
        weight: int,
    ) -> None:
        self.conn = conn
        self.origin = origin
        self.subject = subject
        self.queue = queue
        self.weight = weight

    def __repr__(self) -> str:
        return f"RouteSub({self.subject!r}, {self.queue!r}, {self.weight}, origin={self.origin!r})"


_Key = tuple[RouteTarget, bytes | None, bytes, bytes | None]


class RouteInterest:
    """One account's interest from every route, keyed as nats-server keys it."""

    __slots__ = ("by_key", "entries", "sublist")

    def __init__(self) -> None:
        self.entries: dict[_Key, RouteSub] = {}
        self.sublist: Sublist[RouteSub] = Sublist()
        # (subject, queue) -> its entries, from every route and origin.
        self.by_key: dict[tuple[bytes, bytes | None], dict[_Key, RouteSub]] = {}

    def add(
        self,
        conn: RouteTarget,
        origin: bytes | None,
        subject: bytes,
        queue: bytes | None,
        weight: int | None,
    ) -> None:
        key = (conn, origin, subject, queue)
        entry = self.entries.get(key)
        if entry is not None:
            entry.weight = weight or 1
            return
        entry = RouteSub(conn, origin, subject, queue, weight or 1)
        self.sublist.insert(entry)
        self.entries[key] = entry
        self.by_key.setdefault((subject, queue), {})[key] = entry

    def remove(
        self, conn: RouteTarget, origin: bytes | None, subject: bytes, queue: bytes | None
    ) -> None:
        key = (conn, origin, subject, queue)
        entry = self.entries.pop(key, None)
        if entry is not None:
            self.sublist.remove(entry)
            self._unindex(key)

    def _unindex(self, key: _Key) -> None:
        pair = (key[2], key[3])
        entries = self.by_key.get(pair)
        if entries is not None:
            entries.pop(key, None)
            if not entries:
                del self.by_key[pair]

    def drop_route(self, conn: RouteTarget) -> list[tuple[bytes, bytes | None]]:
        """Forget everything ``conn`` announced (it closed); returns its (subject, queue) keys."""
        gone = [key for key in self.entries if key[0] is conn]
        for key in gone:
            self.sublist.remove(self.entries.pop(key))
            self._unindex(key)
        return [(key[2], key[3]) for key in gone]

    def weight_for(self, subject: bytes, queue: bytes | None, cluster: bytes) -> int:
        """The cluster's interest in a key as a leaf of ``cluster`` is told it.

        Interest a leaf cluster announced (``LS+``) is never told to a leaf of
        that cluster (nats-server's leaf smap); plain: 1 or 0, queue: the
        weights' sum.
        """
        entries = self.by_key.get((subject, queue))
        if not entries:
            return 0
        total = 0
        for entry in entries.values():
            if cluster and entry.origin == cluster:
                continue
            if queue is None:
                return 1
            total += entry.weight
        return total

    def count(self, conn: RouteTarget) -> int:
        """How many keys ``conn`` announced (``/routez`` ``subscriptions``)."""
        return sum(1 for key in self.entries if key[0] is conn)

    def subjects(self, conn: RouteTarget) -> list[str]:
        """``conn``'s keys as ``/routez?subs=1`` lists them."""
        return [
            (e.subject if e.queue is None else e.subject + b" " + e.queue).decode(errors="replace")
            for key, e in self.entries.items()
            if key[0] is conn
        ]


def send_routed_from_leaf(
    conn: RouteTarget,
    account: bytes,
    cluster: bytes,
    subject: bytes,
    reply: bytes | None,
    queues: Sequence[bytes],
    hdr_len: int,
    data: bytes,
) -> None:
    """A downstream leaf's message on ``conn``: ``LMSG <cluster>`` when the peer reads it.

    nats-server sends a message from a leaf that named a cluster as ``LMSG
    <origin> ...`` (always with a header length) to a peer that said
    ``lnoc``, so the peer never gives it to a leaf of that cluster
    (leaforigin.py); else as any routed message.
    """
    if not cluster or not conn.lnoc:
        send_routed(conn, account, subject, reply, queues, hdr_len, data)
        return
    frame = encode_rlmsg(
        cluster, None if conn.pinned else account, subject, reply, queues, hdr_len, data
    )
    conn.out_msgs += 1
    conn.out_bytes += len(data)
    conn.outbound.write(frame)


def send_routed(
    conn: RouteTarget,
    account: bytes,
    subject: bytes,
    reply: bytes | None,
    queues: Sequence[bytes],
    hdr_len: int,
    data: bytes,
) -> None:
    """Queue one ``RMSG``/``HMSG`` of ``account`` on ``conn`` (routing path)."""
    acc = b"" if conn.pinned else account + b" "
    if hdr_len:
        frame = encode_rhmsg(
            None if conn.pinned else account, subject, reply, queues, hdr_len, data
        )
    elif reply is None and not queues:
        frame = RMSG_FRAME % (acc, subject, len(data), data)
    else:
        frame = RMSG_FRAME % (acc, encode_leaf_route(subject, reply, queues), len(data), data)
    conn.out_msgs += 1
    conn.out_bytes += len(data)
    # Outbound.write, inlined: this runs once per routed message.
    outbound = conn.outbound
    outbound.out.append(frame)
    outbound.pending += len(frame)
    if outbound.pending > outbound.max_pending or not outbound.dirty:
        outbound.queued()
