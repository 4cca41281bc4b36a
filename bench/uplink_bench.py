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

The clients are raw sockets, not a client library: the publisher sends
pre-encoded ``PUB`` batches, the subscriber counts ``MSG`` lines with
``bytes.count`` (C speed), so neither is the bottleneck of a Python server.
Throughput clocks start at the first publish and stop when the subscriber has
every message. Targets (issue #3): throughput at least 0.3x the nats-server
leaf, request/reply p50 at most 1.5x.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from leafnode.testing import (
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
PAYLOAD: Final = b"x" * 16
BATCH: Final = 1000
READY_TIMEOUT_S: Final = 20.0


class RawClient:
    """A blocking NATS client on a raw socket: just enough for the benchmark."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=READY_TIMEOUT_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.read_line()  # INFO
        self.send(b'CONNECT {"verbose":false,"pedantic":false,"headers":false}\r\n')
        self.flush()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def read_exact(self, size: int) -> bytes:
        while len(self.buf) < size:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:size], self.buf[size:]
        return data

    def flush(self) -> None:
        """PING and wait for the PONG (skipping anything else)."""
        self.send(b"PING\r\n")
        while self.read_line() != b"PONG":
            pass

    def close(self) -> None:
        self.sock.close()


def wait_ready(pub: RawClient, sub: RawClient, subject: bytes) -> None:
    """Wait until ``sub``'s earlier subscriptions reached ``pub``'s server.

    ``sub`` subscribes ``subject`` last; interest crosses the link in order,
    so once a probe on it arrives, everything before it has crossed too.
    """
    sub.send(b"SUB %b 99\r\n" % subject)
    sub.flush()
    deadline = time.monotonic() + READY_TIMEOUT_S
    sub.sock.settimeout(0.05)
    try:
        while True:
            pub.send(b"PUB %b 0\r\n\r\n" % subject)
            try:
                line = sub.read_line()
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise TimeoutError("interest never crossed the link") from None
                continue
            if line.startswith(b"MSG " + subject):
                break
    finally:
        sub.sock.settimeout(READY_TIMEOUT_S)
    sub.send(b"UNSUB 99\r\n")
    sub.flush()  # Probes still in flight are drained here and below.


def throughput(pub_port: int, sub_port: int, n: int, tag: str) -> float:
    """Messages per second from a publisher on one server to a subscriber on another."""
    subject = f"bench.data.{tag}".encode()
    sub = RawClient(sub_port)
    pub = RawClient(pub_port)
    sub.send(b"SUB %b 1\r\n" % subject)
    wait_ready(pub, sub, f"bench.ready.{tag}".encode())
    marker = b"MSG " + subject + b" "
    counted = 0
    done = threading.Event()
    leftover = sub.buf

    def count() -> None:
        nonlocal counted
        # Carry len(marker) - 1 bytes over: a marker split across two reads is
        # counted once, and the carried bytes alone can never hold a marker.
        tail = len(marker) - 1
        data = leftover
        while True:
            counted += data.count(marker)
            if counted >= n:
                break
            chunk = sub.sock.recv(1 << 20)
            if not chunk:
                break
            data = data[-tail:] + chunk
        done.set()

    batch = (b"PUB %b %d\r\n%b\r\n" % (subject, len(PAYLOAD), PAYLOAD)) * BATCH
    reader = threading.Thread(target=count, daemon=True)
    reader.start()
    start = time.perf_counter()
    for _ in range(n // BATCH):
        pub.send(batch)
    if not done.wait(120):
        raise TimeoutError(f"subscriber got {counted} of {n} messages")
    elapsed = time.perf_counter() - start
    pub.close()
    sub.close()
    return n / elapsed


def reqrep(req_port: int, resp_port: int, n: int, tag: str) -> tuple[float, float]:
    """p50 and p99 round trip (µs) of sequential requests across the link."""
    subject = f"bench.req.{tag}".encode()
    responder = RawClient(resp_port)
    requester = RawClient(req_port)
    responder.send(b"SUB %b 1\r\n" % subject)
    wait_ready(requester, responder, f"bench.rready.{tag}".encode())
    inbox = f"_INBOX.bench.{tag}".encode()
    requester.send(b"SUB %b 2\r\n" % inbox)
    requester.flush()
    stop = threading.Event()

    def respond() -> None:
        try:
            while not stop.is_set():
                line = responder.read_line()
                if not line.startswith(b"MSG "):
                    if line == b"PING":
                        responder.send(b"PONG\r\n")
                    continue
                parts = line.split()
                size = int(parts[-1])
                data = responder.read_exact(size + 2)
                responder.send(b"PUB %b %d\r\n%b" % (parts[3], size, data))
        except (OSError, ConnectionError):
            return

    thread = threading.Thread(target=respond, daemon=True)
    thread.start()
    request = b"PUB %b %b %d\r\n%b\r\n" % (subject, inbox, len(PAYLOAD), PAYLOAD)
    samples: list[float] = []
    for i in range(n + 50):
        start = time.perf_counter()
        requester.send(request)
        while True:
            line = requester.read_line()
            if line.startswith(b"MSG "):
                requester.read_exact(int(line.split()[-1]) + 2)
                break
        if i >= 50:  # warm-up
            samples.append((time.perf_counter() - start) * 1e6)
    stop.set()
    requester.close()
    responder.close()
    samples.sort()
    return samples[len(samples) // 2], samples[int(len(samples) * 0.99)]


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
    sites = start_sites(workdir)
    ports = {NATS: sites.nats_leaf.port, LEAF: sites.router.port}
    hub_port = sites.hub.port
    raw: dict[str, dict[str, list[float]]] = {
        k: {NATS: [], LEAF: []} for k in ("leaf->hub", "hub->leaf", "p50", "p99")
    }
    try:
        for rep in range(reps):
            order = (NATS, LEAF) if rep % 2 == 0 else (LEAF, NATS)
            for target in order:
                port = ports[target]
                tag = f"{target.replace('-', '')}{rep}"
                raw["leaf->hub"][target].append(throughput(port, hub_port, n, "u" + tag))
                raw["hub->leaf"][target].append(throughput(hub_port, port, n, "d" + tag))
                p50, p99 = reqrep(port, hub_port, requests, tag)
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
    print(f"{'workload':<10} {'unit':<7} {NATS:>12} {LEAF:>12} {'ratio':>7}  target")
    for name, unit, nats_v, leaf_v, ratio, goal, verdict in rows:
        cells = f"{name:<10} {unit:<7} {nats_v:>12,.0f} {leaf_v:>12,.0f} {ratio:>6.3f}x"
        print(f"{cells}  {goal} {verdict}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"n": n, "requests": requests, "raw": raw}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
