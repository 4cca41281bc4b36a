"""The fault suite's run on a redundant site: three ``leafnode run`` nodes (issue 14 point 7).

Theory of operation
-------------------
``SiteChaosRun`` is ``ChaosRun`` (hub with the ``TELE`` stream, ``FaultProxy``,
counting publishers, hub subscriber; see ``_chaos``) with the site made of
three nodes instead of one: ``ClusterNodes`` starts them with routes between
them (node 0 the seed, the others by gossip), one shared PostgreSQL store
(each node its own backlog, ``server_name`` n0, n1, n2), and each node's
remote dialing the one proxy, so a link fault breaks every node's hub link
at once, as a site's uplink to the hub going away does.

Publisher ``i`` publishes on node ``i % 2`` (n0 and n1); a *local*
subscriber on n2 (``tele.*``, a subject of its own so that ``/routez?subs=1``
shows its interest reached n0 and n1 before anyone publishes) counts what
the routes deliver. Its promise is the routes': each message once and in
order per publisher, whatever the hub link does; a message must not come a
second time through the hub (a node's replay after an outage is a leaf
message of cluster ``C``, which the hub does not send back to n2, a leaf of
the same cluster).

The faults are ``ChaosRun``'s, seen through every node: a link fault or a hub
restart is over when every node's link is down, and repaired when every
node is connected again and the site's backlogs (summed over the nodes)
are drained; ``kill_service(name, node)`` kills one node's service.
``finish()`` adds the local subscriber's figures (``local_*``) to
``ChaosRun``'s. A router killed by SIGKILL may take with it messages it had
acknowledged but not yet written to a route (core NATS is at most once
there, as nats-server is; the buffer still brings them to the hub):
``router_kills`` says which publisher's which range that may be.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from typing import TYPE_CHECKING, Final

from ._chaos import (
    POLL_S,
    RECOVERY_TIMEOUT_S,
    SOCKETS,
    ChaosRun,
    Figures,
    _wait,
    backlog_at,
    link_ready,
    link_status_at,
    migrate,
    out_of_order,
    site_config,
    waiting_at,
)
from ._cluster import ClusterNodes
from ._site import SiteProcess, http_get, ping_socket
from ._traffic import HubSubscriber, parse_id

if TYPE_CHECKING:
    from pathlib import Path

    from ._postgres import PgCluster

__all__ = ["SiteChaosRun"]

# Two nodes to publish on, a third to subscribe on.
NODES: Final = 3
# The local subscriber's subject: matches every publisher's ``tele.<n>``, and
# differs from the hub subscriber's ``tele.>`` that each node learns from its hub.
LOCAL_SUBJECT: Final = "tele.*"


class SiteChaosRun(ChaosRun):
    """``ChaosRun`` on a three-node site sharing ``store_url`` (see the module doc).

    Args:
        workdir: where every process keeps its files.
        store_url: the shared PostgreSQL database (migrated here).
        pg: the cluster behind it, for ``database_outage``.
        publishers, rate, batch, hub_binary: as ``ChaosRun``'s.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        store_url: str,
        pg: PgCluster | None = None,
        publishers: int = 2,
        rate: float = 300.0,
        batch: int = 30,
        hub_binary: str | None = None,
    ) -> None:
        self.cluster: ClusterNodes | None = None
        self.local: HubSubscriber | None = None
        # (publisher, first seq, end seq) a router kill may have kept from the routes.
        self.router_kills: list[tuple[str, int, int]] = []
        # Per outage, each node's backlog at its end (``held`` has their sum).
        self.held_by_node: list[list[int]] = []
        super().__init__(
            workdir,
            store_url=store_url,
            pg=pg,
            publishers=publishers,
            rate=rate,
            batch=batch,
            hub_binary=hub_binary,
        )

    # -- the site -----------------------------------------------------------------

    def _start_site(self, store_url: str) -> None:
        assert self.proxy is not None
        assert store_url.startswith("postgresql"), "a redundant site shares a PostgreSQL store"
        config = site_config(self.proxy.url, store_url)
        migrate(self.workdir / "migrate.conf", config)
        self.cluster = ClusterNodes.start(["site"] * NODES, self.workdir / "site", config=config)
        asyncio.run(self.cluster.wait_meshed())
        self.local = HubSubscriber(self.cluster[NODES - 1].port, subject=LOCAL_SUBJECT)
        _wait(self._local_interest_routed, timeout=30, what="n2's interest on n0 and n1")

    def _publish_port(self, index: int) -> int:
        return self.node(index % 2).port

    def node(self, i: int) -> SiteProcess:
        assert self.cluster is not None
        proc = self.cluster[i].proc
        assert isinstance(proc, SiteProcess)
        return proc

    def _local_interest_routed(self) -> bool:
        for i in range(NODES - 1):
            try:
                status, body = http_get(self.node(i).http_port, "/routez?subs=1")
            except OSError:
                return False  # its monitoring port is away (its router restarts)
            routes = json.loads(body).get("routes") if status == 200 else None
            if not any(LOCAL_SUBJECT in (r.get("subscriptions_list") or []) for r in routes or []):
                return False
        return True

    # -- looking, over every node -------------------------------------------------

    def _statuses(self) -> list[dict[str, object]]:
        return [link_status_at(self.node(i).run_dir) for i in range(NODES)]

    def _link_ready(self) -> bool:
        return all(link_ready(status) for status in self._statuses())

    def _link_down(self) -> bool:
        return all(status.get("connected") is not True for status in self._statuses())

    def backlog(self) -> int | None:
        """Pending messages over the nodes' backlogs (None while a store cannot say)."""
        counts = [backlog_at(self.node(i).run_dir) for i in range(NODES)]
        return None if None in counts else sum(c or 0 for c in counts)

    def waiting_in_router(self) -> int:
        return sum(waiting_at(self.node(i).run_dir) for i in range(NODES))

    def _hold(self, seconds: float) -> None:
        super()._hold(seconds)
        self.held_by_node.append([backlog_at(self.node(i).run_dir) or 0 for i in range(NODES)])

    def drained(self) -> bool:
        """Every node's link up, nothing waiting, no more backlog than in flight."""
        if not all(s.get("connected") is True for s in self._statuses()):
            return False
        if self.waiting_in_router():
            return False
        total = self.backlog()
        in_flight = sum(p.batch for p in self.publishers) * 2
        return total is not None and total <= in_flight

    def services(self) -> dict[str, int]:
        """``n<i>.<service>`` -> pid over the nodes."""
        return {
            f"n{i}.{name}": pid
            for i in range(NODES)
            for name, pid in self.node(i).children().items()
        }

    # -- faults -------------------------------------------------------------------

    def kill_service(self, name: str, node: int = 0) -> None:
        """SIGKILL node ``node``'s ``name`` under load; its supervisor restarts it."""
        self._begin(f"kill -9 n{node}.{name}")
        site = self.node(node)
        old = site.children()[name]
        mine = [p for i, p in enumerate(self.publishers) if i % 2 == node]
        begun = {p.name: p.next_seq for p in mine}
        os.kill(old, signal.SIGKILL)

        def restarted() -> bool:
            pid = site.children().get(name)
            return pid not in (None, old) and ping_socket(site.run_dir / SOCKETS[name])

        _wait(restarted, timeout=60, what=f"n{node}'s supervisor to restart {name}")
        if name == "router":
            # A new router knows no route (the others dial it again, about a
            # second later, and tell it their interest): until n2's is back,
            # what it acknowledges goes to the hub only, as with nats-server.
            _wait(self._local_interest_routed, timeout=30, what=f"n{node}'s routes back")
            # What it acknowledged just before (two batches) up to then.
            for p in mine:
                self.router_kills.append((p.name, begun[p.name] - 2 * p.batch, p.next_seq))
        self._recovered()

    # -- the end ------------------------------------------------------------------

    def finish(self, *, timeout: float = RECOVERY_TIMEOUT_S) -> Figures:
        """``ChaosRun.finish``, then the local subscriber's figures."""
        figures = super().finish(timeout=timeout)
        assert self.local is not None
        acked = {(p.name, i) for p in self.publishers for i in p.acked_ids()}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = {parse_id(payload) for payload, _ in self.local.snapshot()}
            if acked - self.may_miss_locally() <= got:
                break
            time.sleep(POLL_S)
        seen = [parse_id(payload) for payload, _ in self.local.snapshot()]
        figures.local_arrived = len(set(seen))
        figures.local_lost = sorted(f"{n}-{s}" for n, s in acked - set(seen))
        figures.local_duplicates = len(seen) - len(set(seen))
        figures.local_out_of_order = sorted(out_of_order(seen))
        return figures

    def may_miss_locally(self) -> set[tuple[str, int]]:
        """Acknowledged messages a router kill may have kept from the local subscriber."""
        return {(name, s) for name, begin, end in self.router_kills for s in range(begin, end)}

    def close(self) -> None:
        super().close()
        if self.local is not None:
            self.local.close()
        for i in range(len(self.cluster) if self.cluster is not None else 0):
            self.node(i).stop()
