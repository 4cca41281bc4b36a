"""Messages across a real hub link, both ways, against both nats-server versions.

Each test runs a real hub (``hub_binary``), a real site (router + uplink) and
nats-py clients on both sides. Interest is awaited through ``interest_ready``,
never by sleeping.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import nats
import pytest
from nats.errors import NoRespondersError

from tests.conftest import Inbox, wait_until
from tests.uplink.conftest import interest_ready, remote_config

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from tests.uplink.conftest import HubStarter, SiteStarter

pytestmark = [pytest.mark.asyncio, pytest.mark.e2e]


async def test_site_to_hub_and_hub_to_site(
    hub_factory: HubStarter, site_factory: SiteStarter, hub_binary: str
) -> None:
    hub = hub_factory(binary=hub_binary)
    site = site_factory(remote_config(f'{{ url: "{hub.leaf_url}" }}'))
    hub_nc = await nats.connect(hub.url)
    site_nc = await nats.connect(site.router.url)
    at_hub, at_site = Inbox(), Inbox()
    await hub_nc.subscribe("to.hub.>", cb=at_hub.cb)
    await site_nc.subscribe("to.site.*", cb=at_site.cb)
    await interest_ready(site_nc, hub_nc, "hub")
    await interest_ready(hub_nc, site_nc, "site")
    for i in range(50):
        await site_nc.publish(f"to.hub.{i}", b"up %d" % i)
        await hub_nc.publish(f"to.site.{i}", b"down %d" % i)
    await wait_until(lambda: len(at_hub.msgs) == 50 and len(at_site.msgs) == 50, what="50 each way")
    assert at_hub.data == [b"up %d" % i for i in range(50)]
    assert at_site.data == [b"down %d" % i for i in range(50)]
    assert [m.subject for m in at_site.msgs[:2]] == ["to.site.0", "to.site.1"]
    await hub_nc.close()
    await site_nc.close()


async def test_headers_both_ways(
    hub_factory: HubStarter, site_factory: SiteStarter, hub_binary: str
) -> None:
    hub = hub_factory(binary=hub_binary)
    site = site_factory(remote_config(f'{{ url: "{hub.leaf_url}" }}'))
    hub_nc = await nats.connect(hub.url)
    site_nc = await nats.connect(site.router.url)
    at_hub, at_site = Inbox(), Inbox()
    await hub_nc.subscribe("h.up", cb=at_hub.cb)
    await site_nc.subscribe("h.down", cb=at_site.cb)
    await interest_ready(site_nc, hub_nc, "hub")
    await interest_ready(hub_nc, site_nc, "site")
    await site_nc.publish("h.up", b"payload", headers={"X-Site": "a", "Multi": "1"})
    await hub_nc.publish("h.down", b"", headers={"X-Hub": "b"})
    await wait_until(lambda: bool(at_hub.msgs and at_site.msgs), what="both messages")
    assert at_hub.msgs[0].headers == {"X-Site": "a", "Multi": "1"}
    assert at_hub.msgs[0].data == b"payload"
    assert at_site.msgs[0].headers == {"X-Hub": "b"}
    assert at_site.msgs[0].data == b""
    await hub_nc.close()
    await site_nc.close()


async def test_request_reply_both_ways(
    hub_factory: HubStarter, site_factory: SiteStarter, hub_binary: str
) -> None:
    hub = hub_factory(binary=hub_binary)
    site = site_factory(remote_config(f'{{ url: "{hub.leaf_url}" }}'))
    hub_nc = await nats.connect(hub.url)
    site_nc = await nats.connect(site.router.url)

    async def hub_service(msg: Msg) -> None:
        await msg.respond(b"hub:" + msg.data)

    async def site_service(msg: Msg) -> None:
        await msg.respond(b"site:" + msg.data)

    await hub_nc.subscribe("svc.hub", cb=hub_service)
    await site_nc.subscribe("svc.site", cb=site_service)
    await interest_ready(site_nc, hub_nc, "hub")
    await interest_ready(hub_nc, site_nc, "site")
    for i in range(20):
        reply = await site_nc.request("svc.hub", b"%d" % i, timeout=5)
        assert reply.data == b"hub:%d" % i
        reply = await hub_nc.request("svc.site", b"%d" % i, timeout=5)
        assert reply.data == b"site:%d" % i
    await hub_nc.close()
    await site_nc.close()


async def test_no_responders_for_a_missing_hub_service(
    hub_factory: HubStarter, site_factory: SiteStarter, hub_binary: str
) -> None:
    hub = hub_factory(binary=hub_binary)
    site = site_factory(remote_config(f'{{ url: "{hub.leaf_url}" }}'))
    site_nc = await nats.connect(site.router.url)
    hub_nc = await nats.connect(hub.url)
    await interest_ready(site_nc, hub_nc, "hub")
    with pytest.raises(NoRespondersError):
        await site_nc.request("svc.nowhere", b"?", timeout=5)
    await hub_nc.close()
    await site_nc.close()


async def test_queue_groups_prefer_local_members(
    hub_factory: HubStarter, site_factory: SiteStarter, hub_binary: str
) -> None:
    hub = hub_factory(binary=hub_binary)
    site = site_factory(remote_config(f'{{ url: "{hub.leaf_url}" }}'))
    hub_nc = await nats.connect(hub.url)
    site_nc = await nats.connect(site.router.url)
    hub_member, site_member = Inbox(), Inbox()
    await hub_nc.subscribe("work", queue="workers", cb=hub_member.cb)
    site_sub = await site_nc.subscribe("work", queue="workers", cb=site_member.cb)
    await interest_ready(site_nc, hub_nc, "hub")
    await interest_ready(hub_nc, site_nc, "site")
    # Each side's own member wins for its own publishes (§4.6).
    for i in range(20):
        await site_nc.publish("work", b"s%d" % i)
        await hub_nc.publish("work", b"h%d" % i)
    await wait_until(
        lambda: len(site_member.msgs) == 20 and len(hub_member.msgs) == 20, what="40 deliveries"
    )
    assert all(d.startswith(b"s") for d in site_member.data)
    assert all(d.startswith(b"h") for d in hub_member.data)
    # Without a local member, site publishes go to the hub's group.
    await site_sub.unsubscribe()
    marker = Inbox()
    await site_nc.subscribe("marker", cb=marker.cb)
    await interest_ready(hub_nc, site_nc, "site-gone")
    for i in range(10):
        await site_nc.publish("work", b"x%d" % i)
    await wait_until(lambda: len(hub_member.msgs) == 30, what="site publishes at the hub group")
    assert len(site_member.msgs) == 20
    await hub_nc.close()
    await site_nc.close()


async def test_hub_queue_message_reaches_one_site_member(
    hub_factory: HubStarter, site_factory: SiteStarter, hub_binary: str
) -> None:
    hub = hub_factory(binary=hub_binary)
    site = site_factory(remote_config(f'{{ url: "{hub.leaf_url}" }}'))
    hub_nc = await nats.connect(hub.url)
    site_nc = await nats.connect(site.router.url)
    members = [Inbox(), Inbox()]
    plain = Inbox()
    for member in members:
        await site_nc.subscribe("jobs", queue="g", cb=member.cb)
    await site_nc.subscribe("jobs", cb=plain.cb)
    await interest_ready(hub_nc, site_nc, "site")
    for i in range(40):
        await hub_nc.publish("jobs", b"%d" % i)
    await wait_until(
        lambda: sum(len(m.msgs) for m in members) == 40 and len(plain.msgs) == 40,
        what="40 queue and 40 plain deliveries",
    )
    delivered = sorted(int(d) for m in members for d in m.data)
    assert delivered == list(range(40))
    await hub_nc.close()
    await site_nc.close()


async def test_interest_appears_and_disappears_on_the_hub(
    hub_factory: HubStarter, site_factory: SiteStarter, hub_binary: str
) -> None:
    hub = hub_factory(binary=hub_binary)
    site = site_factory(remote_config(f'{{ url: "{hub.leaf_url}" }}'))
    site_nc = await nats.connect(site.router.url)
    one = await site_nc.subscribe("interest.a")
    two = await site_nc.subscribe("interest.a")
    queue = await site_nc.subscribe("interest.q", queue="g")

    async def hub_sees(subject: str, present: bool) -> bool:
        subjects = await asyncio.to_thread(hub.leaf_subscriptions)
        return (subject in subjects) is present

    await wait_until(lambda: hub_sees("interest.a", True), timeout=10, what="LS+ interest.a")
    await wait_until(lambda: hub_sees("interest.q", True), timeout=10, what="LS+ interest.q g")
    await one.unsubscribe()
    await queue.unsubscribe()
    await wait_until(lambda: hub_sees("interest.q", False), timeout=10, what="LS- interest.q g")
    # One of the two plain subscriptions is left: the interest stays.
    assert await hub_sees("interest.a", True)
    await two.unsubscribe()
    await wait_until(lambda: hub_sees("interest.a", False), timeout=10, what="LS- interest.a")
    await site_nc.close()


async def test_east_west_between_two_sites(
    hub_factory: HubStarter, site_factory: SiteStarter, hub_binary: str
) -> None:
    hub = hub_factory(binary=hub_binary)
    east = site_factory(remote_config(f'{{ url: "{hub.leaf_url}" }}'))
    west = site_factory(remote_config(f'{{ url: "{hub.leaf_url}" }}'))
    east_nc = await nats.connect(east.router.url)
    west_nc = await nats.connect(west.router.url)

    async def west_service(msg: Msg) -> None:
        await msg.respond(b"west got " + msg.data)

    at_west = Inbox()
    await west_nc.subscribe("ew.events", cb=at_west.cb)
    await west_nc.subscribe("ew.svc", cb=west_service)
    await interest_ready(east_nc, west_nc, "west")
    await east_nc.publish("ew.events", b"from east")
    reply = await east_nc.request("ew.svc", b"hello", timeout=5)
    assert reply.data == b"west got hello"
    await wait_until(lambda: at_west.data == [b"from east"], what="east-west event")
    await east_nc.close()
    await west_nc.close()
