"""Traffic that counts: raw-protocol publishers and hub subscribers for the fault suites.

Theory of operation
-------------------
A ``CountingPublisher`` (a thread) sends batches of ``HPUB`` on ``tele.<n>``
to the site's client port, each message carrying ``Nats-Msg-Id: <name>-<seq>``
and the same text as payload, then a ``PING``. The ``PONG`` is what nats-py's
``flush()`` returns on; it is read only after every ``PUB`` of the batch was
written, so a batch whose ``PONG`` arrived is *acknowledged*: every one of its
messages must reach the hub (DESIGN §4). When the connection breaks (the
router was killed) the batch in flight is *unacknowledged*, may arrive or not,
and the publisher reconnects and goes on with new sequence numbers.

A ``HubSubscriber`` (a thread) subscribes to ``tele.>`` on the hub's client
port and keeps each message's payload and ``Nats-Msg-Id`` header in arrival
order, reconnecting when the hub restarts (what the hub receives while it is
away is lost to it: core NATS; a JetStream stream keeps those).

``ipc_request`` asks a service socket one question (the store's ``stats``);
``memory_kb`` reads a process's RSS and PSS from ``/proc``.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from leafnode.ipc import FrameDecoder, encode_frame

if TYPE_CHECKING:
    from pathlib import Path

    from leafnode.ipc import Frame

__all__ = [
    "CountingPublisher",
    "HubSubscriber",
    "LineSocket",
    "ipc_request",
    "memory_kb",
    "parse_id",
]

QUIET: Final = b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\n'
# A flush waits for the store: through a database outage, that is the outage.
FLUSH_TIMEOUT_S: Final = 180.0
RECONNECT_POLL_S: Final = 0.05
_MSG_ID = re.compile(rb"\r\nNats-Msg-Id: ([^\r]*)\r\n", re.IGNORECASE)


def parse_id(text: bytes) -> tuple[str, int]:
    """``b"p0-17"`` -> ``("p0", 17)``."""
    name, _, seq = text.decode().rpartition("-")
    return name, int(seq)


def ipc_request(path: Path, kind: str, timeout: float = 5.0, **fields: object) -> Frame:
    """One request on a fresh connection to a service socket; its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(encode_frame(kind, 1, fields))
        decoder = FrameDecoder()
        while data := sock.recv(1 << 20):
            decoder.feed(data)
            frame = decoder.next_frame()
            if frame is not None:
                return frame
    raise ConnectionError(f"{path}: closed before answering {kind!r}")


