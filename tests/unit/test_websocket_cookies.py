"""Cookies of a websocket upgrade request, read as Go's net/http reads them for nats-server."""

from __future__ import annotations

from leafnode.config import WebsocketSettings
from leafnode.websocket import parse_cookies
from services.router.auth import cookie_credentials, with_cookies


def test_pairs_trimmed_quotes_dropped_last_wins() -> None:
    headers = [b' a=1; b="two words" ;novalue; =x', b"a=3; c="]
    assert parse_cookies(headers) == {"a": "3", "b": "two words", "c": ""}


def test_only_named_cookies_become_credentials() -> None:
    ws = WebsocketSettings(port=1, no_tls=True, user_cookie="u", token_cookie="t")
    cookies = {"u": "alice", "p": "secret", "t": "tok"}
    assert cookie_credentials(ws, cookies) == {"user": "alice", "auth_token": "tok"}


def test_connect_fields_win_over_cookies() -> None:
    merged = with_cookies({"user": "bob", "pass": ""}, {"user": "alice", "pass": "pw"})
    assert merged == {"user": "bob", "pass": "pw"}
    assert with_cookies({"x": 1}, {}) == {"x": 1}
