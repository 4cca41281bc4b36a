"""The router's client connection in-process: its policy in virtual time (issue 13).

A real ``Server`` and real ``ClientConnection`` objects, as the router builds
them from a config, each served by its ``leafnode.link`` shell over
``trio.testing.memory_stream_pair`` (``lockstep_stream_pair`` for a consumer
that does not read), under ``MockClock(autojump_threshold=0)``. What took
real processes and wall-clock waits (tests/router/test_limits.py) runs here
in milliseconds: the authentication timeout, PINGs and stale detection, slow
consumers by pending bytes and by write deadline, with nats-server's close
reasons and ``-ERR`` texts.
"""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing

from leafnode.config import loads
from services.router import closed
from services.router.client_conn import ClientConnection
from services.router.server import Server

QUIET = b'CONNECT {"verbose":false,"pedantic":false}\r\n'


def _server(nursery: trio.Nursery, config: str) -> Server:
    server = Server(loads(config))
    server._build_info()  # as Server.run does before it listens
    nursery.start_soon(server.flusher.run)
    return server


def _client(server: Server, stream: trio.abc.Stream, cid: int) -> ClientConnection:
    client = ClientConnection(server, stream, cid, "127.0.0.1", 40000 + cid)
    server.clients[cid] = client
    return client


async def _read_all(stream: trio.abc.ReceiveStream) -> list[tuple[float, bytes]]:
    got: list[tuple[float, bytes]] = []
    while data := await stream.receive_some():
        got.append((trio.current_time(), bytes(data)))
    return got


async def _expect_info(stream: trio.abc.ReceiveStream) -> dict[str, object]:
    line = await stream.receive_some()
    assert line.startswith(b"INFO ")
    assert line.endswith(b"\r\n")
    info = json.loads(line[5:])
    assert isinstance(info, dict)
    return info


@pytest.mark.trio
async def test_auth_timeout(autojump_clock: trio.abc.Clock, nursery: trio.Nursery) -> None:
    server = _server(nursery, "authorization { user: a, password: b, timeout: 3 }\n")
    ours, theirs = trio.testing.memory_stream_pair()
    client = _client(server, ours, 1)
    start = trio.current_time()
    async with trio.open_nursery() as serving:
        serving.start_soon(client.run)
        info = await _expect_info(theirs)
        assert info["auth_required"] is True
        got = await _read_all(theirs)
    # client.run has returned: the server has forgotten the client.
    assert [(round(t - start, 6), data) for t, data in got] == [
        (3.0, b"-ERR 'Authentication Timeout'\r\n")
    ]
    assert client.close_reason == closed.AUTH_TIMEOUT
    assert 1 not in server.clients
    assert server.closed_clients


@pytest.mark.trio
async def test_connect_in_time_stops_the_auth_timer(
    autojump_clock: trio.abc.Clock, nursery: trio.Nursery
) -> None:
    server = _server(nursery, "authorization { user: a, password: b, timeout: 3 }\n")
    ours, theirs = trio.testing.memory_stream_pair()
    client = _client(server, ours, 1)
    nursery.start_soon(client.run)
    await _expect_info(theirs)
    await theirs.send_all(b'CONNECT {"user":"a","pass":"b","verbose":false}\r\nPING\r\n')
    assert await theirs.receive_some() == b"PONG\r\n"
    await trio.sleep(60)
    assert client.close_reason is None
    await theirs.aclose()
    await trio.testing.wait_all_tasks_blocked()
    assert client.close_reason == closed.CLIENT_CLOSED


@pytest.mark.trio
async def test_pings_then_stale_connection(
    autojump_clock: trio.abc.Clock, nursery: trio.Nursery
) -> None:
    server = _server(nursery, 'ping_interval: "5s"\nping_max: 2\n')
    ours, theirs = trio.testing.memory_stream_pair()
    client = _client(server, ours, 1)
    start = trio.current_time()
    async with trio.open_nursery() as serving:
        serving.start_soon(client.run)
        await _expect_info(theirs)
        await theirs.send_all(QUIET)
        got = await _read_all(theirs)
    # nats-server: a PING each interval; at the one after ping_max unanswered,
    # -ERR 'Stale Connection' and the close.
    assert [(round(t - start, 6), data) for t, data in got] == [
        (5.0, b"PING\r\n"),
        (10.0, b"PING\r\n"),
        (15.0, b"-ERR 'Stale Connection'\r\n"),
    ]
    assert client.close_reason == closed.STALE_CONNECTION


