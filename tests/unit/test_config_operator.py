"""Operator mode in the config: operator, system_account, resolver, resolver_preload.

The mixing rules and their messages follow nats-server 2.15.1, checked by
starting it with the same files: ``operators do not allow Accounts to be
configured directly``, ``... users ...``, ``no_auth_user not compatible with
Trusted Operator``, ``system_account in config and operator JWT must be
identical``, ``error resolving system account: account missing``; a single
user or a token is accepted and then never authenticates anyone.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from leafnode.config import ConfigError, OperatorSettings, Settings, load, loads
from tests.support._jwt import JwtAccount, JwtOperator

if TYPE_CHECKING:
    from pathlib import Path

NOW = int(time.time())


def s(text: str, *, base_dir: Path | None = None) -> Settings:
    return loads(text, base_dir=base_dir, environ={})


def error(text: str, *, base_dir: Path | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        s(text, base_dir=base_dir)
    return info.value


def _at(err: ConfigError, line: int, column: int, reason: str) -> None:
    assert (err.source, err.line, err.column) == ("<string>", line, column), str(err)
    assert reason in err.reason, str(err)


def _line(text: str, needle: str) -> int:
    """1-based number of the first line of ``text`` containing ``needle``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


class TestParsing:
    def test_inline_operator(self) -> None:
        op = JwtOperator()
        acc = op.account("A")
        settings = s(op.config())
        assert op.system is not None
        assert settings.router.operator == OperatorSettings(
            operator_jwts=(op.jwt,),
            system_account=op.system.public_key,
            resolver="MEMORY",
            preload=((op.system.public_key, op.system.jwt), (acc.public_key, acc.jwt)),
        )
        assert settings.warnings == ()

    def test_system_account_from_the_operator_jwt(self) -> None:
        op = JwtOperator()
        text = "\n".join(line for line in op.config().splitlines() if "system_account" not in line)
        operator = s(text).router.operator
        assert operator is not None
        assert op.system is not None
        assert operator.system_account == op.system.public_key

    def test_no_system_account(self) -> None:
        op = JwtOperator(system_account=False)
        op.account("A")
        operator = s(op.config()).router.operator
        assert operator is not None
        assert operator.system_account is None

    @pytest.mark.parametrize("value", ["MEM", "mem", "Memory", '"MEMORY"'])
    def test_memory_resolver_spellings(self, value: str) -> None:
        op = JwtOperator()
        operator = s(op.config().replace("resolver: MEMORY", f"resolver: {value}")).router.operator
        assert operator is not None
        assert operator.resolver == "MEMORY"

    @pytest.mark.parametrize(
        ("operator_key", "resolver_key"),
        [("operators", "account_resolver"), ("root", "accounts_resolver"), ("roots", "resolver")],
    )
    def test_aliases(self, operator_key: str, resolver_key: str) -> None:
        op = JwtOperator()
        text = op.config().replace("operator:", f"{operator_key}:")
        text = text.replace("resolver: MEMORY", f"{resolver_key}: MEMORY")
        assert s(text).router.operator is not None

    def test_order_does_not_matter(self) -> None:
        op = JwtOperator()
        lines = op.config().splitlines()
        operator = s("\n".join([*lines[2:], *lines[:2]])).router.operator
        assert operator is not None
        assert operator.operator_jwts == (op.jwt,)

    def test_operator_file(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        op = JwtOperator()
        (tmp_path / "op.jwt").write_text(op.jwt + "\n")
        monkeypatch.chdir(tmp_path)  # relative to the working directory, as in nats-server
        operator = s(op.config(operator="op.jwt")).router.operator
        assert operator is not None
        assert operator.operator_jwts == (op.jwt,)

    def test_decorated_operator_file(self, tmp_path: Path) -> None:
        op = JwtOperator()
        (tmp_path / "op.jwt").write_text(
            "-----BEGIN TEST OPERATOR JWT-----\n"
            f"{op.jwt}\n"
            "------END TEST OPERATOR JWT------\n\n"
            "Some text nsc writes after the JWT.\n"
        )
        conf = tmp_path / "leaf.conf"
        conf.write_text(op.config(operator=str(tmp_path / "op.jwt")))
        operator = load(conf).router.operator
        assert operator is not None
        assert operator.operator_jwts == (op.jwt,)

    def test_two_operators(self) -> None:
        first, second = JwtOperator(system_account=False), JwtOperator(system_account=False)
        a, b = first.account("A"), second.account("B")
        text = (
            f"operator: [{first.jwt}, {second.jwt}]\nresolver: MEMORY\n"
            f"resolver_preload {{\n {a.public_key}: {a.jwt}\n {b.public_key}: {b.jwt}\n}}\n"
        )
        operator = s(text).router.operator
        assert operator is not None
        assert operator.operator_jwts == (first.jwt, second.jwt)
        assert [key for key, _ in operator.preload] == [a.public_key, b.public_key]

    def test_operator_signing_keys(self) -> None:
        op = JwtOperator(signing_key=True, strict_signing=True)
        op.account("A", issuer=op.signing_keys[0])
        # SYS is issued by the identity key, which strict signing distrusts.
        assert "not signed by the operator" in error(op.config()).reason

    def test_expired_account_is_a_warning(self) -> None:
        op = JwtOperator()
        acc = op.account("A", expires=NOW - 5)
        text = op.config()
        settings = s(text)
        line = _line(text, acc.public_key)
        assert settings.warnings == (
            f"<string>:{line}:3: resolver_preload.{acc.public_key}: the account JWT is "
            "expired; its users will be refused",
        )

    def test_remote_may_bind_a_preloaded_account(self) -> None:
        op = JwtOperator()
        acc = op.account("A")
        text = op.config() + f"leafnodes {{ remotes: [{{url: h, account: {acc.public_key}}}] }}"
        assert s(text).leafnodes.remotes[0].account == acc.public_key

    def test_remote_with_an_unknown_account(self) -> None:
        op = JwtOperator()
        stray = JwtAccount(op, "stray")
        text = op.config() + f"leafnodes {{ remotes: [{{url: h, account: {stray.public_key}}}] }}"
        assert "unknown account" in error(text).reason


class TestWithoutOperator:
    @pytest.mark.parametrize("line", ["system_account: ABC", "resolver: MEMORY"])
    def test_ignored_with_a_warning(self, line: str) -> None:
        key = line.split(":")[0]
        assert s(f"port: 1\n{line}\n").warnings == (
            f"<string>:2:1: {key} is not supported by leafnode; ignored "
            "(only used with an operator)",
        )

    def test_preload_ignored_with_a_warning(self) -> None:
        assert len(s("resolver_preload { A: x }").warnings) == 1

    def test_other_resolver_is_an_error(self) -> None:
        _at(error('resolver: URL("http://x/")'), 1, 1, "only MEMORY is supported")


class TestMixing:
    def test_accounts(self) -> None:
        text = JwtOperator().config() + "accounts {\n  X: {}\n}\n"
        _at(error(text), _line(text, "accounts"), 1, "operator mode does not allow accounts")

    def test_empty_accounts_block_is_fine(self) -> None:
        assert s(JwtOperator().config() + "accounts {}\n").router.accounts == ()

    @pytest.mark.parametrize(
        "users",
        [
            "[{user: a, password: b}]",
            f"[{{nkey: {JwtAccount(JwtOperator(), 'x').user().public_key}}}]",
        ],
        ids=["password", "nkey"],  # the nkey is random: keep test ids stable for xdist
    )
    def test_users(self, users: str) -> None:
        text = JwtOperator().config() + f"authorization {{ users: {users} }}\n"
        _at(
            error(text),
            _line(text, "authorization"),
            1,
            "operator mode does not allow users to be configured directly",
        )

    def test_no_auth_user(self) -> None:
        text = JwtOperator().config() + "no_auth_user: a\n"
        _at(error(text), _line(text, "no_auth_user"), 1, "no_auth_user is not compatible")

    @pytest.mark.parametrize(
        "block", ["{ user: a, password: b }", "{ token: t }", "{ permissions: { publish: x } }"]
    )
    def test_single_user_or_token_is_ignored(self, block: str) -> None:
        text = JwtOperator().config() + f"authorization {block}\n"
        settings = s(text)
        assert (settings.router.users, settings.router.token) == ((), None)
        assert settings.router.default_permissions is None
        line = _line(text, "authorization")
        assert settings.warnings == (
            f"<string>:{line}:1: authorization: user, password, token and permissions are "
            "ignored in operator mode (clients must present a user JWT)",
        )

    def test_authorization_timeout_still_applies(self) -> None:
        text = JwtOperator().config() + "authorization { timeout: 5 }\n"
        settings = s(text)
        assert settings.router.auth_timeout_s == 5.0
        assert settings.warnings == ()


class TestErrors:
    def test_garbage_inline_operator(self) -> None:
        _at(error("operator: eyJnope\nresolver: MEMORY"), 1, 1, "invalid operator JWT")

    def test_account_jwt_as_operator(self) -> None:
        op = JwtOperator()
        text = f"operator: {op.accounts['SYS'].jwt}\nresolver: MEMORY"
        _at(error(text), 1, 1, "expected a JWT of type 'operator', got type 'account'")

    def test_missing_operator_file(self, tmp_path: Path) -> None:
        err = error("operator: nowhere.jwt\nresolver: MEMORY", base_dir=tmp_path)
        _at(err, 1, 1, "does not exist")

    def test_operator_list_item_position(self) -> None:
        op = JwtOperator(system_account=False)
        _at(error(f"operator: [\n  {op.jwt}\n  eyJbad\n]\nresolver: MEM"), 3, 3, "invalid")

    def test_operator_without_resolver(self) -> None:
        text = "\n".join(
            line for line in JwtOperator().config().splitlines() if "resolver:" not in line
        )
        _at(error(text), 1, 1, "operator mode needs 'resolver: MEMORY'")

    @pytest.mark.parametrize(
        "value", ['URL("http://127.0.0.1:9090/jwt/v1/accounts/")', "{ type: full, dir: x }"]
    )
    def test_other_resolvers(self, value: str) -> None:
        text = JwtOperator().config().replace("resolver: MEMORY", f"resolver: {value}")
        _at(error(text), _line(text, "resolver:"), 1, "only MEMORY is supported by leafnode")

    def test_account_not_signed_by_the_operator(self) -> None:
        op, stranger = JwtOperator(), JwtOperator()
        acc = op.account("A", issuer=stranger.keys)
        text = op.config()
        _at(
            error(text),
            _line(text, acc.public_key),
            3,
            "not signed by the operator or one of its signing keys",
        )

    def test_account_listed_under_another_key(self) -> None:
        op = JwtOperator()
        a, b = op.account("A"), op.account("B")
        text = op.config().replace(f"{a.public_key}: {a.jwt}", f"{a.public_key}: {b.jwt}")
        _at(error(text), _line(text, a.public_key), 3, f"the JWT is for account {b.public_key}")

    @pytest.mark.parametrize(
        ("entry", "reason"),
        [
            ("NOTAKEY: eyJx", "'NOTAKEY' is not a valid account public key"),
            ("{acc}: [1]", "expected a string"),
            ("{acc}: eyJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.AA", "invalid account JWT"),
        ],
    )
    def test_bad_preload_entry(self, entry: str, reason: str) -> None:
        op = JwtOperator(system_account=False)
        acc = op.account("A")
        text = op.config().replace(f"{acc.public_key}: {acc.jwt}", entry.format(acc=acc.public_key))
        _at(error(text), _line(text, entry[:6].format(acc=acc.public_key)), 3, reason)

    def test_system_account_mismatch(self) -> None:
        op = JwtOperator()
        acc = op.account("A")
        assert op.system is not None
        text = op.config().replace(
            f"system_account: {op.system.public_key}", f"system_account: {acc.public_key}"
        )
        _at(error(text), 2, 1, "system_account in config and operator JWT must be identical")

    def test_system_account_not_preloaded(self) -> None:
        op = JwtOperator()
        assert op.system is not None
        text = op.config().replace(f"  {op.system.public_key}: {op.system.jwt}\n", "")
        _at(error(text), 2, 1, "is not in resolver_preload")

    def test_system_account_not_a_key(self) -> None:
        op = JwtOperator(system_account=False)
        text = op.config() + "system_account: SYS\n"
        _at(error(text), _line(text, "system_account"), 1, "not a valid account public key")

    def test_errors_name_the_file(self, tmp_path: Path) -> None:
        conf = tmp_path / "leaf.conf"
        conf.write_text("port: 1\noperator: eyJbad\nresolver: MEMORY\n")
        with pytest.raises(ConfigError) as info:
            load(conf)
        assert str(info.value).startswith(f"{conf}:2:1: operator: invalid operator JWT: ")
