"""The router's data link (router.sock) as the uplink will see it (DESIGN §2-§3).

A test peer plays the uplink over the real Unix socket: it reads the hello and
the interest snapshot, sees LS+/LS- as local clients come and go, announces
hub interest, and receives the LMSGs the router decides to send to the hub.
Messages cross in the leaf link's form under ``ACC <acc>`` lines both ways
(leafnode/proto/_datalink.py).
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import nats
import pytest

from tests.conftest import respond_ok, until_responding, wait_until

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from tests.support import RouterProcess

pytestmark = pytest.mark.asyncio


class UplinkPeer:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        # RUN hint lines seen (``line`` skips them: they change nothing that follows).
        self.runs: list[bytes] = []

    @classmethod
    async def attach(cls, router: RouterProcess) -> UplinkPeer:
        await wait_until(router.datalink_path.exists, what="router.sock")
        reader, writer = await asyncio.open_unix_connection(str(router.datalink_path))
        return cls(reader, writer)

    async def line(self, timeout: float = 5.0) -> bytes:
        while True:
            data = await asyncio.wait_for(self.reader.readuntil(b"\r\n"), timeout)
            if not data.startswith(b"RUN "):
                return data[:-2]
            self.runs.append(data[:-2])

    async def until(self, wanted: bytes, timeout: float = 5.0) -> list[bytes]:
        """Lines read up to and including ``wanted``."""
        seen: list[bytes] = []
        while True:
            line = await self.line(timeout)
            seen.append(line)
            if line == wanted:
                return seen

    async def payload(self, size: int) -> bytes:
        data = await asyncio.wait_for(self.reader.readexactly(size + 2), 5)
        assert data.endswith(b"\r\n")
        return data[:-2]

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def test_hello_and_interest_snapshot(router: RouterProcess) -> None:
    nc = await nats.connect(router.url)
    await nc.subscribe("before.attach")
    await nc.subscribe("before.q", queue="workers")
    await nc.subscribe("before.q", queue="workers")
    # A round trip through a fresh responder proves the SUBs were processed.
    await nc.subscribe("ready", cb=respond_ok)
    await until_responding(nc, "ready")
    peer = await UplinkPeer.attach(router)
    hello = await peer.line()
    assert hello.startswith(b"INFO ")
    info = json.loads(hello[5:])
    assert info["accounts"] == ["$G"]
    peer.send(b"PING\r\n")
    lines = await peer.until(b"PONG")
    assert b"LS+ $G before.attach" in lines
    assert b"LS+ $G before.q workers 2" in lines
    await peer.close()
    await nc.close()


async def test_interest_changes_are_refcounted(router: RouterProcess) -> None:
    peer = await UplinkPeer.attach(router)
    await peer.line()  # hello
    nc = await nats.connect(router.url)
    s1 = await nc.subscribe("agg")
    s2 = await nc.subscribe("agg")
    q1 = await nc.subscribe("work", queue="g")
    q2 = await nc.subscribe("work", queue="g")
    await s1.unsubscribe()
    await q1.unsubscribe()
    await s2.unsubscribe()
    await q2.unsubscribe()
    await nc.flush()
    lines = [
        line
        for line in [await peer.line() for _ in range(6)]
        if not line.startswith(b"LS+ $G _INBOX")
    ]
    assert lines == [
        b"LS+ $G agg",
        b"LS+ $G work g 1",
        b"LS+ $G work g 2",
        b"LS+ $G work g 1",
        b"LS- $G agg",
        b"LS- $G work g",
    ]
    await nc.close()
    await peer.close()


async def test_local_publish_goes_to_hub_only_with_hub_interest(router: RouterProcess) -> None:
    peer = await UplinkPeer.attach(router)
    await peer.line()
    nc = await nats.connect(router.url)
    peer.send(b"LS+ $G to.hub\r\nLS+ $G to.hubq hq 3\r\nPING\r\n")
    await peer.until(b"PONG")
    await nc.publish("not.wanted", b"x")
    await nc.publish("to.hub", b"plain")
    await nc.publish("to.hubq", b"queued", reply="r.1")
    assert await peer.line() == b"ACC $G"
    assert await peer.line() == b"LMSG to.hub 5"
    assert await peer.payload(5) == b"plain"
    assert await peer.line() == b"LMSG to.hubq + r.1 hq 6"
    assert await peer.payload(6) == b"queued"
    # A local member of the same group wins: the hub group is no longer named.
    local: list[bytes] = []

    async def cb(msg: Msg) -> None:
        local.append(msg.data)

    await nc.subscribe("to.hubq", queue="hq", cb=cb)
    assert await peer.line() == b"LS+ $G to.hubq hq 1"
    await nc.publish("to.hubq", b"stay")
    await nc.publish("to.hub", b"again")
    assert await peer.line() == b"LMSG to.hub 5"
    assert await peer.payload(5) == b"again"
    await wait_until(lambda: local == [b"stay"], what="local queue member got it")
    await nc.close()
    await peer.close()


async def test_one_batch_of_publishes_crosses_as_one_run(router: RouterProcess) -> None:
    peer = await UplinkPeer.attach(router)
    await peer.line()
    peer.send(b"LS+ $G to.hub\r\nLS+ $G $sys.x\r\nPING\r\n")
    await peer.until(b"PONG")
    reader, writer = await asyncio.open_connection("127.0.0.1", router.port)
    await reader.readuntil(b"\r\n")  # INFO
    # One write, one read by the router: one batch.
    writer.write(
        b'CONNECT {"verbose":false}\r\n'
        b"PUB to.hub 1\r\na\r\nPUB to.hub r.1 3\r\nbcd\r\nPUB $sys.x 2\r\nef\r\n"
        b"PUB to.hub 0\r\n\r\nPING\r\n"
    )
    await writer.drain()
    assert await reader.readuntil(b"PONG\r\n") == b"PONG\r\n"
    expected_run = b"LMSG to.hub 1\r\na\r\nLMSG to.hub r.1 3\r\nbcd\r\n"
    lmsg_sys = b"LMSG $sys.x 2\r\nef\r\n"
    last_run = b"LMSG to.hub 0\r\n\r\n"
    wanted = [
        b"ACC $G\r\n",
        b"RUN %d 2 4 %d\r\n" % (len(expected_run), len(b"LMSG to.hub r.1 3\r\nbcd\r\n")),
        expected_run,
        # A "$" subject ends the run and goes on its own, outside any run.
        lmsg_sys,
        # A run of one message goes without a RUN line.
        last_run,
    ]
    got = await asyncio.wait_for(peer.reader.readexactly(sum(map(len, wanted))), 10)
    assert got == b"".join(wanted)
    writer.close()
    await peer.close()


async def test_hub_messages_reach_local_subscribers(router: RouterProcess) -> None:
    peer = await UplinkPeer.attach(router)
    await peer.line()
    nc = await nats.connect(router.url)
    plain: list[bytes] = []
    queued: list[bytes] = []
    headers: list[dict[str, str] | None] = []

    async def on_plain(msg: Msg) -> None:
        plain.append(msg.data)
        headers.append(msg.headers)

    async def on_queue(msg: Msg) -> None:
        queued.append(msg.data)

    await nc.subscribe("from.hub", cb=on_plain)
    await nc.subscribe("from.hub", queue="g", cb=on_queue)
    await peer.until(b"LS+ $G from.hub g 1")
    peer.send(b"ACC $G\r\nLMSG from.hub 5\r\nplain\r\n")
    peer.send(b"LMSG from.hub | g 6\r\nqueued\r\n")
    peer.send(b"HMSG from.hub 18 20\r\nNATS/1.0\r\nA: b\r\n\r\nhi\r\n")
    await wait_until(lambda: len(plain) == 3 and len(queued) == 1, what="hub deliveries")
    assert plain == [b"plain", b"queued", b"hi"]
    assert queued == [b"queued"]
    assert headers[2] == {"A": "b"}
    await nc.close()
    await peer.close()


async def test_uplink_detach_forgets_hub_interest(router: RouterProcess) -> None:
    peer = await UplinkPeer.attach(router)
    await peer.line()
    peer.send(b"LS+ $G gone\r\nPING\r\n")
    await peer.until(b"PONG")
    await peer.close()
    nc = await nats.connect(router.url)
    peer2 = await UplinkPeer.attach(router)
    await peer2.line()
    peer2.send(b"LS+ $G kept\r\nPING\r\n")
    await peer2.until(b"PONG")
    await nc.publish("gone", b"x")
    await nc.publish("kept", b"y")
    # A new link starts without an account: the router names it again.
    assert await peer2.line() == b"ACC $G"
    assert await peer2.line() == b"LMSG kept 1"
    await nc.close()
    await peer2.close()


@pytest.mark.parametrize(
    "line",
    [b"LMSG from.hub 2\r\nhi\r\n", b"LMSG $G from.hub 2\r\nhi\r\n"],
    ids=["no-acc", "account-first"],
)
async def test_a_message_before_acc_closes_the_link(router: RouterProcess, line: bytes) -> None:
    peer = await UplinkPeer.attach(router)
    await peer.line()
    nc = await nats.connect(router.url)
    got: list[bytes] = []

    async def cb(msg: Msg) -> None:
        got.append(msg.data)

    await nc.subscribe("from.hub", cb=cb)
    await peer.until(b"LS+ $G from.hub")
    peer.send(line)
    # The router closes the link (a framing error).
    rest = await asyncio.wait_for(peer.reader.read(), 10)
    assert b"MSG" not in rest
    # Nothing was delivered: a round trip through the router proves it.
    await nc.subscribe("ready", cb=respond_ok)
    await until_responding(nc, "ready")
    assert got == []
    await nc.close()
