"""Message tracing (``Nats-Trace-Dest``, ``Nats-Trace-Only``) against a real nats-server 2.15.

The same clients and publishes go to both servers; the trace events must have
the same shape and say the same things (connection names, subscriptions,
queues, errors), apart from ids and times; a trace-only message must reach
nobody on either.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import nats
import pytest

from tests.conftest import Inbox, wait_until
from tests.support import nats_server_binary

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from tests.conftest import HubFactory, RouterFactory

pytestmark = pytest.mark.asyncio

TIMEOUT = 15.0


async def _session(url: str) -> dict[str, Any]:
    """Trace three publishes; return the events and what the subscriber got."""
    delivered: asyncio.Queue[Msg] = asyncio.Queue()
    traces: asyncio.Queue[Msg] = asyncio.Queue()

    async def on_msg(msg: Msg) -> None:
        await delivered.put(msg)

    async def on_trace(msg: Msg) -> None:
        await traces.put(msg)

    sub = await nats.connect(url, name="subber")
    pub = await nats.connect(url, name="pubber", no_echo=True)
    try:
        await sub.subscribe("foo", cb=on_msg)
        await sub.subscribe("foo", queue="q", cb=on_msg)
        await sub.subscribe("bar", cb=on_msg)
        await pub.subscribe("trace.dest", cb=on_trace)
        await pub.subscribe("foo", cb=on_msg)  # its own: not delivered (no echo)
        # Wait for every subscription: a plain message to bar goes through.
        await sub.flush()
        await pub.flush()
        while True:
            await pub.publish("bar", b"ready")
            try:
                await asyncio.wait_for(delivered.get(), 0.5)
                break
            except TimeoutError:
                continue

        await pub.publish("foo", b"hello", headers={"Nats-Trace-Dest": "trace.dest", "X": "y"})
        first = [await asyncio.wait_for(delivered.get(), TIMEOUT) for _ in range(2)]
        traced = json.loads((await asyncio.wait_for(traces.get(), TIMEOUT)).data)

        only = {"Nats-Trace-Dest": "trace.dest", "Nats-Trace-Only": "true"}
        await pub.publish("foo", b"secret", headers=only)
        only_event = json.loads((await asyncio.wait_for(traces.get(), TIMEOUT)).data)
        await pub.publish("nobody", b"x", headers={"Nats-Trace-Dest": "trace.dest"})
        nobody = json.loads((await asyncio.wait_for(traces.get(), TIMEOUT)).data)
        # A plain message after the trace-only one: once it is here, the
        # trace-only one would have been too (one publisher, in order).
        await pub.publish("bar", b"marker")
        after: list[Msg] = []
        while not after or after[-1].data != b"marker":
            after.append(await asyncio.wait_for(delivered.get(), TIMEOUT))
        return {
            "first": sorted(m.data for m in first),
            "headers": first[0].headers,
            "traced": traced,
            "only": only_event,
            "nobody": nobody,
            "after": [m.data for m in after],
        }
    finally:
        await sub.close()
        await pub.close()


def _shape(event: dict[str, Any]) -> dict[str, Any]:
    """The event without ids, times and server identity; egress in a fixed order."""
    events = []
    for entry in event["events"]:
        entry = {k: v for k, v in entry.items() if k not in ("ts", "cid")}
        events.append(entry)
    ingress, egress = events[0], sorted(events[1:], key=lambda e: json.dumps(e, sort_keys=True))
    return {
        "server": sorted(set(event["server"]) - {"feature_flags"}),
        "request": event["request"],
        "hops": event.get("hops"),
        "events": [ingress, *egress],
    }


async def test_trace_events_as_nats_server(
    router_factory: RouterFactory, nats_server_factory: HubFactory
) -> None:
    router = router_factory("")
    server = nats_server_factory("", binary=nats_server_binary())
    ours = await _session(router.url)
    theirs = await _session(server.url)

    assert theirs["first"] == [b"hello", b"hello"]
    assert ours["first"] == theirs["first"]
    assert ours["headers"] == theirs["headers"]
    for key in ("traced", "only", "nobody"):
        assert _shape(ours[key]) == _shape(theirs[key]), key
    # What was compared, spelled out.
    shape = _shape(ours["traced"])
    assert shape["events"][0] == {
        "type": "in",
        "kind": 0,
        "name": "pubber",
        "acc": "$G",
        "subj": "foo",
    }
    assert {e.get("error") for e in shape["events"][1:]} == {
        None,
        "Not delivered because of no echo",
    }
    assert {e.get("queue") for e in shape["events"][1:]} == {None, "q"}
    assert len(_shape(ours["nobody"])["events"]) == 1
    # The trace-only message reached nobody, on either server.
    assert ours["after"] == theirs["after"] == [b"marker"]


async def _publish_with_forbidden_dest(url: str) -> tuple[list[bytes], list[str]]:
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    inbox = Inbox()
    nc = await nats.connect(url, user="a", password="a", error_cb=on_error)
    try:
        await nc.subscribe("foo", cb=inbox.cb)
        await nc.flush()
        await nc.publish("foo", b"x", headers={"Nats-Trace-Dest": "secret.t"})
        await nc.publish("foo", b"after")
        await wait_until(lambda: bool(inbox.msgs and errors), timeout=TIMEOUT, what="answers")
        return inbox.data, errors
    finally:
        await nc.close()


async def test_trace_destination_needs_publish_permission(
    router_factory: RouterFactory, nats_server_factory: HubFactory
) -> None:
    config = (
        "authorization { users: [ {user: a, password: a, "
        'permissions: {publish: {deny: ["secret.>"]}}} ] }'
    )
    ours = await _publish_with_forbidden_dest(router_factory(config).url)
    theirs = await _publish_with_forbidden_dest(nats_server_factory(config).url)
    assert ours == theirs
    # The message is dropped, the client told, as for any forbidden publish.
    assert ours == ([b"after"], ['nats: permissions violation for publish to "secret.t"'])
