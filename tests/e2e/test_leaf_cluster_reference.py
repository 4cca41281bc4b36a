"""The reference for issue 14 point 3: how a cluster of nats-server leaf nodes meets its hub.

Two nats-server 2.15 leaf nodes, clustered by routes, each with its own leaf
connection to one hub. What leafnode's cluster must match, side by side,
once it serves routes (verified here against the real thing):

- each node announces to the hub only its *own* clients' interest (``LS+``),
  not what it learned over routes: the hub sees ``z`` from the node that has
  the subscriber, and only from it;
- a message published on a node for a hub subscriber goes out on that
  node's own leaf connection, once: the hub subscriber gets each exactly once;
- a hub message for subscribers on both nodes reaches each node on its own
  leaf connection, and is not relayed over the route: each gets it once;
- a message published on one node for a subscriber on the other crosses the
  route once and does not come back through the hub: the hub does not pass
  one node's interest to another leaf connection of the same cluster (the
  leaf CONNECT names the cluster), so the publishing node never learns it
  from the hub.

nats-server's rules behind it (``server/client.go`` processMsgResults): a
message that came in on a soliciting ("spoke") leaf connection is never sent
to a route, and a message that came in on a route is never sent out on a
spoke leaf connection.
"""

from __future__ import annotations

import json
import urllib.request
from typing import TYPE_CHECKING

import nats
import pytest

from tests.conftest import wait_until
from tests.support import HubProcess, NatsServerProcess, free_port

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator
    from pathlib import Path

    from nats.aio.msg import Msg

MESSAGES = 10
# The test's subjects (leafz also lists the system account's and $LDS ones).
_SUBJECTS = frozenset({"x", "y", "z"})


def _get(port: int, endpoint: str) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/{endpoint}", timeout=5) as resp:
        data: dict[str, object] = json.loads(resp.read())
        return data


def _routes(port: int) -> list[dict[str, int]]:
    """``/routez`` entries of the pooled routes (the system account's own route left out)."""
    routes = _get(port, "routez").get("routes")
    return [r for r in routes if r.get("account") != "$SYS"] if isinstance(routes, list) else []


def _routed(port: int) -> int:
    """Messages that crossed the pooled routes, both ways."""
    return sum(r["in_msgs"] + r["out_msgs"] for r in _routes(port))


def _leaf_subs(port: int) -> dict[str, set[str]]:
    """Per leaf connection (by remote server name): the test's subjects ``/leafz?subs=1`` lists."""
    found: dict[str, set[str]] = {}
    leafs = _get(port, "leafz?subs=1").get("leafs")
    for leaf in leafs if isinstance(leafs, list) else []:
        subs = leaf.get("subscriptions_list") or []
        found[str(leaf.get("name"))] = {s for s in subs if s in _SUBJECTS}
    return found


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[HubProcess, dict[str, tuple[NatsServerProcess, int]]]]:
    hub = HubProcess("server_name: hub\n", workdir=tmp_path / "hub")
    ports = {"a": free_port(), "b": free_port()}
    nodes: dict[str, tuple[NatsServerProcess, int]] = {}
    try:
        hub.wait_ready()
        for name, other in (("a", "b"), ("b", "a")):
            http = free_port()
            config = (
                f"server_name: {name}\nhttp: 127.0.0.1:{http}\n"
                f'cluster {{ name: LEAF, listen: "127.0.0.1:{ports[name]}", '
                f'routes: ["nats-route://127.0.0.1:{ports[other]}"] }}\n'
                f'leafnodes {{ remotes: [ {{ url: "{hub.leaf_url}" }} ] }}\n'
            )
            nodes[name] = (NatsServerProcess(config, workdir=tmp_path / name), http)
        for node, _ in nodes.values():
            node.wait_ready()
        yield hub, nodes
    finally:
        for node, _ in nodes.values():
            node.kill()
        hub.kill()


def _counter(counts: dict[str, int], key: str) -> Callable[[Msg], Awaitable[None]]:
    async def count(msg: Msg) -> None:
        counts[key] += 1

    return count


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_a_nats_server_leaf_cluster_delivers_once_each_way(
    site: tuple[HubProcess, dict[str, tuple[NatsServerProcess, int]]],
) -> None:
    hub, nodes = site
    (a, a_http), (b, _) = nodes["a"], nodes["b"]
    await wait_until(lambda: hub.leaf_count() == 2, timeout=30, what="both leaf connections")
    await wait_until(lambda: _routes(a_http) != [], timeout=30, what="the routes")
    counts = {"hub.x": 0, "a.y": 0, "b.y": 0, "b.z": 0}
    h = await nats.connect(hub.url)
    na = await nats.connect(a.url)
    nb = await nats.connect(b.url)
    try:
        await h.subscribe("x", cb=_counter(counts, "hub.x"))
        await na.subscribe("y", cb=_counter(counts, "a.y"))
        await nb.subscribe("y", cb=_counter(counts, "b.y"))
        await nb.subscribe("z", cb=_counter(counts, "b.z"))
        # Each node announces its own clients' interest to the hub, nothing it
        # learned over the route: z only from b.
        await wait_until(
            lambda: _leaf_subs(hub.http_port) == {"a": {"y"}, "b": {"y", "z"}},
            timeout=30,
            what="the leafs' interest at the hub",
        )
        await wait_until(
            lambda: "x" in set().union(*_leaf_subs(a_http).values()),
            timeout=30,
            what="the hub's interest at a",
        )
        for _ in range(MESSAGES):
            await na.publish("x", b"from-a")
            await h.publish("y", b"from-hub")
            await h.publish("z", b"from-hub")
        want = {"hub.x": MESSAGES, "a.y": MESSAGES, "b.y": MESSAGES, "b.z": MESSAGES}
        await wait_until(lambda: counts == want, timeout=30, what=f"{want}, got {counts}")
        assert _routed(a_http) == 0, "a hub message crossed a route"
        # A message published on a for a subscriber on b only crosses the
        # route, and does not come back through the hub as well: the hub does
        # not pass b's interest to a's leaf connection, both leaf connections
        # being of cluster LEAF (their CONNECT says so).
        for _ in range(MESSAGES):
            await na.publish("z", b"from-a")
        want["b.z"] += MESSAGES
        await wait_until(lambda: counts == want, timeout=30, what=f"{want}, got {counts}")
        # A duplicate would come by the other path; one more message by each
        # path, then the counts must be exactly one more.
        await na.publish("x", b"last")
        await h.publish("y", b"last")
        await h.publish("z", b"last")
        await na.publish("z", b"last")
        want = {key: value + 1 for key, value in want.items()}
        want["b.z"] += 1
        await wait_until(lambda: counts == want, timeout=30, what=f"{want}, got {counts}")
        # Only a's messages for b crossed the routes: none from or for the hub.
        assert _routed(a_http) == MESSAGES + 1
        assert counts == want
    finally:
        for nc in (h, na, nb):
            await nc.close()
