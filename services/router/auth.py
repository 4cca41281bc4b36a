"""Client authentication for the router, after nats-server's ``server/auth.go``.

Theory of operation (``processClientOrLeafAuthentication``, 2.15):

* Nothing configured (no users, nkeys or token): every client is accepted into
  ``$G`` with no permissions, whatever credentials it sends.
* nkey users are looked up first by the CONNECT ``nkey``; an unknown nkey is
  refused, a known one must carry ``sig``, the Ed25519 signature of the nonce
  sent in INFO.
* Otherwise, when users exist, ``user`` is looked up and ``pass`` compared
  (bcrypt when the stored password is a bcrypt hash, else constant-time).
* Otherwise the token (``auth_token``) is compared the same way.
* ``no_auth_user``: a CONNECT without ``user``, ``pass`` and ``auth_token``
  (and ``nkey``, when nkey users exist) becomes that user, with its account and
  permissions. INFO then says ``auth_required: false``, yet credentials that
  are sent are still checked.
* Operator mode (``RouterSettings.operator``; the config loader guarantees no
  users, token, accounts or ``no_auth_user`` then): every client must send a
  user JWT and the nonce signature; :mod:`services.router.jwt` checks them.
  The client's account is the account public key (``A...``), so accounts are
  isolated per account JWT.

WebSocket clients (``websocket { }``; :meth:`Authenticator.for_websocket`):
as nats-server's ``authOverride``, the block's own ``authorization { user,
password | token }`` or ``no_auth_user`` replaces the server's simple auth
(single user, token) or ``no_auth_user`` for them; users, nkeys and operator
mode stay the server's. The config loader refuses the block's user or token
next to a users list or account users, as nats-server does, so an override
by user or token leaves that one credential. Without an override they
authenticate exactly as on the client port. Cookies named by ``jwt_cookie``
etc. fill the CONNECT fields a client left empty (``with_cookies``).

Differences from nats-server 2.15.1, on purpose:

* Outside operator mode, a CONNECT carrying ``jwt`` is refused whenever auth
  is configured, even where nats-server would ignore the JWT and apply
  ``no_auth_user`` or other credentials.
* ``authorization { permissions }`` (``RouterSettings.default_permissions``)
  applies to the token user and to top-level users without their own
  permissions; nats-server ignores it for a single user or a token.
* ``no_auth_user`` works when that user's password is a bcrypt hash
  (nats-server compares the hash with itself and refuses the client).
* ``sig`` is accepted in any base64 flavour (URL-safe or standard, padded or
  not); nats-server takes raw URL-safe or padded standard only.
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

import bcrypt
import nkeys
from nacl.exceptions import BadSignatureError

from leafnode.config import DEFAULT_ACCOUNT, JwtError, UserSettings, nkey_verify_key

from .jwt import (
    CONNECTION_TYPE_STANDARD,
    CONNECTION_TYPE_WEBSOCKET,
    JwtAuthError,
    OperatorTrust,
    decode_signature,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from nacl.signing import VerifyKey

    from leafnode.config import Permissions, RouterSettings, WebsocketSettings

__all__ = ["AuthError", "Authenticator", "Identity", "cookie_credentials", "with_cookies"]

# nats-server's nonceRawLen: 11 random bytes -> 15 URL-safe base64 characters.
_NONCE_RAW_LEN = 11

# nats-server's validBcryptPrefix.
_BCRYPT_RE = re.compile(r"\$2[abxy]\$\d{2}\$")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a client authenticated as."""

    account: str
    """Account name (``$G`` by default)."""
    user: str | None
    """User name, nkey public key, or None (no auth, token)."""
    permissions: Permissions | None
    expires_at: float | None = None
    """Unix time at which the credentials expire (a user JWT's ``exp``), or None.

    nats-server closes the connection then, with ``-ERR 'User Authentication
    Expired'``.
    """
    account_expires_at: float | None = None
    """Unix time at which the account JWT expires, or None; nats-server closes
    the account's clients then, with ``-ERR 'Account Authentication Expired'``.
    """
    user_name: str = ""
    """The user JWT's ``name`` claim ($SYS.REQ.USER.INFO's ``user_name``)."""
    account_name: str = ""
    """The account JWT's ``name`` claim, when it has one."""
    leaf_limit: int = -1
    """Leaf connections the account may have (its JWT's ``limits.leaf``); -1: any."""


