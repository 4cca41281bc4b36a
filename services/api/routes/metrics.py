"""``/metrics``: Prometheus text (prometheus-client), built fresh on each scrape.

A new registry per request with one collector holding this scrape's answers:
no global registry, no import-time state, and a service that does not answer
shows as ``leafnode_service_up{service} 0`` instead of failing the scrape.
Counters come from the services' own totals (they restart at 0 when a
service restarts, which Prometheus' ``rate()`` handles).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Response

from ..deps import State, expects_store, expects_uplink
from ..links import ServiceUnavailableError
from ..site import SiteView, collect

if TYPE_CHECKING:
    from collections.abc import Iterator

    from prometheus_client.core import Metric

__all__ = ["router"]

router = APIRouter(tags=["monitoring"])


def _num(mapping: object, key: str) -> float | None:
    if not isinstance(mapping, dict):
        return None
    value = mapping.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class _SiteCollector:
    """Turns one ``SiteView`` into metric families."""

    def __init__(self, view: SiteView, routez: dict[str, object] | None = None) -> None:
        self.view = view
        # The router's /routez, for the per-route families (None: no answer).
        self.routez = routez

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily  # see metrics()

        view = self.view
        up = GaugeMetricFamily(
            "leafnode_service_up",
            "1 when the service answers on its socket and works (the store: with its database)",
            labels=["service"],
        )
        settings = view.state.settings
        for name, status in view.service_status().items():
            expected = (
                name == "router"
                or (name == "store" and expects_store(settings))
                or (name == "uplink" and expects_uplink(settings))
            )
            if expected or status["status"] == "ok":
                up.add_metric([name], 1.0 if status["status"] == "ok" else 0.0)
        yield up
        database = view.database()
        if database is not None and isinstance(database.get("up"), bool):
            yield GaugeMetricFamily(
                "leafnode_store_database_up",
                "1 while the store's database takes writes (0: buffered messages wait in memory)",
                value=1.0 if database["up"] else 0.0,
            )
        stats = view.stats
        takeovers = _num(stats, "takeovers") if isinstance(stats, dict) else None
        if takeovers is not None:
            yield CounterMetricFamily(
                "leafnode_buffer_takeovers",
                "backlogs of dead nodes this node took over (a shared PostgreSQL store)",
                value=takeovers,
            )
        yield from self._router()
        yield from self._routes()
        yield from self._remotes()

    def _router(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        varz = self.view.varz
        if not isinstance(varz, dict):
            return
        for name, key, doc in (
            ("leafnode_connections", "connections", "open client connections"),
            ("leafnode_subscriptions", "subscriptions", "local subscriptions"),
        ):
            value = _num(varz, key)
            if value is not None:
                yield GaugeMetricFamily(name, doc, value=value)
        for name, key, doc in (
            ("leafnode_accepted_connections", "total_connections", "client connections accepted"),
            ("leafnode_slow_consumers", "slow_consumers", "clients closed as slow consumers"),
        ):
            value = _num(varz, key)
            if value is not None:
                yield CounterMetricFamily(name, doc, value=value)
        msgs = CounterMetricFamily(
            "leafnode_client_messages",
            "messages from clients (in) and to clients (out)",
            labels=["direction"],
        )
        size = CounterMetricFamily(
            "leafnode_client_bytes", "payload bytes from and to clients", labels=["direction"]
        )
        for direction in ("in", "out"):
            value = _num(varz, f"{direction}_msgs")
            if value is not None:
                msgs.add_metric([direction], value)
            value = _num(varz, f"{direction}_bytes")
            if value is not None:
                size.add_metric([direction], value)
        yield msgs
        yield size

    def _routes(self) -> Iterator[Metric]:
        """One series per route connection: its peer (name, else id), its ``rid`` and
        the account it is dedicated to (``""`` for a pooled route)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        routes = self.routez.get("routes") if self.routez is not None else None
        if not isinstance(routes, list):
            return
        labels = ["peer", "rid", "account"]
        count = GaugeMetricFamily(
            "leafnode_routes", "route connections to the other nodes of the cluster"
        )
        count.add_metric([], float(len(routes)))
        yield count
        msgs = CounterMetricFamily(
            "leafnode_route_messages",
            "messages received from (in) and sent to (out) a cluster peer on one route",
            labels=[*labels, "direction"],
        )
        size = CounterMetricFamily(
            "leafnode_route_bytes",
            "payload bytes from and to a cluster peer on one route",
            labels=[*labels, "direction"],
        )
        pending = GaugeMetricFamily(
            "leafnode_route_pending_bytes", "bytes queued for a route", labels=labels
        )
        subs = GaugeMetricFamily(
            "leafnode_route_subscriptions",
            "interest keys a cluster peer announced on a route",
            labels=labels,
        )
        for route in routes:
            if not isinstance(route, dict):
                continue
            key = [
                str(route.get("remote_name") or route.get("remote_id") or ""),
                str(route.get("rid", "")),
                str(route.get("account", "")),
            ]
            for direction in ("in", "out"):
                value = _num(route, f"{direction}_msgs")
                if value is not None:
                    msgs.add_metric([*key, direction], value)
                value = _num(route, f"{direction}_bytes")
                if value is not None:
                    size.add_metric([*key, direction], value)
            value = _num(route, "pending_size")
            if value is not None:
                pending.add_metric(key, value)
            value = _num(route, "subscriptions")
            if value is not None:
                subs.add_metric(key, value)
        yield msgs
        yield size
        yield pending
        yield subs

    def _remotes(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        labels = ["remote"]
        connected = GaugeMetricFamily(
            "leafnode_remote_connected", "1 while the link to the hub is up", labels=labels
        )
        reconnects = CounterMetricFamily(
            "leafnode_remote_reconnects", "links re-established after a drop", labels=labels
        )
        msgs = CounterMetricFamily(
            "leafnode_remote_messages",
            "messages sent to (to_hub) and received from (from_hub) the hub",
            labels=["remote", "direction"],
        )
        size = CounterMetricFamily(
            "leafnode_remote_bytes", "bytes to and from the hub", labels=["remote", "direction"]
        )
        dropped = CounterMetricFamily(
            "leafnode_dropped_messages", "messages dropped, by reason", labels=["remote", "reason"]
        )
        backlog = GaugeMetricFamily(
            "leafnode_buffer_backlog_messages", "buffered messages not yet acked", labels=labels
        )
        backlog_bytes = GaugeMetricFamily(
            "leafnode_buffer_backlog_bytes", "size of the backlog", labels=labels
        )
        oldest = GaugeMetricFamily(
            "leafnode_buffer_oldest_age_seconds", "age of the oldest backlog message", labels=labels
        )
        rate = GaugeMetricFamily(
            "leafnode_replay_rate_messages_per_second",
            "backlog messages sent to the hub per second",
            labels=labels,
        )
        paused = GaugeMetricFamily(
            "leafnode_replay_paused", "1 while the replay is paused", labels=labels
        )
        held = GaugeMetricFamily(
            "leafnode_buffer_held_messages",
            "buffered messages waiting in router memory for the store (not yet durable)",
            labels=labels,
        )
        held_bytes = GaugeMetricFamily(
            "leafnode_buffer_held_bytes",
            "size of the messages held in router memory",
            labels=labels,
        )
        refusing = GaugeMetricFamily(
            "leafnode_buffer_refusing",
            "1 while a discard: new buffer is full and refuses new messages",
            labels=labels,
        )
        taken_over = GaugeMetricFamily(
            "leafnode_buffer_taken_over_msgs",
            "messages of a dead node's backlog this node drains to the remote",
            labels=["remote", "backlog", "node"],
        )
        for remote in self.view.remotes():
            label = [remote.name]
            for entry in remote.held_backlogs():
                taken_over.add_metric(
                    [remote.name, str(entry["backlog"]), str(entry["node"])],
                    float(entry["msgs"]),  # type: ignore[arg-type]
                )
            link = remote.link or {}
            if remote.connected is not None:
                connected.add_metric(label, 1.0 if remote.connected else 0.0)
            value = _num(link, "reconnects")
            if value is not None:
                reconnects.add_metric(label, value)
            for direction, prefix in (("to_hub", "out"), ("from_hub", "in")):
                value = _num(link, f"{prefix}_msgs")
                if value is not None:
                    msgs.add_metric([remote.name, direction], value)
                value = _num(link, f"{prefix}_bytes")
                if value is not None:
                    size.add_metric([remote.name, direction], value)
            for reason, count in remote.all_drops().items():
                dropped.add_metric([remote.name, reason], float(count))
            if remote.backlog is not None:
                summary = remote.backlog_summary()
                backlog.add_metric(label, float(summary["msgs"]))  # type: ignore[arg-type]
                backlog_bytes.add_metric(label, float(summary["bytes"]))  # type: ignore[arg-type]
                age = summary["oldest_age_s"]
                oldest.add_metric(label, float(age) if isinstance(age, float) else 0.0)
            value = _num(remote.drain, "rate_msgs_s")
            if value is not None:
                rate.add_metric(label, value)
            flag = (remote.drain or {}).get("paused")
            if isinstance(flag, bool):
                paused.add_metric(label, 1.0 if flag else 0.0)
            if remote.buffered:
                summary = remote.held_summary(None)
                held.add_metric(label, float(summary["msgs"]))  # type: ignore[arg-type]
                held_bytes.add_metric(label, float(summary["bytes"]))  # type: ignore[arg-type]
                refusing.add_metric(label, 1.0 if remote.refusing else 0.0)
        yield from (
            connected,
            reconnects,
            msgs,
            size,
            dropped,
            backlog,
            backlog_bytes,
            oldest,
            rate,
            paused,
            held,
            held_bytes,
            refusing,
            taken_over,
        )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(state: State) -> Response:
    # Imported at the first scrape: prometheus-client (with its exposition
    # servers' http.server, wsgiref, gzip) is 1.3 MB the api holds for good,
    # and a site nobody scrapes never needs it.
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    view = await collect(state)
    routez: dict[str, object] | None = None
    if isinstance(view.varz, dict) and view.varz.get("routes"):
        try:
            routez = await state.links.data("router", "routez", {})
        except ServiceUnavailableError:
            routez = None  # a missing answer only leaves the route series out
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SiteCollector(view, routez))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
