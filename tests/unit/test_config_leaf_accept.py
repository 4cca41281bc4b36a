"""The accepting side of ``leafnodes`` (issue 15 point 1): listen, authorization, advertise, tls.

Reasons are nats-server's (server/opts.go parseLeafAuthorization and
parseLeafUsers, server/leafnode.go validateLeafNodeAuthOptions and
validateLeafNode); each error points at file:line:column.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import nkeys
import pytest

from leafnode.config import (
    ConfigError,
    LeafAcceptSettings,
    LeafUserSettings,
    Settings,
    loads,
    restart_needed,
)
from tests.support._jwt import JwtOperator

if TYPE_CHECKING:
    from tests.support import TlsFiles


def s(text: str) -> Settings:
    return loads(text, environ={})


def error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        s(text)
    return info.value


def _at(err: ConfigError, line: int, column: int, reason: str) -> None:
    assert (err.source, err.line, err.column) == ("<string>", line, column), str(err)
    assert reason in err.reason, str(err)


USER_NKEY = nkeys.from_seed(
    nkeys.encode_seed(b"\x07" * 32, nkeys.PREFIX_BYTE_USER)
).public_key.decode()


def _user_nkey() -> str:
    return str(USER_NKEY)


class TestParsed:
    def test_nothing_configured_accepts_nothing(self) -> None:
        assert s("port: 4222").leafnodes.accept == LeafAcceptSettings()
        assert LeafAcceptSettings().port is None

    def test_listen_single_user_and_remotes_together(self) -> None:
        c = s(
            "accounts { SITE: {} }\n"
            "leafnodes {\n"
            '  listen: "127.0.0.1:7433"\n'
            "  advertise: edge.example:7433\n"
            "  no_advertise: true\n"
            '  authorization { user: down, password: "pw", account: SITE, timeout: 1.5 }\n'
            '  remotes: [ { url: "nats-leaf://hub:7422" } ]\n'
            "}\n"
        )
        assert c.leafnodes.accept == LeafAcceptSettings(
            host="127.0.0.1",
            port=7433,
            advertise="edge.example:7433",
            no_advertise=True,
            user="down",
            password="pw",
            account="SITE",
            auth_timeout_s=1.5,
        )
        assert len(c.leafnodes.remotes) == 1

    def test_host_and_port_apart_and_random_port(self) -> None:
        accept = s('leafnodes { host: "::1", port: -1 }').leafnodes.accept
        assert (accept.host, accept.port) == ("::1", -1)
        assert s("leafnodes { net: 10.0.0.1 }").leafnodes.accept.host == "10.0.0.1"

    def test_users_with_their_accounts(self) -> None:
        c = s(
            "accounts { A: {}, B: {} }\n"
            "leafnodes { port: 7422, authorization { account: A, users: [\n"
            '  { user: one, password: "p1" }\n'
            '  { username: two, pass: "p2", account: B }\n'
            "] } }\n"
        )
        assert c.leafnodes.accept.account == "A"
        assert c.leafnodes.accept.users == (
            LeafUserSettings(user="one", password="p1"),
            LeafUserSettings(user="two", password="p2", account="B"),
        )

    def test_nkey(self) -> None:
        key = _user_nkey()
        assert s(f"leafnodes {{ authorization {{ nkey: {key} }} }}").leafnodes.accept.nkey == key

    def test_tls_is_a_server_block(self, tls_files: TlsFiles) -> None:
        c = s(
            f'leafnodes {{ port: 7422, tls {{ cert_file: "{tls_files.server_cert}", '
            f'key_file: "{tls_files.server_key}", timeout: 3 }} }}'
        )
        assert c.leafnodes.accept.tls is not None
        assert c.leafnodes.accept.tls.timeout_s == 3

    def test_high_timeout_warns_as_nats_server(self) -> None:
        c = s("leafnodes { authorization { user: a, password: b, timeout: 120 } }")
        assert any("timeout of 120 seconds is high" in w for w in c.warnings), c.warnings


class TestRefused:
    @pytest.mark.parametrize(
        ("text", "line", "column", "reason"),
        [
            (
                "leafnodes {\n authorization { user: a, password: b, users: [{user: c}] }\n}",
                2,
                2,
                "can not have a single user/pass and a users array",
            ),
            (
                "leafnodes {\n authorization { nkey: NKEY, users: [{user: c}] }\n}",
                2,
                2,
                "can not have a single nkey and a users array",
            ),
            (
                "leafnodes { authorization {\n users: [{user: c}, {user: c}] } }",
                2,
                21,
                "duplicate user 'c' detected in leafnode authorization",
            ),
            (
                "leafnodes { authorization {\n  nkey: UABC } }",
                2,
                3,
                "Not a valid public nkey for leafnode authorization",
            ),
            (
                "leafnodes { authorization {\n  users: [ x ] } }",
                2,
                12,
                "Expected user entry to be a map/struct",
            ),
            (
                # nats-server has no token for leafs here (the top-level one applies).
                "leafnodes { authorization {\n  token: t } }",
                2,
                3,
                "unknown field 'leafnodes.authorization.token'",
            ),
            (
                "leafnodes {\n  authorization { user: a, account: NOPE } }",
                2,
                28,
                "cannot find local account 'NOPE' specified in leafnode authorization",
            ),
            (
                "leafnodes {\n  authorization { users: [{user: a, account: NOPE}] } }",
                2,
                37,
                "cannot find local account 'NOPE' specified in leafnode authorization",
            ),
            ("leafnodes {\n  listen: 99999 }", 2, 3, "port 99999 is out of range"),
            ('leafnodes {\n  listen: "a:b:c" }', 2, 3, 'expected "host:port" or a port'),
            ("leafnodes {\n  no_advertise: 3 }", 2, 3, "leafnodes.no_advertise"),
            ('leafnodes {\n  advertise: "a:b:c" }', 2, 3, "expected host or host:port"),
            ("leafnodes {\n  tls { cert_file: nope } }", 2, 9, "does not exist"),
        ],
    )
    def test_reason_at_the_key(self, text: str, line: int, column: int, reason: str) -> None:
        _at(error(text.replace("NKEY", _user_nkey())), line, column, reason)

    def test_no_secret_in_an_error(self) -> None:
        err = error('leafnodes { authorization { password: "sntlpw", bogus: 1 } }')
        assert "sntlpw" not in str(err)

    def test_operator_mode_refuses_users(self) -> None:
        op = JwtOperator()
        op.account("A")
        err = error(op.config() + "leafnodes {\n  authorization { users: [{user: a}] } }")
        _at(err, op.config().count("\n") + 1, 1, "operator mode does not allow specifying users")

    def test_operator_mode_needs_an_account_key(self) -> None:
        op = JwtOperator()
        acc = op.account("A")
        text = op.config() + "leafnodes {\n  port: 7422, authorization { account: SITE } }"
        _at(error(text), op.config().count("\n") + 1, 1, "operator mode and non account nkeys")
        bound = s(
            op.config()
            + f"leafnodes {{ port: 7422, authorization {{ account: {acc.public_key} }} }}"
        )
        assert bound.leafnodes.accept.account == acc.public_key


class TestReload:
    def test_listen_needs_a_restart(self) -> None:
        before = s("leafnodes { listen: 127.0.0.1:7422 }")
        after = s("leafnodes { listen: 0.0.0.0:7423 }")
        found = [(c.key, c.old, c.new) for c in restart_needed(before, after)]
        assert found == [
            ("leafnodes.host", "127.0.0.1", "0.0.0.0"),
            ("leafnodes.port", "7422", "7423"),
        ]

    def test_authorization_needs_a_restart_and_is_never_shown(self) -> None:
        before = s('leafnodes { authorization { user: a, password: "sntlold", timeout: 2 } }')
        after = s('leafnodes { authorization { user: b, password: "sntlnew", timeout: 3 } }')
        found = restart_needed(before, after)
        assert [(c.key, c.old, c.new) for c in found] == [
            ("leafnodes.authorization", "(changed)", "(changed)")
        ]
        users_before = s('leafnodes { authorization { users: [{user: a, password: "sntlold"}] } }')
        users_after = s('leafnodes { authorization { users: [{user: a, password: "sntlnew"}] } }')
        text = " ".join(str(c) for c in restart_needed(users_before, users_after))
        assert "leafnodes.authorization" in text
        assert "sntl" not in text

    def test_advertise_needs_a_restart(self) -> None:
        found = restart_needed(s("leafnodes { advertise: a:1 }"), s("leafnodes { advertise: b:1 }"))
        assert [c.key for c in found] == ["leafnodes.advertise"]