@pytest.mark.trio
async def test_answered_pings_keep_the_client(
    autojump_clock: trio.abc.Clock, nursery: trio.Nursery
) -> None:
    server = _server(nursery, 'ping_interval: "5s"\nping_max: 2\n')
    ours, theirs = trio.testing.memory_stream_pair()
    client = _client(server, ours, 1)
    nursery.start_soon(client.run)
    await _expect_info(theirs)
    await theirs.send_all(QUIET)
    with trio.move_on_after(100):
        while data := await theirs.receive_some():
            assert data == b"PING\r\n"
            await theirs.send_all(b"PONG\r\n")
    assert client.close_reason is None


async def _publisher_and_stuck_subscriber(
    nursery: trio.Nursery, config: str
) -> tuple[Server, ClientConnection, trio.abc.Stream, ClientConnection, trio.abc.Stream]:
    server = _server(nursery, config)
    # The subscriber's end is lockstep: every write blocks until it reads.
    sub_ours, sub_theirs = trio.testing.lockstep_stream_pair()
    pub_ours, pub_theirs = trio.testing.memory_stream_pair()
    sub = _client(server, sub_ours, 1)
    pub = _client(server, pub_ours, 2)
    nursery.start_soon(sub.run)
    nursery.start_soon(pub.run)
    await _expect_info(sub_theirs)
    await sub_theirs.send_all(QUIET + b"SUB s 1\r\nPING\r\n")
    assert await sub_theirs.receive_some() == b"PONG\r\n"
    await _expect_info(pub_theirs)
    await pub_theirs.send_all(QUIET)
    return server, sub, sub_theirs, pub, pub_theirs


@pytest.mark.trio
async def test_slow_consumer_by_pending_bytes(
    autojump_clock: trio.abc.Clock, nursery: trio.Nursery
) -> None:
    server, sub, _sub_theirs, pub, pub_theirs = await _publisher_and_stuck_subscriber(
        nursery, 'max_pending: 64KB\nmax_payload: 8KB\nwrite_deadline: "60s"\n'
    )
    start = trio.current_time()
    payload = b"x" * 8000
    for _ in range(10):  # 80 KB for a subscriber that reads nothing
        await pub_theirs.send_all(b"PUB s 8000\r\n" + payload + b"\r\n")
    with trio.fail_after(30):
        while sub.close_reason is None:
            await trio.sleep(0.001)
    assert sub.close_reason == closed.SLOW_CONSUMER_PENDING
    assert trio.current_time() - start < 60  # cut by pending bytes, not the deadline
    assert server.slow_consumers == 1
    assert pub.close_reason is None  # the producer goes on


@pytest.mark.trio
async def test_slow_consumer_by_write_deadline(
    autojump_clock: trio.abc.Clock, nursery: trio.Nursery
) -> None:
    server, sub, _sub_theirs, _pub, pub_theirs = await _publisher_and_stuck_subscriber(
        nursery, 'write_deadline: "2s"\n'
    )
    start = trio.current_time()
    await pub_theirs.send_all(b"PUB s 2\r\nhi\r\n")
    with trio.fail_after(30):
        while sub.close_reason is None:
            await trio.sleep(0.001)
    assert sub.close_reason == closed.SLOW_CONSUMER_WRITE_DEADLINE
    assert trio.current_time() - start == pytest.approx(2.0, abs=0.01)
    assert server.slow_consumers == 1


@pytest.mark.trio
async def test_a_reload_changes_the_ping_interval_of_connected_clients(
    autojump_clock: trio.abc.Clock, nursery: trio.Nursery
) -> None:
    server = _server(nursery, 'ping_interval: "5s"\nping_max: 100\n')
    ours, theirs = trio.testing.memory_stream_pair()
    client = _client(server, ours, 1)
    start = trio.current_time()
    nursery.start_soon(client.run)
    await _expect_info(theirs)
    await theirs.send_all(QUIET)
    pings: list[float] = []
    while len(pings) < 4:
        data = await theirs.receive_some()
        assert data == b"PING\r\n"
        pings.append(round(trio.current_time() - start, 6))
        await theirs.send_all(b"PONG\r\n")
        if len(pings) == 1:
            server.reload(loads('ping_interval: "20s"\nping_max: 100\n'))
    # The PING after the reload was already timed (as nats-server's timer);
    # from then on, every 20 s.
    assert pings == [5.0, 10.0, 30.0, 50.0]
    assert client.close_reason is None
