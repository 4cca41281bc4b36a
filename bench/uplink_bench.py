"""Benchmark the uplink: leafnode vs a nats-server leaf on the same hub.

Run from the repo root::

    .venv/bin/python -m bench.uplink_bench [--quick] [--reps 3] [--json out.json]

One hub (nats-server with a leafnode listener) and two sites attached to it,
started once for the whole run:

* ``nats-server``: a real nats-server leaf (``leafnodes.remotes``);
* ``leafnode``: ``leafnode router`` + ``leafnode uplink`` with the same remote.

Workloads, each measured on both sites with the repetitions interleaved
(A B, B A, ...) so drift on a shared machine hits both alike:

* ``leaf->hub``: a publisher on the site, a subscriber on the hub;
* ``hub->leaf``: a publisher on the hub, a subscriber on the site;
* ``reqrep``: a requester on the site, a responder on the hub, sequential.

The clients are ``bench/loadgen`` (C, on Debian's libnats, as in
``router_bench``), with ``-s2`` putting the subscriber or the responder on the
other server; a Python client would be the bottleneck. Throughput clocks start
at the first publish and stop when the subscriber has every message.
Targets (issue #3): throughput at least 0.3x the nats-server leaf,
request/reply p50 at most 1.5x.

The load average is printed before and after: on a small shared machine,
anything else running shifts the ratios by tens of percent (latency most),
so a run with a high load says little.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from bench.router_bench import LOADGEN, build_loadgen
from tests.support import (
    HubProcess,
    NatsServerProcess,
    RouterProcess,
    UplinkProcess,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

THROUGHPUT_TARGET: Final = 0.3
LATENCY_P50_TARGET: Final = 1.5
NATS: Final = "nats-server"
LEAF: Final = "leafnode"


def _loadgen(mode: str, url: str, url2: str, *args: str) -> dict[str, object]:
    """One ``bench/loadgen`` run (C, libnats): ``url`` publishes, ``url2`` receives."""
    proc = subprocess.run(
        [str(LOADGEN), mode, "-s", url, "-s2", url2, "-timeout", "120", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {}
    if proc.returncode != 0 or "error" in result:
        raise RuntimeError(f"loadgen {mode} failed: {result or proc.stderr[-500:]}")
    assert isinstance(result, dict)
    return result


def throughput(pub_url: str, sub_url: str, n: int, tag: str) -> float:
    """Publisher on one server, subscriber on the other: msgs/s end to end."""
    result = _loadgen(
        "pubsub", pub_url, sub_url, "-n", str(n), "-size", "16", "-subject", f"bench.{tag}"
    )
    return float(result["msgs_per_sec"])  # type: ignore[arg-type]


def reqrep(req_url: str, resp_url: str, n: int, tag: str) -> tuple[float, float]:
    """Requester on one server, responder on the other: p50 and p99 in µs."""
    result = _loadgen(
        "reqrep", req_url, resp_url, "-n", str(n), "-size", "16", "-subject", f"bench.req.{tag}"
    )
    return float(result["p50_us"]), float(result["p99_us"])  # type: ignore[arg-type]


@dataclass
class Sites:
    hub: HubProcess
    nats_leaf: NatsServerProcess
    router: RouterProcess
    uplink: UplinkProcess

    def stop(self) -> None:
        for proc in (self.uplink, self.router, self.nats_leaf, self.hub):
            proc.kill()


def start_sites(workdir: Path) -> Sites:
    hub = HubProcess(workdir=workdir / "hub")
    hub.wait_ready()
    remote = f'leafnodes {{ remotes: [ {{ url: "{hub.leaf_url}" }} ] }}\n'
    nats_leaf = NatsServerProcess(remote, workdir=workdir / "nats-leaf")
    nats_leaf.wait_ready()
    router = RouterProcess(remote, workdir=workdir / "leafnode")
    router.wait_ready()
    uplink = UplinkProcess(
        workdir / "leafnode" / "leaf.conf", router.run_dir, workdir=workdir / "uplink"
    )
    uplink.wait_ready()
    return Sites(hub, nats_leaf, router, uplink)


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.uplink_bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer messages and reps")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 3, quick 2)")
    parser.add_argument("--json", dest="json_path", help="write raw results here")
    args = parser.parse_args(argv)
    n = 100_000 if args.quick else 500_000
    requests = 2_000 if args.quick else 10_000
    reps = args.reps or (2 if args.quick else 3)
    workdir = Path(tempfile.mkdtemp(prefix="uplink-bench-"))
    load_before = os.getloadavg()[0]
    sites = start_sites(workdir)
    build_loadgen()
    urls = {NATS: sites.nats_leaf.url, LEAF: sites.router.url}
    hub_url = sites.hub.url
    raw: dict[str, dict[str, list[float]]] = {
        k: {NATS: [], LEAF: []} for k in ("leaf->hub", "hub->leaf", "p50", "p99")
    }
    try:
        for rep in range(reps):
            order = (NATS, LEAF) if rep % 2 == 0 else (LEAF, NATS)
            for target in order:
                url = urls[target]
                tag = f"{target.replace('-', '')}{rep}"
                raw["leaf->hub"][target].append(throughput(url, hub_url, n, "u" + tag))
                raw["hub->leaf"][target].append(throughput(hub_url, url, n, "d" + tag))
                p50, p99 = reqrep(url, hub_url, requests, tag)
                raw["p50"][target].append(p50)
                raw["p99"][target].append(p99)
                print(f"rep {rep + 1}/{reps} {target}: done", file=sys.stderr)
    finally:
        sites.stop()
    rows: list[tuple[str, str, float, float, float, str, str]] = []
    targets: tuple[tuple[str, str, float | None, bool], ...] = (
        ("leaf->hub", "msgs/s", THROUGHPUT_TARGET, True),
        ("hub->leaf", "msgs/s", THROUGHPUT_TARGET, True),
        ("p50", "µs", LATENCY_P50_TARGET, False),
        ("p99", "µs", None, False),
    )
    for name, unit, goal_ratio, higher_better in targets:
        nats_v, leaf_v = _median(raw[name][NATS]), _median(raw[name][LEAF])
        ratio = leaf_v / nats_v if nats_v else float("nan")
        if goal_ratio is None:
            verdict, goal = "", ""
        elif higher_better:
            verdict, goal = ("PASS" if ratio >= goal_ratio else "SHORT"), f">= {goal_ratio}x"
        else:
            verdict, goal = ("PASS" if ratio <= goal_ratio else "SHORT"), f"<= {goal_ratio}x"
        rows.append((name, unit, nats_v, leaf_v, ratio, goal, verdict))
    print(f"load average (1 min): {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"{'workload':<10} {'unit':<7} {NATS:>12} {LEAF:>12} {'ratio':>7}  target")
    for name, unit, nats_v, leaf_v, ratio, goal, verdict in rows:
        cells = f"{name:<10} {unit:<7} {nats_v:>12,.0f} {leaf_v:>12,.0f} {ratio:>6.3f}x"
        print(f"{cells}  {goal} {verdict}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"n": n, "requests": requests, "raw": raw}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
