"""``authorization``, ``accounts``, ``permissions`` and operator-mode blocks -> settings.

The rules follow nats-server's ``parseAuthorization``/``parseUsers``/
``parseAccounts``/``parseUserPermissions``: ``publish``/``subscribe`` are a
subject, a list (both mean ``allow``) or ``{allow, deny}``; a single
user/password excludes a ``users`` list and a token; ``authorization {
permissions }`` applies to every user that has none of its own.

Operator mode (``operator``, ``system_account``, ``resolver``,
``resolver_preload``; nats-server's ``opts.go`` and ``validateTrustedOperators``)
is built in ``_build.py``, which verifies every JWT with :func:`decode_jwt`.
The router verifies user JWTs with the same function, so there is one
implementation of JWT signature checking.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import nkeys
from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import VerifyKey

from ._errors import ConfigError
from ._settings import (
    DEFAULT_ACCOUNT,
    AccountSettings,
    ExportSettings,
    ImportSettings,
    Permissions,
    SubjectPermission,
    UserSettings,
)
from ._values import (
    is_public_user_nkey,
    type_name,
    want_duration,
    want_int,
    want_list,
    want_map,
    want_seconds,
    want_secret,
    want_str,
    want_str_list,
    want_subjects,
)

if TYPE_CHECKING:
    from ._errors import Pos
    from ._parser import Entry
    from ._values import Context

__all__ = [
    "Authorization",
    "DecodedJwt",
    "JwtError",
    "build_accounts",
    "build_authorization",
    "build_permissions",
    "decode_jwt",
    "nkey_verify_key",
    "operator_signing_keys",
]

# Account names nats-server reserves ("$G" is the global account).
_RESERVED_ACCOUNTS = frozenset({DEFAULT_ACCOUNT})


@dataclass
class Authorization:
    """What an ``authorization`` block says, before cross-checks with ``accounts``."""

    pos: Pos
    users: list[UserSettings] = field(default_factory=list)
    single_user: bool = False
    has_users_list: bool = False
    token: str | None = None
    timeout_s: float | None = None
    permissions: Permissions | None = None
    # Where each user's `account` was named, to report unknown accounts there.
    account_refs: list[tuple[str, Pos]] = field(default_factory=list)


def build_authorization(entry: Entry, ctx: Context) -> Authorization:
    """The top-level ``authorization { ... }`` block."""
    name = "authorization"
    block = want_map(entry, name)
    auth = Authorization(pos=entry.pos)
    user: str | None = None
    password: str | None = None
    users_entry: Entry | None = None
    for item in block.values():
        sub = f"{name}.{item.key}"
        match item.key.lower():
            case "user" | "username":
                user = want_str(item, sub)
            case "pass" | "password":
                password = want_secret(item, sub)
            case "token":
                auth.token = want_secret(item, sub)
            case "timeout":
                auth.timeout_s = want_seconds(item, sub)
            case "users":
                users_entry = item
            case "permissions" | "default_permissions" | "default_permission":
                auth.permissions = build_permissions(item, sub, ctx)
            case _:
                ctx.unknown(item, sub)
    if (user or password) and auth.token:
        raise ConfigError.at(entry.pos, f"{name}: cannot have both user/password and token")
    if password and not user:
        raise ConfigError.at(entry.pos, f"{name}: 'password' needs a 'user'")
    if users_entry is not None:
        if user:
            raise ConfigError.at(
                entry.pos, f"{name}: cannot have a single user/password and a users array"
            )
        if auth.token:
            raise ConfigError.at(entry.pos, f"{name}: cannot have a token and a users array")
        auth.has_users_list = True
        auth.users = build_users(
            users_entry,
            f"{name}.users",
            ctx,
            account=DEFAULT_ACCOUNT,
            default_permissions=auth.permissions,
            account_refs=auth.account_refs,
        )
    elif user:
        auth.single_user = True
        auth.users = [UserSettings(user=user, password=password, permissions=auth.permissions)]
    return auth


def build_users(
    entry: Entry,
    name: str,
    ctx: Context,
    *,
    account: str,
    default_permissions: Permissions | None,
    account_refs: list[tuple[str, Pos]] | None = None,
) -> list[UserSettings]:
    """A ``users: [...]`` array; ``account_refs`` allows a per-user ``account`` key."""
    users: list[UserSettings] = []
    for index, value in enumerate(want_list(entry, name)):
        item_name = f"{name}[{index}]"
        if not isinstance(value.data, dict):
            raise ConfigError.at(
                value.pos,
                f"{item_name}: expected a block {{ user: ..., password: ... }}, "
                f"got {type_name(value)}",
            )
        user: str | None = None
        password: str | None = None
        nkey: str | None = None
        permissions: Permissions | None = None
        user_account = account
        for item in value.data.values():
            sub = f"{item_name}.{item.key}"
            match item.key.lower():
                case "user" | "username":
                    user = want_str(item, sub)
                case "pass" | "password":
                    password = want_secret(item, sub)
                case "nkey":
                    nkey = want_str(item, sub)
                    if not is_public_user_nkey(nkey):
                        raise ConfigError.at(item.pos, f"{sub}: not a valid public user nkey")
                case "permission" | "permissions" | "authorization":
                    permissions = build_permissions(item, sub, ctx)
                case "account" if account_refs is not None:
                    user_account = want_str(item, sub)
                    account_refs.append((user_account, item.pos))
                case _:
                    ctx.unknown(item, sub)
        if nkey is None and not user:
            raise ConfigError.at(value.pos, f"{item_name}: a user entry needs 'user' or 'nkey'")
        if nkey is not None and (user or password):
            raise ConfigError.at(value.pos, f"{item_name}: nkey users take no user or password")
        users.append(
            UserSettings(
                account=user_account,
                user=user,
                password=password,
                nkey=nkey,
                permissions=permissions if permissions is not None else default_permissions,
            )
        )
    return users


def build_accounts(entry: Entry, ctx: Context) -> list[AccountSettings]:
    """``accounts { NAME: { users: [...] } }`` or ``accounts: [A, B]``."""
    name = "accounts"
    data = entry.value.data
    accounts: list[AccountSettings] = []
    pending_imports: list[tuple[str, list[tuple[ImportSettings, Pos]]]] = []
    seen: set[str] = set()
    if isinstance(data, list):
        for index, value in enumerate(data):
            if not isinstance(value.data, str):
                raise ConfigError.at(
                    value.pos, f"{name}[{index}]: expected an account name, got {type_name(value)}"
                )
            _check_account_name(value.data, value.pos, seen)
            accounts.append(AccountSettings(name=value.data))
        return accounts
    for item in want_map(entry, name).values():
        if item.used:
            # A key defined only to be used as a $variable, as nats-server allows.
            continue
        acc_name = item.key
        sub = f"{name}.{acc_name}"
        if not isinstance(item.value.data, dict):
            raise ConfigError.at(item.pos, f"{sub}: expected a block for the account")
        _check_account_name(acc_name, item.pos, seen)
        users_entry: Entry | None = None
        permissions: Permissions | None = None
        exports: tuple[ExportSettings, ...] = ()
        imports: list[tuple[ImportSettings, Pos]] = []
        for field_entry in item.value.data.values():
            field_name = f"{sub}.{field_entry.key}"
            match field_entry.key.lower():
                case "users":
                    users_entry = field_entry
                case "default_permissions":
                    permissions = build_permissions(field_entry, field_name, ctx)
                case "exports":
                    exports = _build_exports(field_entry, field_name)
                case "imports":
                    imports = _build_imports(field_entry, field_name)
                case "jetstream":
                    ctx.ignored(field_entry, field_name)
                case _:
                    ctx.unknown(field_entry, field_name)
        users: list[UserSettings] = []
        if users_entry is not None:
            users = build_users(
                users_entry,
                f"{sub}.users",
                ctx,
                account=acc_name,
                default_permissions=permissions,
            )
        accounts.append(AccountSettings(name=acc_name, users=tuple(users), exports=exports))
        pending_imports.append((acc_name, imports))
    return _attach_imports(accounts, pending_imports)


def _build_exports(entry: Entry, name: str) -> tuple[ExportSettings, ...]:
    """``exports: [{service: "q.>"}, {stream: "s.>"}]``."""
    out: list[ExportSettings] = []
    for index, value in enumerate(want_list(entry, name)):
        item_name = f"{name}[{index}]"
        if not isinstance(value.data, dict):
            raise ConfigError.at(value.pos, f"{item_name}: expected a block {{service|stream}}")
        kinds = [e for e in value.data.values() if e.key.lower() in ("service", "stream")]
        if len(kinds) != 1:
            raise ConfigError.at(value.pos, f"{item_name}: needs exactly one of service, stream")
        allowed: tuple[str, ...] | None = None
        for field_entry in value.data.values():
            match field_entry.key.lower():
                case "service" | "stream":
                    pass
                case "accounts":
                    allowed = tuple(
                        acc for acc, _ in want_str_list(field_entry, f"{item_name}.accounts")
                    )
                case _:
                    raise ConfigError.at(
                        field_entry.pos,
                        f"{item_name}.{field_entry.key}: not supported in an export",
                    )
        kind_entry = kinds[0]
        subject = _want_subject(kind_entry, f"{item_name}.{kind_entry.key}")
        out.append(ExportSettings(kind=kind_entry.key.lower(), subject=subject, accounts=allowed))
    return tuple(out)


def _build_imports(entry: Entry, name: str) -> list[tuple[ImportSettings, Pos]]:
    """``imports: [{service: {account, subject}, to}, {stream: {...}, prefix}]``."""
    out: list[tuple[ImportSettings, Pos]] = []
    for index, value in enumerate(want_list(entry, name)):
        item_name = f"{name}[{index}]"
        if not isinstance(value.data, dict):
            raise ConfigError.at(value.pos, f"{item_name}: expected a block {{service|stream}}")
        kind = account = subject = ""
        to = prefix = None
        for field_entry in value.data.values():
            sub = f"{item_name}.{field_entry.key}"
            match field_entry.key.lower():
                case "service" | "stream" as found:
                    if kind:
                        raise ConfigError.at(field_entry.pos, f"{sub}: only one of service, stream")
                    kind = found
                    for part in want_map(field_entry, sub).values():
                        match part.key.lower():
                            case "account":
                                account = want_str(part, f"{sub}.account")
                            case "subject":
                                subject = _want_subject(part, f"{sub}.subject")
                            case _:
                                raise ConfigError.at(part.pos, f"{sub}.{part.key}: unknown field")
                case "to":
                    to = _want_subject(field_entry, sub)
                case "prefix":
                    prefix = _want_subject(field_entry, sub)
                case _:
                    raise ConfigError.at(field_entry.pos, f"{sub}: not supported in an import")
        if not kind or not account or not subject:
            raise ConfigError.at(
                value.pos, f"{item_name}: needs service or stream with account and subject"
            )
        if kind == "service" and prefix is not None:
            raise ConfigError.at(
                value.pos, f"{item_name}: a service import takes 'to', not 'prefix'"
            )
        if kind == "stream" and to is not None:
            raise ConfigError.at(
                value.pos, f"{item_name}: a stream import takes 'prefix', not 'to'"
            )
        local = to or subject
        if prefix:
            local = f"{prefix}.{subject}"
        if to is not None and _wildcards(to) != _wildcards(subject):
            raise ConfigError.at(
                value.pos, f"{item_name}: 'to' must have the same wildcards as the subject"
            )
        out.append((ImportSettings(kind, account, subject, local, prefix or ""), value.pos))
    return out


def _want_subject(entry: Entry, name: str) -> str:
    subjects = want_subjects(entry, name)
    if len(subjects) != 1 or not isinstance(entry.value.data, str):
        raise ConfigError.at(entry.pos, f"{name}: expected one subject")
    return subjects[0]


def _wildcards(subject: str) -> list[str]:
    return [tok for tok in subject.split(".") if tok in ("*", ">")]


def _covers(pattern: str, subject: str) -> bool:
    """True when every subject matched by ``subject`` is matched by ``pattern``."""
    ptoks = pattern.split(".")
    stoks = subject.split(".")
    for i, ptok in enumerate(ptoks):
        if ptok == ">":
            return len(stoks) > i
        if i >= len(stoks):
            return False
        stok = stoks[i]
        if stok == ">" or (ptok != "*" and ptok != stok):
            return False
    return len(ptoks) == len(stoks)


def _attach_imports(
    accounts: list[AccountSettings],
    pending: list[tuple[str, list[tuple[ImportSettings, Pos]]]],
) -> list[AccountSettings]:
    """Check each import against the exporting account's exports, as nats-server does."""
    by_name = {account.name: account for account in accounts}
    out: list[AccountSettings] = []
    for account, (_, imports) in zip(accounts, pending, strict=True):
        for imp, pos in imports:
            exporter = by_name.get(imp.account)
            if exporter is None:
                raise ConfigError.at(
                    pos, f"accounts.{account.name}: unknown account {imp.account!r}"
                )
            if not any(
                exp.kind == imp.kind
                and _covers(exp.subject, imp.subject)
                and (exp.accounts is None or account.name in exp.accounts)
                for exp in exporter.exports
            ):
                raise ConfigError.at(
                    pos,
                    f"accounts.{account.name}: account {imp.account!r} does not export "
                    f"{imp.kind} {imp.subject!r}",
                )
        if imports:
            account = replace(account, imports=tuple(imp for imp, _ in imports))
        out.append(account)
    return out


