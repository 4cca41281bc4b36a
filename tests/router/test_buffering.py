"""The router's half of store-and-forward: buffered publishes reach a real store.

A real ``leafnode store`` (SQLite file) and a real router share a run dir.
The uplink is not running: a buffered publish must be stored whatever the
state of the hub link (DESIGN §3.3), and a client's PING is answered only once
its buffered messages are committed (flush is a durability barrier, §4).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from leafnode.ipc import STORE_SOCKET
from tests.ipcclient import IpcClient, request_once
from tests.rawclient import RawClient
from tests.support import RouterProcess, ServiceProcess

QUIET = b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\n'


class Site:
    def __init__(self, base: Path, *, discard: str = "old", limits: str = "") -> None:
        self.base = base
        self.run_dir = base / "run"
        self.conf = base / "leaf.conf"
        self.conf.write_text(
            f"""
            store {{ url: "sqlite:///{base}/buffer.db" }}
            leafnodes {{
              remotes: [
                {{ name: central, url: "nats-leaf://127.0.0.1:1",
                   buffer {{ subjects: ["tele.>"], discard: {discard}, {limits} }} }}
              ]
            }}
            """
        )
        self.store = self.start_store()
        # A later --run-dir wins: the router shares the store's run dir.
        self.router = RouterProcess(
            self.conf.read_text(),
            workdir=base / "router",
            extra_args=("--run-dir", str(self.run_dir)),
        )
        self.router.wait_ready()

    def start_store(self) -> ServiceProcess:
        store = ServiceProcess("store", self.conf, self.run_dir, workdir=self.base / "store")
        store.wait_socket(STORE_SOCKET)
        return store

    def stored(self) -> list[tuple[str, bytes]]:
        frame = request_once(self.run_dir / STORE_SOCKET, "read", remote="central", limit=10_000)
        assert frame.type == "ok", frame
        rows = frame.fields["msgs"]
        assert isinstance(rows, list)
        return [(str(row[2]), blob[row[4] :]) for row, blob in zip(rows, frame.blobs, strict=True)]

    def stop(self) -> None:
        self.router.kill()
        self.store.kill()


def _local_round_trip(site: Site) -> bytes:
    """A plain (not buffered) publish to a local subscriber, then PING."""
    return RawClient(site.router.port).exchange(QUIET + b"SUB l 1\r\nPUB l 1\r\nz\r\n")[0]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    yield s
    s.stop()


def test_buffered_publishes_are_stored_in_order_before_the_pong(site: Site) -> None:
    client = RawClient(site.router.port)
    pubs = b"".join(
        b"PUB tele.a.%d %d\r\n%s\r\n" % (i, len(b"m%d" % i), b"m%d" % i) for i in range(200)
    )
    out, closed = client.exchange(QUIET + pubs + b"PUB other 1\r\nx\r\n")
    assert (out, closed) == (b"PONG\r\n", False)
    # The PONG came after the commit: everything is in the store already.
    stored = site.stored()
    assert stored == [(f"tele.a.{i}", b"m%d" % i) for i in range(200)]


def test_one_batch_of_mixed_messages_is_stored_field_for_field(site: Site) -> None:
    """Replies, headers, local queue groups and plain PUBs in one read: one batch.

    The store link's batch carries each field as one column; every message
    must come back with its own subject, reply, headers, payload and queues.
    """
    queue = RawClient(site.router.port)
    queue.exchange(QUIET + b"SUB tele.q workers 1\r\n")
    client = RawClient(site.router.port)
    hdr = b"NATS/1.0\r\nX-A: 1\r\n\r\n"
    out, closed = client.exchange(
        QUIET
        + b"PUB tele.a 2\r\na0\r\n"
        + b"PUB tele.b _INBOX.r1 2\r\nb1\r\n"
        + b"HPUB tele.c %d %d\r\n%sc2\r\n" % (len(hdr), len(hdr) + 2, hdr)
        + b"PUB tele.q 2\r\nq3\r\n"
        + b"PUB tele.a 2\r\na4\r\n"
    )
    assert (out, closed) == (b"PONG\r\n", False)
    frame = request_once(site.run_dir / STORE_SOCKET, "read", remote="central", limit=100)
    rows = frame.fields["msgs"]
    assert isinstance(rows, list)
    got = [
        (row[2], row[3], blob[: row[4]], blob[row[4] :], row[6])
        for row, blob in zip(rows, frame.blobs, strict=True)
    ]
    assert got == [
        ("tele.a", None, b"", b"a0", []),
        ("tele.b", "_INBOX.r1", b"", b"b1", []),
        ("tele.c", None, hdr, b"c2", []),
        ("tele.q", None, b"", b"q3", ["workers"]),
        ("tele.a", None, b"", b"a4", []),
    ]


def test_a_subject_that_is_not_utf8_does_not_lose_the_batch(site: Site) -> None:
    """A buffered subject with bytes that are not UTF-8 is stored (as U+FFFD);
    the messages around it in the same batch are stored as sent."""
    client = RawClient(site.router.port)
    out, closed = client.exchange(
        QUIET + b"PUB tele.a 1\r\n1\r\nPUB tele.\xff 1\r\n2\r\nPUB tele.b 1\r\n3\r\n"
    )
    assert (out, closed) == (b"PONG\r\n", False)
    assert site.stored() == [("tele.a", b"1"), ("tele.\ufffd", b"2"), ("tele.b", b"3")]


def test_local_subscribers_still_get_buffered_messages_at_once(site: Site) -> None:
    sub = RawClient(site.router.port)
    sub.exchange(QUIET + b"SUB tele.> 1\r\n")
    pub = RawClient(site.router.port)
    pub.exchange(QUIET + b"HPUB tele.x 12 14\r\nNATS/1.0\r\n\r\nhi\r\n")
    assert sub.read_until(b"hi\r\n") == b"HMSG tele.x 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
    assert site.stored() == [("tele.x", b"hi")]


def test_pong_waits_for_the_store(site: Site) -> None:
    client = RawClient(site.router.port)
    client.exchange(QUIET)
    site.store.proc.send_signal(signal.SIGSTOP)
    try:
        client.send(b"PUB tele.held 4\r\nheld\r\nPING\r\n")
        with pytest.raises(AssertionError, match="not seen"):
            client.read_until(b"PONG\r\n", timeout=0.5)
        # Local traffic goes on meanwhile.
        assert _local_round_trip(site) == b"MSG l 1 1\r\nz\r\nPONG\r\n"
    finally:
        site.store.proc.send_signal(signal.SIGCONT)
    assert client.read_until(b"PONG\r\n", timeout=10) == b"PONG\r\n"
    assert site.stored() == [("tele.held", b"held")]


def test_store_down_then_back_loses_nothing_flushed_later(site: Site) -> None:
    client = RawClient(site.router.port)
    client.exchange(QUIET + b"PUB tele.before 1\r\nb\r\n")
    site.store.kill()
    client.send(b"PUB tele.during 1\r\nd\r\nPING\r\n")
    assert _local_round_trip(site) == b"MSG l 1 1\r\nz\r\nPONG\r\n"
    site.store = site.start_store()
    assert client.read_until(b"PONG\r\n", timeout=15) == b"PONG\r\n"
    assert site.stored() == [("tele.before", b"b"), ("tele.during", b"d")]
    assert "Store unavailable" in site.router.log_text()


def test_discard_new_while_the_store_is_down(tmp_path: Path) -> None:
    site = Site(tmp_path, discard="new", limits="max_bytes: 100")
    try:
        site.store.kill()
        client = RawClient(site.router.port)
        payload = b"p" * 60
        pubs = b"".join(b"PUB tele.%d 60\r\n%s\r\n" % (i, payload) for i in range(3))
        client.send(b'CONNECT {"verbose":true,"pedantic":false}\r\n' + pubs)
        # +OK for CONNECT; the first PUB is answered once committed, and the
        # refusals of the next two wait behind it (one answer per PUB, in order).
        assert client.read_until(b"+OK\r\n") == b"+OK\r\n"
        ctl = IpcClient(site.run_dir / "router.ctl")

        def bufferz() -> dict[str, object]:
            data = ctl.request("bufferz").fields["data"]
            assert isinstance(data, dict)
            return data

        # The router notices the dead store when the first append fails.
        deadline = time.monotonic() + 10
        while bufferz()["store_available"] is not False:
            assert time.monotonic() < deadline, "the router never noticed the dead store"
            time.sleep(0.02)
        data = bufferz()
        assert data["waiting"] == 1
        assert data["dropped"] == {"central": {"store_unavailable": 2}}
        assert data["refusing"] == ["central"]
        with pytest.raises(AssertionError, match="not seen"):
            client.read_until(b"\r\n", timeout=0.3)
        site.store = site.start_store()
        client.send(b"PING\r\n")
        full = b"-ERR 'Leafnode Buffer Full'\r\n"
        assert client.read_until(b"PONG\r\n", timeout=15) == b"+OK\r\n" + full * 2 + b"PONG\r\n"
        assert site.stored() == [("tele.0", payload)]
    finally:
        site.stop()
