"""The drain end to end: backlog replay, headers, interest gating, queue groups, redrive.

Real processes only (``conftest.py``): a hub nats-server (both versions where
the hub's behaviour matters), the store, the router and the uplink; nats-py
clients on the hub, raw-socket clients on the site.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import nats
import pytest

from leafnode.ipc import STORE_SOCKET
from tests.buffer.conftest import QUIET, apoll, poll, pubs
from tests.conftest import Inbox, wait_until
from tests.ipcclient import request_once
from tests.rawclient import RawClient

if TYPE_CHECKING:
    from tests.buffer.conftest import BufferSite, Sites

pytestmark = [pytest.mark.asyncio, pytest.mark.e2e]


def leaf_id(site: BufferSite) -> str:
    value = request_once(site.run_dir / STORE_SOCKET, "ping").fields["leaf_id"]
    assert isinstance(value, str)
    return value


async def wait_hub_interest(site: BufferSite, *keys: str) -> None:
    """Until the uplink has seen the hub's ``LS+`` for every key."""
    await apoll(
        site.subscriptions,
        lambda subs: all(k in subs for k in keys),
        timeout=15,
        what=f"hub interest {keys}",
    )


async def test_backlog_from_an_outage_arrives_in_order_with_both_headers(
    sites: Sites, hub_binary: str
) -> None:
    hub = sites.hub(binary=hub_binary)
    site = sites.site(hub)
    site.wait_ready_link()
    hub.stop()
    poll(site.status, lambda s: s["connected"] is False, timeout=15, what="link down")
    before_us = time.time_ns() // 1000
    site.publish([(f"tele.{i % 3}", b"m%d" % i) for i in range(300)])
    own = b"NATS/1.0\r\nNats-Msg-Id: mine\r\nX-App: 1\r\n\r\n"
    hpub = b"HPUB tele.h %d %d\r\n%shi\r\n" % (len(own), len(own) + 2, own)
    out, _ = RawClient(site.router.port).exchange(QUIET + hpub)
    assert out == b"PONG\r\n"
    after_us = time.time_ns() // 1000
    assert site.backlog() == 301
    hub.start()
    nc = await nats.connect(hub.url)
    inbox = Inbox()
    await nc.subscribe("tele.>", cb=inbox.cb)
    await wait_until(lambda: len(inbox.msgs) >= 301, timeout=30, what="the backlog at the hub")
    assert inbox.data == [b"m%d" % i for i in range(300)] + [b"hi"]
    prefix = leaf_id(site) + "-"
    seqs = []
    for msg in inbox.msgs[:300]:
        headers = msg.headers or {}
        assert headers["Nats-Msg-Id"].startswith(prefix)
        seqs.append(int(headers["Nats-Msg-Id"][len(prefix) :]))
        stamp = headers["Leafnode-Buffered-At"]
        assert stamp.endswith("Z")
        at = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        assert at.tzinfo == UTC
        assert before_us <= int(at.timestamp() * 1_000_000) <= after_us
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 300
    last = inbox.msgs[-1].headers or {}
    assert last["Nats-Msg-Id"] == "mine"
    assert last["X-App"] == "1"
    assert "Leafnode-Buffered-At" in last
    await apoll(site.backlog, lambda n: n == 0, timeout=30, what="empty backlog")
    await nc.close()


