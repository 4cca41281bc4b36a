"""Site bench: how light is a whole leaf node? (issue 5, "Performance").

For ``leafnode run`` (supervisor, fork server, store, router, uplink, api; a real
nats-server hub at the other end of the remote) and, in the same run, for a
nats-server configured as the same leaf (same hub, same client port role):

* the time from starting the command to its ``Server is ready`` log line
  (median over ``--reps`` starts);
* each process's resident memory idle (RSS, and PSS: RSS with shared pages
  split between the processes sharing them, the fair figure for several
  Python interpreters; and USS, the pages only this process maps, which is
  what a change to its imports moves: PSS also moves with every unrelated
  Python process on the host that maps the same libpython) and its peak
  RSS under load (``bench/loadgen pubsub`` through the client port; the
  load is the foundation issue's 1:1 pub/sub);
* the totals, against issue 16's targets: every process of the site
  (supervisor and fork server included) ≤ 80 MB PSS idle (PSS: the
  services are forked from one preloaded interpreter and share its pages,
  so their RSS figures count those pages once per service), exec -> ready
  ≤ 0.5 s. The four services' total is printed too (issue 5 wanted
  ≤ 120 MB).

Prints one table; ``--json PATH`` writes the raw figures and the headline
figures ``bench.run_all`` puts in its table.

    .venv/bin/python -m bench.site_bench            # 3 starts, 10^6 messages of load
    .venv/bin/python -m bench.site_bench --quick    # 1 start, 200k messages
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from tests.support import free_port, nats_server_binary, site_processes

BENCH_DIR: Final = Path(__file__).resolve().parent
LOADGEN: Final = BENCH_DIR / "loadgen"
# Issue 16: every process of the site, PSS idle; exec -> "Server is ready".
MEMORY_TARGET_MB: Final = 80.0
READY_TARGET_S: Final = 0.5
READY_TIMEOUT_S: Final = 60.0
SAMPLE_EVERY_S: Final = 0.05
IDLE_SETTLE_S: Final = 1.0
SERVICES: Final = ("supervisor", "fork", "store", "router", "uplink", "api")
FOUR: Final = ("store", "router", "uplink", "api")


@dataclass
class Memory:
    """RSS, PSS and USS (private pages) of one process, in KiB."""

    rss_kb: int = 0
    pss_kb: int = 0
    uss_kb: int = 0


@dataclass
class Target:
    """One measured system (leafnode or nats-server)."""

    name: str
    ready_s: list[float] = field(default_factory=list)
    idle: dict[str, Memory] = field(default_factory=dict)
    load_peak_rss_kb: dict[str, int] = field(default_factory=dict)
    load_result: dict[str, object] = field(default_factory=dict)


def memory(pid: int) -> Memory | None:
    """RSS, PSS and USS of ``pid`` from ``/proc/PID/smaps_rollup`` (None once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    fields = {k: int(v) for k, v in re.findall(r"^(\w+):\s+(\d+) kB", text, re.MULTILINE)}
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return Memory(fields.get("Rss", 0), fields.get("Pss", 0), uss)


def wait_ready(proc: subprocess.Popen[bytes], log: Path, started: float) -> float:
    """Seconds from ``started`` until the process logged ``Server is ready``."""
    marker = f"[{proc.pid}] ".encode()
    deadline = started + READY_TIMEOUT_S
    while True:
        for line in log.read_bytes().splitlines():
            if line.startswith(marker) and line.endswith(b"Server is ready"):
                return time.monotonic() - started
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited {proc.returncode}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"not ready after {READY_TIMEOUT_S}s:\n{log.read_text()}")
        time.sleep(0.005)


def start(argv: list[str], log: Path) -> tuple[subprocess.Popen[bytes], float]:
    with open(log, "wb") as out:
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    return proc, wait_ready(proc, log, started)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def leafnode_argv(workdir: Path, hub_leaf_port: int, port: int) -> list[str]:
    conf = workdir / "leaf.conf"
    conf.write_text(
        f'store {{ url: "sqlite:///{workdir}/buffer.db" }}\n'
        f'run_dir: "{workdir}/run"\n'
        "leafnodes { remotes: [ { name: hub, "
        f'url: "nats-leaf://127.0.0.1:{hub_leaf_port}", '
        'buffer { subjects: ["bench.buffered.>"] } } ] }\n'
    )
    return [
        sys.executable, "-m", "leafnode", "run", "-c", str(conf),
        "-a", "127.0.0.1", "-p", str(port), "-m", "-1",
    ]  # fmt: skip


