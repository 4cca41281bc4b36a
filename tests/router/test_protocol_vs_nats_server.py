"""The router answers raw protocol input byte for byte as nats-server 2.15 does.

Each case sends the same bytes to a real nats-server and to the router over a
fresh connection, then a PING, and compares everything that came back after
the INFO (up to the PONG, or up to EOF when the server closed), and whether the
connection was closed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.rawclient import RawClient
from tests.support import NatsServerProcess, RouterProcess, nats_server_binary

if TYPE_CHECKING:
    from collections.abc import Iterator

QUIET = b'CONNECT {"verbose":false,"pedantic":false}\r\n'
HEADERS = b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\n'

CASES: dict[str, bytes] = {
    "unknown operation": QUIET + b"FOO bar\r\n",
    "ping before connect": b"PING\r\n",
    "default connect is verbose": b"CONNECT {}\r\n",
    "verbose acks sub pub unsub": (
        b'CONNECT {"verbose":true}\r\nSUB foo 1\r\nPUB foo 2\r\nhi\r\nUNSUB 1\r\n'
    ),
    "pedantic publish to wildcard": (
        b'CONNECT {"verbose":false,"pedantic":true}\r\nPUB a.* 1\r\nx\r\n'
    ),
    "non pedantic publish to wildcard": QUIET + b"SUB a.* 1\r\nPUB a.* 1\r\nx\r\n",
    "invalid subscribe subject": QUIET + b"SUB a..b 1\r\n",
    "invalid subscribe subject trailing dot": QUIET + b"SUB a. 1\r\n",
    "full wildcard not last": QUIET + b"SUB a.>.b 1\r\n",
    "payload over max": QUIET + b"PUB a 2000000\r\n",
    "hpub without headers": QUIET + b"HPUB a 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
    "hpub with headers": HEADERS + b"SUB a 1\r\nHPUB a 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
    "hpub to client without headers": QUIET + b"SUB a 1\r\n",
    "bad connect json": b"CONNECT {bad\r\n",
    "lower case verbs": b'connect {"verbose":false}\r\nsub foo 1\r\npub foo 2\r\nhi\r\n',
    "tabs between args": QUIET + b"SUB\tfoo \t 1\r\nPUB foo\t2\r\nhi\r\n",
    "reply subject": QUIET + b"SUB foo 1\r\nPUB foo bar 2\r\nhi\r\n",
    "auto unsubscribe": QUIET + b"SUB foo 1\r\nUNSUB 1 1\r\nPUB foo 1\r\na\r\nPUB foo 1\r\nb\r\n",
    "unsubscribe unknown sid": QUIET + b"UNSUB 99\r\n",
    "queue and plain": QUIET + b"SUB foo q 1\r\nSUB foo 2\r\nPUB foo 1\r\na\r\n",
    "no responders": HEADERS[:-3]
    + b',"no_responders":true}\r\nSUB _INBOX.x.* 1\r\nPUB foo _INBOX.x.y 2\r\nhi\r\n',
    "no responders needs headers": b'CONNECT {"verbose":false,"no_responders":true}\r\n',
    "echo off": b'CONNECT {"verbose":false,"echo":false}\r\nSUB foo 1\r\nPUB foo 1\r\na\r\n',
    "bad protocol level": b'CONNECT {"verbose":false,"protocol":2}\r\n',
    "empty payload": QUIET + b"SUB foo 1\r\nPUB foo 0\r\n\r\n",
    "payload with crlf inside": QUIET + b"SUB foo 1\r\nPUB foo 4\r\n\r\n\r\n\r\n",
    "pub missing size": QUIET + b"PUB foo\r\n",
    "pub bad size": QUIET + b"PUB foo bar\r\n",
    "sub missing sid": QUIET + b"SUB foo\r\n",
    "sub too many args": QUIET + b"SUB foo q 1 extra\r\n",
    "duplicate sid": QUIET + b"SUB foo 1\r\nSUB bar 1\r\nPUB foo 1\r\na\r\nPUB bar 1\r\nb\r\n",
}


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[NatsServerProcess, RouterProcess]]:
    base = tmp_path_factory.mktemp("vs")
    nats = NatsServerProcess("", binary=nats_server_binary(), workdir=base / "nats")
    router = RouterProcess("", workdir=base / "router")
    nats.wait_ready()
    router.wait_ready()
    yield nats, router
    nats.kill()
    router.kill()


def _run(port: int, data: bytes) -> tuple[bytes, bool]:
    client = RawClient(port)
    try:
        return client.exchange(data)
    finally:
        client.close()


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_answer_as_nats_server(
    servers: tuple[NatsServerProcess, RouterProcess], name: str
) -> None:
    nats, router = servers
    expected = _run(nats.port, CASES[name])
    actual = _run(router.port, CASES[name])
    assert actual == expected


def test_control_line_over_limit_is_refused_like_nats_server(
    servers: tuple[NatsServerProcess, RouterProcess],
) -> None:
    nats, router = servers
    data = QUIET + b"SUB " + b"a" * 5000 + b" 1\r\n"
    assert _run(router.port, data) == _run(nats.port, data)


def test_info_announces_the_api_level_of_nats_server(
    servers: tuple[NatsServerProcess, RouterProcess],
) -> None:
    nats, router = servers
    expected, actual = RawClient(nats.port), RawClient(router.port)
    try:
        assert "api_lvl" in expected.info
        assert actual.info.get("api_lvl") == expected.info["api_lvl"]
    finally:
        expected.close()
        actual.close()
