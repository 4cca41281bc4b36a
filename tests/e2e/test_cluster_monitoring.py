"""``/routez``, ``/varz``'s cluster block and per-route metrics (issue 14 point 5).

Two leafnode sites and a nats-server 2.15 node in one cluster: leafnode's
``/routez`` has nats-server's fields (checked against the nats-server
node's own answer), one entry per route (the pool of 3 to each peer, plus
the ``$SYS`` route nats-server dials), with message counts that follow the
traffic; ``/varz`` counts the routes and describes the cluster; ``/metrics``
has a series per route.
"""

from __future__ import annotations

import json
import urllib.request
from typing import TYPE_CHECKING

import nats
import pytest

from tests.conftest import wait_until
from tests.support import ClusterNodes

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from nats.aio.msg import Msg

pytestmark = [pytest.mark.e2e]


def _get(port: int, endpoint: str) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/{endpoint}", timeout=10) as resp:
        data: dict[str, object] = json.loads(resp.read())
        return data


def _routes(port: int) -> list[dict[str, object]]:
    routes = _get(port, "routez?subs=1").get("routes")
    assert isinstance(routes, list)
    return routes


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterNodes]:
    nodes = ClusterNodes.start(("site", "site", "nats-server"), tmp_path)
    try:
        yield nodes
    finally:
        nodes.kill()


def _subs(route: dict[str, object]) -> list[str]:
    subs = route.get("subscriptions_list")
    return [str(s) for s in subs] if isinstance(subs, list) else []


def _by_peer(routes: list[dict[str, object]], peer: str) -> list[dict[str, object]]:
    return [r for r in routes if r.get("remote_name") == peer]


def _out(routes: list[dict[str, object]], peer: str) -> int:
    return sum(int(str(r["out_msgs"])) for r in _by_peer(routes, peer))


@pytest.mark.asyncio
async def test_routez_varz_and_metrics_follow_the_routes(cluster: ClusterNodes) -> None:
    await cluster.wait_meshed()
    ours, reference = cluster[0].http_port, cluster[2].http_port
    # Pools complete: 3 routes to each peer, and nats-server's $SYS route to us.
    await wait_until(
        lambda: len(_by_peer(_routes(ours), "n1")) == 3 and len(_by_peer(_routes(ours), "n2")) == 4,
        timeout=30,
        what="the pools at n0",
    )
    routez = _get(ours, "routez")
    routes = _routes(ours)
    assert routez["num_routes"] == len(routes) == 7
    assert [r.get("account") for r in _by_peer(routes, "n2") if r.get("account")] == ["$SYS"]
    # nats-server's fields, no more (rtt and import/export aside).
    theirs = _routes(reference)
    assert {r.get("remote_name") for r in theirs} == {"n0", "n1"}
    their_keys = set().union(*(r.keys() for r in theirs)) - {"rtt", "import", "export"}
    our_keys = set().union(*(r.keys() for r in routes))
    assert our_keys - {"subscriptions_list", "account"} == their_keys - {
        "subscriptions_list",
        "account",
    }
    assert set(routez) == set(_get(reference, "routez")) - {"import", "export"}

    # Traffic to a subscriber on n1: n0's routes to n1 count it out, n1's in.
    got: list[Msg] = []
    n1 = await nats.connect(cluster[1].url)
    n0 = await nats.connect(cluster[0].url)
    try:

        async def collect(msg: Msg) -> None:
            got.append(msg)

        await n1.subscribe("counted", cb=collect)
        await wait_until(
            lambda: any("counted" in _subs(r) for r in _routes(ours)),
            timeout=30,
            what="n1's interest at n0",
        )
        before_out = _out(_routes(ours), "n1")
        for _ in range(10):
            await n0.publish("counted", b"x")
        await wait_until(lambda: len(got) == 10, timeout=30, what="the 10 messages")
        assert _out(_routes(ours), "n1") == before_out + 10
        assert sum(int(str(r["in_msgs"])) for r in _by_peer(_routes(cluster[1].http_port), "n0"))
    finally:
        await n0.close()
        await n1.close()

    varz = _get(ours, "varz")
    assert varz["routes"] == 7
    urls = varz["connect_urls"]
    assert isinstance(urls, list)
    assert set(urls) == {f"127.0.0.1:{node.port}" for node in cluster.nodes}
    block = varz["cluster"]
    assert isinstance(block, dict)
    assert block["name"] == "C"
    assert block["cluster_port"] == cluster[0].route_port
    assert block["pool_size"] == 3
    seed_varz = _get(cluster[1].http_port, "varz")["cluster"]
    assert isinstance(seed_varz, dict)
    assert seed_varz["urls"] == [f"127.0.0.1:{cluster[0].route_port}"]
    # nats-server's block names the same keys.
    ref_block = _get(reference, "varz")["cluster"]
    assert isinstance(ref_block, dict)
    assert set(block) <= set(ref_block) | {"pool_size"}

    with urllib.request.urlopen(f"http://127.0.0.1:{ours}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    assert "leafnode_routes 7.0" in text
    out_lines = [
        line
        for line in text.splitlines()
        if line.startswith("leafnode_route_messages_total{")
        and 'peer="n1"' in line
        and 'direction="out"' in line
    ]
    assert len(out_lines) == 3
    assert sum(float(line.rsplit(" ", 1)[1]) for line in out_lines) >= 10
