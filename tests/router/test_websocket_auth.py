"""The ``websocket { }`` block's own auth and cookies, beside a live nats-server 2.15.

Each config goes to both servers; the same websocket (and TCP) clients, with
credentials in CONNECT or in cookies of the upgrade request, must get the
same verdict from both: accepted (``PONG``), or ``-ERR 'Authorization
Violation'``, or the permission errors of the user they became. INFO's
``auth_required`` on the websocket port must match too.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from tests.rawclient import RawClient
from tests.support import (
    NatsServerProcess,
    RouterProcess,
    free_port,
    nats_server_binary,
    wait_for_port,
)
from tests.support._jwt import JwtOperator
from tests.wsclient import WsClient

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support._jwt import JwtUser

# One probe, as (kind, CONNECT fields, Cookie header or None); kind "ws" or "tcp".
Probe = tuple[str, dict[str, object], str | None]


def _verdict(port: int, kind: str, fields: dict[str, object], cookie: str | None) -> str:
    """Connect, then PING and SUB a subject user c may not: the answers, or the refusal."""
    connect = {"verbose": False, "pedantic": False, **fields}
    data = b"CONNECT %b\r\nPING\r\n" % json.dumps(connect).encode()
    if kind == "tcp":
        tcp = RawClient(port)
        try:
            tcp.send(data)
            return tcp.read_until(b"\r\n").decode().strip()
        finally:
            tcp.close()
    headers = [(b"Cookie", cookie.encode())] if cookie else []
    client = WsClient(port, headers=headers)
    try:
        info = client.info()
        client.send(data)
        first = client.read_until(b"\r\n").decode().strip()
        if first != "PONG":
            return first
        client.send(b"SUB not.c 1\r\nPING\r\n")
        rest = client.read_until(b"PONG\r\n").decode().strip().replace("\r\n", " | ")
        return f"auth_required={info.get('auth_required', False)} PONG {rest}"
    finally:
        client.close()


def _both(tmp_path: Path, config: str, probes: list[Probe]) -> dict[str, list[str]]:
    """Every probe's verdict from nats-server and from the router, each given ``config``."""
    found: dict[str, list[str]] = {}
    for name in ("nats-server", "router"):
        ws_port = free_port()
        text = config.replace("WS_PORT", str(ws_port))
        proc: NatsServerProcess | RouterProcess
        if name == "nats-server":
            proc = NatsServerProcess(text, binary=nats_server_binary(), workdir=tmp_path / name)
        else:
            proc = RouterProcess(text, workdir=tmp_path / name)
        try:
            proc.wait_ready()
            wait_for_port(ws_port, timeout=15)
            found[name] = [
                _verdict(ws_port if kind == "ws" else proc.port, kind, fields, cookie)
                for kind, fields, cookie in probes
            ]
        finally:
            proc.kill()
    return found


ACCEPTED = "auth_required=True PONG PONG"
REFUSED = "-ERR 'Authorization Violation'"


def test_own_user_and_password_with_cookies(tmp_path: Path) -> None:
    """No auth on the client port; the websocket port wants its own user (CONNECT or cookies)."""
    config = """
    websocket {
      port: WS_PORT, no_tls: true
      authorization { user: wsu, password: wsp, timeout: 2 }
      user_cookie: u, pass_cookie: p
    }
    """
    probes: list[Probe] = [
        ("ws", {}, None),
        ("ws", {"user": "wsu", "pass": "wsp"}, None),
        ("ws", {"user": "wsu", "pass": "nope"}, None),
        ("ws", {}, "u=wsu; p=wsp"),
        ("ws", {}, 'other=1; u="wsu"; p=wsp'),
        ("ws", {"pass": "wsp"}, "u=wsu; p=nope"),  # CONNECT's pass wins over the cookie
        ("ws", {}, "u=wsu; p=nope"),
        ("ws", {"user": "wsu", "pass": "wsp"}, "u=nobody"),
        ("tcp", {}, None),  # the client port keeps no auth
    ]
    got = _both(tmp_path, config, probes)
    assert got["router"] == got["nats-server"]
    assert got["router"] == [
        REFUSED,
        ACCEPTED,
        REFUSED,
        ACCEPTED,
        ACCEPTED,
        ACCEPTED,
        REFUSED,
        ACCEPTED,
        "PONG",
    ]


