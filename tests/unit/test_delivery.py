"""``leafnode.delivery``: the per-message loop over the plain subscriptions a match returned.

Runs on the pure module and, in the compiled pass, on the mypyc-compiled one:
no echo to the publisher that turned it off, the permission filter, a sink
or ``send_msg``, and the ``UNSUB`` maximum.
"""

from __future__ import annotations

import trio.testing

from leafnode.delivery import Subscription, deliver, deliver_plain
from leafnode.link import Flusher, Outbound, OutboundPolicy
from leafnode.proto import MsgSink, encode_msg


class _Client:
    def __init__(self, *, echo: bool = True) -> None:
        self.echo = echo
        self.got: list[tuple[bytes, bytes, bytes | None, int, bytes]] = []
        self.unsubscribed: list[Subscription] = []

    def send_msg(
        self, subject: bytes, sid: bytes, reply: bytes | None, hdr_len: int, data: bytes
    ) -> None:
        self.got.append((subject, sid, reply, hdr_len, data))

    def auto_unsubscribed(self, sub: Subscription) -> None:
        self.unsubscribed.append(sub)


def test_each_plain_subscription_that_may_receive_gets_it() -> None:
    origin = _Client(echo=False)
    other = _Client()
    subs = (
        Subscription(origin, b"a.*", None, b"1"),  # the publisher, echo off: skipped
        Subscription(other, b"a.*", None, b"2"),
        Subscription(other, b"a.b", None, b"3", deliver_filter=lambda s: s != b"a.b"),
        Subscription(other, b">", None, b"4"),
    )
    assert deliver_plain(subs, origin, b"a.b", b"r", 0, b"x") == 2
    assert origin.got == []
    assert other.got == [(b"a.b", b"2", b"r", 0, b"x"), (b"a.b", b"4", b"r", 0, b"x")]
    # From elsewhere (no origin), the publisher's subscription gets it too.
    assert deliver_plain(subs[:1], None, b"a.b", None, 0, b"y") == 1
    assert origin.got == [(b"a.b", b"1", None, 0, b"y")]


def test_a_sink_takes_the_message_instead_of_send_msg() -> None:
    client = _Client()
    stream, _peer = trio.testing.memory_stream_pair()
    outbound = Outbound(stream, Flusher(), OutboundPolicy(max_pending=1 << 20))
    sink = MsgSink(outbound)
    sub = Subscription(client, b"a", None, b"7", sink=sink)
    assert deliver_plain((sub,), None, b"a", None, 0, b"hi") == 1
    deliver(sub, b"a", b"r", 0, b"yo")
    assert client.got == []
    assert b"".join(outbound.out) == encode_msg(b"a", b"7", None, b"hi") + encode_msg(
        b"a", b"7", b"r", b"yo"
    )


def test_the_unsub_maximum_unsubscribes_on_the_last_message() -> None:
    client = _Client()
    sub = Subscription(client, b"a", None, b"1")
    sub.max_msgs = 2
    deliver_plain((sub,), None, b"a", None, 0, b"1")
    assert client.unsubscribed == []
    deliver(sub, b"a", None, 0, b"2")
    assert client.unsubscribed == [sub]
    assert sub.delivered == 2
