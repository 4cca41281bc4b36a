"""Benchmark the leafnode router against a real nats-server.

Run from the repo root::

    .venv/bin/python -m bench.router_bench [--reps 5] [--quick] [--json out.json]

Theory of operation: every workload is driven by ``bench/loadgen`` (C, on
libnats) so the client is never the bottleneck. For each workload both
servers are started fresh, then the repetitions are *interleaved*
(A B, B A, A B, ...) so that drift on a shared machine (other processes,
thermal state) hits both servers alike; medians over the repetitions are
compared. A server that dies mid-workload is restarted before its next
repetition and the failed repetition is recorded as an error.

The targets come from the performance issue: 1:1 throughput at least 0.25x
nats-server, request/reply p50 latency at most 1.5x nats-server.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from bench._servers import (
    RunningServer,
    ServerStartError,
    leafnode_router_argv,
    nats_server_argv,
    parse_command_template,
    start_server,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

BENCH_DIR: Final = Path(__file__).resolve().parent
LOADGEN: Final = BENCH_DIR / "loadgen"
BUILD_SCRIPT: Final = BENCH_DIR / "build.sh"

NATS: Final = "nats-server"
LEAF: Final = "leafnode"

#: Targets from the issue, as ratios leafnode / nats-server.
THROUGHPUT_TARGET: Final = 0.25
LATENCY_P50_TARGET: Final = 1.5

#: loadgen's own deadline per run; the subprocess gets this plus a margin so
#: a wedged loadgen is still killed.
RUN_TIMEOUT_S: Final = 120
SUBPROCESS_MARGIN_S: Final = 30

Run = dict[str, object]


@dataclass(frozen=True)
class Workload:
    """One loadgen invocation, run against both servers.

    Attributes:
        key: Short identifier used by ``--only`` and in the JSON.
        title: Human-readable name for the table.
        mode: loadgen subcommand (``pubsub`` or ``reqrep``).
        args: Extra loadgen arguments.
    """

    key: str
    title: str
    mode: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class Row:
    """One line of the result table."""

    workload: str
    metric: str
    nats: float | None
    leaf: float | None
    ratio: float | None
    target: str
    verdict: str

    def as_json(self) -> dict[str, object]:
        """Return the row as a JSON-ready dict."""
        return {
            "workload": self.workload,
            "metric": self.metric,
            NATS: self.nats,
            LEAF: self.leaf,
            "ratio": self.ratio,
            "target": self.target,
            "verdict": self.verdict,
        }


def workloads(*, quick: bool) -> list[Workload]:
    """Return the workloads, smaller ones when ``quick``.

    Args:
        quick: Use 10^5 messages and 5000 requests instead of 10^6 and 20000.
    """
    n = 100_000 if quick else 1_000_000
    requests = 5_000 if quick else 20_000
    return [
        Workload("pubsub", "pubsub 1:1", "pubsub", ("-n", str(n), "-size", "16", "-subs", "1")),
        Workload("fanout", "fan-out 1:4", "pubsub", ("-n", str(n), "-size", "16", "-subs", "4")),
        Workload("reqrep", "reqrep", "reqrep", ("-n", str(requests), "-size", "16")),
    ]


def build_loadgen() -> None:
    """Build ``bench/loadgen`` (a no-op when it is up to date).

    Raises:
        subprocess.CalledProcessError: The build failed.
    """
    subprocess.run(["bash", str(BUILD_SCRIPT)], check=True)


def run_loadgen(workload: Workload, url: str, timeout_s: int) -> Run:
    """Run one repetition and return loadgen's JSON result.

    Error handling: never raises for a failed run; the result then has an
    ``error`` field, which the caller records and leaves out of the medians.
    """
    argv = [str(LOADGEN), workload.mode, "-s", url, *workload.args, "-timeout", str(timeout_s)]
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout_s + SUBPROCESS_MARGIN_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"loadgen killed after {timeout_s + SUBPROCESS_MARGIN_S} s"}
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    result: Run
    try:
        parsed: object = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        result = {str(k): v for k, v in parsed.items()}
    else:
        result = {"error": f"no JSON from loadgen: {proc.stdout[-500:]!r}"}
    if proc.returncode != 0 and "error" not in result:
        result["error"] = f"loadgen exited {proc.returncode}: {proc.stderr[-500:]}"
    return result


def _number(run: Mapping[str, object], key: str) -> float | None:
    value = run.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def medians(runs: Sequence[Run]) -> dict[str, float]:
    """Return the median of every numeric field over the successful runs."""
    ok = [run for run in runs if "error" not in run]
    keys = sorted(
        {key for run in ok for key, value in run.items() if _number(run, key) is not None}
    )
    out: dict[str, float] = {}
    for key in keys:
        values = [v for run in ok if (v := _number(run, key)) is not None]
        out[key] = statistics.median(values)
    return out


def _describe(run: Run, mode: str) -> str:
    if "error" in run:
        return f"ERROR {str(run['error']).splitlines()[0]}"
    if mode == "reqrep":
        return f"p50 {run.get('p50_us')} us, p99 {run.get('p99_us')} us"
    rate = _number(run, "msgs_per_sec") or 0.0
    return f"{rate / 1e3:,.1f} k msgs/s"


class Target:
    """A server under test, restarted on demand if it dies.

    A server that fails to start is marked broken and not retried for the
    rest of the workload: each retry would just fail the same way.
    """

    def __init__(self, name: str, template: Sequence[str]) -> None:
        """Remember how to start the server; nothing runs yet."""
        self.name = name
        self.template = list(template)
        self.server: RunningServer | None = None
        self.start_error: str | None = None
        self.restarts = 0

    def ensure_running(self) -> RunningServer | None:
        """Return the running server, starting (or restarting) it as needed.

        Returns:
            The server, or ``None`` when it cannot be started (see
            ``start_error``).
        """
        if self.start_error is not None:
            return None
        if self.server is not None and self.server.alive():
            return self.server
        if self.server is not None:
            print(f"  {self.name} died; output:\n{self.server.log_tail()}", file=sys.stderr)
            self.server.stop()
            self.server = None
            self.restarts += 1
        try:
            self.server = start_server(self.name, self.template)
        except ServerStartError as exc:
            self.start_error = f"server start failed: {exc}"
            print(self.start_error, file=sys.stderr)
            return None
        return self.server

    def stop(self) -> None:
        """Stop the server if it runs."""
        if self.server is not None:
            self.server.stop()
            self.server = None


def run_workload(
    workload: Workload, templates: Mapping[str, Sequence[str]], reps: int, timeout_s: int
) -> dict[str, list[Run]]:
    """Run ``reps`` interleaved repetitions of one workload on fresh servers.

    Returns:
        Per target name, the loadgen results in repetition order.
    """
    targets = [Target(name, template) for name, template in templates.items()]
    runs: dict[str, list[Run]] = {t.name: [] for t in targets}
    try:
        for target in targets:
            target.ensure_running()
        for rep in range(reps):
            # ABBA order: neither server always runs right after the other.
            order = targets if rep % 2 == 0 else targets[::-1]
            for target in order:
                server = target.ensure_running()
                if server is None:
                    result: Run = {"error": target.start_error}
                else:
                    result = run_loadgen(workload, server.url, timeout_s)
                    if not server.alive():
                        result.setdefault("error", "server exited during the run")
                        result["server_exited"] = True
                runs[target.name].append(result)
                print(
                    f"[{workload.title}] rep {rep + 1}/{reps} {target.name}: "
                    f"{_describe(result, workload.mode)}",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        for target in targets:
            target.stop()
    return runs


def _ratio(nats: float | None, leaf: float | None) -> float | None:
    if nats is None or leaf is None or nats == 0:
        return None
    return leaf / nats


def _row(
    workload: str,
    metric: str,
    key: str,
    meds: Mapping[str, Mapping[str, float]],
    target: tuple[str, float] | None = None,
) -> Row:
    nats = meds[NATS].get(key)
    leaf = meds[LEAF].get(key)
    ratio = _ratio(nats, leaf)
    if target is None:
        return Row(workload, metric, nats, leaf, ratio, "", "")
    op, bound = target
    if ratio is None:
        verdict = "ERROR"
    elif op == ">=":
        verdict = "PASS" if ratio >= bound else "SHORT"
    else:
        verdict = "PASS" if ratio <= bound else "SHORT"
    return Row(workload, metric, nats, leaf, ratio, f"{op} {bound:g}x", verdict)


def summarise(workload: Workload, meds: Mapping[str, Mapping[str, float]]) -> list[Row]:
    """Turn one workload's medians into table rows, with targets where the issue sets one."""
    if workload.key == "pubsub":
        return [_row(workload.title, "msgs/s", "msgs_per_sec", meds, (">=", THROUGHPUT_TARGET))]
    if workload.mode == "pubsub":
        return [_row(workload.title, "msgs/s per sub", "msgs_per_sec", meds)]
    return [
        _row(workload.title, "p50 us", "p50_us", meds, ("<=", LATENCY_P50_TARGET)),
        _row(workload.title, "p99 us", "p99_us", meds),
        _row(workload.title, "req/s", "reqs_per_sec", meds),
    ]


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value >= 1e5:
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def format_table(rows: Sequence[Row]) -> str:
    """Render rows as a fixed-width text table."""
    header = ("workload", "metric", f"{NATS} median", f"{LEAF} median", "ratio", "target", "")
    body = [
        (
            r.workload,
            r.metric,
            _fmt(r.nats),
            _fmt(r.leaf),
            "n/a" if r.ratio is None else f"{r.ratio:.3f}x",
            r.target,
            r.verdict,
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = []
    for line in [header, *body]:
        cells = [
            cell.ljust(w) if i < 2 or i >= 5 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.router_bench",
        description="Compare the leafnode router with nats-server (throughput and latency).",
    )
    parser.add_argument(
        "--reps", type=int, default=None, help="repetitions per server (default 5, 2 with --quick)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="10^5 messages and 5000 requests instead of 10^6/20k"
    )
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write results")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated subset of workloads: pubsub,fanout,reqrep (default all)",
    )
    parser.add_argument(
        "--timeout", type=int, default=RUN_TIMEOUT_S, help="seconds allowed per loadgen run"
    )
    # Hidden: swap either server for another command, e.g. to validate the
    # pipeline nats-server vs nats-server before the router exists.
    parser.add_argument("--nats-cmd", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--leafnode-cmd", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.reps is None:
        args.reps = 2 if args.quick else 5
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark suite.

    Returns:
        0 when every repetition produced a result (whatever the verdicts),
        1 when any repetition failed or the loadgen could not be built.
    """
    args = parse_args(argv)
    try:
        templates: dict[str, list[str]] = {
            NATS: parse_command_template(args.nats_cmd) if args.nats_cmd else nats_server_argv(),
            LEAF: (
                parse_command_template(args.leafnode_cmd)
                if args.leafnode_cmd
                else leafnode_router_argv()
            ),
        }
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        build_loadgen()
    except subprocess.CalledProcessError:
        print("error: building bench/loadgen failed (is libnats-dev installed?)", file=sys.stderr)
        return 1

    selected = workloads(quick=args.quick)
    if args.only:
        keys = {k.strip() for k in args.only.split(",") if k.strip()}
        unknown = keys - {w.key for w in selected}
        if unknown:
            print(f"error: unknown workload(s): {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        selected = [w for w in selected if w.key in keys]

    for name, template in templates.items():
        print(f"{name}: {shlex.join(template)}", file=sys.stderr)

    rows: list[Row] = []
    report: list[dict[str, object]] = []
    failures = 0
    for workload in selected:
        runs = run_workload(workload, templates, args.reps, args.timeout)
        meds = {name: medians(results) for name, results in runs.items()}
        failures += sum("error" in run for results in runs.values() for run in results)
        rows.extend(summarise(workload, meds))
        report.append(
            {
                "key": workload.key,
                "title": workload.title,
                "mode": workload.mode,
                "args": list(workload.args),
                "runs": runs,
                "medians": meds,
            }
        )

    print(format_table(rows))
    if failures:
        print(f"{failures} repetition(s) failed; see the log above", file=sys.stderr)

    if args.json is not None:
        doc: dict[str, object] = {
            "quick": args.quick,
            "reps": args.reps,
            "servers": {name: shlex.join(t) for name, t in templates.items()},
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "targets": {
                "pubsub_throughput_ratio_min": THROUGHPUT_TARGET,
                "reqrep_p50_ratio_max": LATENCY_P50_TARGET,
            },
            "workloads": report,
            "summary": [r.as_json() for r in rows],
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
