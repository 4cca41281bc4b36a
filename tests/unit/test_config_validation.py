"""An invalid value is a ConfigError with position, key, value and what is accepted.

Issue 11 point 5: ``max_bytes: -5`` was read as unlimited, ``max_bytes: 5XB``
said "expected an integer" without the units, ``store.url: mysql://...`` passed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from leafnode.config import ConfigError, check_store_url, loads

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support import TlsFiles


def error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        loads(text, source="leaf.conf", environ={})
    return info.value


def buffer(body: str) -> str:
    return f"leafnodes {{ remotes: [ {{ url: hub, buffer {{ subjects: a, {body} }} }} ] }}"


def remote(body: str) -> str:
    return f"leafnodes {{ remotes: [ {{ {body} }} ] }}"


# (config text, "line:column", every fragment the reason must hold)
INVALID: list[tuple[str, str, tuple[str, ...]]] = [
    # buffer { takeover_after } (DESIGN §9): a positive duration.
    ("buffer { takeover_after: 0 }", "1:10", ("buffer.takeover_after", "positive", "0")),
    ('buffer { takeover_after: "-5s" }', "1:10", ("buffer.takeover_after", "positive")),
    ("buffer { takeover_after: soon }", "1:10", ("buffer.takeover_after", "'soon'", '"2s"')),
    ("buffer { takeover_after: [1] }", "1:10", ("buffer.takeover_after", "duration")),
    ("buffer { take_over: 30s }", "1:10", ("unknown field", "buffer.take_over")),
    # Buffer limits: -1 (or 0) is unlimited, anything below -1 is nonsense.
    (buffer("max_bytes: -5"), "1:58", ("max_bytes", "-5", "at least 1", "-1 for unlimited")),
    (buffer("max_msgs: -2"), "1:58", ("max_msgs", "-2", "at least 1", "-1 for unlimited")),
    (buffer("max_bytes: 5XB"), "1:58", ("max_bytes", "'5XB'", "512MB", "KiB", "GB")),
    (buffer("max_bytes: 1.5"), "1:58", ("max_bytes", "1.5", "KB")),
    (buffer("max_msgs: lots"), "1:58", ("max_msgs", "'lots'", "an integer")),
    (buffer("max_age: -1"), "1:58", ("max_age", "-1", "zero or positive")),
    (buffer('max_age: "3 days"'), "1:58", ("max_age", "'3 days'", '"1m30s"')),
    (buffer("retain: -5"), "1:58", ("retain", "-5", "zero or positive")),
    (buffer("discard: newest"), "1:58", ("discard", "'newest'", "'old' or 'new'")),
    # Sizes of the client port take units, and say so.
    ("max_payload: 5XB", "1:1", ("max_payload", "'5XB'", "512MB", "1000^n", "1024^n")),
    ("max_pending: 2QB", "1:1", ("max_pending", "'2QB'", "512MB")),
    ("max_control_line: -1", "1:1", ("max_control_line", "-1", "at least 0")),
    ("max_payload: -5", "1:1", ("max_payload", "-5", "at least 0")),
    ("max_connections: -3", "1:1", ("max_connections", "-3", "at least 0")),
    ("max_subscriptions: many", "1:1", ("max_subscriptions", "'many'", "an integer")),
    ("ping_max: -1", "1:1", ("ping_max", "-1", "at least 0")),
    # Durations.
    ('ping_interval: "-2s"', "1:1", ("ping_interval", "'-2s'", "positive")),
    ("write_deadline: 0", "1:1", ("write_deadline", "0", "positive")),
    ('lame_duck_grace_period: "soon"', "1:1", ("lame_duck_grace_period", "'soon'", '"2s"')),
    ('lame_duck_duration: "10s"', "1:1", ("lame_duck_duration", "'10s'", "minimum is 30 seconds")),
    ('server_name: "a b"', "1:1", ("server_name", "'a b'", "spaces")),
    ("authorization { timeout: -1 }", "1:17", ("authorization.timeout", "-1", "zero or positive")),
    # Ports.
    ("port: 65536", "1:1", ("port", "65536", "-1..65535")),
    ("port: -2", "1:1", ("port", "-2", "-1..65535")),
    ("http_port: 99999", "1:1", ("http_port", "99999", "-1..65535")),
    ('listen: "0.0.0.0:70000"', "1:1", ("listen", "70000", "-1..65535")),
    ("api { port: -5 }", "1:7", ("api.port", "-5", "-1..65535")),
    # Enums.
    ("store { sync: always }", "1:9", ("store.sync", "'always'", "'full' or 'normal'")),
    ("data_path_cpu: fast", "1:1", ("data_path_cpu", "'fast'", "auto, off or a CPU number")),
    ("data_path_cpu: -1", "1:1", ("data_path_cpu", "-1", "at least 0")),
    # Store URLs: scheme checked, no password quoted.
    (
        'store { url: "mysql://root:hunter2@db/leaf" }',
        "1:9",
        ("store.url", "'mysql://'", "sqlite:///PATH", "postgresql+psycopg://"),
    ),
    ('store { url: "postgres://u@db/leaf" }', "1:9", ("store.url", "'postgres://'", "postgresql")),
    ('store { url: "sqlite://var/lib/x.db" }', "1:9", ("store.url", "four", "sqlite:////")),
    ('store { url: "sqlite://" }', "1:9", ("store.url", "names no file", "sqlite:///PATH")),
    ('store { url: "buffer.db" }', "1:9", ("store.url", "not a database URL", "sqlite:///")),
    ('store { url: "" }', "1:9", ("store.url", "may not be empty")),
    (
        'store { url: "postgresql://u@db:123456/leaf" }',
        "1:9",
        ("store.url", "port", "1..65535"),
    ),
    # Remote URLs: scheme and port, user info redacted.
    (remote("url: 'ftp://hub'"), "1:26", ("url", "'ftp'", "nats, nats-leaf, tls, ws, wss")),
    (remote("url: 'nats-leaf://hub:0'"), "1:26", ("url", "port 0", "1..65535")),
    (remote("url: 'nats-leaf://hub:99999'"), "1:26", ("url", "invalid URL", "hub:99999")),
    (remote("url: 'nats-leaf://:7422'"), "1:26", ("url", "has no host")),
    (remote("url: hub, first_info_timeout: 0"), "1:36", ("first_info_timeout", "positive")),
    # TLS of the client port needs a certificate and a key, verify needs a CA.
    ("tls { verify: true }", "1:1", ("tls", "cert_file", "key_file")),
    ("tls { cert_file: /nonexistent.pem, key_file: k }", "1:7", ("tls.cert_file", "exist")),
    ("allow_non_tls: maybe", "1:1", ("allow_non_tls", "'maybe'", "true/false")),
]


@pytest.mark.parametrize(("text", "where", "fragments"), INVALID, ids=[i[0] for i in INVALID])
def test_invalid_value(text: str, where: str, fragments: tuple[str, ...]) -> None:
    err = error(text)
    assert f"{err.line}:{err.column}" == where, str(err)
    assert err.source == "leaf.conf"
    for fragment in fragments:
        assert fragment in err.reason, str(err)


def test_no_password_in_url_errors() -> None:
    for text in (
        'store { url: "mysql://root:hunter2@db/leaf" }',
        remote("url: 'ftp://user:hunter2@hub'"),
        remote("url: 'nats-leaf://user:hunter2@hub:0'"),
        remote("url: 'nats-leaf://hunter2@:7422'"),
    ):
        err = error(text)
        assert "hunter2" not in str(err), str(err)


@pytest.mark.parametrize(
    ("text", "max_msgs", "max_bytes"),
    [
        ("max_msgs: -1, max_bytes: -1", None, None),
        ("max_msgs: 0, max_bytes: 0", None, None),
        ("max_msgs: 10, max_bytes: 1KiB", 10, 1024),
        ("max_bytes: 5K", None, 5000),
    ],
)
def test_valid_buffer_limits(text: str, max_msgs: int | None, max_bytes: int | None) -> None:
    settings = loads(buffer(text), environ={})
    buf = settings.leafnodes.remotes[0].buffer
    assert buf is not None
    assert (buf.max_msgs, buf.max_bytes) == (max_msgs, max_bytes)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///leafnode-buffer.db",
        "sqlite:////var/lib/leafnode/buffer.db",
        "sqlite+pysqlite:///x.db?timeout=5",
        "postgresql://leaf@db/leaf",
        "postgresql+psycopg://leaf:pw@db:5432/leaf",
        "postgresql+psycopg2://leaf@/leaf?host=/run/postgresql",
    ],
)
def test_valid_store_urls(url: str) -> None:
    assert check_store_url(url) is None
    assert loads(f'store {{ url: "{url}" }}', environ={}).store.url == url


class TestTlsFilesLoad:
    """The files are loaded as the router and uplink will load them (nats-server's GenTLSConfig)."""

    def test_good_files(self, tls_files: TlsFiles) -> None:
        text = (
            f"tls {{ cert_file: '{tls_files.server_cert}', key_file: '{tls_files.server_key}',"
            f" ca_file: '{tls_files.ca_cert}', verify: true }}"
        )
        tls = loads(text, environ={}).router.tls
        assert tls is not None
        assert tls.verify

    def test_key_of_another_certificate(self, tls_files: TlsFiles) -> None:
        err = error(
            f"tls {{\n  cert_file: '{tls_files.server_cert}'\n"
            f"  key_file: '{tls_files.client_key}'\n}}"
        )
        assert (err.line, err.column) == (2, 3)
        assert "cannot load cert_file and key_file" in err.reason
        assert "matches" in err.reason

    def test_not_pem(self, tmp_path: Path, tls_files: TlsFiles) -> None:
        bogus = tmp_path / "cert.pem"
        bogus.write_text("SECRET-LOOKING CONTENT\n")
        err = error(f"tls {{ cert_file: '{bogus}', key_file: '{tls_files.server_key}' }}")
        assert "cannot load cert_file and key_file" in err.reason
        assert "SECRET-LOOKING" not in str(err)

    def test_ca_not_pem(self, tmp_path: Path) -> None:
        bogus = tmp_path / "ca.pem"
        bogus.write_text("nothing here\n")
        err = error(remote(f"url: hub, tls {{ ca_file: '{bogus}' }}"))
        assert "leafnodes.remotes[0].tls.ca_file: cannot load the CA" in err.reason

    def test_verify_needs_ca(self, tls_files: TlsFiles) -> None:
        err = error(
            f"tls {{ cert_file: '{tls_files.server_cert}', key_file: '{tls_files.server_key}',\n"
            "  verify: true }"
        )
        assert (err.line, err.column) == (2, 3)
        assert "tls.verify: verifying clients needs 'ca_file'" in err.reason

    def test_timeout_zero_is_the_default(self, tls_files: TlsFiles) -> None:
        text = (
            f"tls {{ cert_file: '{tls_files.server_cert}', key_file: '{tls_files.server_key}',"
            " timeout: 0 }"
        )
        tls = loads(text, environ={}).router.tls
        assert tls is not None
        assert tls.timeout_s == 2.0


JWT_BLOCK = "-----BEGIN X-----\na.b.c\n-----END X-----\n"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("SECRET-CONTENT\n", "no user JWT block"),
        ("-----BEGIN NATS USER JWT-----\nSECRET-CONTENT\n------END------\n", "not a JWT"),
        (JWT_BLOCK, "no user seed block"),
        (
            JWT_BLOCK + "-----BEGIN S-----\nSECRET\n-----END S-----\n",
            "not a user nkey seed",
        ),
        (
            JWT_BLOCK + "-----BEGIN S-----\nSUSECRET\n-----END S-----\n",
            "not a valid user nkey seed",
        ),
    ],
)
def test_credentials_file_must_be_usable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, problem: str
) -> None:
    # The uplink refuses to start with such a file; `leafnode check` refuses it too.
    (tmp_path / "site.creds").write_text(text)
    monkeypatch.chdir(tmp_path)
    err = error(remote("url: hub,\n  credentials: site.creds"))
    assert (err.line, err.column) == (2, 3)
    assert "leafnodes.remotes[0].credentials: not a usable .creds file" in err.reason
    assert problem in err.reason
    assert "SECRET" not in str(err)


