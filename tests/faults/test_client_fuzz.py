"""Socket-level fuzz of the client port (issue 11 item 9): the router keeps serving.

A real ``leafnode router`` takes, all at once: hundreds of connections that
send a valid client stream with bytes changed, in random pieces; control
lines and payloads over the limits; payloads that stop half way; writers
that send one byte at a time; clients that half-close, and clients behind a
``FaultProxy`` that blackholes them (no FIN, no PONG: only the router's
pings can find them). Meanwhile a control client keeps doing request/reply
with a responder on another connection.

The router must keep its pid, never log a traceback, answer every control
request, answer each over-limit input with nats-server's ``-ERR`` and a
close, reap every broken connection (``connz`` comes back to the two
control clients) and keep its memory bounded.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from typing import TYPE_CHECKING, Final

import nats
import pytest

from tests.conftest import respond_ok, until_responding, wait_until
from tests.support import FaultProxy, ipc_request, memory_kb

if TYPE_CHECKING:
    from tests.conftest import RouterFactory
    from tests.support import RouterProcess

pytestmark = [pytest.mark.asyncio, pytest.mark.e2e, pytest.mark.slow]

# Stale connections are found in ping_interval * (ping_max + 1): about 3 s.
CONFIG: Final = 'ping_interval: "1s"\nping_max: 2\n'
SEED: Final = 11
MUTATED: Final = 240
CONCURRENCY: Final = 24
# The router's PSS may grow by this much over the run (what the fuzz clients
# buffered must be released once they are gone) ...
GROWTH_KB: Final = 24 * 1024
# ... and never be more than this above the start while they are connected.
PEAK_KB: Final = 96 * 1024
# nats-server's words (tests/unit/golden/client_errors.txt), its case included.
MAX_LINE: Final = b"maximum control line exceeded"
MAX_PAYLOAD: Final = b"Maximum Payload Violation"


class Control:
    """Request/reply through the router, every 20 ms until stopped; counts failures."""

    def __init__(self, router: RouterProcess) -> None:
        self.router = router
        self.requests = 0
        self.failures: list[str] = []
        self.worst_s = 0.0
        self.peak_pss = 0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        responder = await nats.connect(self.router.url)
        requester = await nats.connect(self.router.url)
        try:
            await responder.subscribe("ctl.echo", cb=respond_ok)
            await until_responding(requester, "ctl.echo")
            self.ready.set()
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    reply = await requester.request("ctl.echo", b"ping", timeout=5)
                    if reply.data != b"ok":
                        self.failures.append(f"reply {reply.data!r}")
                except Exception as exc:
                    self.failures.append(repr(exc))
                self.requests += 1
                self.worst_s = max(self.worst_s, time.monotonic() - started)
                self.peak_pss = max(self.peak_pss, memory_kb(self.router.proc.pid)[1])
                try:
                    await asyncio.wait_for(self._stop.wait(), 0.02)
                except TimeoutError:
                    pass
        finally:
            await requester.close()
            await responder.close()

    def start(self) -> asyncio.Task[None]:
        self.ready = asyncio.Event()
        return asyncio.create_task(self.run())

    def stop(self) -> None:
        self._stop.set()


async def read_until_closed(reader: asyncio.StreamReader, timeout: float) -> tuple[bytes, bool]:
    """Everything read within ``timeout``, and whether the router closed the connection."""
    out = bytearray()
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            data = await asyncio.wait_for(reader.read(65536), left)
        except TimeoutError:
            return bytes(out), False
        except ConnectionError:
            return bytes(out), True
        if not data:
            return bytes(out), True
        out += data
    return bytes(out), False


async def open_client(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert (await reader.readline()).startswith(b"INFO "), "no INFO"
    return reader, writer


def valid_stream(rng: random.Random, n: int) -> bytes:
    """A client session: CONNECT, subscriptions, publishes (with headers), PINGs."""
    verbose = rng.choice([b"true", b"false"])
    parts = [b'CONNECT {"verbose":%s,"pedantic":%s,"headers":true}\r\n' % (verbose, verbose)]
    for sid in range(1, rng.randint(2, 6)):
        subject = b"fz.%d.%d" % (n, sid)
        payload = rng.randbytes(rng.randint(0, 300))
        hdr = b"NATS/1.0\r\nK: v\r\n\r\n"
        parts += [
            b"SUB %s %d\r\n" % (subject, sid),
            b"PUB %s %d\r\n%s\r\n" % (subject, len(payload), payload),
            b"HPUB %s _INBOX.x %d %d\r\n%s%s\r\n"
            % (subject, len(hdr), len(hdr) + len(payload), hdr, payload),
            b"SUB fz.* q %d\r\nUNSUB %d 3\r\n" % (sid + 100, sid + 100),
            b"PING\r\n",
        ]
    return b"".join(parts)


def mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(out) + 1)
        kind = rng.choice(["set", "insert", "delete", "dup"])
        if kind == "set" and at < len(out):
            out[at] = rng.randrange(256)
        elif kind == "insert":
            out[at:at] = rng.choice([b"\r\n", b" ", b"-1", b"99999999", b"\x00", b"PUB ", b"{"])
        elif kind == "delete":
            del out[at : at + rng.randint(1, 10)]
        else:
            out[at:at] = out[at : at + rng.randint(1, 40)]
    return bytes(out)


async def mutated_client(port: int, n: int, outcomes: Counter[str]) -> None:
    rng = random.Random(SEED * 1000 + n)
    data = mutate(rng, valid_stream(rng, n))
    reader, writer = await open_client(port)
    try:
        at = 0
        while at < len(data):
            step = rng.randint(1, 512)
            writer.write(data[at : at + step])
            at += step
            await writer.drain()
        out, closed = await read_until_closed(reader, rng.choice([0.05, 0.3]))
        outcomes[
            "closed with -ERR"
            if closed and b"-ERR" in out
            else "closed"
            if closed
            else "served"
            if b"PONG" in out
            else "open"
        ] += 1
    except ConnectionError:
        outcomes["reset while writing"] += 1  # the router closed on an error meanwhile
    finally:
        writer.close()


async def expect_error(port: int, data: bytes, error: bytes) -> None:
    """Send ``data``; the router must answer ``-ERR 'error'`` and close."""
    reader, writer = await open_client(port)
    try:
        writer.write(b'CONNECT {"verbose":false}\r\n' + data)
        await writer.drain()
    except ConnectionError:
        pass
    out, closed = await read_until_closed(reader, 10.0)
    writer.close()
    assert b"-ERR '%s'" % error in out, out[:200]
    assert closed, out[:200]


async def slow_writer(port: int, n: int) -> None:
    """A valid publish, one byte at a time: it is delivered whole."""
    reader, writer = await open_client(port)
    payload = b"slow-%d" % n
    data = b'CONNECT {"verbose":false}\r\nSUB slow.%d 1\r\nPUB slow.%d %d\r\n%s\r\nPING\r\n' % (
        n,
        n,
        len(payload),
        payload,
    )
    for i in range(len(data)):
        writer.write(data[i : i + 1])
        await writer.drain()
        await asyncio.sleep(0.01)  # pacing: this client is slow on purpose
    got = await reader.readuntil(b"PONG\r\n")
    writer.close()
    got = got.replace(b"PING\r\n", b"")  # the router's keep-alive may come first
    assert got == b"MSG slow.%d 1 %d\r\n%s\r\nPONG\r\n" % (n, len(payload), payload)


async def half_closed(port: int, data: bytes) -> None:
    """Send part of something, then FIN our side: the router closes too."""
    reader, writer = await open_client(port)
    writer.write(data)
    await writer.drain()
    writer.write_eof()
    _, closed = await read_until_closed(reader, 10.0)
    writer.close()
    assert closed


async def abandoned(port: int, data: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect (through the proxy), send ``data`` and keep the socket."""
    reader, writer = await open_client(port)
    writer.write(data)
    await writer.drain()
    return reader, writer


