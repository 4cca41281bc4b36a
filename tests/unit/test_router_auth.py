"""Tests for services.router.auth: every auth mode of the client port.

The expected outcomes were checked against nats-server 2.15.1 with the same
configurations (raw-socket CONNECTs); the few intended differences are named
in the test names and in the module docstring of ``services.router.auth``.
"""

from __future__ import annotations

import base64
import os
from dataclasses import replace
from typing import TYPE_CHECKING

import bcrypt
import nkeys
import pytest

from leafnode.config import (
    AccountSettings,
    Permissions,
    RouterSettings,
    SubjectPermission,
    UserSettings,
    WebsocketSettings,
)
from services.router.auth import Authenticator, AuthError, Identity

if TYPE_CHECKING:
    from collections.abc import Callable

PUB_X = Permissions(publish=SubjectPermission(allow=("x",)))
PUB_Y = Permissions(publish=SubjectPermission(allow=("y",)))


def _hash(secret: str) -> str:
    # Cost 4 (the minimum) keeps the test fast; the server accepts any cost.
    return bcrypt.hashpw(secret.encode(), bcrypt.gensalt(4)).decode()


class _NkeyUser:
    def __init__(self) -> None:
        self.kp = nkeys.from_seed(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER))
        self.public = self.kp.public_key.decode()

    def sig(self, nonce: str) -> str:
        raw = self.kp.sign(nonce.encode())
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class TestNoAuth:
    def test_everyone_is_global_account(self) -> None:
        auth = Authenticator(RouterSettings())
        assert not auth.auth_required
        assert not auth.auth_configured
        assert not auth.nonce_required
        assert auth.authenticate({}, None) == Identity("$G", None, None)

    def test_credentials_are_ignored(self) -> None:
        auth = Authenticator(RouterSettings())
        ident = auth.authenticate({"user": "zz", "pass": "x", "jwt": "eyJ.x.y"}, None)
        assert ident == Identity("$G", None, None)

    def test_accounts_without_users_need_no_auth(self) -> None:
        auth = Authenticator(RouterSettings(accounts=(AccountSettings("A"),)))
        assert not auth.auth_required
        assert auth.accounts == ("$G", "A")
        assert auth.authenticate({}, None).account == "$G"

    def test_never_expensive(self) -> None:
        assert not Authenticator(RouterSettings()).is_expensive({"user": "a"})


class TestUserPassword:
    def auth(self, password: str = "pa") -> Authenticator:
        users = (
            UserSettings(user="a", password=password),
            UserSettings(user="b", password="pb", permissions=PUB_Y),
        )
        return Authenticator(RouterSettings(users=users, default_permissions=PUB_X))

    def test_plain_password(self) -> None:
        auth = self.auth()
        assert auth.auth_required
        assert not auth.nonce_required
        ident = auth.authenticate({"user": "a", "pass": "pa"}, None)
        assert ident.account == "$G"
        assert ident.user == "a"

    def test_default_permissions_fill_in(self) -> None:
        auth = self.auth()
        assert auth.authenticate({"user": "a", "pass": "pa"}, None).permissions == PUB_X
        assert auth.authenticate({"user": "b", "pass": "pb"}, None).permissions == PUB_Y

    @pytest.mark.parametrize(
        "options",
        [
            {"user": "a", "pass": "wrong"},
            {"user": "a"},
            {"user": "nobody", "pass": "pa"},
            {"pass": "pa"},
            {"auth_token": "pa"},
            {},
        ],
    )
    def test_refused(self, options: dict[str, object]) -> None:
        with pytest.raises(AuthError):
            self.auth().authenticate(options, None)

    def test_bcrypt_password(self) -> None:
        auth = self.auth(_hash("secret"))
        assert auth.is_expensive({"user": "a", "pass": "secret"})
        assert not auth.is_expensive({"user": "b", "pass": "pb"})
        assert auth.authenticate({"user": "a", "pass": "secret"}, None).user == "a"
        with pytest.raises(AuthError):
            auth.authenticate({"user": "a", "pass": "Secret"}, None)

    @pytest.mark.parametrize("prefix", ["$2a$", "$2y$"])
    def test_bcrypt_prefixes(self, prefix: str) -> None:
        auth = self.auth(prefix + _hash("secret")[4:])
        assert auth.authenticate({"user": "a", "pass": "secret"}, None).user == "a"

    def test_bcrypt_password_over_72_bytes_is_refused(self) -> None:
        auth = self.auth(_hash("x" * 72))
        with pytest.raises(AuthError):
            auth.authenticate({"user": "a", "pass": "x" * 80}, None)

    def test_hash_is_not_a_password(self) -> None:
        hashed = _hash("secret")
        with pytest.raises(AuthError):
            self.auth(hashed).authenticate({"user": "a", "pass": hashed}, None)

    def test_user_without_password(self) -> None:
        auth = Authenticator(RouterSettings(users=(UserSettings(user="a"),)))
        assert auth.authenticate({"user": "a"}, None).user == "a"
        with pytest.raises(AuthError):
            auth.authenticate({"user": "a", "pass": "x"}, None)

    def test_non_string_field_is_refused(self) -> None:
        with pytest.raises(AuthError, match="not a string"):
            self.auth().authenticate({"user": "a", "pass": 1}, None)