@pytest.mark.parametrize(
    "text",
    [
        "authorization { user: a, password: 918273645 }",
        "authorization { token: 918273645 }",
        "authorization { users: [ { user: a, password: 918273645 } ] }",
        "api { token: 918273645 }",
        "leafnodes { remotes: [ { url: hub, nkey: 918273645 } ] }",
        "leafnodes { remotes: [ { url: hub, nkey: SU918273645 } ] }",
    ],
)
def test_errors_never_show_a_secret(text: str) -> None:
    # No password, token or seed in an error (leafnode check prints them).
    err = error(text)
    assert "918273645" not in str(err)


def test_environment_values_are_not_quoted() -> None:
    with pytest.raises(ConfigError) as info:
        loads("authorization { user: a, password: $PW }", environ={"PW": "[918273645"})
    assert "environment variable PW is not a valid value" in info.value.reason
    assert "918273645" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("", 30.0),
        ("buffer { takeover_after: 10s }", 10.0),
        ("buffer { takeover_after: 90 }", 90.0),
        ('buffer { takeover_after: "1m30s" }\nstore { url: "sqlite:///b.db" }', 90.0),
        ('store { url: "sqlite:///b.db" }\nbuffer { takeover_after: 500ms }', 0.5),
    ],
)
def test_takeover_after(text: str, seconds: float) -> None:
    settings = loads(text, source="leaf.conf", environ={})
    assert settings.store.takeover_after_s == seconds
