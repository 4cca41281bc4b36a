"""Subscriptions and the loop that delivers one message to the plain ones it matched.

Theory of operation. The router's routing (services/router/routing.py)
decides where a message goes; this module holds what it does for every
plain subscription a match returned, once per message and subscriber: skip
the publisher's own subscriptions when it asked for no echo, skip those
whose permissions deny the subject (``deliver_filter``), queue the message
(``Subscription.sink``, a client's ``MsgSink``, or the delivery's own
``send_msg``), and count a subscription's ``UNSUB`` maximum down.

Both classes are compiled by mypyc (pyproject ``[tool.leafnode.compile]``),
so the loop reads a subscription's fields and calls its sink without a
Python-level attribute lookup or call; the source is the pure-Python
fallback and keeps to precise types.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

    from leafnode.proto import MsgSink

__all__ = ["Recipient", "Subscription", "deliver_plain"]


class Recipient(Protocol):
    """Who a subscription delivers to (the router's ``routing.Delivery``)."""

    @property
    def echo(self) -> bool: ...

    def send_msg(
        self, subject: bytes, sid: bytes, reply: bytes | None, hdr_len: int, data: bytes
    ) -> None: ...

    def auto_unsubscribed(self, sub: Subscription) -> None: ...


class Subscription:
    """A client's SUB: ``sid`` is the client's id for it.

    ``sink``: where deliveries queue this subscription's messages directly
    (``MsgSink.msg``: what the client's ``send_msg`` does, without the call
    through the client), or None to call ``client.send_msg``.
    ``max_msgs``: the ``UNSUB`` maximum (0: none), ``delivered`` counted
    towards it.
    """

    def __init__(
        self,
        client: Recipient,
        subject: bytes,
        queue: bytes | None,
        sid: bytes,
        deliver_filter: Callable[[bytes], bool] | None = None,
        sink: MsgSink | None = None,
    ) -> None:
        self.client = client
        self.subject = subject
        self.queue = queue
        self.sid = sid
        self.max_msgs = 0
        self.delivered = 0
        self.deliver_filter = deliver_filter
        self.sink = sink

    def __repr__(self) -> str:
        return f"Subscription({self.subject!r}, {self.queue!r}, sid={self.sid!r})"


def deliver(
    sub: Subscription, subject: bytes, reply: bytes | None, hdr_len: int, data: bytes
) -> None:
    """Queue one message for ``sub`` (already chosen) and count its maximum down."""
    sink = sub.sink
    if sink is None:
        sub.client.send_msg(subject, sub.sid, reply, hdr_len, data)
    else:
        sink.msg(subject, sub.sid, reply, hdr_len, data)
    if sub.max_msgs:
        sub.delivered += 1
        if sub.delivered >= sub.max_msgs:
            sub.client.auto_unsubscribed(sub)


def deliver_plain(
    psubs: tuple[Subscription, ...],
    origin: object,
    subject: bytes,
    reply: bytes | None,
    hdr_len: int,
    data: bytes,
) -> int:
    """Deliver to each plain subscription that may receive it; returns how many got it.

    ``origin``: the publishing client, whose own subscriptions are skipped
    when it connected with ``echo`` off; None for a message from elsewhere.
    """
    delivered = 0
    for sub in psubs:
        client = sub.client
        if client is origin and not client.echo:
            continue
        deliver_filter = sub.deliver_filter
        if deliver_filter is not None and not deliver_filter(subject):
            continue
        sink = sub.sink
        if sink is None:
            client.send_msg(subject, sub.sid, reply, hdr_len, data)
        else:
            sink.msg(subject, sub.sid, reply, hdr_len, data)
        delivered += 1
        if sub.max_msgs:
            sub.delivered += 1
            if sub.delivered >= sub.max_msgs:
                client.auto_unsubscribed(sub)
    return delivered
