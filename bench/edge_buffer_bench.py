"""Buffering at the edge: the nats-server way (JetStream leaf + sourcing hub) vs leafnode.

Run from the repo root::

    .venv/bin/python -m bench.edge_buffer_bench [--quick] [--size 16] [--json out.json]

Two ways for a site to keep hub-bound messages through a hub outage
(issue 4, Performance), measured on the same machine:

* **nats-server**: a leaf nats-server with JetStream (domain ``leaf``) and a
  file stream ``TELE`` on ``tele.>``; the hub nats-server (JetStream domain
  ``hub``, a ``leafnodes`` listener) has a stream ``HUB_TELE`` that *sources*
  ``TELE`` across the leaf connection through the leaf's domain API prefix
  ``$JS.leaf.API`` (leafnode-protocol.md §4.9; nats docs "JetStream on Leaf
  Nodes").
* **leafnode**: ``leafnode router`` + ``leafnode store`` with
  ``buffer { subjects: ["tele.>"] }``, SQLite with ``sync: full`` and
  ``sync: normal``; ``leafnode uplink`` drains the store to the hub.

Theory of operation. For each system the site starts *without* its hub.

1. **append**: N messages become durable at the site. nats-server:
   ``loadgen jspub`` (async JetStream publishes, 4096 unacknowledged at most;
   the clock stops at the last ack). leafnode: ``loadgen pub`` (core
   publishes on a buffered subject; the clock stops at the final flush's
   PONG, which the router sends only after the commit, DESIGN §4); the
   store's ``stats`` must then show N pending messages.
2. **backlog sync**: the hub starts. The clock starts when the hub reports
   the leaf connection (``/varz`` ``leafnodes``) and stops when the hub has
   the first B and then all N messages: in ``HUB_TELE`` (created at that
   moment) for nats-server, at a core subscriber on the hub (there before
   the link came up, so its interest is the hub's initial interest) for
   leafnode. The full backlog is given ``--sync-cap`` seconds (default 120),
   then its progress is reported instead. If no message reaches the hub
   subscriber within ``PROBE_S`` after the link is up, the uplink has no
   store drain yet and leafnode's sync is reported as n/a.

Ratios are leafnode / nats-server. Caveat: JetStream's file store does not
fsync each write (``sync_interval`` is 2 min by default), so its durability
matches SQLite ``sync: normal`` (committed to the OS), not ``full``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from leafnode.ipc import STORE_SOCKET
from tests.support import (
    LineSocket,
    NatsServerProcess,
    RouterProcess,
    ServiceProcess,
    UplinkProcess,
    free_port,
    ipc_request,
    nats_server_binary,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

BENCH_DIR: Final = Path(__file__).resolve().parent
LOADGEN: Final = BENCH_DIR / "loadgen"
SUBJECT: Final = "tele.site.sensor"
REMOTE: Final = "hub"
# How long the leafnode uplink gets to deliver its first buffered message
# once the link is up before we conclude it has no store drain (yet).
PROBE_S: Final = 10.0
POLL_S: Final = 0.02
READY_S: Final = 30.0


class BenchError(RuntimeError):
    """A step of the benchmark failed (a server, loadgen, or a check)."""


@dataclass
class SyncResult:
    """Backlog sync from link-up: seconds to the first ``checkpoint`` and to all."""

    checkpoint: int
    total: int
    checkpoint_s: float | None = None
    total_s: float | None = None
    synced: int = 0
    from_hub_start_s: float | None = None
    note: str = ""


@dataclass
class SystemResult:
    """One system's numbers."""

    name: str
    append_msgs_per_sec: float | None = None
    append: dict[str, object] = field(default_factory=dict)
    sync: SyncResult | None = None
    note: str = ""


# -- small clients -------------------------------------------------------------------