class TestToken:
    def test_plain_token(self) -> None:
        auth = Authenticator(RouterSettings(token="tk", default_permissions=PUB_X))
        assert auth.auth_required
        assert auth.authenticate({"auth_token": "tk"}, None) == Identity("$G", None, PUB_X)
        with pytest.raises(AuthError):
            auth.authenticate({"auth_token": "tK"}, None)
        with pytest.raises(AuthError):
            auth.authenticate({"user": "tk"}, None)
        with pytest.raises(AuthError):
            auth.authenticate({}, None)

    def test_bcrypt_token(self) -> None:
        auth = Authenticator(RouterSettings(token=_hash("tk")))
        assert auth.is_expensive({"auth_token": "tk"})
        assert auth.authenticate({"auth_token": "tk"}, None).account == "$G"
        with pytest.raises(AuthError):
            auth.authenticate({"auth_token": "nope"}, None)


class TestNkey:
    def setup_method(self) -> None:
        self.key = _NkeyUser()
        self.auth = Authenticator(
            RouterSettings(users=(UserSettings(nkey=self.key.public, permissions=PUB_X),))
        )
        self.nonce = self.auth.new_nonce()

    def test_nonce_shape(self) -> None:
        assert self.auth.nonce_required
        assert len(self.nonce) == 15
        assert set(self.nonce) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )
        assert self.auth.new_nonce() != self.nonce

    def test_valid_signature(self) -> None:
        options = {"nkey": self.key.public, "sig": self.key.sig(self.nonce)}
        assert not self.auth.is_expensive(options)
        assert self.auth.authenticate(options, self.nonce) == Identity("$G", self.key.public, PUB_X)

    @pytest.mark.parametrize(
        "encode",
        [base64.urlsafe_b64encode, base64.standard_b64encode],
        ids=["url", "std"],
    )
    def test_any_base64_flavour(self, encode: Callable[[bytes], bytes]) -> None:
        sig = encode(self.key.kp.sign(self.nonce.encode())).decode()
        ident = self.auth.authenticate({"nkey": self.key.public, "sig": sig}, self.nonce)
        assert ident.user == self.key.public
        unpadded = {"nkey": self.key.public, "sig": sig.rstrip("=")}
        assert self.auth.authenticate(unpadded, self.nonce).user == self.key.public

    def test_signature_of_other_nonce(self) -> None:
        options = {"nkey": self.key.public, "sig": self.key.sig(self.auth.new_nonce())}
        with pytest.raises(AuthError, match="signature not verified"):
            self.auth.authenticate(options, self.nonce)

    def test_signature_by_other_key(self) -> None:
        options = {"nkey": self.key.public, "sig": _NkeyUser().sig(self.nonce)}
        with pytest.raises(AuthError, match="signature not verified"):
            self.auth.authenticate(options, self.nonce)

    @pytest.mark.parametrize("sig", ["AAAA", "not base64!", ""])
    def test_bad_or_missing_signature(self, sig: str) -> None:
        with pytest.raises(AuthError):
            self.auth.authenticate({"nkey": self.key.public, "sig": sig}, self.nonce)

    def test_no_nonce_sent(self) -> None:
        options = {"nkey": self.key.public, "sig": self.key.sig(self.nonce)}
        with pytest.raises(AuthError):
            self.auth.authenticate(options, None)

    def test_unknown_nkey(self) -> None:
        other = _NkeyUser()
        with pytest.raises(AuthError, match="unknown nkey"):
            self.auth.authenticate({"nkey": other.public, "sig": other.sig(self.nonce)}, self.nonce)

    def test_invalid_configured_nkey(self) -> None:
        with pytest.raises(ValueError, match="nkey"):
            Authenticator(RouterSettings(users=(UserSettings(nkey="UABC"),)))
        # An account key (A...) is not a user key.
        seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_ACCOUNT)
        account_key = nkeys.from_seed(seed).public_key.decode()
        with pytest.raises(ValueError, match="user nkey"):
            Authenticator(RouterSettings(users=(UserSettings(nkey=account_key),)))

    def test_nkeys_and_users_together(self) -> None:
        auth = Authenticator(
            RouterSettings(
                users=(UserSettings(nkey=self.key.public), UserSettings(user="a", password="pa"))
            )
        )
        assert auth.authenticate({"user": "a", "pass": "pa"}, self.nonce).user == "a"
        with pytest.raises(AuthError):
            auth.authenticate({"nkey": self.key.public, "user": "a", "pass": "pa"}, self.nonce)