class AuthError(Exception):
    """Authentication failed; ``str(e)`` is the reason to log.

    The client is only told ``-ERR 'Authorization Violation'``.
    """


@dataclass(frozen=True, slots=True)
class _User:
    account: str
    name: str
    password: str  # "" when none is configured
    permissions: Permissions | None


@dataclass(frozen=True, slots=True)
class _NkeyUser:
    account: str
    nkey: str
    verify_key: VerifyKey
    permissions: Permissions | None


def _is_bcrypt(secret: str) -> bool:
    return _BCRYPT_RE.match(secret) is not None


def _secrets_match(configured: str, given: str) -> bool:
    """nats-server ``comparePasswords``: bcrypt hash or constant-time equality."""
    if _is_bcrypt(configured):
        try:
            return bcrypt.checkpw(given.encode(), configured.encode())
        except ValueError:
            # Malformed hash, or a password over bcrypt's 72-byte limit (Go
            # refuses those too).
            return False
    return hmac.compare_digest(configured.encode(), given.encode())


def _verify_key(public_key: str) -> VerifyKey:
    """Decode a user public nkey (``U...``); raises ValueError when invalid."""
    try:
        return nkey_verify_key(public_key, nkeys.PREFIX_BYTE_USER)
    except JwtError as exc:
        raise ValueError(f"not a valid user nkey: {public_key!r}") from exc


def _decode_sig(sig: str) -> bytes:
    """Base64 in any flavour, padding optional; raises AuthError when invalid."""
    try:
        return decode_signature(sig)
    except ValueError as exc:
        raise AuthError(str(exc)) from exc


def _option(options: Mapping[str, object], key: str) -> str:
    value = options.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise AuthError(f"CONNECT {key!r} is not a string")
    return value


