"""``websocket { ... }``: nats-server's keys, its TLS rule, clear errors."""

from __future__ import annotations

import pytest

from leafnode.config import ConfigError, WebsocketSettings, loads


def test_block_as_nats_server_spells_it() -> None:
    c = loads(
        "websocket {\n  listen: '127.0.0.1:8080'\n  no_tls: true\n  same_origin: true\n"
        "  allowed_origins: ['https://app.example:8443', 'http://other']\n  compress: true\n"
        "  handshake_timeout: '3s'\n}\n"
    )
    assert c.router.websocket == WebsocketSettings(
        host="127.0.0.1",
        port=8080,
        no_tls=True,
        same_origin=True,
        allowed_origins=("https://app.example:8443", "http://other"),
        compression=True,
        handshake_timeout_s=3.0,
    )
    assert c.warnings == ()


def test_no_block_no_websocket() -> None:
    assert loads("port: 4222").router.websocket is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("websocket { port: 8080 }", "<string>:1:1: websocket: websocket requires TLS"),
        ("websocket { no_tls: true }", "<string>:1:1: websocket: a port is required"),
        ("ws { port: 1, no_tls: true, colour: red }", "<string>:1:29: unknown field 'ws.colour'"),
        (
            "websocket { port: 1, no_tls: true, allowed_origins: ['nohost'] }",
            "websocket.allowed_origins: 'nohost' is not an origin",
        ),
    ],
)
def test_bad_blocks_are_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        loads(text)
    assert reason in str(info.value)


def test_authorization_and_cookies_as_nats_server_spells_them() -> None:
    c = loads(
        "websocket {\n  port: 1, no_tls: true\n"
        "  authorization { username: u, pass: 'p w', token: t, timeout: 3 }\n"
        "  user_cookie: uc, pass_cookie: pc, token_cookie: tc\n}\n"
    )
    ws = c.router.websocket
    assert ws is not None
    assert (ws.user, ws.password, ws.token, ws.auth_timeout_s) == ("u", "p w", "t", 3.0)
    assert (ws.user_cookie, ws.pass_cookie, ws.token_cookie, ws.jwt_cookie) == (
        "uc",
        "pc",
        "tc",
        "",
    )
    assert ws.auth_override
    assert c.warnings == ()


def test_no_auth_user_names_a_configured_user() -> None:
    c = loads(
        "authorization { users: [{user: a, password: b}, {user: c, password: d}] }\n"
        "websocket { port: 1, no_tls: true, no_auth_user: c, authorization { timeout: 0 } }\n"
    )
    ws = c.router.websocket
    assert ws is not None
    assert (ws.no_auth_user, ws.auth_timeout_s, ws.auth_override) == ("c", None, True)


USERS = "authorization { users: [{user: a, password: b}] }\n"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            USERS + "websocket { port: 1, no_tls: true, authorization { user: x, password: y } }",
            "<string>:2:1: websocket authentication username not compatible with presence of "
            "users/nkeys",
        ),
        (
            "accounts { A { users: [{user: a, password: b}] } }\n"
            "websocket { port: 1, no_tls: true, authorization { token: t } }",
            "websocket authentication token not compatible with presence of users/nkeys",
        ),
        (
            "websocket { port: 1, no_tls: true, jwt_cookie: jwt }",
            "trusted operators or trusted keys configuration is required for JWT authentication"
            " via cookie 'jwt'",
        ),
        (
            USERS + "websocket { port: 1, no_tls: true, no_auth_user: nobody }",
            "websocket.no_auth_user: 'nobody' is not a configured user",
        ),
        (
            "websocket { port: 1, no_tls: true, authorization { colour: red } }",
            "unknown field 'websocket.authorization.colour'",
        ),
    ],
)
def test_auth_rules_of_nats_server(text: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        loads(text)
    assert reason in str(info.value)


def test_single_user_is_simple_auth_beside_the_websocket_user() -> None:
    """A top-level user/password is no users list (nats-server's simple auth)."""
    c = loads(
        "authorization { user: a, password: b }\n"
        "websocket { port: 1, no_tls: true, authorization { user: x, password: y } }\n"
    )
    assert c.router.websocket is not None


def test_secret_in_a_refusal_is_not_shown() -> None:
    with pytest.raises(ConfigError) as info:
        loads("websocket { port: 1, no_tls: true, authorization { password: [sntl] } }")
    assert "sntl" not in str(info.value)