class TestNoAuthUser:
    def settings(self, b_password: str = "pb") -> RouterSettings:
        users = (
            UserSettings(user="a", password="pa"),
            UserSettings(user="b", password=b_password, permissions=PUB_X),
        )
        return RouterSettings(users=users, no_auth_user="b")

    def test_info_says_no_auth_required(self) -> None:
        # nats-server 2.15.1 omits auth_required from INFO with no_auth_user.
        auth = Authenticator(self.settings())
        assert not auth.auth_required
        assert auth.auth_configured

    def test_anonymous_becomes_that_user(self) -> None:
        auth = Authenticator(self.settings())
        assert auth.authenticate({"verbose": False}, None) == Identity("$G", "b", PUB_X)

    def test_credentials_still_checked(self) -> None:
        auth = Authenticator(self.settings())
        assert auth.authenticate({"user": "a", "pass": "pa"}, None).user == "a"
        for options in ({"user": "a", "pass": "no"}, {"user": "b"}, {"pass": "pa"}):
            with pytest.raises(AuthError):
                auth.authenticate(options, None)

    def test_unknown_nkey_field_without_nkey_users_is_anonymous(self) -> None:
        # nats-server only looks at "nkey" when nkey users exist.
        auth = Authenticator(self.settings())
        assert auth.authenticate({"nkey": "UAAA"}, None).user == "b"

    def test_bcrypt_password_differs_from_nats_server(self) -> None:
        # nats-server 2.15.1 refuses this client (it bcrypt-compares the hash
        # with itself); we let the no_auth_user in.
        auth = Authenticator(self.settings(b_password=_hash("pb")))
        assert not auth.is_expensive({})
        assert auth.authenticate({}, None).user == "b"

    def test_account_binding(self) -> None:
        accounts = (
            AccountSettings("A", users=(UserSettings(user="a", password="pa"),)),
            AccountSettings("B", users=(UserSettings(user="b", password="pb"),)),
        )
        auth = Authenticator(RouterSettings(accounts=accounts, no_auth_user="b"))
        assert auth.authenticate({}, None) == Identity("B", "b", None)
        assert auth.authenticate({"user": "a", "pass": "pa"}, None).account == "A"

    def test_nkey_no_auth_user(self) -> None:
        key = _NkeyUser()
        auth = Authenticator(
            RouterSettings(
                users=(UserSettings(nkey=key.public, permissions=PUB_Y),),
                no_auth_user=key.public,
            )
        )
        assert auth.authenticate({}, auth.new_nonce()) == Identity("$G", key.public, PUB_Y)
        # nats-server skips the signature for the no_auth_user's own nkey.
        assert auth.authenticate({"nkey": key.public}, None).user == key.public

    def test_must_name_a_user(self) -> None:
        with pytest.raises(ValueError, match="not present"):
            Authenticator(RouterSettings(users=(UserSettings(user="a"),), no_auth_user="z"))
        with pytest.raises(ValueError, match="users/nkeys are not defined"):
            Authenticator(RouterSettings(token="tk", no_auth_user="z"))


