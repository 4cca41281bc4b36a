"""FaultProxy does what each fault promises, seen from a raw client of a real nats-server."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator

import pytest

from tests.conftest import HubFactory
from tests.rawclient import RawClient
from tests.support import FaultProxy


@pytest.fixture
def proxy(nats_server_factory: HubFactory) -> Iterator[FaultProxy]:
    server = nats_server_factory()
    with FaultProxy(server.port) as made:
        yield made


def connected(proxy: FaultProxy) -> RawClient:
    client = RawClient(proxy.port)
    assert client.exchange(b'CONNECT {"verbose":false}\r\n') == (b"PONG\r\n", False)
    return client


def test_forwards_both_ways(proxy: FaultProxy) -> None:
    client = connected(proxy)
    out, closed = client.exchange(b"SUB a 1\r\nPUB a 2\r\nhi\r\n")
    assert (out, closed) == (b"MSG a 1 2\r\nhi\r\nPONG\r\n", False)
    assert proxy.connections == 1


def test_close_sends_a_fin(proxy: FaultProxy) -> None:
    client = connected(proxy)
    proxy.fault("close")
    assert client.read_until_closed() == b""
    # During the outage a new connection is accepted and closed at once.
    assert socket.create_connection(("127.0.0.1", proxy.port), timeout=5).recv(10) == b""
    proxy.heal()
    connected(proxy)


def test_reset_sends_an_rst(proxy: FaultProxy) -> None:
    client = connected(proxy)
    proxy.fault("reset")
    client.sock.settimeout(5)
    with pytest.raises(ConnectionResetError):
        client.sock.recv(10)
    proxy.heal()
    connected(proxy)


def test_blackhole_forwards_nothing_and_closes_nothing(proxy: FaultProxy) -> None:
    client = connected(proxy)
    proxy.fault("blackhole")
    out, closed = client.exchange(b"", timeout=1.0)
    assert (out, closed) == (b"", False)
    fresh = socket.create_connection(("127.0.0.1", proxy.port), timeout=1.0)
    with pytest.raises(TimeoutError):
        fresh.recv(10)  # accepted, and no INFO comes through
    proxy.heal()
    # Held, then delivered in order. nats-server's own first PING to a client
    # (about 2 s after CONNECT) may come ahead of the PONG on a slow machine.
    got = client.read_until(b"PONG\r\n")
    assert got.replace(b"PING\r\n", b"") == b"PONG\r\n", got
    assert fresh.recv(4) == b"INFO"


def test_refuse_stops_listening(proxy: FaultProxy) -> None:
    client = connected(proxy)
    proxy.fault("refuse")
    assert client.read_until_closed() == b""
    with pytest.raises(ConnectionRefusedError) as refused:
        socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    assert refused.value.errno == errno.ECONNREFUSED
    proxy.heal()
    connected(proxy)
