"""Durable append throughput of ``leafnode store`` through its real socket.

Run from the repo root::

    .venv/bin/python -m bench.store_bench [--quick] [--json out.json] [--only sqlite-normal]

Theory of operation: for each backend (SQLite with ``sync: full``, SQLite
with ``sync: normal``, PostgreSQL with ``sync: full`` and ``normal``) and each
payload size (16 B, 1 KiB) a fresh database and a fresh ``leafnode store``
process are started. The bench then plays the router: it sends ``append``
batches of ``--batch`` messages (capped at 1 MiB of data) with ``--inflight``
batches outstanding, over the ipc client, and stops the clock when the last
batch is answered, i.e. committed (DESIGN §4: durable = committed). The
reported rate is messages per second end to end; a final ``stats`` call
checks that every message is in the store.

PostgreSQL runs in a throwaway cluster (``initdb``/``pg_ctl`` as the
``postgres`` user when run as root) with default durability settings
(``fsync=on``), on a free port; it is skipped when the binaries are absent.

Targets from issue 4: >= 100k msg/s with SQLite NORMAL and >= 50k msg/s with
SQLite FULL, at 16 B.

Then the same store is drained as the uplink drains it (issue 4, replay): a
``read`` of 2000 messages in the columns layout after the cursor, and an
``ack`` ``upto`` the cursor every 4000, one request at a time, until the
backlog is empty; ``drain msg/s`` is the store's own share of a replay (no
hub, no uplink encoding).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import trio

from leafnode.ipc import (
    STORE_SOCKET,
    BufferedMsg,
    decode_append_reply,
    encode_append,
    open_trio_client,
)
from tests.support import PgCluster, ServiceProcess

if TYPE_CHECKING:
    from collections.abc import Iterator

    from leafnode.ipc import TrioIpcClient

TARGETS: Final = {("sqlite-normal", 16): 100_000, ("sqlite-full", 16): 50_000}
BATCH_MAX_BYTES: Final = 1024 * 1024
SUBJECT: Final = "telemetry.site-a.sensor-42"


@dataclass(frozen=True)
class Backend:
    key: str
    sync: str
    postgres: bool


BACKENDS: Final = (
    Backend("sqlite-full", "full", False),
    Backend("sqlite-normal", "normal", False),
    Backend("postgres-full", "full", True),
    Backend("postgres-normal", "normal", True),
)


def start_store(workdir: Path, url: str, sync: str) -> ServiceProcess:
    """``leafnode store`` on a config in ``workdir``; returns once its socket accepts."""
    conf = workdir / "leaf.conf"
    conf.write_text(
        f'store {{ url: "{url}", sync: {sync} }}\n'
        'leafnodes { remotes = [ { name: central, url: "nats-leaf://127.0.0.1:7422",\n'
        '  buffer { subjects: ["telemetry.>"], max_bytes: 100GB } } ] }\n'
    )
    store = ServiceProcess("store", conf, workdir / "run", workdir=workdir)
    try:
        store.wait_socket(STORE_SOCKET, timeout=30)
    except (RuntimeError, TimeoutError):
        store.stop()
        raise
    return store


def batches(total: int, size: int, batch: int) -> Iterator[list[BufferedMsg]]:
    """The router's batches: ``batch`` messages, at most 1 MiB of data each."""
    per = max(1, min(batch, BATCH_MAX_BYTES // max(size, 1)))
    payload = b"x" * size
    sent = 0
    while sent < total:
        n = min(per, total - sent)
        now = time.time_ns() // 1000
        yield [BufferedMsg("central", SUBJECT, None, 0, payload, now) for _ in range(n)]
        sent += n


async def drive(path: Path, total: int, size: int, batch: int, inflight: int) -> float:
    """Append ``total`` messages; returns the seconds until the last commit answered."""
    source = batches(total, size, batch)
    stored = 0

    async def worker(client: TrioIpcClient) -> None:
        nonlocal stored
        for msgs in source:
            frame = await client.request_prepared(lambda rid, m=msgs: encode_append(rid, m))  # type: ignore[misc]
            reply = decode_append_reply(frame)
            if reply.refused:
                raise RuntimeError(f"store refused messages: {reply.refused[:3]}")
            stored += reply.last_seq - reply.first_seq + 1

    async with open_trio_client(path) as client:
        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(inflight):
                nursery.start_soon(worker, client)
        elapsed = time.perf_counter() - start
        st = (await client.request("stats")).fields
    total_stored = st["total"]
    assert isinstance(total_stored, dict)
    if stored != total or total_stored["msgs"] != total:
        raise RuntimeError(f"stored {stored}, stats say {total_stored['msgs']}, expected {total}")
    return elapsed


DRAIN_READ: Final = 2000
DRAIN_ACK: Final = 4000


async def drain(path: Path, total: int) -> float:
    """Read and ack the whole backlog as the uplink does; returns the seconds taken."""
    fields: dict[str, object] = {
        "remote": "central",
        "limit": DRAIN_READ,
        "max_bytes": BATCH_MAX_BYTES,
        "columns": True,
    }
    read = unacked = 0
    async with open_trio_client(path) as client:
        start = time.perf_counter()
        after = 0
        while True:
            frame = await client.request("read", {**fields, "after": after})
            seqs, nxt = frame.fields["seq"], frame.fields["next"]
            assert isinstance(seqs, list)
            assert isinstance(nxt, int)
            if seqs:
                read += len(seqs)
                unacked += len(seqs)
                after = nxt
            if unacked >= DRAIN_ACK or (unacked and not seqs):
                await client.request("ack", {"remote": "central", "upto": after})
                unacked = 0
            if not seqs:
                break
        elapsed = time.perf_counter() - start
        left = (await client.request("stats")).fields["total"]
    assert isinstance(left, dict)
    if read != total or left["msgs"]:
        raise RuntimeError(f"drained {read} of {total}; {left['msgs']} left")
    return elapsed


def run_one(
    backend: Backend, size: int, args: argparse.Namespace, pg: PgCluster | None
) -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix=f"leafnode-bench-{backend.key}-"))
    try:
        if backend.postgres:
            assert pg is not None
            url = pg.create_database()
            env_migrate(url)
        else:
            url = f"sqlite:///{workdir / 'buffer.db'}"
        total = args.msgs if size <= 64 else max(args.msgs // 4, 10_000)
        store = start_store(workdir, url, backend.sync)
        socket_path = store.run_dir / STORE_SOCKET
        try:
            elapsed = trio.run(drive, socket_path, total, size, args.batch, args.inflight)
            drained = trio.run(drain, socket_path, total)
        finally:
            store.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    rate = total / elapsed
    target = TARGETS.get((backend.key, size))
    return {
        "backend": backend.key,
        "size": size,
        "msgs": total,
        "seconds": round(elapsed, 3),
        "msgs_per_s": round(rate),
        "mib_per_s": round(rate * size / 2**20, 2),
        "target": target,
        "verdict": None if target is None else ("PASS" if rate >= target else "SHORT"),
        "drain_msgs_per_s": round(total / drained),
    }


def env_migrate(url: str) -> None:
    """``leafnode migrate`` for a Postgres database (the store refuses an unmigrated one)."""
    from leafnode.config import Settings, StoreSettings
    from services.store.migrate import upgrade

    upgrade(Settings(store=StoreSettings(url=url)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.store_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages (50k at 16 B)")
    parser.add_argument("--msgs", type=int, help="messages per 16 B run (1 KiB runs use a quarter)")
    parser.add_argument(
        "--batch", type=int, default=1000, help="messages per append (default 1000)"
    )
    parser.add_argument("--inflight", type=int, default=2, help="appends outstanding (default 2)")
    parser.add_argument(
        "--only", help="comma-separated backends: " + ",".join(b.key for b in BACKENDS)
    )
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    args.msgs = args.msgs or (50_000 if args.quick else 300_000)
    wanted = set(args.only.split(",")) if args.only else {b.key for b in BACKENDS}
    chosen = [b for b in BACKENDS if b.key in wanted]
    pg: PgCluster | None = None
    if any(b.postgres for b in chosen):
        if PgCluster.available():
            # PostgreSQL's own defaults (fsync on), not the tests' sizing.
            pg = PgCluster(server_settings={})
            pg.start()
        else:
            print("skipping PostgreSQL: no initdb found", file=sys.stderr)
            chosen = [b for b in chosen if not b.postgres]
    results = []
    try:
        print(
            f"{'backend':<16} {'size':>6} {'msgs':>8} {'msg/s':>10} {'MiB/s':>8} "
            f"{'drain msg/s':>12}  target"
        )
        for backend in chosen:
            for size in (16, 1024):
                res = run_one(backend, size, args, pg)
                results.append(res)
                target = f"{res['target']:,} {res['verdict']}" if res["target"] else ""
                print(
                    f"{backend.key:<16} {size:>6} {res['msgs']:>8} {res['msgs_per_s']:>10,} "
                    f"{res['mib_per_s']:>8} {res['drain_msgs_per_s']:>12,}  {target}",
                    flush=True,
                )
    finally:
        if pg is not None:
            pg.stop()
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                    "batch": args.batch,
                    "inflight": args.inflight,
                    "results": results,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
