"""Restarts: the hub, the uplink alone, the router alone (issue #3 item 5).

Whichever process restarts, interest and traffic come back without touching
the others, and local messaging never stops.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import nats
import pytest

from tests.conftest import respond_ok, until_responding, wait_until
from tests.support import free_port, restart_process, wait_for_log
from tests.uplink.conftest import interest_ready, remote_config

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from tests.uplink.conftest import HubStarter, SiteStarter

pytestmark = [pytest.mark.asyncio, pytest.mark.e2e]


async def test_hub_restart_during_traffic(
    hub_factory: HubStarter, site_factory: SiteStarter, hub_binary: str
) -> None:
    hub = hub_factory(binary=hub_binary)
    site = site_factory(remote_config(f'{{ url: "{hub.leaf_url}" }}'))
    site_nc = await nats.connect(site.router.url)
    hub_nc = await nats.connect(hub.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    at_hub: list[bytes] = []
    at_site: list[bytes] = []

    async def on_hub(msg: Msg) -> None:
        at_hub.append(msg.data)

    async def on_site(msg: Msg) -> None:
        at_site.append(msg.data)

    await hub_nc.subscribe("flow", cb=on_hub)
    await site_nc.subscribe("flow", cb=on_site)
    await interest_ready(site_nc, hub_nc, "before")
    sent = 0
    stop = asyncio.Event()

    async def publisher() -> None:
        nonlocal sent
        while not stop.is_set():
            sent += 1
            await site_nc.publish("flow", b"%d" % sent)
            await asyncio.sleep(0.005)

    task = asyncio.create_task(publisher())
    await wait_until(lambda: len(at_hub) > 10, what="traffic reaching the hub")
    hub.stop()
    # Local subscribers keep getting every message while the hub is away.
    mark = sent
    await wait_until(lambda: len(at_site) >= mark + 20, what="local traffic without the hub")
    restart_process(hub)
    hub.wait_ready()
    await asyncio.to_thread(site.uplink.wait_connected, 2)
    before = len(at_hub)
    await wait_until(lambda: len(at_hub) > before + 10, timeout=20, what="traffic after restart")
    stop.set()
    await task
    await wait_until(lambda: len(at_site) == sent, what="every local delivery")
    assert [int(d) for d in at_site] == list(range(1, sent + 1))
    await hub_nc.close()
    await site_nc.close()


async def test_uplink_restart_alone_resynchronises(
    hub_factory: HubStarter, site_factory: SiteStarter
) -> None:
    hub = hub_factory()
    site = site_factory(remote_config(f'{{ url: "{hub.leaf_url}" }}'))
    hub_nc = await nats.connect(hub.url)
    site_nc = await nats.connect(site.router.url)
    await hub_nc.subscribe("svc.hub", cb=respond_ok)
    await site_nc.subscribe("svc.site", cb=respond_ok)
    await until_responding(site_nc, "svc.hub")
    await until_responding(hub_nc, "svc.site")
    site.restart_uplink()
    await asyncio.to_thread(site.uplink.wait_connected, 1)
    # Changes made while the new uplink starts up must not be lost either.
    await site_nc.subscribe("svc.later", cb=respond_ok)
    await until_responding(site_nc, "svc.hub", timeout=15)
    await until_responding(hub_nc, "svc.site", timeout=15)
    await until_responding(hub_nc, "svc.later", timeout=15)
    await hub_nc.close()
    await site_nc.close()


async def test_router_restart_alone_resynchronises(
    hub_factory: HubStarter, site_factory: SiteStarter
) -> None:
    hub = hub_factory()
    site = site_factory(remote_config(f'{{ url: "{hub.leaf_url}" }}'))
    hub_nc = await nats.connect(hub.url)
    await hub_nc.subscribe("svc.hub", cb=respond_ok)
    stayer = await nats.connect(site.router.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    leaver = await nats.connect(site.router.url, allow_reconnect=False)
    await stayer.subscribe("svc.site", cb=respond_ok)
    await leaver.subscribe("gone.after.restart")
    await until_responding(stayer, "svc.hub")
    await interest_ready(hub_nc, leaver, "leaver")

    async def hub_sees(subject: str) -> bool:
        return subject in await asyncio.to_thread(hub.leaf_subscriptions)

    async def hub_forgot(subject: str) -> bool:
        return not await hub_sees(subject)

    assert await hub_sees("gone.after.restart")
    site.restart_router()
    await asyncio.to_thread(
        wait_for_log, site.uplink, "Connected to the router", count=2, timeout=15
    )
    # The stayer's subscription comes back, the leaver's is withdrawn from the
    # hub, and the hub's interest reaches the new router: all without
    # restarting the uplink or dropping its hub link.
    await until_responding(hub_nc, "svc.site", timeout=15)
    await until_responding(stayer, "svc.hub", timeout=15)
    await wait_until(lambda: hub_forgot("gone.after.restart"), timeout=10, what="LS- after resync")
    assert site.uplink.log_text().count(": connected to ") == 1
    await hub_nc.close()
    await stayer.close()
    await leaver.close()


async def test_failover_to_a_url_learned_from_the_hub(
    hub_factory: HubStarter, site_factory: SiteStarter, hub_binary: str
) -> None:
    c1, c2 = free_port(), free_port()

    def cluster(name: str, listen: int, peer: int) -> str:
        return (
            f"server_name: {name}\n"
            f"cluster {{ name: C, listen: 127.0.0.1:{listen}, "
            f'routes: ["nats-route://127.0.0.1:{peer}"] }}\n'
        )

    hub1 = hub_factory(cluster("h1", c1, c2), binary=hub_binary)
    site = site_factory(remote_config(f'{{ name: ha, url: "{hub1.leaf_url}" }}'))
    hub2 = hub_factory(cluster("h2", c2, c1), binary=hub_binary)
    # Only hub1 is configured; hub2's leafnode port arrives in an INFO.
    await asyncio.to_thread(
        wait_for_log, site.uplink, rf"hub advertised nats-leaf://127\.0\.0\.1:{hub2.leaf_port}"
    )
    hub1.kill()
    text = await asyncio.to_thread(site.uplink.wait_connected, 2)
    assert f"connected to nats-leaf://127.0.0.1:{hub2.leaf_port}" in text
    hub_nc = await nats.connect(hub2.url)
    site_nc = await nats.connect(site.router.url)
    await hub_nc.subscribe("after.failover", cb=respond_ok)
    await until_responding(site_nc, "after.failover", timeout=15)
    await hub_nc.close()
    await site_nc.close()
