"""The accepting side of ``leafnodes``: ``listen``, ``authorization``, ``advertise``, ``tls``.

Theory of operation
-------------------
nats-server's ``parseLeafNodes`` reads these keys of the ``leafnodes`` block
beside ``remotes``; ``build_leafnodes`` hands each one here and this module
folds them into one ``LeafAcceptSettings``. The rules and the error reasons
are nats-server's (``server/opts.go`` parseLeafAuthorization and
parseLeafUsers, ``server/leafnode.go`` validateLeafNodeAuthOptions and
validateLeafNode):

- ``listen`` is ``host:port`` or a port; ``port``/``host``/``net`` set one
  half. ``port: -1`` asks for a random port.
- ``authorization`` takes ``user``/``password``, ``nkey`` (a public user
  key), ``users: [{user, password, account}]``, ``account`` and ``timeout``.
  A single user (or nkey) and a ``users`` list exclude each other, a user
  name appears once, and every account named must exist (in operator mode a
  ``users`` list is refused and ``account`` must be an account public key).
  nats-server has no ``token`` here: a leaf authenticates with a token only
  through the top-level ``authorization``, so ``token`` is an unknown field.
- ``tls`` is a server-side block (certificate and key required).

Pure: the caller records warnings; errors are ``ConfigError`` at the key.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Final

from ._build_tls import build_tls
from ._errors import ConfigError
from ._settings import DEFAULT_ACCOUNT, LeafAcceptSettings, LeafUserSettings
from ._values import (
    is_public_user_nkey,
    type_name,
    want_bool,
    want_host_port,
    want_list,
    want_map,
    want_port,
    want_seconds,
    want_secret,
    want_str,
)

if TYPE_CHECKING:
    from collections.abc import Collection

    from ._errors import Pos
    from ._parser import Entry
    from ._values import Context

__all__ = ["ACCEPT_KEYS", "build_accept", "check_accept"]

# The keys of `leafnodes` this module reads (lower case, nats-server's aliases).
ACCEPT_KEYS: Final = frozenset(
    {
        "listen",
        "port",
        "host",
        "net",
        "authorization",
        "advertise",
        "leafnode_advertise",
        "no_advertise",
        "tls",
        "min_version",
        "minimum_version",
    }
)
# nats-server's leafnode TLS handshake timeout default (server/const.go TLS_TIMEOUT).
_DEFAULT_TLS_TIMEOUT_S: Final = 2.0
# nats-server warns above this many seconds: likely an unquoted duration (1m).
_HIGH_TIMEOUT_S: Final = 60.0
# `advertise`: host[:port] or [v6][:port] (nats-server's parseHostPort).
_ADVERTISE: Final = re.compile(r"\[[^\]]+\](?::-?\d+)?|[^:\[\]\s]+(?::-?\d+)?")
# An account public key: "A" + 55 base32 characters (nkeys.IsValidPublicAccountKey's shape).
_ACCOUNT_KEY_LEN: Final = 56


def build_accept(
    accept: LeafAcceptSettings,
    item: Entry,
    ctx: Context,
    accounts: Collection[str] | None,
) -> LeafAcceptSettings:
    """``accept`` with one accepting-side key of ``leafnodes`` (``item``) applied.

    ``accounts``: the account names an ``account`` key may bind to; None in
    operator mode (``check_accept`` then checks the key's shape).
    """
    sub = f"leafnodes.{item.key}"
    match item.key.lower():
        case "listen":
            host, port = want_host_port(item, sub)
            return replace(accept, host=host or accept.host, port=port)
        case "port":
            port = want_port(item, sub)
            return replace(accept, port=port)
        case "host" | "net":
            return replace(accept, host=want_str(item, sub))
        case "advertise" | "leafnode_advertise":
            advertise = want_str(item, sub)
            if _ADVERTISE.fullmatch(advertise.strip()) is None:
                # nats-server refuses it at start (setLeafNodeInfoHostPortAndIP).
                raise ConfigError.at(
                    item.pos, f"{sub}: expected host or host:port, got {advertise!r}"
                )
            return replace(accept, advertise=advertise)
        case "no_advertise":
            return replace(accept, no_advertise=want_bool(item, sub))
        case "tls":
            tls = build_tls(item, sub, ctx, default_timeout_s=_DEFAULT_TLS_TIMEOUT_S, server=True)
            return replace(accept, tls=tls)
        case "authorization":
            return _authorization(accept, item, ctx, accounts)
        case _:  # min_version: only a hub enforces it on the leafs it accepts
            ctx.ignored(item, sub)
            return accept


def check_accept(accept: LeafAcceptSettings, entry: Entry, *, operator: bool) -> None:
    """nats-server's validateLeafNode checks in operator mode, at the ``leafnodes`` block."""
    if not operator:
        return
    if accept.users:
        raise ConfigError.at(
            entry.pos, "operator mode does not allow specifying users in leafnode config"
        )
    if accept.port is not None and accept.account and not _is_account_key(accept.account):
        raise ConfigError.at(entry.pos, "operator mode and non account nkeys are incompatible")


def _check_account(item: Entry, name: str, accounts: Collection[str] | None) -> str:
    account = want_str(item, name)
    if accounts is not None and account and account != DEFAULT_ACCOUNT and account not in accounts:
        raise ConfigError.at(
            item.pos,
            f"cannot find local account {account!r} specified in leafnode authorization",
        )
    return account


def _authorization(
    accept: LeafAcceptSettings, entry: Entry, ctx: Context, accounts: Collection[str] | None
) -> LeafAcceptSettings:
    name = "leafnodes.authorization"
    user: str | None = None
    password: str | None = None
    nkey: str | None = None
    account: str | None = None
    timeout_s: float | None = None
    users: tuple[LeafUserSettings, ...] = ()
    for item in want_map(entry, name).values():
        sub = f"{name}.{item.key}"
        match item.key.lower():
            case "user" | "username":
                user = want_str(item, sub)
            case "pass" | "password":
                password = want_secret(item, sub)
            case "nkey":
                nkey = want_str(item, sub)
                if not is_public_user_nkey(nkey):
                    raise ConfigError.at(
                        item.pos, "Not a valid public nkey for leafnode authorization"
                    )
            case "timeout":
                timeout_s = want_seconds(item, sub)
                if timeout_s > _HIGH_TIMEOUT_S:
                    ctx.warnings.append(
                        f"{_pos_text(item.pos)}: {sub}: timeout of "
                        f"{timeout_s:g} seconds is high, consider keeping it under 60 seconds "
                        "(an unquoted duration? use '1m' instead of 1m)"
                    )
            case "users":
                users = _users(item, f"{name}.users", ctx, accounts)
            case "account":
                account = _check_account(item, sub, accounts)
            case "proxy_required":
                want_bool(item, sub)
                ctx.ignored(item, sub)
            case _:
                ctx.unknown(item, sub)
    if users:
        if user:
            raise ConfigError.at(entry.pos, "can not have a single user/pass and a users array")
        if nkey:
            raise ConfigError.at(entry.pos, "can not have a single nkey and a users array")
    return replace(
        accept,
        user=user or None,
        password=password,
        nkey=nkey,
        account=account,
        users=users,
        auth_timeout_s=timeout_s or None,  # 0 keeps the default, as in nats-server
    )


def _users(
    entry: Entry, name: str, ctx: Context, accounts: Collection[str] | None
) -> tuple[LeafUserSettings, ...]:
    users: list[LeafUserSettings] = []
    seen: set[str] = set()
    for index, value in enumerate(want_list(entry, name)):
        item_name = f"{name}[{index}]"
        if not isinstance(value.data, dict):
            raise ConfigError.at(
                value.pos,
                f"{item_name}: Expected user entry to be a map/struct, got {type_name(value)}",
            )
        user = ""
        password: str | None = None
        account: str | None = None
        for item in value.data.values():
            sub = f"{item_name}.{item.key}"
            match item.key.lower():
                case "user" | "username":
                    user = want_str(item, sub)
                case "pass" | "password":
                    password = want_secret(item, sub)
                case "account":
                    account = _check_account(item, sub, accounts)
                case "proxy_required":
                    want_bool(item, sub)
                    ctx.ignored(item, sub)
                case _:
                    ctx.unknown(item, sub)
        if user in seen:
            raise ConfigError.at(
                value.pos, f"duplicate user {user!r} detected in leafnode authorization"
            )
        seen.add(user)
        users.append(LeafUserSettings(user=user, password=password, account=account))
    return tuple(users)


def _is_account_key(text: str) -> bool:
    return len(text) == _ACCOUNT_KEY_LEN and text.startswith("A") and text.isalnum()


def _pos_text(pos: Pos) -> str:
    return f"{pos.source}:{pos.line}:{pos.column}"