def memory_kb(pid: int) -> tuple[int, int]:
    """``(rss, pss)`` of ``pid`` in KiB; ``(0, 0)`` once it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as fh:
            text = fh.read()
    except OSError:
        return 0, 0
    values = dict.fromkeys(("Rss", "Pss"), 0)
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in values:
            values[key] = int(rest.split()[0])
    return values["Rss"], values["Pss"]


class LineSocket:
    """A blocking TCP connection to 127.0.0.1:``port``, read line by line or by size.

    ``sock`` is the socket, for writes; a closed connection raises ConnectionError.
    """

    def __init__(self, port: int, timeout: float) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = bytearray()

    def line(self) -> bytes:
        while (end := self.buf.find(b"\r\n")) < 0:
            self._fill()
        line = bytes(self.buf[:end])
        del self.buf[: end + 2]
        return line

    def take(self, size: int) -> bytes:
        while len(self.buf) < size:
            self._fill()
        data = bytes(self.buf[:size])
        del self.buf[:size]
        return data

    def _fill(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("closed by the server")
        self.buf += data

    def close(self) -> None:
        self.sock.close()


@dataclass
class PublisherStats:
    """What one publisher sent and what its flushes acknowledged."""

    sent: int = 0
    acked: list[range] = field(default_factory=list)
    unacked: list[range] = field(default_factory=list)
    reconnects: int = 0
    errors: list[str] = field(default_factory=list)
    worst_flush_s: float = 0.0

    @property
    def acked_count(self) -> int:
        return sum(len(r) for r in self.acked)


class CountingPublisher:
    """Flushed batches of numbered messages on ``tele.*`` (see the module doc).

    Args:
        name: the ``Nats-Msg-Id`` prefix, unique per run.
        port: the site's client port.
        batch: messages per flush.
        rate: messages per second to aim at (batches are spaced to it).
        subjects: how many ``tele.<n>`` subjects the messages rotate over.
    """

    def __init__(
        self, name: str, port: int, *, batch: int = 50, rate: float = 500.0, subjects: int = 5
    ) -> None:
        self.name = name
        self.port = port
        self.batch = batch
        self.rate = rate
        self.subjects = subjects
        self.stats = PublisherStats()
        self._next = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"publisher-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = FLUSH_TIMEOUT_S + 10) -> None:
        """Stop after the batch in flight (its flush is waited for)."""
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"publisher {self.name} did not stop in {timeout}s")

    @property
    def next_seq(self) -> int:
        """The sequence number of the next message."""
        return self._next

    def acked_ids(self) -> set[int]:
        return {i for r in self.stats.acked for i in r}

    def wait_acked(self, count: int, timeout: float = 60.0) -> None:
        """Block until ``count`` more messages than now are acknowledged."""
        goal = self.stats.acked_count + count
        deadline = time.monotonic() + timeout
        while self.stats.acked_count < goal:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"publisher {self.name}: {self.stats.acked_count}/{goal} acked after {timeout}s"
                )
            time.sleep(0.02)

    def _connect(self) -> LineSocket | None:
        while not self._stop.is_set():
            try:
                conn = LineSocket(self.port, FLUSH_TIMEOUT_S)
                if not conn.line().startswith(b"INFO "):
                    raise ConnectionError("no INFO")
                conn.sock.sendall(QUIET)
                return conn
            except OSError:
                time.sleep(RECONNECT_POLL_S)  # the router restarts: poll its port
        return None

    def _batch(self, begin: int, end: int) -> bytes:
        out = []
        for seq in range(begin, end):
            ident = b"%s-%d" % (self.name.encode(), seq)
            hdr = b"NATS/1.0\r\nNats-Msg-Id: %s\r\n\r\n" % ident
            subject = b"tele.%d" % (seq % self.subjects)
            out.append(
                b"HPUB %s %d %d\r\n%s%s\r\n"
                % (subject, len(hdr), len(hdr) + len(ident), hdr, ident)
            )
        out.append(b"PING\r\n")
        return b"".join(out)

    def _flush(self, conn: LineSocket, data: bytes) -> None:
        """Write the batch and its PING, then read until the PONG."""
        conn.sock.sendall(data)
        while True:
            line = conn.line()
            if line == b"PONG":
                return
            if line == b"PING":  # the router's keep-alive
                conn.sock.sendall(b"PONG\r\n")
            elif line.startswith(b"-ERR"):
                self.stats.errors.append(line.decode(errors="replace"))

    def _run(self) -> None:
        conn: LineSocket | None = None
        interval = self.batch / self.rate
        next_at = time.monotonic()
        try:
            while not self._stop.is_set():
                if conn is None:
                    conn = self._connect()
                    if conn is None:
                        return
                begin, end = self._next, self._next + self.batch
                self._next = end
                started = time.monotonic()
                try:
                    self.stats.sent += end - begin
                    self._flush(conn, self._batch(begin, end))
                except OSError:
                    self.stats.unacked.append(range(begin, end))
                    self.stats.reconnects += 1
                    conn.close()
                    conn = None
                    continue
                took = time.monotonic() - started
                self.stats.worst_flush_s = max(self.stats.worst_flush_s, took)
                self.stats.acked.append(range(begin, end))
                next_at = max(next_at + interval, time.monotonic() - 1.0)
                self._stop.wait(max(0.0, next_at - time.monotonic()))
        finally:
            if conn is not None:
                conn.close()


class HubSubscriber:
    """A plain subscriber on the hub that keeps what arrived, across hub restarts.

    ``arrivals`` holds ``(payload, msg_id header)`` in arrival order.
    """

    def __init__(self, port: int, subject: str = "tele.>") -> None:
        self.port = port
        self.subject = subject
        self.arrivals: list[tuple[bytes, bytes | None]] = []
        self.connects = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._conn: LineSocket | None = None
        self._subscribed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hub-subscriber", daemon=True)
        self._thread.start()
        if not self._subscribed.wait(15):
            raise TimeoutError("the hub subscriber could not subscribe")

    def snapshot(self) -> list[tuple[bytes, bytes | None]]:
        with self._lock:
            return list(self.arrivals)

    def count(self) -> int:
        with self._lock:
            return len(self.arrivals)

    def close(self) -> None:
        self._stop.set()
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._conn = conn = LineSocket(self.port, 5.0)
            except OSError:
                self._stop.wait(RECONNECT_POLL_S)
                continue
            try:
                conn.line()  # INFO
                conn.sock.sendall(QUIET + b"SUB %s 1\r\nPING\r\n" % self.subject.encode())
                while conn.line() != b"PONG":
                    pass
                self.connects += 1
                self._subscribed.set()
                conn.sock.settimeout(None)
                self._read(conn)
            except (OSError, ValueError):
                pass
            finally:
                conn.close()

    def _read(self, conn: LineSocket) -> None:
        while True:
            line = conn.line()
            if line == b"PING":
                conn.sock.sendall(b"PONG\r\n")
                continue
            args = line.split()
            if not args or args[0] not in (b"MSG", b"HMSG"):
                continue
            total = int(args[-1])
            hdr = int(args[-2]) if args[0] == b"HMSG" else 0
            body = conn.take(total + 2)
            found = _MSG_ID.search(body, 0, hdr) if hdr else None
            with self._lock:
                self.arrivals.append((body[hdr:total], found.group(1) if found else None))