def test_own_token_replaces_the_servers_user(tmp_path: Path) -> None:
    """The server's single user is simple auth: websocket clients get the block's token instead."""
    config = """
    authorization { user: a, password: b }
    websocket {
      port: WS_PORT, no_tls: true
      authorization { token: wstok }
      token_cookie: tk
    }
    """
    probes: list[Probe] = [
        ("ws", {"auth_token": "wstok"}, None),
        ("ws", {"user": "a", "pass": "b"}, None),
        ("ws", {}, "tk=wstok"),
        ("ws", {}, "tk=wrong"),
        ("tcp", {"user": "a", "pass": "b"}, None),
        ("tcp", {"auth_token": "wstok"}, None),
    ]
    got = _both(tmp_path, config, probes)
    assert got["router"] == got["nats-server"]
    assert got["router"] == [ACCEPTED, REFUSED, ACCEPTED, REFUSED, "PONG", REFUSED]


def test_own_no_auth_user(tmp_path: Path) -> None:
    """The block's no_auth_user, not the server's, is who an anonymous websocket client is."""
    config = """
    authorization {
      users: [
        {user: a, password: b}
        {user: c, password: d, permissions: {subscribe: "c.>"}}
      ]
    }
    no_auth_user: a
    websocket { port: WS_PORT, no_tls: true, no_auth_user: c }
    """
    probes: list[Probe] = [
        ("ws", {}, None),  # becomes c: SUB not.c is refused
        ("ws", {"user": "a", "pass": "b"}, None),
        ("ws", {"user": "c", "pass": "x"}, None),
    ]
    got = _both(tmp_path, config, probes)
    assert got["router"] == got["nats-server"]
    denied = "-ERR 'Permissions Violation for Subscription to \"not.c\"'"
    assert got["router"] == [f"auth_required=True PONG {denied} | PONG", ACCEPTED, REFUSED]


def test_without_its_own_auth_the_servers_applies(tmp_path: Path) -> None:
    config = """
    authorization { users: [{user: a, password: b}] }
    no_auth_user: a
    websocket { port: WS_PORT, no_tls: true, user_cookie: u, pass_cookie: p }
    """
    probes: list[Probe] = [
        ("ws", {}, None),  # the server's no_auth_user; INFO still says auth_required
        ("ws", {"user": "a", "pass": "x"}, None),
        ("ws", {}, "u=a; p=b"),
    ]
    got = _both(tmp_path, config, probes)
    assert got["router"] == got["nats-server"]
    assert got["router"] == [ACCEPTED, REFUSED, ACCEPTED]


def test_jwt_cookie_in_operator_mode(tmp_path: Path) -> None:
    """A user JWT from the ``jwt_cookie``; a bearer JWT needs no nonce signature."""
    operator = JwtOperator()
    account = operator.account("A")
    bearer: JwtUser = account.user("b", bearer=True)
    plain: JwtUser = account.user("p")
    tcp_only: JwtUser = account.user("t", bearer=True, connection_types=("STANDARD",))
    ws_only: JwtUser = account.user("w", bearer=True, connection_types=("WEBSOCKET",))
    config = operator.config() + "websocket { port: WS_PORT, no_tls: true, jwt_cookie: jwt }\n"
    probes: list[Probe] = [
        ("ws", {}, f"jwt={bearer.jwt}"),
        ("ws", {}, f"jwt={plain.jwt}"),  # no sig for the nonce
        ("ws", {"jwt": bearer.jwt}, "jwt=garbage"),  # CONNECT's JWT wins
        ("ws", {}, None),
        ("ws", {}, f"jwt={tcp_only.jwt}"),
        ("ws", {}, f"jwt={ws_only.jwt}"),
        ("tcp", {"jwt": ws_only.jwt}, None),
    ]
    got = _both(tmp_path, config, probes)
    assert got["router"] == got["nats-server"]
    assert got["router"] == [ACCEPTED, REFUSED, ACCEPTED, REFUSED, REFUSED, ACCEPTED, REFUSED]


def test_own_auth_timeout(tmp_path: Path) -> None:
    """``websocket { authorization { timeout } }`` bounds the wait for CONNECT there only."""
    config = """
    authorization { user: a, password: b, timeout: 30 }
    websocket { port: WS_PORT, no_tls: true, authorization { token: t, timeout: 1 } }
    """
    got: dict[str, str] = {}
    for name in ("nats-server", "router"):
        ws_port = free_port()
        text = config.replace("WS_PORT", str(ws_port))
        proc: NatsServerProcess | RouterProcess
        if name == "nats-server":
            proc = NatsServerProcess(text, binary=nats_server_binary(), workdir=tmp_path / name)
        else:
            proc = RouterProcess(text, workdir=tmp_path / name)
        try:
            proc.wait_ready()
            wait_for_port(ws_port, timeout=15)
            client = WsClient(ws_port)
            try:
                client.info()
                # No CONNECT: well before the server's 30 s, the websocket's 1 s ends it.
                got[name] = client.read_until(b"\r\n", timeout=15).decode().strip()
            finally:
                client.close()
        finally:
            proc.kill()
    timeout = "-ERR 'Authentication Timeout'"
    assert got == {"nats-server": timeout, "router": timeout}
