"""Daisy chains with real processes (issue 15 points 3, 4, 6).

Three tiers: a nats-server hub at the top, a ``leafnode run`` site in the
middle that dials the hub and accepts leafs, and below it either another
``leafnode run`` site or a real nats-server leaf. nats-py clients at each
tier check messages and interest both ways, queue groups (local first at
every tier), request/reply across tiers, a loop through the hub link, and
the middle tier buffering what the tier below publishes while the hub is
away.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING

import nats
import pytest

from tests.conftest import respond_ok, until_responding, wait_until
from tests.support import (
    HubProcess,
    NatsServerProcess,
    SiteProcess,
    free_port,
    http_get,
    restart_process,
    wait_for_log,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from nats.aio.client import Client as NATS
    from nats.aio.msg import Msg

    from tests.e2e.conftest import SiteStarter

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]

DEADLINE_S = 30.0


def _middle(
    start_site: SiteStarter, hub: HubProcess, tmp_path: Path, extra: str = ""
) -> tuple[SiteProcess, int]:
    leaf_port = free_port()
    site = start_site(
        f'store {{ url: "sqlite:///{tmp_path}/middle.db" }}\n'
        "leafnodes {\n"
        f"  listen: 127.0.0.1:{leaf_port}\n"
        f'  remotes: [ {{ url: "{hub.leaf_url}", buffer {{ subjects: ["tel.>"] }} }} ]\n'
        f"{extra}\n}}\n",
        workdir=tmp_path / "middle",
    )
    return site, leaf_port


def _bottom_site(start_site: SiteStarter, leaf_port: int, tmp_path: Path) -> SiteProcess:
    return start_site(
        f'store {{ url: "sqlite:///{tmp_path}/bottom.db" }}\n'
        "leafnodes { remotes: [ "
        f'{{ url: "nats-leaf://127.0.0.1:{leaf_port}", buffer {{ subjects: ["tel.>"] }} }} ] }}\n',
        workdir=tmp_path / "bottom",
    )


def _real_leaf(leaf_port: int, tmp_path: Path) -> NatsServerProcess:
    url = f"nats-leaf://127.0.0.1:{leaf_port}"
    return NatsServerProcess(
        f'server_name: real\nleafnodes {{ remotes: [ {{ url: "{url}" }} ] }}\n',
        workdir=tmp_path / "real",
    )


@pytest.fixture
def real_leafs() -> Iterator[list[NatsServerProcess]]:
    started: list[NatsServerProcess] = []
    yield started
    for leaf in started:
        leaf.kill()


async def _collect(nc: NATS, subject: str, into: list[bytes], queue: str = "") -> None:
    async def cb(msg: Msg) -> None:
        into.append(msg.data)

    await nc.subscribe(subject, queue=queue, cb=cb)


async def _publish_until(pub: NATS, subject: str, got: list[bytes], what: str) -> None:
    async def arrived() -> bool:
        await pub.publish(subject, b"ping")
        await pub.flush()
        await asyncio.sleep(0.1)
        return bool(got)

    await wait_until(arrived, timeout=DEADLINE_S, what=what)


async def test_three_tiers_leafnode_leafnode_hub(
    start_site: SiteStarter, hub: HubProcess, tmp_path: Path
) -> None:
    middle, leaf_port = _middle(start_site, hub, tmp_path)
    bottom = _bottom_site(start_site, leaf_port, tmp_path)
    top = await nats.connect(hub.url)
    mid = await nats.connect(middle.url)
    low = await nats.connect(bottom.url)
    try:
        # Bottom -> top: the bottom's interest went up two tiers, and back.
        at_top: list[bytes] = []
        await _collect(top, "up.x", at_top)
        await _publish_until(low, "up.x", at_top, "bottom -> hub")
        at_low: list[bytes] = []
        await _collect(low, "down.x", at_low)
        await _publish_until(top, "down.x", at_low, "hub -> bottom")
        # The middle sees both ways too.
        at_mid: list[bytes] = []
        await _collect(mid, "down.x", at_mid)
        await _publish_until(top, "down.x", at_mid, "hub -> middle")
        # Request/reply across both tiers, each way.
        await low.subscribe("svc.low", cb=respond_ok)
        await until_responding(top, "svc.low", timeout=DEADLINE_S)
        await top.subscribe("svc.top", cb=respond_ok)
        await until_responding(low, "svc.top", timeout=DEADLINE_S)
        # Queue groups: members at every tier; each tier's publisher's own wins.
        got: dict[str, list[bytes]] = {"top": [], "mid": [], "low": []}
        for name, nc in (("top", top), ("mid", mid), ("low", low)):
            await _collect(nc, "work", got[name], queue="q")
        await asyncio.sleep(1.0)  # weights settle: no assertion rests on it
        for name, nc in (("top", top), ("mid", mid), ("low", low)):
            for value in got.values():
                value.clear()
            for i in range(10):
                await nc.publish("work", b"%d" % i)
            await nc.flush()
            await wait_until(
                lambda name=name: len(got[name]) == 10,  # type: ignore[misc]
                timeout=DEADLINE_S,
                what=f"10 at {name}",
            )
            await asyncio.sleep(0.3)
            assert sum(len(v) for v in got.values()) == 10, (name, got)
    finally:
        for nc in (top, mid, low):
            await nc.close()


async def test_real_leaf_below_a_site(
    start_site: SiteStarter, hub: HubProcess, tmp_path: Path, real_leafs: list[NatsServerProcess]
) -> None:
    middle, leaf_port = _middle(start_site, hub, tmp_path)
    leaf = _real_leaf(leaf_port, tmp_path)
    real_leafs.append(leaf)
    leaf.wait_ready()
    top = await nats.connect(hub.url)
    low = await nats.connect(leaf.url)
    try:
        at_top: list[bytes] = []
        await _collect(top, "up.x", at_top)
        await _publish_until(low, "up.x", at_top, "real leaf -> hub")
        at_low: list[bytes] = []
        await _collect(low, "down.x", at_low)
        await _publish_until(top, "down.x", at_low, "hub -> real leaf")
        await low.subscribe("svc.low", cb=respond_ok)
        await until_responding(top, "svc.low", timeout=DEADLINE_S)
        # Monitoring at the middle: the remote and the accepted leaf.
        _, body = http_get(middle.http_port, "/leafz?subs=1")
        leafz = json.loads(body)
        assert leafz["leafnodes"] == 2
        by_spoke = {leaf["is_spoke"]: leaf for leaf in leafz["leafs"]}
        assert by_spoke[False]["name"] == "real"
        assert by_spoke[False]["account"] == "$G"
        assert "svc.low" in by_spoke[False]["subscriptions_list"]
        assert by_spoke[False]["in_msgs"] >= 1
        assert by_spoke[True]["account"] == "$G"
        _, body = http_get(middle.http_port, "/varz")
        varz = json.loads(body)
        assert varz["leafnodes"] == 2
        assert varz["leaf"]["port"] == leaf_port
        assert varz["leaf"]["auth_timeout"] == 2
        assert "tls_required" not in varz["leaf"]  # omitted when false, as nats-server
        _, body = http_get(middle.http_port, "/accountz?acc=$G")
        assert json.loads(body)["account_detail"]["leafnode_connections"] == 2
        _, body = http_get(middle.http_port, "/connz")
        assert all(c.get("kind", "Client") == "Client" for c in json.loads(body)["connections"])
        assert json.loads(body)["num_connections"] == 0
    finally:
        await top.close()
        await low.close()


async def test_a_loop_through_the_hub_link_is_refused(
    start_site: SiteStarter, tmp_path: Path
) -> None:
    """The hub dials our leaf port too: our one $LDS comes back, as with nats-server."""
    leaf_port = free_port()
    hub = HubProcess(
        leaf_config=f'remotes: [ {{ url: "nats-leaf://127.0.0.1:{leaf_port}" }} ]',
        workdir=tmp_path / "hub",
    )
    try:
        hub.wait_ready()
        site = start_site(
            "leafnodes {\n"
            f"  listen: 127.0.0.1:{leaf_port}\n"
            f'  remotes: [ {{ url: "{hub.leaf_url}" }} ]\n}}\n',
            workdir=tmp_path / "site",
        )
        wait_for_log(hub, "Loop detected", timeout=DEADLINE_S)
        # Our side sees its own $LDS come back (the uplink through the hub, or
        # the router through the hub's link to us): one subject for both.
        wait_for_log(site, r"loop detected", timeout=DEADLINE_S)
    finally:
        hub.kill()


@pytest.mark.parametrize("below", ["nats-server", "leafnode"])
async def test_the_middle_tier_buffers_for_the_tier_below(
    start_site: SiteStarter,
    hub: HubProcess,
    tmp_path: Path,
    real_leafs: list[NatsServerProcess],
    below: str,
) -> None:
    """The hub goes away; the tier below keeps publishing; nothing lost, order kept.

    A leafnode below buffers too, and acks its backlog on the middle's PONG,
    which comes once the middle committed what came before it.
    """
    middle, leaf_port = _middle(start_site, hub, tmp_path)
    if below == "nats-server":
        real = _real_leaf(leaf_port, tmp_path)
        real_leafs.append(real)
        real.wait_ready()
        leaf: NatsServerProcess | SiteProcess = real
        wait_for_log(middle, 'leaf "real"', timeout=DEADLINE_S)
    else:
        leaf = _bottom_site(start_site, leaf_port, tmp_path)
        wait_for_log(middle, "Leafnode connection created", timeout=DEADLINE_S)
    hub.stop()
    count = 200
    low = await nats.connect(leaf.url)
    try:
        for i in range(count):
            await low.publish("tel.a", b"%d" % i)
        await low.flush()
    finally:
        await low.close()

    def backlog(site: SiteProcess | NatsServerProcess) -> int:
        status, body = http_get(site.http_port, "/buffer")  # type: ignore[union-attr]
        assert status == 200, body
        return int(json.loads(body)["total"]["msgs"])

    await wait_until(
        lambda: backlog(middle) == count, timeout=DEADLINE_S, what="the middle's backlog"
    )
    if below == "leafnode":
        await wait_until(lambda: backlog(leaf) == 0, timeout=DEADLINE_S, what="bottom drained")
    restart_process(hub)
    hub.wait_ready()
    top = await nats.connect(hub.url)
    try:
        got: list[bytes] = []
        await _collect(top, "tel.>", got)
        await wait_until(
            lambda: len(got) >= count, timeout=DEADLINE_S, what="the backlog at the hub"
        )
        await asyncio.sleep(0.3)
        assert got == [b"%d" % i for i in range(count)]
        await wait_until(lambda: backlog(middle) == 0, timeout=DEADLINE_S, what="acked")
    finally:
        await top.close()
