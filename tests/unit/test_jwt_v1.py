"""Legacy (v1) NATS JWTs are read as nats-server reads them (issue 12 point 4).

nats-server decodes with nats-io/jwt v2, which accepts both headers
(``"alg":"ed25519-nkey"`` and v1's ``"alg":"ed25519"``) and both claim
versions: a top-level ``type`` (or ``nats.version: 1``) makes a v1 JWT, whose
signature covers the claims part only and whose ``nats`` object is migrated
to version 2's layout (decoder_{operator,account,user}.go). nats.py's
``resolver_preload.conf`` and nats.js's ``auth - creds``/``jwt`` tests use them.
"""

from __future__ import annotations

import base64
import json
import time
from typing import TYPE_CHECKING

import nkeys
import pytest

from leafnode.config import JwtError, OperatorSettings, decode_jwt, loads
from services.router.jwt import OperatorTrust
from tests.support._jwt import JwtOperator, encode_jwt, public_key
from tests.support._uplink import _b64, _new_keys

if TYPE_CHECKING:
    from pathlib import Path

NONCE = "nonce-for-v1-tests"


def _json(part: str) -> dict[str, object]:
    value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    assert isinstance(value, dict)
    return value


def _parts(token: str) -> tuple[dict[str, object], dict[str, object]]:
    head, body, _ = token.split(".")
    return _json(head), _json(body)


def _trust(op: JwtOperator) -> OperatorTrust:
    return OperatorTrust(
        OperatorSettings(
            operator_jwts=(op.jwt,),
            preload=tuple((acc.public_key, acc.jwt) for acc in op.accounts.values()),
        )
    )


class TestEncoder:
    """The test encoder writes what nats-io/jwt v1 wrote (checked by nats-server in
    tests/router/test_operator_v1.py)."""

    def test_v1_layout(self) -> None:
        op = JwtOperator(version=1)
        key = op.accounts["SYS"].add_signing_key()
        user = op.accounts["SYS"].user(signing_key=key)
        header, claims = _parts(user.jwt)
        assert header == {"typ": "jwt", "alg": "ed25519"}
        assert claims["type"] == "user"
        assert claims["issuer_account"] == op.accounts["SYS"].public_key
        nats = claims["nats"]
        assert isinstance(nats, dict)
        assert "version" not in nats
        assert "type" not in nats


