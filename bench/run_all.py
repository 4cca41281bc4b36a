"""Run every benchmark in one go and write one table of figures, ratios and targets.

Each benchmark runs its workload against a real nats-server in the same run;
this runner starts them one after another (together they would disturb each
other's numbers), each with ``--json PATH``, keeps their full output in the
output directory, and turns their JSON into one table (issue 16, point 3):

    bench | metric | leafnode | nats-server/JetStream | ratio | target | met?

written as ``results.md`` (markdown, with the machine named: CPU model,
cores, the load average around each benchmark) and ``results.json``, and
printed. The targets are issue 16's (each figure is a ratio to nats-server
in the same run where there is one to compare with).

Where the figures come from: a benchmark whose JSON has a ``headline`` list
(``[{"metric", "unit", "leafnode", "nats", "target", "met"}]``; ``target``
is text such as ``">= 1.0x"`` or ``"<= 80 MB"``) gives its own rows
(site_bench, startup_bench; a new benchmark only has to write one to join
the table); for the others a reader below picks the headline figures out of
the JSON they already write. A figure that is missing (the benchmark failed,
or its JSON changed shape) shows as ``n/a`` with the reason, never as a
number.

Run: ``.venv/bin/python -m bench.run_all [--quick] [--only a,b] [--out DIR]``
(about 20-30 minutes on 2 cores; ``--quick`` for a check that it all works;
``--only replay_bench_1e7`` the 10^7 backlog alone, which the full run
includes and ``--quick`` skips).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

BENCH_DIR: Final = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Bench:
    """One benchmark run: its id in the table, its module, extra arguments."""

    id: str
    module: str
    title: str
    args: tuple[str, ...] = ()
    # Skipped by --quick (too long for a check).
    full_only: bool = False


#: In the order of the issue 16 table, then the others.
BENCHES: Final = (
    Bench("edge_buffer_bench", "edge_buffer_bench", "buffered publish vs JetStream"),
    Bench("store_bench", "store_bench", "durable append into the store"),
    Bench("router_bench", "router_bench", "router vs nats-server: pub/sub, request/reply"),
    Bench("uplink_bench", "uplink_bench", "through the hub vs a nats-server leaf"),
    Bench("replay_bench", "replay_bench", "draining a 10^6 backlog vs JetStream sourcing"),
    Bench("site_bench", "site_bench", "memory and start-up of a whole site"),
    Bench("startup_bench", "startup_bench", "exec -> accept, exec -> INFO"),
    Bench("conn_bench", "conn_bench", "memory per connection, fan-out to 3,000 clients"),
    Bench("cluster_bench", "cluster_bench", "cluster routes vs nats-server"),
    # Last: the longest (the table so far is written after each benchmark).
    Bench(
        "replay_bench_1e7",
        "replay_bench",
        "draining a 10^7 backlog vs JetStream sourcing",
        ("-n", "10000000", "--cap", "1800"),
        full_only=True,
    ),
)

NATS: Final = "nats-server"
LEAF: Final = "leafnode"


@dataclass(frozen=True)
class Goal:
    """A target: ``ratio`` (leafnode / nats-server) or the leafnode ``value`` against ``bound``."""

    on: str  # "ratio" or "value"
    op: str  # ">=" or "<="
    bound: float
    unit: str = ""

    def text(self) -> str:
        suffix = "x" if self.on == "ratio" else f" {self.unit}".rstrip()
        return f"{self.op} {self.bound:g}{suffix}"

    def met(self, leafnode: float | None, ratio: float | None) -> bool | None:
        value = ratio if self.on == "ratio" else leafnode
        if value is None or math.isnan(value):
            return None
        return value >= self.bound if self.op == ">=" else value <= self.bound


@dataclass
class Figure:
    """One row of the table."""

    bench: str
    metric: str
    unit: str
    leafnode: float | None
    nats: float | None
    target: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.leafnode is None or not self.nats:
            return None
        return self.leafnode / self.nats

    def as_json(self) -> dict[str, object]:
        return {**asdict(self), "ratio": self.ratio}


def figure(
    bench: str,
    metric: str,
    unit: str,
    leafnode: float | None,
    nats: float | None = None,
    goal: Goal | None = None,
) -> Figure:
    """A row, with ``goal``'s text and verdict."""
    row = Figure(bench, metric, unit, _num(leafnode), _num(nats))
    if goal is not None:
        row.target = goal.text()
        row.met = goal.met(row.leafnode, row.ratio)
    return row


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def _median(values: object) -> float | None:
    if not isinstance(values, list) or not values:
        return None
    ordered = sorted(v for v in values if isinstance(v, int | float))
    if not ordered:
        return None
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


