"""Store-and-forward end to end: a real hub, store, router and uplink (DESIGN §3.3-§4).

A ``BufferSite`` is the three leaf processes sharing one config file and one
run directory, as ``leafnode run`` starts them, with one remote ``central``
whose ``buffer { }`` covers ``tele.>``. Publishes go through a raw socket
(``PUB``... then ``PING``; the ``PONG`` is "flush returned", DESIGN §4), so
which messages were flushed is exact. Everything waits for effects with
deadlines (``poll``), never by sleeping.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from leafnode.ipc import STORE_SOCKET
from tests.conftest import poll as poll  # re-exported: the buffer tests import it from here
from tests.ipcclient import request_once
from tests.rawclient import RawClient
from tests.support import (
    HubProcess,
    RouterProcess,
    ServiceProcess,
    UplinkProcess,
    restart_process,
    wait_for_log,
    wait_for_socket,
)

T = TypeVar("T")
QUIET = b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\n'
_ids = itertools.count()


async def apoll(
    fetch: Callable[[], T], check: Callable[[T], bool], *, timeout: float, what: str
) -> T:
    """``poll`` for async tests: lets the event loop (nats-py clients) run meanwhile."""

    async def value() -> T:
        return fetch()

    return await apoll_async(value, check, timeout=timeout, what=what)


async def apoll_async(
    fetch: Callable[[], Awaitable[T]], check: Callable[[T], bool], *, timeout: float, what: str
) -> T:
    """``apoll`` with a coroutine function as ``fetch``."""
    deadline = time.monotonic() + timeout
    while True:
        value = await fetch()
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {value!r}")
        await asyncio.sleep(0.02)


def pubs(items: list[tuple[str, bytes]]) -> bytes:
    """``PUB`` lines for ``(subject, payload)`` pairs."""
    return b"".join(b"PUB %s %d\r\n%s\r\n" % (s.encode(), len(p), p) for s, p in items)


class HubCollector:
    """A raw-socket subscriber on the hub, in a thread: keeps every payload in arrival order.

    It parses ``MSG``/``HMSG`` frames by their sizes, so payloads are exact;
    ``headers`` keeps each message's header block (``b""`` for none).
    """

    def __init__(self, port: int, subject: str = "tele.>") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.payloads: list[bytes] = []
        self.headers: list[bytes] = []
        self.error: BaseException | None = None
        self._buf = b""
        self._lock = threading.Lock()
        self._read_line()  # INFO
        self.sock.sendall(
            b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\n'
            b"SUB %s 1\r\nPING\r\n" % subject.encode()
        )
        assert self._read_line() == b"PONG"
        self.sock.settimeout(None)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _fill(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError("hub closed the subscriber connection")
        self._buf += data

    def _read_line(self) -> bytes:
        while b"\r\n" not in self._buf:
            self._fill()
        line, _, self._buf = self._buf.partition(b"\r\n")
        return line

    def _run(self) -> None:
        try:
            while True:
                line = self._read_line()
                if line == b"PING":
                    self.sock.sendall(b"PONG\r\n")
                    continue
                args = line.split()
                if not args or args[0] not in (b"MSG", b"HMSG"):
                    continue
                total = int(args[-1])
                hdr = int(args[-2]) if args[0] == b"HMSG" else 0
                while len(self._buf) < total + 2:
                    self._fill()
                body, self._buf = self._buf[:total], self._buf[total + 2 :]
                with self._lock:
                    self.headers.append(body[:hdr])
                    self.payloads.append(body[hdr:])
        except (OSError, EOFError) as exc:
            self.error = exc

    def snapshot(self) -> list[bytes]:
        with self._lock:
            return list(self.payloads)

    def close(self) -> None:
        self.sock.close()


def first_occurrences(payloads: list[bytes]) -> list[int]:
    """The integer payloads in order of their first arrival."""
    seen: set[int] = set()
    out: list[int] = []
    for payload in payloads:
        value = int(payload)
        if value not in seen:
            seen.add(value)
            out.append(value)
    return out


class Publisher:
    """Publishes ``<index>`` payloads on ``tele.<n>`` in flushed batches, in a thread.

    ``done`` lists the batches (ranges of indexes) whose flush (PONG)
    returned: those must reach the hub. ``flushed`` is the count of such
    messages. The thread stops at ``stop()``, at ``limit``, or when the
    router connection breaks (the router was killed); ``start`` again goes
    on with new indexes (an unflushed batch may be lost).
    """

    def __init__(self, port: int, *, batch: int = 200, start: int = 0) -> None:
        self.batch = batch
        self.next = start
        self.flushed = 0
        self.done: list[range] = []
        self.limit: int | None = None
        self._stop = threading.Event()
        self._port = port
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self, limit: int | None = None) -> None:
        self.limit = limit
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            client = RawClient(self._port)
            client.send(QUIET)
            while not self._stop.is_set() and (self.limit is None or self.next < self.limit):
                end = self.next + self.batch
                if self.limit is not None:
                    end = min(end, self.limit)
                data = pubs([(f"tele.{i % 7}", b"%d" % i) for i in range(self.next, end)])
                begin = self.next
                self.next = end
                out, closed = client.exchange(data, timeout=60)
                # The router's own PINGs (ping_interval) are answered, not
                # taken for a failed flush: they used to end the run early.
                pings = out.count(b"PING\r\n")
                if pings:
                    client.send(b"PONG\r\n" * pings)
                if closed or out.replace(b"PING\r\n", b"") != b"PONG\r\n":
                    return
                self.done.append(range(begin, end))
                self.flushed += end - begin
            client.sock.close()
        except (OSError, AssertionError) as exc:
            self.error = exc

    def must_arrive(self) -> set[int]:
        return {i for r in self.done for i in r}

    def wait_flushed(self, count: int, timeout: float = 60.0) -> None:
        poll(lambda: self.flushed, lambda n: n >= count, timeout=timeout, what=f"{count} flushed")

    def stop(self, timeout: float = 90.0) -> None:
        self._stop.set()
        self.join(timeout)

    def join(self, timeout: float = 90.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
            assert not self._thread.is_alive(), "publisher thread did not finish"


class Hub:
    """A hub nats-server that can be stopped and started again on the same ports."""

    def __init__(self, workdir: Path, *, binary: str | None, jetstream: bool = False) -> None:
        config = ""
        if jetstream:
            config = f'jetstream {{ store_dir: "{workdir / "js"}" }}\n'
        self.proc = HubProcess(config, binary=binary, workdir=workdir)
        self.starts = 1
        self.proc.wait_ready()

    @property
    def url(self) -> str:
        return self.proc.url

    @property
    def leaf_url(self) -> str:
        return self.proc.leaf_url

    def stop(self) -> None:
        self.proc.stop()

    def start(self) -> None:
        restart_process(self.proc)
        self.starts += 1
        wait_for_log(self.proc, r"Listening for leafnode connections", count=self.starts)
        self.proc.wait_ready()

    def leaf_in_msgs(self) -> int:
        """Messages the hub received from its leaf connections (``/leafz``)."""
        leafs = self.proc.monitor("leafz").get("leafs")
        total = 0
        for leaf in leafs if isinstance(leafs, list) else []:
            if isinstance(leaf, dict) and isinstance(leaf.get("in_msgs"), int):
                total += leaf["in_msgs"]
        return total


class BufferSite:
    """Store, router and uplink of one site (see the module doc)."""

    def __init__(
        self,
        base: Path,
        hub: Hub,
        *,
        store_url: str,
        buffer: str = 'subjects: ["tele.>"]',
        migrate: bool = False,
        extra: str = "",
    ) -> None:
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        self.hub = hub
        self.run_dir = base / "run"
        self.conf = base / "leaf.conf"
        self.store_url = store_url
        self.extra = extra
        self.write_config(buffer)
        if migrate:
            subprocess.run(
                [sys.executable, "-m", "leafnode", "migrate", "-c", str(self.conf)],
                check=True,
                capture_output=True,
            )
        self.store = self._new_store()
        self.router = RouterProcess(
            self.conf.read_text(),
            workdir=base / "router",
            extra_args=("--run-dir", str(self.run_dir)),
        )
        self.router.wait_ready()
        self.uplink = UplinkProcess(self.conf, self.run_dir, workdir=base / "uplink")
        self.wait_uplink()

    def write_config(self, buffer: str, *, extra_remote: str = "") -> None:
        self.conf.write_text(
            f"""
            {self.extra}
            store {{ url: "{self.store_url}", sync: normal }}
            leafnodes {{
              reconnect: "100ms"
              remotes: [
                {{ name: central, url: "{self.hub.leaf_url}", buffer {{ {buffer} }} }}
                {extra_remote}
              ]
            }}
            """
        )

    # -- processes --------------------------------------------------------------

    def _new_store(self) -> ServiceProcess:
        store = ServiceProcess(
            "store", self.conf, self.run_dir, workdir=self.base / f"store{next(_ids)}"
        )
        wait_for_socket(self.run_dir / STORE_SOCKET, store)
        return store

    def wait_uplink(self) -> None:
        wait_for_socket(self.run_dir / "uplink.ctl", self.uplink)

    def restart_store(self) -> None:
        self.store.kill()
        self.store = self._new_store()

    def restart_router(self) -> None:
        self.router.kill()
        restart_process(self.router)
        self.router.wait_ready()

    def restart_uplink(self) -> None:
        self.uplink.kill()
        restart_process(self.uplink)
        self.wait_uplink()

    def kill_all(self) -> None:
        """SIGKILL all three at once (no process sees another die first)."""
        procs = [self.uplink.proc, self.store.proc, self.router.proc]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        for proc in procs:
            proc.wait(10)
        for p in (self.uplink, self.store, self.router):
            p.kill()  # closes the log files

    def start_all(self) -> None:
        self.store = self._new_store()
        restart_process(self.router)
        self.router.wait_ready()
        restart_process(self.uplink)
        self.wait_uplink()

    def close(self) -> None:
        for proc in (self.uplink, self.router, self.store):
            proc.kill()

    # -- clients ----------------------------------------------------------------

    def publish(self, items: list[tuple[str, bytes]]) -> None:
        """Publish through the router and return once the flush (PONG) came back."""
        client = RawClient(self.router.port)
        try:
            out, closed = client.exchange(QUIET + pubs(items), timeout=30)
            assert (out, closed) == (b"PONG\r\n", False), out
        finally:
            client.sock.close()

    def ctl(self, kind: str, **fields: object) -> dict[str, object]:
        """One ``uplink.ctl`` request; its answer's fields (``ok``/``pong`` only)."""
        frame = request_once(self.run_dir / "uplink.ctl", kind, (), **fields)
        assert frame.type in ("ok", "pong"), frame
        return frame.fields

    def status(self) -> dict[str, object]:
        remotes = self.ctl("status")["remotes"]
        assert isinstance(remotes, list)
        first = remotes[0]
        assert isinstance(first, dict)
        return first

    def subscriptions(self) -> list[str]:
        """The hub's interest keys as the uplink knows them."""
        subs = self.status()["subscriptions"]
        assert isinstance(subs, list)
        return [str(s) for s in subs]

    def buffer(self) -> dict[str, object]:
        buffer = self.status()["buffer"]
        assert isinstance(buffer, dict)
        return buffer

    def backlog(self) -> int:
        """The store's pending messages of ``central``."""
        frame = request_once(self.run_dir / STORE_SOCKET, "stats")
        remotes = frame.fields["remotes"]
        assert isinstance(remotes, dict)
        mine = remotes.get("central") or {"msgs": 0}
        assert isinstance(mine, dict)
        msgs = mine["msgs"]
        assert isinstance(msgs, int)
        return msgs

    def wait_backlog(self, count: int, *, timeout: float = 30.0) -> None:
        poll(self.backlog, lambda n: n == count, timeout=timeout, what=f"backlog == {count}")

    def wait_ready_link(self, timeout: float = 20.0) -> None:
        """Until the hub link is up and its initial interest has arrived."""
        poll(self.status, lambda s: s["ready"] is True, timeout=timeout, what="hub link ready")


class Sites:
    """Starts hubs and sites for one test; everything is killed afterwards."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.hubs: list[Hub] = []
        self.sites: list[BufferSite] = []

    def hub(self, *, binary: str | None = None, jetstream: bool = False) -> Hub:
        hub = Hub(self.tmp_path / f"hub{next(_ids)}", binary=binary, jetstream=jetstream)
        self.hubs.append(hub)
        return hub

    def site(
        self,
        hub: Hub,
        *,
        store_url: str | None = None,
        buffer: str | None = None,
        extra: str = "",
    ) -> BufferSite:
        url = store_url or f"sqlite:///{self.tmp_path / f'buffer{next(_ids)}.db'}"
        site = BufferSite(
            self.tmp_path / f"site{next(_ids)}",
            hub,
            store_url=url,
            migrate=url.startswith("postgresql"),
            extra=extra,
            **({"buffer": buffer} if buffer is not None else {}),
        )
        self.sites.append(site)
        return site

    def close(self) -> None:
        for site in self.sites:
            site.close()
        for hub in self.hubs:
            hub.proc.kill()


@pytest.fixture
def sites(tmp_path: Path) -> Iterator[Sites]:
    made = Sites(tmp_path)
    yield made
    made.close()
