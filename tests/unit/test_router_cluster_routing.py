"""Routing across the cluster without sockets: services/router/routing.py's route part.

A local publish sends one ``RMSG`` per route with matching plain interest,
and each queue group gets the message once in the whole cluster: its member
drawn among the local members and the peers' weights, a peer drawn named in
that route's queue list, the hub not named for a group a route served. The
accounts tell the cluster (``route_sink``) of every change it must announce.
"""

from __future__ import annotations

import pytest

from leafnode.proto import Kind, Parser, RHMsg, RMsg
from services.router.routing import Account, Subscription, route_local


class Client:
    """A routing.Delivery that records what it is sent."""

    echo = True
    verbose = False
    buffer_batch = 0

    def __init__(self) -> None:
        self.got: list[bytes] = []

    def send_ok(self) -> None:
        pass

    def send_error(self, text: str) -> None:
        pass

    def send_pong(self) -> None:
        pass

    def send_msg(
        self, subject: bytes, sid: bytes, reply: bytes | None, hdr_len: int, data: bytes
    ) -> None:
        self.got.append(data)

    def auto_unsubscribed(self, sub: Subscription) -> None:
        pass


class Sink:
    """The part of an ``Outbound`` routing writes to."""

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.pending = 0
        self.max_pending = 1 << 30
        self.dirty = True

    def queued(self) -> None:
        pass


class Route:
    """A ``RouteTarget``: what routing writes, parsed back as a peer would."""

    def __init__(self, *, pinned: bool = False) -> None:
        self.outbound = Sink()
        self.pinned = pinned
        self.lnoc = True
        self.out_msgs = self.out_bytes = 0

    def messages(self, account: bytes = b"$G") -> list[RMsg | RHMsg]:
        parser = Parser(Kind.ROUTE)
        if self.pinned:
            parser.route_account = account
        parser.feed(b"".join(self.outbound.out))
        found: list[RMsg | RHMsg] = []
        while (event := parser.next_event()) is not None:
            assert isinstance(event, RMsg | RHMsg)
            found.append(event)
        return found


def _publisher() -> Client:
    return Client()


def test_one_rmsg_per_route_with_plain_interest() -> None:
    account = Account("$G")
    local, a, b = Client(), Route(), Route()
    account.sublist.insert(Subscription(local, b"foo.bar", None, b"1"))
    account.routes.add(a, None, b"foo.*", None, None)  # type: ignore[arg-type]
    account.routes.add(a, None, b"foo.>", None, None)  # type: ignore[arg-type]
    account.routes.add(b, None, b"foo.bar", None, None)  # type: ignore[arg-type]
    assert route_local(_publisher(), account, b"foo.bar", b"r.1", 0, b"hi") == 3
    assert local.got == [b"hi"]
    assert a.messages() == [RMsg(b"$G", b"foo.bar", b"r.1", (), b"hi")]
    assert b.messages() == [RMsg(b"$G", b"foo.bar", b"r.1", (), b"hi")]
    assert (a.out_msgs, a.out_bytes) == (1, 2)
    # Headers kept; no interest, nothing sent.
    hdr = b"NATS/1.0\r\nK: v\r\n\r\n"
    route_local(_publisher(), account, b"foo.x", None, len(hdr), hdr + b"h")
    assert a.messages()[-1] == RHMsg(b"$G", b"foo.x", None, (), len(hdr), hdr + b"h")
    assert len(b.messages()) == 1


def test_a_dedicated_route_gets_no_account_token() -> None:
    account = Account("$SYS")
    route = Route(pinned=True)
    account.routes.add(route, None, b"x", None, None)  # type: ignore[arg-type]
    route_local(_publisher(), account, b"x", None, 0, b"p")
    assert route.outbound.out == [b"RMSG x 1\r\np\r\n"]
    assert route.messages(b"$SYS") == [RMsg(b"$SYS", b"x", None, (), b"p")]