class TestAccounts:
    def test_users_bound_to_their_account(self) -> None:
        key = _NkeyUser()
        accounts = (
            AccountSettings(
                "A",
                users=(
                    UserSettings(account="A", user="a", password="pa", permissions=PUB_Y),
                    UserSettings(account="A", nkey=key.public),
                ),
            ),
            AccountSettings("B", users=(UserSettings(user="b", password="pb"),)),
        )
        settings = RouterSettings(
            users=(UserSettings(user="g", password="pg"),),
            accounts=accounts,
            default_permissions=PUB_X,
        )
        auth = Authenticator(settings)
        assert auth.accounts == ("$G", "A", "B")
        assert auth.nonce_required
        assert auth.authenticate({"user": "a", "pass": "pa"}, None) == Identity("A", "a", PUB_Y)
        # The authorization block's permissions do not reach account users.
        assert auth.authenticate({"user": "b", "pass": "pb"}, None) == Identity("B", "b", None)
        assert auth.authenticate({"user": "g", "pass": "pg"}, None) == Identity("$G", "g", PUB_X)
        nonce = auth.new_nonce()
        ident = auth.authenticate({"nkey": key.public, "sig": key.sig(nonce)}, nonce)
        assert ident == Identity("A", key.public, None)

    def test_user_account_field_outside_accounts_block(self) -> None:
        auth = Authenticator(RouterSettings(users=(UserSettings(account="X", user="u"),)))
        assert auth.accounts == ("$G", "X")
        assert auth.authenticate({"user": "u"}, None).account == "X"


class TestJwt:
    def test_refused_when_auth_configured(self) -> None:
        auth = Authenticator(RouterSettings(users=(UserSettings(user="a", password="pa"),)))
        with pytest.raises(AuthError, match="no operator"):
            auth.authenticate({"jwt": "eyJhbGciOi.xx.yy", "sig": "AAAA"}, None)

    def test_refused_even_with_valid_other_credentials(self) -> None:
        # nats-server 2.15.1 ignores the JWT and accepts these; we refuse.
        auth = Authenticator(RouterSettings(users=(UserSettings(user="a", password="pa"),)))
        with pytest.raises(AuthError, match="no operator"):
            auth.authenticate({"jwt": "eyJ.x.y", "user": "a", "pass": "pa"}, None)

    def test_refused_with_no_auth_user(self) -> None:
        auth = Authenticator(
            RouterSettings(users=(UserSettings(user="a", password="pa"),), no_auth_user="a")
        )
        with pytest.raises(AuthError, match="no operator"):
            auth.authenticate({"jwt": "eyJ.x.y"}, None)


# -- websocket clients (Authenticator.for_websocket; checked live in
# tests/router/test_websocket_auth.py beside nats-server) ----------------------


def _ws(**auth: object) -> RouterSettings:
    return RouterSettings(
        users=(UserSettings(user="a", password="b"),),
        websocket=WebsocketSettings(port=1, no_tls=True, **auth),  # type: ignore[arg-type]
    )


def test_websocket_token_wins_over_its_user() -> None:
    """nats-server checks the block's token first and never looks at its user then."""
    auth = Authenticator.for_websocket(_ws(token="t", user="u", password="p"))
    assert auth.authenticate({"auth_token": "t"}, None).account == "$G"
    for options in ({"user": "u", "pass": "p"}, {"user": "a", "pass": "b"}):
        with pytest.raises(AuthError):
            auth.authenticate(options, None)


def test_websocket_user_has_no_default_permissions() -> None:
    settings = _ws(user="u", password="p")
    auth = Authenticator.for_websocket(replace(settings, default_permissions=PUB_X))
    assert auth.authenticate({"user": "u", "pass": "p"}, None).permissions is None


def test_websocket_without_its_own_auth_is_the_client_port() -> None:
    auth = Authenticator.for_websocket(_ws(user_cookie="u"))
    assert auth.auth_configured
    assert auth.authenticate({"user": "a", "pass": "b"}, None).user == "a"
    with pytest.raises(AuthError):
        auth.authenticate({}, None)
