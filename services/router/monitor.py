"""Monitoring data in nats-server's shapes (leafnode-protocol.md §9).

The api serves these over HTTP with nats-server's field names, so
prometheus-nats-exporter and surveyor work unchanged; the router computes
them because it owns the connections and the subject tries. Durations are
nanoseconds where nats-server uses Go durations in JSON, strings like
``"1m2s"`` where it formats them.
"""

from __future__ import annotations

import os
import resource
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeAlias

from leafnode import SERVER_VERSION
from leafnode.monitoring import MonitorError, query_flag
from leafnode.proto import subject_matches
from leafnode.redact import url_address

from . import leafmonitor
from .closed import ClosedClient, ClosedSub

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from .client_conn import ClientConnection
    from .routing import Subscription
    from .server import Server

    Conn: TypeAlias = ClientConnection | ClosedClient

__all__ = ["MonitorError", "accountz", "bufferz", "connz", "leafz", "subsz", "varz"]

NS = 1_000_000_000
# nats-server's default and largest page for /connz.
CONNZ_DEFAULT_LIMIT = 1024
CONNZ_SORTS: dict[str, Callable[[Conn], Any]] = {
    "cid": lambda c: c.cid,
    "start": lambda c: c.started_at,
    "subs": lambda c: -len(c.subs),
    "pending": lambda c: -_pending(c),
    "msgs_to": lambda c: -c.out_msgs,
    "msgs_from": lambda c: -c.in_msgs,
    "bytes_to": lambda c: -c.out_bytes,
    "bytes_from": lambda c: -c.in_bytes,
    "last": lambda c: -c.last_activity,
    "idle": lambda c: c.last_activity,
    "uptime": lambda c: c.started_at,
}
# Only closed connections have these (nats-server refuses them otherwise).
CONNZ_CLOSED_SORTS: dict[str, Callable[[ClosedClient], Any]] = {
    "stop": lambda c: -c.stop,
    "reason": lambda c: c.reason,
}
CONNZ_STATES = ("open", "closed", "any", "all")


