"""Tests for operator mode: ``leafnode.config.decode_jwt`` and ``services.router.jwt``.

The accept/refuse outcomes of ``TestAuthenticate`` were checked against
nats-server 2.15.1 and 2.9.10 with the same JWTs over real nats-py clients
(tests/router/test_operator_mode.py repeats a subset against both).
"""

from __future__ import annotations

import base64
import json
import time
from typing import TYPE_CHECKING

import nkeys
import pytest

from leafnode.config import (
    JwtError,
    OperatorSettings,
    Permissions,
    RouterSettings,
    SubjectPermission,
    decode_jwt,
)
from services.router.auth import Authenticator, AuthError
from services.router.jwt import (
    JwtAuthError,
    OperatorTrust,
    decode_signature,
    permissions_from_claims,
)
from tests.support._jwt import JwtAccount, JwtOperator, JwtUser, encode_jwt, public_key
from tests.support._uplink import _new_keys

if TYPE_CHECKING:
    from collections.abc import Callable

NOW = int(time.time())
NONCE = "abcdefghijklmno"
HEADER = base64.urlsafe_b64encode(b'{"typ":"JWT","alg":"ed25519-nkey"}').decode().rstrip("=")


def _settings(op: JwtOperator) -> OperatorSettings:
    return OperatorSettings(
        operator_jwts=(op.jwt,),
        system_account=op.system.public_key if op.system else None,
        resolver="MEMORY",
        preload=tuple((acc.public_key, acc.jwt) for acc in op.accounts.values()),
    )


def _auth(op: JwtOperator) -> Authenticator:
    return Authenticator(RouterSettings(operator=_settings(op)))


def _connect(user: JwtUser, nonce: str = NONCE) -> dict[str, object]:
    return {"jwt": user.jwt, "sig": user.sign(nonce)}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _hand_user(issuer: nkeys.KeyPair, **nats: object) -> JwtUser:
    """A user JWT with exactly these ``nats`` fields (beyond type and version)."""
    keys = _new_keys(nkeys.PREFIX_BYTE_USER)
    claims = {"sub": public_key(keys), "name": "u", "nats": {"type": "user", "version": 2, **nats}}
    return JwtUser(keys, encode_jwt(claims, issuer))


