"""Every setting is either reloadable or needs a restart (leafnode.config.restart_needed)."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from leafnode.config import Settings, loads, restart_needed
from leafnode.config._reload import IGNORED, RELOADABLE, RESTART

BUFFERED = (
    'leafnodes { remotes: [ { name: a, url: "nats-leaf://h:7422", buffer { subjects: [x] } } ] }'
)


def _paths(cls: type, prefix: str = "") -> list[str]:
    """Every settings path down to the first one the classification decides."""
    hints = typing.get_type_hints(cls)
    found: list[str] = []
    for f in dataclasses.fields(cls):
        path = f"{prefix}{f.name}"
        if path in RELOADABLE or path in RESTART or path in IGNORED:
            found.append(path)
            continue
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            found += _paths(hint, f"{path}.")  # type: ignore[arg-type]
        else:
            found.append(path)
    return found


def test_every_setting_is_decided() -> None:
    undecided = [
        p for p in _paths(Settings) if p not in RELOADABLE and p not in RESTART and p not in IGNORED
    ]
    assert undecided == [], "classify these in leafnode/config/_reload.py"
    assert not RELOADABLE & set(RESTART)


@pytest.mark.parametrize(
    ("before", "after", "key", "old", "new"),
    [
        ("port: 4222", "port: 4223", "port", "4222", "4223"),
        ("listen: 127.0.0.1:4222", "listen: 0.0.0.0:4222", "host", "127.0.0.1", "0.0.0.0"),
        ("server_name: a", "server_name: b", "server_name", "a", "b"),
        (
            "websocket { port: 8080, no_tls: true }",
            "websocket { port: 8081, no_tls: true }",
            "websocket",
            "(changed)",
            "(changed)",
        ),
        ("http_port: 8222", "http_port: 8223", "http_port", "8222", "8223"),
        (
            'api { listen: "127.0.0.1:8222" }',
            'api { listen: "0.0.0.0:8222" }',
            "http",
            "127.0.0.1",
            "0.0.0.0",
        ),
        ('run_dir: "/tmp/a"', 'run_dir: "/tmp/b"', "run_dir", "/tmp/a", "/tmp/b"),
        ("", "cluster { port: 6222 }", "cluster", "none", "(changed)"),
        (
            'cluster { port: 6222, routes: ["nats://u:secret1@h:6223"] }',
            'cluster { port: 6222, routes: ["nats://u:secret2@h:6223"] }',
            "cluster",
            "(changed)",
            "(changed)",
        ),
        ('pid_file: "/tmp/a.pid"', "", "pid_file", "/tmp/a.pid", "none"),
        (
            'ports_file_dir: "/tmp/a"',
            'ports_file_dir: "/tmp/b"',
            "ports_file_dir",
            "/tmp/a",
            "/tmp/b",
        ),
        (
            f'store {{ url: "sqlite:///a.db" }}\n{BUFFERED}',
            f'store {{ url: "sqlite:///b.db" }}\n{BUFFERED}',
            "store.url",
            "sqlite:///a.db",
            "sqlite:///b.db",
        ),
        (
            f"store {{ sync: full }}\n{BUFFERED}",
            f"store {{ sync: normal }}\n{BUFFERED}",
            "store.sync",
            "full",
            "normal",
        ),
    ],
)
def test_a_key_that_needs_a_restart_is_named_with_old_and_new(
    before: str, after: str, key: str, old: str, new: str
) -> None:
    (change,) = restart_needed(loads(before), loads(after))
    assert (change.key, change.old, change.new) == (key, old, new)
    assert str(change) == f"config reload not supported for {key}: old={old}, new={new}"


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("max_payload: 1MB", "max_payload: 2MB"),
        ("max_control_line: 4096", "max_control_line: 8192"),
        ("max_pending: 64MB", "max_pending: 32MB"),
        ("max_connections: 100", "max_connections: 10"),
        ("max_subscriptions: 0", "max_subscriptions: 5"),
        ('ping_interval: "2m"', 'ping_interval: "5s"'),
        ("ping_max: 2", "ping_max: 5"),
        ('write_deadline: "10s"', 'write_deadline: "2s"'),
        ("authorization { timeout: 2 }", "authorization { timeout: 5 }"),
        ("authorization { token: a }", "authorization { user: u, password: p }"),
        ("", "authorization { users: [ { user: u, password: p } ] }"),
        ("", "accounts { A: { users: [ { user: u, password: p } ] } }"),
        ('lame_duck_duration: "2m"', 'lame_duck_duration: "30s"'),
        ('lame_duck_grace_period: "10s"', 'lame_duck_grace_period: "1s"'),
        ("", 'leafnodes { reconnect: "2s", remotes: [ { url: "nats-leaf://h:7422" } ] }'),
        (BUFFERED, BUFFERED.replace("subjects: [x]", "subjects: [x, y], max_msgs: 10")),
        ('api { token: "a" }', 'api { token: "b" }'),
        ("data_path_cpu: auto", "data_path_cpu: off"),
        ("max_closed_clients: 10", "max_closed_clients: 20"),
        ("debug: false", "debug: true"),
        ("trace: true", "trace: false"),
        ("logtime: true", "logtime: false"),
        ('log_file: "/tmp/a.log"', 'log_file: "/tmp/b.log"'),
        # The store's lease tick reads it at every renewal (DESIGN §9).
        (
            f"buffer {{ takeover_after: 30s }}\n{BUFFERED}",
            f"buffer {{ takeover_after: 5s }}\n{BUFFERED}",
        ),
        # No store runs while no remote buffers: the one a reload starts opens the new URL.
        ('store { url: "sqlite:///a.db" }', f'store {{ url: "sqlite:///b.db" }}\n{BUFFERED}'),
    ],
)
def test_a_reloadable_change_is_not_refused(before: str, after: str) -> None:
    assert restart_needed(loads(before), loads(after)) == ()


def test_every_restart_change_is_named_and_secrets_are_masked() -> None:
    url = "postgresql+psycopg://u:pw-one@db/a"
    before = loads(f'port: 1\nhttp_port: 2\nstore {{ url: "{url}" }}\n{BUFFERED}')
    url = "postgresql+psycopg://u:pw-two@db/b?password=pw-three"
    after = loads(f'port: 3\nhttp_port: 4\nstore {{ url: "{url}" }}\n{BUFFERED}')
    changes = restart_needed(before, after)
    assert [c.key for c in changes] == ["port", "store.url", "http_port"]
    text = " ".join(str(c) for c in changes)
    for secret in ("pw-one", "pw-two", "pw-three"):
        assert secret not in text
    assert "postgresql+psycopg://u:***@db/b" in text


def test_an_unclassified_change_is_refused_by_its_path() -> None:
    @dataclasses.dataclass(frozen=True)
    class Extra:
        gateway_listen: str = "a"

    @dataclasses.dataclass(frozen=True)
    class Wider(Settings):
        gateway: Extra = dataclasses.field(default_factory=Extra)

    (change,) = restart_needed(Wider(), Wider(gateway=Extra("b")))
    assert (change.key, change.old, change.new) == ("gateway.gateway_listen", "a", "b")
