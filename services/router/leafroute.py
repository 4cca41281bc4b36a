"""Where a message from a downstream leaf goes (issue 15 point 3; leafnode-protocol.md §4.6).

A downstream leaf's ``LMSG``/``HMSG`` is routed as nats-server routes what a
leaf sends its hub, and as a local publish here otherwise:

1. every matching plain subscription of the account (local clients), every
   other downstream leaf with matching plain interest, and the hub when it
   has plain interest: an ``LMSG`` without a queue list reaches plain
   subscribers only;
2. each queue group the ``LMSG`` names: one local member if there is one,
   else one member on another downstream leaf, else the hub (named in the
   hub-bound ``LMSG``) when it has the group: nearest first at every tier;
3. the store, for the account's buffered subjects, exactly as a local
   client's publish (``buffering.StoreLink``): the leaf is the publisher
   whose next ``PING`` is answered once the message is committed;
4. the other nodes of the cluster, before the hub: each route with matching
   plain interest once, and each group the ``LMSG`` names that no nearer
   member took to one peer drawn by weight (never one whose interest is
   the leaf's own cluster's): as ``LMSG <leaf's cluster>`` to a peer that
   reads it, so the peer does not give it back to that cluster
   (leaforigin.py). A group a peer took is not the hub's.

Nothing goes back to the leaf it came from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .route_interest import send_routed_from_leaf
from .routing import _deliver, _draw, _pick

if TYPE_CHECKING:
    from .buffering import BufferOrigin
    from .route_interest import RouteTarget
    from .routing import Account

__all__ = ["route_from_leaf"]


def route_from_leaf(
    origin: BufferOrigin,
    account: Account,
    subject: bytes,
    reply: bytes | None,
    queues: tuple[bytes, ...],
    hdr_len: int,
    data: bytes,
    cluster: bytes = b"",
) -> int:
    """Route one message from the downstream leaf ``origin``; returns how many got it.

    ``cluster``: the cluster the leaf's CONNECT named (b"": none), its origin on the routes.
    """
    delivered = 0
    result = account.sublist.match(subject)
    for sub in result.psubs:
        if sub.deliver_filter is not None and not sub.deliver_filter(subject):
            continue
        _deliver(sub, subject, reply, hdr_len, data)
        delivered += 1
    served: set[bytes] = set()
    if queues and result.qsubs:
        for members in result.qsubs:
            name = members[0].queue or b""
            if name in queues:
                chosen = _pick(members, None, subject)
                if chosen is not None:
                    _deliver(chosen, subject, reply, hdr_len, data)
                    served.add(name)
                    delivered += 1
    if account.leafs is not None:
        delivered += account.leafs.route(origin, subject, reply, hdr_len, data, served, queues)
    if account.routes.entries:
        delivered += _to_routes(account, cluster, subject, reply, queues, served, hdr_len, data)
    sink = account.hub_sink
    if sink is not None and account.hub.entries:
        hub = account.hub.sublist.match(subject)
        hub_queues: tuple[bytes, ...] = ()
        if queues and hub.qsubs:
            hub_queues = tuple(
                name
                for group in hub.qsubs
                if (name := group[0].queue or b"") in queues and name not in served
            )
        if hub.psubs or hub_queues:
            sink.write_msg(account.name_bytes, subject, reply, hub_queues, hdr_len, data)
            delivered += 1
    rules = account.buffer_rules
    if rules is not None and account.store_link is not None:
        buffered = rules.match(subject).psubs
        if buffered:
            got = tuple(q.decode() for q in served)
            account.store_link.append(origin, buffered, subject, reply, hdr_len, data, got)
            delivered += 1
    return delivered


def _to_routes(
    account: Account,
    cluster: bytes,
    subject: bytes,
    reply: bytes | None,
    queues: tuple[bytes, ...],
    served: set[bytes],
    hdr_len: int,
    data: bytes,
) -> int:
    """Point 4 of the module doc; returns how many routes got it."""
    remote = account.routes.sublist.match(subject)
    targets: dict[RouteTarget, list[bytes]] = {}
    for rsub in remote.psubs:
        targets.setdefault(rsub.conn, [])
    for group in remote.qsubs:
        name = group[0].queue or b""
        if name not in queues or name in served:
            continue
        peers = tuple(p for p in group if not (cluster and p.origin == cluster))
        if peers:
            served.add(name)
            targets.setdefault(_draw(peers, sum(p.weight for p in peers)).conn, []).append(name)
    for conn, names in targets.items():
        send_routed_from_leaf(
            conn, account.name_bytes, cluster, subject, reply, names, hdr_len, data
        )
    return len(targets)
