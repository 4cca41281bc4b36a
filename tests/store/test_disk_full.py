"""Store trouble: the SQLite disk fills up under a running store (issue 4 item 7).

The database file lives on a 2 MiB ``tmpfs`` mounted for the test (root
only; skipped where mounting is not permitted). A real ``leafnode store`` and
a real router share a run dir (outside the tmpfs). Once some messages are
committed, a filler file takes every free byte, so the next commit gets
SQLite's "database or disk is full". Then:

- appends are answered ``unavailable`` and the store process keeps running;
- the router keeps serving local traffic, buffered publishes wait in its
  memory within ``max_bytes`` and follow ``discard`` (counted as
  ``store_unavailable``), and a flush does not return;
- deleting the filler is all it takes: the router's retries land the waiting
  messages, the flush returns, and nothing committed before is lost.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from leafnode.ipc import STORE_SOCKET, Frame
from tests.ipcclient import request_once
from tests.rawclient import RawClient
from tests.support import RouterProcess, ServiceProcess, TmpfsUnavailable, small_tmpfs

QUIET = b'CONNECT {"verbose":false,"pedantic":false}\r\n'
VERBOSE = b'CONNECT {"verbose":true,"pedantic":false}\r\n'
# The remote's max_bytes, and the messages published while the disk is full:
# five of them fit in max_bytes (router memory and store backlog alike), the
# other five must be discarded.
MAX_BYTES = 5000
PAYLOAD = 900
DURING = 10
KEPT = 5


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs on a fresh dir (root only); unmounted afterwards."""
    try:
        with small_tmpfs(tmp_path / "disk", "2m") as mnt:
            yield mnt
    except TmpfsUnavailable as exc:
        pytest.skip(str(exc))


class Site:
    """A store with its database on ``disk`` and a router sharing its run dir."""

    def __init__(self, base: Path, disk: Path, *, discard: str) -> None:
        self.disk = disk
        self.discard = discard
        self.run_dir = base / "run"
        conf = base / "leaf.conf"
        conf.write_text(
            f"""
            store {{ url: "sqlite:///{disk}/buffer.db" }}
            leafnodes {{
              remotes: [
                {{ name: central, url: "nats-leaf://127.0.0.1:1",
                   buffer {{ subjects: ["tele.>"], discard: {discard}, max_bytes: {MAX_BYTES} }} }}
              ]
            }}
            """
        )
        self.store = ServiceProcess("store", conf, self.run_dir, workdir=base / "store")
        self.router: RouterProcess | None = None
        self.store.wait_socket(STORE_SOCKET)
        self.router = RouterProcess(
            conf.read_text(),
            workdir=base / "router",
            extra_args=("--run-dir", str(self.run_dir)),
        )
        self.router.wait_ready()

    @property
    def port(self) -> int:
        assert self.router is not None
        return self.router.port

    def store_request(self, kind: str, blobs: tuple[bytes, ...] = (), **fields: object) -> Frame:
        return request_once(self.run_dir / STORE_SOCKET, kind, blobs, **fields)

    def stored(self) -> list[tuple[str, bytes]]:
        frame = self.store_request("read", remote="central", limit=10_000)
        assert frame.type == "ok", frame
        rows = frame.fields["msgs"]
        assert isinstance(rows, list)
        return [(str(row[2]), blob[row[4] :]) for row, blob in zip(rows, frame.blobs, strict=True)]

    def bufferz(self) -> dict[str, object]:
        frame = request_once(self.run_dir / "router.ctl", "bufferz")
        data = frame.fields["data"]
        assert isinstance(data, dict)
        return data

    def router_log(self) -> str:
        assert self.router is not None
        return self.router.log_text()

    def local_round_trip(self) -> bytes:
        """A plain (not buffered) publish to a local subscriber, then PING."""
        return RawClient(self.port).exchange(QUIET + b"SUB l 1\r\nPUB l 1\r\nz\r\n")[0]

    def stop(self) -> None:
        if self.router is not None:
            self.router.kill()
        self.store.kill()


@pytest.fixture(params=["old", "new"])
def site(request: pytest.FixtureRequest, tmp_path: Path, small_disk: Path) -> Iterator[Site]:
    s = Site(tmp_path, small_disk, discard=request.param)
    yield s
    s.stop()


def fill(disk: Path) -> Path:
    """Write a file into ``disk`` until it has no free byte left; returns it."""
    filler = disk / "filler"
    block = b"\xa5" * 65536
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                # A short write takes the last bytes; the next one fails.
                f.write(block)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return filler