def _pending(conn: Conn) -> int:
    return 0 if isinstance(conn, ClosedClient) else conn.outbound.pending


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def go_duration(seconds: float) -> str:
    """``1h2m3s`` / ``4.5s`` / ``12ms``, as Go prints a time.Duration (rounded)."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    days, hours = divmod(hours, 24)
    out = f"{days}d" if days else ""
    if hours or days:
        out += f"{hours}h"
    if minutes or hours or days:
        out += f"{minutes}m"
    return out + f"{secs}s"


def varz(server: Server) -> dict[str, object]:
    settings = server.settings
    full = server.full_settings
    clients = server.clients.values()
    now = time.time()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    api = full.api
    return {
        "server_id": server.server_id,
        "server_name": server.server_name,
        "version": SERVER_VERSION,
        "proto": 1,
        "go": server.info_template.get("go", ""),
        "host": settings.host,
        "port": server.port,
        "auth_required": server.auth.auth_required,
        "tls_required": settings.tls is not None,
        "tls_verify": bool(settings.tls and settings.tls.verify),
        "max_connections": settings.max_connections,
        "max_subscriptions": settings.max_subscriptions,
        "ping_interval": int(settings.ping_interval_s * NS),
        "ping_max": settings.ping_max,
        "http_host": api.host,
        "http_port": api.port or 0,
        "https_port": 0,
        "auth_timeout": settings.auth_timeout_s,
        "max_control_line": settings.max_control_line,
        "max_payload": settings.max_payload,
        "max_pending": settings.max_pending,
        "tls_timeout": settings.tls.timeout_s if settings.tls else 2.0,
        "write_deadline": int(settings.write_deadline_s * NS),
        "lame_duck_duration": int(settings.lame_duck_duration_s * NS),
        "lame_duck_grace_period": int(settings.lame_duck_grace_period_s * NS),
        "start": rfc3339(server.started_at),
        "now": rfc3339(now),
        "uptime": go_duration(now - server.started_at),
        "mem": usage.ru_maxrss * 1024,
        "cores": os.cpu_count() or 1,
        "cpu": 0.0,
        "connections": len(server.clients),
        "total_connections": server.total_connections,
        "routes": 0,
        "remotes": 0,
        # Accepted leafs; the api adds the uplink's connected remotes.
        "leafnodes": leafmonitor.accepted_count(server.leaf_acceptor),
        "in_msgs": server.closed_in_msgs + sum(c.in_msgs for c in clients),
        "out_msgs": server.closed_out_msgs + sum(c.out_msgs for c in clients),
        "in_bytes": server.closed_in_bytes + sum(c.in_bytes for c in clients),
        "out_bytes": server.closed_out_bytes + sum(c.out_bytes for c in clients),
        "slow_consumers": server.slow_consumers,
        "slow_consumer_stats": {
            "clients": server.slow_consumers,
            "routes": 0,
            "gateways": 0,
            "leafs": 0,
        },
        "subscriptions": sum(a.sublist.count() for a in server.accounts.values()),
        "config_load_time": rfc3339(server.config_loaded_at),
        "system_account": "",
        "leaf": {
            **leafmonitor.leaf_varz(server.leaf_acceptor),
            "remotes": [
                # host:port only, as nats-server's urlsToStrings: never the userinfo.
                {"local_account": r.account, "urls": [url_address(u) for u in r.urls], "deny": {}}
                for r in full.leafnodes.remotes
            ],
        },
    }


def leafz(server: Server, query: Mapping[str, str]) -> dict[str, object]:
    """The leafs accepted on the leaf port (``leafmonitor``); the api adds the remotes."""
    return leafmonitor.leafz(server.leaf_acceptor, server.server_id, query)


def _int(query: Mapping[str, str], key: str, default: int) -> int:
    value = query.get(key)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise MonitorError(f"{key}: expected an integer, got {value!r}") from None
    if number < 0:
        raise MonitorError(f"{key}: must not be negative")
    return number


def _connection(client: Conn, now: float, subs: str, auth: bool) -> dict[str, object]:
    tls = client.tls
    if isinstance(client, ClosedClient):
        # A closed connection's clock stopped when it closed.
        now = client.stop
        account = client.account_name
        sub_list: Sequence[ClosedSub | Subscription] = client.subs
    else:
        account = client.account.name
        sub_list = list(client.subs.values())
    entry: dict[str, object] = {
        "cid": client.cid,
        "kind": "Client",
        "type": client.conn_type,
        "ip": client.host,
        "port": client.port,
        "start": rfc3339(client.started_at),
        "last_activity": rfc3339(client.last_activity),
        "rtt": "0s",
        "uptime": go_duration(now - client.started_at),
        "idle": go_duration(now - client.last_activity),
        "pending_bytes": _pending(client),
        "in_msgs": client.in_msgs,
        "out_msgs": client.out_msgs,
        "in_bytes": client.in_bytes,
        "out_bytes": client.out_bytes,
        "subscriptions": len(client.subs),
        "name": client.name,
        "lang": client.lang,
        "version": client.version,
    }
    if isinstance(client, ClosedClient):
        entry["stop"] = rfc3339(client.stop)
        entry["reason"] = client.reason
    if tls:
        entry["tls_version"] = "1.3"
    if auth:
        if client.user:
            entry["authorized_user"] = client.user
        entry["account"] = account
    if subs == "detail":
        entry["subscriptions_list_detail"] = [
            {
                "account": account,
                "subject": sub.subject.decode(errors="replace"),
                **({"qgroup": sub.queue.decode(errors="replace")} if sub.queue else {}),
                "sid": sub.sid.decode(errors="replace"),
                "msgs": sub.delivered,
                "max": sub.max_msgs,
                "cid": client.cid,
            }
            for sub in sub_list
        ]
    elif subs:
        entry["subscriptions_list"] = [s.subject.decode(errors="replace") for s in sub_list]
    return entry


def connz(server: Server, query: Mapping[str, str]) -> dict[str, object]:
    """``/connz``: ``subs=1|detail``, ``cid``, ``offset``, ``limit``, ``sort``, ``auth``,
    ``state=open|closed|any|all`` (closed ones from ``Server.closed_clients``)."""
    subs_value = query.get("subs", "")
    subs = "detail" if subs_value == "detail" else ("1" if query_flag(query, "subs") else "")
    auth = query_flag(query, "auth")
    offset = _int(query, "offset", 0)
    limit = _int(query, "limit", CONNZ_DEFAULT_LIMIT) or CONNZ_DEFAULT_LIMIT
    sort = query.get("sort") or "cid"
    state = query.get("state") or "open"
    if state not in CONNZ_STATES:
        raise MonitorError(f"state: expected one of {', '.join(CONNZ_STATES)}, got {state!r}")
    key = CONNZ_SORTS.get(sort)
    if sort in CONNZ_CLOSED_SORTS:
        if state != "closed":
            raise MonitorError(f"sort: by {sort} is only valid on closed connections")
        key = CONNZ_CLOSED_SORTS[sort]  # type: ignore[assignment]
    if key is None:
        names = ", ".join([*CONNZ_SORTS, *CONNZ_CLOSED_SORTS])
        raise MonitorError(f"sort: unknown sort option {sort!r} (one of {names})")
    clients: list[Conn] = []
    if state != "closed":
        clients.extend(server.clients.values())
    if state != "open":
        clients.extend(server.closed_clients)
    cid_value = query.get("cid")
    if cid_value:
        cid = _int(query, "cid", 0)
        clients = [c for c in clients if c.cid == cid]
    clients.sort(key=key)
    now = time.time()
    page = clients[offset : offset + limit]
    return {
        "server_id": server.server_id,
        "now": rfc3339(now),
        "num_connections": len(page),
        "total": len(clients),
        "offset": offset,
        "limit": limit,
        "connections": [_connection(c, now, subs, auth) for c in page],
    }


def subsz(server: Server, query: Mapping[str, str]) -> dict[str, object]:
    """``/subsz``: match statistics; ``subs=1`` lists them, ``test=SUBJECT`` filters."""
    detail = query_flag(query, "subs")
    offset = _int(query, "offset", 0)
    limit = _int(query, "limit", CONNZ_DEFAULT_LIMIT) or CONNZ_DEFAULT_LIMIT
    test = query.get("test")
    test_subject = test.encode() if test else None
    totals = {
        "num_subscriptions": 0,
        "num_cache": 0,
        "num_inserts": 0,
        "num_removes": 0,
        "num_matches": 0,
    }
    hits = 0.0
    max_fanout = 0
    fanout_sum = 0.0
    entries: list[dict[str, object]] = []
    for account in server.accounts.values():
        stats = account.sublist.stats()
        totals["num_subscriptions"] += stats.num_subs
        totals["num_cache"] += stats.num_cache
        totals["num_inserts"] += stats.num_inserts
        totals["num_removes"] += stats.num_removes
        totals["num_matches"] += stats.num_matches
        hits += stats.cache_hit_rate * stats.num_matches
        max_fanout = max(max_fanout, stats.max_fanout)
        fanout_sum += stats.avg_fanout * stats.num_cache
        if detail:
            for sub in account.sublist.subscribers():
                if test_subject is not None and not subject_matches(sub.subject, test_subject):
                    continue
                entries.append(
                    {
                        "account": account.name,
                        "subject": sub.subject.decode(errors="replace"),
                        **({"qgroup": sub.queue.decode(errors="replace")} if sub.queue else {}),
                        "sid": sub.sid.decode(errors="replace"),
                        "msgs": sub.delivered,
                        "cid": getattr(sub.client, "cid", 0),
                    }
                )
    result: dict[str, object] = {
        "server_id": server.server_id,
        "now": rfc3339(time.time()),
        **totals,
        "cache_hit_rate": hits / totals["num_matches"] if totals["num_matches"] else 0.0,
        "max_fanout": max_fanout,
        "avg_fanout": fanout_sum / totals["num_cache"] if totals["num_cache"] else 0.0,
    }
    if detail:
        result.update(
            total=len(entries),
            offset=offset,
            limit=limit,
            subscriptions_list=entries[offset : offset + limit],
        )
    return result


def accountz(server: Server, query: Mapping[str, str]) -> dict[str, object]:
    """``/accountz``: the account names; ``acc=NAME`` adds that account's detail."""
    now = rfc3339(time.time())
    name = query.get("acc")
    if not name:
        return {
            "server_id": server.server_id,
            "now": now,
            "system_account": "",
            "accounts": sorted(server.accounts),
        }
    account = server.accounts.get(name)
    if account is None:
        raise MonitorError(f"acc: no account named {name!r}")
    clients = [c for c in server.clients.values() if c.account is account]
    return {
        "server_id": server.server_id,
        "now": now,
        "system_account": "",
        "account_detail": {
            "account_name": account.name,
            "update_time": rfc3339(server.config_loaded_at),
            "is_system": False,
            "expired": False,
            "complete": True,
            "jetstream_enabled": False,
            "leafnode_connections": (1 if account.hub_sink is not None else 0)
            + leafmonitor.accepted_count(server.leaf_acceptor, account.name),
            "client_connections": len(clients),
            "subscriptions": account.sublist.count(),
        },
    }


def bufferz(server: Server) -> dict[str, object]:
    """The router's side of buffering (see ``buffering.StoreLink``).

    ``waiting`` counts the messages held in router memory (``held`` per
    remote, with ``waiting_reason`` saying why they are not in the store
    yet); ``dropped`` counts only what the router dropped itself (the store
    counts its own refusals); ``refusing`` lists the ``discard: new``
    remotes whose memory queue refused the last message.
    """
    link = server.store_link
    if link is None:
        return {
            "enabled": False,
            "store_available": False,
            "waiting": 0,
            "waiting_reason": None,
            "held": {},
            "appended": 0,
            "dropped": {},
            "refusing": [],
        }
    dropped: dict[str, dict[str, int]] = {}
    for (remote, reason), count in link.dropped.items():
        dropped.setdefault(remote, {})[reason] = count
    held = {
        remote: {"msgs": n, "bytes": nbytes} for remote, (n, nbytes) in sorted(link.held().items())
    }
    return {
        "enabled": True,
        "store_available": link.available,
        "waiting": len(link.pending),
        "waiting_reason": link.reason,
        "held": held,
        "appended": link.appended,
        "dropped": dropped,
        "refusing": sorted(link.refusing),
    }