class TestDecodeJwt:
    def test_valid_user_jwt(self) -> None:
        acc = JwtOperator().account("A")
        user = acc.user("bob", expires=NOW + 60)
        claims = decode_jwt(user.jwt, "user")
        assert claims.kind == "user"
        assert claims.issuer == acc.public_key
        assert claims.subject == user.public_key
        assert claims.name == "bob"
        assert claims.expires == NOW + 60
        assert claims.nats["type"] == "user"

    def test_operator_and_account_jwts(self) -> None:
        op = JwtOperator()
        assert decode_jwt(op.jwt, "operator").subject == op.public_key
        assert decode_jwt(op.accounts["SYS"].jwt, "account").issuer == op.public_key

    def test_tampered_claims_fail_the_signature(self) -> None:
        user = JwtOperator().account("A").user()
        head, body, sig = user.jwt.split(".")
        claims = json.loads(base64.urlsafe_b64decode(body + "=="))
        claims["name"] = "mallory"
        forged = f"{head}.{_b64(json.dumps(claims).encode())}.{sig}"
        with pytest.raises(JwtError, match="signature does not verify"):
            decode_jwt(forged, "user")

    def test_wrong_type_is_refused(self) -> None:
        acc = JwtOperator().account("A")
        with pytest.raises(JwtError, match="expected a JWT of type 'user', got type 'account'"):
            decode_jwt(acc.jwt, "user")

    def test_issuer_of_the_wrong_kind_is_refused(self) -> None:
        op = JwtOperator()
        user = _hand_user(op.keys)  # a user JWT issued by an operator key
        with pytest.raises(JwtError, match="not a valid public account nkey"):
            decode_jwt(user.jwt, "user")

    @pytest.mark.parametrize(
        ("header", "reason"),
        [
            ({"typ": "JWT", "alg": "HS256"}, "header must be"),
            ({"typ": "JOSE", "alg": "ed25519-nkey"}, "header must be"),
        ],
    )
    def test_header_is_checked(self, header: dict[str, str], reason: str) -> None:
        user = JwtOperator().account("A").user()
        _, body, sig = user.jwt.split(".")
        with pytest.raises(JwtError, match=reason):
            decode_jwt(f"{_b64(json.dumps(header).encode())}.{body}.{sig}", "user")

    def test_header_case_is_ignored(self) -> None:
        # nats-io/jwt compares typ upper-cased and alg lower-cased.
        acc = JwtOperator().account("A")
        keys = _new_keys(nkeys.PREFIX_BYTE_USER)
        head = _b64(b'{"typ":"jwt","alg":"ED25519-NKEY"}')
        claims = {"sub": public_key(keys), "iss": acc.public_key, "nats": {"type": "user"}}
        body = _b64(json.dumps({**claims, "nats": {"type": "user", "version": 2}}).encode())
        sig = _b64(acc.keys.sign(f"{head}.{body}".encode()))
        assert decode_jwt(f"{head}.{body}.{sig}", "user").subject == public_key(keys)

    @pytest.mark.parametrize(
        ("token", "reason"),
        [
            ("a.b", "three parts"),
            ("a.b.c.d", "three parts"),
            ("e30=.e30.AA", "header is not URL-safe base64"),
            (f"{HEADER}.e3+.AA", "claims is not URL-safe base64"),
            (f"{HEADER}.e30.AA", "not a version 1 or 2 NATS JWT"),
            ("bm90IGpzb24.e30.AA", "header is not valid JSON"),
            ("W10.e30.AA", "header is not a JSON object"),
            ("x" * (1024 * 1024 + 1), "longer than"),
        ],
    )
    def test_malformed(self, token: str, reason: str) -> None:
        with pytest.raises(JwtError, match=reason):
            decode_jwt(token, "user")

    def test_version_1_claims_signed_as_version_2_are_refused(self) -> None:
        # nats.version 1 makes nats-io/jwt read the claims as v1, whose
        # signature covers the claims part only.
        acc = JwtOperator().account("A")
        user = _hand_user(acc.keys)
        head, body, _ = user.jwt.split(".")
        claims = json.loads(base64.urlsafe_b64decode(body + "=="))
        claims["nats"]["version"] = 1
        body = _b64(json.dumps(claims).encode())
        sig = _b64(acc.keys.sign(f"{head}.{body}".encode()))
        with pytest.raises(JwtError, match="signature does not verify"):
            decode_jwt(f"{head}.{body}.{sig}", "user")

    def test_time_problem(self) -> None:
        acc = JwtOperator().account("A")
        claims = decode_jwt(acc.user(expires=NOW, not_before=NOW - 10).jwt, "user")
        assert claims.time_problem(NOW + 0.9) is None  # whole seconds, as nats-io/jwt
        assert claims.time_problem(NOW + 1) == "expired"
        assert claims.time_problem(NOW - 11) == "not yet valid"


class TestPermissionsFromClaims:
    def test_nothing_means_unrestricted(self) -> None:
        assert permissions_from_claims({}) is None
        assert permissions_from_claims({"pub": {}, "sub": {"allow": [], "deny": []}}) is None

    def test_pub_sub_and_responses(self) -> None:
        perms = permissions_from_claims(
            {
                "pub": {"allow": ["a.>"], "deny": ["a.b"]},
                "sub": {"allow": ["q.* grp"]},
                "resp": {"max": 3, "ttl": 1_500_000_000},
            }
        )
        assert perms == Permissions(
            publish=SubjectPermission(allow=("a.>",), deny=("a.b",)),
            subscribe=SubjectPermission(allow=("q.* grp",)),
            allow_responses=True,
            responses_max=3,
            responses_expires_s=1.5,
        )

    def test_empty_resp_keeps_server_defaults(self) -> None:
        perms = permissions_from_claims({"resp": {}})
        assert perms == Permissions(allow_responses=True, responses_max=0)

    @pytest.mark.parametrize(
        "nats",
        [{"pub": []}, {"sub": {"allow": "x"}}, {"pub": {"deny": [1]}}, {"resp": {"max": "1"}}],
    )
    def test_malformed(self, nats: dict[str, object]) -> None:
        with pytest.raises(JwtAuthError):
            permissions_from_claims(nats)


class TestDecodeSignature:
    @pytest.mark.parametrize(
        "encode",
        [
            base64.b64encode,
            base64.urlsafe_b64encode,
            lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"="),
            lambda raw: base64.b64encode(raw).rstrip(b"="),
        ],
    )
    def test_any_flavour(self, encode: Callable[[bytes], bytes]) -> None:
        raw = bytes(range(250, 256)) + b"\xfb\xff"  # encodes with '-'/'_' or '+'/'/'
        assert decode_signature(encode(raw).decode()) == raw

    def test_garbage(self) -> None:
        with pytest.raises(ValueError, match="base64"):
            decode_signature("not base64!")


