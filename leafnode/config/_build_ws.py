"""``websocket { ... }`` -> ``WebsocketSettings`` (nats-server's keys, opts.go parseWebsocket).

Clients (browsers, nats.ws) connect over WebSocket to the router. As in
nats-server the block needs ``tls { }`` or ``no_tls: true``. Its own
``authorization { user, password, token, timeout }`` and ``no_auth_user``
replace the server's simple auth for its clients, and ``jwt_cookie``,
``user_cookie``, ``pass_cookie``, ``token_cookie`` name cookies of the
upgrade request that stand in for CONNECT fields (services/router/auth.py).
The checks against the rest of the config (nats-server's
``validateWebsocketOptions``) are in :func:`check_websocket_auth`, called
once users and operator mode are known. ``advertise`` and ``headers`` are
accepted with a warning; an unknown key is an error.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ._build_tls import build_tls
from ._errors import ConfigError
from ._settings import WebsocketSettings
from ._values import (
    want_bool,
    want_duration,
    want_host_port,
    want_port,
    want_seconds,
    want_secret,
    want_str,
    want_str_list,
)

if TYPE_CHECKING:
    from ._errors import Pos
    from ._parser import Entry
    from ._values import Context

__all__ = ["build_websocket", "check_websocket_auth"]

# nats-server's websocket keys we accept and ignore with a warning.
_IGNORED = frozenset({"advertise", "headers"})


_ORIGIN_KEYS = frozenset(
    {"allowed_origins", "allowed_origin", "allow_origins", "allow_origin", "origins", "origin"}
)


def build_websocket(entry: Entry, ctx: Context) -> WebsocketSettings:
    """The ``websocket`` block; needs a port and ``tls`` or ``no_tls: true``."""
    name = entry.key
    settings = WebsocketSettings()
    port: int | None = None
    host = settings.host
    tls = None
    timeout_s: float | None = None
    no_tls = same_origin = compression = False
    origins: tuple[str, ...] = ()
    auth = WebsocketSettings()  # the auth fields only, copied at the end
    block = entry.value.data
    if not isinstance(block, dict):
        raise ConfigError.at(entry.pos, f"{name}: expected a block {{ ... }}")
    for item in block.values():
        sub = f"{name}.{item.key}"
        match item.key.lower():
            case "listen":
                listen_host, port = want_host_port(item, sub)
                host = listen_host or host
            case "host" | "net":
                host = want_str(item, sub)
            case "port":
                port = want_port(item, sub)
            case "tls":
                tls = build_tls(item, sub, ctx, default_timeout_s=2.0)
            case "no_tls":
                no_tls = want_bool(item, sub)
            case "same_origin":
                same_origin = want_bool(item, sub)
            case (
                "allowed_origins" | "allowed_origin" | "allow_origins" | "allow_origin" | "origins"
            ):
                origins = tuple(_origin(value, pos, sub) for value, pos in want_str_list(item, sub))
            case "compression" | "compress":
                compression = want_bool(item, sub)
            case "handshake_timeout":
                timeout_s = want_duration(item, sub, allow_float=True, positive=True)
            case "authorization" | "authentication":
                auth = _simple_auth(auth, item, sub, ctx)
            case "no_auth_user":
                auth = replace(auth, no_auth_user=want_str(item, sub))
            case "jwt_cookie":
                auth = replace(auth, jwt_cookie=want_str(item, sub))
            case "user_cookie":
                auth = replace(auth, user_cookie=want_str(item, sub))
            case "pass_cookie":
                auth = replace(auth, pass_cookie=want_str(item, sub))
            case "token_cookie":
                auth = replace(auth, token_cookie=want_str(item, sub))
            case key if key in _IGNORED:
                ctx.ignored(item, sub)
            case _:
                ctx.unknown(item, sub)
    if port is None:
        raise ConfigError.at(entry.pos, f"{name}: a port is required (port or listen)")
    if tls is None and not no_tls:
        raise ConfigError.at(
            entry.pos, f"{name}: websocket requires TLS configuration (tls {{ }} or no_tls: true)"
        )
    if tls is not None and tls.cert_file is None:
        raise ConfigError.at(entry.pos, f"{name}.tls: cert_file and key_file are required")
    if timeout_s is None:
        timeout_s = tls.timeout_s if tls is not None else settings.handshake_timeout_s
    return replace(
        auth,
        host=host,
        port=port,
        tls=tls,
        no_tls=no_tls,
        same_origin=same_origin,
        allowed_origins=origins,
        compression=compression,
        handshake_timeout_s=timeout_s,
    )


def _simple_auth(
    found: WebsocketSettings, entry: Entry, name: str, ctx: Context
) -> WebsocketSettings:
    """``authorization { user, password, token, timeout }`` (nats-server's parseSimpleAuth)."""
    block = entry.value.data
    if not isinstance(block, dict):
        raise ConfigError.at(entry.pos, f"{name}: expected a block {{ ... }}")
    for item in block.values():
        sub = f"{name}.{item.key}"
        match item.key.lower():
            case "user" | "username":
                found = replace(found, user=want_str(item, sub))
            case "pass" | "password":
                found = replace(found, password=want_secret(item, sub))
            case "token":
                found = replace(found, token=want_secret(item, sub))
            case "timeout":
                # 0 keeps the server's auth timeout, as in nats-server.
                found = replace(found, auth_timeout_s=want_seconds(item, sub) or None)
            case _:
                ctx.unknown(item, sub)
    return found


def check_websocket_auth(
    entry: Entry, ws: WebsocketSettings, *, has_users: bool, operator: bool
) -> None:
    """nats-server's websocket auth rules that look at the rest of the config.

    ``has_users``: a ``users`` list or account users exist (not a single
    user/password, which is simple auth in nats-server too). The
    ``no_auth_user`` must be one of them (checked by the caller with the
    top-level one's rule).
    """
    if has_users and ws.user:
        raise ConfigError.at(
            entry.pos,
            "websocket authentication username not compatible with presence of users/nkeys",
        )
    if has_users and ws.token:
        raise ConfigError.at(
            entry.pos,
            "websocket authentication token not compatible with presence of users/nkeys",
        )
    if ws.jwt_cookie and not operator:
        raise ConfigError.at(
            entry.pos,
            "trusted operators or trusted keys configuration is required for JWT "
            f"authentication via cookie {ws.jwt_cookie!r}",
        )


def _origin(value: str, pos: Pos, name: str) -> str:
    parts = urlsplit(value)
    if not parts.scheme or not parts.hostname:
        raise ConfigError.at(pos, f"{name}: {value!r} is not an origin (scheme://host[:port])")
    return value
