"""Connection bench: what does a client connection cost? (issue 11, point 10).

For the leafnode router and, in the same run, a nats-server on the same
machine, one after the other (fresh processes):

1. the server's memory idle (RSS and USS from ``/proc/PID/smaps_rollup``);
2. ``--clients`` connections opened from this process (raw sockets in one
   asyncio loop, ``--batch`` at a time), each sending CONNECT, one SUB and a
   PING and waiting for its PONG, so the server has registered every one;
   the time that took, and the memory again;
3. a fan-out: ``--msgs`` messages of ``--size`` bytes published once and
   read by every client; the time until the last client has them all, and
   the memory again (the outbound buffers each connection used).

Memory per connection is the growth over idle divided by the number of
clients. The process raises its own RLIMIT_NOFILE first (the router holds
two descriptors per client, the socket and the duplicate it writes through);
the servers inherit it.

    .venv/bin/python -m bench.conn_bench             # 3,000 clients
    .venv/bin/python -m bench.conn_bench --quick     # 1,000 clients
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from bench._servers import (
    RunningServer,
    leafnode_router_argv,
    nats_server_argv,
    start_server,
)
from bench.site_bench import Memory, memory

CLIENTS: Final = 3000
QUICK_CLIENTS: Final = 1000
# Connections opened at once: enough to be quick, few enough for the backlog.
BATCH: Final = 250
MSGS: Final = 10
SIZE: Final = 128
QUIET: Final = b'CONNECT {"verbose":false,"pedantic":false}\r\n'
PING: Final = b"PING\r\n"
# How long every client may take to get the fan-out, before the run fails.
FANOUT_TIMEOUT_S: Final = 120.0


@dataclass
class Result:
    """Figures for one server."""

    name: str
    clients: int = 0
    msgs: int = 0
    size: int = 0
    idle: Memory = field(default_factory=Memory)
    connected: Memory = field(default_factory=Memory)
    after_fanout: Memory = field(default_factory=Memory)
    connect_s: float = 0.0
    fanout_s: float = 0.0

    def per_conn_kib(self, state: Memory, attr: str) -> float:
        grown: int = getattr(state, attr) - getattr(self.idle, attr)
        return grown / max(self.clients, 1)


def raise_nofile(clients: int) -> None:
    """Let this process (and the servers it starts) hold every connection."""
    needed = 2 * clients + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        sys.exit(f"RLIMIT_NOFILE hard limit {hard} < {needed}: try --clients {hard // 2 - 512}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.readline()  # INFO
    writer.write(QUIET + b"SUB fan 1\r\nPING\r\n")
    await reader.readuntil(b"PONG\r\n")
    return reader, writer


async def _receive(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, expected: bytes
) -> None:
    """Read ``expected``, answering the PINGs a server may send in between.

    nats-server pings a new client to measure its RTT; the payloads are all
    ``x``, so a ``PING`` line cannot be part of one.
    """
    got = b""
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            raise RuntimeError("a client was closed before it got the fan-out")
        got += chunk
        if PING in got:
            got = got.replace(PING, b"")
            writer.write(b"PONG\r\n")
        # A PING cut by the read: frames end in LF, a PING's first bytes never do.
        body = got
        for cut in range(len(PING) - 1, 0, -1):
            if got.endswith(PING[:cut]):
                body = got[:-cut]
                break
        if body == expected:
            return
        if not expected.startswith(body):
            raise RuntimeError(f"a client got something else than the fan-out: {got[:80]!r}")


def _sample(pid: int) -> Memory:
    mem = memory(pid)
    if mem is None:
        raise RuntimeError(f"process {pid} is gone")
    return mem


async def measure(server: RunningServer, clients: int, msgs: int, size: int) -> Result:
    result = Result(server.name, clients, msgs, size)
    pid = server.proc.pid
    result.idle = _sample(pid)
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    started = time.monotonic()
    for first in range(0, clients, BATCH):
        count = min(BATCH, clients - first)
        conns += await asyncio.gather(*(_connect(server.port) for _ in range(count)))
    result.connect_s = time.monotonic() - started
    result.connected = _sample(pid)

    _, publisher = await _connect(server.port)
    payload = b"x" * size
    frame = b"MSG fan 1 %d\r\n%b\r\n" % (size, payload)
    started = time.monotonic()
    publisher.write(b"UNSUB 1\r\n" + b"PUB fan %d\r\n%b\r\n" % (size, payload) * msgs)
    await asyncio.wait_for(
        asyncio.gather(*(_receive(reader, writer, frame * msgs) for reader, writer in conns)),
        FANOUT_TIMEOUT_S,
    )
    result.fanout_s = time.monotonic() - started
    result.after_fanout = _sample(pid)
    for _, writer in [*conns, (None, publisher)]:
        writer.close()
    if not server.alive():
        raise RuntimeError(f"{server.name} died:\n{server.log_tail()}")
    return result


def run_one(name: str, argv: list[str], clients: int, msgs: int, size: int) -> Result:
    server = start_server(name, argv)
    try:
        return asyncio.run(measure(server, clients, msgs, size))
    finally:
        server.stop()


def report(leaf: Result, nats: Result) -> str:
    def row(label: str, ours: float, theirs: float, fmt: str) -> str:
        ratio = f"{ours / theirs:.2f}x" if theirs else "-"
        return f"{label:<34}{theirs:>14{fmt}}{ours:>14{fmt}}{ratio:>9}"

    n = leaf.clients
    lines = [
        f"{n:,} clients, one SUB each; fan-out of {leaf.msgs} x {leaf.size} B to all of them.",
        "Per connection: memory growth over idle / clients (KiB). Last column: leafnode / nats.",
        "",
        f"{'metric':<34}{'nats-server':>14}{'leafnode':>14}{'ratio':>9}",
        "-" * 71,
        row("idle RSS (MiB)", leaf.idle.rss_kb / 1024, nats.idle.rss_kb / 1024, ".1f"),
        row(
            f"RSS with {n:,} clients (MiB)",
            leaf.connected.rss_kb / 1024,
            nats.connected.rss_kb / 1024,
            ".1f",
        ),
        row(
            "per connection, RSS (KiB)",
            leaf.per_conn_kib(leaf.connected, "rss_kb"),
            nats.per_conn_kib(nats.connected, "rss_kb"),
            ".1f",
        ),
        row(
            "per connection, USS (KiB)",
            leaf.per_conn_kib(leaf.connected, "uss_kb"),
            nats.per_conn_kib(nats.connected, "uss_kb"),
            ".1f",
        ),
        row(
            "per connection after fan-out (KiB)",
            leaf.per_conn_kib(leaf.after_fanout, "rss_kb"),
            nats.per_conn_kib(nats.after_fanout, "rss_kb"),
            ".1f",
        ),
        row(f"connect {n:,} clients (s)", leaf.connect_s, nats.connect_s, ".2f"),
        row(f"fan-out to {n:,} (ms)", leaf.fanout_s * 1000, nats.fanout_s * 1000, ".1f"),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.conn_bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_CLIENTS:,} clients")
    parser.add_argument("--clients", type=int, help=f"connections to open (default {CLIENTS:,})")
    parser.add_argument("--msgs", type=int, default=MSGS, help="messages fanned out to all")
    parser.add_argument("--size", type=int, default=SIZE, help="payload bytes per message")
    parser.add_argument("--json", help="write the raw figures to this file")
    args = parser.parse_args(argv)
    clients = args.clients or (QUICK_CLIENTS if args.quick else CLIENTS)
    raise_nofile(clients)
    print(f"== {clients:,} clients: nats-server", flush=True)
    nats = run_one("nats-server", nats_server_argv(), clients, args.msgs, args.size)
    print(f"== {clients:,} clients: leafnode router", flush=True)
    leaf = run_one("leafnode", leafnode_router_argv(), clients, args.msgs, args.size)
    print(report(leaf, nats))
    if args.json:
        Path(args.json).write_text(
            json.dumps({r.name: _as_dict(r) for r in (leaf, nats)}, indent=2)
        )
    return 0


def _as_dict(result: Result) -> dict[str, object]:
    return {
        "clients": result.clients,
        "msgs": result.msgs,
        "size": result.size,
        "idle": result.idle.__dict__,
        "connected": result.connected.__dict__,
        "after_fanout": result.after_fanout.__dict__,
        "connect_s": result.connect_s,
        "fanout_s": result.fanout_s,
    }


if __name__ == "__main__":
    sys.exit(main())