@pytest.mark.parametrize(("local_members", "weight"), [(1, 3), (2, 2), (0, 4)])
def test_a_queue_group_draws_among_local_members_and_peer_weights(
    local_members: int, weight: int
) -> None:
    account = Account("$G")
    local, route = Client(), Route()
    for i in range(local_members):
        account.sublist.insert(Subscription(local, b"work", b"q", str(i).encode()))
    account.routes.add(route, None, b"work", b"q", weight)  # type: ignore[arg-type]
    n = 4000
    for i in range(n):
        assert route_local(_publisher(), account, b"work", None, 0, str(i).encode()) == 1
    routed = route.messages()
    assert all(m.queues == (b"q",) for m in routed)
    # Exactly once: every message went to one side only.
    assert sorted([*local.got, *(m.payload for m in routed if isinstance(m, RMsg))]) == sorted(
        str(i).encode() for i in range(n)
    )
    share = len(local.got) / n
    expected = local_members / (local_members + weight)
    assert abs(share - expected) < 0.05, (share, expected)


def test_a_remote_only_group_is_drawn_by_weight_between_routes() -> None:
    account = Account("$G")
    light, heavy = Route(), Route()
    account.routes.add(light, None, b"work", b"q", 1)  # type: ignore[arg-type]
    account.routes.add(heavy, None, b"work", b"q", 3)  # type: ignore[arg-type]
    for _ in range(4000):
        route_local(_publisher(), account, b"work", None, 0, b"x")
    share = len(light.messages()) / 4000
    assert abs(share - 0.25) < 0.05
    assert len(light.messages()) + len(heavy.messages()) == 4000


class Hub:
    """A ``HubSink`` that records the queue groups it is asked to name."""

    def __init__(self) -> None:
        self.msgs: list[tuple[bytes, ...]] = []

    def write(self, data: bytes) -> None:
        pass

    def write_msg(
        self,
        account: bytes,
        subject: bytes,
        reply: bytes | None,
        queues: tuple[bytes, ...],
        hdr_len: int,
        data: bytes,
    ) -> None:
        self.msgs.append(tuple(queues))


def test_the_hub_is_not_named_for_a_group_a_route_served() -> None:
    account = Account("$G")
    hub = Hub()
    account.hub_sink = hub  # type: ignore[assignment]
    account.hub.add(b"work", b"q", 1)
    account.hub.add(b"work", b"other", 1)
    route = Route()
    account.routes.add(route, None, b"work", b"q", 1)  # type: ignore[arg-type]
    route_local(_publisher(), account, b"work", None, 0, b"x")
    assert route.messages() == [RMsg(b"$G", b"work", None, (b"q",), b"x")]
    assert hub.msgs == [(b"other",)]


class Sink2:
    def __init__(self) -> None:
        self.changes: list[tuple[bytes, bytes | None, int]] = []

    def interest_changed(self, account: Account, subject: bytes, queue: bytes | None) -> None:
        self.changes.append((subject, queue, account.interest.count(subject, queue)))

    def leaf_interest_changed(
        self, account: Account, origin: bytes, subject: bytes, queue: bytes | None, old: int
    ) -> None:
        raise AssertionError("no leaf here")


def test_the_cluster_hears_of_each_change_it_must_announce() -> None:
    account = Account("$G")
    sink = Sink2()
    account.route_sink = sink
    c = Client()
    plain = [Subscription(c, b"a", None, str(i).encode()) for i in range(2)]
    queue = [Subscription(c, b"a", b"q", str(i).encode()) for i in range(2, 4)]
    for sub in (*plain, *queue):
        account.add_subscription(sub)
    for sub in (*plain, *queue):
        account.remove_subscription(sub)
    # Plain interest on 0 <-> 1 only; a queue group on every weight change.
    assert sink.changes == [
        (b"a", None, 1),
        (b"a", b"q", 1),
        (b"a", b"q", 2),
        (b"a", None, 0),
        (b"a", b"q", 1),
        (b"a", b"q", 0),
    ]
