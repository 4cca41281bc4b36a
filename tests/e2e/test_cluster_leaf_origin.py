"""A downstream leaf cluster's interest and messages carry its name over the routes (issue 14).

A mixed cluster C: n0 a leafnode node, n1 a nats-server 2.15 node, each
accepting leafs. Below them a nats-server 2.15 leaf cluster LC: L1 attached
to n0, L2 to n1, L1 and L2 routed to each other. n1 dials n0 through a
``RouteGate``, which keeps what n0 sends on the routes.

- n0 announces L1's interest as nats-server does (seen on a 2.15 route):
  ``LS+ LC $G <subject>`` (route protocol ``lnoc``), when it comes and
  goes, not only when a route is placed: so a message published on n1
  reaches a subscriber on L1 that subscribed after the routes were up,
  once (n1 sends it to n0, which gives it to L1; L2, a spoke, never relays
  what its hub sends over its routes).
- A message from L2 (``LMSG LC ...`` from n1) is not given back to L1 by
  n0: the subscriber on L1 gets it once, over LC's own route, while a
  client of n0 gets it from n1.
- A message published on L1 reaches a client of n1 once: n0 tells L1 of
  n1's interest and sends L1's messages on as ``LMSG LC ...``; L2's client
  gets it once over LC's route (L2, a spoke, does not pass it to n1, nor
  does n1 give it back to L2).
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import TYPE_CHECKING

import nats
import pytest
import pytest_asyncio

from tests.conftest import wait_until
from tests.support import NatsServerProcess, RouteGate, RouterProcess, free_port, wait_for_port

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from nats.aio.client import Client
    from nats.aio.msg import Msg

pytestmark = [pytest.mark.e2e]

MESSAGES = 20


def _get(port: int, endpoint: str) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/{endpoint}", timeout=5) as resp:
        data: dict[str, object] = json.loads(resp.read())
        return data


class Site:
    """n0, n1, L1, L2 (module doc); ``http`` ports of the nats-server ones."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.r0, self.r1, self.ln0, self.ln1, self.rl1 = (free_port() for _ in range(5))
        self.http = {name: free_port() for name in ("n1", "L1", "L2")}
        self.gate = RouteGate(self.r0)
        self.procs: dict[str, RouterProcess | NatsServerProcess] = {}

    async def start(self) -> None:
        await self.gate.start()
        self.procs["n0"] = RouterProcess(
            "server_name: n0\n"
            f'cluster {{ name: C, listen: "127.0.0.1:{self.r0}" }}\n'
            f'leafnodes {{ listen: "127.0.0.1:{self.ln0}" }}\n',
            workdir=self.workdir / "n0",
        )
        self.procs["n1"] = NatsServerProcess(
            f"server_name: n1\nhttp: 127.0.0.1:{self.http['n1']}\n"
            f'cluster {{ name: C, listen: "127.0.0.1:{self.r1}", routes: ["{self.gate.url}"] }}\n'
            f'leafnodes {{ listen: "127.0.0.1:{self.ln1}" }}\n',
            workdir=self.workdir / "n1",
        )
        for proc in self.procs.values():
            await asyncio.to_thread(proc.wait_ready, 60)
        await asyncio.to_thread(wait_for_port, self.ln0, timeout=30)
        self.procs["L1"] = NatsServerProcess(
            f"server_name: L1\nhttp: 127.0.0.1:{self.http['L1']}\n"
            f'cluster {{ name: LC, listen: "127.0.0.1:{self.rl1}" }}\n'
            f'leafnodes {{ remotes: [ {{ url: "nats-leaf://127.0.0.1:{self.ln0}" }} ] }}\n',
            workdir=self.workdir / "L1",
        )
        self.procs["L2"] = NatsServerProcess(
            f"server_name: L2\nhttp: 127.0.0.1:{self.http['L2']}\n"
            f'cluster {{ name: LC, listen: "127.0.0.1:{free_port()}",'
            f' routes: ["nats-route://127.0.0.1:{self.rl1}"] }}\n'
            f'leafnodes {{ remotes: [ {{ url: "nats-leaf://127.0.0.1:{self.ln1}" }} ] }}\n',
            workdir=self.workdir / "L2",
        )
        for name in ("L1", "L2"):
            await asyncio.to_thread(self.procs[name].wait_ready, 60)

        def up() -> bool:
            n1 = _get(self.http["n1"], "routez")
            return (
                bool(n1.get("num_routes"))
                and all(_get(self.http[n], "leafz").get("leafnodes") for n in ("L1", "L2"))
                and bool(_get(self.http["L1"], "routez").get("num_routes"))
            )

        await wait_until(up, timeout=60, what="routes and leaf connections up")

    def url(self, name: str) -> str:
        return self.procs[name].url

    async def stop(self) -> None:
        for proc in self.procs.values():
            proc.kill()
        await self.gate.close()


