"""The in-process micro-benchmarks, pure Python vs the mypyc-compiled hot modules.

Runs ``bench.bench_router_path`` and ``bench.bench_sublist`` alternately on
the pure modules (the editable install) and the compiled ones
(``scripts/compiled``, README "Compiled hot modules"), ``--rounds`` times, and
prints each figure's best per mode and their ratio as a markdown table.

Rates are per second of the process's CPU time, not of the wall clock: the
benchmarks' ``time.perf_counter`` is replaced by ``time.process_time`` (trio
keeps its own clock), so a loaded, shared machine slows both modes' figures
much less than it does wall-clock ones; the load average is printed with
the table. No nats-server is involved: ``router_bench`` gives the end-to-end
ratio, run under ``scripts/compiled`` for the compiled one.

Run: ``.venv/bin/python -m bench.compiled_vs_pure [--rounds N] [--wall]``
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCHES = ("bench_router_path", "bench_sublist")
# A figure line of either benchmark: "local 1:1     16 B:    217.6 k msgs/s (best of 3)",
# "match cached:        18.490 M/s".
_FIGURE = re.compile(r"^(?P<name>[^:]+(?::\d+[^:]*)?):\s+(?P<value>[\d.]+) (?P<unit>[kM])")
_SCALE = {"k": 1e3, "M": 1e6}
# The child: trio first (it binds perf_counter at import), then the swap.
_CHILD = """
import sys, time
import trio  # noqa: F401
import importlib
if sys.argv[1] == "cpu":
    time.perf_counter = time.process_time
importlib.import_module("bench." + sys.argv[2]).main()
"""


def run_once(bench: str, compiled: bool, clock: str) -> dict[str, float]:
    """One run of ``bench``; its figures by name, per second."""
    argv = [sys.executable, "-c", _CHILD, clock, bench]
    if compiled:
        argv = [str(REPO / "scripts" / "compiled"), *argv]
    env = {**os.environ, "PYTHONPATH": str(REPO)} if not compiled else None
    out = subprocess.run(
        argv, cwd=REPO, env=env, capture_output=True, text=True, check=True, timeout=1800
    ).stdout
    figures: dict[str, float] = {}
    for line in out.splitlines():
        found = _FIGURE.match(line)
        if found:
            name = " ".join(found["name"].split())
            figures[f"{bench}: {name}"] = float(found["value"]) * _SCALE[found["unit"]]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--wall", action="store_true", help="wall-clock rates, not CPU time")
    args = parser.parse_args()
    clock = "wall" if args.wall else "cpu"
    subprocess.run([REPO / "scripts" / "compiled"], check=True)  # build once, up front
    best: dict[tuple[str, bool], float] = {}
    loads: list[float] = []
    for _ in range(args.rounds):
        for bench in BENCHES:
            for compiled in (False, True):
                loads.append(os.getloadavg()[0])
                for name, value in run_once(bench, compiled, clock).items():
                    best[name, compiled] = max(best.get((name, compiled), 0.0), value)
    names = list(dict.fromkeys(name for name, _ in best))
    print(f"rates per {clock} second, best of {args.rounds} rounds, pure and compiled alternating;")
    print(f"1-min load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs\n")
    print("| figure | pure | compiled | compiled/pure |")
    print("| --- | ---: | ---: | ---: |")
    for name in names:
        pure, comp = best.get((name, False), 0.0), best.get((name, True), 0.0)
        ratio = f"{comp / pure:.2f}x" if pure else "-"
        print(f"| {name} | {pure / 1e3:,.1f} k/s | {comp / 1e3:,.1f} k/s | {ratio} |")


if __name__ == "__main__":
    main()
