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

CPU per message. For each leafnode site the CPU time its router and its
uplink used during each workload (``/proc/<pid>/task/*/schedstat``: time on
a CPU, in ns, every thread) is divided by the messages (requests for
``reqrep``): unlike the wall-clock rates, this hardly moves when the machine
is busy, so it is what to compare between two versions of the code.

A/B runs. ``--python LABEL=PATH`` (repeatable) adds another leafnode site
run by that interpreter, e.g. another worktree's venv, whose editable
install is that worktree's code; the repetitions rotate over every site, so
two versions are compared in the same time window::

    git worktree add /work/wt/base <commit> && (cd /work/wt/base && scripts/setup --test)
    .venv/bin/python -m bench.uplink_bench --quick --python base=/work/wt/base/.venv/bin/python

The load average is printed before and after: on a small shared machine,
anything else running shifts the ratios by tens of percent (latency most),
so a run with a high load says little.
"""

from __future__ import annotations

import argparse
import glob
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


def cpu_ns(pid: int) -> int:
    """Time on a CPU of every thread of ``pid`` so far, in ns (0 once it is gone)."""
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path, encoding="ascii") as fh:
                total += int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


@dataclass
class LeafSite:
    """``leafnode router`` + ``leafnode uplink``, run by one interpreter."""

    router: RouterProcess
    uplink: UplinkProcess

    @property
    def url(self) -> str:
        return self.router.url

    def cpu(self) -> tuple[int, int]:
        return cpu_ns(self.router.proc.pid), cpu_ns(self.uplink.proc.pid)

    def stop(self) -> None:
        self.uplink.kill()
        self.router.kill()


@dataclass
class Sites:
    hub: HubProcess
    nats_leaf: NatsServerProcess
    leafs: dict[str, LeafSite]

    def stop(self) -> None:
        for leaf in self.leafs.values():
            leaf.stop()
        self.nats_leaf.kill()
        self.hub.kill()


def start_sites(workdir: Path, pythons: dict[str, str | None]) -> Sites:
    """The hub, a nats-server leaf, and one leafnode site per interpreter."""
    hub = HubProcess(workdir=workdir / "hub")
    hub.wait_ready()
    remote = f'leafnodes {{ remotes: [ {{ url: "{hub.leaf_url}" }} ] }}\n'
    nats_leaf = NatsServerProcess(remote, workdir=workdir / "nats-leaf")
    nats_leaf.wait_ready()
    sites = Sites(hub, nats_leaf, {})
    for label, python in pythons.items():
        site_dir = workdir / label
        router = RouterProcess(remote, workdir=site_dir, python=python)
        router.wait_ready()
        uplink = UplinkProcess(
            site_dir / "leaf.conf", router.run_dir, workdir=site_dir / "uplink", python=python
        )
        uplink.wait_ready()
        sites.leafs[label] = LeafSite(router, uplink)
    return sites


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


WORKLOADS: Final = ("leaf->hub", "hub->leaf", "reqrep")


def _parse_pythons(specs: Sequence[str]) -> dict[str, str | None]:
    pythons: dict[str, str | None] = {LEAF: None}
    for spec in specs:
        label, sep, path = spec.partition("=")
        if not sep or not label or not path or label in (LEAF, NATS):
            raise SystemExit(f"--python wants LABEL=PATH (LABEL not {LEAF!r}), got {spec!r}")
        pythons[label] = path
    return pythons


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.uplink_bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer messages and reps")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 3, quick 2)")
    parser.add_argument("-n", type=int, default=None, help="messages per throughput run")
    parser.add_argument(
        "--only", default=",".join(WORKLOADS), help=f"comma-separated subset of {WORKLOADS}"
    )
    parser.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="another leafnode site run by this interpreter (A/B; repeatable)",
    )
    parser.add_argument("--json", dest="json_path", help="write raw results here")
    args = parser.parse_args(argv)
    only = [w for w in args.only.split(",") if w]
    if not only or any(w not in WORKLOADS for w in only):
        parser.error(f"--only takes {','.join(WORKLOADS)}")
    pythons = _parse_pythons(args.python)
    n = args.n or (100_000 if args.quick else 500_000)
    requests = 2_000 if args.quick else 10_000
    reps = args.reps or (2 if args.quick else 3)
    workdir = Path(tempfile.mkdtemp(prefix="uplink-bench-"))
    load_before = os.getloadavg()[0]
    sites = start_sites(workdir, pythons)
    build_loadgen()
    urls = {NATS: sites.nats_leaf.url, **{k: v.url for k, v in sites.leafs.items()}}
    names = list(urls)
    hub_url = sites.hub.url
    raw: dict[str, dict[str, list[float]]] = {
        k: {t: [] for t in names} for k in ("leaf->hub", "hub->leaf", "p50", "p99")
    }
    # label -> "workload router|uplink" -> µs per message, per repetition.
    cpu: dict[str, dict[str, list[float]]] = {label: {} for label in sites.leafs}

    def run_one(target: str, workload: str, rep: int) -> None:
        """One workload on one site; the site's CPU per message alongside."""
        url = urls[target]
        tag = f"{target.replace('-', '')}{rep}"
        leaf = sites.leafs.get(target)
        before = leaf.cpu() if leaf is not None else (0, 0)
        count = n
        if workload == "leaf->hub":
            raw[workload][target].append(throughput(url, hub_url, n, "u" + tag))
        elif workload == "hub->leaf":
            raw[workload][target].append(throughput(hub_url, url, n, "d" + tag))
        else:
            count = requests
            p50, p99 = reqrep(url, hub_url, requests, tag)
            raw["p50"][target].append(p50)
            raw["p99"][target].append(p99)
        if leaf is not None:
            after = leaf.cpu()
            for side, b, a in zip(("router", "uplink"), before, after, strict=True):
                cpu[target].setdefault(f"{workload} {side}", []).append((a - b) / 1e3 / count)

    try:
        for rep in range(reps):
            # Rotate, and reverse every other rep: drift hits every site alike.
            order = names[rep % len(names) :] + names[: rep % len(names)]
            if rep % 2:
                order.reverse()
            for target in order:
                for workload in only:
                    run_one(target, workload, rep)
                print(f"rep {rep + 1}/{reps} {target}: done", file=sys.stderr)
    finally:
        sites.stop()
    print(f"load average (1 min): {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print("CPU µs per message (reqrep: per request), median:")
    for label, figures in cpu.items():
        cells = "  ".join(f"{key} {_median(values):.2f}" for key, values in figures.items())
        print(f"  {label:<12} {cells}")
    targets: tuple[tuple[str, str, float | None, bool], ...] = (
        ("leaf->hub", "msgs/s", THROUGHPUT_TARGET, True),
        ("hub->leaf", "msgs/s", THROUGHPUT_TARGET, True),
        ("p50", "µs", LATENCY_P50_TARGET, False),
        ("p99", "µs", None, False),
    )
    leaf_labels = list(sites.leafs)
    header = f"{'workload':<10} {'unit':<7} {NATS:>12}"
    for label in leaf_labels:
        header += f" {label:>12} {'ratio':>7}"
    print(header + "  target")
    for name, unit, goal_ratio, higher_better in targets:
        if not raw[name][NATS]:
            continue
        nats_v = _median(raw[name][NATS])
        cells = f"{name:<10} {unit:<7} {nats_v:>12,.0f}"
        verdict = goal = ""
        for label in leaf_labels:
            leaf_v = _median(raw[name][label])
            ratio = leaf_v / nats_v if nats_v else float("nan")
            cells += f" {leaf_v:>12,.0f} {ratio:>6.3f}x"
            if label != LEAF or goal_ratio is None:
                continue
            if higher_better:
                verdict, goal = ("PASS" if ratio >= goal_ratio else "SHORT"), f">= {goal_ratio}x"
            else:
                verdict, goal = ("PASS" if ratio <= goal_ratio else "SHORT"), f"<= {goal_ratio}x"
        print(f"{cells}  {goal} {verdict}")
    if args.json_path:
        Path(args.json_path).write_text(
            json.dumps({"n": n, "requests": requests, "raw": raw, "cpu_us_per_msg": cpu})
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
