"""Bad input never crashes the router nor disturbs other clients; bad config is exit 1."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import nats
import pytest

from tests.conftest import HubFactory, RouterFactory, respond_ok, until_responding
from tests.rawclient import RawClient
from tests.support import NatsServerProcess, RouterProcess


def test_bad_config_names_file_line_and_exits_1(tmp_path: Path) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text("port: 4222\nmax_payload: lots\n")
    result = subprocess.run(
        [sys.executable, "-m", "leafnode", "router", "-c", str(conf), "--run-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert f"{conf}:2:" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_unknown_key_is_a_config_error(tmp_path: Path) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text("port: 4222\nno_such_option: true\n")
    result = subprocess.run(
        [sys.executable, "-m", "leafnode", "router", "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert f"{conf}:2:" in result.stderr
    assert "no_such_option" in result.stderr


@pytest.mark.asyncio
async def test_garbage_from_many_connections_leaves_others_working(router: RouterProcess) -> None:
    nc = await nats.connect(router.url)
    await nc.subscribe("still.ok", cb=respond_ok)
    rng = random.Random(20261128)
    corpus = [
        b"CONNECT {}\r\n",
        b"PUB a 5\r\nhello\r\n",
        b"SUB a 1\r\n",
        b"HPUB a 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
        b"UNSUB 1 2\r\n",
        b"PING\r\n",
        b"\r\n",
        b"MSG x 1 2\r\n",
    ]
    for _ in range(60):
        client = RawClient(router.port)
        parts = [rng.choice(corpus) for _ in range(rng.randint(1, 6))]
        blob = bytearray(b"".join(parts))
        for _ in range(rng.randint(0, 8)):
            blob[rng.randrange(len(blob))] = rng.randrange(256)
        blob += bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
        try:
            client.send(bytes(blob))
        except OSError:
            pass
        client.close()
    await until_responding(nc, "still.ok")
    assert "Traceback" not in router.log_text()
    await nc.close()


def test_headers_are_stripped_for_clients_without_header_support(
    router_factory: RouterFactory, nats_server_factory: HubFactory
) -> None:
    results = []
    server: RouterProcess | NatsServerProcess
    for server in (router_factory(), nats_server_factory()):
        old = RawClient(server.port)
        old.exchange(b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB h 1\r\n')
        new = RawClient(server.port)
        new.exchange(b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\nSUB h 9\r\n')
        sender = RawClient(server.port)
        sender.exchange(
            b'CONNECT {"verbose":false,"headers":true}\r\n'
            b"HPUB h 18 20\r\nNATS/1.0\r\nA: 1\r\n\r\nhi\r\n"
        )
        results.append((old.read_until(b"hi\r\n"), new.read_until(b"hi\r\n")))
    assert results[0] == results[1]
    assert results[0] == (
        b"MSG h 1 2\r\nhi\r\n",
        b"HMSG h 9 18 20\r\nNATS/1.0\r\nA: 1\r\n\r\nhi\r\n",
    )
