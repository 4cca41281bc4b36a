"""``/routez`` and ``/varz``'s ``cluster`` block, in nats-server's shapes (monitor.go).

One entry per route connection: the peer's id and name, whether we dialed it
and whether it is a configured (explicit) route, its address, times,
pending bytes, message and byte counts both ways, and the interest keys the
peer announced on it (``subscriptions``; the list with ``subs=1``); a route
dedicated to an account names it (``account``). ``compression`` is always
``off``: leafnode answers every peer's compression with ``off``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from leafnode.monitoring import query_flag
from leafnode.proto import COMPRESSION_OFF

from . import monitor
from .monitor import go_duration, rfc3339

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .cluster import Cluster
    from .route_conn import RouteConnection
    from .server import Server

__all__ = ["routez", "varz"]


def _routes(cluster: Cluster | None) -> list[RouteConnection]:
    if cluster is None:
        return []
    conns = [c for peer in cluster.peers.values() for c in peer.conns()]
    return sorted(conns, key=lambda c: c.rid)


def routez(server: Server, query: Mapping[str, str]) -> dict[str, object]:
    subs = query_flag(query, "subs")
    now = time.time()
    cluster = server.cluster
    routes: list[dict[str, object]] = []
    for conn in _routes(cluster):
        keys = [
            subject
            for account in server.accounts.values()
            if account.routes.entries
            for subject in account.routes.subjects(conn)
        ]
        entry: dict[str, object] = {
            "rid": conn.rid,
            "remote_id": conn.remote_id,
            "remote_name": conn.remote_name,
            "did_solicit": conn.redial_url is not None,
            "is_configured": conn.redial_explicit,
            "ip": conn.host,
            "port": conn.port,
            "start": rfc3339(conn.started_at),
            "last_activity": rfc3339(conn.last_activity),
            "uptime": go_duration(now - conn.started_at),
            "idle": go_duration(now - conn.last_activity),
            "pending_size": conn.outbound.pending,
            "in_msgs": conn.in_msgs,
            "out_msgs": conn.out_msgs,
            "in_bytes": conn.in_bytes,
            "out_bytes": conn.out_bytes,
            "subscriptions": len(keys),
        }
        if subs and keys:
            entry["subscriptions_list"] = keys
        if conn.account:
            entry["account"] = conn.account
        entry["compression"] = COMPRESSION_OFF
        routes.append(entry)
    return {
        "server_id": server.server_id,
        "server_name": server.server_name,
        "now": rfc3339(now),
        "num_routes": len(routes),
        "routes": routes,
    }


def varz(server: Server) -> dict[str, object]:
    """``monitor.varz`` with the ``routes`` count and the ``cluster`` block."""
    data = monitor.varz(server)
    cluster = server.cluster
    data["cluster"] = {}
    if cluster is None:
        return data
    settings = cluster.settings
    block: dict[str, object] = {
        "name": cluster.name,
        "addr": settings.host,
        "cluster_port": cluster.port,
        "auth_timeout": settings.auth_timeout_s or 2.0,
    }
    if settings.routes:
        block["urls"] = [_address(url) for url in settings.routes]
    block["tls_timeout"] = settings.tls.timeout_s if settings.tls else 2.0
    if cluster.pool_size > 0:
        block["pool_size"] = cluster.pool_size
    data["routes"] = len(_routes(cluster))
    data["cluster"] = block
    urls = server.info_template.get("connect_urls")
    if urls:
        data["connect_urls"] = urls  # as the client INFO says (omitempty in nats-server)
    return data


def _address(url: str) -> str:
    """host:port of a route URL: never its user or password (nats-server's urlsToStrings)."""
    rest = url.split("://", 1)[-1]
    return rest.rsplit("@", 1)[-1].rstrip("/")
