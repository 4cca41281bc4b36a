"""Start-up: exec -> client port accepts, exec -> INFO, leafnode run vs nats-server.

Client libraries' test harnesses start the server and connect at once; a
refused connection fails them (issue 12). For each server, ``--reps`` times
(default 10): note the time, exec ``SERVER -p PORT``, try to connect to
``127.0.0.1:PORT`` every millisecond until the connection is accepted, then
read until ``INFO`` arrives; stop the server (SIGTERM) before the next start.
Prints the median of each figure, nats-server's in the same run, and the
ratio. Targets (issue 12): accept <= 50 ms, INFO <= 300 ms.

Run:
    .venv/bin/python -m bench.startup_bench             # 10 starts each
    .venv/bin/python -m bench.startup_bench --quick     # 3 starts each
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final

from tests.support import free_port, nats_server_binary

if TYPE_CHECKING:
    from collections.abc import Sequence

TARGET_ACCEPT_MS: Final = 50.0
TARGET_INFO_MS: Final = 300.0
# A start that takes longer than this is broken, not slow.
START_TIMEOUT_S: Final = 30.0
RETRY_S: Final = 0.001


def _leafnode_argv() -> list[str]:
    script = Path(sys.executable).with_name("leafnode")
    return [str(script), "run"] if script.exists() else [sys.executable, "-m", "leafnode", "run"]


def time_start(argv: Sequence[str], port: int, log: Path) -> tuple[float, float]:
    """One start of ``argv -p port``: (ms until a connect is accepted, ms until INFO)."""
    with log.open("ab") as out:
        started = time.monotonic()
        proc = subprocess.Popen([*argv, "-p", str(port)], stdout=out, stderr=out)
    try:
        deadline = started + START_TIMEOUT_S
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=START_TIMEOUT_S)
                break
            except ConnectionRefusedError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{argv[0]} never accepted; see {log}") from None
                time.sleep(RETRY_S)
        accepted = time.monotonic()
        with sock:
            data = b""
            while not data.startswith(b"INFO "):
                chunk = sock.recv(4096)
                if not chunk:
                    raise RuntimeError(f"{argv[0]} closed before INFO; see {log}")
                data += chunk
        info = time.monotonic()
        return (accepted - started) * 1000, (info - started) * 1000
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def measure(argv: Sequence[str], reps: int, log: Path) -> dict[str, float]:
    accepts: list[float] = []
    infos: list[float] = []
    for _ in range(reps):
        accept_ms, info_ms = time_start(argv, free_port(), log)
        accepts.append(accept_ms)
        infos.append(info_ms)
    return {
        "accept_ms": statistics.median(accepts),
        "info_ms": statistics.median(infos),
        "accept_max_ms": max(accepts),
        "info_max_ms": max(infos),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.startup_bench", description=__doc__)
    parser.add_argument("--reps", type=int, default=10, help="starts per server (default 10)")
    parser.add_argument("--quick", action="store_true", help="3 starts per server")
    parser.add_argument("--json", metavar="PATH", help="write the raw figures here")
    args = parser.parse_args(argv)
    reps = 3 if args.quick else args.reps
    workdir = Path(tempfile.mkdtemp(prefix="leafnode-startup-bench-"))
    os.chdir(workdir)  # leafnode run keeps nothing here (a private run dir)
    servers = {
        "nats-server": [nats_server_binary()],
        "leafnode run": _leafnode_argv(),
    }
    results: dict[str, dict[str, float]] = {}
    for name, server_argv in servers.items():
        print(f"timing {reps} starts of {name} ...", flush=True)
        results[name] = measure(server_argv, reps, workdir / f"{name.replace(' ', '-')}.log")
    nats, leaf = results["nats-server"], results["leafnode run"]
    print()
    print(f"start-up, median of {reps} starts (worst in brackets)")
    header = ("figure", "nats-server", "leafnode run", "ratio", "target", "met")
    print("{:<16}{:>18}{:>20}{:>8}{:>12}{:>5}".format(*header))
    for figure, key, target in (
        ("exec -> accept", "accept", TARGET_ACCEPT_MS),
        ("exec -> INFO", "info", TARGET_INFO_MS),
    ):
        ours, theirs = leaf[f"{key}_ms"], nats[f"{key}_ms"]
        nats_cell = f"{theirs:.1f} ({nats[f'{key}_max_ms']:.0f}) ms"
        leaf_cell = f"{ours:.1f} ({leaf[f'{key}_max_ms']:.0f}) ms"
        print(
            f"{figure:<16}{nats_cell:>18}{leaf_cell:>20}{ours / theirs:>7.1f}x"
            f"{f'<= {target:g} ms':>12}{'yes' if ours <= target else 'no':>5}"
        )
    if args.json:
        doc = {"reps": reps, "results": results, "headline": headline(nats, leaf)}
        Path(args.json).write_text(json.dumps(doc, indent=2))
    return 0


def headline(nats: dict[str, float], leaf: dict[str, float]) -> list[dict[str, object]]:
    """The figures ``bench.run_all`` tabulates (its ``headline`` convention)."""
    return [
        {
            "metric": f"exec -> {what} (leafnode run -p PORT), median",
            "unit": "ms",
            "leafnode": round(leaf[f"{key}_ms"], 1),
            "nats": round(nats[f"{key}_ms"], 1),
            "target": f"<= {target:g} ms",
            "met": leaf[f"{key}_ms"] <= target,
        }
        for what, key, target in (
            ("client port accepts", "accept", TARGET_ACCEPT_MS),
            ("INFO", "info", TARGET_INFO_MS),
        )
    ]


if __name__ == "__main__":
    sys.exit(main())