# -- readers: a benchmark's JSON -> its headline figures ---------------------------------
# Each reads the JSON its benchmark already writes; a KeyError/TypeError (the
# benchmark failed half-way, or its JSON changed) becomes an n/a row.


def _edge_buffer(doc: Any) -> list[Figure]:
    results = {r["name"]: r for r in doc["results"]}
    nats = results.get(NATS, {}).get("append_msgs_per_sec")
    full = results.get("leafnode FULL", {}).get("append_msgs_per_sec")
    normal = results.get("leafnode NORMAL", {}).get("append_msgs_per_sec")
    size = doc.get("size", 16)
    return [
        figure(
            "edge_buffer_bench",
            f"buffered publish, {size} B, SQLite FULL (PONG = committed)",
            "msgs/s",
            full,
            nats,
            Goal("ratio", ">=", 1.0),
        ),
        figure(
            "edge_buffer_bench",
            f"buffered publish, {size} B, SQLite NORMAL",
            "msgs/s",
            normal,
            nats,
        ),
    ]


def _store(doc: Any) -> list[Figure]:
    rows = []
    for result in doc["results"]:
        backend, size = result["backend"], result["size"]
        goal = (
            Goal("value", ">=", 250_000, "msgs/s")
            if (backend, size) == ("sqlite-full", 16)
            else None
        )
        rows.append(
            figure(
                "store_bench",
                f"append {size} B, {backend}",
                "msgs/s",
                result["msgs_per_s"],
                None,
                goal,
            )
        )
    return rows


def _router(doc: Any) -> list[Figure]:
    rows = []
    for workload in doc["workloads"]:
        meds = workload["medians"]
        leaf, nats = meds.get(LEAF, {}), meds.get(NATS, {})
        key = workload["key"]
        if key == "pubsub":
            rows.append(
                figure("router_bench", "local 1:1 pub/sub, 16 B", "msgs/s",
                       leaf.get("msgs_per_sec"), nats.get("msgs_per_sec"), Goal("ratio", ">=", 0.5))
            )  # fmt: skip
        elif workload["mode"] == "pubsub":
            rows.append(
                figure("router_bench", f"local {workload['title']}", "msgs/s per sub",
                       leaf.get("msgs_per_sec"), nats.get("msgs_per_sec"))
            )  # fmt: skip
        else:
            rows.append(
                figure("router_bench", "local request/reply p50", "µs",
                       leaf.get("p50_us"), nats.get("p50_us"), Goal("ratio", "<=", 1.2))
            )  # fmt: skip
            rows.append(
                figure("router_bench", "local request/reply p99", "µs",
                       leaf.get("p99_us"), nats.get("p99_us"))
            )  # fmt: skip
    return rows


def _uplink(doc: Any) -> list[Figure]:
    raw = doc["raw"]
    assert isinstance(raw, dict)

    def med(key: str, who: str) -> float | None:
        return _median(raw[key][who])

    return [
        figure("uplink_bench", "leaf -> hub, 16 B", "msgs/s",
               med("leaf->hub", LEAF), med("leaf->hub", NATS), Goal("ratio", ">=", 0.7)),
        figure("uplink_bench", "hub -> leaf, 16 B", "msgs/s",
               med("hub->leaf", LEAF), med("hub->leaf", NATS), Goal("ratio", ">=", 0.7)),
        figure("uplink_bench", "round trip through the hub p50", "µs",
               med("p50", LEAF), med("p50", NATS), Goal("ratio", "<=", 1.2)),
    ]  # fmt: skip


