"""Replay throughput: a 10^6-message backlog drained into a real hub subscriber.

Run from the repo root::

    .venv/bin/python -m bench.replay_bench [-n 1000000] [--size 16] [--sync full]
        [--profile] [--no-nats] [--json out.json]

Theory of operation.

1. **Backlog.** ``leafnode store`` (SQLite, ``--sync``), ``leafnode router``
   and ``leafnode uplink`` run with ``buffer { subjects: ["tele.>"] }`` for
   the remote ``hub``, whose hub is not running. ``bench/loadgen pub``
   publishes N messages through the router; its final flush returns after
   the commit, and the store's ``stats`` must then show N pending.
2. **Drain.** The hub starts, with a raw core subscriber on ``tele.>``
   (counting ``MSG`` markers at C speed, ``edge_buffer_bench.Counter``)
   attached before the uplink's link is up, so its interest is the hub's
   initial interest. The drain rate is (N - 1) / (last - first arrival);
   the time from link-up is reported too. Meanwhile the CPU time of the
   store, uplink, router and hub processes is sampled from ``/proc``, and
   with ``--profile`` py-spy records the store and the uplink and the top
   functions are printed: that is where the time goes.
3. **nats-server, same run.** ``edge_buffer_bench.run_nats``: a leaf
   nats-server with a JetStream file stream holds the same N messages and a
   hub stream sources them once the link is up; its sync rate is N / time
   from link-up. Printed ratio: leafnode drain rate / nats-server sync rate.

Target (issue 4): replay >= 100,000 msg/s.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from bench.edge_buffer_bench import (
    BENCH_DIR,
    BenchError,
    Counter,
    hub_config,
    leaf_count,
    loadgen,
    run_nats,
    store_request,
    wait_for,
)
from leafnode.ipc import STORE_SOCKET
from tests.support import (
    NatsServerProcess,
    RouterProcess,
    ServiceProcess,
    UplinkProcess,
    free_port,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

REMOTE: Final = "hub"
TARGET_MSGS_S: Final = 100_000
POLL_S: Final = 0.01
PY_SPY: Final = Path(sys.executable).parent / "py-spy"
_TICKS: Final = os.sysconf("SC_CLK_TCK")


@dataclass
class ReplayResult:
    """The drain's numbers."""

    n: int
    size: int
    sync: str
    append_msgs_per_sec: float | None = None
    link_up_to_first_s: float | None = None
    drain_s: float | None = None
    drain_msgs_per_sec: float | None = None
    from_link_up_msgs_per_sec: float | None = None
    cpu_s: dict[str, float] = field(default_factory=dict)
    profile: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    progress_lines: list[str] = field(default_factory=list)
    note: str = ""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def top_functions(raw: Path, count: int = 12) -> list[tuple[float, str]]:
    """py-spy ``--format raw`` (collapsed stacks) -> the leaf functions taking most samples."""
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        total += int(n)
        leaves[stack.rsplit(";", 1)[-1]] += int(n)
    return [(round(c / total, 3), f) for f, c in leaves.most_common(count)] if total else []


