"""A downstream leaf cluster's interest on the routes, without sockets (router/leaforigin.py).

Real ``routing.Account`` and ``leafinterest.AccountLeafs``; the route sink
records what the cluster would be told (the wire is
tests/e2e/test_cluster_leaf_origin.py).
"""

from __future__ import annotations

from services.router.leafinterest import AccountLeafs, Key, LeafSub
from services.router.routing import Account, InternalDelivery, Subscription, route_from_hub


class Leaf:
    """A LeafPeer of cluster ``cluster``, recording the messages it is sent."""

    def __init__(self, cluster: bytes) -> None:
        self.cluster = cluster
        self.own: dict[Key, LeafSub] = {}
        self.sent: dict[Key, int] = {}
        self.msgs: list[bytes] = []

    def send_interest(self, line: bytes) -> None:
        pass

    def send_lmsg(
        self, subject: bytes, reply: bytes | None, queues: list[bytes], hdr_len: int, data: bytes
    ) -> None:
        self.msgs.append(data)


class Sink:
    """The cluster as a ``RouteSink``: (kind, origin, subject, queue, count now)."""

    def __init__(self) -> None:
        self.told: list[tuple[str, bytes, bytes, bytes | None, int]] = []

    def interest_changed(self, account: Account, subject: bytes, queue: bytes | None) -> None:
        self.told.append(("RS", b"", subject, queue, account.local_count(subject, queue)))

    def leaf_interest_changed(
        self, account: Account, origin: bytes, subject: bytes, queue: bytes | None, old: int
    ) -> None:
        now = account.origins.counts.get((origin, subject, queue), 0)
        self.told.append(("LS", origin, subject, queue, now))


def _account() -> tuple[Account, AccountLeafs, Sink]:
    account = Account("$G")
    leafs = AccountLeafs(account)
    account.leafs = leafs
    sink = Sink()
    account.route_sink = sink
    return account, leafs, sink


def test_a_leaf_clusters_interest_is_its_own_not_the_nodes() -> None:
    account, leafs, sink = _account()
    l1, l2 = Leaf(b"LC"), Leaf(b"LC")
    leafs.attach(l1)
    leafs.attach(l2)
    leafs.change(l1, b"a", None, 1, 1)
    leafs.change(l2, b"a", None, 1, 1)
    leafs.change(l1, b"q", b"g", 2, 2)
    assert account.interest.count(b"a", None) == 2  # the hub sees it as ours
    assert account.local_count(b"a", None) == 0  # the routes do not
    assert sink.told == [
        ("LS", b"LC", b"a", None, 1),
        ("LS", b"LC", b"a", None, 2),
        ("LS", b"LC", b"q", b"g", 2),
    ]
    sink.told.clear()
    # A client on the same subject: the node's own interest comes (0 -> 1) and goes.
    sub = Subscription(InternalDelivery(), b"a", None, b"1")
    account.add_subscription(sub)
    account.remove_subscription(sub)
    assert sink.told == [("RS", b"", b"a", None, 1), ("RS", b"", b"a", None, 0)]
    sink.told.clear()
    leafs.detach(l1)
    assert ("LS", b"LC", b"q", b"g", 0) in sink.told
    assert account.origins.share(b"a", None) == 1


def test_a_leaf_without_a_cluster_name_is_the_nodes_interest() -> None:
    account, leafs, sink = _account()
    leaf = Leaf(b"")
    leafs.attach(leaf)
    leafs.change(leaf, b"a", None, 1, 1)
    assert sink.told == [("RS", b"", b"a", None, 1)]
    assert not account.origins.counts


def test_a_routed_message_from_a_leaf_cluster_skips_its_leafs() -> None:
    account, leafs, _ = _account()
    same, other = Leaf(b"LC"), Leaf(b"OTHER")
    for leaf in (same, other):
        leafs.attach(leaf)
        leafs.change(leaf, b"a", None, 1, 1)
        leafs.change(leaf, b"q", b"g", 1, 1)
    assert route_from_hub(account, b"a", None, (), 0, b"m1", b"LC") == 1
    assert route_from_hub(account, b"a", None, (), 0, b"m2") == 2
    for i in range(20):
        route_from_hub(account, b"q", None, (b"g",), 0, b"q%d" % i, b"LC")
    assert same.msgs == [b"m2"]
    assert other.msgs[:2] == [b"m1", b"m2"]
    assert len(other.msgs) == 22
