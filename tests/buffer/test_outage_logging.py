"""A store outage is one warning line when it starts and one when it ends (issue 11 point 1).

Real hub, store, router and uplink; the store process is SIGKILLed and
started again, or the PostgreSQL server under it is stopped and started. The
uplink's drain has several tasks asking the store (reads, acks, stats) and
reconnect attempts that fail in different ways (connection closed, then
refused), so it used to log the outage once per task or per new reason and
"available again" once per task. The router logs the same transitions once.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from tests.buffer.conftest import QUIET, HubCollector, poll, pubs
from tests.rawclient import RawClient

if TYPE_CHECKING:
    from tests.buffer.conftest import BufferSite, Sites
    from tests.support import PgCluster

pytestmark = [pytest.mark.e2e]

UPLINK_DOWN = re.compile(r'WRN.*Leafnode remote "central": store unavailable')
UPLINK_UP = re.compile(r'WRN.*Leafnode remote "central": store available again')
# What the uplink said about the store before this change: none of it may remain.
OLD_LINES = ("store unavailable at", "store is back", "store read failed", "store stats failed")


def start(sites: Sites, store_url: str | None = None) -> tuple[BufferSite, HubCollector]:
    hub = sites.hub()
    site = sites.site(hub, store_url=store_url)
    site.wait_ready_link()
    collector = HubCollector(hub.proc.port)
    poll(site.subscriptions, lambda subs: "tele.>" in subs, timeout=15, what="hub interest")
    return site, collector


def arrived(collector: HubCollector, payloads: list[bytes]) -> None:
    poll(
        collector.snapshot,
        lambda got: set(payloads) <= set(got),
        timeout=30,
        what=f"{len(payloads)} messages at the hub",
    )


def assert_one_outage(site: BufferSite) -> None:
    text = site.uplink.log_text()
    assert len(UPLINK_DOWN.findall(text)) == 1, text
    assert len(UPLINK_UP.findall(text)) == 1, text
    assert not any(old in text for old in OLD_LINES), text


def assert_router_one_outage(site: BufferSite) -> None:
    router = site.router.log_text()
    assert router.count("Store unavailable: ") == 1, router
    assert router.count("Store is back at ") == 1, router


def test_store_killed_and_restarted(sites: Sites) -> None:
    site, collector = start(sites)
    site.publish([("tele.before", b"before")])
    arrived(collector, [b"before"])
    site.store.kill()
    # Several reconnect attempts fail (the first sees the connection close,
    # the next ones a refused or missing socket) before the store is back.
    poll(
        lambda: site.buffer()["store_error"],
        lambda error: isinstance(error, str) and "connection lost" not in error,
        timeout=30,
        what="a failed reconnect to the store",
    )
    site.store = site._new_store()
    poll(site.buffer, lambda b: b["store_connected"] is True, timeout=30, what="store back")
    site.publish([("tele.after", b"after")])
    arrived(collector, [b"after"])
    assert_one_outage(site)
    assert_router_one_outage(site)


def test_postgres_stopped_while_draining(pg_cluster: PgCluster, sites: Sites) -> None:
    site, collector = start(sites, pg_cluster.create_database())
    # A backlog while the hub is down; the database goes down, the hub comes
    # back: the drain's reads fail, and a flushed publish waits in the router.
    site.hub.stop()
    site.publish([(f"tele.{i}", b"%d" % i) for i in range(20)])
    pg_cluster.shutdown("fast")
    try:
        site.hub.start()
        site.wait_ready_link()
        poll(
            site.buffer,
            lambda b: b["store_error"] is not None,
            timeout=30,
            what="the drain seeing the database down",
        )
        held = RawClient(site.router.port)
        held.send(QUIET + pubs([("tele.held", b"held")]) + b"PING\r\n")
        poll(
            lambda: site.router.log_text(),
            lambda text: "Store unavailable: " in text,
            timeout=30,
            what="the router's outage line",
        )
    finally:
        pg_cluster.start()
    assert held.read_until(b"PONG\r\n", timeout=30) == b"PONG\r\n"
    collector = HubCollector(site.hub.proc.port)
    poll(site.subscriptions, lambda subs: "tele.>" in subs, timeout=15, what="hub interest")
    site.wait_backlog(0, timeout=60)
    site.publish([("tele.after", b"after")])
    arrived(collector, [b"after"])
    poll(site.buffer, lambda b: b["store_error"] is None, timeout=30, what="store healthy")
    assert_one_outage(site)
    assert_router_one_outage(site)
