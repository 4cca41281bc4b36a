"""Config file -> ``Settings``: ``leafnode.config.load``/``loads`` (DESIGN §6)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import nkeys
import pytest

from leafnode.config import (
    AccountSettings,
    ApiSettings,
    BufferSettings,
    ConfigError,
    ExportSettings,
    ImportSettings,
    LeafnodeSettings,
    Permissions,
    RemoteSettings,
    RouterSettings,
    Settings,
    StoreSettings,
    SubjectPermission,
    TlsSettings,
    UserSettings,
    load,
    loads,
)
from tests.support._jwt import sample_creds

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support import TlsFiles

USER_SEED = nkeys.encode_seed(bytes(range(32)), nkeys.PREFIX_BYTE_USER).decode()
USER_NKEY = nkeys.from_seed(USER_SEED.encode()).public_key.decode()
ACCOUNT_SEED = nkeys.encode_seed(bytes(range(32)), nkeys.PREFIX_BYTE_ACCOUNT).decode()


def s(text: str, *, base_dir: Path | None = None, **env: str) -> Settings:
    return loads(text, base_dir=base_dir, environ=env)


def error(text: str, *, base_dir: Path | None = None, **env: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        loads(text, base_dir=base_dir, environ=env)
    return info.value


DESIGN_EXAMPLE = """\
server_name: site-a
port: 4222
http_port: 8222                      # control plane (nats-server's key); or api { listen: ... }
api { token: $API_TOKEN }            # guards /config, /buffer, /replay
run_dir: "/run/leafnode"
store { url: "sqlite:///var/lib/leafnode/buffer.db", sync: full }   # or postgresql+psycopg://...
leafnodes {
  reconnect: "1s"
  remotes = [
    { name: "central", url: "nats-leaf://hub.example.com:7422", credentials: "CREDS",
      account: APP,
      buffer { subjects: ["telemetry.>"], max_bytes: 1GB, max_age: "72h", discard: old } }
  ]
}
"""


def test_design_example(tmp_path: Path) -> None:
    creds = tmp_path / "site.creds"
    creds.write_text(sample_creds())
    conf = tmp_path / "leaf.conf"
    # The DESIGN example binds account APP, which must exist.
    text = DESIGN_EXAMPLE.replace("CREDS", str(creds)) + "accounts { APP {} }\n"
    conf.write_text(text)
    settings = load(conf, environ={"API_TOKEN": "t0ken"})
    assert settings == Settings(
        router=RouterSettings(
            server_name="site-a", port=4222, accounts=(AccountSettings(name="APP"),)
        ),
        leafnodes=LeafnodeSettings(
            remotes=(
                RemoteSettings(
                    name="central",
                    urls=("nats-leaf://hub.example.com:7422",),
                    account="APP",
                    credentials=str(creds),
                    buffer=BufferSettings(
                        subjects=("telemetry.>",),
                        max_bytes=1024**3,
                        max_age_s=72 * 3600.0,
                        discard="old",
                    ),
                ),
            ),
            reconnect_s=1.0,
        ),
        store=StoreSettings(url="sqlite:///var/lib/leafnode/buffer.db", sync="full"),
        api=ApiSettings(port=8222, token="t0ken"),
        run_dir="/run/leafnode",
        source=conf,
    )


def test_empty_config_gives_defaults() -> None:
    assert s("") == Settings()


Get = Callable[[Settings], object]

KEYS: list[tuple[str, Get, object]] = [
    ("server_name: n1", lambda c: c.router.server_name, "n1"),
    ("host: 127.0.0.1", lambda c: c.router.host, "127.0.0.1"),
    ("net: ::1", lambda c: c.router.host, "::1"),
    ("port: 4333", lambda c: c.router.port, 4333),
    ("port: -1", lambda c: c.router.port, -1),
    ("listen: 127.0.0.2:4444", lambda c: (c.router.host, c.router.port), ("127.0.0.2", 4444)),
    ("listen: localhost:4444", lambda c: (c.router.host, c.router.port), ("localhost", 4444)),
    ('listen: "[::1]:4444"', lambda c: (c.router.host, c.router.port), ("::1", 4444)),
    ("listen: :4444", lambda c: (c.router.host, c.router.port), ("0.0.0.0", 4444)),
    ("listen: 4444", lambda c: (c.router.host, c.router.port), ("0.0.0.0", 4444)),
    ('listen: "4444"', lambda c: c.router.port, 4444),
    ("max_payload: 2MB", lambda c: c.router.max_payload, 2 * 1024 * 1024),
    ("max_payload: 64MiB", lambda c: c.router.max_payload, 64 * 1024 * 1024),
    ("max_control_line: 8KB", lambda c: c.router.max_control_line, 8192),
    ("max_control_line: 0", lambda c: c.router.max_control_line, 4096),
    ("max_payload: 0", lambda c: c.router.max_payload, 1024 * 1024),
    ("max_pending: 0", lambda c: c.router.max_pending, 64 * 1024 * 1024),
    ("ping_max: 0", lambda c: c.router.ping_max, 2),
    ("max_pending: 128MB", lambda c: c.router.max_pending, 128 * 1024 * 1024),
    ("max_connections: 10", lambda c: c.router.max_connections, 10),
    ("max_conn: 11", lambda c: c.router.max_connections, 11),
    ("max_subscriptions: 12", lambda c: c.router.max_subscriptions, 12),
    ("max_subs: 13", lambda c: c.router.max_subscriptions, 13),
    ('ping_interval: "30s"', lambda c: c.router.ping_interval_s, 30.0),
    ("ping_interval: 45", lambda c: c.router.ping_interval_s, 45.0),
    ("ping_interval: 1m30s", lambda c: c.router.ping_interval_s, 90.0),
    ("ping_max: 5", lambda c: c.router.ping_max, 5),
    ('write_deadline: "2.5s"', lambda c: c.router.write_deadline_s, 2.5),
    ('lame_duck_duration: "2m"', lambda c: c.router.lame_duck_duration_s, 120.0),
    ('lame_duck_grace_period: "3s"', lambda c: c.router.lame_duck_grace_period_s, 3.0),
    ("debug: true", lambda c: c.log.debug, True),
    ("trace: on", lambda c: c.log.trace, True),
    ("logtime: false", lambda c: c.log.logtime, False),
    ("log_file: /var/log/l.log", lambda c: c.log.log_file, "/var/log/l.log"),
    # Relative paths are relative to the working directory, as in nats-server.
    ("logfile: l.log", lambda c: c.log.log_file, os.path.abspath("l.log")),
    ("pid_file: l.pid", lambda c: c.log.pid_file, os.path.abspath("l.pid")),
    ("pidfile: m.pid", lambda c: c.log.pid_file, os.path.abspath("m.pid")),
    ("ports_file_dir: /tmp/p", lambda c: c.ports_file_dir, "/tmp/p"),
    ("run_dir: /run/x", lambda c: c.run_dir, "/run/x"),
    ("http: 8223", lambda c: (c.api.host, c.api.port), ("127.0.0.1", 8223)),
    ("http: 0.0.0.0:8224", lambda c: (c.api.host, c.api.port), ("0.0.0.0", 8224)),
    ("http: localhost:8225", lambda c: (c.api.host, c.api.port), ("localhost", 8225)),
    ("http_port: 8226", lambda c: c.api.port, 8226),
    ("monitor_port: 8227", lambda c: c.api.port, 8227),
    ("api { listen: 10.0.0.1:9000 }", lambda c: (c.api.host, c.api.port), ("10.0.0.1", 9000)),
    ("api { listen: 9001, token: abc }", lambda c: (c.api.port, c.api.token), (9001, "abc")),
    ("api { host: h, port: 9002 }", lambda c: (c.api.host, c.api.port), ("h", 9002)),
    (
        'store { url: "postgresql+psycopg://db/x" }',
        lambda c: c.store.url,
        "postgresql+psycopg://db/x",
    ),
    ("store { sync: NORMAL }", lambda c: c.store.sync, "normal"),
    ("PORT: 4555\nport: $PORT", lambda c: c.router.port, 4555),
    ("Port: 4556", lambda c: c.router.port, 4556),
    ("MAX_PAYLOAD: 1KB", lambda c: c.router.max_payload, 1024),
    ("leaf { reconnect: 3 }", lambda c: c.leafnodes.reconnect_s, 3.0),
    ('leafnodes { reconnect_delay: "250ms" }', lambda c: c.leafnodes.reconnect_s, 0.25),
    ('leafnodes { reconnect_interval: "1m" }', lambda c: c.leafnodes.reconnect_s, 60.0),
    ("authorization { token: t }", lambda c: c.router.token, "t"),
    ("authorization { token: t, timeout: 5 }", lambda c: c.router.auth_timeout_s, 5.0),
    ("authorization { token: t, timeout: 0.5 }", lambda c: c.router.auth_timeout_s, 0.5),
    ('authorization { token: t, timeout: "3s" }', lambda c: c.router.auth_timeout_s, 3.0),
]


@pytest.mark.parametrize(("text", "get", "expected"), KEYS, ids=[k[0] for k in KEYS])
def test_key(text: str, get: Get, expected: object) -> None:
    assert get(s(text)) == expected


class TestAuth:
    def test_single_user(self) -> None:
        c = s("authorization { user: a, password: b }")
        assert c.router.users == (UserSettings(user="a", password="b"),)

    @pytest.mark.parametrize("keys", ["username: a, pass: b", "user: a, pass: b"])
    def test_user_aliases(self, keys: str) -> None:
        assert s(f"authorization {{ {keys} }}").router.users == (
            UserSettings(user="a", password="b"),
        )

    def test_bcrypt_password(self) -> None:
        hashed = "$2a$11$PWIFAL8RsWyGI3jVZtO9Nu8.6jOxzxfZo7c/W0eLk017hjgUKWrhy"
        c = s(f"authorization {{ user: a, password: {hashed} }}")
        assert c.router.users[0].password == hashed

    def test_users_list_with_permissions(self) -> None:
        text = """
        authorization {
          permissions { publish: "x.>" }
          users: [
            {user: a, password: b, permissions: {publish: {allow: ["a.>"], deny: "a.b"},
                                                  subscribe: ["_INBOX.>", "q.* workers"]}}
            {nkey: NKEY}
            {user: c, password: d, account: ACC}
          ]
        }
        accounts { ACC {} }
        """.replace("NKEY", USER_NKEY)
        c = s(text)
        default = Permissions(publish=SubjectPermission(allow=("x.>",)))
        assert c.router.default_permissions == default
        assert c.router.users == (
            UserSettings(
                user="a",
                password="b",
                permissions=Permissions(
                    publish=SubjectPermission(allow=("a.>",), deny=("a.b",)),
                    subscribe=SubjectPermission(allow=("_INBOX.>", "q.* workers")),
                ),
            ),
            UserSettings(nkey=USER_NKEY, permissions=default),
            UserSettings(account="ACC", user="c", password="d", permissions=default),
        )

    def test_single_user_gets_authorization_permissions(self) -> None:
        c = s("authorization { user: a, password: b, permissions { subscribe: x } }")
        perms = Permissions(subscribe=SubjectPermission(allow=("x",)))
        assert c.router.users[0].permissions == perms
        assert c.router.default_permissions == perms

    @pytest.mark.parametrize(
        ("block", "expected"),
        [
            ("allow_responses: true", Permissions(allow_responses=True)),
            ("allow_responses: false", Permissions()),
            (
                'allow_responses: {max: 5, expires: "1m"}',
                Permissions(allow_responses=True, responses_max=5, responses_expires_s=60.0),
            ),
            ("publish_allow_responses: {max_msgs: 0}", Permissions(allow_responses=True)),
            ("pub: a, sub: b", Permissions(SubjectPermission(("a",)), SubjectPermission(("b",)))),
            (
                "import: a, export: b",
                Permissions(SubjectPermission(("a",)), SubjectPermission(("b",))),
            ),
            ("publish: {}", Permissions()),
            ("publish: {deny: [a, b]}", Permissions(publish=SubjectPermission(deny=("a", "b")))),
        ],
    )
    def test_permissions(self, block: str, expected: Permissions) -> None:
        c = s(f"authorization {{ users: [{{user: u, permissions: {{ {block} }} }}] }}")
        assert c.router.users[0].permissions == expected

    def test_accounts(self) -> None:
        text = """
        accounts {
          A: { users: [{user: a, password: pa}, {nkey: NKEY}] }
          B: { default_permissions: {publish: b}, users: [{user: b, password: pb}] }
          C: {}
        }
        no_auth_user: a
        """.replace("NKEY", USER_NKEY)
        c = s(text)
        perms = Permissions(publish=SubjectPermission(allow=("b",)))
        assert c.router.accounts == (
            AccountSettings(
                name="A",
                users=(
                    UserSettings(account="A", user="a", password="pa"),
                    UserSettings(account="A", nkey=USER_NKEY),
                ),
            ),
            AccountSettings(
                name="B",
                users=(UserSettings(account="B", user="b", password="pb", permissions=perms),),
            ),
            AccountSettings(name="C"),
        )
        assert c.router.no_auth_user == "a"
        assert c.router.users == ()

    def test_accounts_as_a_list(self) -> None:
        assert s("accounts: [A, B]").router.accounts == (AccountSettings("A"), AccountSettings("B"))

    def test_account_block_variables_are_skipped(self) -> None:
        c = s("accounts { PW: secret, A: { users: [{user: a, password: $PW}] } }")
        assert [acc.name for acc in c.router.accounts] == ["A"]
        assert c.router.accounts[0].users[0].password == "secret"

    def test_exports_and_imports(self) -> None:
        c = s(
            "accounts {\n  S: { exports: [{service: 'q.>'}, {stream: s.*, accounts: [A]}] }\n"
            "  A: {\n    imports: [{service: {account: S, subject: 'q.>'}, to: 'x.>'},\n"
            "              {stream: {account: S, subject: s.a}, prefix: p}]\n"
            "    jetstream: enabled\n  }\n}"
        )
        assert c.router.accounts == (
            AccountSettings(
                name="S",
                exports=(
                    ExportSettings("service", "q.>"),
                    ExportSettings("stream", "s.*", accounts=("A",)),
                ),
            ),
            AccountSettings(
                name="A",
                imports=(
                    ImportSettings("service", "S", "q.>", "x.>"),
                    ImportSettings("stream", "S", "s.a", "p.s.a", "p"),
                ),
            ),
        )
        assert c.warnings == (
            "<string>:6:5: accounts.A.jetstream is not supported by leafnode; ignored",
        )

    def test_tls_sets_auth_timeout(self, tls_files: TlsFiles) -> None:
        tls = f"cert_file: '{tls_files.server_cert}', key_file: '{tls_files.server_key}'"
        c = s(f"tls {{ {tls}, timeout: 3 }}\nauthorization {{ token: t }}")
        assert c.router.auth_timeout_s == 4.0


class TestRemotes:
    def remote(self, body: str, **env: str) -> RemoteSettings:
        text = f"leafnodes {{ remotes: [ {{ {body} }} ] }}"
        return loads(text, environ=env).leafnodes.remotes[0]

    def test_defaults_and_name(self) -> None:
        assert self.remote("url: nats-leaf://hub:7422") == RemoteSettings(
            name="$G@hub:7422", urls=("nats-leaf://hub:7422",)
        )

    @pytest.mark.parametrize(
        ("url", "normal", "name"),
        [
            ("hub", "nats-leaf://hub:7422", "$G@hub:7422"),
            ("hub:4000", "nats-leaf://hub:4000", "$G@hub:4000"),
            ("nats://u:p@hub", "nats://u:p@hub:7422", "$G@hub:7422"),
            ("tls://Hub.Example.com:7443", "tls://Hub.Example.com:7443", "$G@hub.example.com:7443"),
            ("ws://hub/leaf", "ws://hub:80/leaf", "$G@hub:80"),
            ("wss://hub", "wss://hub:443", "$G@hub:443"),
            ("nats-leaf://[::1]", "nats-leaf://[::1]:7422", "$G@[::1]:7422"),
        ],
    )
    def test_urls(self, url: str, normal: str, name: str) -> None:
        remote = self.remote(f'url: "{url}"')
        assert (remote.urls, remote.name) == ((normal,), name)

    def test_urls_list_and_account_name(self) -> None:
        c = s(
            "accounts { APP {} }\n"
            'leafnodes { remotes: [ { urls: ["a:1", b, "a:1"], local: APP } ] }'
        )
        remote = c.leafnodes.remotes[0]
        assert remote.urls == ("nats-leaf://a:1", "nats-leaf://b:7422")
        assert (remote.name, remote.account) == ("APP@a:1", "APP")

    @pytest.mark.parametrize(
        ("body", "get", "expected"),
        [
            ("no_randomize: true", lambda r: r.no_randomize, True),
            ("dont_randomize: true", lambda r: r.no_randomize, True),
            ("hub: true", lambda r: r.hub, True),
            ("deny_imports: [a, 'b.>']", lambda r: r.deny_imports, ("a", "b.>")),
            ("deny_import: a", lambda r: r.deny_imports, ("a",)),
            ("deny_exports: [c]", lambda r: r.deny_exports, ("c",)),
            ("deny_export: d.*", lambda r: r.deny_exports, ("d.*",)),
            ('first_info_timeout: "3s"', lambda r: r.first_info_timeout_s, 3.0),
            ('dial_timeout: "500ms"', lambda r: r.dial_timeout_s, 0.5),
            ("ws_compression: true", lambda r: r.ws_compression, True),
            ("ws_compress: true", lambda r: r.ws_compression, True),
            ("websocket_compression: true", lambda r: r.ws_compression, True),
            ("ws_no_masking: true", lambda r: r.ws_no_masking, True),
            ("websocket_no_masking: true", lambda r: r.ws_no_masking, True),
            ("compression: s2_auto", lambda r: r.name, "$G@h:7422"),
            ("compression: {mode: s2_fast}", lambda r: r.name, "$G@h:7422"),
            (f"nkey: {USER_SEED}", lambda r: r.nkey, USER_SEED),
            (f"seed: {USER_SEED}", lambda r: r.nkey, USER_SEED),
            ("tls { insecure: true }", lambda r: r.tls, TlsSettings(insecure=True)),
            (
                'tls { timeout: "5s", handshake_first: true, verify: true }',
                lambda r: r.tls,
                TlsSettings(timeout_s=5.0, handshake_first=True, verify=True),
            ),
            ("tls { first: on }", lambda r: r.tls, TlsSettings(handshake_first=True)),
            (
                'buffer { subjects: "a.>", max_msgs: 10, max_bytes: 1MiB, max_age: "1h", '
                'discard: NEW, retain: "24h" }',
                lambda r: r.buffer,
                BufferSettings(("a.>",), 10, 1024 * 1024, 3600.0, "new", 86400.0),
            ),
            (
                "buffer { subjects: [a, b], max_msgs: -1, max_bytes: -1, max_age: 0 }",
                lambda r: r.buffer,
                BufferSettings(("a", "b"), None, None, None),
            ),
        ],
    )
    def test_remote_keys(
        self, body: str, get: Callable[[RemoteSettings], object], expected: object
    ) -> None:
        assert get(self.remote(f"url: h, {body}")) == expected

    def test_leafnodes_dial_timeout_is_the_remote_default(self) -> None:
        c = s('leafnodes { dial_timeout: "3s", remotes: [{url: a}, {url: b, dial_timeout: "1s"}] }')
        assert [r.dial_timeout_s for r in c.leafnodes.remotes] == [3.0, 1.0]

    def test_credentials_relative_to_working_directory(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        (tmp_path / "site.creds").write_text(sample_creds())
        (tmp_path / "etc").mkdir()
        conf = tmp_path / "etc" / "leaf.conf"
        conf.write_text("leafnodes { remotes: [ { url: hub, creds: site.creds } ] }")
        monkeypatch.chdir(tmp_path)
        assert load(conf).leafnodes.remotes[0].credentials == str(tmp_path / "site.creds")

    def test_credentials_env_expansion(self, tmp_path: Path) -> None:
        (tmp_path / "site.creds").write_text(sample_creds())
        remote = self.remote("url: h, credentials: '$DIR/site.creds'", DIR=str(tmp_path))
        assert remote.credentials == str(tmp_path / "site.creds")

    def test_tls_files(
        self, tmp_path: Path, tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        for name, made in (
            ("c.pem", tls_files.client_cert),
            ("k.pem", tls_files.client_key),
            ("ca.pem", tls_files.ca_cert),
        ):
            (tmp_path / name).write_bytes(made.read_bytes())
        c = s(
            "leafnodes { remotes: [{url: h, tls { "
            "cert_file: c.pem, key_file: k.pem, ca_file: ca.pem }}] }",
        )
        assert c.leafnodes.remotes[0].tls == TlsSettings(
            cert_file=str(tmp_path / "c.pem"),
            key_file=str(tmp_path / "k.pem"),
            ca_file=str(tmp_path / "ca.pem"),
        )

    def test_disabled_remote_is_skipped(self) -> None:
        c = s("leafnodes { remotes: [{url: a, disabled: true}, {url: b}] }")
        assert [r.name for r in c.leafnodes.remotes] == ["$G@b:7422"]
        assert len(c.warnings) == 1
        assert "disabled" in c.warnings[0]


class TestWarnings:
    @pytest.mark.parametrize(
        "key",
        [
            "jetstream",
            "store_dir",
            "gateway",
            "mqtt",
            "server_tags",
        ],
    )
    def test_unsupported_top_level_option(self, key: str) -> None:
        c = s(f"port: 1\n  {key}: {{}}\n")
        assert c.warnings == (f"<string>:2:3: {key} is not supported by leafnode; ignored",)

    @pytest.mark.parametrize("key", ["listen: 7422", "port: 7422"])
    def test_accepting_side_leafnodes_port_is_served(self, key: str) -> None:
        c = s(f"leafnodes {{\n {key}\n}}")
        assert c.warnings == ()
        assert c.leafnodes.accept.port == 7422

    @pytest.mark.parametrize("key", ["host: x", "authorization { user: a }"])
    def test_accepting_side_leafnodes_keys_are_read(self, key: str) -> None:
        assert s(f"leafnodes {{\n {key}\n}}").warnings == ()

    def test_one_line_per_option(self) -> None:
        c = s(
            "jetstream { a: 1, b: 2 }\ngateway { x: 1 }\n"
            "leafnodes { remotes: [{url: h, proxy: {url: x}}] }"
        )
        assert len(c.warnings) == 3
        assert "leafnodes.remotes[0].proxy" in c.warnings[2]

    def test_used_variable_is_not_unknown(self) -> None:
        assert s("HUB: nats://h:1\nleafnodes { remotes: [{url: $HUB}] }").warnings == ()


def _expect(text: str, line: int, column: int, reason: str, **kw: object) -> None:
    err = error(text, **kw)  # type: ignore[arg-type]
    assert (err.line, err.column) == (line, column), str(err)
    assert reason in err.reason, str(err)


ERRORS: list[tuple[str, int, int, str]] = [
    ("port: 1\nfoo: 2", 2, 1, "unknown field 'foo'"),
    ("UNUSED: 1", 1, 1, "unknown field 'UNUSED'"),
    (
        "leafnodes {\n  remotes: [ { url: h, reconnect: 1 } ]\n}",
        2,
        24,
        "unknown field 'leafnodes.remotes[0].reconnect'",
    ),
    ("authorization { bogus: 1 }", 1, 17, "unknown field 'authorization.bogus'"),
    ("authorization { users: [{user: a, clients: [x]}] }", 1, 35, "unknown field"),
    (
        "authorization { users: [{user: a, permissions: {publish: {allow: a, x: b}}}] }",
        1,
        69,
        "only 'allow' and 'deny'",
    ),
    ("store { path: x }", 1, 9, "unknown field 'store.path'"),
    ("tls { cipher_suites: [x] }", 1, 7, "unknown field 'tls.cipher_suites'"),
    ("port: abc", 1, 1, "port: expected an integer, got a string ('abc')"),
    ("port: 70000", 1, 1, "out of range"),
    ("debug: 1", 1, 1, "expected a boolean"),
    ("server_name: [a]", 1, 1, "expected a string, got an array"),
    ('server_name: "a b"', 1, 1, "spaces"),
    ("max_payload: 65MB", 1, 1, "64 MiB"),
    ("max_payload: -1", 1, 1, "at least 0"),
    ("max_payload: 2MB\nmax_pending: 1MB", 1, 1, "cannot be higher than max_pending"),
    ("max_payload: 1.5", 1, 1, "expected a size in bytes such as 1048576, 512MB or 1GiB"),
    ("max_payload: true", 1, 1, "got a boolean"),
    ('ping_interval: "2x"', 1, 1, "invalid duration"),
    ("ping_interval: [1]", 1, 1, "expected a duration"),
    ('ping_interval: "0s"', 1, 1, "must be positive"),
    ('lame_duck_duration: "10s"', 1, 1, "minimum is 30 seconds"),
    ("listen: a:b:c", 1, 1, 'expected "host:port"'),
    ("http: {}", 1, 1, "expected a port"),
    ("store { sync: sometimes }", 1, 9, "expected 'full' or 'normal'"),
    ("api { token: '' }", 1, 7, "may not be empty"),
    ("authorization: 1", 1, 1, "expected a block"),
    ("authorization { user: a, password: b, token: c }", 1, 1, "both user/password and token"),
    ("authorization { user: a, users: [] }", 1, 1, "single user/password and a users array"),
    ("authorization { token: t, users: [] }", 1, 1, "token and a users array"),
    ("authorization { password: p }", 1, 1, "needs a 'user'"),
    ("authorization { users: [{password: p}] }", 1, 25, "needs 'user' or 'nkey'"),
    ("authorization { users: [a] }", 1, 25, "expected a block"),
    ("authorization { users: [{nkey: UABC}] }", 1, 26, "not a valid public user nkey"),
    (f"authorization {{ users: [{{nkey: {USER_NKEY}, user: x}}] }}", 1, 25, "take no user"),
    ("authorization { users: [{user: a, account: NOPE}] }", 1, 35, "unknown account 'NOPE'"),
    ("authorization { users: [{user: a}, {user: a}] }", 1, 1, "duplicate user 'a'"),
    (
        "authorization { users: [{user: a, permissions: {publish: 'a..b'}}] }",
        1,
        49,
        "not a valid subject",
    ),
    (
        "authorization { users: [{user: a, permissions: {publish: 'a b'}}] }",
        1,
        49,
        "not a valid subject",
    ),
    (
        "authorization { users: [{user: a, permissions: {publish: [a, 1]}}] }",
        1,
        62,
        "expected a string",
    ),
    (
        "authorization { users: [{user: a, permissions: {allow_responses: 1}}] }",
        1,
        49,
        "boolean or a block",
    ),
    (
        "authorization { user: a }\naccounts { A: { users: [{user: b}] } }",
        1,
        1,
        "single user/password and accounts",
    ),
    (
        "accounts { A: { users: [{user: a}] }, B: { users: [{user: a}] } }\nauthorization {}",
        2,
        1,
        "duplicate user 'a'",
    ),
    ("accounts { $G: {} }", 1, 12, "reserved"),
    ("accounts { A: 1 }", 1, 12, "expected a block"),
    ("accounts: [A, A]", 1, 15, "duplicate account"),
    ("accounts { A: { limits: {} } }", 1, 17, "unknown field 'accounts.A.limits'"),
    ("accounts { A: { exports: [{service: a, stream: b}] } }", 1, 27, "exactly one of"),
    ("accounts { A: { exports: [{service: 'a b'}] } }", 1, 28, "not a valid subject"),
    ("accounts { A: { exports: [{service: a, latency: b}] } }", 1, 40, "not supported"),
    (
        "accounts { B: { exports: [{service: a, accounts: [C]}] }, C: {}, "
        "A: { imports: [{service: {account: B, subject: a}}] } }",
        1,
        81,
        "does not export service 'a'",
    ),
    (
        "accounts { A: { imports: [{service: {account: B, subject: a}}] } }",
        1,
        27,
        "unknown account 'B'",
    ),
    (
        "accounts { B: { exports: [{stream: a}] }, "
        "A: { imports: [{service: {account: B, subject: a}}] } }",
        1,
        58,
        "does not export service 'a'",
    ),
    (
        "accounts { B: { exports: [{service: 'a.*'}] }, "
        "A: { imports: [{service: {account: B, subject: 'a.>'}}] } }",
        1,
        63,
        "does not export service 'a.>'",
    ),
    ("accounts { A: { imports: [{stream: {account: A}}] } }", 1, 27, "account and subject"),
    (
        "accounts { A: { imports: [{stream: {account: A, subject: a}, to: b}] } }",
        1,
        27,
        "takes 'prefix'",
    ),
    (
        "accounts { A: { imports: [{service: {account: A, subject: 'a.*'}, to: b}] } }",
        1,
        27,
        "same wildcards",
    ),
    ("no_auth_user: ghost", 1, 1, "not a configured user"),
    ("leafnodes: 1", 1, 1, "expected a block"),
    ("leafnodes { remotes: {} }", 1, 13, "expected an array"),
    ("leafnodes { remotes: [ 1 ] }", 1, 24, "expected a block"),
    ("leafnodes { remotes: [ {hub: true} ] }", 1, 24, "needs 'url'"),
    ("leafnodes { remotes: [ {url: 'ftp://h'} ] }", 1, 25, "unsupported URL scheme"),
    ("leafnodes { remotes: [ {url: 'nats://h:x'} ] }", 1, 25, "invalid URL"),
    ("leafnodes { remotes: [ {url: 'nats://:1'} ] }", 1, 25, "no host"),
    ("leafnodes { remotes: [ {urls: [a, 'ftp://b']} ] }", 1, 35, "unsupported URL scheme"),
    ("leafnodes { remotes: [ {url: a, account: NOPE} ] }", 1, 33, "unknown account 'NOPE'"),
    ("leafnodes { remotes: [ {url: a}, {url: a} ] }", 1, 34, "duplicate remote name"),
    ("leafnodes { remotes: [ {url: a, name: 'x y'} ] }", 1, 33, "invalid remote name"),
    (
        "leafnodes { remotes: [ {url: a, credentials: /nonexistent/x.creds} ] }",
        1,
        33,
        "does not exist",
    ),
    ("leafnodes { remotes: [ {url: a, nkey: SUABC} ] }", 1, 33, "not a valid user nkey seed"),
    (
        f"leafnodes {{ remotes: [ {{url: a, nkey: {ACCOUNT_SEED}}} ] }}",
        1,
        33,
        "not a valid user nkey seed",
    ),
    ("leafnodes { remotes: [ {url: a, deny_imports: 'a b'} ] }", 1, 33, "not a valid subject"),
    (
        "leafnodes { remotes: [ {url: a, hub: yes, first_info_timeout: '-1s'} ] }",
        1,
        43,
        "must be positive",
    ),
    (
        "leafnodes { remotes: [ {url: a, buffer: {max_bytes: 1GB}} ] }",
        1,
        33,
        "'subjects' is required",
    ),
    (
        "leafnodes { remotes: [ {url: a, buffer: {subjects: 'a.>.b'}} ] }",
        1,
        42,
        "not a valid subject",
    ),
    (
        "leafnodes { remotes: [ {url: a, buffer: {subjects: a, discard: oldest}} ] }",
        1,
        55,
        "'old' or 'new'",
    ),
    (
        "leafnodes { remotes: [ {url: a, buffer: {subjects: a, max_age: forever}} ] }",
        1,
        55,
        "invalid duration",
    ),
    ("leafnodes { remotes: [ {url: a, buffer: {subjects: a, size: 1}} ] }", 1, 55, "unknown field"),
    (
        "leafnodes { remotes: [ {url: a, tls: {cert_file: /nonexistent.pem}} ] }",
        1,
        39,
        "does not exist",
    ),
    (
        "leafnodes { remotes: [ {url: a, tls: {handshake_first: maybe}} ] }",
        1,
        39,
        "expected a boolean",
    ),
    ("leafnodes { reconnect: '1x' }", 1, 13, "invalid duration"),
    ("leafnodes { reconnect: 0 }", 1, 13, "must be positive"),
    ("leafnodes { bogus: 1 }", 1, 13, "unknown field 'leafnodes.bogus'"),
]


@pytest.mark.parametrize(("text", "line", "column", "reason"), ERRORS, ids=[e[3] for e in ERRORS])
def test_errors(text: str, line: int, column: int, reason: str) -> None:
    _expect(text, line, column, reason)


def test_credentials_must_be_readable(tmp_path: Path) -> None:
    creds = tmp_path / "site.creds"
    creds.write_text(sample_creds())
    creds.chmod(0)
    if os.access(creds, os.R_OK):
        pytest.skip("running as a user who can read any file")
    _expect(f"leafnodes {{ remotes: [ {{url: a, creds: '{creds}'}} ] }}", 1, 33, "not readable")


def test_credentials_and_nkey_conflict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "c").write_text(sample_creds())
    monkeypatch.chdir(tmp_path)
    text = f"leafnodes {{ remotes: [ {{url: a, creds: c,\n  nkey: {USER_SEED}}} ] }}"
    _expect(text, 2, 3, "both credentials and nkey")


def test_tls_cert_needs_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "c.pem").write_text("x")
    monkeypatch.chdir(tmp_path)
    _expect("tls { cert_file: c.pem }", 1, 1, "missing 'key_file'")


class TestLoad:
    def test_missing_file(self, tmp_path: Path) -> None:
        path = tmp_path / "nope.conf"
        with pytest.raises(ConfigError) as info:
            load(path)
        assert (info.value.source, info.value.line) == (str(path), 0)
        assert str(info.value).startswith(f"{path}: cannot read")

    def test_error_names_the_file(self, tmp_path: Path) -> None:
        path = tmp_path / "leaf.conf"
        path.write_text("port: 1\nbogus: 2\n")
        with pytest.raises(ConfigError) as info:
            load(str(path))
        assert str(info.value) == f"{path}:2:1: unknown field 'bogus'"

    def test_settings_error_inside_include_names_the_included_file(self, tmp_path: Path) -> None:
        (tmp_path / "auth.conf").write_text("authorization {\n  user: a\n  colour: red\n}\n")
        path = tmp_path / "leaf.conf"
        path.write_text("port: 1\ninclude auth.conf\n")
        with pytest.raises(ConfigError) as info:
            load(path)
        err = info.value
        assert (err.source, err.line, err.column) == (str(tmp_path / "auth.conf"), 3, 3)

    def test_source_and_environ(self, tmp_path: Path) -> None:
        path = tmp_path / "leaf.conf"
        path.write_text("max_payload: $MAXP\n")
        settings = load(path, environ={"MAXP": "64KB"})
        assert (settings.source, settings.router.max_payload) == (path, 65536)

    def test_not_utf8(self, tmp_path: Path) -> None:
        path = tmp_path / "leaf.conf"
        path.write_bytes(b"port: \xff\n")
        with pytest.raises(ConfigError) as info:
            load(path)
        assert "UTF-8" in info.value.reason


def test_loads_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEAFNODE_TEST_PORT", "4999")
    assert loads("port: $LEAFNODE_TEST_PORT").router.port == 4999
