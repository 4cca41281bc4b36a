"""Our route protocol against a real nats-server 2.15 (issue 14 point 2).

A nats-server with a ``cluster { }`` block whose ``routes`` point at a raw
TCP listener of this test dials it; the test plays the other node with
``leafnode.proto`` alone: it answers each route's CONNECT with our
``RouteInfo`` (compression off, pool size 3), reads everything nats-server
sends with ``Parser(Kind.ROUTE)`` and checks that each line is the right
typed event and that our encoders write it back byte for byte: the CONNECT
and INFO of every pooled route and of the dedicated ``$SYS`` route, RS+ and
RS- after a client subscribes and leaves, RMSG/HMSG (reply, headers, queue
groups) after a client publishes on subjects we announced interest in. The
other way round, RMSG and HMSG we encode reach a nats-py subscriber.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import nats
import pytest

from leafnode.proto import (
    COMPRESSION_OFF,
    PING,
    PONG,
    Connect,
    Info,
    Kind,
    Parser,
    Ping,
    Pong,
    RHMsg,
    RMsg,
    RouteInfo,
    RSub,
    RUnsub,
    encode_event,
    encode_rhmsg,
    encode_rmsg,
    encode_route_connect,
    encode_route_event,
    encode_route_info,
    encode_rsub,
    route_connect,
    route_info,
    route_pool_index,
)
from tests.conftest import wait_until
from tests.support import NatsServerProcess

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from leafnode.proto import Event

POOL_SIZE = 3
OUR_ID = "NLEAFNODETESTROUTE"


@dataclass
class Route:
    """One route nats-server opened to us: what it sent, as events and as bytes."""

    sock: socket.socket
    events: list[Event] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)  # the raw bytes of each event
    info: RouteInfo | None = None
    pongs: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, data: bytes) -> None:
        with self.lock:
            self.sock.sendall(data)

    def of(self, kind: type) -> list[tuple[Event, bytes]]:
        return [(e, w) for e, w in zip(self.events, self.lines, strict=True) if type(e) is kind]


class FakeNode:
    """A raw TCP listener that speaks the route protocol with leafnode.proto only."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port: int = self.listener.getsockname()[1]
        self.routes: list[Route] = []
        self.errors: list[BaseException] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            route = Route(sock)
            self.routes.append(route)
            threading.Thread(target=self._serve, args=(route,), daemon=True).start()

    def _serve(self, route: Route) -> None:
        parser = Parser(Kind.ROUTE)
        try:
            while data := route.sock.recv(65536):
                parser.feed(data)
                while True:
                    before = parser._pos  # the raw bytes of each event, for byte-exact checks
                    buf = parser._buf
                    event = parser.next_event()
                    if event is None:
                        break
                    self._handle(route, parser, event, buf[before : parser._pos])
                parser.compact()
        except OSError:
            return
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)

    def _handle(self, route: Route, parser: Parser, event: Event, wire: bytes) -> None:
        route.events.append(event)
        route.lines.append(wire)
        match event:
            case Connect():
                ours = RouteInfo(
                    server_id=OUR_ID,
                    server_name="leafnode-test",
                    version="2.15.1",
                    host="127.0.0.1",
                    port=self.port,
                    cluster="C",
                    compression=COMPRESSION_OFF,
                    lnoc=True,
                    lnocu=True,
                    route_pool_size=POOL_SIZE,
                )
                route.send(encode_route_info(ours))
            case Info():
                route.info = route_info(event.options)
                if route.info.route_account:
                    parser.route_account = route.info.route_account.encode()
            case Ping():
                route.send(PONG)
            case Pong():
                route.pongs += 1
            case _:
                pass

    def route_for(self, account: str) -> Route | None:
        """The route nats-server uses for ``account``'s traffic, once its INFO came:
        the account's dedicated route, else the pooled route of its index."""
        infos = [(r, r.info) for r in list(self.routes) if r.info is not None]
        for route, info in infos:
            if info.route_account == account:
                return route
        index = route_pool_index(POOL_SIZE, account)
        for route, info in infos:
            if not info.route_account and info.route_pool_idx == index:
                return route
        return None

    def close(self) -> None:
        self.listener.close()
        for route in self.routes:
            route.sock.close()


@pytest.fixture
def node_and_server(tmp_path: Path) -> Iterator[tuple[FakeNode, NatsServerProcess]]:
    node = FakeNode()
    config = (
        "server_name: n1\n"
        f'cluster {{ name: C, listen: "127.0.0.1:-1", '
        f'routes: ["nats-route://127.0.0.1:{node.port}"] }}\n'
    )
    server = NatsServerProcess(config, workdir=tmp_path / "n1")
    try:
        server.wait_ready()
        yield node, server
    finally:
        server.kill()
        node.close()


async def _barrier(route: Route) -> None:
    """nats-server has processed everything we sent on ``route`` (its PONG to our PING)."""
    seen = route.pongs
    route.send(PING)
    await wait_until(lambda: route.pongs > seen, timeout=20, what="nats-server's PONG")