async def test_interest_gates_release_and_later_messages_with_interest_proceed(
    sites: Sites, hub_binary: str
) -> None:
    hub = sites.hub(binary=hub_binary)
    site = sites.site(hub)
    site.wait_ready_link()
    nc = await nats.connect(hub.url)
    other, waiting = Inbox(), Inbox()
    await nc.subscribe("tele.other.>", cb=other.cb)
    await wait_hub_interest(site, "tele.other.>")
    items = []
    for i in range(50):
        items += [(f"tele.wait.{i}", b"w%d" % i), (f"tele.other.{i}", b"o%d" % i)]
    site.publish(items)
    await wait_until(lambda: len(other.msgs) == 50, timeout=20, what="messages with interest")
    assert other.data == [b"o%d" % i for i in range(50)]
    await apoll(
        site.buffer,
        lambda b: b["waiting_for_interest"] == 50 and b["state"] == "waiting_for_interest",
        timeout=15,
        what="50 waiting for interest",
    )
    assert site.backlog() == 50
    await nc.subscribe("tele.wait.>", cb=waiting.cb)
    await wait_until(lambda: len(waiting.msgs) == 50, timeout=20, what="released backlog")
    assert waiting.data == [b"w%d" % i for i in range(50)]
    await apoll(site.backlog, lambda n: n == 0, timeout=30, what="empty backlog")
    await apoll(
        site.buffer, lambda b: b["waiting_for_interest"] == 0, timeout=10, what="none waiting"
    )
    await nc.close()


async def test_nothing_reaches_a_hub_without_interest(sites: Sites) -> None:
    hub = sites.hub()
    site = sites.site(hub)
    site.wait_ready_link()
    site.publish([(f"tele.{i}", b"x") for i in range(40)])
    poll(site.buffer, lambda b: b["waiting_for_interest"] == 40, timeout=15, what="40 waiting")
    assert hub.leaf_in_msgs() == 0
    assert site.status()["out_msgs"] == 0


async def test_queue_groups_stay_one_group_across_site_and_hub(
    sites: Sites, hub_binary: str
) -> None:
    hub = sites.hub(binary=hub_binary)
    site = sites.site(hub)
    site.wait_ready_link()
    local = RawClient(site.router.port)
    assert local.exchange(QUIET + b"SUB tele.q workers 1\r\n")[0] == b"PONG\r\n"
    nc = await nats.connect(hub.url)
    hub_workers, hub_other, hub_plain = Inbox(), Inbox(), Inbox()
    await nc.subscribe("tele.q", queue="workers", cb=hub_workers.cb)
    await nc.subscribe("tele.q", queue="other", cb=hub_other.cb)
    await nc.subscribe("tele.q", cb=hub_plain.cb)
    await wait_hub_interest(site, "tele.q workers", "tele.q other", "tele.q")
    site.publish([("tele.q", b"a%d" % i) for i in range(30)])
    got = local.read_until(b"a29\r\n", timeout=10)
    assert got.count(b"MSG tele.q 1 ") == 30
    # The local member of "workers" stays the only one: the hub gets the rest.
    local.exchange(b"UNSUB 1\r\n")
    site.publish([("tele.q", b"b%d" % i) for i in range(10)])
    want = [b"a%d" % i for i in range(30)] + [b"b%d" % i for i in range(10)]
    await wait_until(
        lambda: hub_other.data == want and hub_plain.data == want and len(hub_workers.msgs) == 10,
        timeout=20,
        what="hub deliveries",
    )
    # In order at the hub, so "workers" got no message of the first 30.
    assert hub_workers.data == [b"b%d" % i for i in range(10)]
    await nc.close()


async def test_live_subjects_unaffected_and_buffered_ones_sent_once(
    sites: Sites, hub_binary: str
) -> None:
    hub = sites.hub(binary=hub_binary)
    site = sites.site(hub)
    site.wait_ready_link()
    nc = await nats.connect(hub.url)
    live, tele = Inbox(), Inbox()
    await nc.subscribe("live.>", cb=live.cb)
    await nc.subscribe("tele.>", cb=tele.cb)
    await wait_hub_interest(site, "live.>", "tele.>")
    items = []
    for i in range(100):
        items += [(f"live.{i}", b"l%d" % i), (f"tele.{i}", b"t%d" % i)]
    site.publish(items)
    await wait_until(
        lambda: len(live.msgs) == 100 and len(tele.msgs) == 100, timeout=20, what="both streams"
    )
    await apoll(site.backlog, lambda n: n == 0, timeout=30, what="empty backlog")
    await apoll(site.buffer, lambda b: b["sent"] == 100, timeout=10, what="100 sent")
    await nc.flush()
    assert live.data == [b"l%d" % i for i in range(100)]
    assert all(m.headers is None for m in live.msgs)
    assert tele.data == [b"t%d" % i for i in range(100)]
    assert all("Leafnode-Buffered-At" in (m.headers or {}) for m in tele.msgs)
    assert site.status()["live_buffered"] == 100
    await nc.close()


