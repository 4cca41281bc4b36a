"""Downstream leafs in one account: their interest, what they are told, what they are sent.

Theory of operation (issue 15; leafnode-protocol.md §4.5-§4.7)
--------------------------------------------------------------
An accepted leaf (``leafconn.LeafConnection``) is, to the account it is bound
to, one more place where subscribers live, as a leaf connection is to
nats-server's account. ``AccountLeafs`` keeps, per account:

Their interest
    each key a leaf declared (``subject`` or ``subject queue`` with its
    weight, as ``hubside.DownstreamInterest`` keys it) is one ``LeafSub`` in
    the account's leaf sublist, so a message asks "which leafs want this?"
    in one match. The same change goes into the account's ``LocalInterest``
    (a plain key counts one per leaf, a queue key adds its weight), whose
    line the data link carries to the uplink: the hub sees a downstream
    leaf's interest as ours, as nats-server propagates a leaf's interest to
    its own hub. ``$LDS`` subjects travel the same way (loop detection
    across tiers).
What each leaf is told (``LS+``/``LS-``)
    everything the account has, but its own: our clients', the other
    leafs', the hub's (so a hub requester's ``_INBOX`` reaches the tier
    below) and our ``$LDS``. For one key that is the account's local count
    minus the leaf's own share plus the hub's, and one for the account's
    buffered subjects (``buffer { subjects }`` of its remotes): the store
    wants those whether or not the hub is there, so a leaf below sends them
    to us during a hub outage and they are buffered here (point 4);
    ``refresh`` recomputes a key
    for every leaf when any source changes and sends only differences,
    reference-counted like nats-server (plain: ``LS+`` at 0->1, ``LS-`` at
    1->0; queue: ``LS+`` with the new weight on every change, ``LS-`` at 0).
What each leaf is sent
    ``route`` adds the leafs to a message's recipients: each leaf with a
    matching plain key, and one member of each matching queue group that no
    nearer tier served, picked at random in proportion to its weight. A leaf
    gets one ``LMSG`` per message, naming the groups it was picked for; the
    origin leaf gets nothing back (no echo).

Queue groups are served nearest first at every tier: local members, then
downstream leafs, then the hub (``routing.route_local`` passes the groups
it served; the hub is named only for groups nobody here took).
"""

from __future__ import annotations

from random import random
from typing import TYPE_CHECKING, Protocol

from leafnode.proto import encode_lsub, encode_lunsub
from leafnode.sublist import Sublist

if TYPE_CHECKING:
    from .routing import Account

__all__ = ["AccountLeafs", "LeafPeer", "LeafSub"]

Key = tuple[bytes, bytes | None]


class LeafPeer(Protocol):
    """An accepted leaf as its account's table uses it (``leafconn.LeafConnection``)."""

    # The keys it declared, and the weight we last advertised to it per key.
    own: dict[Key, LeafSub]
    sent: dict[Key, int]
    # The cluster its CONNECT named (b"": none), its interest's origin (leaforigin.py).
    cluster: bytes

    def send_interest(self, line: bytes) -> None: ...

    def send_lmsg(
        self,
        subject: bytes,
        reply: bytes | None,
        queues: list[bytes],
        hdr_len: int,
        data: bytes,
    ) -> None: ...


class LeafSub:
    """One key a downstream leaf declared (a member of the account's leaf sublist)."""

    __slots__ = ("leaf", "queue", "subject", "weight")

    def __init__(self, leaf: LeafPeer, subject: bytes, queue: bytes | None, weight: int) -> None:
        self.leaf = leaf
        self.subject = subject
        self.queue = queue
        self.weight = weight

    def __repr__(self) -> str:
        return f"LeafSub({self.subject!r}, {self.queue!r}, {self.weight})"


def _pick(members: tuple[LeafSub, ...], origin: object, cluster: bytes) -> LeafSub | None:
    """One member, at random in proportion to its weight (nats-server 2.10+).

    Never ``origin``'s, nor one of leaf cluster ``cluster`` (when set).
    """
    allowed = [
        sub
        for sub in members
        if sub.leaf is not origin and not (cluster and sub.leaf.cluster == cluster)
    ]
    total = sum(sub.weight for sub in allowed)
    if total <= 0:
        return None
    point = random() * total
    for sub in allowed:
        point -= sub.weight
        if point < 0:
            return sub
    return allowed[-1]


