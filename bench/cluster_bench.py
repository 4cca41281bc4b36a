"""Cluster bench: messages that cross a route (issue 14 point 8).

Two three-node clusters in the same run, started the same way (node 0 the
seed, the others meet by gossip): three leafnode routers, and three
nats-server nodes. On each, ``bench/loadgen`` (libnats) runs with the
publisher (the requester) on node 0 and the subscriber (the responder) on
node 1, so every message crosses one route:

* cross-node 1:1 pub/sub: messages per second until the subscriber got all;
* cross-node request/reply: latency percentiles and requests per second of
  sequential requests (each crosses the route twice).

The clusters run one after the other (never at once: they would share the
two cores), each repetition alternating; the table gives the medians and
the ratio leafnode / nats-server.

    .venv/bin/python -m bench.cluster_bench            # 5 reps, 10^6 msgs, 20k requests
    .venv/bin/python -m bench.cluster_bench --quick    # 2 reps, 10^5 msgs, 5k requests
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Final

from bench.router_bench import (
    LEAF,
    NATS,
    Row,
    Run,
    Workload,
    _describe,
    _row,
    build_loadgen,
    format_table,
    medians,
    run_loadgen,
)
from tests.support import ClusterNodes

if TYPE_CHECKING:
    from collections.abc import Sequence

# Seconds allowed per loadgen run.
RUN_TIMEOUT_S: Final = 300
KINDS: Final = {NATS: ("nats-server",) * 3, LEAF: ("leafnode",) * 3}


def workloads(*, quick: bool) -> list[Workload]:
    n = 100_000 if quick else 1_000_000
    requests = 5_000 if quick else 20_000
    return [
        Workload("pubsub", "cross-node pubsub 1:1", "pubsub", ("-n", str(n), "-size", "16")),
        Workload("reqrep", "cross-node reqrep", "reqrep", ("-n", str(requests), "-size", "16")),
    ]


def summarise(workload: Workload, meds: dict[str, dict[str, float]]) -> list[Row]:
    if workload.mode == "pubsub":
        return [_row(workload.title, "msgs/s", "msgs_per_sec", meds)]
    return [
        _row(workload.title, "p50 us", "p50_us", meds),
        _row(workload.title, "p99 us", "p99_us", meds),
        _row(workload.title, "req/s", "reqs_per_sec", meds),
    ]


def _cross(workload: Workload, nodes: ClusterNodes) -> Workload:
    """The workload with its subscriber/responder on node 1 (``-s2``)."""
    return Workload(
        workload.key, workload.title, workload.mode, (*workload.args, "-s2", nodes[1].url)
    )


def run(args: argparse.Namespace) -> tuple[dict[str, dict[str, list[Run]]], list[Row]]:
    build_loadgen()
    chosen = [w for w in workloads(quick=args.quick) if not args.only or w.key in args.only]
    runs: dict[str, dict[str, list[Run]]] = {w.key: {NATS: [], LEAF: []} for w in chosen}
    workdir = Path(tempfile.mkdtemp(prefix="leafnode-cluster-bench-"))
    clusters: dict[str, ClusterNodes] = {}
    try:
        for name, kinds in KINDS.items():
            nodes = ClusterNodes.start(kinds, workdir / name.replace(" ", "-"))
            clusters[name] = nodes
            asyncio.run(nodes.wait_meshed())
        for rep in range(args.reps):
            for workload in chosen:
                for name in (NATS, LEAF) if rep % 2 == 0 else (LEAF, NATS):
                    nodes = clusters[name]
                    result = run_loadgen(_cross(workload, nodes), nodes[0].url, args.timeout)
                    runs[workload.key][name].append(result)
                    shown = _describe(result, workload.mode)
                    print(f"  rep {rep + 1} {workload.key:7} {name:12} {shown}", flush=True)
    finally:
        for nodes in clusters.values():
            nodes.kill()
    rows: list[Row] = []
    for workload in chosen:
        meds = {name: medians(results) for name, results in runs[workload.key].items()}
        rows.extend(summarise(workload, meds))
    print()
    print("Cross-node traffic, three-node clusters (publisher on node 0, subscriber on node 1)")
    print(format_table(rows))
    return runs, rows


def headline(rows: Sequence[Row]) -> list[dict[str, object]]:
    """The figures ``bench.run_all`` tabulates (its ``headline`` convention; no targets)."""
    units = {"msgs/s": "msg/s", "p50 us": "us", "p99 us": "us", "req/s": "req/s"}
    return [
        {
            "metric": f"{row.workload}, {row.metric.split()[0]}",
            "unit": units.get(row.metric, ""),
            "leafnode": row.leaf,
            "nats": row.nats,
            "target": "",
            "met": None,
        }
        for row in rows
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10^5 messages, 5000 requests")
    parser.add_argument("--reps", type=int, default=None, help="default 5, 2 with --quick")
    parser.add_argument("--only", default="", help="pubsub,reqrep (default both)")
    parser.add_argument("--timeout", type=int, default=RUN_TIMEOUT_S)
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    args = parser.parse_args(argv)
    args.reps = args.reps or (2 if args.quick else 5)
    args.only = {k for k in args.only.split(",") if k}
    runs, rows = run(args)
    if args.json is not None:
        result = {"runs": runs, "rows": [r.as_json() for r in rows], "headline": headline(rows)}
        args.json.write_text(json.dumps(result, indent=2))
    failed = any("error" in r for by in runs.values() for rs in by.values() for r in rs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
