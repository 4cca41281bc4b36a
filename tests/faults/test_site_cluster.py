"""The trust suite's faults on a redundant site: three nodes (issue 14 point 7).

``SiteChaosRun`` (tests/support/_site_chaos.py) runs ``test_outages``'s
scenario on three ``leafnode run`` nodes routed to each other and sharing one
PostgreSQL store, each node with its own hub link through the one fault
proxy. Two publishers publish flushed batches of buffered subjects on two
different nodes (n0, n1) throughout; a subscriber on the third (n2) takes
them live over the routes. Faults:

- the hub link closed, then blackholed, on every node at once;
- kill -9 of n0's router, uplink and store, then of n1's router (their
  supervisors restart each);
- the hub stopped (SIGTERM, then SIGKILL) and started again, then the
  shared PostgreSQL stopped and started again.

After each, every node's backlog drains. At the end the trust promise holds
for the site as for one node (``assert_promises_held``): every acknowledged
message is at the hub, first arrivals in publish order per publisher, every
copy under one ``Nats-Msg-Id``, the ``TELE`` stream (duplicate window) holds
each once. And the subscriber on n2 got each acknowledged message exactly
once, in order per publisher: a node's replay after an outage does not come
back to it through the hub. A router killed by SIGKILL may have acknowledged
messages it had not yet written to a route (core NATS, as nats-server): only
those may be missing at n2, never duplicated.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import pytest

from tests.faults.conftest import assert_promises_held
from tests.support import SERVICES, SiteChaosRun

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support import Figures, PgCluster

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def site_run(tmp_path: Path, pg_cluster: PgCluster) -> Iterator[SiteChaosRun]:
    with SiteChaosRun(
        tmp_path / "run", store_url=pg_cluster.create_database(), pg=pg_cluster
    ) as run:
        yield run


def assert_local_once(run: SiteChaosRun, figures: Figures) -> None:
    """n2's subscriber: each acknowledged message once, in order (but what a router kill took)."""
    text = figures.render()
    assert figures.local_arrived > 0, text
    assert figures.local_duplicates == 0, text
    assert figures.local_out_of_order == [], text
    allowed = {f"{n}-{s}" for n, s in run.may_miss_locally()}
    assert set(figures.local_lost) <= allowed, (sorted(set(figures.local_lost) - allowed), text)


def assert_both_publishing_nodes_buffered(run: SiteChaosRun) -> None:
    """Each outage left a backlog on n0 and on n1 (where the publishers are)."""
    assert run.held_by_node, "no outage"
    assert all(n0 > 0 and n1 > 0 for n0, n1, _n2 in run.held_by_node), run.held_by_node


def test_hub_link_flaps_on_a_three_node_site(site_run: SiteChaosRun) -> None:
    # A FIN, then silence (found stale by the 500 ms pings); reset and refuse
    # end the links as a FIN does, and test_outages has them on one node.
    for kind in ("close", "blackhole"):
        site_run.link_fault(kind, hold_s=1.0)
    figures = site_run.finish()
    assert_promises_held(figures)
    assert_local_once(site_run, figures)
    assert figures.local_lost == [], figures.render()
    assert_both_publishing_nodes_buffered(site_run)


# Issue 14: in one clean-clone CI run (load from the suite itself; the run took
# 98 s instead of ~12 s) this test found 1,080 of 3,240 acknowledged messages of
# n0's publisher not at the hub: a drain read of the node's backlog while its
# restarted store waited out the lease's self grace was answered as empty, and
# the drain acked the records it skipped. The store now answers such a read
# `not_held` (tests/store/test_store_ops.py::
# test_a_drain_read_of_a_backlog_not_held_yet_is_refused_not_empty); the test
# has held since, in loaded runs.
def test_kill_9_of_a_nodes_services_on_a_three_node_site(site_run: SiteChaosRun) -> None:
    for name in SERVICES:
        site_run.kill_service(name, node=0)
    # n0 is the seed: the others dial it again. n1's route to n2 was learned
    # by gossip: its new router must find n2 again through the seed.
    site_run.kill_service("router", node=1)
    figures = site_run.finish()
    assert_promises_held(figures)
    assert_local_once(site_run, figures)
    restarted = {name for name, (*_, restarts) in figures.memory_kb.items() if restarts}
    assert restarted == {f"n0.{name}" for name in SERVICES} | {"n1.router"}, figures.render()


def test_the_hub_and_the_database_restart_under_a_three_node_site(
    site_run: SiteChaosRun,
) -> None:
    site_run.restart_hub(signal.SIGTERM, hold_s=1.0)
    site_run.restart_hub(signal.SIGKILL, hold_s=1.0)
    assert_both_publishing_nodes_buffered(site_run)
    site_run.database_outage(hold_s=1.0)  # the store every node shares
    figures = site_run.finish()
    assert_promises_held(figures, hub_stopped=True)
    assert_local_once(site_run, figures)
    assert figures.local_lost == [], figures.render()
