"""Run every benchmark of every issue and print one table (README "Benchmarks").

Each benchmark runs its workload against a real nats-server in the same run
and prints a table that ends with ratios; this runner starts them one after
another (they would disturb each other's numbers if run together), keeps
their full output in a log directory, and prints every table at the end.

Run: ``.venv/bin/python -m bench.run_all [--quick]``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Sequence

#: (module, what it compares) in the order of the issues that asked for them.
BENCHES: Final = (
    ("router_bench", "router vs nats-server: 1:1, 1:4 fan-out, request/reply"),
    ("uplink_bench", "through the hub: leafnode vs a nats-server leaf"),
    ("store_bench", "durable append into the store (SQLite FULL/NORMAL, PostgreSQL)"),
    ("edge_buffer_bench", "buffering at the edge vs a JetStream stream sourced by the hub"),
    ("replay_bench", "draining a backlog into a hub subscriber"),
    ("site_bench", "memory and start-up time of a whole site vs nats-server"),
    ("conn_bench", "memory per client connection and fan-out to 3,000 clients vs nats-server"),
    ("startup_bench", "exec -> client port accepts, exec -> INFO: leafnode run vs nats-server"),
)


def _table(output: str) -> list[str]:
    """The last table a benchmark printed: from its header line to the end."""
    lines = output.rstrip().splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if "ratio" in lines[i].lower():
            return lines[i:]
    return lines[-12:]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="each benchmark's --quick mode")
    parser.add_argument("--only", help="comma-separated benchmark modules to run")
    args = parser.parse_args(argv)
    logs = Path(tempfile.mkdtemp(prefix="leafnode-bench-"))
    only = set(args.only.split(",")) if args.only else None
    results: list[tuple[str, str, int, list[str]]] = []
    for module, title in BENCHES:
        if only is not None and module not in only:
            continue
        if not (Path(__file__).parent / f"{module}.py").exists():
            results.append((module, title, -1, ["(not present in this checkout)"]))
            continue
        cmd = [sys.executable, "-m", f"bench.{module}", *(["--quick"] if args.quick else [])]
        print(f"== {module}: {title}", flush=True)
        start = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        (logs / f"{module}.log").write_text(proc.stdout + "\n--- stderr\n" + proc.stderr)
        print(f"   done in {time.monotonic() - start:.0f} s, exit {proc.returncode}", flush=True)
        results.append((module, title, proc.returncode, _table(proc.stdout)))
    print()
    for module, title, code, table in results:
        status = "" if code == 0 else f"  (exit {code}; log: {logs / module}.log)"
        print(f"## {module}: {title}{status}")
        for line in table:
            print(f"   {line}")
        print()
    print(f"full outputs: {logs}")
    return 0 if all(code in (0, -1) for _, _, code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
