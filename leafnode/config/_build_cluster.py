"""``cluster { ... }`` -> ``ClusterSettings`` (nats-server's keys, opts.go parseCluster).

A node of a NATS cluster listens for routes (``listen``, or ``host`` and
``port``), dials its seed ``routes``, checks dialing nodes against its
``authorization { user, password, timeout }`` and presents the same user
when it dials. The keys, aliases and errors are nats-server's, so a cluster
block written for nats-server loads unchanged:

- ``name`` may not contain spaces (``cluster name cannot contain spaces``);
- ``authorization`` takes a single user: ``users`` is refused with
  ``Cluster authorization does not allow multiple users``, ``token`` with
  ``Cluster authorization does not support tokens``;
- a route URL that does not parse is ``error parsing route url [...]``;
  stricter than nats-server, which fails only when it dials, a route must
  name a host and a port, with a ``nats-route``, ``nats`` or ``tls`` scheme;
  a repeated route is dropped with a warning (``Duplicate route entry
  detected``), as nats-server drops it;
- ``pool_size`` 0 is the default (3), -1 disables pooling.

Keys nats-server has and leafnode does not use (``permissions``,
``accounts``, ``compression``, ``ping_interval``, ``ping_max``,
``write_deadline``, ``write_timeout``, ``connect_backoff``) are accepted with
one warning line each. The router serves the block (``services/router/cluster.py``).

``tls { cert_file, key_file, ca_file, timeout, insecure }`` makes every
route mutual TLS, as nats-server does (``services/router/route_tls.py``):
``cert_file`` and ``key_file`` are required (the node presents them both
when it dials and when it accepts), ``verify`` is accepted and routes are
verified either way, ``handshake_first`` is accepted and means nothing (a
route's handshake always comes first).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from leafnode.redact import redact_url

from ._build_tls import build_tls
from ._errors import ConfigError
from ._settings import ClusterSettings
from ._values import (
    want_bool,
    want_host_port,
    want_int,
    want_map,
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

__all__ = ["build_cluster", "check_route_url"]

# nats-server's DEFAULT_ROUTE_POOL_SIZE (pool_size 0 means it).
DEFAULT_POOL_SIZE: Final = 3
# nats-server's default TLS handshake timeout for routes (TLS_TIMEOUT).
DEFAULT_ROUTE_TLS_TIMEOUT_S: Final = 2.0
# Schemes a route URL may have: nats-server dials any, these are the ones
# its docs and configs use.
_ROUTE_SCHEMES: Final = frozenset({"nats-route", "nats", "tls"})
# nats-server's cluster keys leafnode accepts and does not use (one warning each).
_IGNORED: Final = frozenset(
    {
        "permissions",
        "accounts",
        "compression",
        "ping_interval",
        "ping_max",
        "write_deadline",
        "write_timeout",
        "connect_backoff",
    }
)


def build_cluster(entry: Entry, ctx: Context) -> ClusterSettings:
    """The ``cluster`` block (see the module docstring)."""
    name = entry.key
    cluster = ClusterSettings()
    for item in want_map(entry, name).values():
        sub = f"{name}.{item.key}"
        match item.key.lower():
            case "name":
                cluster_name = want_str(item, sub)
                if " " in cluster_name:
                    raise ConfigError.at(item.pos, f"{sub}: cluster name cannot contain spaces")
                cluster = replace(cluster, name=cluster_name or None)
            case "listen":
                host, port = want_host_port(item, sub)
                cluster = replace(cluster, host=host or cluster.host, port=port)
            case "host" | "net":
                cluster = replace(cluster, host=want_str(item, sub))
            case "port":
                cluster = replace(cluster, port=want_port(item, sub))
            case "authorization":
                cluster = _authorization(cluster, item, sub, ctx)
            case "routes":
                cluster = replace(cluster, routes=_routes(item, sub, ctx))
            case "tls":
                tls = build_tls(item, sub, ctx, default_timeout_s=DEFAULT_ROUTE_TLS_TIMEOUT_S)
                if tls.cert_file is None:
                    raise ConfigError.at(
                        item.pos, f"{sub}: routes' TLS needs 'cert_file' and 'key_file'"
                    )
                cluster = replace(cluster, tls=tls)
            case "cluster_advertise" | "advertise":
                cluster = replace(cluster, advertise=want_str(item, sub) or None)
            case "no_advertise":
                cluster = replace(cluster, no_advertise=want_bool(item, sub))
            case "connect_retries":
                cluster = replace(cluster, connect_retries=want_int(item, sub, minimum=0))
            case "pool_size":
                size = want_int(item, sub)
                cluster = replace(cluster, pool_size=-1 if size < 0 else size or DEFAULT_POOL_SIZE)
            case key if key in _IGNORED:
                ctx.ignored(item, sub)
            case _:
                ctx.unknown(item, sub)
    return cluster


def _authorization(
    cluster: ClusterSettings, entry: Entry, name: str, ctx: Context
) -> ClusterSettings:
    """``authorization { user, password, timeout }``: one user (nats-server's rules)."""
    for item in want_map(entry, name).values():
        sub = f"{name}.{item.key}"
        match item.key.lower():
            case "user" | "username":
                cluster = replace(cluster, user=want_str(item, sub))
            case "pass" | "password":
                cluster = replace(cluster, password=want_secret(item, sub))
            case "timeout":
                # 0 keeps the default, as in nats-server.
                cluster = replace(cluster, auth_timeout_s=want_seconds(item, sub) or None)
            case "users" | "nkeys":
                raise ConfigError.at(
                    entry.pos, f"{name}: Cluster authorization does not allow multiple users"
                )
            case "token":
                raise ConfigError.at(
                    entry.pos, f"{name}: Cluster authorization does not support tokens"
                )
            case "permissions":
                ctx.ignored(item, sub)
            case _:
                ctx.unknown(item, sub)
    return cluster


def _routes(entry: Entry, name: str, ctx: Context) -> tuple[str, ...]:
    routes: list[str] = []
    for raw, pos in want_str_list(entry, name):
        url = raw.strip()
        if url in routes:
            ctx.warnings.append(
                f"{pos.source}:{pos.line}:{pos.column}: {name}: Duplicate route entry detected"
                f" ({redact_url(url)})"
            )
            continue
        problem = check_route_url(url)
        if problem is not None:
            raise _route_error(pos, name, problem)
        routes.append(url)
    return tuple(routes)


def _route_error(pos: Pos, name: str, problem: str) -> ConfigError:
    return ConfigError.at(pos, f"{name}: {problem}")


def check_route_url(url: str) -> str | None:
    """Why ``url`` cannot be a route to dial, or None; the URL is shown without secrets."""
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return f"error parsing route url [{shown!r}]"
    if parts.scheme.lower() not in _ROUTE_SCHEMES:
        allowed = ", ".join(f"{s}://" for s in sorted(_ROUTE_SCHEMES))
        return f"route url [{shown!r}] needs a scheme ({allowed})"
    if not parts.hostname:
        return f"route url [{shown!r}] has no host"
    if port is None or port == 0:
        return f"route url [{shown!r}] needs a port (1..65535)"
    if parts.username is not None and parts.password is None:
        return f"route url [{shown!r}]: a route user needs a password (user:password@)"
    return None
