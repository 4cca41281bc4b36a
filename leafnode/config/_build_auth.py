"""``authorization``, ``accounts`` and ``permissions`` blocks -> settings.

The rules follow nats-server's ``parseAuthorization``/``parseUsers``/
``parseAccounts``/``parseUserPermissions``: ``publish``/``subscribe`` are a
subject, a list (both mean ``allow``) or ``{allow, deny}``; a single
user/password excludes a ``users`` list and a token; ``authorization {
permissions }`` applies to every user that has none of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._errors import ConfigError
from ._settings import (
    DEFAULT_ACCOUNT,
    AccountSettings,
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
    want_str,
    want_subjects,
)

if TYPE_CHECKING:
    from ._errors import Pos
    from ._parser import Entry
    from ._values import Context

__all__ = ["Authorization", "build_accounts", "build_authorization", "build_permissions"]

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
                password = want_str(item, sub)
            case "token":
                auth.token = want_str(item, sub)
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
                    password = want_str(item, sub)
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
        for field_entry in item.value.data.values():
            field_name = f"{sub}.{field_entry.key}"
            match field_entry.key.lower():
                case "users":
                    users_entry = field_entry
                case "default_permissions":
                    permissions = build_permissions(field_entry, field_name, ctx)
                case "exports" | "imports":
                    ctx.ignored(field_entry, field_name, "not implemented yet")
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
        accounts.append(AccountSettings(name=acc_name, users=tuple(users)))
    return accounts


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