class NatsConn:
    """A blocking NATS client on a raw socket: JetStream API requests, nothing more."""

    def __init__(self, port: int) -> None:
        self.conn = LineSocket(port, READY_S)
        self.conn.line()  # INFO
        self.conn.sock.sendall(
            b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true}\r\n'
            b"SUB _INBOX.edge.* 1\r\nPING\r\n"
        )
        while self.conn.line() != b"PONG":
            pass
        self.next_id = 0

    def request(self, subject: str, body: dict[str, object]) -> dict[str, object]:
        """One JetStream API request; raises BenchError on an API error."""
        self.next_id += 1
        inbox = b"_INBOX.edge.%d" % self.next_id
        data = json.dumps(body).encode()
        self.conn.sock.sendall(
            b"PUB %s %s %d\r\n%s\r\n" % (subject.encode(), inbox, len(data), data)
        )
        while True:
            line = self.conn.line()
            if line == b"PING":
                self.conn.sock.sendall(b"PONG\r\n")
            elif line.startswith(b"-ERR"):
                raise BenchError(f"{subject}: {line.decode()}")
            elif line.startswith((b"MSG ", b"HMSG ")):
                parts = line.split()
                payload = self.conn.take(int(parts[-1]) + 2)[:-2]
                if parts[1] != inbox:
                    continue
                if line.startswith(b"HMSG "):  # a status: no responders, timeout
                    status = payload[: int(parts[-2])].split(b"\r\n")[0].decode()
                    raise BenchError(f"{subject}: {status}")
                answer: dict[str, object] = json.loads(payload)
                if "error" in answer:
                    raise BenchError(f"{subject}: {answer['error']}")
                return answer

    def stream_msgs(self, name: str) -> int:
        state = self.request(f"$JS.API.STREAM.INFO.{name}", {})["state"]
        assert isinstance(state, dict)
        msgs = state["messages"]
        assert isinstance(msgs, int)
        return msgs

    def close(self) -> None:
        self.conn.close()


class Counter:
    """A core subscriber on ``port`` counting the messages on ``subject`` in a thread."""

    def __init__(self, port: int, subject: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=READY_S)
        self.count = 0
        self.reached: dict[int, float] = {}
        self._marks: list[int] = []
        self._lock = threading.Lock()
        self.sock.sendall(
            b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\n'
            b"SUB %s 1\r\nPING\r\n" % subject.encode()
        )
        data = b""
        while b"PONG\r\n" not in data:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise BenchError("hub closed the subscriber connection")
            data += chunk
        self.sock.settimeout(None)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def mark(self, *counts: int) -> None:
        """Record the time when the count reaches each of ``counts``."""
        with self._lock:
            self._marks = sorted(counts)

    def _run(self) -> None:
        # "MSG " also matches inside "HMSG "; payloads and our headers never
        # contain it. Three bytes carried over catch a marker split in two
        # reads, and can never hold a whole one themselves.
        tail = b""
        try:
            while True:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    return
                data = tail + chunk
                tail = data[-3:]
                if b"PING\r\n" in data:
                    self.sock.sendall(b"PONG\r\n")
                n = data.count(b"MSG ")
                if n:
                    now = time.monotonic()
                    with self._lock:
                        self.count += n
                        while self._marks and self.count >= self._marks[0]:
                            self.reached[self._marks.pop(0)] = now
        except OSError:
            return

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def store_request(run_dir: Path, kind: str, **fields: object) -> dict[str, object]:
    """One request over ``store.sock``; returns the answer's fields."""
    frame = ipc_request(run_dir / STORE_SOCKET, kind, READY_S, **fields)
    if frame.type == "error":
        raise BenchError(f"store {kind}: {frame.fields}")
    return frame.fields


def loadgen(mode: str, port: int, n: int, size: int, timeout_s: int) -> dict[str, object]:
    """Run ``bench/loadgen`` once; its one JSON line, or BenchError."""
    argv = [str(LOADGEN), mode, "-s", f"nats://127.0.0.1:{port}", "-n", str(n)]
    argv += ["-size", str(size), "-subject", SUBJECT, "-timeout", str(timeout_s)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s + 30)
    lines = done.stdout.strip().splitlines()
    result: dict[str, object] = json.loads(lines[-1]) if lines else {"error": done.stderr}
    if done.returncode != 0 or "error" in result:
        raise BenchError(f"loadgen {mode}: {result.get('error')}")
    return result


def _number(fields: dict[str, object], key: str) -> float:
    value = fields.get(key)
    if not isinstance(value, int | float):
        raise BenchError(f"no number {key!r} in {fields}")
    return float(value)