def _check_account_name(acc_name: str, pos: Pos, seen: set[str]) -> None:
    if acc_name in _RESERVED_ACCOUNTS:
        raise ConfigError.at(pos, f"accounts: {acc_name!r} is a reserved account name")
    if not acc_name or any(ch.isspace() for ch in acc_name):
        raise ConfigError.at(pos, f"accounts: invalid account name {acc_name!r}")
    if acc_name in seen:
        raise ConfigError.at(pos, f"accounts: duplicate account {acc_name!r}")
    seen.add(acc_name)


def build_permissions(entry: Entry, name: str, ctx: Context) -> Permissions:
    """``permissions { publish, subscribe, allow_responses }``."""
    publish: SubjectPermission | None = None
    subscribe: SubjectPermission | None = None
    allow_responses = False
    responses_max = 1
    responses_expires_s = 0.0
    for item in want_map(entry, name).values():
        sub = f"{name}.{item.key}"
        match item.key.lower():
            case "pub" | "publish" | "import":
                publish = _subject_permission(item, sub, ctx, allow_queue=False)
            case "sub" | "subscribe" | "export":
                subscribe = _subject_permission(item, sub, ctx, allow_queue=True)
            case "allow_responses" | "publish_allow_responses":
                data = item.value.data
                if isinstance(data, bool):
                    allow_responses = data
                elif isinstance(data, dict):
                    allow_responses = True
                    responses_max, responses_expires_s = _allow_responses(item, sub, ctx)
                else:
                    raise ConfigError.at(
                        item.pos,
                        f"{sub}: expected a boolean or a block {{ max, expires }}, "
                        f"got {type_name(item.value)}",
                    )
            case _:
                ctx.unknown(item, sub)
    return Permissions(
        publish=publish,
        subscribe=subscribe,
        allow_responses=allow_responses,
        responses_max=responses_max,
        responses_expires_s=responses_expires_s,
    )


