"""Messaging through a real router process with real nats-py clients."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import TYPE_CHECKING

import nats
import pytest
from nats.errors import NoRespondersError

from tests.conftest import respond_ok, until_responding, wait_until
from tests.rawclient import RawClient

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from nats.aio.msg import Msg

    from tests.support import RouterProcess

pytestmark = pytest.mark.asyncio


async def test_publish_reaches_subscriber(router: RouterProcess) -> None:
    nc = await nats.connect(router.url)
    got: list[tuple[str, bytes]] = []

    async def handler(msg: Msg) -> None:
        got.append((msg.subject, msg.data))

    await nc.subscribe("greet.*", cb=handler)
    await nc.subscribe("greet.>", cb=handler)
    await nc.subscribe("other", cb=handler)
    # A reply from a fresh responder proves the SUBs above were processed.
    await nc.subscribe("ready", cb=respond_ok)
    await until_responding(nc, "ready")
    await nc.publish("greet.joe", b"hello")
    await nc.publish("greet.a.b", b"deep")
    await wait_until(lambda: len(got) == 3, what="three deliveries")
    assert sorted(got) == [("greet.a.b", b"deep"), ("greet.joe", b"hello"), ("greet.joe", b"hello")]
    await nc.close()


async def test_queue_group_delivers_each_message_to_one_member(router: RouterProcess) -> None:
    nc = await nats.connect(router.url)
    counts: Counter[str] = Counter()
    plain: list[bytes] = []

    def member(name: str) -> Callable[[Msg], Awaitable[None]]:
        async def cb(msg: Msg) -> None:
            counts[name] += 1

        return cb

    async def plain_cb(msg: Msg) -> None:
        plain.append(msg.data)

    for name in ("a", "b", "c"):
        await nc.subscribe("jobs", queue="workers", cb=member(name))
    await nc.subscribe("jobs", cb=plain_cb)
    await nc.subscribe("ready", cb=respond_ok)
    await until_responding(nc, "ready")
    for i in range(300):
        await nc.publish("jobs", str(i).encode())
    await wait_until(lambda: sum(counts.values()) == 300 and len(plain) == 300, what="300 jobs")
    assert set(counts) == {"a", "b", "c"}
    assert len(plain) == 300
    await nc.close()


async def test_request_reply_and_headers(router: RouterProcess) -> None:
    responder = await nats.connect(router.url)
    requester = await nats.connect(router.url)

    async def echo(msg: Msg) -> None:
        if msg.headers:
            await responder.publish(
                msg.reply, msg.data, headers={"Echo": msg.headers.get("X-Id", "")}
            )
        else:
            await msg.respond(msg.data.upper())

    await responder.subscribe("svc.echo", cb=echo)
    await until_responding(requester, "svc.echo")
    reply = await requester.request("svc.echo", b"hi", timeout=2)
    assert reply.data == b"HI"
    reply = await requester.request("svc.echo", b"hdr", timeout=2, headers={"X-Id": "42"})
    assert reply.data == b"hdr"
    assert reply.headers == {"Echo": "42"}
    await responder.close()
    await requester.close()


async def test_no_responders(router: RouterProcess) -> None:
    nc = await nats.connect(router.url)
    with pytest.raises(NoRespondersError):
        await nc.request("nobody.home", b"x", timeout=2)
    await nc.close()


async def test_no_responders_for_a_request_read_on_its_own(router: RouterProcess) -> None:
    # A PUB that no other event precedes in its read is routed as the parser
    # reads it (the client's fast path): a request nobody takes still gets
    # the 503 status there. (nats-py's first request sends its inbox SUB in
    # the same read, so test_no_responders takes the other path.)
    client = RawClient(router.port)
    try:
        client.send(
            b'CONNECT {"verbose":false,"pedantic":false,"headers":true,'
            b'"no_responders":true,"protocol":1}\r\nSUB inbox.1 7\r\nPING\r\n'
        )
        client.read_until(b"PONG\r\n")
        client.send(b"PUB nobody.home inbox.1 1\r\nx\r\n")
        status = client.read_until(b"\r\n\r\n\r\n")
        assert status.startswith(b"HMSG inbox.1 7 "), status
        assert b"NATS/1.0 503" in status
    finally:
        client.close()


async def test_auto_unsubscribe_after_max(router: RouterProcess) -> None:
    nc = await nats.connect(router.url)
    got: list[bytes] = []

    async def cb(msg: Msg) -> None:
        got.append(msg.data)

    sub = await nc.subscribe("limited", cb=cb)
    await sub.unsubscribe(limit=2)
    watcher: list[bytes] = []

    async def watch(msg: Msg) -> None:
        watcher.append(msg.data)

    await nc.subscribe("limited", cb=watch)
    await nc.subscribe("ready", cb=respond_ok)
    await until_responding(nc, "ready")
    for i in range(5):
        await nc.publish("limited", str(i).encode())
    await wait_until(lambda: len(watcher) == 5, what="watcher sees all five")
    assert got == [b"0", b"1"]
    await nc.close()


async def test_no_echo(router: RouterProcess) -> None:
    quiet = await nats.connect(router.url, no_echo=True)
    other = await nats.connect(router.url)
    got: list[bytes] = []

    async def cb(msg: Msg) -> None:
        got.append(msg.data)

    await quiet.subscribe("chat", cb=cb)
    await quiet.subscribe("ready", cb=respond_ok)
    await until_responding(other, "ready")
    await quiet.publish("chat", b"mine")
    await other.publish("chat", b"theirs")
    await wait_until(lambda: got == [b"theirs"], what="only the other client's message")
    # A round trip from our connection, after our publish, proves the publish
    # was processed (and not delivered back to us).
    await other.subscribe("ready.other", cb=respond_ok)
    await until_responding(quiet, "ready.other")
    assert got == [b"theirs"]
    await quiet.close()
    await other.close()


async def test_large_payload_up_to_max(router: RouterProcess) -> None:
    nc = await nats.connect(router.url)
    got: list[bytes] = []

    async def cb(msg: Msg) -> None:
        got.append(msg.data)

    await nc.subscribe("big", cb=cb)
    await nc.subscribe("ready", cb=respond_ok)
    await until_responding(nc, "ready")
    payload = bytes(range(256)) * 4096  # exactly 1 MiB, the default max_payload
    await nc.publish("big", payload)
    await wait_until(lambda: len(got) == 1, what="1 MiB message")
    assert got[0] == payload
    await nc.close()


async def test_many_clients_fan_out(router: RouterProcess) -> None:
    subs = [await nats.connect(router.url) for _ in range(8)]
    counts = [0] * len(subs)
    for i, nc in enumerate(subs):

        async def cb(msg: Msg, i: int = i) -> None:
            counts[i] += 1

        await nc.subscribe("fan", cb=cb)
        await nc.subscribe(f"ready.{i}", cb=respond_ok)
    pub = await nats.connect(router.url)
    for i in range(len(subs)):
        await until_responding(pub, f"ready.{i}")
    for _ in range(1000):
        await pub.publish("fan", b"x" * 16)
    await wait_until(lambda: all(c == 1000 for c in counts), what="fan-out to 8 clients")
    await asyncio.gather(*(nc.close() for nc in [*subs, pub]))