class TestAuthenticate:
    def test_accepted_into_the_account(self) -> None:
        op = JwtOperator()
        acc = op.account("A")
        user = acc.user()
        auth = _auth(op)
        assert auth.auth_required
        assert auth.auth_configured
        assert auth.nonce_required
        assert auth.operator_mode
        assert not auth.is_expensive(_connect(user))
        assert auth.accounts == ("$G", op.accounts["SYS"].public_key, acc.public_key)
        ident = auth.authenticate(_connect(user), NONCE)
        assert (ident.account, ident.user, ident.permissions) == (
            acc.public_key,
            user.public_key,
            None,
        )
        assert ident.expires_at is None

    def test_nats_py_signature_flavour(self) -> None:
        # nats-py sends standard padded base64.
        op = JwtOperator()
        user = op.account("A").user()
        sig = base64.b64encode(user.keys.sign(NONCE.encode())).decode()
        assert _auth(op).authenticate({"jwt": user.jwt, "sig": sig}, NONCE).user == user.public_key

    def test_expiry_is_reported(self) -> None:
        op = JwtOperator()
        user = op.account("A").user(expires=NOW + 3600)
        assert _auth(op).authenticate(_connect(user), NONCE).expires_at == NOW + 3600

    @pytest.mark.parametrize(
        ("options", "reason"),
        [
            ({}, "a user JWT is required"),
            ({"user": "a", "pass": "b"}, "a user JWT is required"),
            ({"jwt": "eyJ.x.y", "sig": "AA"}, "user JWT not valid"),
            ({"jwt": 5}, "not a string"),
        ],
    )
    def test_no_usable_jwt(self, options: dict[str, object], reason: str) -> None:
        op = JwtOperator()
        op.account("A")
        with pytest.raises(AuthError, match=reason):
            _auth(op).authenticate(options, NONCE)

    def test_signature_missing_or_wrong(self) -> None:
        op = JwtOperator()
        acc = op.account("A")
        user, other = acc.user(), acc.user()
        auth = _auth(op)
        with pytest.raises(AuthError, match="signature missing"):
            auth.authenticate({"jwt": user.jwt}, NONCE)
        with pytest.raises(AuthError, match="not verified"):
            auth.authenticate({"jwt": user.jwt, "sig": other.sign(NONCE)}, NONCE)
        with pytest.raises(AuthError, match="not verified"):
            auth.authenticate(_connect(user, nonce="another-nonce00"), NONCE)
        with pytest.raises(AuthError, match="not verified"):
            auth.authenticate({"jwt": user.jwt, "sig": "%%%"}, NONCE)
        with pytest.raises(AuthError, match="no nonce"):
            auth.authenticate(_connect(user), None)

    def test_account_not_preloaded(self) -> None:
        op = JwtOperator()
        stray = JwtAccount(op, "stray")
        with pytest.raises(AuthError, match="is not preloaded"):
            _auth(op).authenticate(_connect(stray.user()), NONCE)

    def test_issuer_account_must_own_the_issuer(self) -> None:
        op = JwtOperator()
        a, b = op.account("A"), op.account("B")
        user = _hand_user(a.keys, issuer_account=b.public_key)
        with pytest.raises(AuthError, match=r"not account \S+ or one of its signing keys"):
            _auth(op).authenticate(_connect(user), NONCE)

    def test_signing_key(self) -> None:
        op = JwtOperator()
        acc = op.account("A")
        key = acc.add_signing_key()
        user = acc.user(signing_key=key)
        assert _auth(op).authenticate(_connect(user), NONCE).account == acc.public_key

    def test_signing_key_needs_issuer_account(self) -> None:
        op = JwtOperator()
        acc = op.account("A")
        user = _hand_user(acc.add_signing_key())
        with pytest.raises(AuthError, match="is not preloaded"):
            _auth(op).authenticate(_connect(user), NONCE)

    def test_unknown_signing_key(self) -> None:
        op = JwtOperator()
        acc = op.account("A")
        foreign = _new_keys(nkeys.PREFIX_BYTE_ACCOUNT)
        user = acc.user(signing_key=foreign)
        with pytest.raises(AuthError, match="or one of its signing keys"):
            _auth(op).authenticate(_connect(user), NONCE)

    def test_scoped_signing_key_supplies_permissions(self) -> None:
        op = JwtOperator()
        acc = op.account("A")
        key = acc.add_signing_key(scope={"pub": {"allow": ["s.>"]}, "sub": {"deny": ["t"]}})
        ident = _auth(op).authenticate(_connect(acc.user(signing_key=key)), NONCE)
        assert ident.permissions == Permissions(
            publish=SubjectPermission(allow=("s.>",)), subscribe=SubjectPermission(deny=("t",))
        )

    def test_scoped_user_may_not_carry_permissions(self) -> None:
        op = JwtOperator()
        acc = op.account("A")
        key = acc.add_signing_key(scope={"pub": {"allow": ["s.>"]}})
        user = acc.user(signing_key=key, pub={"allow": [">"]})
        with pytest.raises(AuthError, match="scoped users require no permissions"):
            _auth(op).authenticate(_connect(user), NONCE)

    def test_permission_templates_are_refused(self) -> None:
        op = JwtOperator()
        acc = op.account("A")
        key = acc.add_signing_key(scope={"pub": {"allow": ["u.{{name()}}.>"]}})
        with pytest.raises(AuthError, match="templates"):
            _auth(op).authenticate(_connect(acc.user(signing_key=key)), NONCE)

    @pytest.mark.parametrize(
        ("expires", "not_before", "reason"),
        [(NOW - 5, None, "user JWT expired"), (None, NOW + 3600, "user JWT not yet valid")],
        # Stable ids: pytest-xdist workers must collect the same names.
        ids=["expired", "not-yet-valid"],
    )
    def test_user_times(self, expires: int | None, not_before: int | None, reason: str) -> None:
        op = JwtOperator()
        user = op.account("A").user(expires=expires, not_before=not_before)
        with pytest.raises(AuthError, match=reason):
            _auth(op).authenticate(_connect(user), NONCE)

    @pytest.mark.parametrize(
        ("expires", "not_before", "reason"),
        [(NOW - 5, None, "account JWT expired"), (None, NOW + 3600, "account JWT not yet valid")],
        ids=["expired", "not-yet-valid"],
    )
    def test_account_times(self, expires: int | None, not_before: int | None, reason: str) -> None:
        op = JwtOperator()
        user = op.account("A", expires=expires, not_before=not_before).user()
        with pytest.raises(AuthError, match=reason):
            _auth(op).authenticate(_connect(user), NONCE)

    def test_revocations(self) -> None:
        op = JwtOperator()
        acc = op.account("A")
        revoked = acc.user(issued_at=NOW - 10)
        reissued = acc.user(issued_at=NOW)
        acc.revoke(revoked.public_key, NOW - 10)  # at iat: revoked
        acc.revoke(reissued.public_key, NOW - 1)  # before iat: a newer JWT is fine
        auth = _auth(op)
        with pytest.raises(AuthError, match="is revoked"):
            auth.authenticate(_connect(revoked), NONCE)
        assert auth.authenticate(_connect(reissued), NONCE).user == reissued.public_key

    def test_revoke_all(self) -> None:
        op = JwtOperator()
        acc = op.account("A")
        old, new = acc.user(issued_at=NOW - 100), acc.user(issued_at=NOW + 1)
        acc.revoke("*", NOW)
        auth = _auth(op)
        with pytest.raises(AuthError, match="is revoked"):
            auth.authenticate(_connect(old), NONCE)
        assert auth.authenticate(_connect(new), NONCE).user == new.public_key

    @pytest.mark.parametrize(
        ("types", "accepted"),
        [
            (("STANDARD",), True),
            (("standard", "WEBSOCKET"), True),
            (("LEAFNODE",), False),
            (("UNKNOWN",), False),
        ],
    )
    def test_connection_types(self, types: tuple[str, ...], accepted: bool) -> None:
        op = JwtOperator()
        user = op.account("A").user(connection_types=types)
        auth = _auth(op)
        if accepted:
            auth.authenticate(_connect(user), NONCE)
        else:
            with pytest.raises(AuthError, match="STANDARD not allowed"):
                auth.authenticate(_connect(user), NONCE)

    def test_bearer_token_needs_no_signature(self) -> None:
        op = JwtOperator()
        user = op.account("A").user(bearer=True)
        assert _auth(op).authenticate({"jwt": user.jwt}, NONCE).user == user.public_key

    def test_bearer_token_disallowed_by_account(self) -> None:
        op = JwtOperator()
        user = op.account("A", disallow_bearer=True).user(bearer=True)
        with pytest.raises(AuthError, match="does not allow bearer"):
            _auth(op).authenticate({"jwt": user.jwt}, NONCE)

    def test_user_permissions(self) -> None:
        op = JwtOperator()
        user = op.account("A").user(
            pub={"allow": ["ok.>"], "deny": ["ok.no"]},
            sub={"allow": ["ok.>"]},
            resp={"max": 2, "ttl": 0},
        )
        perms = _auth(op).authenticate(_connect(user), NONCE).permissions
        assert perms == Permissions(
            publish=SubjectPermission(allow=("ok.>",), deny=("ok.no",)),
            subscribe=SubjectPermission(allow=("ok.>",)),
            allow_responses=True,
            responses_max=2,
        )

    def test_account_default_permissions(self) -> None:
        op = JwtOperator()
        acc = op.account("A", default_permissions={"pub": {"deny": [">"]}})
        auth = _auth(op)
        plain = auth.authenticate(_connect(acc.user()), NONCE)
        assert plain.permissions == Permissions(publish=SubjectPermission(deny=(">",)))
        own = auth.authenticate(_connect(acc.user(sub={"allow": ["x"]})), NONCE)
        assert own.permissions == Permissions(subscribe=SubjectPermission(allow=("x",)))

    def test_src_restriction(self) -> None:
        op = JwtOperator()
        acc = op.account("A")
        user = _hand_user(acc.keys, src=["10.0.0.0/8", "127.0.0.1/32"])
        auth = _auth(op)
        ok = auth.authenticate(_connect(user), NONCE, client_host="127.0.0.1")
        assert ok.user == user.public_key
        with pytest.raises(AuthError, match="not allowed by the JWT's src"):
            auth.authenticate(_connect(user), NONCE, client_host="192.168.1.1")
        with pytest.raises(AuthError, match="not allowed by the JWT's src"):
            auth.authenticate(_connect(user), NONCE)  # address unknown: refuse

    def test_connect_time_windows_are_refused(self) -> None:
        op = JwtOperator()
        user = _hand_user(op.account("A").keys, times=[{"start": "00:00:00", "end": "23:59:59"}])
        with pytest.raises(AuthError, match="not supported"):
            _auth(op).authenticate(_connect(user), NONCE)

    def test_accounts_are_distinct(self) -> None:
        op = JwtOperator()
        a, b = op.account("A"), op.account("B")
        auth = _auth(op)
        assert auth.authenticate(_connect(a.user()), NONCE).account == a.public_key
        assert auth.authenticate(_connect(b.user()), NONCE).account == b.public_key