def _replay(bench_id: str) -> Callable[[Any], list[Figure]]:
    def read(doc: Any) -> list[Figure]:
        leaf = doc["leafnode"]
        assert isinstance(leaf, dict)
        n = leaf["n"]
        return [
            figure(bench_id, f"replay of a {n:,} backlog into the hub", "msgs/s",
                   leaf.get("drain_msgs_per_sec"), doc.get("nats_server_sync_msgs_per_sec"),
                   Goal("ratio", ">=", 1.0))
        ]  # fmt: skip

    return read


def _conn(doc: Any) -> list[Figure]:
    leaf, nats = doc[LEAF], doc[NATS]
    assert isinstance(leaf, dict)
    assert isinstance(nats, dict)

    def per_conn(result: Any) -> float:
        grown = result["connected"]["rss_kb"] - result["idle"]["rss_kb"]
        return float(grown) / max(int(result["clients"]), 1)

    n = f"{leaf['clients']:,} clients"
    return [
        figure("conn_bench", "RSS per client connection", "KiB", per_conn(leaf), per_conn(nats)),
        figure("conn_bench", f"connect {n}", "s", leaf["connect_s"], nats["connect_s"]),
        figure("conn_bench", f"fan-out to {n}", "s", leaf["fanout_s"], nats["fanout_s"]),
    ]


READERS: Final[dict[str, Callable[[Any], list[Figure]]]] = {
    "edge_buffer_bench": _edge_buffer,
    "store_bench": _store,
    "router_bench": _router,
    "uplink_bench": _uplink,
    "replay_bench": _replay("replay_bench"),
    "replay_bench_1e7": _replay("replay_bench_1e7"),
    "conn_bench": _conn,
}


def headline(bench_id: str, doc: object) -> list[Figure]:
    """The figures of one benchmark's JSON ``doc`` (its ``headline``, else its reader)."""
    if isinstance(doc, dict) and isinstance(doc.get("headline"), list):
        rows = []
        for item in doc["headline"]:
            row = Figure(
                bench_id,
                str(item.get("metric", "?")),
                str(item.get("unit", "")),
                _num(item.get("leafnode")),
                _num(item.get("nats")),
                str(item.get("target", "")),
                item.get("met") if isinstance(item.get("met"), bool) else None,
            )
            rows.append(row)
        return rows
    reader = READERS.get(bench_id)
    if reader is None or not isinstance(doc, dict):
        return [Figure(bench_id, "(no headline figures in its JSON)", "", None, None)]
    try:
        return reader(doc)
    except (KeyError, TypeError, AssertionError, AttributeError, IndexError) as exc:
        return [
            Figure(
                bench_id, "(figures missing)", "", None, None, note=f"{type(exc).__name__}: {exc}"
            )
        ]


# -- the table -------------------------------------------------------------------------------


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    nats_version = ""
    try:
        from tests.support import nats_server_binary

        done = subprocess.run(
            [nats_server_binary(), "--version"], capture_output=True, text=True, check=False
        )
        nats_version = done.stdout.strip()
    except (OSError, ImportError):
        pass
    return {
        "cpu": model or platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "nats_server": nats_version,
    }


def _cell(value: float | None) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def markdown(
    figures: Sequence[Figure], info: dict[str, object], runs: Sequence[dict[str, object]]
) -> str:
    """The table (and the machine and load lines) as markdown."""
    flat = [x for r in runs if isinstance(r.get("load"), list) for x in r["load"]]  # type: ignore[attr-defined]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {info['cpu']},"
        f" {info['cores']} cores, Python {info['python']}, {info['nats_server']};"
        + (
            f" load average (1 min) {min(flat):.1f}-{max(flat):.1f} during the run." if flat else ""
        ),
        "",
        "| bench | metric | leafnode | nats-server / JetStream | ratio | target | met? |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for f in figures:
        unit = f" ({f.unit})" if f.unit else ""
        ratio = "" if f.ratio is None else f"{f.ratio:.2f}x"
        met = {True: "yes", False: "**no**", None: ""}[f.met]
        note = f" — {f.note}" if f.note else ""
        lines.append(
            f"| {f.bench} | {f.metric}{unit}{note} | {_cell(f.leafnode)} | "
            f"{'' if f.nats is None else _cell(f.nats)} | {ratio} | {f.target} | {met} |"
        )
    failed = [r for r in runs if r.get("exit") not in (0, None)]
    for run in failed:
        lines.append(f"\n{run['bench']}: exit {run['exit']} (log: {run['log']})")
    return "\n".join(lines) + "\n"