def leaf_count(http_port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/varz", timeout=5) as resp:
        count = json.loads(resp.read()).get("leafnodes", 0)
    return count if isinstance(count, int) else 0


def wait_for(condition: Callable[[], bool], what: str, timeout: float = READY_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(POLL_S)


def hub_config(leaf_port: int, http_port: int, js_dir: Path | None) -> str:
    js = f'jetstream {{ store_dir: "{js_dir}", domain: hub }}\n' if js_dir else ""
    return (
        f"server_name: bench-hub\nhttp: 127.0.0.1:{http_port}\n{js}"
        f"leafnodes {{ listen: 127.0.0.1:{leaf_port} }}\n"
    )


def start(proc: NatsServerProcess) -> NatsServerProcess:
    proc.wait_ready(READY_S)
    return proc


# -- nats-server -------------------------------------------------------------------


def run_nats(work: Path, n: int, checkpoint: int, size: int, cap_s: float) -> SystemResult:
    """Leaf nats-server with a JetStream stream; a hub stream sources it."""
    result = SystemResult("nats-server")
    leaf_port, http_port = free_port(), free_port()
    leaf_conf = (
        f'server_name: bench-leaf\njetstream {{ store_dir: "{work / "leaf-js"}", domain: leaf }}\n'
        f'leafnodes {{ remotes: [ {{ url: "nats-leaf://127.0.0.1:{leaf_port}" }} ] }}\n'
    )
    procs: list[NatsServerProcess] = []
    conns: list[NatsConn] = []
    try:
        leaf = start(NatsServerProcess(leaf_conf, workdir=work / "leaf"))
        procs.append(leaf)
        api = NatsConn(leaf.port)
        conns.append(api)
        api.request(
            "$JS.API.STREAM.CREATE.TELE",
            {"name": "TELE", "subjects": ["tele.>"], "storage": "file"},
        )
        result.append = loadgen("jspub", leaf.port, n, size, timeout_s=int(cap_s) + 600)
        result.append_msgs_per_sec = _number(result.append, "msgs_per_sec")
        if (stored := api.stream_msgs("TELE")) != n:
            raise BenchError(f"leaf stream has {stored} of {n} messages")

        hub_start = time.monotonic()
        hub_conf = hub_config(leaf_port, http_port, work / "hub-js")
        hub = start(NatsServerProcess(hub_conf, workdir=work / "hub"))
        procs.append(hub)
        wait_for(lambda: leaf_count(http_port) >= 1, "the leaf to connect to the hub")
        link_up = time.monotonic()
        hub_api = NatsConn(hub.port)
        conns.append(hub_api)
        source = {"name": "TELE", "external": {"api": "$JS.leaf.API", "deliver": ""}}
        hub_api.request(
            "$JS.API.STREAM.CREATE.HUB_TELE",
            {"name": "HUB_TELE", "storage": "file", "sources": [source]},
        )
        sync = result.sync = SyncResult(checkpoint, n)
        deadline = link_up + cap_s
        while time.monotonic() < deadline:
            sync.synced = hub_api.stream_msgs("HUB_TELE")
            now = time.monotonic()
            if sync.checkpoint_s is None and sync.synced >= checkpoint:
                sync.checkpoint_s = now - link_up
            if sync.synced >= n:
                sync.total_s = now - link_up
                sync.from_hub_start_s = now - hub_start
                break
            time.sleep(POLL_S)
        else:
            sync.note = f"{sync.synced} of {n} synced after {cap_s:.0f}s"
    finally:
        for conn in conns:
            conn.close()
        for proc in reversed(procs):
            proc.kill()
    return result


# -- leafnode ----------------------------------------------------------------------


def run_leafnode(
    work: Path, n: int, checkpoint: int, size: int, cap_s: float, sync_mode: str
) -> SystemResult:
    """Router + store (+ uplink) with ``tele.>`` buffered for the remote ``hub``."""
    result = SystemResult(f"leafnode {sync_mode.upper()}")
    leaf_port, http_port = free_port(), free_port()
    work.mkdir(parents=True, exist_ok=True)
    run_dir = work / "run"
    conf = work / "leaf.conf"
    conf.write_text(
        f'store {{ url: "sqlite:///{work / "buffer.db"}", sync: {sync_mode} }}\n'
        "leafnodes { remotes: [ {\n"
        f'  name: {REMOTE}, url: "nats-leaf://127.0.0.1:{leaf_port}",\n'
        '  buffer { subjects: ["tele.>"] }\n} ] }\n'
    )
    procs: list[NatsServerProcess | RouterProcess | ServiceProcess | UplinkProcess] = []
    counter: Counter | None = None
    try:
        store = ServiceProcess("store", conf, run_dir, workdir=work / "store")
        procs.append(store)
        store.wait_socket(STORE_SOCKET, timeout=READY_S)
        router = RouterProcess(
            conf.read_text(), workdir=work / "router", extra_args=("--run-dir", str(run_dir))
        )
        procs.append(router)
        router.wait_ready(READY_S)
        result.append = loadgen("pub", router.port, n, size, timeout_s=int(cap_s) + 600)
        result.append_msgs_per_sec = _number(result.append, "msgs_per_sec")
        stats = store_request(run_dir, "stats")
        remotes = stats["remotes"]
        assert isinstance(remotes, dict)
        pending = remotes.get(REMOTE, {}).get("msgs", 0)
        result.append["store_pending"] = pending
        if pending != n:
            raise BenchError(f"store has {pending} of {n} messages after the flush: {stats}")

        hub_start = time.monotonic()
        hub = start(NatsServerProcess(hub_config(leaf_port, http_port, None), workdir=work / "hub"))
        procs.append(hub)
        counter = Counter(hub.port, "tele.>")
        counter.mark(1, checkpoint, n)
        uplink = UplinkProcess(conf, run_dir, workdir=work / "uplink")
        procs.append(uplink)
        sync = result.sync = SyncResult(checkpoint, n)
        try:
            _drain(uplink, http_port, counter, sync, hub_start, cap_s)
        except BenchError as exc:
            # The uplink is work in progress: its failure is a result, not a
            # reason to throw away the append numbers.
            sync.note = str(exc)
    finally:
        if counter is not None:
            counter.close()
        for proc in reversed(procs):
            proc.kill()
    return result


def _drain(
    uplink: UplinkProcess,
    http_port: int,
    counter: Counter,
    sync: SyncResult,
    hub_start: float,
    cap_s: float,
) -> None:
    """Wait for the uplink to connect, then for the hub subscriber to get the backlog."""

    def connected() -> bool:
        if uplink.proc.poll() is not None:
            last = uplink.log_text().strip().splitlines()[-1:] or ["(no output)"]
            raise BenchError(f"uplink exited with {uplink.proc.returncode}: {last[0][:160]}")
        return leaf_count(http_port) >= 1

    wait_for(connected, "the uplink to connect to the hub")
    link_up = time.monotonic()
    deadline = link_up + cap_s
    n = sync.total
    while time.monotonic() < deadline and n not in counter.reached:
        if 1 not in counter.reached and time.monotonic() > link_up + PROBE_S:
            sync.note = f"nothing reached the hub in {PROBE_S:.0f}s: no store drain yet"
            break
        time.sleep(POLL_S)
    sync.synced = counter.count
    if sync.checkpoint in counter.reached:
        sync.checkpoint_s = counter.reached[sync.checkpoint] - link_up
    if n in counter.reached:
        sync.total_s = counter.reached[n] - link_up
        sync.from_hub_start_s = counter.reached[n] - hub_start
    elif not sync.note:
        sync.note = f"{sync.synced} of {n} synced after {cap_s:.0f}s"


# -- report ------------------------------------------------------------------------


def _rate(count: int, seconds: float | None) -> float | None:
    return count / seconds if seconds else None


def table(results: Sequence[SystemResult]) -> list[tuple[str, list[float | None]]]:
    """Rows of (label, value per system); sync rows in msgs/s from link-up."""
    rows: list[tuple[str, list[float | None]]] = [
        ("append msgs/s", [r.append_msgs_per_sec for r in results])
    ]
    first = results[0].sync
    if first is not None:
        cp, total = first.checkpoint, first.total
        rows.append(
            (
                f"sync first {cp:,} msgs/s",
                [_rate(cp, r.sync.checkpoint_s if r.sync else None) for r in results],
            )
        )
        rows.append(
            (
                f"sync all {total:,} msgs/s",
                [_rate(total, r.sync.total_s if r.sync else None) for r in results],
            )
        )
        rows.append(("sync all: seconds", [r.sync.total_s if r.sync else None for r in results]))
        rows.append(
            (
                "hub start to synced: s",
                [r.sync.from_hub_start_s if r.sync else None for r in results],
            )
        )
    return rows


def print_table(results: Sequence[SystemResult], size: int) -> None:
    base = results[0]
    head = f"{'':<26}{base.name:>14}"
    for r in results[1:]:
        head += f"{r.name:>18}{'ratio':>8}"
    print(f"\nedge buffering, {size} B payloads; ratio = leafnode / nats-server")
    print(head)
    for label, values in table(results):
        ref = values[0]
        line = f"{label:<26}{_fmt(ref):>14}"
        for v in values[1:]:
            ratio = f"{v / ref:.2f}x" if v is not None and ref else "n/a"
            line += f"{_fmt(v):>18}{ratio:>8}"
        print(line)
    for r in results:
        if r.sync is not None and r.sync.note:
            print(f"  {r.name}: {r.sync.note}")
        if r.note:
            print(f"  {r.name}: {r.note}")
    print(
        "  nats-server append = JetStream async publish acks (file store, no fsync per write);"
        "\n  leafnode append = publish + flush, PONG after commit; sync clocks start at link-up."
    )


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.2f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.edge_buffer_bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2x10^4 messages")
    parser.add_argument("-n", type=int, help="messages appended (default 10^6, quick 2x10^4)")
    parser.add_argument("--checkpoint", type=int, help="sync checkpoint (default 10^5, quick 10^4)")
    parser.add_argument("--size", type=int, default=16, help="payload bytes (default 16)")
    parser.add_argument("--sync-cap", type=float, default=120.0, help="seconds for a full sync")
    parser.add_argument("--only", default="nats,full,normal", help="systems: nats,full,normal")
    parser.add_argument("--json", dest="json_path", help="write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    args = parser.parse_args(argv)
    n = args.n or (20_000 if args.quick else 1_000_000)
    checkpoint = min(args.checkpoint or (10_000 if args.quick else 100_000), n)
    only = set(args.only.split(","))
    if unknown := only - {"nats", "full", "normal"}:
        parser.error(
            f"--only: unknown system(s) {', '.join(sorted(unknown))}; choose from nats,full,normal"
        )
    if subprocess.run(["bash", str(BENCH_DIR / "build.sh")], check=False).returncode:
        return 1
    work = Path(tempfile.mkdtemp(prefix="edge-buffer-bench-"))
    results: list[SystemResult] = []
    status = 0
    try:
        common = (n, checkpoint, args.size, args.sync_cap)
        runs: list[tuple[str, Callable[[], SystemResult]]] = [
            ("nats", functools.partial(run_nats, work / "nats", *common)),
            ("full", functools.partial(run_leafnode, work / "full", *common, "full")),
            ("normal", functools.partial(run_leafnode, work / "normal", *common, "normal")),
        ]
        for key, run in runs:
            if key not in only:
                continue
            print(f"running {key} (n={n:,}, {args.size} B) ...", file=sys.stderr)
            try:
                results.append(run())
            except (BenchError, OSError, subprocess.SubprocessError) as exc:
                print(f"{key}: FAILED: {exc}", file=sys.stderr)
                results.append(SystemResult(key, note=f"failed: {str(exc)[:200]}"))
                status = 1
    finally:
        if args.keep:
            print(f"work dir kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if results:
        print_table(results, args.size)
    if args.json_path:
        doc = {
            "n": n,
            "checkpoint": checkpoint,
            "size": args.size,
            "nats_server": nats_server_binary(),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "results": [asdict(r) for r in results],
        }
        Path(args.json_path).write_text(json.dumps(doc, indent=2))
    return status


if __name__ == "__main__":
    sys.exit(main())
