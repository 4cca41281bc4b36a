"""A leafnode cluster meets its hub as a cluster of nats-server leafs does (issue 14 point 3).

One hub; on it, side by side in the same test, two leaf clusters of two
nodes each: nats-server 2.15 leafs (cluster NS) and leafnode sites (cluster
LN), each node with its own leaf connection to the hub. The same scenario
runs on both (``tests/e2e/test_leaf_cluster_reference.py`` explains the
rules it shows), on subjects of its own per cluster, and the two must agree
on every count:

- the hub sees each node announce its own clients' interest only (``z``
  only from b), from ``/leafz?subs=1``;
- a hub subscriber gets each message published on a node once;
- a hub message for subscribers on both nodes reaches each once (by its own
  leaf connection, not relayed over the route);
- a message published on a for a subscriber on b gets there once: over the
  route (``/routez`` counts only those, on nats-server's and on leafnode's), not
  again through the hub, because both leaf CONNECTs name the
  cluster and the hub does not pass b's interest to a (without the
  ``cluster`` field in leafnode's CONNECT, b gets it twice).
"""

from __future__ import annotations

import json
import urllib.request
from typing import TYPE_CHECKING

import nats
import pytest

from tests.conftest import wait_until
from tests.support import HubProcess, NatsServerProcess, SiteProcess, free_port

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator
    from pathlib import Path

    from nats.aio.msg import Msg

pytestmark = [pytest.mark.e2e]

MESSAGES = 10

Node = NatsServerProcess | SiteProcess


def _get(port: int, endpoint: str) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/{endpoint}", timeout=5) as resp:
        data: dict[str, object] = json.loads(resp.read())
        return data


def _http_port(node: Node) -> int:
    if isinstance(node, SiteProcess):
        return node.http_port
    conf = (node.workdir / "server.conf").read_text()
    return int(conf.split("http: 127.0.0.1:", 1)[1].split("\n", 1)[0])


def _routed(node: Node) -> int:
    """Messages that crossed the node's pooled routes, both ways (``/routez``)."""
    routes = _get(_http_port(node), "routez").get("routes")
    return sum(
        int(r["in_msgs"]) + int(r["out_msgs"])
        for r in (routes if isinstance(routes, list) else [])
        if r.get("account") != "$SYS"
    )


def _leaf_subs(hub: HubProcess, prefix: str) -> dict[str, set[str]]:
    """Per leaf connection of this cluster (by name): its subjects under ``prefix``."""
    found: dict[str, set[str]] = {}
    leafs = _get(hub.http_port, "leafz?subs=1").get("leafs")
    for leaf in leafs if isinstance(leafs, list) else []:
        name = str(leaf.get("name"))
        if name.startswith(prefix):
            subs = leaf.get("subscriptions_list") or []
            found[name] = {s for s in subs if s.startswith(prefix + ".")}
    return found


@pytest.fixture
def sites(tmp_path: Path) -> Iterator[tuple[HubProcess, dict[str, tuple[Node, Node]]]]:
    hub = HubProcess("server_name: hub\n", workdir=tmp_path / "hub")
    started: list[Node] = []
    try:
        hub.wait_ready()
        clusters: dict[str, tuple[Node, Node]] = {}
        for prefix in ("ns", "ln"):
            ports = {"a": free_port(), "b": free_port()}
            pair: list[Node] = []
            for name, other in (("a", "b"), ("b", "a")):
                http = f"http: 127.0.0.1:{free_port()}\n" if prefix == "ns" else ""
                config = (
                    f"server_name: {prefix}{name}\n{http}"
                    f'cluster {{ name: {prefix.upper()}, listen: "127.0.0.1:{ports[name]}", '
                    f'routes: ["nats-route://127.0.0.1:{ports[other]}"] }}\n'
                    f'leafnodes {{ remotes: [ {{ url: "{hub.leaf_url}" }} ] }}\n'
                )
                workdir = tmp_path / f"{prefix}{name}"
                node: Node = (
                    NatsServerProcess(config, workdir=workdir)
                    if prefix == "ns"
                    else SiteProcess(config, workdir=workdir)
                )
                started.append(node)
                pair.append(node)
            clusters[prefix] = (pair[0], pair[1])
        for node in started:
            node.wait_ready(timeout=60)
        yield hub, clusters
    finally:
        for node in started:
            node.kill()
        hub.kill()