class Profiler:
    """``py-spy record`` on some processes until ``stop``."""

    def __init__(self, work: Path, pids: dict[str, int]) -> None:
        self.outputs = {name: work / f"pyspy-{name}.txt" for name in pids}
        self.procs = [
            subprocess.Popen(
                [
                    str(PY_SPY),
                    "record",
                    "-r",
                    "250",
                    "-f",
                    "raw",
                    "-o",
                    str(self.outputs[name]),
                    "-p",
                    str(pid),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for name, pid in pids.items()
        ]

    def stop(self) -> dict[str, list[tuple[float, str]]]:
        for proc in self.procs:
            proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        return {n: top_functions(p) for n, p in self.outputs.items() if p.exists()}


def run_replay(
    work: Path, n: int, size: int, sync_mode: str, cap_s: float, *, profile: bool
) -> ReplayResult:
    """Build the backlog with the hub away, then start the hub and time the drain."""
    result = ReplayResult(n, size, sync_mode)
    leaf_port, http_port = free_port(), free_port()
    work.mkdir(parents=True, exist_ok=True)
    run_dir = work / "run"
    conf = work / "leaf.conf"
    conf.write_text(
        f'store {{ url: "sqlite:///{work / "buffer.db"}", sync: {sync_mode} }}\n'
        'leafnodes { reconnect: "100ms", remotes: [ {\n'
        f'  name: {REMOTE}, url: "nats-leaf://127.0.0.1:{leaf_port}",\n'
        '  buffer { subjects: ["tele.>"] }\n} ] }\n'
    )
    procs: list[NatsServerProcess | RouterProcess | ServiceProcess | UplinkProcess] = []
    counter: Counter | None = None
    try:
        store = ServiceProcess("store", conf, run_dir, workdir=work / "store")
        procs.append(store)
        store.wait_socket(STORE_SOCKET)
        router = RouterProcess(
            conf.read_text(), workdir=work / "router", extra_args=("--run-dir", str(run_dir))
        )
        procs.append(router)
        router.wait_ready()
        uplink = UplinkProcess(conf, run_dir, workdir=work / "uplink")
        procs.append(uplink)
        uplink_ctl = run_dir / "uplink.ctl"
        wait_for(uplink_ctl.exists, "the uplink's control socket")
        append = loadgen("pub", router.port, n, size, timeout_s=int(cap_s) + 600)
        rate = append.get("msgs_per_sec")
        result.append_msgs_per_sec = float(rate) if isinstance(rate, int | float) else None
        remotes = store_request(run_dir, "stats")["remotes"]
        pending = remotes.get(REMOTE, {}).get("msgs", 0) if isinstance(remotes, dict) else 0
        if pending != n:
            raise BenchError(f"the store has {pending} of {n} messages after the flush")

        hub = NatsServerProcess(hub_config(leaf_port, http_port, None), workdir=work / "hub")
        procs.append(hub)
        hub.wait_ready()
        counter = Counter(hub.port, "tele.>")
        counter.mark(1, n)
        pids = {"store": store.proc.pid, "uplink": uplink.proc.pid, "router": router.proc.pid}
        pids["hub"] = hub.proc.pid
        profiler = (
            Profiler(work, {"store": pids["store"], "uplink": pids["uplink"]})
            if (profile and PY_SPY.exists())
            else None
        )
        wait_for(lambda: leaf_count(http_port) >= 1, "the uplink to connect")
        link_up = time.monotonic()
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        deadline = link_up + cap_s
        while n not in counter.reached and time.monotonic() < deadline:
            time.sleep(POLL_S)
        result.cpu_s = {
            name: round(cpu_seconds(pid) - cpu_before[name], 2) for name, pid in pids.items()
        }
        if profiler is not None:
            result.profile = profiler.stop()
        first, last = counter.reached.get(1), counter.reached.get(n)
        if first is not None:
            result.link_up_to_first_s = round(first - link_up, 3)
        if first is not None and last is not None and last > first:
            result.drain_s = round(last - first, 3)
            result.drain_msgs_per_sec = (n - 1) / (last - first)
            result.from_link_up_msgs_per_sec = n / (last - link_up)
        else:
            result.note = f"{counter.count} of {n} reached the hub within {cap_s:.0f}s"
        result.progress_lines = [
            line.split("] ", 1)[-1]
            for line in uplink.log_text().splitlines()
            if "replay" in line and "Leafnode remote" in line
        ]
    finally:
        if counter is not None:
            counter.close()
        for proc in reversed(procs):
            proc.kill()
    return result


def report(result: ReplayResult, nats_rate: float | None) -> None:
    def fmt(value: float | None, unit: str = "") -> str:
        return "n/a" if value is None else f"{value:,.0f}{unit}"

    print(f"\nreplay of {result.n:,} buffered messages ({result.size} B, SQLite {result.sync})")
    print(f"  append through the router   {fmt(result.append_msgs_per_sec, ' msg/s')}")
    print(f"  link-up to first message    {result.link_up_to_first_s} s")
    print(f"  drain (first to last)       {fmt(result.drain_msgs_per_sec, ' msg/s')}")
    print(f"  from link-up                {fmt(result.from_link_up_msgs_per_sec, ' msg/s')}")
    target = result.drain_msgs_per_sec
    verdict = "n/a" if target is None else ("PASS" if target >= TARGET_MSGS_S else "SHORT")
    print(f"  target >= {TARGET_MSGS_S:,} msg/s       {verdict}")
    if nats_rate is not None:
        ratio = f"{target / nats_rate:.2f}x" if target else "n/a"
        print(f"  nats-server JetStream sync  {fmt(nats_rate, ' msg/s')}  (ratio {ratio})")
    if result.drain_s:
        shares = ", ".join(
            f"{name} {cpu:.1f}s ({cpu / result.drain_s:.0%} of a core)"
            for name, cpu in result.cpu_s.items()
        )
        print(f"  CPU during the drain        {shares}")
    for name, rows in result.profile.items():
        print(f"  py-spy {name}: " + "; ".join(f"{share:.0%} {fn}" for share, fn in rows[:8]))
    for line in result.progress_lines[-4:]:
        print(f"  uplink log: {line}")
    if result.note:
        print(f"  note: {result.note}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replay_bench", description=__doc__)
    parser.add_argument("-n", type=int, default=1_000_000, help="backlog size (default 10^6)")
    parser.add_argument("--size", type=int, default=16, help="payload bytes (default 16)")
    parser.add_argument("--sync", default="full", choices=("full", "normal"), help="SQLite sync")
    parser.add_argument("--cap", type=float, default=300.0, help="seconds allowed for the drain")
    parser.add_argument("--profile", action="store_true", help="py-spy the store and the uplink")
    parser.add_argument("--no-nats", action="store_true", help="skip the nats-server comparison")
    parser.add_argument("--json", dest="json_path", help="write the results here")
    args = parser.parse_args(argv)
    if subprocess.run(["bash", str(BENCH_DIR / "build.sh")], check=False).returncode:
        return 1
    work = Path(tempfile.mkdtemp(prefix="replay-bench-"))
    status = 0
    nats_rate: float | None = None
    try:
        print(f"leafnode: backlog of {args.n:,}, then the drain ...", file=sys.stderr)
        result = run_replay(
            work / "leafnode", args.n, args.size, args.sync, args.cap, profile=args.profile
        )
        if not args.no_nats:
            print("nats-server: JetStream leaf stream sourced by the hub ...", file=sys.stderr)
            try:
                nats = run_nats(work / "nats", args.n, min(args.n, 100_000), args.size, args.cap)
                if nats.sync is not None and nats.sync.total_s:
                    nats_rate = args.n / nats.sync.total_s
            except (BenchError, OSError, subprocess.SubprocessError) as exc:
                print(f"nats-server run failed: {exc}", file=sys.stderr)
    except (BenchError, OSError, subprocess.SubprocessError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(result, nats_rate)
    if result.drain_msgs_per_sec is None:
        status = 1
    if args.json_path:
        doc = {"leafnode": asdict(result), "nats_server_sync_msgs_per_sec": nats_rate}
        Path(args.json_path).write_text(json.dumps(doc, indent=2))
    return status


if __name__ == "__main__":
    sys.exit(main())