def nats_leaf_argv(workdir: Path, hub_leaf_port: int, port: int) -> list[str]:
    conf = workdir / "nats-leaf.conf"
    conf.write_text(
        f"http: 127.0.0.1:{free_port()}\n"
        f'leafnodes {{ remotes: [ {{ url: "nats-leaf://127.0.0.1:{hub_leaf_port}" }} ] }}\n'
    )
    return [nats_server_binary(), "-c", str(conf), "-a", "127.0.0.1", "-p", str(port)]


def sample(pids: dict[str, int], into: dict[str, int], stop_event: threading.Event) -> None:
    """Record the peak RSS of each pid until ``stop_event`` is set."""
    while not stop_event.is_set():
        for name, pid in pids.items():
            mem = memory(pid)
            if mem is not None:
                into[name] = max(into.get(name, 0), mem.rss_kb)
        stop_event.wait(SAMPLE_EVERY_S)


def load(url: str, msgs: int, pids: dict[str, int], target: Target) -> None:
    stop_event = threading.Event()
    sampler = threading.Thread(
        target=sample, args=(pids, target.load_peak_rss_kb, stop_event), daemon=True
    )
    sampler.start()
    try:
        argv = [str(LOADGEN), "pubsub", "-s", url, "-n", str(msgs), "-size", "16", "-subs", "1"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        try:
            result = json.loads(lines[-1]) if lines else {}
        except json.JSONDecodeError:
            result = {"error": done.stdout[-300:]}
        target.load_result = result if isinstance(result, dict) else {}
    finally:
        stop_event.set()
        sampler.join()


def measure(
    name: str, argv_for: object, hub_leaf_port: int, reps: int, msgs: int, workdir: Path
) -> Target:
    target = Target(name)
    assert callable(argv_for)
    for rep in range(reps):
        rundir = workdir / f"{name}-{rep}"
        rundir.mkdir()
        port = free_port()
        proc, ready_s = start(argv_for(rundir, hub_leaf_port, port), rundir / "out.log")
        target.ready_s.append(ready_s)
        try:
            if rep < reps - 1:
                continue
            time.sleep(IDLE_SETTLE_S)  # let start-up garbage settle before the idle sample
            pids = {"supervisor" if name == "leafnode" else name: proc.pid}
            if name == "leafnode":
                pids.update(site_processes(proc.pid))
            for label, pid in pids.items():
                mem = memory(pid)
                if mem is not None:
                    target.idle[label] = mem
            if LOADGEN.exists():
                load(f"nats://127.0.0.1:{port}", msgs, pids, target)
        finally:
            stop(proc)
    return target


def _mb(kb: float) -> str:
    return f"{kb / 1024:7.1f}"


def report(leaf: Target, nats: Target) -> str:
    rows = ["process       idle RSS MB  idle PSS MB  idle USS MB  peak RSS MB under load"]
    for label in [*SERVICES, "nats-server"]:
        source = nats if label == "nats-server" else leaf
        mem = source.idle.get(label)
        if mem is None:
            continue
        peak = source.load_peak_rss_kb.get(label)
        rows.append(
            f"{label:<12}  {_mb(mem.rss_kb)}      {_mb(mem.pss_kb)}      {_mb(mem.uss_kb)}      "
            f"{_mb(peak) if peak else '      -'}"
        )
    four = [leaf.idle[s] for s in FOUR if s in leaf.idle]
    every = list(leaf.idle.values())
    for label, group in (("4 services", four), ("all", every)):
        rss = sum(m.rss_kb for m in group)
        pss = sum(m.pss_kb for m in group)
        uss = sum(m.uss_kb for m in group)
        peak = sum(
            leaf.load_peak_rss_kb.get(s, 0)
            for s in SERVICES
            if s in leaf.idle and (label != "4 services" or s in FOUR)
        )
        rows.append(f"{label:<12}  {_mb(rss)}      {_mb(pss)}      {_mb(uss)}      {_mb(peak)}")
    nats_mem = nats.idle.get("nats-server", Memory())
    total_pss = sum(m.pss_kb for m in every)
    total_rss = sum(m.rss_kb for m in every)
    total_uss = sum(m.uss_kb for m in every)
    leaf_ready = statistics.median(leaf.ready_s)
    nats_ready = statistics.median(nats.ready_s)
    four_pss = sum(m.pss_kb for m in four)
    verdict_mem = "PASS" if total_pss / 1024 <= MEMORY_TARGET_MB else "SHORT"
    verdict_ready = "PASS" if leaf_ready <= READY_TARGET_S else "SHORT"
    rows += [
        "",
        f"idle, every process (+ supervisor, fork server): PSS {total_pss / 1024:.1f} MB"
        f" (target <= {MEMORY_TARGET_MB:.0f} MB: {verdict_mem}), RSS {total_rss / 1024:.1f} MB,"
        f" USS {total_uss / 1024:.1f} MB; the four services: PSS {four_pss / 1024:.1f} MB;"
        f" nats-server {nats_mem.rss_kb / 1024:.1f} MB RSS, {nats_mem.pss_kb / 1024:.1f} MB PSS"
        f" (ratio of our PSS to its PSS {total_pss / max(nats_mem.pss_kb, 1):.1f}x)",
        f"ready: leafnode run {leaf_ready:.2f} s (median of {len(leaf.ready_s)};"
        f" target <= {READY_TARGET_S:g} s: {verdict_ready}),"
        f" nats-server {nats_ready:.3f} s (ratio {leaf_ready / max(nats_ready, 1e-6):.0f}x);"
        f" load average (1 min) {os.getloadavg()[0]:.1f}",
    ]
    rates = {t.name: t.load_result.get("msgs_per_sec") for t in (leaf, nats)}
    if all(isinstance(r, int | float) for r in rates.values()):
        rows.append(
            "load (loadgen pubsub 1:1, 16 B): "
            + ", ".join(f"{name} {rate:,.0f} msgs/s" for name, rate in rates.items())
        )
    else:
        rows.append(f"load: not measured ({leaf.load_result or 'build bench/loadgen'})")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.site_bench", description=__doc__)
    parser.add_argument("--reps", type=int, default=3, help="starts to time (default 3)")
    parser.add_argument("--msgs", type=int, default=1_000_000, help="messages of load")
    parser.add_argument("--quick", action="store_true", help="1 start, 200k messages")
    parser.add_argument("--json", metavar="PATH", help="write the raw figures here")
    args = parser.parse_args(argv)
    reps, msgs = (1, 200_000) if args.quick else (max(args.reps, 1), args.msgs)
    with tempfile.TemporaryDirectory(prefix="site-bench-") as tmp:
        workdir = Path(tmp)
        hub_leaf_port = free_port()
        hub_conf = workdir / "hub.conf"
        hub_conf.write_text(f"leafnodes {{ listen: 127.0.0.1:{hub_leaf_port} }}\n")
        hub_argv = [nats_server_binary(), "-c", str(hub_conf), "-a", "127.0.0.1", "-p", "-1"]
        hub, _ = start(hub_argv, workdir / "hub.log")
        try:
            nats = measure("nats-server", nats_leaf_argv, hub_leaf_port, reps, msgs, workdir)
            leaf = measure("leafnode", leafnode_argv, hub_leaf_port, reps, msgs, workdir)
        finally:
            stop(hub)
    print(report(leaf, nats))
    if args.json:
        doc: dict[str, object] = {
            t.name: {**t.__dict__, "idle": {k: v.__dict__ for k, v in t.idle.items()}}
            for t in (leaf, nats)
        }
        doc["headline"] = headline(leaf, nats)
        Path(args.json).write_text(json.dumps(doc, indent=2))
    return 0


def headline(leaf: Target, nats: Target) -> list[dict[str, object]]:
    """The figures ``bench.run_all`` tabulates (its ``headline`` convention)."""
    total_pss_mb = sum(m.pss_kb for m in leaf.idle.values()) / 1024
    nats_pss_mb = nats.idle.get("nats-server", Memory()).pss_kb / 1024
    leaf_ready = statistics.median(leaf.ready_s)
    nats_ready = statistics.median(nats.ready_s)
    return [
        {
            "metric": "idle memory of a site, every process, PSS",
            "unit": "MB",
            "leafnode": round(total_pss_mb, 1),
            "nats": round(nats_pss_mb, 1),
            "target": f"<= {MEMORY_TARGET_MB:g} MB",
            "met": total_pss_mb <= MEMORY_TARGET_MB,
        },
        {
            "metric": 'exec -> "Server is ready" (store, uplink, api), median',
            "unit": "s",
            "leafnode": round(leaf_ready, 3),
            "nats": round(nats_ready, 4),
            "target": f"<= {READY_TARGET_S:g} s",
            "met": leaf_ready <= READY_TARGET_S,
        },
    ]


if __name__ == "__main__":
    sys.exit(main())