def connections(router: RouterProcess) -> int:
    frame = ipc_request(router.run_dir / "router.ctl", "connz")
    data = frame.fields["data"]
    assert isinstance(data, dict)
    count = data["num_connections"]
    assert isinstance(count, int)
    return count


async def bounded(limit: asyncio.Semaphore, coro: object) -> None:
    async with limit:
        await coro  # type: ignore[misc]


async def test_the_client_port_survives_fuzzing(router_factory: RouterFactory) -> None:
    router = router_factory(CONFIG)
    pid = router.proc.pid
    control = Control(router)
    task = control.start()
    await asyncio.wait_for(control.ready.wait(), 15)
    start_pss = memory_kb(pid)[1]
    port = router.port
    with FaultProxy(port) as proxy:
        # Clients the router can only find by its pings: blackholed mid-session.
        held = [
            await abandoned(proxy.port, b'CONNECT {"verbose":false}\r\nSUB held.%d 1\r\n' % i)
            for i in range(8)
        ]
        held.append(await abandoned(proxy.port, b"PUB held.x 100000\r\n" + b"x" * 50_000))
        await wait_until(lambda: connections(router) == 2 + len(held), timeout=10, what="held")
        proxy.fault("blackhole")
        limit = asyncio.Semaphore(CONCURRENCY)
        outcomes: Counter[str] = Counter()
        jobs = [mutated_client(port, n, outcomes) for n in range(MUTATED)]
        jobs += [expect_error(port, b"PUB " + b"x" * 5000, MAX_LINE) for _ in range(6)]
        jobs += [
            expect_error(port, b"SUB a " + b"q" * 8000 + b" 1\r\n", MAX_LINE) for _ in range(3)
        ]
        jobs += [expect_error(port, b"PUB big %d\r\n" % (2 << 20), MAX_PAYLOAD) for _ in range(6)]
        jobs += [slow_writer(port, n) for n in range(4)]
        jobs += [half_closed(port, b"PUB half 10\r\nabc") for _ in range(4)]
        jobs += [half_closed(port, b"PUB half 900000\r\n" + b"y" * 400_000) for _ in range(4)]
        jobs += [half_closed(port, b"") for _ in range(4)]
        random.Random(SEED).shuffle(jobs)
        await asyncio.gather(*(bounded(limit, job) for job in jobs))
        # Every fuzz client is gone, and the blackholed ones went stale.
        await wait_until(lambda: connections(router) == 2, timeout=30, what="fuzz clients reaped")
        for _, writer in held:
            writer.close()
    control.stop()
    await task
    end_pss = memory_kb(pid)[1]
    log = router.log_text()
    assert router.proc.poll() is None, log[-3000:]
    assert router.proc.pid == pid
    assert "Traceback" not in log, log[log.index("Traceback") - 500 :][:4000]
    assert control.failures == [], control.failures[:5]
    # The mutations reach both ends: sessions served, and sessions refused.
    assert outcomes["served"] > MUTATED // 10, outcomes
    assert outcomes["closed with -ERR"] > MUTATED // 10, outcomes
    assert control.requests > 50
    assert end_pss - start_pss < GROWTH_KB, (start_pss, end_pss)
    assert control.peak_pss - start_pss < PEAK_KB, (start_pss, control.peak_pss)
