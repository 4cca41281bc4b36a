"""The hub side of the leafnode handshake: what we send a downstream leaf, and its CONNECT.

Theory of operation
-------------------
When leafnode accepts a leaf connection (issue 15) it plays nats-server's
hub role (leafnode-protocol.md §4.2): it sends an INFO at once, the leaf
answers CONNECT, the hub checks the credentials, binds the link to one
account and answers with a second INFO (``connect_info: true``,
``remote_account``), then its interest as ``LS+``. This module holds that
exchange without I/O, clocks or logging, so the connection shell (issue 13's
``leafnode.link``) only moves bytes:

- ``HubInfo`` is what stays the same for every leaf (our identity, the leaf
  port, ``leafnode_urls``); ``encode_first_info`` adds the connection's
  ``client_id`` and ``nonce``, ``encode_connect_info`` the bound account.
  Keys come in nats-server's ``Info`` struct order with its ``omitempty``
  rules, so the bytes match what 2.9.10/2.15.1 send (``compression`` is left
  out as 2.9 does: we speak plain text only, and a leaf that sees no
  compression mode does not negotiate).
- ``LeafAuthorizer.check(options, nonce)`` is nats-server's
  ``processLeafNodeConnect`` guards (``lang``, a cluster name with spaces or
  equal to ours, ``gateway``) followed by ``isLeafNodeAuthorized``: the
  ``leafnodes { authorization }`` single user (password plain or bcrypt),
  its single nkey (Ed25519 signature over the nonce), or its ``users`` list.
  With no leafnode authorization nats-server authenticates the leaf as a
  client against the top-level ``authorization`` (users, token, nkeys, user
  JWTs); that code is the router's (``services/router/auth.py``), so
  ``check`` answers ``AsClient`` and the caller runs it there.
- ``is_own_lds`` and ``loop_error``: an ``LS+`` of our own ``$LDS.<id>``
  means the leaf reaches us again through another path; nats-server answers
  ``-ERR 'Loop detected ...'`` and closes.
- ``DownstreamInterest`` keeps what one accepted leaf declared with ``LS+``/
  ``LS-``, keyed as nats-server keys it (§4.5: ``subject`` or ``subject
  queue``, no reference count, a repeated queue ``LS+`` updates the weight in
  place, an unknown ``LS-`` is ignored) and answers each line with the
  change the router applies to the account's interest, or the ``-ERR`` that
  closes the link (a loop, or a literal subject the leaf's user may not
  receive: nats-server checks the hub-side *publish* permission there).

Error texts are nats-server's; ``encode_err`` quotes them.
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

from leafnode.config import DEFAULT_ACCOUNT, JwtError, nkey_verify_key
from leafnode.proto import encode_err, encode_info

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from leafnode.config import LeafAcceptSettings

__all__ = [
    "ERR_AUTH_TIMEOUT",
    "ERR_AUTH_VIOLATION",
    "ERR_CLUSTER_NAME_SPACES",
    "ERR_SAME_CLUSTER_NAME",
    "ERR_WRONG_PORT",
    "LDS_PREFIX",
    "Accepted",
    "AsClient",
    "DownstreamInterest",
    "HubInfo",
    "InterestChange",
    "LeafAuthorizer",
    "Refused",
    "encode_connect_info",
    "encode_first_info",
    "gateway_error",
    "is_own_lds",
    "loop_error",
    "new_lds_subject",
    "new_nonce",
    "permission_error",
    "split_host_port",
]

# nats-server's texts (server/errors.go, client.go, leafnode.go).
ERR_AUTH_VIOLATION: Final = "Authorization Violation"
ERR_AUTH_TIMEOUT: Final = "Authentication Timeout"
ERR_WRONG_PORT: Final = "attempted to connect to leaf node port"
ERR_SAME_CLUSTER_NAME: Final = "remote leafnode has same cluster name"
ERR_CLUSTER_NAME_SPACES: Final = "cluster name cannot contain spaces"
# nats-server's leafNodeReconnectDelayAfterLoopDetected, as the -ERR names it.
_LOOP_DELAY: Final = "30s"
LDS_PREFIX: Final = b"$LDS."
# nats-server's nonceRawLen: 11 random bytes -> 15 URL-safe base64 characters.
_NONCE_RAW_LEN: Final = 11
# nats-server's LDS id is a NUID: 22 characters of base62.
_LDS_ID_LEN: Final = 22
_BASE62: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# host[:port] or [v6][:port]; the port may be -1 (nats-server's parseHostPort).
_HOST_PORT: Final = re.compile(r"\[([^\]]+)\](?::(-?\d+))?|([^:\[\]\s]+)(?::(-?\d+))?")
# nats-server's validBcryptPrefix.
_BCRYPT: Final = re.compile(r"^\$2[abxy]\$\d{2}\$")


def new_nonce() -> str:
    """A fresh nonce for the first INFO: 11 random bytes, URL-safe base64, no padding."""
    return base64.urlsafe_b64encode(secrets.token_bytes(_NONCE_RAW_LEN)).decode().rstrip("=")


def new_lds_subject() -> bytes:
    """``$LDS.<22 random base62 characters>``: one per account, as nats-server makes one."""
    return LDS_PREFIX + "".join(secrets.choice(_BASE62) for _ in range(_LDS_ID_LEN)).encode()


def is_own_lds(subject: bytes, own: bytes) -> bool:
    """True when a downstream ``LS+`` names our own loop-detection subject: a loop."""
    return subject.startswith(LDS_PREFIX) and subject == own


def loop_error(account: str) -> bytes:
    """The ``-ERR`` nats-server sends (then closes) when a leaf sends back its ``$LDS``."""
    return encode_err(
        f'Loop detected for leafnode account="{account}". '
        f"Delaying attempt to reconnect for {_LOOP_DELAY}"
    )


def permission_error(subject: bytes) -> bytes:
    """The ``-ERR`` (then close) for an ``LS+`` on a literal subject the leaf may not receive."""
    return encode_err(
        f'Permissions Violation for Subscription to "{subject.decode(errors="replace")}"'
    )


def gateway_error(gateway: str) -> bytes:
    """The ``-ERR`` for a gateway that dialed the leafnode port."""
    return encode_err(f'Rejecting connection from gateway "{gateway}" on the leafnode port')


@dataclass(frozen=True)
class HubInfo:
    """What every leaf we accept is told about us: nats-server's leafnode ``Info`` fields.

    ``host``/``port`` are the leaf port's (or ``advertise``'s); ``leafnode_urls``
    where leafs may reconnect. ``for_listener`` builds it as nats-server does.
    """

    server_id: str
    server_name: str
    version: str
    go: str
    host: str
    port: int
    max_payload: int
    proto: int = 3
    git_commit: str = ""
    headers: bool = True
    tls_required: bool = False
    tls_verify: bool = False
    api_lvl: int = 0
    leafnode_urls: tuple[str, ...] = ()

    @classmethod
    def for_listener(
        cls,
        accept: LeafAcceptSettings,
        *,
        port: int,
        server_id: str,
        server_name: str,
        version: str,
        go: str,
        max_payload: int,
        host: str | None = None,
    ) -> HubInfo:
        """nats-server's setLeafNodeInfoHostPortAndIP for a listener bound to ``port``.

        ``advertise`` (``host[:port]``; a missing, 0 or -1 port is the bound
        one) replaces host and port; else ``host`` (the caller resolves a
        0.0.0.0 listen address to a reachable one, which needs I/O) or the
        listen host. ``leafnode_urls`` always holds our own ``ip``: a real leaf
        takes an INFO without it for a wrong port; ``no_advertise`` only keeps
        the URL from cluster peers' gossip. TLS is required with a ``tls``
        block, verified with its ``verify``.

        Raises:
            ValueError: ``advertise`` is not ``host[:port]``.
        """
        if accept.advertise:
            host, port = split_host_port(accept.advertise, port)
        elif host is None:
            host = accept.host
        tls = accept.tls
        info = cls(
            server_id=server_id,
            server_name=server_name,
            version=version,
            go=go,
            host=host,
            port=port,
            max_payload=max_payload,
            tls_required=tls is not None,
            tls_verify=tls is not None and tls.verify,
        )
        return replace(info, leafnode_urls=(info.ip,))

    @property
    def ip(self) -> str:
        """``host:port`` as nats-server's ``ip`` (brackets around an IPv6 host)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def split_host_port(text: str, default_port: int) -> tuple[str, int]:
    """nats-server's parseHostPort: ``host:port``, ``[v6]:port`` or ``host``.

    A missing port, 0 or -1 is ``default_port``.

    Raises:
        ValueError: not of that form.
    """
    m = _HOST_PORT.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"expected host or host:port, got {text!r}")
    host = m.group(1) if m.group(1) is not None else m.group(3)
    digits = m.group(2) if m.group(2) is not None else m.group(4)
    port = int(digits) if digits else default_port
    return host, default_port if port in (0, -1) else port


