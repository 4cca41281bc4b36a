"""Accounts, subscriptions, and the decision where each message goes (DESIGN §3).

Every client belongs to exactly one account; an account has its own subject
trie, so accounts are fully isolated. A message published in an account goes
to:

1. every matching plain subscription of that account (each at most once),
2. one member of each matching queue group, local members first,
3. the hub, over the data link, when the hub has matching interest: plain
   interest gets the message with no queue list; a hub queue group is named in
   the ``LMSG`` only when the site has no local member of that group
   (leafnode-protocol.md §4.6: a real leaf prefers its own members).

A message that came *from* the hub goes to local plain subscribers and to one
local member of each queue group the hub named, and never back to the hub.

The functions here are synchronous: delivering only appends bytes to the
target connection's outbound buffer (``Outbound.write``).
"""

from __future__ import annotations

from random import randrange
from typing import TYPE_CHECKING, Protocol

from leafnode.delivery import Subscription, deliver, deliver_plain
from leafnode.sublist import Sublist

from .interest import HubInterest, LocalInterest
from .leaforigin import OriginInterest
from .route_interest import RouteInterest, send_routed

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .buffering import BufferRule, StoreLink
    from .route_interest import RouteSub, RouteTarget

__all__ = [
    "Account",
    "Delivery",
    "LeafFanout",
    "Subscription",
    "route_from_hub",
    "route_local",
    "route_pub",
]


class Delivery(Protocol):
    """What a subscription delivers to: a client connection."""

    echo: bool
    verbose: bool
    buffer_batch: int

    def send_ok(self) -> None: ...

    def send_error(self, text: str) -> None: ...

    def send_pong(self) -> None: ...

    def send_msg(
        self, subject: bytes, sid: bytes, reply: bytes | None, hdr_len: int, data: bytes
    ) -> None: ...

    def auto_unsubscribed(self, sub: Subscription) -> None: ...


class InternalDelivery:
    """A ``Delivery`` inside the router (a service import's hook, the
    ``$SYS`` services): it has no connection, so it sends no ``+OK``,
    ``-ERR`` or ``PONG``; subclasses say what a delivered message does."""

    echo = True
    verbose = False
    buffer_batch = 0

    def send_ok(self) -> None:
        pass

    def send_error(self, text: str) -> None:
        pass

    def send_pong(self) -> None:
        pass

    def send_msg(
        self, subject: bytes, sid: bytes, reply: bytes | None, hdr_len: int, data: bytes
    ) -> None:
        raise NotImplementedError

    def auto_unsubscribed(self, sub: Subscription) -> None:
        pass


class HubSink(Protocol):
    """Where hub-bound lines go: the data link to the uplink."""

    def write(self, data: bytes) -> None:
        """Queue a control line (interest)."""

    def write_msg(
        self,
        account: bytes,
        subject: bytes,
        reply: bytes | None,
        queues: Sequence[bytes],
        hdr_len: int,
        data: bytes,
    ) -> None:
        """Queue a message for the hub, in whatever form the uplink reads."""


class LeafFanout(Protocol):
    """The downstream leafs of an account (``leafinterest.AccountLeafs``), as routing sees them."""

    def route(
        self,
        origin: object,
        subject: bytes,
        reply: bytes | None,
        hdr_len: int,
        data: bytes,
        served: set[bytes],
        named: tuple[bytes, ...] | None,
        cluster: bytes = b"",
    ) -> int: ...

    def refresh(self, subject: bytes, queue: bytes | None, skip: object = None) -> None: ...


class RouteSink(Protocol):
    """Where an account's interest changes go to the cluster (``cluster.Cluster``)."""

    def interest_changed(self, account: Account, subject: bytes, queue: bytes | None) -> None:
        """The local count of ``(subject, queue)`` changed: tell the peers."""

    def leaf_interest_changed(
        self, account: Account, origin: bytes, subject: bytes, queue: bytes | None, old: int
    ) -> None:
        """Leaf cluster ``origin``'s count of a key changed from ``old`` (leaforigin.py)."""


