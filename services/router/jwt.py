"""Operator mode: user-JWT authentication of clients (leafnode-protocol.md §5).

Theory of operation (nats-server 2.15 ``auth.go``, the ``juc != nil`` branch of
``processClientOrLeafAuthentication``, and ``accounts.go``):

* At start-up :class:`OperatorTrust` decodes the operator JWTs and every
  preloaded account JWT (``resolver: MEMORY``), checks that each account is
  issued by a trusted operator key, and keeps per account: its signing keys
  (plain, or scoped with a permissions template), revocations, validity
  times, ``default_permissions`` and ``disallow_bearer``.
* Operator, account and user JWTs may be legacy version 1 JWTs, as in
  nats-server: ``decode_jwt`` verifies them and migrates their claims to
  version 2's layout (a v1 user's top-level ``issuer_account`` becomes
  ``nats.issuer_account``), so what follows reads one layout.
* A CONNECT carries ``jwt`` (the user JWT) and ``sig``. The user JWT must
  verify with its issuer ``iss`` (``decode_jwt``) and be within its
  ``nbf``/``exp``. Its account is ``nats.issuer_account`` when set, else
  ``iss``; that account must be preloaded and ``iss`` must be the account
  itself or one of its signing keys. The account JWT must be within its
  times too.
* A scoped signing key replaces the user's permissions and limits with the
  key's template; the user JWT itself must then carry none (nats-io/jwt
  ``ValidateScopedSigner``).
* ``allowed_connection_types``, when present, must include the client's
  connection type: ``STANDARD`` on the client port, ``WEBSOCKET`` on the
  websocket port.
  Unless the JWT is a bearer token (and the account allows those), ``sig``
  must be the user key's Ed25519 signature of the INFO nonce.
* A user is revoked when ``nats.revocations`` holds its key, or ``*``, with a
  time at or after the user JWT's ``iat``.
* The user's ``pub``/``sub``/``resp`` become its :class:`Permissions`; with
  none, the account's ``default_permissions`` apply.

Not enforced (accepted and ignored): user and account limits (``subs``,
``data``, ``payload``, ``conn``, ...), exports/imports and mappings. Refused
rather than ignored, so that a restriction never silently lapses: ``times``
(connect time windows), permission templates (``{{...}}``) in scoped keys,
and ``src`` when the caller does not pass the client's address.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import nkeys
from nacl.exceptions import BadSignatureError, CryptoError

from leafnode.config import (
    DecodedJwt,
    JwtError,
    Permissions,
    SubjectPermission,
    decode_jwt,
    nkey_verify_key,
    operator_signing_keys,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from leafnode.config import OperatorSettings

__all__ = [
    "JwtAuthError",
    "OperatorTrust",
    "UserGrant",
    "decode_signature",
    "permissions_from_claims",
]

# The connection type of a client on the client port (nats-io/jwt).
CONNECTION_TYPE_STANDARD = "STANDARD"
CONNECTION_TYPE_WEBSOCKET = "WEBSOCKET"
# Go time.Duration (``resp.ttl``) is in nanoseconds.
_NS_PER_S = 1e9
# Revokes every user issued up to the given time (nats-io/jwt ``All``).
_REVOKE_ALL = "*"
# A user JWT signed by a scoped key may carry none of these (ValidateScopedSigner).
_SCOPED_FORBIDDEN = (
    "pub",
    "sub",
    "resp",
    "src",
    "times",
    "times_location",
    "subs",
    "data",
    "payload",
    "bearer_token",
    "allowed_connection_types",
)


class JwtAuthError(Exception):
    """A user JWT was refused; ``str(e)`` is the reason to log."""


@dataclass(frozen=True, slots=True)
class UserGrant:
    """What a verified user JWT grants."""

    account: str
    """The account public key (``A...``): accounts are isolated per account JWT."""
    user: str
    """The user public key (``U...``)."""
    name: str
    """The user JWT's ``name`` claim."""
    permissions: Permissions | None
    expires: int
    """The user JWT's ``exp`` (Unix seconds); 0 means never."""
    account_expires: int = 0
    """The account JWT's ``exp``: nats-server closes the account's clients then."""
    account_name: str = ""
    """The account JWT's ``name`` claim."""
    account_leaf_limit: int = -1
    """The account JWT's ``limits.leaf``: how many leaf connections it may have (-1: any)."""


@dataclass(frozen=True, slots=True)
class _Account:
    claims: DecodedJwt
    # Keys that may issue users: the account key and plain signing keys map to
    # None, scoped signing keys to their template.
    signers: dict[str, dict[str, object] | None]
    revocations: dict[str, int]
    default_permissions: Permissions | None
    disallow_bearer: bool
    # limits.leaf: leaf connections the account may have (-1: unlimited; a
    # missing limit is 0, which refuses leafs, as nats-server).
    leaf_limit: int = 0

    def revoked(self, user: str, issued_at: int) -> bool:
        """nats-server ``isRevoked``: revoked at or after the user JWT was issued."""
        for key in (user, _REVOKE_ALL):
            at = self.revocations.get(key)
            if at is not None and at >= issued_at:
                return True
        return False


