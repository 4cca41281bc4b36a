"""A publisher that outruns the store is paced, not disconnected (buffering.py).

While the store takes appends more slowly than a client publishes on a
buffered subject, the router stops reading that client once about
``PAUSE_BYTES`` wait for the store: TCP flow control holds the publisher, it
stays connected, nothing is dropped, and its flush returns once everything
is committed. The store is made slow the bluntest way: SIGSTOP (its socket
stays open, the router's append just gets no answer) until SIGCONT.

A backlog that waited in router memory through a store outage can be bigger
than one IPC frame holds (72 MiB: many messages with long subjects and
small payloads); it is appended in several requests, in order, and a flush
returns only once the last of them is committed.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import time
from typing import TYPE_CHECKING, Final

from services.router.buffering import MSG_COST_BYTES, PAUSE_BYTES
from tests.buffer.conftest import QUIET, BufferSite, Sites, poll
from tests.ipcclient import request_once
from tests.rawclient import RawClient

if TYPE_CHECKING:
    from collections.abc import Iterator

PAYLOAD: Final = b"x" * (64 * 1024)
# 40 MiB: more than the pause mark plus both ends' socket buffers, less than
# the router's 64 MiB memory bound (so without back-pressure nothing is lost,
# only nothing holds the publisher back).
COUNT: Final = 640
# No progress for this long means the router stopped reading.
HELD_S: Final = 3.0


def pub_lines(count: int, subject: bytes = b"tele.fast") -> Iterator[bytes]:
    for i in range(count):
        payload = b"%08d" % i + PAYLOAD[8:]
        yield b"PUB %s %d\r\n%s\r\n" % (subject, len(payload), payload)


def send_until_held(sock: socket.socket, data: bytes) -> int:
    """Send without blocking until the peer stops reading (or all is sent): bytes sent."""
    sock.setblocking(False)
    sent = 0
    while sent < len(data):
        _, writable, _ = select.select([], [sock], [], HELD_S)
        if not writable:
            return sent
        try:
            sent += sock.send(data[sent : sent + 1024 * 1024])
        except BlockingIOError:
            continue
    return sent


def bufferz(site: BufferSite) -> dict[str, object]:
    data = request_once(site.run_dir / "router.ctl", "bufferz").fields["data"]
    assert isinstance(data, dict)
    return data


def held_estimate(site: BufferSite) -> int:
    """What waits for the store in router memory, as the pause mark counts it."""
    held = bufferz(site)["held"]
    assert isinstance(held, dict)
    mine = held.get("central", {"msgs": 0, "bytes": 0})
    return int(mine["bytes"]) + int(mine["msgs"]) * MSG_COST_BYTES


def flush(client: RawClient, timeout: float) -> None:
    """PING; the PONG (the commit of everything before it) must come, the link open."""
    out, closed = client.exchange(b"", timeout=timeout)
    assert (out, closed) == (b"PONG\r\n", False), (out[:200], closed)


def test_publisher_faster_than_the_store_is_held_back_not_dropped(sites: Sites) -> None:
    hub = sites.hub()
    site = sites.site(hub)
    hub.stop()  # the backlog stays in the store, countable
    client = RawClient(site.router.port)
    client.send(QUIET)
    flush(client, 10)
    data = b"".join(pub_lines(COUNT))
    os.kill(site.store.proc.pid, signal.SIGSTOP)
    try:
        sent = send_until_held(client.sock, data)
        # Held back: the router read about the pause mark, not everything.
        assert sent < len(data), "the router read all 40 MiB while the store answered nothing"
        # ... and holds no more than that (one read past it at most).
        assert held_estimate(site) <= PAUSE_BYTES + 2 * 1024 * 1024
    finally:
        os.kill(site.store.proc.pid, signal.SIGCONT)
    client.sock.setblocking(True)
    client.sock.settimeout(60)
    client.sock.sendall(data[sent:])
    flush(client, 60)
    # The PONG came after the commit: all of them are in the store already.
    assert site.backlog() == COUNT
    assert "Dropped" not in site.router.log_text()
    flush(client, 10)  # still connected
    client.close()


def test_backlog_bigger_than_one_frame_is_appended_in_parts(sites: Sites) -> None:
    hub = sites.hub()
    site = sites.site(hub)
    hub.stop()
    # 80,000 messages with 1,000-byte subjects: over 80 MB of frame for
    # 640 KB of payload (the router's memory bound counts payloads).
    count = 80_000
    subject = b"tele." + b"s" * 995
    site.store.kill()
    client = RawClient(site.router.port)
    client.send(QUIET)
    lines = (b"PUB %s 8\r\n%08d\r\n" % (subject, i) for i in range(count))
    client.send(b"".join(lines))
    poll(
        lambda: bufferz(site)["waiting"],
        lambda n: n == count,
        what="all of them waiting in router memory",
        timeout=60,
    )
    started = time.monotonic()
    site.store = site._new_store()
    # The PING is answered once the last part is committed.
    client.send(b"PING\r\n")
    client.read_until(b"PONG\r\n", timeout=120)
    assert site.backlog() == count, time.monotonic() - started
    assert site.router.proc.poll() is None
    client.close()
