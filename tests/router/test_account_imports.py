"""Service and stream imports between configured accounts, against nats-server 2.15.

Each scenario runs on a real nats-server and on the router with the same
``accounts`` block, through real nats-py clients, and the observations are
compared (services/router/imports.py).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import nats
import pytest
from nats.errors import NoRespondersError

from tests.conftest import HubFactory, RouterFactory, wait_until
from tests.support import nats_server_binary

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg

pytestmark = pytest.mark.asyncio

ACCOUNTS = """
accounts {
  S {
    users: [{user: s, password: s}]
    exports: [{service: "q.>"}, {stream: "s.>"}]
  }
  A {
    users: [{user: a, password: a}]
    imports: [
      {service: {account: S, subject: "q.>"}, to: "x.>"}
      {stream: {account: S, subject: "s.>"}, prefix: "p"}
    ]
  }
}
"""


def _urls(router_factory: RouterFactory, nats_server_factory: HubFactory) -> dict[str, str]:
    hub = nats_server_factory(ACCOUNTS, binary=nats_server_binary())
    router = router_factory(ACCOUNTS)
    return {"nats-server": hub.url, "router": router.url}


async def _barrier(nc: NatsClient) -> None:
    """Wait until the server has processed everything ``nc`` sent so far.

    flush() is no barrier (its PING can overtake queued lines); a message to
    ourselves, sent after them on the same connection, is.
    """
    sub = await nc.subscribe(nc.new_inbox())
    await nc.publish(sub.subject, b"")
    await sub.next_msg(timeout=20)
    await sub.unsubscribe()


def _with(url: str, user: str) -> str:
    return url.replace("nats://", f"nats://{user}:{user}@", 1)


Seen = list[tuple[str, str, dict[str, str]]]
Answer = tuple[bytes, dict[str, str]]


async def _request_reply(url: str) -> tuple[Seen, Answer, Answer]:
    """A requests x.1 and x.2 (with a header); S answers on q.*."""
    s = await nats.connect(_with(url, "s"))
    a = await nats.connect(_with(url, "a"))
    seen: Seen = []

    async def serve(msg: Msg) -> None:
        seen.append((msg.subject, msg.reply[:4], dict(msg.headers or {})))
        if msg.subject == "q.1":
            await msg.respond(b"one")
        else:
            await s.publish(msg.reply, b"two", headers={"X-R": "1"})

    await s.subscribe("q.*", cb=serve)
    await _barrier(s)
    one = await a.request("x.1", b"hi", timeout=10)
    two = await a.request("x.2", b"hi", timeout=10, headers={"X-Q": "v"})
    await s.close()
    await a.close()
    return seen, (one.data, dict(one.headers or {})), (two.data, dict(two.headers or {}))


def _info(headers: dict[str, str]) -> dict[str, object]:
    info = json.loads(headers.pop("Nats-Request-Info"))
    assert isinstance(info, dict)
    return info


async def test_service_import_request_reply_like_nats_server(
    router_factory: RouterFactory, nats_server_factory: HubFactory
) -> None:
    results = {
        name: await _request_reply(url)
        for name, url in _urls(router_factory, nats_server_factory).items()
    }
    infos: dict[str, list[dict[str, object]]] = {}
    for name, (seen, (one_data, one_headers), two) in results.items():
        assert [(subject, reply) for subject, reply, _ in seen] == [
            ("q.1", "_R_."),
            ("q.2", "_R_."),
        ], name
        infos[name] = [_info(headers) for _, _, headers in seen]
        assert [headers for _, _, headers in seen] == [{}, {"X-Q": "v"}], name
        infos[name].append(_info(one_headers))
        assert (one_data, one_headers) == (b"one", {}), name
        # An answer with headers of its own gets no Nats-Request-Info.
        assert two == (b"two", {"X-R": "1"}), name
    for name, found in infos.items():
        assert [info["acc"] for info in found] == ["A", "A", "A"], name
    # nats-server adds the client's rtt, which the router does not measure.
    assert all(set(info) <= set(infos["nats-server"][0]) for info in infos["router"])


async def _no_responders(url: str) -> list[str]:
    """A requests x.none without, then with, a subscriber on q.none in S."""
    s = await nats.connect(_with(url, "s"))
    a = await nats.connect(_with(url, "a"))
    outcomes: list[str] = []

    async def here(msg: Msg) -> None:
        await msg.respond(b"here")

    for _ in range(2):
        try:
            msg = await a.request("x.none", b"", timeout=10)
            outcomes.append(msg.data.decode())
        except NoRespondersError:
            outcomes.append("no responders")
        if not outcomes[1:]:
            sub = await s.subscribe("q.none", cb=here)
            await _barrier(s)
    await sub.unsubscribe()
    await s.close()
    await a.close()
    return outcomes


async def test_no_responders_only_without_exporting_subscriber(
    router_factory: RouterFactory, nats_server_factory: HubFactory
) -> None:
    results = {
        name: await _no_responders(url)
        for name, url in _urls(router_factory, nats_server_factory).items()
    }
    assert results["router"] == results["nats-server"] == ["no responders", "here"]


async def _queue_group(url: str) -> tuple[int, int, int]:
    """Requests from A spread over a queue group in S, each answered once."""
    s = await nats.connect(_with(url, "s"))
    a = await nats.connect(_with(url, "a"))
    counts = [0, 0]

    def member(index: int) -> Callable[[Msg], Awaitable[None]]:
        async def cb(msg: Msg) -> None:
            counts[index] += 1
            await msg.respond(str(index).encode())

        return cb

    await s.subscribe("q.work", queue="workers", cb=member(0))
    await s.subscribe("q.work", queue="workers", cb=member(1))
    await _barrier(s)
    answers = 0
    for _ in range(40):
        await a.request("x.work", b"", timeout=10)
        answers += 1
    await s.close()
    await a.close()
    return answers, counts[0] + counts[1], min(counts)


async def test_queue_group_in_exporting_account(
    router_factory: RouterFactory, nats_server_factory: HubFactory
) -> None:
    for name, url in _urls(router_factory, nats_server_factory).items():
        answers, handled, least = await _queue_group(url)
        # Each request reaches exactly one member; both members take some.
        assert (answers, handled) == (40, 40), name
        assert least > 0, name


async def _stream(url: str) -> list[tuple[str, str | None, bytes]]:
    s = await nats.connect(_with(url, "s"))
    a = await nats.connect(_with(url, "a"))
    got: list[tuple[str, str | None, bytes]] = []

    async def cb(msg: Msg) -> None:
        got.append((msg.subject, msg.reply or None, msg.data))

    await a.subscribe("p.>", cb=cb)
    await a.subscribe("s.>", cb=cb)  # A's own s.> is not the exported one
    await _barrier(a)
    await s.publish("s.a", b"x", reply="rr")
    await s.publish("other", b"y")
    await s.publish("s.b.c", b"z")
    await wait_until(lambda: len(got) >= 2, timeout=20, what="stream import")
    await a.publish("s.local", b"own")
    await wait_until(lambda: len(got) >= 3, timeout=20, what="own message")
    await s.close()
    await a.close()
    return got


async def test_stream_import_with_prefix(
    router_factory: RouterFactory, nats_server_factory: HubFactory
) -> None:
    results = {
        name: await _stream(url) for name, url in _urls(router_factory, nats_server_factory).items()
    }
    assert results["nats-server"] == [
        ("p.s.a", "rr", b"x"),
        ("p.s.b.c", None, b"z"),
        ("s.local", None, b"own"),
    ]
    assert results["router"] == results["nats-server"]


async def _answers_to_one_request(url: str) -> list[bytes]:
    """S answers one request from A twice; A's inbox gets the first only."""
    s = await nats.connect(_with(url, "s"))
    a = await nats.connect(_with(url, "a"))

    async def twice(msg: Msg) -> None:
        await s.publish(msg.reply, b"first")
        await s.publish(msg.reply, b"second")

    async def sync(msg: Msg) -> None:
        await msg.respond(b"sync")

    await s.subscribe("q.twice", cb=twice)
    await s.subscribe("q.sync", cb=sync)
    await _barrier(s)
    inbox = await a.subscribe("inbox.1")
    await a.publish("x.twice", b"", reply="inbox.1")
    first = await inbox.next_msg(timeout=10)
    # S publishes in order on one connection: once the answer to a later
    # request is back, a delivered second answer would have arrived before it.
    await a.request("x.sync", b"", timeout=10)
    got = [first.data]
    while inbox.pending_msgs:
        got.append((await inbox.next_msg(timeout=1)).data)
    await s.close()
    await a.close()
    return got


