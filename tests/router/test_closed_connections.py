"""Closed client connections: the ``-D`` log line and ``/connz?state=closed``.

The same connections (a clean close, a bad password, an unknown verb, a
payload over the limit, a bad protocol level, a client that never sends
CONNECT) go to a real nats-server and to the router; both must log each close
with the same description and reason, and list the same reasons for their
closed connections.
"""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.ipcclient import request_once
from tests.rawclient import RawClient
from tests.support import (
    NatsServerProcess,
    RouterProcess,
    free_port,
    nats_server_binary,
    wait_for_log,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

CONFIG = "authorization { user: app, password: secret, timeout: 1 }\n"
GOOD = (
    b'CONNECT {"verbose":false,"user":"app","pass":"secret",'
    b'"lang":"python","version":"1.2.3","name":"me"}\r\n'
)

# What each connection sends, and the reason both servers give for its close.
SCENARIOS: list[tuple[bytes | None, str]] = [
    (GOOD + b"PING\r\n", "Client Closed"),
    (b'CONNECT {"verbose":false,"user":"app","pass":"wrong"}\r\n', "Authentication Failure"),
    (GOOD + b"FOO\r\n", "Protocol Violation"),
    (GOOD + b"PUB a 2000000\r\n", "Maximum Message Payload Exceeded"),
    (
        b'CONNECT {"verbose":false,"user":"app","pass":"secret","protocol":2}\r\n',
        "Bad Client Protocol Version",
    ),
    (None, "Authentication Timeout"),
]
CLOSED_LINE = re.compile(r" - cid:\d+( - .*)? - Client connection closed: (.*)$", re.M)


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[NatsServerProcess, RouterProcess, int]]:
    base = tmp_path_factory.mktemp("closed")
    http_port = free_port()
    nats = NatsServerProcess(
        CONFIG,
        binary=nats_server_binary(),
        workdir=base / "nats",
        extra_args=("-D", "-m", str(http_port)),
    )
    router = RouterProcess(CONFIG, workdir=base / "router", extra_args=("-D",))
    nats.wait_ready()
    router.wait_ready()
    yield nats, router, http_port
    nats.kill()
    router.kill()


def _play(port: int, data: bytes | None) -> None:
    client = RawClient(port)
    try:
        if data is not None:
            client.send(data)
        if data is not None and data.endswith(b"PING\r\n"):
            client.read_until(b"PONG\r\n")
            client.sock.shutdown(socket.SHUT_WR)
        client.read_until_closed(timeout=10)
    finally:
        client.close()


def _closed_lines(log: str) -> list[tuple[str, str]]:
    return [(m.group(1) or "", m.group(2)) for m in CLOSED_LINE.finditer(log)]


def _router_closed(run_dir: Path, **query: str) -> list[dict[str, object]]:
    frame = request_once(run_dir / "router.ctl", "connz", query=query)
    assert frame.type == "ok", frame
    connections = frame.fields["data"]["connections"]  # type: ignore[index]
    assert isinstance(connections, list)
    return connections


def test_closed_connections_are_logged_and_listed_as_nats_server_does(
    servers: tuple[NatsServerProcess, RouterProcess, int],
) -> None:
    nats, router, http_port = servers
    for n, (data, _) in enumerate(SCENARIOS, start=1):
        for server in (nats, router):
            _play(server.port, data)
            # The first close is wait_ready's probe, on both.
            wait_for_log(server, "Client connection closed", count=n + 1)

    expected = _closed_lines(nats.log_text())[1:]
    assert [reason for _, reason in expected] == [reason for _, reason in SCENARIOS]
    assert _closed_lines(router.log_text())[1:] == expected, router.log_text()
    # The description as nats-server quotes it, for a client that named itself.
    assert expected[0][0] == ' - "v1.2.3:python:me" - "$G/user:app"'

    url = f"http://127.0.0.1:{http_port}/connz?state=closed"
    with urllib.request.urlopen(url, timeout=10) as resp:
        nats_closed = json.load(resp)["connections"]
    router_closed = _router_closed(router.run_dir, state="closed")
    # Past wait_ready's probe, whose close (EOF or reset) is a race.
    assert [c["reason"] for c in router_closed][1:] == [c["reason"] for c in nats_closed][1:]
    assert len(router_closed) == len(SCENARIOS) + 1
    assert all(c["stop"] for c in router_closed)
    assert router_closed[1]["name"] == "me"

    # state=all adds the open ones; state=open (the default) has none of the closed.
    probe = RawClient(router.port)
    try:
        probe.send(GOOD + b"PING\r\n")
        probe.read_until(b"PONG\r\n")
        every = _router_closed(router.run_dir, state="all")
        assert len(every) == len(SCENARIOS) + 2
        assert sum("reason" in c for c in every) == len(SCENARIOS) + 1
        assert not any("reason" in c for c in _router_closed(router.run_dir))
        by_reason = _router_closed(router.run_dir, state="closed", sort="reason")
        reasons = [str(c["reason"]) for c in by_reason]
        assert reasons == sorted(reasons)
    finally:
        probe.close()


def test_sort_by_stop_needs_state_closed(
    servers: tuple[NatsServerProcess, RouterProcess, int],
) -> None:
    _, router, _ = servers
    frame = request_once(router.run_dir / "router.ctl", "connz", query={"sort": "stop"})
    assert frame.type == "error"
    assert "closed" in str(frame.fields["error"])


def test_max_closed_clients_bounds_the_list(tmp_path: Path) -> None:
    router = RouterProcess("max_closed_clients: 2\n", workdir=tmp_path / "router")
    try:
        router.wait_ready()
        names = []
        for n in range(4):
            client = RawClient(router.port)
            client.send(b'CONNECT {"verbose":false,"name":"c%d"}\r\nPING\r\n' % n)
            client.read_until(b"PONG\r\n")
            client.sock.shutdown(socket.SHUT_WR)
            client.read_until_closed(timeout=10)
            client.close()
            names.append(f"c{n}")
        deadline = time.monotonic() + 15
        while True:
            listed = [c["name"] for c in _router_closed(router.run_dir, state="closed")]
            if listed == names[-2:] or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert listed == names[-2:]
    finally:
        router.kill()
