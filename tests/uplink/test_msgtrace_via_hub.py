"""A traced message that crosses to a real hub: nats-server 2.15 and 2.9.10.

As a nats-server 2.11+ leaf does (checked live: a 2.15 leaf under both hubs),
the router forwards a traced message with ``Nats-Trace-Hop: 1`` and reports a
leaf egress naming the hub, hop ``1``. A 2.15 hub (INFO ``proto`` 3)
publishes its own event (ingress from the leaf connection) to the same
destination, which comes back to the site's subscriber; it gets a trace-only
message too, and traces it without delivering it. A 2.9.10 hub (``proto`` 1)
would deliver a trace-only message, so it does not get one, and our egress
says why; a message it does get carries an egress error saying that no event
comes from there.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import nats
import pytest

from tests.conftest import Inbox, wait_until
from tests.support import nats_server_binary
from tests.uplink.conftest import interest_ready, remote_config

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from tests.uplink.conftest import HubStarter, SiteStarter

pytestmark = pytest.mark.asyncio

TIMEOUT = 15.0
ONLY_NO_SUPPORT = "Not delivered because remote does not support message tracing"
NO_SUPPORT = (
    "Message delivered but remote does not support message tracing"
    " so no trace event generated from there"
)


async def test_trace_crosses_the_hub_as_nats_server(
    hub_factory: HubStarter, site_factory: SiteStarter, hub_binary: str
) -> None:
    hub = hub_factory(binary=hub_binary)
    site = site_factory(remote_config(f'{{ url: "{hub.leaf_url}" }}'))
    traces: asyncio.Queue[Msg] = asyncio.Queue()

    async def on_trace(msg: Msg) -> None:
        await traces.put(msg)

    async def events(count: int) -> list[dict[str, Any]]:
        return [
            json.loads((await asyncio.wait_for(traces.get(), TIMEOUT)).data) for _ in range(count)
        ]

    hub_nc = await nats.connect(hub.url, name="at-hub")
    site_nc = await nats.connect(site.router.url, name="at-site")
    try:
        # Tracing came with 2.11 (a leaf link's INFO then says proto 3; clients get 1).
        major, minor = (int(n) for n in hub_nc._server_info["version"].split(".")[:2])
        tracing_hub = (major, minor) >= (2, 11)
        hub_name = hub_nc._server_info["server_name"]
        at_hub = Inbox()
        await hub_nc.subscribe("foo", cb=at_hub.cb)
        await site_nc.subscribe("trace.dest", cb=on_trace)
        await interest_ready(site_nc, hub_nc, "hub")
        await interest_ready(hub_nc, site_nc, "site")

        only = {"Nats-Trace-Dest": "trace.dest", "Nats-Trace-Only": "true"}
        await site_nc.publish("foo", b"secret", headers=only)
        if tracing_hub:
            ours, theirs = _ours_and_theirs(await events(2))
            (egress,) = ours["events"][1:]
            assert "error" not in egress
            # The hub traced it (its subscriber is named) but did not deliver it.
            assert theirs["request"]["header"]["Nats-Trace-Only"] == ["true"]
            assert [e.get("name") for e in theirs["events"][1:]] == ["at-hub"]
        else:
            (ours,) = await events(1)
            (egress,) = ours["events"][1:]
            assert egress["error"] == ONLY_NO_SUPPORT
        assert (egress["type"], egress["kind"], egress["hop"]) == ("eg", 4, "1")
        assert egress["name"] == hub_name
        assert ours["hops"] == 1
        # A plain message after it: once it is at the hub, the trace-only one
        # would have been too (one publisher, one link, in order).
        await site_nc.publish("foo", b"marker")
        await wait_until(lambda: b"marker" in at_hub.data, timeout=TIMEOUT, what="marker at hub")
        assert at_hub.data == [b"marker"]

        await site_nc.publish("foo", b"hi", headers={"Nats-Trace-Dest": "trace.dest"})
        if tracing_hub:
            ours, theirs = _ours_and_theirs(await events(2))
            (egress,) = ours["events"][1:]
            assert "error" not in egress
            assert theirs["request"]["header"]["Nats-Trace-Hop"] == ["1"]
            ingress = theirs["events"][0]
            assert (ingress["type"], ingress["kind"], ingress["subj"]) == ("in", 4, "foo")
            assert [e.get("name") for e in theirs["events"][1:]] == ["at-hub"]
        else:
            (ours,) = await events(1)
            (egress,) = ours["events"][1:]
            assert egress["error"] == NO_SUPPORT
        assert (egress["kind"], egress["hop"], ours["hops"]) == (4, "1", 1)
        await wait_until(lambda: b"hi" in at_hub.data, timeout=TIMEOUT, what="hi at the hub")
        assert at_hub.data == [b"marker", b"hi"]
        assert at_hub.msgs[1].headers["Nats-Trace-Hop"] == "1"  # type: ignore[index]
        assert traces.empty()
    finally:
        await hub_nc.close()
        await site_nc.close()


def _ours_and_theirs(events: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The site's event and the hub's: the hub's ingress came over a leaf connection (kind 4)."""
    (theirs,) = [e for e in events if e["events"][0]["kind"] == 4]
    (ours,) = [e for e in events if e is not theirs]
    return ours, theirs


async def test_hub_level_survives_a_router_restart(
    hub_factory: HubStarter, site_factory: SiteStarter
) -> None:
    """A restarted router learns the hub's level again from the uplink (data link INFO)."""
    hub = hub_factory(binary=nats_server_binary())
    site = site_factory(remote_config(f'{{ url: "{hub.leaf_url}" }}'))
    site.restart_router()
    traces: asyncio.Queue[Msg] = asyncio.Queue()

    async def on_trace(msg: Msg) -> None:
        await traces.put(msg)

    hub_nc = await nats.connect(hub.url, name="at-hub")
    site_nc = await nats.connect(site.router.url, name="at-site")
    try:
        await hub_nc.subscribe("foo", cb=Inbox().cb)
        await site_nc.subscribe("trace.dest", cb=on_trace)
        await interest_ready(site_nc, hub_nc, "hub")
        await interest_ready(hub_nc, site_nc, "site")
        only = {"Nats-Trace-Dest": "trace.dest", "Nats-Trace-Only": "true"}
        await site_nc.publish("foo", b"secret", headers=only)
        got = [json.loads((await asyncio.wait_for(traces.get(), TIMEOUT)).data) for _ in range(2)]
        ours, _ = _ours_and_theirs(got)
        assert "error" not in ours["events"][1]
    finally:
        await hub_nc.close()
        await site_nc.close()