class AccountLeafs:
    """The downstream leafs bound to one account (module doc)."""

    __slots__ = ("account", "leafs", "sublist")

    def __init__(self, account: Account) -> None:
        self.account = account
        self.sublist: Sublist[LeafSub] = Sublist()
        self.leafs: list[LeafPeer] = []

    # ----------------------------------------------------------- membership

    def attach(self, leaf: LeafPeer) -> None:
        """A leaf was bound to the account: tell it our ``$LDS`` and every key we have."""
        self.leafs.append(leaf)
        account = self.account
        leaf.send_interest(encode_lsub(account.lds))
        routed = [pair for pair in account.routes.by_key if pair not in account.hub.entries]
        for key in (*account.interest.keys(), *account.hub.entries, *routed, *self._buffered()):
            self._refresh_one(leaf, key)

    def detach(self, leaf: LeafPeer) -> None:
        """A leaf's link ended: everything it declared goes."""
        if leaf not in self.leafs:
            return
        for key, sub in list(leaf.own.items()):
            self.change(leaf, key[0], key[1], -sub.weight, 0)
        self.leafs.remove(leaf)
        leaf.sent.clear()
        if not self.leafs and self.account.leafs is self:
            # The last one: routing skips the leafs again (the next one
            # bound makes a new table).
            self.account.leafs = None

    # -------------------------------------------------------------- interest

    def change(
        self, leaf: LeafPeer, subject: bytes, queue: bytes | None, delta: int, weight: int
    ) -> None:
        """A leaf's ``LS+``/``LS-`` (``hubside.InterestChange``): apply and propagate."""
        key = (subject, queue)
        sub = leaf.own.get(key)
        if weight <= 0:
            if sub is None:
                return
            del leaf.own[key]
            self.sublist.remove(sub)
        elif sub is None:
            sub = leaf.own[key] = LeafSub(leaf, subject, queue, weight)
            self.sublist.insert(sub)
        else:
            sub.weight = weight
        account = self.account
        line = account.interest.add_weight(subject, queue, delta)
        if line is not None and account.hub_sink is not None:
            account.hub_sink.write(line)
        if leaf.cluster:
            # The routes hear it as the leaf cluster's (leaforigin.py).
            old = account.origins.change(leaf.cluster, subject, queue, delta)
            if account.route_sink is not None:
                account.route_sink.leaf_interest_changed(account, leaf.cluster, subject, queue, old)
        else:
            account.local_interest_changed(subject, queue, delta)
        self.refresh(subject, queue, skip=leaf)

    def refresh(self, subject: bytes, queue: bytes | None, skip: object = None) -> None:
        """One key's count changed somewhere: tell each leaf (but ``skip``) what differs."""
        key = (subject, queue)
        for leaf in self.leafs:
            if leaf is not skip:
                self._refresh_one(leaf, key)

    def _refresh_one(self, leaf: LeafPeer, key: Key) -> None:
        subject, queue = key
        account = self.account
        want = account.interest.count(subject, queue)
        own = leaf.own.get(key)
        if own is not None:
            want -= own.weight
        hub = account.hub.entries.get(key)
        if hub is not None:
            want += hub.weight if queue is not None else 1
        if account.routes.by_key:
            # The other nodes' interest, but what this leaf's own cluster announced.
            want += account.routes.weight_for(subject, queue, leaf.cluster)
        if queue is None and key in self._buffered():
            want += 1
        had = leaf.sent.get(key, 0)
        if queue is None:
            want = 1 if want > 0 else 0
        if want == had:
            return
        if want > 0:
            leaf.sent[key] = want
            leaf.send_interest(encode_lsub(subject, queue, want if queue else None))
        else:
            del leaf.sent[key]
            leaf.send_interest(encode_lunsub(subject, queue))

    def _buffered(self) -> list[Key]:
        """The account's buffered subjects: wanted by the store, whoever else listens."""
        rules = self.account.buffer_rules
        if rules is None:
            return []
        return [(rule.subject, None) for rule in rules.subscribers()]

    # --------------------------------------------------------------- messages

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
    ) -> int:
        """Send a message to the leafs that want it; returns how many got it.

        ``origin`` (a leaf, or None) gets nothing, nor, when ``cluster`` is
        set, a leaf of that cluster (a routed ``LMSG``'s origin). ``served``: the groups a
        nearer tier served; a group picked here is added. ``named``: only
        these groups may be served (a message from the hub or a leaf names
        its groups); None: any (a local publish).
        """
        result = self.sublist.match(subject)
        if not result:
            return 0
        targets: dict[LeafPeer, list[bytes]] = {}
        for sub in result.psubs:
            leaf = sub.leaf
            if leaf is not origin and leaf not in targets:
                if cluster and leaf.cluster == cluster:
                    continue
                targets[leaf] = []
        for members in result.qsubs:
            name = members[0].queue or b""
            if name in served or (named is not None and name not in named):
                continue
            chosen = _pick(members, origin, cluster)
            if chosen is None:
                continue
            served.add(name)
            queues = targets.get(chosen.leaf)
            if queues is None:
                targets[chosen.leaf] = [name]
            else:
                queues.append(name)
        for leaf, queues in targets.items():
            leaf.send_lmsg(subject, reply, queues, hdr_len, data)
        return len(targets)
