"""Microseconds per message per stage, for a local, a hub-bound and a buffered PUB (issue 16).

Theory of operation
-------------------
A real site (``leafnode run``: store, router, uplink; a remote to a real
nats-server hub, ``buf.>`` buffered) takes three loads from the C load
generator (``bench/loadgen``, libnats), one after another:

* **local**: ``loadgen pubsub`` on the client port: PUB in, MSG out to a
  subscriber on the same router;
* **hub-bound**: ``loadgen pubsub -s2 HUB``: PUB on the router, the
  subscriber on the hub; the router hands each message to the uplink over
  the data link, the uplink writes it to the hub;
* **buffered**: ``loadgen pub`` on ``buf.x``: the router appends each batch
  to the store and answers the final PING once it is committed (no hub
  subscriber: the uplink's replay waits for interest, so this is the
  append path alone).

During each load ``py-spy record --format raw`` samples every service
(``--nonblocking``: it does not stop the process to read its stacks), and the
CPU time each service used is read from ``/proc/PID/stat`` before and after.
A process's CPU microseconds per message (its CPU time / messages) are then
split over *stages* in proportion to its samples: each sample (a stack)
goes to the stage of its innermost frame that ``STAGES`` knows (parser,
subject match, link layer, data-link framing, ipc framing, socket calls,
the trio event loop, SQL, ...), else to "other". py-spy samples only
threads that are running (no ``--idle``), so the split is of CPU time.

The figures are CPU time: a wait (for an fsync, for the peer) is in none
of them. Caveats: the sampler itself takes CPU on a 2-core machine (it is a third
process next to the two the load keeps busy), so absolute figures are
higher than in an unprofiled run; compare runs made the same way. A stage
is the innermost *known* frame: time in CPython's own C code (a ``bytes``
join, a ``dict`` lookup) counts to the Python function that called it.

Run (from the repository root; ``bash bench/build.sh`` builds the load
generator; ``pip install py-spy`` into the venv)::

    .venv/bin/python -m bench.stage_profile                  # 500k messages per load
    .venv/bin/python -m bench.stage_profile --quick          # 100k
    .venv/bin/python -m bench.stage_profile --md out.md --json out.json
    .venv/bin/python -m bench.stage_profile --source /path/to/other/checkout

``--source DIR`` runs ``leafnode run`` from another checkout (its
``PYTHONPATH``), e.g. main before a change, with this script and this venv.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from bench.site_bench import start, stop
from tests.support import free_port, nats_server_binary, site_processes

BENCH_DIR: Final = Path(__file__).resolve().parent
LOADGEN: Final = BENCH_DIR / "loadgen"
PY_SPY: Final = Path(sys.executable).parent / "py-spy"
# Samples per second per process: enough for a stable split over a few
# seconds of load, little enough for py-spy not to take a core.
RATE_HZ: Final = 500
SERVICES: Final = ("router", "uplink", "store")
LINK_TIMEOUT_S: Final = 30.0

#: (stage, path fragments of its frames), first match wins per frame; the
#: innermost frame that matches one decides a sample's stage.
STAGES: Final = (
    ("client protocol parse", ("leafnode/proto/_parser", "leafnode/proto/_verbs")),
    ("protocol format (MSG/LMSG out)", ("leafnode/proto/_writer", "leafnode/proto/_route_writer")),
    ("data-link framing", ("leafnode/proto/_datalink", "leafnode/proto/_framer")),
    ("protocol events", ("leafnode/proto/",)),
    ("subject match (sublist)", ("leafnode/sublist",)),
    ("link layer (Outbound, shell)", ("leafnode/link/",)),
    ("ipc framing (store requests)", ("leafnode/ipc/",)),
    ("SQL (SQLAlchemy, sqlite3, commit)", ("sqlalchemy/", "sqlite3/")),
    ("socket calls", ("trio/_socket", "/socket.py")),
    ("event loop (trio)", ("trio/",)),
    ("router: routing", ("services/router/routing", "services/router/interest")),
    ("router: buffering to the store", ("services/router/buffering",)),
    ("router: client connection", ("services/router/client_conn",)),
    ("router: data link", ("services/router/datalink",)),
    ("router: other", ("services/router/",)),
    ("uplink: hub side", ("services/uplink/session", "services/uplink/wire",
                          "services/uplink/framing")),
    ("uplink: router side", ("services/uplink/routerlink",)),
    ("uplink: other", ("services/uplink/",)),
    # The driver's C calls (sqlite3 execute, commit) have no Python frame of
    # their own: they count to the repo line that made them.
    ("store: SQL via the driver (repo)", ("services/store/repo",)),
    ("store: append service", ("services/store/service",)),
    ("store: other", ("services/store/",)),
)  # fmt: skip
_FRAME: Final = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*):?\d*\)$")


@dataclass
class Scenario:
    """One load and what each service did during it."""

    name: str
    what: str
    msgs: int
    seconds: float = 0.0
    loadgen: dict[str, object] = field(default_factory=dict)
    cpu_us_per_msg: dict[str, float] = field(default_factory=dict)
    stages: dict[str, dict[str, float]] = field(default_factory=dict)  # service -> stage -> µs/msg
    samples: dict[str, int] = field(default_factory=dict)


def stage_of(stack: str) -> str:
    """The stage of one collapsed stack (root first, ``;``-separated)."""
    for frame in reversed(stack.split(";")):
        match = _FRAME.match(frame)
        path = match["file"] if match else frame
        for stage, fragments in STAGES:
            if any(fragment in path for fragment in fragments):
                return stage
    return "other"


def split(raw: str) -> tuple[Counter[str], int]:
    """py-spy ``--format raw`` text -> samples per stage, total samples."""
    stages: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        stages[stage_of(stack)] += int(count)
        total += int(count)
    return stages, total


def cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` (all its threads) so far, from each thread's schedstat (ns)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended meanwhile
    return total / 1e9


def run_scenario(scenario: Scenario, argv: list[str], pids: dict[str, int], work: Path) -> Scenario:
    """Run one load under py-spy; fill in ``scenario``'s figures."""
    spies: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    for name, pid in pids.items():
        out = work / f"{scenario.name}-{name}.txt"
        cmd = [str(PY_SPY), "record", "--pid", str(pid), "--rate", str(RATE_HZ),
               "--format", "raw", "--nonblocking", "--output", str(out)]  # fmt: skip
        spies[name] = (
            subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
            out,
        )
    time.sleep(1.0)  # py-spy attaches
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    scenario.seconds = time.monotonic() - started
    after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    for proc, _ in spies.values():
        proc.send_signal(signal.SIGINT)
    for proc, _ in spies.values():
        proc.wait(60)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    try:
        scenario.loadgen = json.loads(lines[-1]) if lines else {"error": done.stderr[-300:]}
    except json.JSONDecodeError:
        scenario.loadgen = {"error": done.stdout[-300:]}
    for name, (_, out) in spies.items():
        per_msg = (after[name] - before[name]) * 1e6 / scenario.msgs
        scenario.cpu_us_per_msg[name] = per_msg
        text = out.read_text() if out.exists() else ""
        stages, total = split(text)
        scenario.samples[name] = total
        scenario.stages[name] = {
            stage: per_msg * count / total for stage, count in stages.most_common() if total
        }
    return scenario


