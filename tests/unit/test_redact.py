"""Secrets out of URLs (leafnode.redact) and [REDACTED] sent back (services/api/redact.py)."""

from __future__ import annotations

import os

import nkeys
import pytest

from leafnode.config import ConfigError, Settings, loads
from leafnode.redact import REDACTED, redact_url, url_address
from services.api.redact import KeepSecretError, keep_secrets, redact_settings
from tests.support._jwt import JwtOperator


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("nats-leaf://u:pw@hub:7422", "nats-leaf://u:***@hub:7422"),
        ("nats://tok@hub:4222", "nats://***@hub:4222"),
        ("nats-leaf://hub:7422", "nats-leaf://hub:7422"),
        ("sqlite:///var/lib/a.db", "sqlite:///var/lib/a.db"),
        ("postgresql+psycopg://u:pw@db:5432/x", "postgresql+psycopg://u:***@db:5432/x"),
        (
            "postgresql+psycopg://db/x?user=u&password=pw",
            "postgresql+psycopg://db/x?user=u&password=***",
        ),
        ("nats://u:p@[::1", "***"),  # does not parse, may hold userinfo
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("nats-leaf://u:pw@hub.example.com:7422", "hub.example.com:7422"),
        ("tls://tok@10.0.0.1:7422", "10.0.0.1:7422"),
        ("ws://[::1]:8080/leaf", "[::1]:8080"),
        ("nats-leaf://hub", "hub"),
    ],
)
def test_url_address_is_host_port_as_nats_server_shows_it(url: str, address: str) -> None:
    assert url_address(url) == address


SEED = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode()
RUNNING = f"""
authorization {{ users: [
  {{ user: alice, password: "al:ice#pw=1" }}, {{ user: bob, password: bobpw }}
] }}
api {{ token: "tok-1" }}
store {{ url: "postgresql+psycopg://u:dbpw@h/db" }}
leafnodes {{ remotes: [
  {{ name: a, url: "nats-leaf://lu:urlpw@127.0.0.1:1" }},
  {{ name: b, url: "nats-leaf://127.0.0.1:2", nkey: "{SEED}" }}
] }}
"""


def _parse(text: str) -> Settings:
    return loads(text)


def test_redacted_settings_sent_back_keep_every_running_secret() -> None:
    running = loads(RUNNING)
    shown = redact_settings(running)
    text = str(shown)
    for secret in ("al:ice#pw=1", "bobpw", "tok-1", "dbpw", "urlpw", SEED):
        assert secret not in text
    # The config text a client edits from GET /config: every secret as [REDACTED],
    # the users in another order, one setting changed.
    sent = f"""
authorization {{ users: [
  {{ user: bob, password: "{REDACTED}" }}, {{ user: alice, password: "{REDACTED}" }}
] }}
api {{ token: "{REDACTED}" }}
store {{ url: "postgresql+psycopg://u:{REDACTED}@h/db" }}
max_payload: 2MB
leafnodes {{ remotes: [
  {{ name: b, url: "nats-leaf://127.0.0.1:2", nkey: "{REDACTED}" }},
  {{ name: a, url: "nats-leaf://lu:{REDACTED}@127.0.0.1:1" }}
] }}
"""
    kept = loads(keep_secrets(sent, running, _parse))
    users = {u.user: u.password for u in kept.router.users}
    assert users == {"alice": "al:ice#pw=1", "bob": "bobpw"}
    assert kept.api.token == "tok-1"
    assert kept.store.url == "postgresql+psycopg://u:dbpw@h/db"
    remotes = {r.name: r for r in kept.leafnodes.remotes}
    assert remotes["a"].urls == ("nats-leaf://lu:urlpw@127.0.0.1:1",)
    assert remotes["b"].nkey == SEED
    assert kept.router.max_payload == 2 * 1024 * 1024


def test_a_text_without_redacted_is_left_alone() -> None:
    assert keep_secrets("port: 1\n", loads(RUNNING), _parse) == "port: 1\n"


@pytest.mark.parametrize(
    ("sent", "line"),
    [
        # A user the running config does not have: no secret to keep.
        (f'port: 1\nauthorization {{ users: [ {{ user: carol, password: "{REDACTED}" }} ] }}', 2),
        # Another user name in the URL: not the running URL's secret.
        (
            f'leafnodes {{ remotes: [ {{ name: a, url: "nats-leaf://o:{REDACTED}@h:1" }} ] }}',
            1,
        ),
        # A place no secret is.
        (f'server_name: "{REDACTED}"', 1),
    ],
)
def test_a_redacted_with_nothing_to_keep_is_an_error_with_its_line(sent: str, line: int) -> None:
    with pytest.raises(KeepSecretError) as info:
        keep_secrets(sent, loads(RUNNING), _parse)
    assert info.value.line == line
    assert REDACTED in info.value.reason


def test_a_secret_that_cannot_be_written_back_is_an_error_without_the_secret() -> None:
    running = loads('authorization { users: [ { user: alice, password: "say \\"hi\\"" } ] }')
    assert running.router.users[0].password == 'say "hi"'
    sent = f'authorization {{ users: [ {{ user: alice, password: "{REDACTED}" }} ] }}'
    with pytest.raises(KeepSecretError) as info:
        keep_secrets(sent, running, _parse)
    assert "hi" not in info.value.reason


def test_get_config_shows_no_operator_or_account_jwt() -> None:
    op = JwtOperator()
    account = op.account("A")
    settings = loads(op.config())
    assert settings.router.operator is not None
    text = str(redact_settings(settings))
    for jwt in (op.jwt, account.jwt, *(j for _, j in settings.router.operator.preload)):
        assert jwt not in text
    assert account.public_key in text
    assert f"'operator_jwts': ['{REDACTED}']" in text


@pytest.mark.parametrize(
    "url",
    ["nats-leaf://u:url-pw@host:notaport", "bogus://u:url-pw@host:7422", "nats-leaf://u:url-pw@"],
)
def test_a_config_error_about_a_url_does_not_quote_its_password(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        loads(f'leafnodes {{ remotes: [ {{ url: "{url}" }} ] }}')
    assert "url-pw" not in str(info.value)
    assert "[REDACTED]@" in str(info.value)
