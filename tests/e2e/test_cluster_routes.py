"""Routing across a cluster of leafnode nodes, and of leafnode and nats-server nodes (issue 14).

Point 2 of issue 14, and the node-list reconnect of point 7.

Every test runs twice: on three leafnode nodes, and on a mixed cluster of two
leafnode nodes and one nats-server 2.15 node (the last), so the route
protocol is proven against nats-server itself. Node 0 is the seed; the
others name only it, and meet each other by gossip (``wait_meshed`` proves
every pair talks, by effect).

- a subscriber on any node gets a message published on any node exactly
  once (plain subscribers, wildcards, headers kept);
- a queue group spread over the nodes gets each message exactly once, the
  members' share following nats-server's draw (local members and each
  peer's weight), and a message that crossed a route goes to a member on
  that node;
- request/reply across nodes, and no-responders when the cluster has no
  interest (also after the only responder left);
- INFO ``connect_urls`` lists every node's client URL, and an async INFO
  drops a node that left;
- clients given the node list reconnect to a surviving node after kill -9
  and their subscriptions work across the cluster again.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from typing import TYPE_CHECKING

import nats
import pytest
from nats.errors import NoRespondersError

from tests.conftest import wait_until
from tests.rawclient import RawClient
from tests.support import ClusterNodes, RouterProcess, free_port

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from nats.aio.client import Client
    from nats.aio.msg import Msg

pytestmark = [pytest.mark.e2e]

KINDS = {
    "leafnode-x3": ("leafnode", "leafnode", "leafnode"),
    "mixed-2.15": ("leafnode", "leafnode", "nats-server"),
}
MESSAGES = 50


@pytest.fixture(params=sorted(KINDS))
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ClusterNodes]:
    nodes = ClusterNodes.start(KINDS[request.param], tmp_path)
    try:
        yield nodes
    finally:
        nodes.kill()


def _collector(into: list[Msg]) -> object:
    async def got(msg: Msg) -> None:
        into.append(msg)

    return got


@pytest.mark.asyncio
async def test_each_subscriber_gets_each_message_once_from_any_node(
    cluster: ClusterNodes,
) -> None:
    await cluster.wait_meshed()
    conns = [await nats.connect(node.url) for node in cluster.nodes]
    try:
        got: list[list[Msg]] = [[] for _ in conns]
        for nc, into in zip(conns, got, strict=True):
            await nc.subscribe("t.>", cb=_collector(into))  # type: ignore[arg-type]
        await cluster.wait_meshed()  # the t.> interest travelled before the probes
        for i, nc in enumerate(conns):
            for n in range(MESSAGES):
                await nc.publish(f"t.{i}", f"{i}-{n}".encode(), headers={"N": f"{i}-{n}"})
        want = len(conns) * MESSAGES
        await wait_until(
            lambda: all(len(g) >= want for g in got), timeout=30, what="every message everywhere"
        )
        # One more by every path; exactly one more each, then nothing else.
        for i, nc in enumerate(conns):
            await nc.publish(f"t.{i}", f"{i}-last".encode(), headers={"N": f"{i}-last"})
        want += len(conns)
        await wait_until(
            lambda: all(len(g) >= want for g in got), timeout=30, what="the last messages"
        )
        await cluster.wait_meshed()
        for into in got:
            assert len(into) == want
            keys = Counter(m.data for m in into)
            assert max(keys.values()) == 1
            assert all(m.headers == {"N": m.data.decode()} for m in into)
            # Per publisher, order kept.
            for i in range(len(conns)):
                mine = [m.data for m in into if m.subject == f"t.{i}"]
                assert mine == [f"{i}-{n}".encode() for n in range(MESSAGES)] + [
                    f"{i}-last".encode()
                ]
    finally:
        for nc in conns:
            await nc.close()


@pytest.mark.asyncio
async def test_a_traced_message_reaches_the_other_nodes(cluster: ClusterNodes) -> None:
    await cluster.wait_meshed()
    n0, n1 = await nats.connect(cluster[0].url), await nats.connect(cluster[1].url)
    try:
        plain: list[Msg] = []
        grouped: list[Msg] = []
        traces: list[Msg] = []
        await n1.subscribe("traced", cb=_collector(plain))  # type: ignore[arg-type]
        await n1.subscribe("traced", queue="g", cb=_collector(grouped))  # type: ignore[arg-type]
        await n0.subscribe("trace.events", cb=_collector(traces))  # type: ignore[arg-type]
        await cluster.wait_meshed()
        headers = {"Nats-Trace-Dest": "trace.events", "K": "v"}
        await n0.publish("traced", b"t", headers=headers)
        await wait_until(lambda: len(plain) == len(grouped) == 1, timeout=30, what="delivery")
        assert plain[0].headers is not None
        assert plain[0].headers.get("K") == "v"
        await wait_until(lambda: bool(traces), timeout=30, what="node 0's trace event")
        # Trace-only: not delivered anywhere.
        await n0.publish("traced", b"only", headers={**headers, "Nats-Trace-Only": "true"})
        await n0.publish("traced", b"after")
        await wait_until(lambda: len(plain) == 2, timeout=30, what="the plain message after")
        assert [m.data for m in plain] == [b"t", b"after"]
    finally:
        await n0.close()
        await n1.close()


@pytest.mark.asyncio
async def test_a_queue_group_over_the_nodes_gets_each_message_once(cluster: ClusterNodes) -> None:
    await cluster.wait_meshed()
    conns = [await nats.connect(node.url) for node in cluster.nodes]
    try:
        got: list[list[Msg]] = [[] for _ in conns]
        # Members on nodes 1 and 2 only: node 0 has none, so all cross routes.
        for nc, into in zip(conns[1:], got[1:], strict=True):
            for _ in range(2):
                await nc.subscribe("work", queue="q", cb=_collector(into))  # type: ignore[arg-type]
        plain: list[Msg] = []
        await conns[0].subscribe("work", cb=_collector(plain))  # type: ignore[arg-type]
        await cluster.wait_meshed()
        # Node 0's plain subscriber proves the publishes were processed.
        total = 300

        async def published_on(i: int) -> None:
            for n in range(total):
                await conns[i].publish("work", f"{i}-{n}".encode())

        await published_on(0)
        await wait_until(
            lambda: sum(len(g) for g in got) >= total, timeout=30, what="the queue deliveries"
        )
        await published_on(1)
        await wait_until(lambda: len(plain) >= 2 * total, timeout=30, what="node 1's messages")
        await wait_until(
            lambda: sum(len(g) for g in got) >= 2 * total, timeout=30, what="queue deliveries"
        )
        await cluster.wait_meshed()
        everything = [m.data for g in got for m in g]
        assert len(everything) == 2 * total
        assert len(set(everything)) == 2 * total  # each message exactly once
        # From node 0 (no member): the two nodes share the work.
        from_0 = [sum(m.data.startswith(b"0-") for m in g) for g in got[1:]]
        assert min(from_0) > total // 10, from_0
        # A message that crossed a route to node 2 went to a member there,
        # never on to node 1: what node 1 published, node 2 got only by
        # the draw on node 1, and the whole group got it once (asserted).
    finally:
        for nc in conns:
            await nc.close()


@pytest.mark.asyncio
async def test_request_reply_and_no_responders_across_nodes(cluster: ClusterNodes) -> None:
    await cluster.wait_meshed()
    conns = [await nats.connect(node.url) for node in cluster.nodes]
    try:

        async def answer(msg: Msg) -> None:
            await msg.respond(b"re:" + msg.data)

        sub = await conns[1].subscribe("svc", queue="workers", cb=answer)
        await wait_until(
            lambda: _answers(conns[0]), timeout=30, what="the service seen from node 0"
        )
        for nc in (conns[0], conns[2]):
            reply = await nc.request("svc", b"ping", timeout=10)
            assert reply.data == b"re:ping"
            hreply = await nc.request("svc", b"h", timeout=10, headers={"K": "v"})
            assert hreply.data == b"re:h"
        # Nobody listens on "nobody" anywhere: no responders, at once.
        with pytest.raises(NoRespondersError):
            await conns[0].request("nobody", b"x", timeout=10)
        # The only responder leaves: its RS- reaches every node.
        await sub.unsubscribe()
        await wait_until(
            lambda: _no_responders(conns[2]), timeout=30, what="no responders from node 2"
        )
    finally:
        for nc in conns:
            await nc.close()


async def _answers(nc: Client) -> bool:
    try:
        await nc.request("svc", b"probe", timeout=1)
    except (NoRespondersError, nats.errors.TimeoutError):
        return False
    return True


async def _no_responders(nc: Client) -> bool:
    try:
        await nc.request("svc", b"probe", timeout=2)
    except NoRespondersError:
        return True
    except nats.errors.TimeoutError:
        return False
    return False


def _urls(info: dict[str, object]) -> set[str]:
    urls = info.get("connect_urls")
    return {str(u) for u in urls} if isinstance(urls, list) else set()


def _async_infos(raw: RawClient, timeout: float) -> list[dict[str, object]]:
    infos = []
    try:
        while True:
            line = raw.read_line(timeout=timeout)
            if line.startswith(b"INFO "):
                infos.append(json.loads(line[5:]))
    except (AssertionError, TimeoutError, OSError):
        pass
    return infos


@pytest.mark.asyncio
async def test_clients_learn_every_node_and_an_update_when_one_leaves(
    cluster: ClusterNodes,
) -> None:
    await cluster.wait_meshed()
    urls = {f"127.0.0.1:{node.port}" for node in cluster.nodes}
    raw = RawClient(cluster[0].port)
    try:
        assert _urls(raw.info) == urls, raw.info
        raw.send(b'CONNECT {"protocol":1,"verbose":false}\r\nPING\r\n')
        assert raw.read_line(timeout=10) == b"PONG"
        cluster[2].kill()
        want = urls - {f"127.0.0.1:{cluster[2].port}"}
        deadline = asyncio.get_running_loop().time() + 30
        seen: list[dict[str, object]] = []
        while asyncio.get_running_loop().time() < deadline:
            seen += _async_infos(raw, 1.0)
            if seen and _urls(seen[-1]) == want:
                break
        assert seen, "no async INFO after a node left"
        assert _urls(seen[-1]) == want
    finally:
        raw.close()


@pytest.mark.asyncio
async def test_a_node_in_lame_duck_mode_leaves_the_connect_urls(cluster: ClusterNodes) -> None:
    await cluster.wait_meshed()
    urls = {f"127.0.0.1:{node.port}" for node in cluster.nodes}
    want = urls - {f"127.0.0.1:{cluster[1].port}"}
    raws = [RawClient(cluster[i].port) for i in (0, 2)]
    try:
        for raw in raws:
            assert _urls(raw.info) == urls, raw.info
            raw.send(b'CONNECT {"protocol":1,"verbose":false}\r\nPING\r\n')
            assert raw.read_line(timeout=10) == b"PONG"
        cluster[1].proc.proc.send_signal(signal.SIGUSR2)  # leafnode: lame duck mode
        loop = asyncio.get_running_loop()
        for raw in raws:
            deadline = loop.time() + 30
            seen: list[dict[str, object]] = []
            while loop.time() < deadline and not (seen and _urls(seen[-1]) == want):
                seen += _async_infos(raw, 1.0)
            assert seen, "no async INFO after a node entered lame duck mode"
            assert _urls(seen[-1]) == want
        # While it is still there (its lame duck grace period is 10 s):
        # the peers were told, they did not just see it go.
        assert cluster[1].proc.proc.poll() is None
    finally:
        for raw in raws:
            raw.close()


@pytest.mark.asyncio
async def test_clients_with_the_node_list_survive_kill_9_of_their_node(
    cluster: ClusterNodes,
) -> None:
    await cluster.wait_meshed()
    servers = [node.url for node in cluster.nodes]
    # Node 0 is the client's first server; node 2 stays as the other end.
    reconnected = asyncio.Event()

    async def on_reconnect() -> None:
        reconnected.set()

    nc = await nats.connect(
        servers=servers,
        dont_randomize=True,
        reconnect_time_wait=0.2,
        max_reconnect_attempts=-1,
        reconnected_cb=on_reconnect,
    )
    other = await nats.connect(cluster[2].url)
    try:
        assert nc.connected_url is not None
        assert nc.connected_url.port == cluster[0].port
        got: list[Msg] = []
        await nc.subscribe("after", cb=_collector(got))  # type: ignore[arg-type]
        cluster[0].proc.stop(9)
        await asyncio.wait_for(reconnected.wait(), timeout=30)
        assert nc.connected_url is not None
        assert nc.connected_url.port in (cluster[1].port, cluster[2].port)

        async def delivered() -> bool:
            await other.publish("after", b"x")
            return bool(got)

        await wait_until(delivered, timeout=30, what="a message across the surviving cluster")
    finally:
        await nc.close()
        await other.close()


@pytest.mark.asyncio
async def test_a_restarted_seed_joins_again(cluster: ClusterNodes) -> None:
    await cluster.wait_meshed()
    cluster.restart(0)
    # The others dial their configured seed again; the restarted node has
    # no routes of its own configured and learns nothing but what dials it.
    await cluster.wait_meshed()


@pytest.fixture(params=sorted(KINDS))
def guarded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ClusterNodes]:
    nodes = ClusterNodes.start(KINDS[request.param], tmp_path, route_auth=("ru", "s3cret-pw"))
    try:
        yield nodes
    finally:
        nodes.kill()


@pytest.mark.asyncio
async def test_route_authorization(guarded: ClusterNodes) -> None:
    # Seeds dialed with the URL's user, gossiped routes with the cluster's own.
    await guarded.wait_meshed()
    for password in ("wrong", None):
        raw = RawClient(guarded[0].route_port)
        try:
            assert raw.info.get("auth_required") is True
            creds = {"user": "ru", "pass": password} if password else {}
            connect = {"name": "NINTRUDER", "cluster": "C", **creds}
            raw.send(b"CONNECT " + json.dumps(connect).encode() + b"\r\n")
            raw.send(b'INFO {"server_id":"NINTRUDER","cluster":"C"}\r\n')
            rest = raw.read_until_closed(timeout=10)
            assert b"-ERR 'Authorization Violation'" in rest
            assert raw.closed
        finally:
            raw.close()
    for node in guarded.nodes:
        assert "s3cret-pw" not in node.proc.log_text()


@pytest.mark.asyncio
async def test_the_queue_draw_is_nats_servers_side_by_side(tmp_path: Path) -> None:
    """One member on the publishing node, one on another: nats-server 2.15 does not
    keep a client's message on its own node's member, it draws among the
    cluster's members (about half go over the route); leafnode draws the same.
    (A message that came over a route does go to a member on that node.)"""
    shares: dict[str, float] = {}
    for kinds in (("nats-server", "nats-server"), ("leafnode", "leafnode")):
        nodes = ClusterNodes.start(kinds, tmp_path / kinds[0])
        try:
            await nodes.wait_meshed()
            a, b = await nats.connect(nodes[0].url), await nats.connect(nodes[1].url)
            local: list[Msg] = []
            remote: list[Msg] = []
            await a.subscribe("w", queue="q", cb=_collector(local))  # type: ignore[arg-type]
            await b.subscribe("w", queue="q", cb=_collector(remote))  # type: ignore[arg-type]
            await nodes.wait_meshed()
            for _ in range(1000):
                await a.publish("w", b"x")
            await wait_until(
                lambda: len(local) + len(remote) >= 1000,  # noqa: B023
                timeout=30,
                what="the queue deliveries",
            )
            assert len(local) + len(remote) == 1000
            shares[kinds[0]] = len(local) / 1000
            await a.close()
            await b.close()
        finally:
            nodes.kill()
    assert all(0.35 < share < 0.65 for share in shares.values()), shares


def test_a_route_to_itself_is_dialed_once(tmp_path: Path) -> None:
    """A config that lists every node's route, this node's too (docker-compose.cluster.yml
    does): the node finds itself behind it once and never dials it again."""
    route_port = free_port()
    config = (
        f'cluster {{\n  name: C\n  listen: "127.0.0.1:{route_port}"\n'
        f'  routes: ["nats-route://127.0.0.1:{route_port}"]\n}}\n'
    )
    router = RouterProcess(config, workdir=tmp_path)
    try:
        router.wait_ready()
        deadline = time.monotonic() + 30
        while router.log_text().count("Route connection closed") < 2:
            assert time.monotonic() < deadline, router.log_text()
            time.sleep(0.05)
        # An observation window of several redial periods (1 s): no new dial.
        time.sleep(3)
        assert router.log_text().count("Route connection created") == 2, router.log_text()
    finally:
        router.kill()


def test_an_info_update_waits_for_the_clients_first_pong(tmp_path: Path) -> None:
    """A node joins while a client is between its CONNECT and its first PING: the
    client's next line must still be the PONG (nats-py reads it as the PONG and
    stays "connecting" for good otherwise: wait_meshed's flake), and the INFO
    with the new node's URL follows it, as nats-server's first-PONG INFO."""
    nodes = ClusterNodes.start(("leafnode",), tmp_path / "seed")
    joiner: RouterProcess | None = None
    ready = RawClient(nodes[0].port)
    early = RawClient(nodes[0].port)
    try:
        ready.send(b'CONNECT {"protocol":1,"verbose":false}\r\nPING\r\n')
        assert ready.read_line(timeout=20) == b"PONG"
        # verbose: the +OK proves the CONNECT was processed, with no PING sent.
        early.send(b'CONNECT {"protocol":1,"verbose":true}\r\n')
        assert early.read_line(timeout=20) == b"+OK"
        joiner = RouterProcess(
            f'cluster {{\n  name: C\n  listen: "127.0.0.1:{free_port()}"\n'
            f'  routes: ["nats-route://127.0.0.1:{nodes[0].route_port}"]\n}}\n',
            workdir=tmp_path / "joiner",
        )
        joiner.wait_ready(timeout=60)
        # The client past its first PONG gets the update as soon as the node joined.
        update = ready.read_line(timeout=30)
        assert update.startswith(b"INFO "), update
        assert f":{joiner.port}".encode() in update, update
        early.send(b"PING\r\n")
        assert early.read_line(timeout=20) == b"PONG"
        info = early.read_line(timeout=20)
        assert info.startswith(b"INFO "), info
        urls = json.loads(info[5:])["connect_urls"]
        assert f"127.0.0.1:{joiner.port}" in urls, urls
    finally:
        ready.close()
        early.close()
        if joiner is not None:
            joiner.kill()
        nodes.kill()
