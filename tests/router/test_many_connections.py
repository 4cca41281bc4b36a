"""3,000 concurrent clients (issue 11 point 10): fan-out to all, ``/connz`` paging.

Every client is a raw socket in one asyncio loop (a client library per
connection would cost the test more than the router). Each subscribes to one
subject; a publisher fans messages out to all of them while another client
checks that the router still answers; ``connz`` on router.ctl must list every
connection exactly once across its pages, by the ports the test holds, with
the right counters, and follow closes.

The router holds two descriptors per client (its socket and the duplicate it
writes through), so the test raises its own RLIMIT_NOFILE first; the router
inherits it.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from typing import TYPE_CHECKING

import nats
import pytest

from tests.conftest import Inbox, RouterFactory, wait_until
from tests.ipcclient import IpcClient
from tests.rawclient import RawClient

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support import RouterProcess

CLIENTS = 3000
# Connections opened at once: the listen backlog and the test's loop stay calm.
CONNECT_BATCH = 250
FANOUT_MSGS = 5
PAGE = 1000
QUIET = b'CONNECT {"verbose":false,"pedantic":false}\r\n'
PAYLOAD = b"fan-out payload."
FRAME = b"MSG fan 1 %d\r\n%b\r\n" % (len(PAYLOAD), PAYLOAD)
# The router's two descriptors per client, the test's one, and some slack.
NOFILE_NEEDED = 2 * CLIENTS + 1024


@pytest.fixture
def nofile() -> Iterator[None]:
    """Raise this process's soft RLIMIT_NOFILE (a router started now inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < NOFILE_NEEDED:
        if hard != resource.RLIM_INFINITY and hard < NOFILE_NEEDED:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {NOFILE_NEEDED}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE_NEEDED, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Client:
    """One raw subscriber of ``fan``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.port: int = writer.get_extra_info("sockname")[1]

    @classmethod
    async def connect(cls, port: int, *, subscribe: bool = True) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        info = await reader.readline()
        assert info.startswith(b"INFO "), info
        writer.write(QUIET + (b"SUB fan 1\r\n" if subscribe else b"") + b"PING\r\n")
        assert await reader.readuntil(b"PONG\r\n") == b"PONG\r\n"
        return cls(reader, writer)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def _connz(ctl: IpcClient, **query: str) -> dict[str, object]:
    frame = ctl.request("connz", query=query)
    assert frame.type == "ok", frame
    data = frame.fields["data"]
    assert isinstance(data, dict)
    return data


def _all_pages(ctl: IpcClient, total: int) -> list[dict[str, object]]:
    """Every connection, ``PAGE`` at a time, checking each page's figures."""
    entries: list[dict[str, object]] = []
    for offset in range(0, total, PAGE):
        page = _connz(ctl, offset=str(offset), limit=str(PAGE))
        connections = page["connections"]
        assert isinstance(connections, list)
        assert page["total"] == total
        assert page["offset"] == offset
        assert page["limit"] == PAGE
        assert page["num_connections"] == len(connections) == min(PAGE, total - offset)
        entries.extend(connections)
    cids = [entry["cid"] for entry in entries]
    assert cids == sorted(cids), "pages out of cid order"  # type: ignore[type-var]
    assert len(set(cids)) == total, "a connection listed twice"
    return entries


async def _still_serving(router: RouterProcess) -> float:
    """Seconds a fresh nats-py client takes to connect and get its own message."""
    started = time.monotonic()
    nc = await nats.connect(router.url, allow_reconnect=False)
    inbox = Inbox()
    await nc.subscribe("alive", cb=inbox.cb)

    async def echoed() -> bool:
        await nc.publish("alive", b"here")
        await asyncio.sleep(0.05)
        return bool(inbox.data)

    await wait_until(echoed, timeout=30, what="the router answering")
    await nc.close()
    return time.monotonic() - started