def wait_for(path: Path, pattern: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not re.search(pattern, path.read_text()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{pattern!r} not in {path} after {timeout}s")
        time.sleep(0.05)


def profile(msgs: int, source: Path | None, work: Path) -> list[Scenario]:
    """Start the hub and the site, run the three loads, stop everything."""
    hub_port, hub_leaf_port, port = free_port(), free_port(), free_port()
    (work / "hub.conf").write_text(f"leafnodes {{ listen: 127.0.0.1:{hub_leaf_port} }}\n")
    hub_argv = [nats_server_binary(), "-c", str(work / "hub.conf"), "-a", "127.0.0.1",
                "-p", str(hub_port)]  # fmt: skip
    hub, _ = start(hub_argv, work / "hub.log")
    site: subprocess.Popen[bytes] | None = None
    try:
        conf = work / "leaf.conf"
        remote = f'name: hub, url: "nats-leaf://127.0.0.1:{hub_leaf_port}"'
        conf.write_text(
            f'store {{ url: "sqlite:///{work}/buffer.db" }}\n'
            f'run_dir: "{work}/run"\n'
            f'leafnodes {{ remotes: [ {{ {remote}, buffer {{ subjects: ["buf.>"] }} }} ] }}\n'
        )
        argv = [sys.executable, "-m", "leafnode", "run", "-c", str(conf),
                "-a", "127.0.0.1", "-p", str(port)]  # fmt: skip
        env = dict(os.environ)
        if source is not None:
            env["PYTHONPATH"] = str(source)
        log = work / "site.log"
        with open(log, "wb") as out:
            site = subprocess.Popen(
                argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=env,
                cwd=source or BENCH_DIR.parent,
            )  # fmt: skip
        wait_for(log, r"Server is ready", LINK_TIMEOUT_S)
        wait_for(log, r'remote "hub": connected to nats-leaf', LINK_TIMEOUT_S)
        pids = {name: pid for name, pid in site_processes(site.pid).items() if name in SERVICES}
        url, hub_url = f"nats://127.0.0.1:{port}", f"nats://127.0.0.1:{hub_port}"
        common = ["-n", str(msgs), "-size", "16"]
        loads = (
            (Scenario("local", "PUB -> MSG to a subscriber on the same router", msgs),
             [str(LOADGEN), "pubsub", "-s", url, *common, "-subject", "local.x"]),
            (Scenario("hub-bound", "PUB on the router -> the uplink -> a subscriber on the hub",
                      msgs),
             [str(LOADGEN), "pubsub", "-s", url, "-s2", hub_url, *common, "-subject", "up.x"]),
            (Scenario("buffered", "PUB on a buffered subject -> the store (committed, SQLite FULL)",
                      msgs),
             [str(LOADGEN), "pub", "-s", url, *common, "-subject", "buf.x"]),
        )  # fmt: skip
        results = []
        for scenario, load_argv in loads:
            print(f"{scenario.name}: {msgs:,} messages ...", file=sys.stderr, flush=True)
            results.append(run_scenario(scenario, load_argv, pids, work))
        return results
    finally:
        if site is not None:
            stop(site)
        stop(hub)


def markdown(results: list[Scenario], header: str) -> str:
    """One table per scenario: service, stage, µs per message, share of the service."""
    out = [header, ""]
    for s in results:
        rate = s.loadgen.get("msgs_per_sec")
        rate_text = f"{rate:,.0f} msgs/s under the profiler" if isinstance(rate, int | float) else (
            f"loadgen: {s.loadgen}")  # fmt: skip
        total = sum(s.cpu_us_per_msg.values())
        out += [
            f"### {s.name}: {s.what}",
            "",
            f"{s.msgs:,} messages of 16 B, {rate_text}; CPU {total:.2f} µs per message in all",
            "",
            "| service | stage | µs/msg | share |",
            "| --- | --- | ---: | ---: |",
        ]
        for service in SERVICES:
            per_msg = s.cpu_us_per_msg.get(service, 0.0)
            stages = s.stages.get(service, {})
            out.append(f"| **{service}** | all ({s.samples.get(service, 0)} samples) | "
                       f"**{per_msg:.2f}** | |")  # fmt: skip
            for stage, us in stages.items():
                if us < 0.005:
                    continue
                share = us / per_msg if per_msg else 0.0
                out.append(f"| {service} | {stage} | {us:.2f} | {share:.0%} |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stage_profile", description=__doc__)
    parser.add_argument("-n", type=int, default=500_000, help="messages per load (default 500k)")
    parser.add_argument("--quick", action="store_true", help="100k messages per load")
    parser.add_argument("--source", type=Path, help="run leafnode from this checkout")
    parser.add_argument("--label", help="what was measured (default: the checkout's commit)")
    parser.add_argument("--md", type=Path, help="write the tables (markdown) here")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    if not PY_SPY.exists():
        print(f"py-spy not found at {PY_SPY}: .venv/bin/pip install py-spy", file=sys.stderr)
        return 1
    if subprocess.run(["bash", str(BENCH_DIR / "build.sh")], check=False).returncode:
        return 1
    msgs = 100_000 if args.quick else args.n
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="stage-profile-") as tmp:
        results = profile(msgs, args.source, Path(tmp))
    commit = subprocess.run(
        ["git", "-C", str(args.source or BENCH_DIR.parent), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    header = (
        f"{args.label or f'Commit {commit}'}, {when}, "
        f"{os.cpu_count()} cores, load average (1 min) {load:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after; py-spy {RATE_HZ} Hz, --nonblocking."
    )
    text = markdown(results, header)
    print(text)
    if args.md:
        args.md.write_text(text)
    if args.json:
        doc = {"commit": commit, "msgs": msgs, "scenarios": [s.__dict__ for s in results]}
        args.json.write_text(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
