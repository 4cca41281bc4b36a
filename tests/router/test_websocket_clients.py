"""NATS clients over WebSocket (``websocket { }``), against a real nats-server 2.15.

A small blocking wsproto client (as a browser or nats.ws would speak) sends
the same protocol to both servers' websocket ports; what comes back after the
INFO must be the same, messages must cross to ordinary TCP clients, origins
are checked as nats-server checks them, and permessage-deflate works.
"""

from __future__ import annotations

import json
import signal
import socket
import ssl
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from wsproto.utilities import RemoteProtocolError

from tests.ipcclient import request_once
from tests.rawclient import RawClient
from tests.support import (
    NatsServerProcess,
    RouterProcess,
    free_port,
    make_tls_files,
    nats_server_binary,
    wait_for_port,
)
from tests.wsclient import WsClient

if TYPE_CHECKING:
    from collections.abc import Iterator


QUIET = b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\n'


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, tuple[int, int]]]:
    """nats-server and the router, each with a websocket port: name -> (client, ws) ports."""
    base: Path = tmp_path_factory.mktemp("ws")
    found: dict[str, tuple[int, int]] = {}
    procs: list[NatsServerProcess | RouterProcess] = []
    try:
        for name in ("nats-server", "router"):
            ws_port = free_port()
            config = (
                f"websocket {{ port: {ws_port}, no_tls: true, compression: true,"
                ' allowed_origins: ["http://good.example:8000"] }\n'
            )
            proc: NatsServerProcess | RouterProcess
            if name == "nats-server":
                proc = NatsServerProcess(config, binary=nats_server_binary(), workdir=base / name)
            else:
                proc = RouterProcess(config, workdir=base / name)
            procs.append(proc)
            proc.wait_ready()
            wait_for_port(ws_port, timeout=15)
            found[name] = (proc.port, ws_port)
        yield found
    finally:
        for proc in procs:
            proc.kill()


def _exchange(ws_port: int, data: bytes) -> bytes:
    client = WsClient(ws_port)
    try:
        assert client.status == 101
        client.info()
        client.send(data + b"PING\r\n")
        return client.read_until(b"PONG\r\n")
    finally:
        client.close()


@pytest.mark.parametrize(
    "data",
    [
        QUIET + b"SUB foo 1\r\nPUB foo 2\r\nhi\r\n",
        QUIET + b"SUB foo q 1\r\nHPUB foo reply 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
        b'CONNECT {"verbose":true}\r\nSUB a 1\r\nUNSUB 1\r\n',
        QUIET + b"SUB a..b 1\r\n",
    ],
)
def test_same_protocol_answers_as_nats_server(
    servers: dict[str, tuple[int, int]], data: bytes
) -> None:
    expected = _exchange(servers["nats-server"][1], data)
    assert _exchange(servers["router"][1], data) == expected


def test_info_over_websocket_has_nats_server_keys(servers: dict[str, tuple[int, int]]) -> None:
    infos = {}
    for name, (_, ws_port) in servers.items():
        client = WsClient(ws_port)
        try:
            infos[name] = client.info()
        finally:
            client.close()
    missing = {"server_id", "version", "proto", "headers", "max_payload", "client_id"}
    assert missing <= set(infos["router"])
    assert infos["router"]["proto"] == infos["nats-server"]["proto"]
    # The websocket port's own address, as nats-server's generateClientInfoJSON.
    for name, (_, ws_port) in servers.items():
        assert infos[name]["port"] == ws_port, name


def test_messages_cross_between_websocket_and_tcp_clients(
    servers: dict[str, tuple[int, int]],
) -> None:
    port, ws_port = servers["router"]
    ws = WsClient(ws_port, compress=True)
    tcp = RawClient(port)
    try:
        assert ws.extensions, "permessage-deflate not negotiated"
        ws.info()
        ws.send(QUIET + b"SUB from.tcp 1\r\nPING\r\n")
        ws.read_until(b"PONG\r\n")
        tcp.send(QUIET + b"SUB from.ws 7\r\nPING\r\n")
        tcp.read_until(b"PONG\r\n")
        payload = b"x" * 5000  # compressible, and more than one small frame
        tcp.send(b"PUB from.tcp %d\r\n%b\r\n" % (len(payload), payload))
        assert ws.read_until(payload + b"\r\n") == b"MSG from.tcp 1 5000\r\n" + payload + b"\r\n"
        ws.send(b"PUB from.ws 5\r\nhello\r\n")
        assert tcp.read_until(b"hello\r\n") == b"MSG from.ws 7 5\r\nhello\r\n"
    finally:
        ws.close()
        tcp.close()


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        (None, 101),  # no Origin: not a browser, accepted
        ("http://good.example:8000", 101),
        ("http://evil.example:8000", 403),
        ("https://good.example:8000", 403),  # another scheme is another origin
    ],
)
def test_origins_checked_as_nats_server(
    servers: dict[str, tuple[int, int]], origin: str | None, status: int
) -> None:
    got = {}
    for name, (_, ws_port) in servers.items():
        client = WsClient(ws_port, origin=origin)
        got[name] = client.status
        client.close()
    assert got == {"nats-server": status, "router": status}