class TestDecode:
    @pytest.mark.parametrize("kind", ["operator", "account", "user"])
    def test_v1_of_each_kind(self, kind: str) -> None:
        op = JwtOperator(version=1)
        acc = op.account("A")
        token = {"operator": op.jwt, "account": acc.jwt, "user": acc.user().jwt}[kind]
        claims = decode_jwt(token, kind)
        assert claims.version == 1
        assert claims.kind == kind
        assert claims.nats["type"] == kind

    def test_v1_user_migrated_as_nats_io_jwt_does(self) -> None:
        op = JwtOperator(version=1)
        acc = op.account("A")
        key = acc.add_signing_key()
        user = acc.user(
            signing_key=key,
            pub={"allow": ["a.>"]},
            sub={"deny": ["b"]},
            resp={"max": 2, "ttl": 0},
            bearer=True,
        )
        claims = decode_jwt(user.jwt, "user")
        assert claims.issuer == public_key(key)
        assert claims.nats["issuer_account"] == acc.public_key  # top-level in v1
        assert claims.nats["pub"] == {"allow": ["a.>"]}
        assert claims.nats["sub"] == {"deny": ["b"]}
        assert claims.nats["resp"] == {"max": 2, "ttl": 0}
        assert claims.nats["bearer_token"] is True

    def test_v1_account_keeps_only_v1_fields(self) -> None:
        op = JwtOperator(version=1)
        acc = op.account("A", default_permissions={"pub": {"deny": [">"]}})
        key = acc.add_signing_key()
        acc.revoke("UREVOKED", at=5)
        # Written by hand too: a v1 account JWT that carries default_permissions.
        _, claims = _parts(acc.jwt)
        raw = claims["nats"]
        assert isinstance(raw, dict)
        nats = dict(raw)
        nats["default_permissions"] = {"pub": {"deny": [">"]}}
        body = {k: v for k, v in claims.items() if k not in ("iat", "iss", "jti")}
        token = encode_jwt({**body, "nats": {**nats, "type": "account"}}, op.keys, version=1)
        decoded = decode_jwt(token, "account")
        assert decoded.nats["signing_keys"] == [public_key(key)]
        assert decoded.nats["revocations"] == {"UREVOKED": 5}
        assert "default_permissions" not in decoded.nats  # v1 had none: dropped, as in Go

    def test_v1_header_with_v2_claims(self) -> None:
        acc = JwtOperator().account("A")
        jwt = acc.user().jwt
        _, body, _ = jwt.split(".")
        head = _b64(b'{"typ":"jwt","alg":"ed25519"}')
        sig = _b64(acc.keys.sign(f"{head}.{body}".encode()))
        assert decode_jwt(f"{head}.{body}.{sig}", "user").version == 2

    def test_v2_header_with_v1_claims(self) -> None:
        acc = JwtOperator(version=1).account("A")
        _, body, sig = acc.user().jwt.split(".")
        head = _b64(b'{"typ":"JWT","alg":"ed25519-nkey"}')
        assert decode_jwt(f"{head}.{body}.{sig}", "user").version == 1

    def test_v1_signed_over_header_and_claims_is_refused(self) -> None:
        acc = JwtOperator(version=1).account("A")
        head, body, _ = acc.user().jwt.split(".")
        sig = _b64(acc.keys.sign(f"{head}.{body}".encode()))
        with pytest.raises(JwtError, match="signature does not verify"):
            decode_jwt(f"{head}.{body}.{sig}", "user")

    def test_v2_signed_over_claims_only_is_refused(self) -> None:
        acc = JwtOperator().account("A")
        head, body, _ = acc.user().jwt.split(".")
        sig = _b64(acc.keys.sign(body.encode()))
        with pytest.raises(JwtError, match="signature does not verify"):
            decode_jwt(f"{head}.{body}.{sig}", "user")

    @pytest.mark.parametrize("version", [0, 3, None])
    def test_other_versions_are_refused(self, version: int | None) -> None:
        acc = JwtOperator().account("A")
        keys = _new_keys(nkeys.PREFIX_BYTE_USER)
        nats: dict[str, object] = {"type": "user"}
        if version is not None:
            nats["version"] = version
        token = encode_jwt({"sub": public_key(keys), "nats": nats}, acc.keys)
        with pytest.raises(JwtError, match="not a version 1 or 2 NATS JWT"):
            decode_jwt(token, "user")

    def test_v1_of_another_kind_is_refused(self) -> None:
        op = JwtOperator(version=1)
        with pytest.raises(JwtError, match="expected a JWT of type 'user', got type 'account'"):
            decode_jwt(op.account("A").jwt, "user")


class TestOperatorMode:
    def test_v1_operator_accounts_and_users_authenticate(self) -> None:
        op = JwtOperator(version=1)
        acc = op.account("A")
        key = acc.add_signing_key()
        trust = _trust(op)
        for user in (acc.user(), acc.user(signing_key=key)):
            grant = trust.authenticate(user.jwt, user.sign(NONCE), NONCE)
            assert (grant.account, grant.user) == (acc.public_key, user.public_key)

    def test_v1_user_of_a_v2_account(self) -> None:
        op = JwtOperator()
        acc = op.account("A")
        user = acc.user(version=1, pub={"allow": ["x"]})
        grant = _trust(op).authenticate(user.jwt, user.sign(NONCE), NONCE)
        assert grant.permissions is not None
        assert grant.permissions.publish is not None
        assert grant.permissions.publish.allow == ("x",)

    def test_v1_user_revoked_and_expired(self) -> None:
        op = JwtOperator(version=1)
        acc = op.account("A")
        old = acc.user(issued_at=int(time.time()) - 100)
        acc.revoke(old.public_key)
        expired = acc.user(expires=int(time.time()) - 5)
        trust = _trust(op)
        for user, reason in ((old, "revoked"), (expired, "expired")):
            with pytest.raises(Exception, match=reason):
                trust.authenticate(user.jwt, user.sign(NONCE), NONCE)

    def test_config_with_a_v1_operator(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        op = JwtOperator(version=1)
        op.account("A")
        settings = loads(op.config(), environ={})
        assert settings.router.operator is not None
        assert settings.router.operator.system_account == op.accounts["SYS"].public_key
        (tmp_path / "op.jwt").write_text(op.jwt)
        monkeypatch.chdir(tmp_path)
        assert loads(op.config(operator="op.jwt"), environ={}).router.operator is not None