@pytest.mark.asyncio
@pytest.mark.usefixtures("nofile")
async def test_3000_clients_fan_out_and_connz_pages(router_factory: RouterFactory) -> None:
    router = router_factory()
    clients: list[Client] = []
    for _ in range(0, CLIENTS, CONNECT_BATCH):
        clients += await asyncio.gather(
            *(Client.connect(router.port) for _ in range(CONNECT_BATCH))
        )
    ports = {client.port for client in clients}
    assert len(ports) == CLIENTS
    ctl = IpcClient(router.run_dir / "router.ctl")

    # /connz: every client once, by its port, whatever the paging.
    first = _connz(ctl)
    assert first["total"] == CLIENTS
    assert first["num_connections"] == len(first["connections"]) == 1024  # type: ignore[arg-type]
    entries = _all_pages(ctl, CLIENTS)
    assert {entry["port"] for entry in entries} == ports
    assert all(entry["subscriptions"] == 1 for entry in entries)
    past_end = _connz(ctl, offset=str(CLIENTS), limit="10")
    assert (past_end["total"], past_end["num_connections"], past_end["connections"]) == (
        CLIENTS,
        0,
        [],
    )
    listed = _connz(ctl, offset="10", limit="5", subs="1")
    assert [entry["subscriptions_list"] for entry in listed["connections"]] == [["fan"]] * 5  # type: ignore[attr-defined]

    # Fan-out: each message to every client, while a newcomer is served.
    publisher = await Client.connect(router.port, subscribe=False)
    publisher.writer.write(b"PUB fan %d\r\n%b\r\n" % (len(PAYLOAD), PAYLOAD) * FANOUT_MSGS)
    expected = FRAME * FANOUT_MSGS
    serving = asyncio.create_task(_still_serving(router))
    received = await asyncio.wait_for(
        asyncio.gather(*(c.reader.readexactly(len(expected)) for c in clients)), timeout=60
    )
    assert all(data == expected for data in received)
    assert await serving < 30
    await wait_until(
        lambda: _connz(ctl, limit="1")["total"] == CLIENTS + 1,
        timeout=30,
        what="the newcomer gone from connz",
    )
    entries = _all_pages(ctl, CLIENTS + 1)
    out_msgs = {entry["port"]: entry["out_msgs"] for entry in entries}
    assert all(out_msgs[port] == FANOUT_MSGS for port in ports)
    assert out_msgs[publisher.port] == 0
    varz = ctl.request("varz", query={}).fields["data"]
    assert varz["connections"] == CLIENTS + 1  # type: ignore[index]
    assert varz["slow_consumers"] == 0  # type: ignore[index]

    # Closes: the third that left is gone from /connz, the rest is all there.
    leaving, staying = clients[: CLIENTS // 3], clients[CLIENTS // 3 :]
    await asyncio.gather(*(client.close() for client in leaving))
    remaining = len(staying) + 1

    def settled() -> bool:
        return _connz(ctl, limit="1")["total"] == remaining

    await wait_until(settled, timeout=30, what="closed clients gone from connz")
    entries = _all_pages(ctl, remaining)
    assert {entry["port"] for entry in entries} == {c.port for c in staying} | {publisher.port}
    ctl.close()
    await asyncio.gather(*(client.close() for client in [*staying, publisher]))
    assert router.proc.poll() is None
    assert "Traceback" not in router.log_text()


# The router's log line when accept() fails. Linux takes the descriptor
# first: at the limit, accept() fails whether or not a connection waits.
ACCEPT_FAILED = "Error accepting client connection: [Errno 24] Too many open files"


def _info_within(client: RawClient, timeout: float) -> bool:
    try:
        return client.read_line(timeout=timeout).startswith(b"INFO ")
    except AssertionError:
        return False


def test_out_of_descriptors_keeps_the_router_and_its_clients(
    router_factory: RouterFactory,
) -> None:
    """Past RLIMIT_NOFILE the router refuses newcomers for a while, never dies.

    A client whose socket was accepted with the last free descriptor had none
    left for the duplicate the router writes through: that raised in the
    connection's set-up and ended the router with every client.
    """
    router = router_factory()
    pid = router.proc.pid
    first = RawClient(router.port)
    assert first.exchange(QUIET + b"SUB keep 1\r\n") == (b"PONG\r\n", False)
    limits = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    highest = max(int(fd) for fd in os.listdir(f"/proc/{pid}/fd"))
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (highest + 8, limits[1]))
    extra: list[RawClient] = []
    try:
        # Fill the descriptors until a connection waits unaccepted...
        while True:
            assert len(extra) < 20, "the router never ran out of descriptors"
            extra.append(RawClient(router.port, read_info=False))
            if not _info_within(extra[-1], 2.0):
                break
        assert ACCEPT_FAILED in router.log_text()
        # ...then one more descriptor: it is accepted, with none left to duplicate.
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (highest + 9, limits[1]))
        waiting = extra[-1]
        assert _info_within(waiting, 10.0), "the waiting client was never served"
        assert router.proc.poll() is None, router.log_text()[-2000:]
        assert waiting.exchange(QUIET + b"PUB keep 2\r\nhi\r\n") == (b"PONG\r\n", False)
        assert first.read_until(b"hi\r\n") == b"MSG keep 1 2\r\nhi\r\n"
        assert "Cannot duplicate a client socket" in router.log_text()
    finally:
        for client in extra:
            client.sock.close()
        resource.prlimit(pid, resource.RLIMIT_NOFILE, limits)
