"""A subscriber that reads as fast as it can is no slow consumer (issue 11 point 10).

Bursts of 6,000 x 4 KB (24 MB) from a publisher that does not pace itself go
through an 8 MB ``max_pending``, to a nats-py subscriber that only counts what
it gets. nats-server delivers every burst: it holds a producer back while a
consumer it feeds is past three quarters of ``max_pending`` (client.go
``stalledWait``). Without that, the router read the publisher's socket as
fast as its scheduler turned, and a pause of the subscriber's process filled
``max_pending`` in milliseconds: about 1 burst in 5 cut with a subscriber in
its own process, and half or more with one sharing the publisher's event loop.

The first test replays the bursts against nats-server and the router with
the same settings and asserts the router cuts no more often; the next checks
that a consumer that stops reading is still cut. ``Outbound``'s counting and
its gate are checked over a socket pair in tests/link/test_outbound.py.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import nats

from tests.conftest import HubFactory, RouterFactory, wait_until
from tests.rawclient import RawClient

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from tests.support import NatsServerProcess, RouterProcess

BURSTS = 5
COUNT = 6000
SIZE = 4096
CONF = 'max_pending: 8MB\nwrite_deadline: "10s"\n'
QUIET = b'CONNECT {"verbose":false,"pedantic":false}\r\n'

# The subscriber in its own process: subscribe, prove the SUB is in place
# (a probe on a second subject, subscribed after it, comes back), say "ready",
# then count burst messages until all came or the connection closed.
SUBSCRIBER = """
import asyncio, json, sys, time
import nats

async def main(url, count, size):
    got = 0
    done = asyncio.Event()
    async def on_burst(msg):
        nonlocal got
        if len(msg.data) == size:
            got += 1
            if got == count:
                done.set()
    probed = asyncio.Event()
    async def on_probe(msg):
        probed.set()
    async def on_disconnect():
        done.set()
    async def on_error(exc):
        pass
    nc = await nats.connect(url, allow_reconnect=False, disconnected_cb=on_disconnect,
                            error_cb=on_error)
    await nc.subscribe("burst", cb=on_burst, pending_msgs_limit=-1, pending_bytes_limit=-1)
    await nc.subscribe("probe", cb=on_probe)
    while not probed.is_set():
        await nc.publish("probe", b"")
        try:
            await asyncio.wait_for(probed.wait(), 0.2)
        except asyncio.TimeoutError:
            pass
    print("ready", flush=True)
    try:
        await asyncio.wait_for(done.wait(), 60)
    except asyncio.TimeoutError:
        pass
    print(json.dumps({"got": got, "connected": nc.is_connected}), flush=True)
    if nc.is_connected:
        await nc.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""

BURST = (b"PUB burst %d\r\n%b\r\n" % (SIZE, b"x" * SIZE)) * COUNT


def _burst_to_process(port: int) -> int:
    """One burst to a subscriber process; how many messages it got."""
    sub = subprocess.Popen(
        [sys.executable, "-c", SUBSCRIBER, f"nats://127.0.0.1:{port}", str(COUNT), str(SIZE)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sub.stdout is not None
        assert sub.stdout.readline().strip() == "ready"
        publisher = RawClient(port)
        # Unpaced: the whole burst in one sendall, then a PING.
        with publisher.sock:
            publisher.sock.settimeout(60)
            publisher.send(QUIET + BURST + b"PING\r\n")
            publisher.read_until(b"PONG\r\n", timeout=60)
            report = json.loads(sub.stdout.readline())
        sub.wait(30)
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait()
    got: int = report["got"]
    return got


async def _burst_in_process(url: str) -> int:
    """One burst between a subscriber and a publisher sharing one event loop.

    The subscriber reads whenever the publisher's loop yields: as fast as it
    can, but in pauses that last as long as the publisher keeps writing.
    """
    got = 0
    probe_seen = asyncio.Event()

    async def on_burst(msg: Msg) -> None:
        nonlocal got
        if len(msg.data) == SIZE:
            got += 1
        else:
            probe_seen.set()

    sub = await nats.connect(url, allow_reconnect=False)
    publisher = await nats.connect(url, allow_reconnect=False)
    try:
        await sub.subscribe("burst", cb=on_burst, pending_msgs_limit=-1, pending_bytes_limit=-1)

        async def probed() -> bool:
            await publisher.publish("burst", b"probe")
            await asyncio.sleep(0.05)
            return probe_seen.is_set()

        await wait_until(probed, timeout=15, what="the subscription in place")
        payload = b"x" * SIZE
        for _ in range(COUNT):
            await publisher.publish("burst", payload)
        await wait_until(
            lambda: got == COUNT or not sub.is_connected, timeout=60, what="the burst delivered"
        )
        return got
    finally:
        await publisher.close()
        if sub.is_connected:
            await sub.close()


def _cuts(server: RouterProcess | NatsServerProcess) -> tuple[int, int]:
    """Bursts cut short: (subscriber in its own process, sharing the publisher's loop)."""
    apart = sum(_burst_to_process(server.port) < COUNT for _ in range(BURSTS))
    shared = sum(asyncio.run(_burst_in_process(server.url)) < COUNT for _ in range(BURSTS))
    return apart, shared


def test_fast_reader_is_cut_no_more_often_than_by_nats_server(
    router_factory: RouterFactory, nats_server_factory: HubFactory
) -> None:
    hub = nats_server_factory(CONF)
    router = router_factory(CONF)
    reference = _cuts(hub)
    cuts = _cuts(router)
    figures = f"bursts cut of {BURSTS}: router {cuts}, nats-server {reference}"
    assert cuts[0] <= reference[0], f"subscriber in its own process; {figures}"
    assert cuts[1] <= reference[1], f"subscriber sharing the publisher's loop; {figures}"


def test_a_reader_that_stops_is_still_cut(router_factory: RouterFactory) -> None:
    """The stall holds a producer back only briefly: a stuck consumer is still cut."""
    router = router_factory(CONF)
    stuck = RawClient(router.port)
    stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    assert stuck.exchange(QUIET + b"SUB burst 1\r\n") == (b"PONG\r\n", False)
    publisher = RawClient(router.port)
    started = time.monotonic()
    with publisher.sock:
        publisher.sock.settimeout(60)
        publisher.send(QUIET + BURST + b"PING\r\n")
        publisher.read_until(b"PONG\r\n", timeout=60)
    # 2 MB of stall room at ~64 KB per 10 ms: well under the write deadline.
    assert time.monotonic() - started < 10
    assert "Slow Consumer Detected: pending bytes" in router.log_text()
    stuck.read_until_closed(timeout=15)