def _counter(counts: dict[str, int], key: str) -> Callable[[Msg], Awaitable[None]]:
    async def count(msg: Msg) -> None:
        if msg.data == b"probe":
            counts["probe." + key] = counts.get("probe." + key, 0) + 1
        else:
            counts[key] += 1

    return count


async def _scenario(hub: HubProcess, a: Node, b: Node, p: str) -> dict[str, int]:
    """The reference scenario on subjects ``<p>.x|y|z``; returns the final counts."""
    counts = {"hub.x": 0, "a.y": 0, "b.y": 0, "b.z": 0}
    h = await nats.connect(hub.url)
    na = await nats.connect(a.url)
    nb = await nats.connect(b.url)
    try:
        await h.subscribe(f"{p}.x", cb=_counter(counts, "hub.x"))
        await na.subscribe(f"{p}.y", cb=_counter(counts, "a.y"))
        await nb.subscribe(f"{p}.y", cb=_counter(counts, "b.y"))
        await nb.subscribe(f"{p}.z", cb=_counter(counts, "b.z"))
        want_subs = {f"{p}a": {f"{p}.y"}, f"{p}b": {f"{p}.y", f"{p}.z"}}
        await wait_until(
            lambda: _leaf_subs(hub, p) == want_subs,
            timeout=30,
            what=f"each node's own interest at the hub: {want_subs}",
        )

        # The route carries b's z to a, and the hub's x reached a: by effect.
        async def reached() -> bool:
            await na.publish(f"{p}.x", b"probe")
            await na.publish(f"{p}.z", b"probe")
            return "probe.hub.x" in counts and "probe.b.z" in counts

        await wait_until(reached, timeout=30, what="x to the hub and z to b from a")
        await wait_until(
            lambda: _leaf_subs(hub, p) == want_subs, timeout=5, what="no new interest at the hub"
        )
        base = dict(counts)
        for _ in range(MESSAGES):
            await na.publish(f"{p}.x", b"from-a")
            await h.publish(f"{p}.y", b"from-hub")
            await h.publish(f"{p}.z", b"from-hub")
            await na.publish(f"{p}.z", b"from-a")
        want = {
            "hub.x": MESSAGES,
            "a.y": MESSAGES,
            "b.y": MESSAGES,
            "b.z": 2 * MESSAGES,
        }

        def delta() -> dict[str, int]:
            return {k: counts[k] - base[k] for k in counts if not k.startswith("probe.")}

        await wait_until(lambda: delta() == want, timeout=30, what=f"{p}: {want}")
        # A duplicate would come by the other path: one more by each path,
        # then the counts must be exactly one more.
        await na.publish(f"{p}.x", b"last")
        await h.publish(f"{p}.y", b"last")
        await h.publish(f"{p}.z", b"last")
        await na.publish(f"{p}.z", b"last")
        want = {"hub.x": MESSAGES + 1, "a.y": MESSAGES + 1, "b.y": MESSAGES + 1}
        want["b.z"] = 2 * MESSAGES + 2
        await wait_until(lambda: delta() == want, timeout=30, what=f"{p}: {want}")
        # And after a round trip through every connection, still exactly that.
        for nc in (h, na, nb):
            await nc.flush()
        await wait_until(
            lambda: _leaf_subs(hub, p) == want_subs, timeout=5, what="the interest unchanged"
        )
        # Over the route went a's messages for b's z (the probes that reached
        # b, then the counted ones) and nothing else: no hub message.
        crossed = counts.get("probe.b.z", 0) + MESSAGES + 1
        await wait_until(lambda: _routed(a) >= crossed, timeout=10, what="route counters")
        assert _routed(a) == crossed
        return delta()
    finally:
        for nc in (h, na, nb):
            await nc.close()


@pytest.mark.asyncio
async def test_a_leafnode_cluster_meets_the_hub_as_a_nats_server_leaf_cluster_does(
    sites: tuple[HubProcess, dict[str, tuple[Node, Node]]],
) -> None:
    hub, clusters = sites
    await wait_until(lambda: hub.leaf_count() == 4, timeout=60, what="all four leaf connections")
    reference = await _scenario(hub, *clusters["ns"], "ns")
    ours = await _scenario(hub, *clusters["ln"], "ln")
    assert ours == reference