class Account:
    """One account: its subscriptions, its local interest, the hub's interest."""

    __slots__ = (
        "buffer_rules",
        "hub",
        "hub_sink",
        "interest",
        "lds",
        "leafs",
        "name",
        "name_bytes",
        "origins",
        "route_sink",
        "routes",
        "store_link",
        "sublist",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.name_bytes = name.encode()
        self.sublist: Sublist[Subscription] = Sublist()
        self.interest = LocalInterest(self.name_bytes)
        self.hub = HubInterest()
        # Set while an uplink is attached; interest changes and hub-bound
        # messages are written there.
        self.hub_sink: HubSink | None = None
        # Subjects whose hub-bound messages are stored (buffering.py), if any.
        self.buffer_rules: Sublist[BufferRule] | None = None
        self.store_link: StoreLink | None = None
        # Accepted downstream leafs bound here (leafconn.py), once one is; and
        # the loop-detection subject they and the hubs are told (leafinterest.py).
        self.leafs: LeafFanout | None = None
        self.lds = b""
        # The cluster's interest in this account, and where local interest
        # changes go to it (None: no cluster).
        self.routes = RouteInterest()
        self.route_sink: RouteSink | None = None
        # The part of ``interest`` that leafs naming a cluster hold (leaforigin.py).
        self.origins = OriginInterest()

    def local_count(self, subject: bytes, queue: bytes | None) -> int:
        """A key's count as a route's ``RS+`` says it: leaf clusters' shares left out."""
        return self.interest.count(subject, queue) - self.origins.share(subject, queue)

    def local_interest_changed(self, subject: bytes, queue: bytes | None, delta: int) -> None:
        """Tell the routes when the ``RS+`` count of a key changed as they see it.

        A plain key when it comes (0 -> 1) or goes (1 -> 0), a queue key on
        every change (its weight), as nats-server's route sub counting.
        """
        if self.route_sink is None or not delta:
            return
        if queue is not None or self.local_count(subject, None) == (1 if delta > 0 else 0):
            self.route_sink.interest_changed(self, subject, queue)

    def add_subscription(self, sub: Subscription) -> None:
        self.sublist.insert(sub)
        line = self.interest.add(sub.subject, sub.queue)
        if line is not None and self.hub_sink is not None:
            self.hub_sink.write(line)
        self.local_interest_changed(sub.subject, sub.queue, 1)
        if self.leafs is not None:
            self.leafs.refresh(sub.subject, sub.queue)

    def remove_subscription(self, sub: Subscription) -> bool:
        if not self.sublist.remove(sub):
            return False
        line = self.interest.remove(sub.subject, sub.queue)
        if line is not None and self.hub_sink is not None:
            self.hub_sink.write(line)
        self.local_interest_changed(sub.subject, sub.queue, -1)
        if self.leafs is not None:
            self.leafs.refresh(sub.subject, sub.queue)
        return True


# One chosen subscription (a queue group's member): leafnode.delivery's.
_deliver = deliver


def _pick(
    members: tuple[Subscription, ...], origin: Delivery | None, subject: bytes
) -> Subscription | None:
    """One member of a queue group: random, skipping ones that may not receive it."""
    n = len(members)
    start = randrange(n) if n > 1 else 0
    for i in range(n):
        sub = members[(start + i) % n]
        if sub.client is origin and not origin.echo:
            continue
        if sub.deliver_filter is not None and not sub.deliver_filter(subject):
            continue
        return sub
    return None


def route_local(
    origin: Delivery,
    account: Account,
    subject: bytes,
    reply: bytes | None,
    hdr_len: int,
    data: bytes,
) -> int:
    """Route a message published by a local client. Returns how many got it.

    The hub counts as one recipient when the message was sent to it.
    """
    return route_pub(None, origin, account, subject, reply, hdr_len, data)


def route_pub(
    no_responders: Callable[[bytes, bytes], object] | None,
    origin: Delivery,
    account: Account,
    subject: bytes,
    reply: bytes | None,
    hdr_len: int,
    data: bytes,
) -> int:
    """``route_local``, and ``no_responders(subject, reply)`` when a request reached nobody.

    The arguments in this order so that a client binds the first three once
    (``functools.partial``) and its parser calls the rest per PUB.
    """
    result = account.sublist.match(subject)
    psubs = result.psubs
    delivered = deliver_plain(psubs, origin, subject, reply, hdr_len, data) if psubs else 0
    local_groups: set[bytes] | None = None
    if account.routes.entries:
        local_groups, sent = _route_cluster(
            origin, account, result.qsubs, subject, reply, hdr_len, data
        )
        delivered += sent
    elif result.qsubs:
        local_groups = set()
        for members in result.qsubs:
            chosen = _pick(members, origin, subject)
            if chosen is not None:
                local_groups.add(members[0].queue or b"")
                _deliver(chosen, subject, reply, hdr_len, data)
                delivered += 1
    if account.leafs is not None:
        # Downstream leafs (leafinterest.py): groups served here are not the hub's.
        if local_groups is None:
            local_groups = set()
        delivered += account.leafs.route(origin, subject, reply, hdr_len, data, local_groups, None)
    hub_sink = account.hub_sink
    if hub_sink is not None and account.hub.entries:
        hub = account.hub.sublist.match(subject)
        if hub.qsubs:
            queues = tuple(
                name
                for group in hub.qsubs
                if (name := group[0].queue or b"")
                and (local_groups is None or name not in local_groups)
            )
        else:
            queues = ()
        if hub.psubs or queues:
            hub_sink.write_msg(account.name_bytes, subject, reply, queues, hdr_len, data)
            delivered += 1
    rules = account.buffer_rules
    if rules is not None and account.store_link is not None:
        buffered = rules.match(subject).psubs
        if buffered:
            got = tuple(q.decode() for q in local_groups) if local_groups else ()
            account.store_link.append(origin, buffered, subject, reply, hdr_len, data, got)
            delivered += 1
    if not delivered and reply is not None and no_responders is not None:
        no_responders(subject, reply)
    return delivered


def _route_cluster(
    origin: Delivery,
    account: Account,
    local_qsubs: tuple[tuple[Subscription, ...], ...],
    subject: bytes,
    reply: bytes | None,
    hdr_len: int,
    data: bytes,
    done: frozenset[bytes] = frozenset(),
) -> tuple[set[bytes], int]:
    """Queue groups and routes, for a local publish when peers have interest.

    As nats-server's processMsgResults for a client's message: every route
    with plain interest gets one ``RMSG``; each queue group gets the message
    once in the whole cluster, its member drawn at random among the local
    members and the peers' weights (a peer with weight 3 counts as three
    members), and a peer drawn is named in that route's ``RMSG`` queue list.
    Returns the groups served (the hub is not asked for them) and how many
    deliveries were made (each route counts once). ``done``: groups already
    served otherwise (a traced message's local members, msgtrace.py).
    """
    served: set[bytes] = set()
    delivered = 0
    remote = account.routes.sublist.match(subject)
    if not local_qsubs and not remote.qsubs:
        # Plain interest only (the common case): one RMSG per route.
        psubs = remote.psubs
        if len(psubs) == 1:
            send_routed(psubs[0].conn, account.name_bytes, subject, reply, (), hdr_len, data)
            return served, 1
        sent: list[RouteTarget] = []
        for rsub in psubs:
            if rsub.conn not in sent:
                sent.append(rsub.conn)
                send_routed(rsub.conn, account.name_bytes, subject, reply, (), hdr_len, data)
        return served, len(sent)
    targets: dict[RouteTarget, list[bytes]] = {}
    for rsub in remote.psubs:
        targets.setdefault(rsub.conn, [])
    remote_groups: dict[bytes, tuple[RouteSub, ...]] = {}
    for group in remote.qsubs:
        if (name := group[0].queue or b"") not in done:
            remote_groups[name] = group
    for members in local_qsubs:
        name = members[0].queue or b""
        peers = remote_groups.pop(name, ())
        weight = sum(p.weight for p in peers)
        if not weight or randrange(len(members) + weight) < len(members):
            chosen = _pick(members, origin, subject)
            if chosen is not None:
                served.add(name)
                _deliver(chosen, subject, reply, hdr_len, data)
                delivered += 1
                continue
        if weight:
            served.add(name)
            targets.setdefault(_draw(peers, weight).conn, []).append(name)
    for name, peers in remote_groups.items():
        served.add(name)
        targets.setdefault(_draw(peers, sum(p.weight for p in peers)).conn, []).append(name)
    name_bytes = account.name_bytes
    for conn, queues in targets.items():
        send_routed(conn, name_bytes, subject, reply, queues, hdr_len, data)
        delivered += 1
    return served, delivered


def _draw(peers: tuple[RouteSub, ...], weight: int) -> RouteSub:
    """One peer's queue interest, drawn by weight."""
    at = randrange(weight)
    for peer in peers:
        at -= peer.weight
        if at < 0:
            return peer
    return peers[-1]


def route_from_hub(
    account: Account,
    subject: bytes,
    reply: bytes | None,
    queues: tuple[bytes, ...],
    hdr_len: int,
    data: bytes,
    leaf_origin: bytes = b"",
) -> int:
    """Deliver a message the hub sent: plain subscribers, plus one member per named group.

    ``leaf_origin``: the leaf cluster a routed message came from (``LMSG``),
    whose leafs here do not get it (leaforigin.py).
    """
    result = account.sublist.match(subject)
    psubs = result.psubs
    delivered = deliver_plain(psubs, None, subject, reply, hdr_len, data) if psubs else 0
    served: set[bytes] | None = None
    if queues and result.qsubs:
        served = set()
        for members in result.qsubs:
            if members[0].queue in queues:
                chosen = _pick(members, None, subject)
                if chosen is not None:
                    _deliver(chosen, subject, reply, hdr_len, data)
                    delivered += 1
                    served.add(members[0].queue or b"")
    if account.leafs is not None:
        # Downstream leafs: plain interest, and named groups nobody here took.
        delivered += account.leafs.route(
            None, subject, reply, hdr_len, data, served or set(), queues, leaf_origin
        )
    return delivered