def test_wss_with_tls(tmp_path: Path) -> None:
    certs = make_tls_files(tmp_path / "certs")
    ws_port = free_port()
    router = RouterProcess(
        f"""websocket {{
          port: {ws_port}
          tls {{ cert_file: "{certs.server_cert}", key_file: "{certs.server_key}" }}
        }}""",
        workdir=tmp_path / "router",
    )
    try:
        router.wait_ready()
        wait_for_port(ws_port, timeout=15)
        context = ssl.create_default_context(cafile=str(certs.ca_cert))
        client = WsClient(ws_port, tls=context)
        try:
            assert client.status == 101
            client.info()
            client.send(QUIET + b"SUB s 1\r\nPUB s 2\r\nok\r\nPING\r\n")
            assert client.read_until(b"PONG\r\n") == b"MSG s 1 2\r\nok\r\nPONG\r\n"
            # /connz says TLS for a wss client although the client port has none.
            frame = request_once(router.run_dir / "router.ctl", "connz", query={})
            (entry,) = frame.fields["data"]["connections"]  # type: ignore[index]
            assert (entry["type"], "tls_version" in entry) == ("websocket", True)
        finally:
            client.close()
        # A plain ws:// client on a TLS port gets nowhere.
        with pytest.raises((AssertionError, OSError, RemoteProtocolError)):
            WsClient(ws_port)
    finally:
        router.kill()


def test_lame_duck_stops_accepting_websocket_clients(tmp_path: Path) -> None:
    ws_port = free_port()
    router = RouterProcess(
        f'websocket {{ port: {ws_port}, no_tls: true }}\nlame_duck_duration: "30s"\n'
        'lame_duck_grace_period: "10s"\n',
        workdir=tmp_path / "router",
    )
    try:
        router.wait_ready()
        wait_for_port(ws_port, timeout=15)
        client = WsClient(ws_port)
        try:
            client.info()
            # nats-server announces lame duck to protocol-1 clients past their
            # first PONG only (websocket ones included).
            client.send(b'CONNECT {"verbose":false,"protocol":1}\r\nPING\r\n')
            assert client.read_until(b"PONG\r\n").endswith(b"PONG\r\n")
            router.proc.send_signal(signal.SIGUSR2)
            update = client.info()  # the INFO that announces lame duck
            assert update.get("ldm") is True
            deadline = time.monotonic() + 15
            while True:
                try:
                    socket.create_connection(("127.0.0.1", ws_port), timeout=1).close()
                except OSError:
                    break  # refused: no longer listening
                assert time.monotonic() < deadline, "websocket port still accepts"
                time.sleep(0.05)
            client.send(b"PING\r\n")
            assert client.read_until(b"PONG\r\n").endswith(b"PONG\r\n")
        finally:
            client.close()
    finally:
        router.kill()


def _connz_by_name(connections: object) -> dict[str, dict[str, object]]:
    assert isinstance(connections, list)
    return {str(c.get("name", "")): c for c in connections}


def _connz(
    proc: NatsServerProcess | RouterProcess, http_port: int, state: str
) -> dict[str, dict[str, object]]:
    """/connz?state=STATE by name: nats-server's over HTTP, the router's over router.ctl."""
    if isinstance(proc, RouterProcess):
        frame = request_once(proc.run_dir / "router.ctl", "connz", query={"state": state})
        assert frame.type == "ok", frame
        return _connz_by_name(frame.fields["data"]["connections"])  # type: ignore[index]
    url = f"http://127.0.0.1:{http_port}/connz?state={state}"
    with urllib.request.urlopen(url, timeout=10) as answer:
        return _connz_by_name(json.load(answer)["connections"])


def test_connz_lists_websocket_clients_as_nats_server(tmp_path: Path) -> None:
    """nats-server 2.10+ lists websocket clients with ``type: websocket``, the TCP peer's ip/port.

    Open and closed, beside an ordinary client (``type: nats``); the same
    fields from a live nats-server 2.15 and from the router.
    """
    seen: dict[str, dict[str, dict[str, object]]] = {}
    for name in ("nats-server", "router"):
        ws_port, http_port = free_port(), free_port()
        config = f"websocket {{ port: {ws_port}, no_tls: true }}\n"
        proc: NatsServerProcess | RouterProcess
        if name == "nats-server":
            config += f"http_port: {http_port}\n"
            proc = NatsServerProcess(config, binary=nats_server_binary(), workdir=tmp_path / name)
        else:
            proc = RouterProcess(config, workdir=tmp_path / name)
        try:
            proc.wait_ready()
            wait_for_port(ws_port, timeout=15)
            ws = WsClient(ws_port)
            gone = WsClient(ws_port)
            tcp = RawClient(proc.port)
            try:
                for client, who in ((ws, b"ws"), (gone, b"gone")):
                    client.info()
                    client.send(b'CONNECT {"verbose":false,"name":"%b"}\r\nPING\r\n' % who)
                    client.read_until(b"PONG\r\n")
                tcp.send(b'CONNECT {"verbose":false,"name":"tcp"}\r\nPING\r\n')
                tcp.read_until(b"PONG\r\n")
                ws_local = ws.sock.getsockname()[1]
                gone.close()

                deadline = time.monotonic() + 15
                while "gone" not in (closed := _connz(proc, http_port, "closed")):
                    assert time.monotonic() < deadline, "closed websocket client not listed"
                    time.sleep(0.05)
                open_ = _connz(proc, http_port, "open")
                assert (open_["ws"]["ip"], open_["ws"]["port"]) == ("127.0.0.1", ws_local)
                seen[name] = {**open_, "gone": closed["gone"]}
            finally:
                ws.close()
                tcp.close()
        finally:
            proc.kill()
    keys = ("kind", "type", "ip")
    for label in ("ws", "gone", "tcp"):
        expected = {k: seen["nats-server"][label].get(k) for k in keys}
        assert {k: seen["router"][label].get(k) for k in keys} == expected, label
    assert seen["router"]["ws"]["type"] == "websocket"
    assert seen["router"]["tcp"]["type"] == "nats"