class TestOperatorTrust:
    def test_operator_signing_key_issues_accounts(self) -> None:
        op = JwtOperator(signing_key=True, strict_signing=True, system_account=False)
        acc = op.account("A", issuer=op.signing_keys[0])
        trust = OperatorTrust(_settings(op))
        assert trust.accounts == (acc.public_key,)
        user = acc.user("bob")
        grant = trust.authenticate(user.jwt, user.sign(NONCE), NONCE, now=NOW)
        assert (grant.account, grant.user, grant.name) == (acc.public_key, user.public_key, "bob")

    def test_strict_signing_distrusts_the_identity_key(self) -> None:
        op = JwtOperator(signing_key=True, strict_signing=True, system_account=False)
        op.account("A")
        with pytest.raises(ValueError, match="not signed by a trusted operator"):
            OperatorTrust(_settings(op))

    def test_foreign_account_is_refused(self) -> None:
        op, other = JwtOperator(), JwtOperator()
        op.account("A", issuer=other.keys)
        with pytest.raises(ValueError, match="not signed by a trusted operator"):
            OperatorTrust(_settings(op))

    def test_account_listed_under_another_key(self) -> None:
        op = JwtOperator(system_account=False)
        a = op.account("A")
        settings = OperatorSettings(operator_jwts=(op.jwt,), preload=(("AXXX", a.jwt),))
        with pytest.raises(ValueError, match="the JWT is for account"):
            OperatorTrust(settings)

    def test_bad_operator_jwt(self) -> None:
        with pytest.raises(ValueError, match="invalid operator JWT"):
            OperatorTrust(OperatorSettings(operator_jwts=("eyJ.x.y",)))

    def test_jwt_outside_operator_mode_is_still_refused(self) -> None:
        user = JwtOperator().account("A").user()
        auth = Authenticator(RouterSettings(token="t"))
        with pytest.raises(AuthError, match="no operator"):
            auth.authenticate({**_connect(user), "auth_token": "t"}, NONCE)

    def test_jwt_error_is_an_auth_error(self) -> None:
        # The router only knows AuthError: every refusal must arrive as one.
        op = JwtOperator()
        user = op.account("A").user(expires=NOW - 5)
        with pytest.raises(AuthError) as info:
            _auth(op).authenticate(_connect(user), NONCE)
        assert not isinstance(info.value, JwtAuthError)