def _subject_permission(
    entry: Entry, name: str, ctx: Context, *, allow_queue: bool
) -> SubjectPermission | None:
    data = entry.value.data
    if not isinstance(data, dict):
        return SubjectPermission(allow=want_subjects(entry, name, allow_queue=allow_queue))
    if not data:
        return None
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    for item in data.values():
        sub = f"{name}.{item.key}"
        match item.key.lower():
            case "allow":
                allow = want_subjects(item, sub, allow_queue=allow_queue)
            case "deny":
                deny = want_subjects(item, sub, allow_queue=allow_queue)
            case _:
                if not item.used:
                    raise ConfigError.at(
                        item.pos, f"unknown field {sub!r}: only 'allow' and 'deny' are permitted"
                    )
    return SubjectPermission(allow=allow, deny=deny)


def _allow_responses(entry: Entry, name: str, ctx: Context) -> tuple[int, float]:
    responses_max = 1
    expires_s = 0.0
    for item in want_map(entry, name).values():
        sub = f"{name}.{item.key}"
        match item.key.lower():
            case "max" | "max_msgs" | "max_messages" | "max_responses":
                # 0 keeps the default (1); a negative value means unlimited (nats-server).
                value = want_int(item, sub)
                if value != 0:
                    responses_max = value
            case "expires" | "expiration" | "ttl":
                expires_s = want_duration(item, sub)
            case _:
                ctx.unknown(item, sub)
    return responses_max, expires_s


