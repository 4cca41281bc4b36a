"""Downstream leafs in an account, without sockets (services/router/leafinterest.py, leafroute.py).

Real ``routing.Account`` objects; the leafs and the hub sink are recorders of
what the router would write to them (our own internal protocols).
"""

from __future__ import annotations

from collections.abc import Sequence

from leafnode.sublist import Sublist
from services.router.buffering import BufferRule
from services.router.leafinterest import AccountLeafs, Key, LeafSub
from services.router.leafroute import route_from_leaf
from services.router.routing import Account, InternalDelivery, Subscription, route_local


class Leaf:
    """A LeafPeer recording its interest lines and messages."""

    def __init__(self) -> None:
        self.own: dict[Key, LeafSub] = {}
        self.sent: dict[Key, int] = {}
        self.cluster = b""
        self.lines: list[bytes] = []
        self.msgs: list[tuple[bytes, tuple[bytes, ...]]] = []
        self.buffer_batch = 0
        self.verbose = False

    def send_interest(self, line: bytes) -> None:
        self.lines.append(line)

    def send_lmsg(
        self, subject: bytes, reply: bytes | None, queues: list[bytes], hdr_len: int, data: bytes
    ) -> None:
        self.msgs.append((subject, tuple(queues)))

    def send_ok(self) -> None: ...

    def send_error(self, text: str) -> None: ...

    def send_pong(self) -> None: ...


class Sink:
    """The data link's hub sink, recording."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.msgs: list[tuple[bytes, tuple[bytes, ...]]] = []

    def write(self, data: bytes) -> None:
        self.lines.append(data)

    def write_msg(
        self,
        account: bytes,
        subject: bytes,
        reply: bytes | None,
        queues: Sequence[bytes],
        hdr_len: int,
        data: bytes,
    ) -> None:
        self.msgs.append((subject, tuple(queues)))


class Client(InternalDelivery):
    def __init__(self) -> None:
        self.got: list[bytes] = []

    def send_msg(
        self, subject: bytes, sid: bytes, reply: bytes | None, hdr_len: int, data: bytes
    ) -> None:
        self.got.append(subject)


def _account() -> tuple[Account, AccountLeafs, Sink]:
    account = Account("$G")
    account.lds = b"$LDS.ours"
    leafs = AccountLeafs(account)
    account.leafs = leafs
    sink = Sink()
    account.hub_sink = sink
    return account, leafs, sink


def test_attach_tells_lds_then_everything_the_account_has() -> None:
    account, leafs, _ = _account()
    account.add_subscription(Subscription(Client(), b"local.x", None, b"1"))
    account.hub.add(b"hub.x", None, None)
    account.hub.add(b"hub.q", b"g", 3)
    leaf = Leaf()
    leafs.attach(leaf)
    assert leaf.lines[0] == b"LS+ $LDS.ours\r\n"
    assert set(leaf.lines[1:]) == {b"LS+ local.x\r\n", b"LS+ hub.x\r\n", b"LS+ hub.q g 3\r\n"}


def test_a_leafs_interest_goes_up_once_and_to_the_others_not_back() -> None:
    account, leafs, sink = _account()
    a, b = Leaf(), Leaf()
    leafs.attach(a)
    leafs.attach(b)
    a.lines.clear()
    b.lines.clear()
    leafs.change(a, b"x", None, 1, 1)
    leafs.change(b, b"x", None, 1, 1)
    assert sink.lines == [b"LS+ $G x\r\n"]  # reference-counted for the hub
    assert a.lines == [b"LS+ x\r\n"]  # b's interest; its own was never echoed
    assert b.lines == [b"LS+ x\r\n"]
    leafs.change(a, b"x", None, -1, 0)
    assert sink.lines == [b"LS+ $G x\r\n"]  # b still wants it
    assert a.lines == [b"LS+ x\r\n"]
    assert b.lines == [b"LS+ x\r\n", b"LS- x\r\n"]  # only its own is left
    leafs.detach(b)
    assert sink.lines[-1] == b"LS- $G x\r\n"
    assert account.leafs is leafs
    leafs.detach(a)
    assert account.leafs is None  # routing skips leafs again


def test_queue_weights_add_up_and_each_leaf_is_told_the_others() -> None:
    account, leafs, sink = _account()
    a, b = Leaf(), Leaf()
    leafs.attach(a)
    leafs.attach(b)
    account.add_subscription(Subscription(Client(), b"w", b"g", b"1"))
    leafs.change(a, b"w", b"g", 2, 2)
    assert sink.lines[-1] == b"LS+ $G w g 3\r\n"
    assert a.lines[-1] == b"LS+ w g 1\r\n"  # the local member only
    assert b.lines[-1] == b"LS+ w g 3\r\n"


def test_buffered_subjects_are_interest_for_the_leafs() -> None:
    account, leafs, _ = _account()
    rules: Sublist[BufferRule] = Sublist()
    rules.insert(BufferRule(b"tel.>", "central"))
    account.buffer_rules = rules
    leaf = Leaf()
    leafs.attach(leaf)
    assert b"LS+ tel.>\r\n" in leaf.lines


def test_one_lmsg_per_leaf_and_queue_groups_nearest_first() -> None:
    account, leafs, sink = _account()
    a = Leaf()
    leafs.attach(a)
    leafs.change(a, b"s.>", None, 1, 1)
    leafs.change(a, b"s.*", None, 1, 1)
    leafs.change(a, b"s.x", b"g", 1, 1)
    account.hub.add(b"s.x", b"g", 1)
    account.hub.add(b"s.x", b"h", 1)
    publisher = Client()
    route_local(publisher, account, b"s.x", None, 0, b"m")
    assert a.msgs == [(b"s.x", (b"g",))]  # one LMSG, naming the group it serves
    assert sink.msgs == [(b"s.x", (b"h",))]  # the hub only for the group nobody here has
    member = Client()
    account.add_subscription(Subscription(member, b"s.x", b"g", b"1"))
    a.msgs.clear()
    route_local(publisher, account, b"s.x", None, 0, b"m")
    assert member.got == [b"s.x"]
    assert a.msgs == [(b"s.x", ())]  # plain interest only: the local member won


def test_a_leafs_message_never_comes_back_and_named_groups_only() -> None:
    account, leafs, sink = _account()
    a, b = Leaf(), Leaf()
    leafs.attach(a)
    leafs.attach(b)
    leafs.change(a, b"t", None, 1, 1)
    leafs.change(b, b"t", b"g", 1, 1)
    account.hub.add(b"t", None, None)
    route_from_leaf(a, account, b"t", None, (), 0, b"m")
    assert a.msgs == []  # no echo
    assert b.msgs == []  # its group was not named
    assert sink.msgs == [(b"t", ())]
    route_from_leaf(a, account, b"t", None, (b"g",), 0, b"m")
    assert b.msgs == [(b"t", (b"g",))]