def _info_fields(
    info: HubInfo,
    client_id: int,
    *,
    nonce: str = "",
    remote_account: str = "",
    is_system: bool = False,
    imports: Mapping[str, object] | None = None,
    exports: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """nats-server's ``Info`` keys in struct order; ``omitempty`` ones only when set."""
    fields: dict[str, object] = {
        "server_id": info.server_id,
        "server_name": info.server_name,
        "version": info.version,
        "proto": info.proto,
    }
    if info.git_commit:
        fields["git_commit"] = info.git_commit
    fields.update(go=info.go, host=info.host, port=info.port, headers=info.headers)
    fields["auth_required"] = True  # always on a leaf port (§4.2)
    if info.tls_required:
        fields["tls_required"] = True
    if info.tls_verify:
        fields["tls_verify"] = True
    fields["max_payload"] = info.max_payload
    fields["ip"] = info.ip
    if client_id:
        fields["client_id"] = client_id
    if nonce:
        fields["nonce"] = nonce
    if remote_account:
        fields["connect_info"] = True
        fields["remote_account"] = remote_account
    if is_system:
        fields["acc_is_sys"] = True
    if info.api_lvl:
        fields["api_lvl"] = info.api_lvl
    if imports is not None:
        fields["import"] = dict(imports)
    if exports is not None:
        fields["export"] = dict(exports)
    fields["info_on_connect"] = True
    if info.leafnode_urls:
        fields["leafnode_urls"] = list(info.leafnode_urls)
    return fields


def encode_first_info(info: HubInfo, *, client_id: int, nonce: str) -> bytes:
    """The INFO a hub sends the moment a leaf connects (§4.2 step 1)."""
    return encode_info(_info_fields(info, client_id, nonce=nonce))


def encode_connect_info(
    info: HubInfo,
    *,
    client_id: int,
    account: str,
    is_system: bool = False,
    imports: Mapping[str, object] | None = None,
    exports: Mapping[str, object] | None = None,
) -> bytes:
    """The INFO answering an accepted CONNECT: the bound account, and permissions if any.

    ``imports`` is what the leaf may receive (the user's subscribe permission),
    ``exports`` what it may send (its publish permission), as ``{allow, deny}``.
    """
    return encode_info(
        _info_fields(
            info,
            client_id,
            remote_account=account,
            is_system=is_system,
            imports=imports,
            exports=exports,
        )
    )


@dataclass(frozen=True)
class Accepted:
    """The CONNECT passed: the link binds to ``account``; the rest is from the CONNECT."""

    account: str
    user: str | None
    name: str
    cluster: str
    headers: bool
    is_hub: bool
    deny_pub: tuple[str, ...]


@dataclass(frozen=True)
class AsClient:
    """No leafnode authorization: authenticate the leaf as a client (top-level auth).

    ``account`` is where it binds if the client authentication names none.
    """

    default_account: str


@dataclass(frozen=True)
class Refused:
    """Send ``err`` and close. ``reason`` is for the log (never a secret)."""

    err: bytes
    reason: str


@dataclass(frozen=True)
class _LeafUser:
    password: str | None
    account: str


class LeafAuthorizer:
    """nats-server's leafnode CONNECT checks for one ``leafnodes`` accept block.

    Build one per configuration (a reload makes a new one); ``check`` is
    synchronous and may run bcrypt (tens of milliseconds): ``is_expensive``
    says when, so a trio caller can move it to a thread.
    """

    def __init__(self, accept: LeafAcceptSettings, *, cluster_name: str = "") -> None:
        self._cluster_name = cluster_name
        self._account = accept.account or DEFAULT_ACCOUNT
        self._user = accept.user
        self._password = accept.password or ""
        self._nkey = accept.nkey
        self._users = {
            u.user: _LeafUser(u.password, u.account or DEFAULT_ACCOUNT) for u in accept.users
        }

    @property
    def configured(self) -> bool:
        """True when ``leafnodes { authorization }`` names a user, an nkey or users."""
        return bool(self._user or self._nkey or self._users)

    def is_expensive(self, options: Mapping[str, object]) -> bool:
        """True when ``check`` will run bcrypt for this CONNECT."""
        if self._user:
            return _is_bcrypt(self._password)
        found = self._users.get(_text(options, "user"))
        return found is not None and _is_bcrypt(found.password or "")

    def check(self, options: Mapping[str, object], nonce: str) -> Accepted | AsClient | Refused:
        """The outcome of a leaf's CONNECT (its JSON object), for the ``nonce`` we sent."""
        refused = self._guards(options)
        if refused is not None:
            return refused
        user = _text(options, "user")
        if self._user:
            if user != self._user or not _passwords_match(self._password, _text(options, "pass")):
                return _violation("user/password mismatch")
            return self._accepted(options, self._account, user)
        if self._nkey:
            problem = _nkey_problem(self._nkey, options, nonce)
            if problem:
                return _violation(problem)
            return self._accepted(options, self._account, None)
        if self._users:
            found = self._users.get(user)
            if found is None:
                return _violation("unknown user")
            if not _passwords_match(found.password or "", _text(options, "pass")):
                return _violation("user/password mismatch")
            return self._accepted(options, found.account, user)
        return AsClient(default_account=self._account)

    def accepted_as_client(
        self, options: Mapping[str, object], account: str, user: str | None
    ) -> Accepted:
        """``Accepted`` for a leaf the client authentication (``AsClient``) bound to ``account``."""
        return self._accepted(options, account, user)

    def _guards(self, options: Mapping[str, object]) -> Refused | None:
        """processLeafNodeConnect's checks before any credential is looked at."""
        if options.get("lang"):
            return Refused(encode_err(ERR_WRONG_PORT), "a client connected to the leafnode port")
        cluster = _text(options, "cluster")
        if " " in cluster:
            return Refused(encode_err(ERR_CLUSTER_NAME_SPACES), "cluster name with spaces")
        if self._cluster_name and cluster == self._cluster_name:
            return Refused(encode_err(ERR_SAME_CLUSTER_NAME), "same cluster name")
        gateway = _text(options, "gateway")
        if gateway:
            return Refused(gateway_error(gateway), "a gateway connected to the leafnode port")
        # A leaf never names an account in CONNECT (§4.3).
        if "account" in options or "new_account" in options:
            return _violation("CONNECT names an account")
        return None

    @staticmethod
    def _accepted(options: Mapping[str, object], account: str, user: str | None) -> Accepted:
        deny = options.get("deny_pub")
        deny_pub = tuple(d for d in deny if isinstance(d, str)) if isinstance(deny, list) else ()
        return Accepted(
            account=account,
            user=user or None,
            name=_text(options, "name"),
            cluster=_text(options, "cluster"),
            headers=options.get("headers") is True,
            is_hub=options.get("is_hub") is True,
            deny_pub=deny_pub,
        )


def _violation(reason: str) -> Refused:
    return Refused(encode_err(ERR_AUTH_VIOLATION), reason)


def _text(options: Mapping[str, object], key: str) -> str:
    value = options.get(key)
    return value if isinstance(value, str) else ""


def _is_bcrypt(secret: str) -> bool:
    return _BCRYPT.match(secret) is not None


def _passwords_match(configured: str, given: str) -> bool:
    """nats-server's comparePasswords: a bcrypt hash, or constant-time equality."""
    if _is_bcrypt(configured):
        try:
            return bcrypt.checkpw(given.encode(), configured.encode())
        except ValueError:  # a malformed hash, or over bcrypt's 72 bytes
            return False
    return hmac.compare_digest(configured.encode(), given.encode())


def _nkey_problem(expected: str, options: Mapping[str, object], nonce: str) -> str:
    """Why the CONNECT's nkey and signature do not prove ``expected``; "" when they do."""
    if _text(options, "nkey") != expected:
        return "nkey mismatch"
    sig = _text(options, "sig")
    if not sig:
        return "signature missing"
    try:
        key = nkey_verify_key(expected, nkeys.PREFIX_BYTE_USER)
        key.verify(nonce.encode(), _decode_sig(sig))
    except (BadSignatureError, JwtError, ValueError):
        return "signature not verified"
    return ""


def _decode_sig(sig: str) -> bytes:
    """Raw URL-safe base64 first, then standard base64, as nats-server tries them."""
    std = sig.rstrip("=").replace("-", "+").replace("_", "/")
    return base64.b64decode(std + "=" * (-len(std) % 4), validate=True)


# Subjects nats-server never checks against permissions on a leaf LS+ (its
# own machinery: loop detection and gateway replies).
_UNCHECKED_PREFIXES: Final = (LDS_PREFIX, b"$GR.", b"_GR_.")


@dataclass(frozen=True, slots=True)
class InterestChange:
    """One change to the account's interest from a downstream leaf.

    ``delta`` is what the router adds to the key's count (plain: +1/-1; queue:
    new weight - old weight); ``weight`` the key's weight after it (0: gone).
    """

    subject: bytes
    queue: bytes | None
    delta: int
    weight: int


class DownstreamInterest:
    """The ``LS+``/``LS-`` state of one accepted leaf (nats-server's ``c.subs`` of a leaf).

    Args:
        account: the bound account, for the loop ``-ERR``.
        own_lds: our ``$LDS.<id>`` subject for that account.
        may_receive: whether the leaf's user may be sent a literal subject
            (the hub-side publish permission); None: no permissions.
    """

    __slots__ = ("_account", "_keys", "_may_receive", "_own_lds")

    def __init__(
        self,
        account: str,
        own_lds: bytes,
        may_receive: Callable[[bytes], bool] | None = None,
    ) -> None:
        self._account = account
        self._own_lds = own_lds
        self._may_receive = may_receive
        # (subject, queue) -> weight (1 for plain interest).
        self._keys: dict[tuple[bytes, bytes | None], int] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def lsub(
        self, subject: bytes, queue: bytes | None = None, weight: int | None = None
    ) -> InterestChange | Refused | None:
        """An ``LS+``: the change to apply, the ``-ERR`` to close with, or None (a repeat)."""
        if is_own_lds(subject, self._own_lds):
            return Refused(loop_error(self._account), "loop detected")
        if (
            self._may_receive is not None
            and not subject.startswith(_UNCHECKED_PREFIXES)
            and b"*" not in subject
            and b">" not in subject
            and not self._may_receive(subject)
        ):
            return Refused(permission_error(subject), "subscription permission violation")
        key = (subject, queue)
        old = self._keys.get(key)
        if queue is None:
            if old is not None:
                return None
            self._keys[key] = 1
            return InterestChange(subject, None, 1, 1)
        # nats-server takes a weight below 1 as 1 for a new queue key.
        new = max(weight or 1, 1)
        if old == new:
            return None
        self._keys[key] = new
        return InterestChange(subject, queue, new - (old or 0), new)

    def lunsub(self, subject: bytes, queue: bytes | None = None) -> InterestChange | None:
        """An ``LS-``: the key's removal, or None when the leaf never declared it."""
        old = self._keys.pop((subject, queue), None)
        if old is None:
            return None
        return InterestChange(subject, queue, -old, 0)

    def clear(self) -> list[InterestChange]:
        """Every key removed, for a link that closed."""
        gone = [InterestChange(s, q, -w, 0) for (s, q), w in self._keys.items()]
        self._keys.clear()
        return gone