# -- operator mode: JWTs (leafnode-protocol.md §5 "Hand-made JWTs"; nats-io/jwt v2) ------

# nats-io/jwt's MaxTokenSize.
MAX_JWT_LEN = 1024 * 1024
# Header algorithms nats-io/jwt v2 accepts: v2's, and v1's ("ed25519"), whatever
# the claims' version (the header does not decide how the claims are read).
_JWT_ALGORITHMS = ("ed25519-nkey", "ed25519")
# The claims version nats-io/jwt v2 reads and verifies natively.
_JWT_VERSION = 2
# What nats-io/jwt v2 keeps of a version 1 JWT's claims when it migrates them
# (decoder_{operator,account,user}.go): the fields of its v1 "nats" structs.
# Anything else a v1 JWT carries (e.g. an account's default_permissions) is
# dropped there, so it is dropped here too.
_V1_NATS_FIELDS = {
    "operator": frozenset(
        {"signing_keys", "account_server_url", "operator_service_urls", "system_account"}
    ),
    "account": frozenset({"imports", "exports", "limits", "signing_keys", "revocations"}),
    "user": frozenset(
        {"pub", "sub", "resp", "src", "times", "times_location", "subs", "data", "payload"}
        | {"bearer_token"}
    ),
}
_JWT_PART = re.compile(r"[A-Za-z0-9_-]*")
# A public nkey: prefix byte, 32-byte Ed25519 key, CRC16 (little-endian).
_NKEY_RAW_LEN = 35
_NKEY_KINDS = {
    nkeys.PREFIX_BYTE_OPERATOR: "operator",
    nkeys.PREFIX_BYTE_ACCOUNT: "account",
    nkeys.PREFIX_BYTE_USER: "user",
}
# For each JWT type: the nkey kinds of its issuer and of its subject.
_JWT_KEYS = {
    "operator": (nkeys.PREFIX_BYTE_OPERATOR, nkeys.PREFIX_BYTE_OPERATOR),
    "account": (nkeys.PREFIX_BYTE_OPERATOR, nkeys.PREFIX_BYTE_ACCOUNT),
    "user": (nkeys.PREFIX_BYTE_ACCOUNT, nkeys.PREFIX_BYTE_USER),
}