def run_bench(bench: Bench, out: Path, *, quick: bool) -> dict[str, object]:
    """Run one benchmark with ``--json``; returns what happened (and its figures' source)."""
    json_path = out / f"{bench.id}.json"
    log_path = out / f"{bench.id}.log"
    cmd = [sys.executable, "-m", f"bench.{bench.module}", *bench.args, "--json", str(json_path)]
    if quick:
        cmd.append("--quick")
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    print(f"== {bench.id}: {bench.title}", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=BENCH_DIR.parent)
    seconds = time.monotonic() - started
    log_path.write_text(proc.stdout + "\n--- stderr\n" + proc.stderr)
    print(f"   done in {seconds:.0f} s, exit {proc.returncode}", flush=True)
    return {
        "bench": bench.id,
        "cmd": cmd[1:],
        "exit": proc.returncode,
        "seconds": round(seconds, 1),
        "load": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "log": str(log_path),
        "json": str(json_path) if json_path.exists() else None,
    }


def collect(runs: Sequence[dict[str, object]]) -> list[Figure]:
    """Every run's figures, in run order."""
    figures: list[Figure] = []
    for run in runs:
        bench_id = str(run["bench"])
        path = run.get("json")
        if not isinstance(path, str):
            figures.append(
                Figure(bench_id, "(no JSON written)", "", None, None, note=f"exit {run['exit']}")
            )
            continue
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            figures.append(Figure(bench_id, "(unreadable JSON)", "", None, None, note=str(exc)))
            continue
        figures.extend(headline(bench_id, doc))
    return figures


def write(out: Path, runs: Sequence[dict[str, object]], *, quick: bool) -> str:
    """Write ``results.md`` and ``results.json`` for ``runs`` into ``out``; return the table."""
    figures = collect(runs)
    info = machine()
    table = markdown(figures, info, runs)
    (out / "results.md").write_text(table)
    doc = {
        "machine": info,
        "quick": quick,
        "runs": list(runs),
        "figures": [f.as_json() for f in figures],
    }
    (out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="each benchmark's --quick mode")
    parser.add_argument("--only", help="comma-separated benchmark ids to run")
    parser.add_argument("--out", type=Path, help="output directory (default: a new temp dir)")
    parser.add_argument(
        "--from", dest="from_dir", type=Path, help="rebuild the table from an earlier --out"
    )
    args = parser.parse_args(argv)
    if args.from_dir is not None:
        runs = json.loads((args.from_dir / "results.json").read_text())["runs"]
        out = args.from_dir
    else:
        out = args.out or Path(tempfile.mkdtemp(prefix="leafnode-bench-"))
        out.mkdir(parents=True, exist_ok=True)
        only = set(args.only.split(",")) if args.only else None
        runs = []
        for bench in BENCHES:
            if only is not None and bench.id not in only:
                continue
            if only is None and bench.full_only and args.quick:
                continue
            if not (BENCH_DIR / f"{bench.module}.py").exists():
                continue  # not in this checkout (yet)
            runs.append(run_bench(bench, out, quick=args.quick))
            write(out, runs, quick=args.quick)  # so far: a run cut short keeps its table
    table = write(out, runs, quick=args.quick)
    print()
    print(table)
    print(f"table: {out / 'results.md'}, {out / 'results.json'}; logs and raw JSON in {out}")
    return 0 if all(run["exit"] == 0 for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
