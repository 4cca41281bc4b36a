"""A traced message that crosses to a real nats-server 2.15 hub.

The router forwards it with ``Nats-Trace-Hop: 1`` and reports a leaf egress;
the hub, as a nats-server does for a message from a leaf, publishes its own
event (ingress from the leaf connection, hop 1) to the same destination, which
comes back to the site's subscriber. A trace-only message is not forwarded.
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


async def test_trace_crosses_the_hub_with_a_hop(
    hub_factory: HubStarter, site_factory: SiteStarter
) -> None:
    hub = hub_factory(binary=nats_server_binary())
    site = site_factory(remote_config(f'{{ url: "{hub.leaf_url}" }}'))
    traces: asyncio.Queue[Msg] = asyncio.Queue()

    async def on_trace(msg: Msg) -> None:
        await traces.put(msg)

    hub_nc = await nats.connect(hub.url, name="at-hub")
    site_nc = await nats.connect(site.router.url, name="at-site")
    try:
        at_hub = Inbox()
        await hub_nc.subscribe("foo", cb=at_hub.cb)
        await site_nc.subscribe("trace.dest", cb=on_trace)
        await interest_ready(site_nc, hub_nc, "hub")
        await interest_ready(hub_nc, site_nc, "site")

        await site_nc.publish("foo", b"hi", headers={"Nats-Trace-Dest": "trace.dest"})
        events: list[dict[str, Any]] = [
            json.loads((await asyncio.wait_for(traces.get(), 15)).data) for _ in range(2)
        ]
        ours = next(e for e in events if e["server"]["id"] != hub_id(events))
        theirs = next(e for e in events if e["server"]["id"] == hub_id(events))
        assert ours["hops"] == 1
        (egress,) = ours["events"][1:]
        assert (egress["type"], egress["kind"], egress["hop"]) == ("eg", 4, "1")
        assert theirs["request"]["header"]["Nats-Trace-Hop"] == ["1"]
        ingress = theirs["events"][0]
        assert (ingress["type"], ingress["kind"], ingress["subj"]) == ("in", 4, "foo")
        assert [e.get("name") for e in theirs["events"][1:]] == ["at-hub"]
        assert at_hub.data == [b"hi"]
        assert at_hub.msgs[0].headers["Nats-Trace-Hop"] == "1"  # type: ignore[index]

        only = {"Nats-Trace-Dest": "trace.dest", "Nats-Trace-Only": "1"}
        await site_nc.publish("foo", b"secret", headers=only)
        event = json.loads((await asyncio.wait_for(traces.get(), 15)).data)
        (egress,) = event["events"][1:]
        assert egress["kind"] == 4
        assert egress["error"] == "Not delivered because remote does not support message tracing"
        await site_nc.publish("foo", b"marker")
        await wait_until(lambda: b"marker" in at_hub.data, timeout=15, what="marker at the hub")
        assert at_hub.data == [b"hi", b"marker"]
    finally:
        await hub_nc.close()
        await site_nc.close()


def hub_id(events: list[dict[str, Any]]) -> str:
    """The hub's server id: the event whose ingress came over a leaf connection."""
    return next(str(e["server"]["id"]) for e in events if e["events"][0]["kind"] == 4)
