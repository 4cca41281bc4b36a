"""A reload that takes a subscribe permission away, against a real nats-server.

nats-server removes the subscriptions the new permissions refuse and tells the
client with ``-ERR 'Permissions Violation for Subscription to "<subject>"
(sid "<sid>")'``; the client stays connected and its other subscriptions keep
receiving. A user the reload removes is closed without an ``-ERR``. The
router must answer byte for byte the same.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

from tests.rawclient import RawClient
from tests.support import NatsServerProcess, RouterProcess, nats_server_binary, wait_for_log

if TYPE_CHECKING:
    from pathlib import Path

BEFORE = """authorization {
  users: [
    {user: app, password: a, permissions: {subscribe: ["keep.>", "lose", "lose.q"]}}
    {user: gone, password: g}
  ]
}
"""
AFTER = """authorization {
  users: [
    {user: app, password: a, permissions: {subscribe: ["keep.>"]}}
  ]
}
"""
SUBSCRIBE = (
    b'CONNECT {"verbose":false,"pedantic":false,"user":"app","pass":"a"}\r\n'
    b"SUB keep.a 1\r\nSUB lose 2\r\nSUB lose.q workers 3\r\nPING\r\n"
)
PUBLISH = b"PUB lose 1\r\nx\r\nPUB lose.q 1\r\ny\r\nPUB keep.a 1\r\nz\r\nPING\r\n"


def _reload_and_collect(
    server: NatsServerProcess | RouterProcess, conf: Path, reload_line: str
) -> tuple[list[bytes], bytes, bytes]:
    """What the subscriber sees after the reload, then after a publish; the removed user's end."""
    subscriber = RawClient(server.port)
    removed = RawClient(server.port)
    try:
        subscriber.send(SUBSCRIBE)
        subscriber.read_until(b"PONG\r\n")
        removed.send(b'CONNECT {"verbose":false,"user":"gone","pass":"g"}\r\nPING\r\n')
        removed.read_until(b"PONG\r\n")
        conf.write_text(AFTER)
        server.proc.send_signal(signal.SIGHUP)
        wait_for_log(server, reload_line)
        # Two -ERRs, in the order of the server's subscription map.
        errors = sorted(subscriber.read_line(timeout=10) for _ in range(2))
        subscriber.send(PUBLISH)
        after = subscriber.read_until(b"PONG\r\n")
        return errors, after, removed.read_until_closed(timeout=10)
    finally:
        subscriber.close()
        removed.close()


def test_reload_removes_subscriptions_no_longer_allowed_as_nats_server(tmp_path: Path) -> None:
    nats = NatsServerProcess(BEFORE, binary=nats_server_binary(), workdir=tmp_path / "nats")
    router = RouterProcess(BEFORE, workdir=tmp_path / "router")
    try:
        nats.wait_ready()
        router.wait_ready()
        expected = _reload_and_collect(
            nats, tmp_path / "nats" / "server.conf", "Reloaded server configuration"
        )
        actual = _reload_and_collect(
            router, tmp_path / "router" / "leaf.conf", "Reloaded server configuration"
        )
    finally:
        nats.kill()
        router.kill()
    errors, after, removed = expected
    assert errors == [
        b'-ERR \'Permissions Violation for Subscription to "lose" (sid "2")\'',
        b'-ERR \'Permissions Violation for Subscription to "lose.q" using queue'
        b' "workers" (sid "3")\'',
    ]
    assert after == b"MSG keep.a 1 1\r\nz\r\nPONG\r\n"
    # A removed user is closed without a word (nats-server 2.15).
    assert removed == b""
    assert actual == expected