class Authenticator:
    """Checks CONNECT credentials against the router's auth settings.

    Args:
        settings: The router settings (``users``, ``token``,
            ``default_permissions``, ``accounts``, ``no_auth_user``,
            ``operator``).

    Raises:
        ValueError: A configured nkey is not a valid user public key,
            ``no_auth_user`` names no configured user or nkey, or an operator
            or preloaded account JWT does not verify.
    """

    def __init__(
        self, settings: RouterSettings, *, connection_type: str = CONNECTION_TYPE_STANDARD
    ) -> None:
        self._connection_type = connection_type
        users: dict[str, _User] = {}
        nkey_users: dict[str, _NkeyUser] = {}
        accounts = [DEFAULT_ACCOUNT]
        default_permissions = settings.default_permissions
        sources = [(u, u.account, u.permissions or default_permissions) for u in settings.users]
        for account in settings.accounts:
            accounts.append(account.name)
            sources.extend((u, account.name, u.permissions) for u in account.users)
        for user, account_name, permissions in sources:
            accounts.append(account_name)
            if user.nkey:
                nkey_users[user.nkey] = _NkeyUser(
                    account_name, user.nkey, _verify_key(user.nkey), permissions
                )
            elif user.user is not None:
                users[user.user] = _User(account_name, user.user, user.password or "", permissions)
        self._users = users
        self._nkeys = nkey_users
        self._token = settings.token or ""
        self._token_permissions = default_permissions
        self._configured = bool(users or nkey_users or self._token)
        no_auth_user = settings.no_auth_user or None
        if no_auth_user and not (users or nkey_users):
            raise ValueError(
                f'no_auth_user: "{no_auth_user}" present, but users/nkeys are not defined'
            )
        if no_auth_user and no_auth_user not in users and no_auth_user not in nkey_users:
            raise ValueError(
                f'no_auth_user: "{no_auth_user}" not present as user or nkey'
                " in authorization block or account configuration"
            )
        self._no_auth_user = no_auth_user
        self._trust: OperatorTrust | None = None
        if settings.operator is not None:
            self._trust = OperatorTrust(settings.operator)
            accounts.extend(self._trust.accounts)
            self._configured = True
        self._accounts = tuple(dict.fromkeys(accounts))

    @classmethod
    def for_websocket(cls, settings: RouterSettings) -> Authenticator:
        """The authenticator of the ``websocket { }`` port's clients (module doc)."""
        ws = settings.websocket
        if ws is not None and (ws.token or ws.user):
            # nats-server checks the token first and then ignores the user.
            users = () if ws.token else (UserSettings(user=ws.user, password=ws.password),)
            settings = replace(
                settings, users=users, token=ws.token, default_permissions=None, no_auth_user=None
            )
        elif ws is not None and ws.no_auth_user:
            settings = replace(settings, token=None, no_auth_user=ws.no_auth_user)
        return cls(settings, connection_type=CONNECTION_TYPE_WEBSOCKET)

    @property
    def auth_configured(self) -> bool:
        """Credentials are checked (users, nkeys, a token or an operator exist).

        Unlike :attr:`auth_required`, this stays True with ``no_auth_user``:
        nats-server still arms the auth timer then.
        """
        return self._configured

    @property
    def auth_required(self) -> bool:
        """INFO's ``auth_required``: auth configured and no ``no_auth_user``.

        nats-server 2.15.1 (verified) omits ``auth_required`` from INFO when a
        ``no_auth_user`` is set, although users exist.
        """
        return self._configured and not self._no_auth_user

    @property
    def nonce_required(self) -> bool:
        """Any nkey user configured, or operator mode: INFO must carry a ``nonce``."""
        return bool(self._nkeys) or self._trust is not None

    @property
    def operator_mode(self) -> bool:
        """Clients authenticate with user JWTs (``operator`` is configured)."""
        return self._trust is not None

    @property
    def accounts(self) -> tuple[str, ...]:
        """Every account name, ``$G`` first; in operator mode the preloaded account keys."""
        return self._accounts

    def new_nonce(self) -> str:
        """A fresh nonce for INFO: 11 random bytes, URL-safe base64, no padding."""
        return base64.urlsafe_b64encode(secrets.token_bytes(_NONCE_RAW_LEN)).decode().rstrip("=")

    def named_account(self, options: Mapping[str, object]) -> str | None:
        """The account of the configured nkey or user a CONNECT names.

        ``""`` when the CONNECT names neither (token, JWT, no credentials);
        None when it names one this configuration no longer has. A reload
        closes a client whose answer differs from its account without a word
        (nats-server's ``clientHasMovedToDifferentAccount``).
        """
        nkey, user = options.get("nkey"), options.get("user")
        if isinstance(nkey, str) and nkey:
            found_nkey = self._nkeys.get(nkey)
            return found_nkey.account if found_nkey is not None else None
        if isinstance(user, str) and user:
            found_user = self._users.get(user)
            return found_user.account if found_user is not None else None
        return ""

    def is_expensive(self, options: Mapping[str, object]) -> bool:
        """True when :meth:`authenticate` will run bcrypt (tens of ms).

        The caller should then run :meth:`authenticate` in a worker thread.
        """
        if not self._configured or self._trust is not None:
            return False
        user = options.get("user")
        if isinstance(user, str) and user:
            found = self._users.get(user)
            if found is not None:
                return _is_bcrypt(found.password)
        return _is_bcrypt(self._token)

    def authenticate(
        self,
        options: Mapping[str, object],
        nonce: str | None,
        *,
        client_host: str | None = None,
    ) -> Identity:
        """Authenticate a client from its CONNECT options.

        Synchronous. When :meth:`is_expensive` says so (bcrypt), run it in a
        worker thread (``trio.to_thread.run_sync``) so the event loop is not
        blocked.

        Args:
            options: The client's CONNECT JSON object.
            nonce: The nonce sent in this client's INFO, if any.
            client_host: The client's IP address; user JWTs restricted by
                ``src`` are refused without it.

        Returns:
            The client's account, user name and permissions (and, for a user
            JWT with ``exp``, when the credentials expire).

        Raises:
            AuthError: The credentials are missing, unknown or wrong.
        """
        if not self._configured:
            return Identity(DEFAULT_ACCOUNT, None, None)
        if self._trust is not None:
            return self._authenticate_jwt(options, nonce, client_host)
        if options.get("jwt"):
            raise AuthError("user JWT presented, but no operator is configured")
        user = _option(options, "user")
        password = _option(options, "pass")
        token = _option(options, "auth_token")
        nkey = _option(options, "nkey")
        anonymous = not (user or password or token)
        no_auth_user = self._no_auth_user

        if self._nkeys:
            if anonymous and not nkey and no_auth_user in self._nkeys:
                nkey = no_auth_user
            if nkey:
                return self._authenticate_nkey(nkey, _option(options, "sig"), nonce)
        if self._users:
            if anonymous and no_auth_user is not None:
                found = self._users.get(no_auth_user)
                if found is not None:
                    return Identity(found.account, found.name, found.permissions)
            if user:
                found = self._users.get(user)
                if found is None:
                    raise AuthError(f"unknown user {user!r}")
                if not _secrets_match(found.password, password):
                    raise AuthError(f"wrong password for user {user!r}")
                return Identity(found.account, found.name, found.permissions)
        if self._token:
            if not _secrets_match(self._token, token):
                raise AuthError("wrong or missing auth_token")
            return Identity(DEFAULT_ACCOUNT, None, self._token_permissions)
        raise AuthError("no credentials")

    def _authenticate_jwt(
        self, options: Mapping[str, object], nonce: str | None, client_host: str | None
    ) -> Identity:
        assert self._trust is not None
        user_jwt = _option(options, "jwt")
        if not user_jwt:
            raise AuthError("operator mode: a user JWT is required")
        try:
            grant = self._trust.authenticate(
                user_jwt,
                _option(options, "sig"),
                nonce,
                client_host=client_host,
                connection_type=self._connection_type,
            )
        except JwtAuthError as exc:
            raise AuthError(str(exc)) from None
        return Identity(
            grant.account,
            grant.user,
            grant.permissions,
            grant.expires or None,
            grant.account_expires or None,
            user_name=grant.name,
            account_name=grant.account_name,
            leaf_limit=grant.account_leaf_limit,
        )

    def _authenticate_nkey(self, nkey: str, sig: str, nonce: str | None) -> Identity:
        found = self._nkeys.get(nkey)
        if found is None:
            raise AuthError(f"unknown nkey {nkey!r}")
        # nats-server skips the signature for the no_auth_user's nkey: anyone
        # may connect as that user with no credentials anyway.
        if nkey != self._no_auth_user:
            if not sig:
                raise AuthError("signature missing")
            if not nonce:
                raise AuthError("no nonce was sent to this client")
            try:
                found.verify_key.verify(nonce.encode("ascii"), _decode_sig(sig))
            except (BadSignatureError, ValueError) as exc:
                raise AuthError("signature not verified") from exc
        return Identity(found.account, found.nkey, found.permissions)


# CONNECT fields a websocket cookie may stand in for, by the cookie's setting.
_COOKIE_FIELDS: Final = (
    ("jwt_cookie", "jwt"),
    ("user_cookie", "user"),
    ("pass_cookie", "pass"),
    ("token_cookie", "auth_token"),
)


def cookie_credentials(ws: WebsocketSettings, cookies: Mapping[str, str]) -> dict[str, str]:
    """The CONNECT fields the upgrade request's cookies supply (nats-server's wsUpgrade).

    Only cookies the ``websocket { }`` block names count; empty when none do.
    """
    found: dict[str, str] = {}
    for setting, field in _COOKIE_FIELDS:
        name = getattr(ws, setting)
        if name and name in cookies:
            found[field] = cookies[name]
    return found


def with_cookies(options: dict[str, object], cookies: Mapping[str, str]) -> dict[str, object]:
    """CONNECT ``options`` with each empty credential taken from ``cookies`` (client.go).

    As nats-server: a field the CONNECT carries (non-empty) wins.
    """
    if not cookies:
        return options
    merged = dict(options)
    for field, value in cookies.items():
        if not merged.get(field):
            merged[field] = value
    return merged