def wait_for(condition: object, what: str, timeout: float = 15.0) -> None:
    """Poll ``condition()`` until true; fail after ``timeout`` seconds."""
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def test_disk_full_then_freed(site: Site) -> None:
    before = [(f"tele.before.{i}", b"b%d" % i) for i in range(3)]
    client = RawClient(site.port)
    out, _ = client.exchange(
        QUIET + b"".join(b"PUB %s %d\r\n%s\r\n" % (s.encode(), len(p), p) for s, p in before)
    )
    assert out == b"PONG\r\n"
    assert site.stored() == before

    filler = fill(site.disk)
    assert os.statvfs(site.disk).f_bavail == 0

    # The store itself answers an append with "unavailable" and stays up.
    direct = site.store_request(
        "append",
        (b"x" * PAYLOAD,),
        msgs=[["central", "tele.direct", None, 0, time.time_ns() // 1000, []]],
    )
    assert direct.type == "error", direct
    assert direct.fields["code"] == "unavailable"
    assert direct.fields["error"] == (
        f"store database: the disk holding the SQLite database {site.disk}/buffer.db is full"
    )
    assert site.store.proc.poll() is None

    # Ten buffered publishes in one write (one routing pass), then a flush.
    during = [(f"tele.full.{i}", bytes([65 + i]) * PAYLOAD) for i in range(DURING)]
    pubs = b"".join(b"PUB %s %d\r\n%s\r\n" % (s.encode(), len(p), p) for s, p in during)
    publisher = RawClient(site.port)
    if site.discard == "new":
        # A verbose publisher: one answer per PUB, in order, each once the
        # store decided: nothing yet but the CONNECT's +OK.
        publisher.send(VERBOSE + pubs + b"PING\r\n")
        assert publisher.read_until(b"+OK\r\n") == b"+OK\r\n"
        kept = during[:KEPT]
    else:
        publisher.send(QUIET + pubs + b"PING\r\n")
        kept = during[DURING - KEPT :]

    # The router tried and was refused (one outage line, not one per retry);
    # the messages wait in its memory.
    wait_for(lambda: "Store unavailable: " in site.router_log(), "the router's outage line")
    wait_for(lambda: site.bufferz()["waiting"] == KEPT, f"{KEPT} messages waiting in the router")
    assert site.bufferz()["dropped"] == {"central": {"store_unavailable": DURING - KEPT}}
    # The flush does not return while the messages are not committed...
    with pytest.raises(AssertionError, match="not seen"):
        publisher.read_until(b"PONG\r\n", timeout=0.3)
    # ...and local traffic goes on meanwhile.
    assert site.local_round_trip() == b"MSG l 1 1\r\nz\r\nPONG\r\n"
    # Reads still work, and what was committed is all there.
    assert site.stored() == before
    assert site.store.proc.poll() is None

    # The store says what is wrong, in an operator's words.
    pong = site.store_request("ping")
    assert pong.fields["database"] == {
        "up": False,
        "error": f"the disk holding the SQLite database {site.disk}/buffer.db is full",
        "down_since_us": pong.fields["database"]["down_since_us"],  # type: ignore[index]
    }

    # Free the space: nobody restarts anything, the router's retry lands them.
    filler.unlink()
    flushed = publisher.read_until(b"PONG\r\n", timeout=15)
    if site.discard == "new":
        # Exactly one answer per PUB: +OK for each kept, -ERR for each refused.
        refused = b"-ERR 'Leafnode Buffer Full'\r\n"
        assert flushed == b"+OK\r\n" * KEPT + refused * (DURING - KEPT) + b"PONG\r\n"
    else:
        assert flushed == b"PONG\r\n"
    assert site.stored() == before + kept
    assert site.bufferz()["waiting"] == 0
    assert site.store.proc.poll() is None
    # One clear line when the outage starts, one when it ends, not one per retry.
    store_log = site.store.log_text()
    assert store_log.count("Store database unavailable: the disk holding") == 1, store_log
    assert store_log.count("Store database available again") == 1, store_log
    assert store_log.count("Store database") == 2, store_log
    router_log = site.router_log()
    assert router_log.count("Store unavailable: ") == 1, router_log
    assert "Store is back at" in router_log

    # Buffering goes on as before.
    out, _ = RawClient(site.port).exchange(QUIET + b"PUB tele.after 1\r\na\r\n")
    assert out == b"PONG\r\n"
    assert site.stored() == [*before, *kept, ("tele.after", b"a")]
    stats = site.store_request("stats")
    remotes = stats.fields["remotes"]
    assert isinstance(remotes, dict)
    assert remotes["central"]["msgs"] == len(before) + KEPT + 1
    assert remotes["central"]["dropped"] == {}