class JwtError(ValueError):
    """A JWT or nkey is malformed, wrongly signed or of the wrong kind; ``str()`` says why."""


@dataclass(frozen=True, slots=True)
class DecodedJwt:
    """The claims of a JWT whose signature verified with its issuer's key."""

    kind: str
    """``nats.type``: ``operator``, ``account`` or ``user``."""
    issuer: str
    subject: str
    name: str
    issued_at: int
    expires: int
    """``exp`` in Unix seconds; 0 means never."""
    not_before: int
    """``nbf`` in Unix seconds; 0 means always."""
    nats: dict[str, object]
    """The ``nats`` object of the claims (type-specific fields), as a version 2 JWT has it."""
    version: int = _JWT_VERSION
    """1 for a legacy JWT (migrated to version 2's layout in ``nats``), else 2."""

    def time_problem(self, now: float) -> str | None:
        """Why the JWT is not valid at ``now`` (Unix seconds), or None when it is.

        As nats-io/jwt ``ClaimsData.Validate``, in whole seconds: expired once
        past ``exp``, not yet valid before ``nbf``.
        """
        second = int(now)
        if self.expires and second > self.expires:
            return "expired"
        if self.not_before and second < self.not_before:
            return "not yet valid"
        return None


def nkey_verify_key(public_key: str, prefix: int) -> VerifyKey:
    """The Ed25519 verify key of a public nkey of kind ``prefix`` (``nkeys.PREFIX_BYTE_*``).

    Raises:
        JwtError: not a public nkey of that kind (base32, length, prefix or CRC wrong).
    """
    try:
        raw = base64.b32decode(public_key.encode("ascii"))
    except ValueError:  # binascii.Error and UnicodeEncodeError included
        raw = b""
    if (
        len(raw) != _NKEY_RAW_LEN
        or raw[0] != prefix
        or int(nkeys.crc16(raw[:-2])) != int.from_bytes(raw[-2:], "little")
    ):
        kind = _NKEY_KINDS.get(prefix, "")
        raise JwtError(f"{public_key[:60]!r} is not a valid public {kind} nkey")
    return VerifyKey(raw[1:-2])