@pytest_asyncio.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    s = Site(tmp_path)
    try:
        await s.start()
        yield s
    finally:
        await s.stop()


class Counter:
    """A subscription callback that keeps every payload it got."""

    def __init__(self) -> None:
        self.got: list[bytes] = []

    async def cb(self, msg: Msg) -> None:
        self.got.append(msg.data)

    def count(self, data: bytes) -> int:
        return self.got.count(data)


async def _until_seen(pub: Client, subject: str, counters: list[Counter], what: str) -> None:
    """Publish ``subject`` until every counter has it (interest travelled), by effect."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while not all(c.count(subject.encode()) for c in counters):
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not seen after 30 s")
        await pub.publish(subject, subject.encode())
        await asyncio.sleep(0.1)


@pytest.mark.asyncio
async def test_a_message_from_a_peer_reaches_a_leaf_subscriber_once(site: Site) -> None:
    l1, n1 = await nats.connect(site.url("L1")), await nats.connect(site.url("n1"))
    try:
        got = Counter()
        await l1.subscribe("y.>", cb=got.cb)
        await _until_seen(n1, "y.warm", [got], "n1 -> L1")
        for i in range(MESSAGES):
            await n1.publish("y.m", str(i).encode())
        await _until_seen(n1, "y.end", [got], "the last message")
        assert [got.count(str(i).encode()) for i in range(MESSAGES)] == [1] * MESSAGES
        lines = site.gate.sent_by_target()
        assert b"LS+ LC $G y.>" in lines
        assert not any(line.startswith(b"RS+ $G y.>") for line in lines)
    finally:
        await l1.close()
        await n1.close()


@pytest.mark.asyncio
async def test_a_leaf_clusters_message_is_not_given_back_to_it(site: Site) -> None:
    l1, l2, n0 = [await nats.connect(site.url(n)) for n in ("L1", "L2", "n0")]
    try:
        on_l1, on_n0 = Counter(), Counter()
        await l1.subscribe("x.>", cb=on_l1.cb)
        await n0.subscribe("x.>", cb=on_n0.cb)
        await _until_seen(l2, "x.warm", [on_l1, on_n0], "L2 -> L1 and n0")
        for i in range(MESSAGES):
            await l2.publish("x.m", str(i).encode())
        await _until_seen(l2, "x.end", [on_l1, on_n0], "the last message")
        # One more round by every path: a copy still on its way arrives before it.
        await _until_seen(l2, "x.end2", [on_l1, on_n0], "the second last message")
        for counter in (on_l1, on_n0):
            assert [counter.count(str(i).encode()) for i in range(MESSAGES)] == [1] * MESSAGES
        assert b"LS+ LC $G x.>" in site.gate.sent_by_target()
    finally:
        for nc in (l1, l2, n0):
            await nc.close()


@pytest.mark.asyncio
async def test_a_leaf_clusters_message_reaches_the_other_nodes_once(site: Site) -> None:
    l1, l2, n1 = [await nats.connect(site.url(n)) for n in ("L1", "L2", "n1")]
    try:
        on_n1, on_l2 = Counter(), Counter()
        await n1.subscribe("z.>", cb=on_n1.cb)
        await l2.subscribe("z.>", cb=on_l2.cb)
        await _until_seen(l1, "z.warm", [on_n1, on_l2], "L1 -> n1 and L2")
        for i in range(MESSAGES):
            await l1.publish("z.m", str(i).encode())
        await _until_seen(l1, "z.end", [on_n1, on_l2], "the last message")
        await _until_seen(l1, "z.end2", [on_n1, on_l2], "the second last message")
        for counter in (on_n1, on_l2):
            assert [counter.count(str(i).encode()) for i in range(MESSAGES)] == [1] * MESSAGES
        # n0 told L1 of n1's interest, and sent L1's messages on as LC's.
        assert any(line.startswith(b"LMSG LC $G z.m ") for line in site.gate.sent_by_target())
    finally:
        for nc in (l1, l2, n1):
            await nc.close()
