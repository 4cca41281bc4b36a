"""Accounts and permissions across the link (issue #3 item 6, §4.9).

Several remotes each bind one local account to one hub account and stay
isolated; deny lists and the hub's permissions are enforced at the leaf, so
the hub never has a reason to close the link.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import nats
import pytest

from tests.conftest import until_responding, wait_until
from tests.support import hub_binaries, wait_for_log
from tests.uplink.conftest import interest_ready, remote_config

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from tests.uplink.conftest import HubStarter, SiteStarter

pytestmark = [pytest.mark.asyncio, pytest.mark.e2e]

LATEST = hub_binaries().get("latest")

HUB_ACCOUNTS = """
accounts {
  HA: { users: [ { user: ca, password: ca } ] }
  HB: { users: [ { user: cb, password: cb } ] }
}
"""
HUB_LEAF_USERS = """
authorization {
  users: [
    { user: la, password: la, account: HA }
    { user: lb, password: lb, account: HB }
  ]
}
"""
SITE_ACCOUNTS = """
accounts {
  A: { users: [ { user: ua, password: ua } ] }
  B: { users: [ { user: ub, password: ub } ] }
}
"""


class Collect:
    def __init__(self) -> None:
        self.subjects: list[str] = []

    async def cb(self, msg: Msg) -> None:
        self.subjects.append(msg.subject)


async def test_remotes_bind_accounts_in_isolation(
    hub_factory: HubStarter, site_factory: SiteStarter, hub_binary: str
) -> None:
    hub = hub_factory(HUB_ACCOUNTS, leaf_config=HUB_LEAF_USERS, binary=hub_binary)
    port = hub.leaf_port
    site = site_factory(
        remote_config(
            f'{{ name: ra, url: "nats-leaf://la:la@127.0.0.1:{port}", account: A }}',
            f'{{ name: rb, url: "nats-leaf://lb:lb@127.0.0.1:{port}", account: B }}',
            extra=SITE_ACCOUNTS,
        )
    )
    await asyncio.to_thread(site.uplink.wait_connected, 2)
    hub_a = await nats.connect(hub.url, user="ca", password="ca")
    hub_b = await nats.connect(hub.url, user="cb", password="cb")
    site_a = await nats.connect(site.router.url, user="ua", password="ua")
    site_b = await nats.connect(site.router.url, user="ub", password="ub")

    def responder(name: bytes):
        async def cb(msg: Msg) -> None:
            await msg.respond(name)

        return cb

    got_a, got_b = Collect(), Collect()
    await site_a.subscribe("iso.svc", cb=responder(b"A"))
    await site_b.subscribe("iso.svc", cb=responder(b"B"))
    await site_a.subscribe("iso.events", cb=got_a.cb)
    await site_b.subscribe("iso.events", cb=got_b.cb)
    await interest_ready(hub_a, site_a, "a")
    await interest_ready(hub_b, site_b, "b")
    for _ in range(5):
        assert (await hub_a.request("iso.svc", b"", timeout=5)).data == b"A"
        assert (await hub_b.request("iso.svc", b"", timeout=5)).data == b"B"
    await hub_a.publish("iso.events", b"to A")
    await hub_b.publish("iso.events", b"to B")
    await wait_until(lambda: len(got_a.subjects) == 1 and len(got_b.subjects) == 1, what="events")
    # Site to hub, too: each site account reaches only its hub account.
    hub_got_a, hub_got_b = Collect(), Collect()
    await hub_a.subscribe("up.events", cb=hub_got_a.cb)
    await hub_b.subscribe("up.events", cb=hub_got_b.cb)
    await interest_ready(site_a, hub_a, "ha")
    await interest_ready(site_b, hub_b, "hb")
    await site_a.publish("up.events", b"from A")
    await site_a.flush()
    await wait_until(lambda: len(hub_got_a.subjects) == 1, what="A's event at HA")
    await site_b.publish("up.events", b"from B")
    await wait_until(lambda: len(hub_got_b.subjects) == 1, what="B's event at HB")
    assert len(hub_got_a.subjects) == 1
    for nc in (hub_a, hub_b, site_a, site_b):
        await nc.close()


async def test_deny_imports_and_exports(
    hub_factory: HubStarter, site_factory: SiteStarter, hub_binary: str
) -> None:
    hub = hub_factory(binary=hub_binary)
    remote = f'{{ url: "{hub.leaf_url}", deny_exports: ["secret.>"], deny_imports: ["private.>"] }}'
    site = site_factory(remote_config(remote))
    hub_nc = await nats.connect(hub.url)
    site_nc = await nats.connect(site.router.url)
    at_hub, at_site = Collect(), Collect()
    await hub_nc.subscribe("secret.>", cb=at_hub.cb)
    await hub_nc.subscribe("public.up", cb=at_hub.cb)
    await site_nc.subscribe("private.>", cb=at_site.cb)
    await site_nc.subscribe("public.down", cb=at_site.cb)
    await interest_ready(site_nc, hub_nc, "hub")
    await interest_ready(hub_nc, site_nc, "site")
    # Denied subjects go first: when the allowed one arrives, they would have too.
    await site_nc.publish("secret.plans", b"no")
    await site_nc.publish("public.up", b"yes")
    await hub_nc.publish("private.data", b"no")
    await hub_nc.publish("public.down", b"yes")
    await wait_until(
        lambda: "public.up" in at_hub.subjects and "public.down" in at_site.subjects,
        what="allowed subjects",
    )
    assert at_hub.subjects == ["public.up"]
    assert at_site.subjects == ["public.down"]
    assert "private.>" not in await asyncio.to_thread(hub.leaf_subscriptions)
    await hub_nc.close()
    await site_nc.close()


async def test_hub_permissions_are_enforced_at_the_leaf(
    hub_factory: HubStarter, site_factory: SiteStarter, hub_binary: str
) -> None:
    hub_config = """
    authorization {
      users: [
        { user: leaf, password: lp, permissions: {
            publish: ["allowed.>", "_INBOX.>", "ready.>"]
            subscribe: ["allowed.>", "_INBOX.>", "ready.>"] } }
        { user: client, password: cp }
      ]
    }
    """
    hub = hub_factory(hub_config, binary=hub_binary)
    url = f"nats-leaf://leaf:lp@127.0.0.1:{hub.leaf_port}"
    site = site_factory(remote_config(f'{{ name: perm, url: "{url}" }}'))
    hub_nc = await nats.connect(hub.url, user="client", password="cp")
    site_nc = await nats.connect(site.router.url)
    at_hub = Collect()
    # A wildcard hub subscription: the hub announces it, so only the leaf's
    # own export check keeps "denied.pub" from crossing (2.15 would close).
    await hub_nc.subscribe(">", cb=at_hub.cb)
    await interest_ready(site_nc, hub_nc, "hub")
    # A literal subscription outside the import permission: announcing it
    # would be a violation, so the leaf keeps it local.
    await site_nc.subscribe("denied.sub")

    async def allowed(msg: Msg) -> None:
        await msg.respond(b"ok")

    await site_nc.subscribe("allowed.svc", cb=allowed)
    await until_responding(hub_nc, "allowed.svc", timeout=15)
    await site_nc.publish("denied.pub", b"no")
    await site_nc.publish("allowed.pub", b"yes")
    await wait_until(lambda: "allowed.pub" in at_hub.subjects, what="allowed publish")
    assert "denied.pub" not in at_hub.subjects
    assert "denied.sub" not in await asyncio.to_thread(hub.leaf_subscriptions)
    log = site.uplink.log_text()
    assert log.count(": connected to ") == 1
    assert "Violation" not in log
    await hub_nc.close()
    await site_nc.close()


async def test_two_hubs_serve_one_account(
    hub_factory: HubStarter, site_factory: SiteStarter
) -> None:
    one, two = hub_factory(), hub_factory()
    site = site_factory(
        remote_config(
            f'{{ name: one, url: "{one.leaf_url}" }}', f'{{ name: two, url: "{two.leaf_url}" }}'
        )
    )
    await asyncio.to_thread(site.uplink.wait_connected, 2)
    one_nc = await nats.connect(one.url)
    two_nc = await nats.connect(two.url)
    site_nc = await nats.connect(site.router.url)
    got_one, got_two = Collect(), Collect()
    queued_one, queued_two = Collect(), Collect()
    await one_nc.subscribe("both.events", cb=got_one.cb)
    await two_nc.subscribe("both.events", cb=got_two.cb)
    await one_nc.subscribe("both.work", queue="g", cb=queued_one.cb)
    await two_nc.subscribe("both.work", queue="g", cb=queued_two.cb)
    await interest_ready(site_nc, one_nc, "one")
    await interest_ready(site_nc, two_nc, "two")
    for _ in range(10):
        await site_nc.publish("both.events", b"e")
        await site_nc.publish("both.work", b"w")
    await wait_until(
        lambda: len(got_one.subjects) == 10 and len(got_two.subjects) == 10, what="fan-out"
    )
    # One queue group name across the account's hubs: each message once.
    await wait_until(
        lambda: len(queued_one.subjects) + len(queued_two.subjects) == 10, what="queue"
    )
    # Hub-to-site works through either link.
    await site_nc.subscribe("both.svc", cb=_ok)
    await interest_ready(one_nc, site_nc, "s1")
    await interest_ready(two_nc, site_nc, "s2")
    assert (await one_nc.request("both.svc", b"", timeout=5)).data == b"ok"
    assert (await two_nc.request("both.svc", b"", timeout=5)).data == b"ok"
    for nc in (one_nc, two_nc, site_nc):
        await nc.close()


async def _ok(msg: Msg) -> None:
    await msg.respond(b"ok")


@pytest.mark.skipif(LATEST is None, reason="2.9 evicts the duplicate name instead")
async def test_two_links_to_one_hub_account_is_a_loop(
    hub_factory: HubStarter, site_factory: SiteStarter
) -> None:
    hub = hub_factory(binary=LATEST)
    site = site_factory(
        remote_config(
            f'{{ name: first, url: "{hub.leaf_url}" }}',
            f'{{ name: second, url: "{hub.leaf_url}" }}',
        ),
        wait=False,
    )
    # Our $LDS comes back over the other link (or the hub sees its own): one
    # link is refused as a loop and retried only after 30 s.
    text = await asyncio.to_thread(
        wait_for_log, site.uplink, r"(?i)loop detected.*\n?.*30(\.0)?s", timeout=20
    )
    assert "30" in text
    site_nc = await nats.connect(site.router.url)
    hub_nc = await nats.connect(hub.url)
    await hub_nc.subscribe("loop.svc", cb=_ok)
    await until_responding(site_nc, "loop.svc", timeout=15)
    await site_nc.close()
    await hub_nc.close()
