"""Limits and timers: stale connections, slow consumers, auth timeout, connection cap."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import nats
import pytest

from tests.conftest import HubFactory, RouterFactory, wait_until
from tests.rawclient import RawClient

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from tests.support import NatsServerProcess, RouterProcess

QUIET = b'CONNECT {"verbose":false,"pedantic":false}\r\n'


def test_stale_connection_is_closed_after_ping_max(router_factory: RouterFactory) -> None:
    router = router_factory('ping_interval: "200ms"\nping_max: 2\n')
    client = RawClient(router.port)
    client.send(QUIET)
    # We never answer: two PINGs, then the server gives up.
    assert client.read_until_closed(timeout=5) == b"PING\r\nPING\r\n-ERR 'Stale Connection'\r\n"


def test_answered_pings_keep_the_connection(router_factory: RouterFactory) -> None:
    router = router_factory('ping_interval: "100ms"\nping_max: 1\n')
    client = RawClient(router.port)
    client.send(QUIET)
    for _ in range(5):
        assert client.read_line() == b"PING"
        client.send(b"PONG\r\n")
    out, closed = client.exchange(b"")
    assert not closed
    assert out.endswith(b"PONG\r\n")


def test_auth_timeout_matches_nats_server(
    router_factory: RouterFactory, nats_server_factory: HubFactory
) -> None:
    conf = "authorization { user: a, password: b, timeout: 0.3 }\n"
    for server in (router_factory(conf), nats_server_factory(conf)):
        client = RawClient(server.port)
        assert client.info.get("auth_required") is True
        assert client.read_until_closed(timeout=5) == b"-ERR 'Authentication Timeout'\r\n"


def test_max_connections_matches_nats_server(
    router_factory: RouterFactory, nats_server_factory: HubFactory
) -> None:
    server: RouterProcess | NatsServerProcess
    for server in (
        router_factory("max_connections: 1\n"),
        nats_server_factory("max_connections: 1\n"),
    ):
        first = RawClient(server.port)
        # nats-server writes INFO before it registers the client: a PONG is
        # the barrier that the first connection counts before the second.
        assert first.exchange(QUIET) == (b"PONG\r\n", False)
        second = RawClient(server.port)
        assert second.read_until_closed() == b"-ERR 'maximum connections exceeded'\r\n"
        out, closed = first.exchange(QUIET)
        assert (out, closed) == (b"PONG\r\n", False)


@pytest.mark.asyncio
async def test_slow_consumer_is_cut_off_and_others_go_on(router_factory: RouterFactory) -> None:
    router = router_factory('max_pending: 256KB\nmax_payload: 64KB\nwrite_deadline: "1s"\n')
    slow = RawClient(router.port)
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.send(QUIET + b"SUB flood 1\r\n")
    assert slow.exchange(b"")[0] == b"PONG\r\n"
    healthy = await nats.connect(router.url)
    got: list[int] = []

    async def count(msg: Msg) -> None:
        got.append(len(msg.data))

    await healthy.subscribe("side", cb=count)
    publisher = await nats.connect(router.url)
    chunk = b"x" * 32 * 1024
    for _ in range(2000):  # 64 MB aimed at a reader that never reads
        await publisher.publish("flood", chunk)
    await publisher.publish("side", b"still here")
    await wait_until(lambda: got == [10], timeout=10, what="healthy subscriber unaffected")
    await wait_until(
        lambda: "Slow Consumer Detected" in router.log_text(),
        timeout=10,
        what="slow consumer logged",
    )
    assert publisher.is_connected
    assert healthy.is_connected
    slow.read_until_closed(timeout=15)
    await publisher.close()
    await healthy.close()
