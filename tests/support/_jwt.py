"""Operator, account and user JWTs and ``.creds`` files for operator-mode tests.

The JWTs are hand-made as leafnode-protocol.md §5 describes ("Hand-made JWTs"):
``b64url(header).b64url(claims).b64url(sig)``, signed with ``nkeys`` key pairs.
nats-server 2.9 and 2.15 accept them, so the same files drive both a real
nats-server and the router.

Every knob a test needs is a keyword argument: signing keys (plain and
scoped), expiry (``exp``), not-before (``nbf``), revocations, permissions,
connection types, bearer tokens, and a foreign issuer for negative tests.
Claims are kept as data and encoded on demand, so an account re-issued after
:meth:`JwtAccount.revoke` carries the new revocation list.

``version=1`` issues legacy JWTs as nats-io/jwt v1 (and ``nsc`` before 2.0)
did, which nats-server still accepts: header ``{"typ":"jwt","alg":"ed25519"}``,
the claim type at the top level (``"type": "user"``) and no ``nats.version``,
a user's ``issuer_account`` at the top level, and a signature over the claims
part only (version 2 signs ``header.claims``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import TYPE_CHECKING

import nkeys

from ._uplink import _b64, _new_keys

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = [
    "JwtAccount",
    "JwtOperator",
    "JwtUser",
    "creds_text",
    "encode_jwt",
    "public_key",
    "sample_creds",
]

# The header nats-io/jwt v2 issues, and the one v1 issued.
_HEADER = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
_HEADER_V1 = _b64(json.dumps({"typ": "jwt", "alg": "ed25519"}).encode())

# Account limits that allow everything (a missing `leaf` would mean 0).
_UNLIMITED: dict[str, object] = {
    "subs": -1,
    "data": -1,
    "payload": -1,
    "imports": -1,
    "exports": -1,
    "wildcards": True,
    "conn": -1,
    "leaf": -1,
}


def public_key(keys: nkeys.KeyPair) -> str:
    """The public nkey (``O...``/``A...``/``U...``) of a key pair, as text."""
    key: bytes = keys.public_key
    return key.decode()


def encode_jwt(
    claims: Mapping[str, object],
    issuer: nkeys.KeyPair,
    *,
    issued_at: int | None = None,
    version: int = 2,
) -> str:
    """Sign ``claims`` with ``issuer``; ``iat`` (default: now), ``iss`` and ``jti`` are added.

    ``claims`` are written in version 2's layout (``nats.type``,
    ``nats.version``); ``version=1`` rewrites them as a v1 JWT (see the
    module docstring). ``jti`` is base32 of SHA-512/256 over the claims, as
    the NATS JWT library computes it (the servers do not check it).
    """
    body = dict(claims) if version == 2 else _v1_claims(claims)
    body["iat"] = int(time.time()) if issued_at is None else issued_at
    body["iss"] = public_key(issuer)
    digest = hashlib.new("sha512_256", json.dumps(body, sort_keys=True).encode()).digest()
    body["jti"] = base64.b32encode(digest).decode().rstrip("=")
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    if version == 1:
        signature: bytes = issuer.sign(payload.encode())
        return f"{_HEADER_V1}.{payload}.{_b64(signature)}"
    signature = issuer.sign(f"{_HEADER}.{payload}".encode())
    return f"{_HEADER}.{payload}.{_b64(signature)}"


def _v1_claims(claims: Mapping[str, object]) -> dict[str, object]:
    """Version 2 claims rewritten as nats-io/jwt v1 laid them out."""
    body = dict(claims)
    raw = body.get("nats")
    nats: dict[str, object] = dict(raw) if isinstance(raw, dict) else {}
    body["type"] = nats.pop("type")
    nats.pop("version", None)
    if "issuer_account" in nats:
        body["issuer_account"] = nats.pop("issuer_account")
    # v1 had no connection types, scoped signing keys or account default permissions.
    nats.pop("allowed_connection_types", None)
    nats.pop("default_permissions", None)
    keys = nats.get("signing_keys")
    if isinstance(keys, list):
        nats["signing_keys"] = [key for key in keys if isinstance(key, str)]
    body["nats"] = nats
    return body


def creds_text(jwt: str, seed: str) -> str:
    """A ``.creds`` file, framed as ``nsc`` writes it (JWT block, then seed block)."""
    return (
        "-----BEGIN NATS USER JWT-----\n"
        f"{jwt}\n"
        "------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{seed}\n"
        "------END USER NKEY SEED------\n\n"
        "*************************************************************\n"
    )


def sample_creds() -> str:
    """A well-formed ``.creds`` text (a user of a throw-away operator), for config tests."""
    return JwtOperator(system_account=False).account("A").user().creds()


def _times(expires: int | None, not_before: int | None) -> dict[str, object]:
    out: dict[str, object] = {}
    if expires is not None:
        out["exp"] = expires
    if not_before is not None:
        out["nbf"] = not_before
    return out


class JwtUser:
    """A user key pair and its JWT; :meth:`write_creds` makes a ``.creds`` file."""

    def __init__(self, keys: nkeys.KeyPair, jwt: str) -> None:
        self.keys = keys
        self.jwt = jwt

    @property
    def public_key(self) -> str:
        return public_key(self.keys)

    @property
    def seed(self) -> str:
        seed: bytes = self.keys.seed
        return seed.decode()

    def creds(self) -> str:
        """The ``.creds`` file text."""
        return creds_text(self.jwt, self.seed)

    def write_creds(self, path: Path) -> Path:
        """Write the ``.creds`` file (mode 0600, as ``nsc`` does) and return ``path``."""
        path.write_text(self.creds())
        path.chmod(0o600)
        return path

    def sign(self, nonce: str) -> str:
        """The CONNECT ``sig`` for ``nonce``: URL-safe base64, no padding."""
        raw: bytes = self.keys.sign(nonce.encode("ascii"))
        return _b64(raw)


class JwtAccount:
    """An account key pair whose JWT is issued by its operator (or ``issuer``).

    Args:
        operator: The operator that issues the JWT.
        name: The ``name`` claim.
        issuer: Sign with this key instead of the operator's identity key
            (one of the operator's signing keys, or a stranger's key).
        expires: ``exp`` (Unix seconds).
        not_before: ``nbf`` (Unix seconds).
        default_permissions: ``nats.default_permissions`` (``{"pub": ..., "sub": ...}``).
        disallow_bearer: ``nats.limits.disallow_bearer``.
        version: 1 for a legacy v1 JWT (default: the operator's); its users
            default to it too.
    """

    def __init__(
        self,
        operator: JwtOperator,
        name: str,
        *,
        issuer: nkeys.KeyPair | None = None,
        expires: int | None = None,
        not_before: int | None = None,
        default_permissions: Mapping[str, object] | None = None,
        disallow_bearer: bool = False,
        version: int | None = None,
    ) -> None:
        self.name = name
        self.version = operator.version if version is None else version
        self.keys = _new_keys(nkeys.PREFIX_BYTE_ACCOUNT)
        self.issuer = issuer or operator.keys
        self.issued_at = int(time.time())
        self.times = _times(expires, not_before)
        self.default_permissions = default_permissions
        self.disallow_bearer = disallow_bearer
        # Signing keys: public key -> scope template (None: an unscoped key).
        self.signing_keys: dict[str, tuple[nkeys.KeyPair, Mapping[str, object] | None]] = {}
        self.revocations: dict[str, int] = {}

    @property
    def public_key(self) -> str:
        return public_key(self.keys)

    @property
    def jwt(self) -> str:
        """The account JWT with the current signing keys and revocations."""
        limits = dict(_UNLIMITED)
        if self.disallow_bearer:
            limits["disallow_bearer"] = True
        nats: dict[str, object] = {"type": "account", "version": 2, "limits": limits}
        keys: list[object] = []
        for key, (_, scope) in self.signing_keys.items():
            if scope is None:
                keys.append(key)
            else:
                keys.append({"kind": "user_scope", "key": key, "role": "test", "template": scope})
        if keys:
            nats["signing_keys"] = keys
        if self.revocations:
            nats["revocations"] = dict(self.revocations)
        if self.default_permissions is not None:
            nats["default_permissions"] = dict(self.default_permissions)
        claims = {"sub": self.public_key, "name": self.name, **self.times, "nats": nats}
        return encode_jwt(claims, self.issuer, issued_at=self.issued_at, version=self.version)

    def add_signing_key(self, *, scope: Mapping[str, object] | None = None) -> nkeys.KeyPair:
        """A new signing key; with ``scope`` (a permissions template) it is a scoped key."""
        keys = _new_keys(nkeys.PREFIX_BYTE_ACCOUNT)
        self.signing_keys[public_key(keys)] = (keys, scope)
        return keys

    def revoke(self, user_public_key: str, at: int | None = None) -> None:
        """Revoke users issued at or before ``at`` (default: now); ``"*"`` means all."""
        self.revocations[user_public_key] = int(time.time()) if at is None else at

    def user(
        self,
        name: str = "user",
        *,
        pub: Mapping[str, object] | None = None,
        sub: Mapping[str, object] | None = None,
        resp: Mapping[str, object] | None = None,
        expires: int | None = None,
        not_before: int | None = None,
        issued_at: int | None = None,
        connection_types: tuple[str, ...] = (),
        signing_key: nkeys.KeyPair | None = None,
        bearer: bool = False,
        version: int | None = None,
    ) -> JwtUser:
        """Issue a user JWT.

        Args:
            name: The ``name`` claim.
            pub: ``nats.pub`` as ``{"allow": [...], "deny": [...]}``.
            sub: ``nats.sub``, same shape.
            resp: ``nats.resp`` as ``{"max": n, "ttl": nanoseconds}``.
            expires: ``exp`` (Unix seconds).
            not_before: ``nbf`` (Unix seconds).
            issued_at: ``iat`` (default: now).
            connection_types: ``nats.allowed_connection_types``.
            signing_key: Sign with this key (then ``nats.issuer_account`` names
                this account) instead of the account's identity key. For a
                scoped key the JWT carries no permissions or limits unless
                ``pub``/``sub`` are given.
            bearer: ``nats.bearer_token``: no nonce signature needed.
            version: 1 for a legacy v1 JWT (default: the account's).
        """
        keys = _new_keys(nkeys.PREFIX_BYTE_USER)
        nats: dict[str, object] = {"type": "user", "version": 2}
        scope = self.signing_keys.get(public_key(signing_key)) if signing_key else None
        if scope is None or scope[1] is None:
            nats.update(pub={}, sub={}, subs=-1, data=-1, payload=-1)
        # else: a scoped key's template supplies permissions and limits, and
        # the user JWT must carry none (nats-io/jwt ValidateScopedSigner).
        if pub is not None:
            nats["pub"] = dict(pub)
        if sub is not None:
            nats["sub"] = dict(sub)
        if resp is not None:
            nats["resp"] = dict(resp)
        if connection_types:
            nats["allowed_connection_types"] = list(connection_types)
        if bearer:
            nats["bearer_token"] = True
        issuer = self.keys
        if signing_key is not None:
            issuer = signing_key
            nats["issuer_account"] = self.public_key
        claims = {
            "sub": public_key(keys),
            "name": name,
            **_times(expires, not_before),
            "nats": nats,
        }
        jwt = encode_jwt(
            claims,
            issuer,
            issued_at=issued_at,
            version=self.version if version is None else version,
        )
        return JwtUser(keys, jwt)


class JwtOperator:
    """An operator (self-signed JWT) with accounts, and the config that trusts them.

    Args:
        name: The ``name`` claim.
        signing_key: Give the operator one signing key (``signing_keys[0]``).
        strict_signing: ``strict_signing_key_usage``: only signing keys may
            issue accounts.
        system_account: Create a ``SYS`` account and name it in the JWT.
        version: 1 for legacy v1 JWTs: the operator's, and by default its
            accounts' and their users'.
    """

    def __init__(
        self,
        name: str = "test-operator",
        *,
        signing_key: bool = False,
        strict_signing: bool = False,
        system_account: bool = True,
        version: int = 2,
    ) -> None:
        self.name = name
        self.version = version
        self.keys = _new_keys(nkeys.PREFIX_BYTE_OPERATOR)
        # One ``iat`` for the operator's life, so ``jwt`` reads the same
        # token every time (a tick of the clock between two reads made a
        # config's operator differ from ``jwt``) until a claim changes.
        self.issued_at = int(time.time())
        self.signing_keys = [_new_keys(nkeys.PREFIX_BYTE_OPERATOR)] if signing_key else []
        self.strict_signing = strict_signing
        self.accounts: dict[str, JwtAccount] = {}
        self.system = self.account("SYS") if system_account else None

    @property
    def public_key(self) -> str:
        return public_key(self.keys)

    @property
    def jwt(self) -> str:
        nats: dict[str, object] = {"type": "operator", "version": 2}
        if self.system is not None:
            nats["system_account"] = self.system.public_key
        if self.signing_keys:
            nats["signing_keys"] = [public_key(k) for k in self.signing_keys]
        if self.strict_signing:
            nats["strict_signing_key_usage"] = True
        claims = {"sub": self.public_key, "name": self.name, "nats": nats}
        return encode_jwt(claims, self.keys, issued_at=self.issued_at, version=self.version)

    def account(
        self,
        name: str,
        *,
        issuer: nkeys.KeyPair | None = None,
        expires: int | None = None,
        not_before: int | None = None,
        default_permissions: Mapping[str, object] | None = None,
        disallow_bearer: bool = False,
        version: int | None = None,
    ) -> JwtAccount:
        """Create an account (arguments as for :class:`JwtAccount`), preloaded by :meth:`config`."""
        account = JwtAccount(
            self,
            name,
            issuer=issuer,
            expires=expires,
            not_before=not_before,
            default_permissions=default_permissions,
            disallow_bearer=disallow_bearer,
            version=version,
        )
        self.accounts[name] = account
        return account

    def config(self, *, operator: str | None = None) -> str:
        """Top-level config lines: ``operator``, ``system_account``, ``resolver: MEMORY``, preloads.

        Args:
            operator: What to write as ``operator`` (e.g. a ``.jwt`` file
                path); default: this operator's JWT inline.
        """
        lines = [f"operator: {operator or self.jwt}"]
        if self.system is not None:
            lines.append(f"system_account: {self.system.public_key}")
        lines.append("resolver: MEMORY")
        lines.append("resolver_preload {")
        lines.extend(f"  {acc.public_key}: {acc.jwt}" for acc in self.accounts.values())
        lines.append("}")
        return "\n".join(lines) + "\n"