async def test_redrive_sends_retained_messages_again(sites: Sites) -> None:
    hub = sites.hub()
    site = sites.site(hub, buffer='subjects: ["tele.>"], retain: "1h"')
    site.wait_ready_link()
    nc = await nats.connect(hub.url)
    inbox = Inbox()
    await nc.subscribe("tele.>", cb=inbox.cb)
    await wait_hub_interest(site, "tele.>")
    site.publish([(f"tele.{'ab'[i % 2]}", b"r%d" % i) for i in range(20)])
    await wait_until(lambda: len(inbox.msgs) == 20, timeout=20, what="first delivery")
    await apoll(site.backlog, lambda n: n == 0, timeout=30, what="empty backlog")
    first_ids = [(m.headers or {})["Nats-Msg-Id"] for m in inbox.msgs]
    assert site.ctl("redrive", remote="central", subject="tele.a") == {
        "redriven": 10,
        "first_seq": int(first_ids[0].rsplit("-", 1)[1]),
        "backlogs": {"": 10},  # SQLite: one backlog, ""
    }
    await wait_until(lambda: len(inbox.msgs) == 30, timeout=20, what="redriven messages")
    again = inbox.msgs[20:]
    assert [m.data for m in again] == [b"r%d" % i for i in range(0, 20, 2)]
    assert [(m.headers or {})["Nats-Msg-Id"] for m in again] == first_ids[0::2]
    await apoll(site.backlog, lambda n: n == 0, timeout=30, what="empty backlog")
    await nc.close()


async def test_pause_holds_the_backlog_and_resume_releases_it(sites: Sites) -> None:
    hub = sites.hub()
    site = sites.site(hub)
    site.wait_ready_link()
    nc = await nats.connect(hub.url)
    inbox = Inbox()
    await nc.subscribe("tele.>", cb=inbox.cb)
    await wait_hub_interest(site, "tele.>")
    paused = site.ctl("replay", action="pause")["remotes"]
    assert isinstance(paused, list)
    assert paused[0]["paused"] is True
    site.publish([("tele.p", b"p%d" % i) for i in range(25)])
    await apoll(site.buffer, lambda b: b["remaining"] == 25, timeout=10, what="backlog seen")
    assert site.buffer()["state"] == "paused"
    assert hub.leaf_in_msgs() == 0
    site.ctl("replay", action="resume")
    await wait_until(lambda: len(inbox.msgs) == 25, timeout=20, what="resumed replay")
    assert inbox.data == [b"p%d" % i for i in range(25)]
    await nc.close()


async def test_publishes_during_replay_keep_their_place(sites: Sites) -> None:
    hub = sites.hub()
    site = sites.site(hub)
    site.wait_ready_link()
    hub.stop()
    poll(site.status, lambda s: s["connected"] is False, timeout=15, what="link down")
    site.publish([("tele.o", b"%d" % i) for i in range(3000)])
    hub.start()
    nc = await nats.connect(hub.url)
    inbox = Inbox()
    await nc.subscribe("tele.o", cb=inbox.cb)
    client = RawClient(site.router.port)
    client.send(QUIET)
    for start in range(3000, 6000, 500):
        client.exchange(pubs([("tele.o", b"%d" % i) for i in range(start, start + 500)]))
    await wait_until(lambda: len(inbox.msgs) >= 6000, timeout=30, what="6000 messages")
    assert inbox.data == [b"%d" % i for i in range(6000)]
    await nc.close()
