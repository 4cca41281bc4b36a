"""Crash matrix (issue 4 item 6): kill -9 any process, or all of them, lose nothing flushed.

For each crash, on SQLite and on a real PostgreSQL: a publisher keeps
publishing flushed batches on buffered subjects while the hub drains them
into a raw subscriber; the process is SIGKILLed, restarted, and publishing
goes on. Every message whose flush returned must reach the hub subscriber,
and the first occurrences (a crash may resend, at least once) must be in
publish order.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import pytest

from tests.buffer.conftest import HubCollector, Publisher, first_occurrences, poll
from tests.support import restart_process

if TYPE_CHECKING:
    from tests.buffer.conftest import BufferSite, Sites

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def check_delivery(site: BufferSite, collector: HubCollector, publisher: Publisher) -> None:
    must = publisher.must_arrive()
    assert must, "nothing was flushed"
    got = poll(
        collector.snapshot,
        lambda got: must <= {int(p) for p in got},
        timeout=90,
        what=f"all {len(must)} flushed messages at the hub",
    )
    firsts = first_occurrences(got)
    assert firsts == sorted(firsts), "first occurrences out of publish order"
    poll(site.backlog, lambda n: n == 0, timeout=60, what="an empty backlog")
    assert collector.error is None


def start(sites: Sites, store_url: str) -> tuple[BufferSite, HubCollector]:
    hub = sites.hub()
    site = sites.site(hub, store_url=store_url)
    site.wait_ready_link()
    collector = HubCollector(hub.proc.port)
    poll(
        site.subscriptions,
        lambda subs: "tele.>" in subs,
        timeout=15,
        what="hub interest",
    )
    return site, collector


def test_kill_uplink_mid_replay(sites: Sites, store_url: str) -> None:
    site, collector = start(sites, store_url)
    site.ctl("replay", action="pause")
    publisher = Publisher(site.router.port)
    publisher.start(limit=10_000)
    publisher.join()
    site.ctl("replay", action="resume")
    poll(collector.snapshot, lambda got: len(got) > 0, timeout=30, what="replay under way")
    site.uplink.kill()
    assert len(collector.snapshot()) < 10_000, "the replay finished before the kill"
    restart_process(site.uplink)
    site.wait_uplink()
    publisher.start(limit=14_000)
    publisher.join()
    check_delivery(site, collector, publisher)


def test_kill_store_mid_append(sites: Sites, store_url: str) -> None:
    site, collector = start(sites, store_url)
    publisher = Publisher(site.router.port)
    publisher.start()
    publisher.wait_flushed(3000)
    site.store.kill()
    site.restart_store()
    publisher.wait_flushed(publisher.flushed + 3000)
    publisher.stop()
    check_delivery(site, collector, publisher)


def test_kill_router_right_after_a_flush(sites: Sites, store_url: str) -> None:
    site, collector = start(sites, store_url)
    publisher = Publisher(site.router.port)
    publisher.start()
    publisher.wait_flushed(4000)
    site.router.kill()
    publisher.join()
    restart_process(site.router)
    site.router.wait_ready()
    publisher.start(limit=publisher.next + 3000)
    publisher.join()
    check_delivery(site, collector, publisher)


def test_kill_everything_at_once(sites: Sites, store_url: str) -> None:
    site, collector = start(sites, store_url)
    publisher = Publisher(site.router.port)
    publisher.start()
    publisher.wait_flushed(4000)
    site.kill_all()
    publisher.join()
    site.start_all()
    publisher.start(limit=publisher.next + 3000)
    publisher.join()
    check_delivery(site, collector, publisher)


def test_link_drop_mid_replay(sites: Sites, store_url: str) -> None:
    """The hub stalls (SIGSTOP) until the uplink declares the link stale.

    The batch awaiting its PONG must go again on the next link. (A hub
    killed with SIGKILL would also lose what it had confirmed but not yet
    written to its subscribers: core NATS semantics, not the uplink's.)
    A first half of the backlog is delivered on the first link; the hub is
    stopped before the drain of the second half resumes, so the stall always
    lands mid-replay (stopping it once the replay was seen under way raced a
    drain of 10,000 messages that can finish within one poll).
    """
    hub = sites.hub()
    site = sites.site(hub, store_url=store_url, extra='ping_interval: "250ms"')
    site.wait_ready_link()
    collector = HubCollector(hub.proc.port)
    poll(site.subscriptions, lambda subs: "tele.>" in subs, timeout=15, what="hub interest")
    publisher = Publisher(site.router.port)
    publisher.start(limit=5_000)
    publisher.join()
    poll(collector.snapshot, lambda got: len(got) >= 5_000, timeout=30, what="the first half")
    poll(site.backlog, lambda n: n == 0, timeout=30, what="the first half acknowledged")
    site.ctl("replay", action="pause")
    publisher.start(limit=10_000)
    publisher.join()
    assert site.backlog() == 5_000
    hub.proc.proc.send_signal(signal.SIGSTOP)
    try:
        site.ctl("replay", action="resume")
        status = poll(site.status, lambda s: s["connected"] is False, timeout=15, what="stale")
    finally:
        hub.proc.proc.send_signal(signal.SIGCONT)
    assert "Stale" in str(status["last_error"])
    assert site.backlog() > 0, "a batch was acknowledged by a stopped hub"
    check_delivery(site, collector, publisher)
    assert site.status()["reconnects"] == 1
