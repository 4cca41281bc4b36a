"""Chaos: a long schedule of outages under load, and whether the promises held.

Run from the repo root::

    .venv/bin/python -m bench.chaos [--outages 100] [--store sqlite|postgres|tmpfs]
        [--publishers 2] [--rate 300] [--hold 1.0] [--seed 1] [--skip hub-kill,...]
        [--json out.json]

Theory of operation: ``tests.support.ChaosRun`` (the engine of
``tests/faults``) starts a hub ``nats-server`` with a JetStream stream on
``tele.>`` (duplicate window on ``Nats-Msg-Id``), a fault proxy in front of
its leafnode port and a site under ``leafnode run`` that buffers ``tele.>``
for that hub. Publishers publish flushed batches throughout. The schedule
repeats every fault in a shuffled order (``--seed``) until ``--outages`` is
reached: the hub link closed, reset, blackholed and refused; kill -9 of the
router, the uplink and the store; the hub stopped with SIGTERM and with
SIGKILL; and, with ``--store postgres``, PostgreSQL stopped, or with
``--store tmpfs`` (root), the SQLite disk filled up. Each outage lasts
``--hold`` seconds at least (a blackhole: until the uplink finds the link
stale), then the time from the repair to a drained backlog is recorded.

Printed at the end: published, acknowledged (flush returned), acknowledged
but lost (must be 0), publishers with first arrivals out of order (must be
0), duplicates at a plain hub subscriber and whether each carried one
``Nats-Msg-Id`` (the stream must hold each message once), the worst drain
time, and each service's PSS at the start, at the end and at its peak. The
exit status is 1 when a promise was broken.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support import (
    FAULT_KINDS,
    SERVICES,
    ChaosRun,
    PgCluster,
    TmpfsUnavailable,
    small_tmpfs,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    Fault = Callable[[], None]

# Big enough for a long run's SQLite file, small enough to fill in a moment.
TMPFS_SIZE = "32m"


def _schedule(run: ChaosRun, store: str, disk: Path | None, hold: float) -> dict[str, Fault]:
    """One of each fault the store allows, by name."""
    faults: dict[str, Fault] = {
        **{f"link-{k}": partial(run.link_fault, k, hold_s=hold) for k in FAULT_KINDS},
        **{f"kill-{s}": partial(run.kill_service, s) for s in SERVICES},
        "hub-term": lambda: run.restart_hub(signal.SIGTERM, hold_s=hold),
        "hub-kill": lambda: run.restart_hub(signal.SIGKILL, hold_s=hold),
    }
    if store == "postgres":
        faults["postgresql"] = lambda: run.database_outage(hold_s=max(hold, 1.0))
    if disk is not None:
        faults["disk-full"] = lambda: run.disk_full(disk, hold_s=max(hold, 1.0))
    return faults


def _mount_tmpfs(stack: ExitStack, base: Path) -> Path:
    try:
        return stack.enter_context(small_tmpfs(base / "disk", TMPFS_SIZE))
    except TmpfsUnavailable as exc:
        raise SystemExit(f"--store tmpfs: {exc}") from None


def run(args: argparse.Namespace) -> int:
    base = Path(tempfile.mkdtemp(prefix="leafnode-chaos-"))
    with ExitStack() as stack:
        store_url: str | None = None
        pg: PgCluster | None = None
        disk: Path | None = None
        if args.store == "postgres":
            pg = stack.enter_context(PgCluster())  # its own temp dir: postgres must reach it
            store_url = pg.create_database()
        elif args.store == "tmpfs":
            disk = _mount_tmpfs(stack, base)
            store_url = f"sqlite:///{disk / 'buffer.db'}"
        chaos = stack.enter_context(
            ChaosRun(
                base / "run",
                store_url=store_url,
                pg=pg,
                publishers=args.publishers,
                rate=args.rate,
            )
        )
        faults = _schedule(chaos, args.store, disk, args.hold)
        unknown = set(args.skip) - set(faults)
        if unknown:
            raise SystemExit(f"--skip: unknown {sorted(unknown)}; known: {sorted(faults)}")
        chosen = [fault for name, fault in faults.items() if name not in args.skip]
        rng = random.Random(args.seed)
        order: list[Fault] = []
        started = time.monotonic()
        for n in range(args.outages):
            if not order:
                order = list(chosen)
                rng.shuffle(order)
            order.pop()()
            print(
                f"[{time.monotonic() - started:7.1f}s] outage {n + 1}/{args.outages}: "
                f"{chaos.last_fault}, drained in {chaos.drains[-1]:.2f} s",
                flush=True,
            )
        figures = chaos.finish()
    print(figures.render())
    if args.json:
        data = asdict(figures)
        # asdict rebuilds a Counter from (key, count) pairs: counts of pairs.
        data["faults"] = dict(figures.faults)
        data["stream_missing_by_fault"] = dict(figures.stream_missing_by_fault)
        Path(args.json).write_text(json.dumps(data, indent=2))
    return 0 if figures.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos", description=__doc__.split("\n\n", 1)[0]
    )
    parser.add_argument("--outages", type=int, default=100, help="how many outages (100)")
    parser.add_argument(
        "--store",
        choices=("sqlite", "postgres", "tmpfs"),
        default="sqlite",
        help="the site's database; postgres adds database outages, tmpfs disk-full ones",
    )
    parser.add_argument("--publishers", type=int, default=2, help="publisher threads (2)")
    parser.add_argument("--rate", type=float, default=300.0, help="msg/s per publisher (300)")
    parser.add_argument("--hold", type=float, default=1.0, help="seconds an outage lasts (1)")
    parser.add_argument("--seed", type=int, default=1, help="shuffles the schedule (1)")
    parser.add_argument(
        "--skip",
        type=lambda text: text.split(","),
        default=[],
        help="faults to leave out, comma-separated (link-close, kill-router, hub-kill, ...)",
    )
    parser.add_argument("--json", help="write the figures to this file")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