async def test_one_use_reply(
    router_factory: RouterFactory, nats_server_factory: HubFactory
) -> None:
    results = {
        name: await _answers_to_one_request(url)
        for name, url in _urls(router_factory, nats_server_factory).items()
    }
    assert results["router"] == results["nats-server"] == [b"first"]


NATSJS_ACCOUNTS = """
accounts {
  S {
    users: [{
      user: s, password: s
      permission: {
        subscribe: ["q.>", "_INBOX.>"], publish: "$SYS.REQ.USER.INFO", allow_responses: true
      }
    }]
    exports: [{service: "q.>"}]
  }
  A { users: [{user: a, password: a}], imports: [{service: {subject: "q.>", account: S}}] }
}
"""


async def _responder_with_allow_responses(url: str) -> tuple[str, bytes]:
    s = await nats.connect(_with(url, "s"))
    a = await nats.connect(_with(url, "a"))
    accounts: list[str] = []

    async def serve(msg: Msg) -> None:
        accounts.append(json.loads((msg.headers or {})["Nats-Request-Info"])["acc"])
        await msg.respond(b"")

    await s.subscribe("q.>", cb=serve)
    # S may only publish there; the server's answer comes after it saw the SUB.
    await s.request("$SYS.REQ.USER.INFO", b"", timeout=10)
    answer = await a.request("q.hello", b"", timeout=10)
    await s.close()
    await a.close()
    return accounts[0], answer.data


async def test_natsjs_request_context(
    router_factory: RouterFactory, nats_server_factory: HubFactory
) -> None:
    """nats.js's 'auth - request context': the responder may only answer (allow_responses)."""
    hub = nats_server_factory(NATSJS_ACCOUNTS, binary=nats_server_binary())
    router = router_factory(NATSJS_ACCOUNTS)
    for url in (hub.url, router.url):
        assert await _responder_with_allow_responses(url) == ("A", b"")
