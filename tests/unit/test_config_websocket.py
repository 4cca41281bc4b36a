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


def test_websocket_authorization_is_warned_about() -> None:
    c = loads("websocket { port: 1, no_tls: true, authorization { token: x } }")
    assert c.router.websocket is not None
    (warning,) = c.warnings
    assert "websocket.authorization is not supported by leafnode; ignored" in warning
