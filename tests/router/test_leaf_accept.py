"""The router accepts real nats-server leafs on ``leafnodes { listen }`` (issue 15).

Each test starts ``leafnode router`` with a leaf port and a real nats-server
(2.15 from the venv and Debian's 2.9.10) whose remote dials it, then drives
nats-py clients on both: interest and messages both ways, queue groups
(local members first), request/reply, each auth method accepted and refused,
and a loop refused as nats-server refuses it.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

import nats
import pytest

from tests.conftest import RouterFactory, respond_ok, until_responding, wait_until
from tests.support import NatsServerProcess, free_port, hub_binaries, wait_for_log

if TYPE_CHECKING:
    from collections.abc import Iterator

    from nats.aio.client import Client as NATS
    from nats.aio.msg import Msg

    from tests.support import RouterProcess

pytestmark = pytest.mark.asyncio

BINARIES = hub_binaries()
DEADLINE_S = 30.0


@pytest.fixture(params=sorted(BINARIES))
def binary(request: pytest.FixtureRequest) -> str:
    return BINARIES[request.param]


@pytest.fixture
def leafs(tmp_path: Path) -> Iterator[list[NatsServerProcess]]:
    started: list[NatsServerProcess] = []
    yield started
    for leaf in started:
        leaf.kill()


class Tier:
    """A router with a leaf port, and the leafs that dial it."""

    def __init__(
        self,
        router_factory: RouterFactory,
        leafs: list[NatsServerProcess],
        tmp_path: Path,
        *,
        accept: str = "",
        top: str = "",
    ) -> None:
        self.leaf_port = free_port()
        self.router: RouterProcess = router_factory(
            f"{top}\nleafnodes {{\n  listen: 127.0.0.1:{self.leaf_port}\n{accept}\n}}\n"
        )
        self._leafs = leafs
        self._tmp = tmp_path

    def leaf(
        self, binary: str, remote: str = "", *, creds: str = "", wait: bool = True
    ) -> NatsServerProcess:
        url = f"nats-leaf://{creds}127.0.0.1:{self.leaf_port}"
        name = f"leaf{len(self._leafs)}"
        config = (
            f"server_name: {name}\n"
            f'leafnodes {{ reconnect: 1, remotes: [ {{ url: "{url}"\n{remote} }} ] }}\n'
        )
        leaf = NatsServerProcess(config, binary=binary, workdir=self._tmp / name)
        self._leafs.append(leaf)
        leaf.wait_ready()
        if wait:
            # Ours, once the CONNECT passed (nats-server's own line comes at dial).
            wait_for_log(self.router, f'leaf "{name}"', timeout=DEADLINE_S)
        return leaf


async def _sub(nc: NATS, subject: str, into: list[bytes], queue: str = "") -> None:
    async def cb(msg: Msg) -> None:
        into.append(msg.data)

    await nc.subscribe(subject, queue=queue, cb=cb)


async def _publish_until(pub: NATS, subject: str, got: list[bytes], *, what: str) -> None:
    """Publish ``ping`` until one arrives (interest crosses the link asynchronously)."""

    async def arrived() -> bool:
        await pub.publish(subject, b"ping")
        await pub.flush()
        await asyncio.sleep(0.05)
        return bool(got)

    await wait_until(arrived, timeout=DEADLINE_S, what=what)


async def test_messages_and_interest_both_ways(
    router_factory: RouterFactory, leafs: list[NatsServerProcess], tmp_path: Path, binary: str
) -> None:
    tier = Tier(router_factory, leafs, tmp_path)
    leaf = tier.leaf(binary)
    here = await nats.connect(tier.router.url)
    there = await nats.connect(leaf.url)
    try:
        # Router client -> leaf subscriber: the leaf's LS+ became our interest.
        at_leaf: list[bytes] = []
        await _sub(there, "down.x", at_leaf)
        await _publish_until(here, "down.x", at_leaf, what="a message down to the leaf")
        # Leaf client -> router subscriber: our LS+ reached the leaf.
        at_router: list[bytes] = []
        await _sub(here, "up.x", at_router)
        await _publish_until(there, "up.x", at_router, what="a message up from the leaf")
        # Exactly one copy each way, even with overlapping wildcards below.
        at_leaf.clear()
        await _sub(there, "down.>", at_leaf)
        await _sub(there, "down.*", at_leaf)
        await asyncio.sleep(0.5)
        await here.publish("down.x", b"one")
        await here.flush()
        await wait_until(lambda: b"one" in at_leaf, timeout=DEADLINE_S, what="one")
        await asyncio.sleep(0.3)
        assert at_leaf.count(b"one") == 3  # three subscriptions on the leaf, one LMSG
    finally:
        await here.close()
        await there.close()


async def test_queue_groups_prefer_local_members(
    router_factory: RouterFactory, leafs: list[NatsServerProcess], tmp_path: Path, binary: str
) -> None:
    tier = Tier(router_factory, leafs, tmp_path)
    leaf = tier.leaf(binary)
    here = await nats.connect(tier.router.url)
    there = await nats.connect(leaf.url)
    try:
        at_leaf: list[bytes] = []
        await _sub(there, "work", at_leaf, queue="q")
        # The leaf's member alone: the router sends it the group's messages.
        await _publish_until(here, "work", at_leaf, what="the leaf's queue member")
        at_router: list[bytes] = []
        await _sub(here, "work", at_router, queue="q")
        at_leaf.clear()
        for i in range(20):
            await here.publish("work", b"%d" % i)
        await here.flush()
        await wait_until(lambda: len(at_router) == 20, timeout=DEADLINE_S, what="20 local")
        await asyncio.sleep(0.3)
        assert at_leaf == []  # a local member always wins
        # From the leaf: its own member wins there; our member gets none.
        at_router.clear()
        for i in range(20):
            await there.publish("work", b"%d" % i)
        await there.flush()
        await wait_until(lambda: len(at_leaf) == 20, timeout=DEADLINE_S, what="20 at the leaf")
        await asyncio.sleep(0.3)
        assert at_router == []
    finally:
        await here.close()
        await there.close()


async def test_request_reply_both_ways(
    router_factory: RouterFactory, leafs: list[NatsServerProcess], tmp_path: Path, binary: str
) -> None:
    tier = Tier(router_factory, leafs, tmp_path)
    leaf = tier.leaf(binary)
    here = await nats.connect(tier.router.url)
    there = await nats.connect(leaf.url)
    try:
        await there.subscribe("svc.down", cb=respond_ok)
        await until_responding(here, "svc.down", timeout=DEADLINE_S)
        await here.subscribe("svc.up", cb=respond_ok)
        await until_responding(there, "svc.up", timeout=DEADLINE_S)
        # A queue responder on the leaf, reached through the router.
        await there.subscribe("svc.q", queue="workers", cb=respond_ok)
        await until_responding(here, "svc.q", timeout=DEADLINE_S)
    finally:
        await here.close()
        await there.close()


async def test_lame_duck_stops_accepting_leafs_and_keeps_the_bound_ones(
    router_factory: RouterFactory, leafs: list[NatsServerProcess], tmp_path: Path, binary: str
) -> None:
    tier = Tier(
        router_factory,
        leafs,
        tmp_path,
        top='lame_duck_duration: "60s"\nlame_duck_grace_period: "30s"',
    )
    leaf = tier.leaf(binary)
    # Clients first: lame duck closes the client port too.
    here = await nats.connect(tier.router.url)
    there = await nats.connect(leaf.url)
    try:
        tier.router.proc.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + DEADLINE_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", tier.leaf_port), timeout=1).close()
            except OSError:
                break  # refused: the leaf port no longer listens
            assert time.monotonic() < deadline, "the leaf port still accepts"
            await asyncio.sleep(0.05)
        # The bound leaf still carries messages.
        got: list[bytes] = []
        await _sub(there, "still.here", got)
        await _publish_until(here, "still.here", got, what="a message after lame duck")
    finally:
        await here.close()
        await there.close()