@pytest.mark.asyncio
async def test_nats_server_2_15_routes_parse_and_encode_byte_exact(
    node_and_server: tuple[FakeNode, NatsServerProcess],
) -> None:
    node, server = node_and_server

    # The handshake: the $SYS route and the pool, each CONNECT then INFO.
    await wait_until(
        lambda: sum(r.info is not None for r in node.routes) >= POOL_SIZE + 1,
        timeout=30,
        what="every pooled route",
    )
    assert not node.errors
    indexes = set()
    for route in node.routes:
        if route.info is None:
            continue
        (connect, connect_wire), (info, info_wire) = route.of(Connect)[0], route.of(Info)[0]
        assert isinstance(connect, Connect)
        assert isinstance(info, Info)
        typed = route_connect(connect.options)
        assert (typed.cluster, typed.name, typed.lnoc) == ("C", route.info.server_id, True)
        assert encode_route_connect(typed) == connect_wire
        assert encode_route_info(route.info) == info_wire
        assert route.info.route_pool_size == POOL_SIZE
        assert route.info.compression == COMPRESSION_OFF  # answered to our "off"
        indexes.add(route.info.route_account or route.info.route_pool_idx)
    assert indexes == {"$SYS", 0, 1, 2}

    # The $SYS route's interest: no account on its lines, $SYS in the events.
    sys_route = node.route_for("$SYS")
    assert sys_route is not None
    await wait_until(lambda: bool(sys_route.of(RSub)), timeout=20, what="RS+ on the $SYS route")
    for event, wire in sys_route.of(RSub):
        assert isinstance(event, RSub)
        assert event.account == b"$SYS"
        assert not wire.startswith(b"RS+ $SYS ")
        assert encode_route_event(event, pinned=True) == wire

    g_route = node.route_for("$G")
    assert g_route is not None
    nc = await nats.connect(server.url, allow_reconnect=False)
    try:
        # RS+ and RS- after a client subscribes and leaves.
        foo = await nc.subscribe("foo")
        bar = await nc.subscribe("bar", queue="q")
        await wait_until(lambda: len(g_route.of(RSub)) >= 2, timeout=20, what="RS+ for foo and bar")
        subs = g_route.of(RSub)
        assert [e for e, _ in subs] == [RSub(b"$G", b"foo"), RSub(b"$G", b"bar", b"q", 1)]
        assert [w for _, w in subs] == [b"RS+ $G foo\r\n", b"RS+ $G bar q 1\r\n"]
        assert all(encode_event(e) == w for e, w in subs)
        await bar.unsubscribe()
        await wait_until(lambda: bool(g_route.of(RUnsub)), timeout=20, what="RS- for bar")
        ((unsub, unsub_wire),) = g_route.of(RUnsub)
        assert unsub == RUnsub(b"$G", b"bar", b"q")
        assert encode_event(unsub) == unsub_wire == b"RS- $G bar q\r\n"

        # RMSG/HMSG after a client publishes where we announced interest.
        g_route.send(encode_rsub(b"$G", b"baz") + encode_rsub(b"$G", b"qq", b"grp", 1))
        await _barrier(g_route)
        await nc.publish("baz", b"hello", reply="r.1")
        await nc.publish("baz", b"hi", headers={"A": "b"})
        await nc.publish("qq", b"x", reply="r.2")
        await nc.publish("qq", b"y")
        await wait_until(
            lambda: len(g_route.of(RMsg)) + len(g_route.of(RHMsg)) >= 4,
            timeout=20,
            what="four routed messages",
        )
        msgs = [(e, w) for e, w in zip(g_route.events, g_route.lines, strict=True)]
        msgs = [(e, w) for e, w in msgs if isinstance(e, RMsg | RHMsg)]
        assert [e for e, _ in msgs] == [
            RMsg(b"$G", b"baz", b"r.1", (), b"hello"),
            RHMsg(b"$G", b"baz", None, (), 18, b"NATS/1.0\r\nA: b\r\n\r\nhi"),
            RMsg(b"$G", b"qq", b"r.2", (b"grp",), b"x"),
            RMsg(b"$G", b"qq", None, (b"grp",), b"y"),
        ]
        assert [w for _, w in msgs] == [
            b"RMSG $G baz r.1 5\r\nhello\r\n",
            b"HMSG $G baz 18 20\r\nNATS/1.0\r\nA: b\r\n\r\nhi\r\n",
            b"RMSG $G qq + r.2 grp 1\r\nx\r\n",
            b"RMSG $G qq | grp 1\r\ny\r\n",
        ]
        assert all(encode_event(e) == w for e, w in msgs)

        # The other way: what we encode reaches nats-server's subscriber.
        g_route.send(encode_rmsg(b"$G", b"foo", b"r.9", (), b"from-us"))
        g_route.send(encode_rhmsg(b"$G", b"foo", None, (), 18, b"NATS/1.0\r\nX: 1\r\n\r\nh"))
        first = await foo.next_msg(timeout=20)
        second = await foo.next_msg(timeout=20)
        assert (first.subject, first.reply, first.data) == ("foo", "r.9", b"from-us")
        assert (second.data, second.headers) == (b"h", {"X": "1"})
    finally:
        await nc.close()
    await asyncio.sleep(0)
    assert not node.errors
