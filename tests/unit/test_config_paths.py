"""Paths in a config file resolve as nats-server resolves them (issue 12 point 3).

Every relative path an option names (TLS files, credentials, the operator JWT
file, pid/log files, the ports-file and run directories, a SQLite database)
is relative to the process's working directory; only ``include`` is relative
to the including file. nats.py's ``tls_handshake_first.conf`` names
``./nats/tests/certs/...`` relative to where its suite runs, for instance.

Each test puts the config in ``etc/`` and runs from its parent, so a path that
resolved against the config's directory would land in ``etc/``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from leafnode.config import ConfigError, Settings, TlsSettings, load
from services.store.engine import create_store_engine
from tests.support._jwt import JwtOperator, sample_creds

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.support import TlsFiles


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "etc").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def load_from_etc(cwd: Path, text: str) -> Settings:
    conf = cwd / "etc" / "leaf.conf"
    conf.write_text(text)
    return load(conf, environ={})


@pytest.fixture
def pem(cwd: Path, tls_files: TlsFiles) -> Path:
    """The test certificates copied into ``certs/`` of the working directory."""
    (cwd / "certs").mkdir()
    for name, made in (
        ("server.pem", tls_files.server_cert),
        ("server.key", tls_files.server_key),
        ("ca.pem", tls_files.ca_cert),
        ("client.pem", tls_files.client_cert),
        ("client.key", tls_files.client_key),
    ):
        (cwd / "certs" / name).write_bytes(made.read_bytes())
    return cwd / "certs"


def _client_tls(settings: Settings) -> TlsSettings:
    assert settings.router.tls is not None
    return settings.router.tls


def _remote_tls(settings: Settings) -> TlsSettings:
    tls = settings.leafnodes.remotes[0].tls
    assert tls is not None
    return tls


CLIENT_TLS = (
    "tls { cert_file: './certs/server.pem', key_file: certs/server.key, "
    "ca_file: certs/ca.pem, verify: true }"
)
REMOTE_TLS = (
    "leafnodes { remotes: [ { url: hub, tls { cert_file: certs/client.pem, "
    "key_file: './certs/client.key', ca_file: certs/ca.pem } } ] }"
)

TLS_KEYS: list[tuple[str, str, Callable[[Settings], str | None], str]] = [
    ("tls.cert_file", CLIENT_TLS, lambda c: _client_tls(c).cert_file, "server.pem"),
    ("tls.key_file", CLIENT_TLS, lambda c: _client_tls(c).key_file, "server.key"),
    ("tls.ca_file", CLIENT_TLS, lambda c: _client_tls(c).ca_file, "ca.pem"),
    (
        "remote tls.cert_file",
        REMOTE_TLS,
        lambda c: _remote_tls(c).cert_file,
        "client.pem",
    ),
    (
        "remote tls.key_file",
        REMOTE_TLS,
        lambda c: _remote_tls(c).key_file,
        "client.key",
    ),
    (
        "remote tls.ca_file",
        REMOTE_TLS,
        lambda c: _remote_tls(c).ca_file,
        "ca.pem",
    ),
]


@pytest.mark.parametrize(("key", "text", "get", "name"), TLS_KEYS, ids=[k[0] for k in TLS_KEYS])
def test_tls_files(
    cwd: Path, pem: Path, key: str, text: str, get: Callable[[Settings], str | None], name: str
) -> None:
    assert get(load_from_etc(cwd, text)) == str(pem / name)


def test_tls_file_next_to_the_config_is_not_found(cwd: Path, pem: Path) -> None:
    (cwd / "etc" / "certs").mkdir()
    for made in pem.iterdir():
        (cwd / "etc" / "certs" / made.name).write_bytes(made.read_bytes())
        made.unlink()
    with pytest.raises(ConfigError) as info:
        load_from_etc(cwd, CLIENT_TLS)
    assert "does not exist" in info.value.reason


@pytest.mark.parametrize("key", ["credentials", "creds"])
def test_credentials(cwd: Path, key: str) -> None:
    (cwd / "site.creds").write_text(sample_creds())
    (cwd / "etc" / "site.creds").write_text("the wrong one")
    settings = load_from_etc(cwd, f"leafnodes {{ remotes: [ {{ url: hub, {key}: site.creds }} ] }}")
    assert settings.leafnodes.remotes[0].credentials == str(cwd / "site.creds")


def test_operator_jwt_file(cwd: Path) -> None:
    op = JwtOperator()
    (cwd / "jwt").mkdir()
    (cwd / "jwt" / "op.jwt").write_text(op.jwt + "\n")
    operator = load_from_etc(cwd, op.config(operator="jwt/op.jwt")).router.operator
    assert operator is not None
    assert operator.operator_jwts == (op.jwt,)


@pytest.mark.parametrize(
    ("text", "get", "relative"),
    [
        ("pid_file: leaf.pid", lambda c: c.log.pid_file, "leaf.pid"),
        ('pidfile: "./pids/leaf.pid"', lambda c: c.log.pid_file, "pids/leaf.pid"),
        ("log_file: logs/leaf.log", lambda c: c.log.log_file, "logs/leaf.log"),
        ("logfile: leaf.log", lambda c: c.log.log_file, "leaf.log"),
        ("ports_file_dir: ports", lambda c: c.ports_file_dir, "ports"),
        ('run_dir: "./run-a"', lambda c: c.run_dir, "run-a"),
    ],
    ids=["pid_file", "pidfile", "log_file", "logfile", "ports_file_dir", "run_dir"],
)
def test_paths_the_process_creates(
    cwd: Path, text: str, get: Callable[[Settings], str | None], relative: str
) -> None:
    assert get(load_from_etc(cwd, text)) == str(cwd / relative)


def test_empty_pid_and_log_file_mean_none(cwd: Path) -> None:
    log = load_from_etc(cwd, 'pid_file: ""\nlog_file: ""').log
    assert (log.pid_file, log.log_file) == (None, None)


def test_sqlite_database(cwd: Path) -> None:
    # The URL is kept as written; SQLite opens a relative path from the working directory.
    store = load_from_etc(cwd, 'store { url: "sqlite:///data/buffer.db" }').store
    assert store.url == "sqlite:///data/buffer.db"
    (cwd / "data").mkdir()
    engine = create_store_engine(store)
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()
    assert (cwd / "data" / "buffer.db").is_file()
    assert not (cwd / "etc" / "data").exists()


def test_include_is_relative_to_the_including_file(cwd: Path) -> None:
    (cwd / "etc" / "conf.d").mkdir()
    (cwd / "etc" / "conf.d" / "a.conf").write_text("include b.conf\n")
    (cwd / "etc" / "conf.d" / "b.conf").write_text("pid_file: from-b.pid\n")
    (cwd / "conf.d").mkdir()
    (cwd / "conf.d" / "a.conf").write_text("pid_file: wrong.pid\n")
    settings = load_from_etc(cwd, "include conf.d/a.conf\n")
    assert settings.log.pid_file == os.path.join(cwd, "from-b.pid")


def test_empty_run_dir_means_none_configured(cwd: Path) -> None:
    assert load_from_etc(cwd, 'run_dir: ""').run_dir == ""