def _b64url(part: str, what: str) -> bytes:
    # nats-io/jwt decodes with RawURLEncoding: no padding, no '+' or '/'.
    if _JWT_PART.fullmatch(part) is None:
        raise JwtError(f"{what} is not URL-safe base64 without padding")
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError) as exc:
        raise JwtError(f"{what} is not valid base64") from exc


def _json_object(data: bytes, what: str) -> dict[str, object]:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise JwtError(f"{what} is not valid JSON") from exc
    if not isinstance(value, dict):
        raise JwtError(f"{what} is not a JSON object")
    return value


def _int_claim(claims: dict[str, object], key: str) -> int:
    value = claims.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise JwtError(f"claim {key!r} is not an integer")
    return value


def _str_claim(claims: dict[str, object], key: str) -> str:
    value = claims.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise JwtError(f"claim {key!r} is not a string")
    return value


def decode_jwt(token: str, kind: str) -> DecodedJwt:
    """Decode a NATS JWT of type ``kind`` and verify its signature (nats-io/jwt v2 ``Decode``).

    Checks: three URL-safe base64 parts; the header ``{"typ":"JWT",
    "alg":"ed25519-nkey"}`` or v1's ``{"typ":"jwt","alg":"ed25519"}`` (case
    ignored); claims that are a JSON object of type ``kind``; an ``iss`` that
    is a public operator key (operator and account JWTs) or account key (user
    JWTs); a ``sub`` that is a public key of ``kind``; and the Ed25519
    signature of ``iss``. Times are not checked here (see
    :meth:`DecodedJwt.time_problem`), nor who may issue (the caller's trust).

    Both claim versions nats-server accepts are read, as nats-io/jwt v2 does:

    * version 2: ``nats.type`` and ``nats.version: 2``; the signature covers
      ``header.claims``;
    * version 1 (a top-level ``type``, whatever else, or ``nats.version: 1``): the signature covers
      the claims part only, a user's ``issuer_account`` is top-level, and
      ``nats`` is migrated to version 2's layout, keeping only the fields
      v1 had (see ``_V1_NATS_FIELDS``).

    Args:
        token: The JWT text.
        kind: ``"operator"``, ``"account"`` or ``"user"``.

    Raises:
        JwtError: Any check fails; the message says which.
    """
    issuer_prefix, subject_prefix = _JWT_KEYS[kind]
    if len(token) > MAX_JWT_LEN:
        raise JwtError(f"longer than {MAX_JWT_LEN} bytes")
    parts = token.split(".")
    if len(parts) != 3:
        raise JwtError("expected three parts separated by '.'")
    header = _json_object(_b64url(parts[0], "header"), "header")
    typ, alg = header.get("typ"), header.get("alg")
    if not (isinstance(typ, str) and typ.upper() == "JWT") or not (
        isinstance(alg, str) and alg.lower() in _JWT_ALGORITHMS
    ):
        raise JwtError(
            'header must be {"typ":"JWT","alg":"ed25519-nkey"} (or v1\'s "alg":"ed25519"), '
            f"got {header!r}"
        )
    claims = _json_object(_b64url(parts[1], "claims"), "claims")
    signature = _b64url(parts[2], "signature")
    nats = claims.get("nats", {})
    if not isinstance(nats, dict):
        raise JwtError("claim 'nats' is not an object")
    # nats-io/jwt: a top-level "type" makes a version 1 JWT, whatever else it says.
    version = 1 if claims.get("type") else nats.get("version")
    if version == 1:
        claim_type = claims.get("type") or nats.get("type")
        nats = _migrate_v1(kind, claims, nats)
        signed = parts[1]  # v1 signs the claims part only
    elif version == _JWT_VERSION:
        claim_type = nats.get("type")
        signed = f"{parts[0]}.{parts[1]}"
    else:
        raise JwtError(f"not a version 1 or 2 NATS JWT (version {version!r})")
    if claim_type != kind:
        raise JwtError(f"expected a JWT of type {kind!r}, got type {claim_type!r}")
    issuer = _str_claim(claims, "iss")
    subject = _str_claim(claims, "sub")
    try:
        verify_key = nkey_verify_key(issuer, issuer_prefix)
        nkey_verify_key(subject, subject_prefix)
    except JwtError as exc:
        raise JwtError(f"{kind} JWT: {exc}") from None
    try:
        verify_key.verify(signed.encode("ascii"), signature)
    except (BadSignatureError, CryptoError, ValueError) as exc:
        raise JwtError(f"signature does not verify with the issuer key {issuer}") from exc
    return DecodedJwt(
        kind=kind,
        issuer=issuer,
        subject=subject,
        name=_str_claim(claims, "name"),
        issued_at=_int_claim(claims, "iat"),
        expires=_int_claim(claims, "exp"),
        not_before=_int_claim(claims, "nbf"),
        nats=nats,
        version=version,
    )