def decode_signature(sig: str) -> bytes:
    """A CONNECT ``sig``: base64 in any flavour (URL-safe or standard), padding optional.

    Raises:
        ValueError: Not base64.
    """
    std = sig.rstrip("=").replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(std + "=" * (-len(std) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("signature not valid base64") from exc


def _str_list(value: object, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise JwtAuthError(f"{what} is not a list of strings")
    return tuple(value)


def _subject_permission(value: object, what: str) -> SubjectPermission | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise JwtAuthError(f"{what} is not an object")
    allow = _str_list(value.get("allow"), f"{what}.allow")
    deny = _str_list(value.get("deny"), f"{what}.deny")
    # nats-server buildPermissionsFromJwt: empty lists mean "not restricted".
    if not allow and not deny:
        return None
    return SubjectPermission(allow=allow, deny=deny)


def permissions_from_claims(nats: Mapping[str, object]) -> Permissions | None:
    """``nats.pub``/``nats.sub``/``nats.resp`` of a user (or ``default_permissions``).

    As nats-server ``buildPermissionsFromJwt``: None when nothing restricts
    the user. ``resp: {max, ttl}`` turns on ``allow_responses``; ``ttl`` is in
    nanoseconds, and 0 for either means the nats-server default.

    Raises:
        JwtAuthError: A field has the wrong JSON type.
    """
    publish = _subject_permission(nats.get("pub"), "nats.pub")
    subscribe = _subject_permission(nats.get("sub"), "nats.sub")
    resp = nats.get("resp")
    if resp is not None and not isinstance(resp, dict):
        raise JwtAuthError("nats.resp is not an object")
    if resp is None:
        if publish is None and subscribe is None:
            return None
        return Permissions(publish=publish, subscribe=subscribe)
    max_msgs, ttl = resp.get("max", 0), resp.get("ttl", 0)
    if not isinstance(max_msgs, int) or not isinstance(ttl, int):
        raise JwtAuthError("nats.resp max/ttl are not integers")
    return Permissions(
        publish=publish,
        subscribe=subscribe,
        allow_responses=True,
        responses_max=max_msgs,
        responses_expires_s=ttl / _NS_PER_S,
    )


def _load_account(token: str, key: str, trusted: set[str]) -> _Account:
    try:
        claims = decode_jwt(token, "account")
    except JwtError as exc:
        raise ValueError(f"resolver_preload {key}: invalid account JWT: {exc}") from None
    if claims.subject != key:
        raise ValueError(f"resolver_preload {key}: the JWT is for account {claims.subject}")
    if claims.issuer not in trusted:
        raise ValueError(f"resolver_preload {key}: account JWT not signed by a trusted operator")
    nats = claims.nats
    signers: dict[str, dict[str, object] | None] = {key: None}
    keys = nats.get("signing_keys")
    for entry in keys if isinstance(keys, list) else ():
        if isinstance(entry, str):
            signers[entry] = None
        elif isinstance(entry, dict) and isinstance(entry.get("key"), str):
            template = entry.get("template")
            signers[str(entry["key"])] = template if isinstance(template, dict) else {}
    revocations = nats.get("revocations")
    limits = nats.get("limits")
    defaults = nats.get("default_permissions")
    try:
        default_permissions = (
            permissions_from_claims(defaults) if isinstance(defaults, dict) else None
        )
    except JwtAuthError as exc:
        raise ValueError(f"resolver_preload {key}: default_permissions: {exc}") from None
    return _Account(
        claims=claims,
        signers=signers,
        revocations={
            user: at
            for user, at in (revocations.items() if isinstance(revocations, dict) else ())
            if isinstance(at, int)
        },
        default_permissions=default_permissions,
        disallow_bearer=isinstance(limits, dict) and limits.get("disallow_bearer") is True,
        leaf_limit=_leaf_limit(limits),
    )


def _leaf_limit(limits: object) -> int:
    """``limits.leaf`` of an account JWT; missing (or not a number) is 0."""
    leaf = limits.get("leaf") if isinstance(limits, dict) else None
    return leaf if isinstance(leaf, int) and not isinstance(leaf, bool) else 0


def _has_template(template: Mapping[str, object]) -> bool:
    for key in ("pub", "sub"):
        perm = template.get(key)
        if isinstance(perm, dict):
            for entries in perm.values():
                if isinstance(entries, list) and any("{{" in str(item) for item in entries):
                    return True
    return False


def _empty(value: object) -> bool:
    return value is None or value is False or value == 0 or value in ("", [], {})


def _src_allows(src: object, host: str | None) -> bool:
    """nats-server ``validateSrc``: no ``src`` allows all; else the host must be in a CIDR."""
    if isinstance(src, str):
        cidrs = [part.strip() for part in src.split(",") if part.strip()]
    else:
        cidrs = list(_str_list(src, "nats.src"))
    if not cidrs:
        return True
    if host is None:
        return False
    try:
        address = ipaddress.ip_address(host)
        return any(address in ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)
    except ValueError:
        return False


class OperatorTrust:
    """Verifies user JWTs against the preloaded accounts of the trusted operators.

    Args:
        settings: The operator settings (already verified by the config loader).

    Raises:
        ValueError: An operator or account JWT does not verify, or an account
            is not issued by a trusted operator key.
    """

    def __init__(self, settings: OperatorSettings) -> None:
        trusted: set[str] = set()
        for token in settings.operator_jwts:
            try:
                trusted.update(operator_signing_keys(decode_jwt(token, "operator")))
            except JwtError as exc:
                raise ValueError(f"invalid operator JWT: {exc}") from None
        self._accounts = {
            key: _load_account(token, key, trusted) for key, token in settings.preload
        }
        self.system_account = settings.system_account

    @property
    def accounts(self) -> tuple[str, ...]:
        """The preloaded account public keys, in config order."""
        return tuple(self._accounts)

    def authenticate(
        self,
        user_jwt: str,
        sig: str,
        nonce: str | None,
        *,
        client_host: str | None = None,
        now: float | None = None,
        connection_type: str = CONNECTION_TYPE_STANDARD,
    ) -> UserGrant:
        """Check a CONNECT's ``jwt`` and ``sig`` (see the module docstring).

        Args:
            user_jwt: The CONNECT ``jwt``.
            sig: The CONNECT ``sig`` (any base64 flavour), or ``""``.
            nonce: The nonce sent in this client's INFO.
            client_host: The client's IP address, for ``src`` restrictions;
                a JWT with ``src`` is refused when it is None.
            now: Unix time for the ``exp``/``nbf`` checks (default: now).
            connection_type: The client's port (``STANDARD`` or ``WEBSOCKET``),
                for ``allowed_connection_types``.

        Returns:
            The account, user and permissions the JWT grants.

        Raises:
            JwtAuthError: The JWT or signature is refused; the message says why.
        """
        at = time.time() if now is None else now
        try:
            user = decode_jwt(user_jwt, "user")
        except JwtError as exc:
            raise JwtAuthError(f"user JWT not valid: {exc}") from None
        problem = user.time_problem(at)
        if problem is not None:
            raise JwtAuthError(f"user JWT {problem}")
        nats: Mapping[str, object] = user.nats
        issuer_account = nats.get("issuer_account") or user.issuer
        if not isinstance(issuer_account, str):
            raise JwtAuthError("user JWT: nats.issuer_account is not a string")
        account = self._accounts.get(issuer_account)
        if account is None:
            raise JwtAuthError(f"account {issuer_account} is not preloaded (resolver_preload)")
        if user.issuer not in account.signers:
            raise JwtAuthError(
                f"user JWT issuer {user.issuer} is not account {issuer_account} "
                "or one of its signing keys"
            )
        template = account.signers[user.issuer]
        if template is not None:
            if not all(_empty(nats.get(key)) for key in _SCOPED_FORBIDDEN):
                raise JwtAuthError("scoped users require no permissions or limits set")
            if _has_template(template):
                raise JwtAuthError("permission templates ({{...}}) are not supported")
            nats = template
        problem = account.claims.time_problem(at)
        if problem is None and account.claims.expires and at >= account.claims.expires:
            # nats-server marks an account expired when its timer fires at
            # ``exp`` (not a second later, as the JWT check alone would), and
            # refuses its users from then on.
            problem = "expired"
        if problem is not None:
            raise JwtAuthError(f"account JWT {problem}")
        bearer = nats.get("bearer_token") is True
        if bearer and account.disallow_bearer:
            raise JwtAuthError("account does not allow bearer tokens")
        types = _str_list(nats.get("allowed_connection_types"), "allowed_connection_types")
        if types and connection_type not in {kind.upper() for kind in types}:
            raise JwtAuthError(
                f"connection type {connection_type} not allowed (only {', '.join(types)})"
            )
        if not bearer:
            self._verify_nonce(user.subject, sig, nonce)
        if account.revoked(user.subject, user.issued_at):
            raise JwtAuthError(f"user {user.subject} is revoked")
        if not _src_allows(nats.get("src"), client_host):
            raise JwtAuthError(f"client address {client_host} not allowed by the JWT's src")
        if not _empty(nats.get("times")):
            raise JwtAuthError("connect time windows (nats.times) are not supported")
        permissions = permissions_from_claims(nats)
        if permissions is None:
            permissions = account.default_permissions
        return UserGrant(
            account=issuer_account,
            user=user.subject,
            name=user.name,
            permissions=permissions,
            expires=user.expires,
            account_expires=account.claims.expires,
            account_name=account.claims.name,
            account_leaf_limit=account.leaf_limit,
        )

    @staticmethod
    def _verify_nonce(user_key: str, sig: str, nonce: str | None) -> None:
        if not sig:
            raise JwtAuthError("signature missing")
        if not nonce:
            raise JwtAuthError("no nonce was sent to this client")
        try:
            raw = decode_signature(sig)
            nkey_verify_key(user_key, nkeys.PREFIX_BYTE_USER).verify(nonce.encode("ascii"), raw)
        except (BadSignatureError, CryptoError, ValueError) as exc:
            raise JwtAuthError("nonce signature not verified with the user key") from exc