def _migrate_v1(kind: str, claims: dict[str, object], nats: dict[str, object]) -> dict[str, object]:
    """A version 1 ``nats`` object in version 2's layout (nats-io/jwt ``migrateV1``)."""
    fields = _V1_NATS_FIELDS.get(kind, frozenset())
    migrated: dict[str, object] = {key: nats[key] for key in fields if key in nats}
    migrated["type"] = claims.get("type") or nats.get("type")
    migrated["version"] = 1
    if kind == "user":
        issuer_account = claims.get("issuer_account")
        if issuer_account:
            migrated["issuer_account"] = issuer_account
    keys = migrated.get("signing_keys")
    if kind == "account" and isinstance(keys, list):
        # v1 signing keys are plain keys (scoped keys came with v2).
        migrated["signing_keys"] = [key for key in keys if isinstance(key, str)]
    return migrated


def operator_signing_keys(operator: DecodedJwt) -> list[str]:
    """Keys whose account JWTs this operator trusts (nats-server ``validateTrustedOperators``).

    The operator's own key, unless ``strict_signing_key_usage``, and its
    ``signing_keys``.
    """
    keys = [] if operator.nats.get("strict_signing_key_usage") is True else [operator.subject]
    extra = operator.nats.get("signing_keys")
    if isinstance(extra, list):
        keys.extend(key for key in extra if isinstance(key, str))
    return keys
