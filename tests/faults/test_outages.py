"""Outages under load (issue 11 item 8): nothing a flush acknowledged is lost.

Each test runs a site under ``leafnode run`` behind a ``FaultProxy``, with two
publishers publishing flushed batches on buffered subjects throughout, and
breaks one thing after another: the hub link (close, reset, blackhole,
refuse), each service (kill -9, restarted by the supervisor), the hub
(SIGTERM and kill -9), the database (PostgreSQL stopped; SQLite's disk full).
After each repair the backlog must drain; at the end every acknowledged
message must be at the hub (plain subscriber or JetStream stream), first
arrivals in publish order per publisher, every copy under one
``Nats-Msg-Id`` (the stream keeps one), and no service's memory running away.
``python -m bench.chaos`` runs the long schedule of the same faults.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import pytest

from tests.faults.conftest import assert_promises_held
from tests.support import FAULT_KINDS, SERVICES, Figures

if TYPE_CHECKING:
    from pathlib import Path

    from tests.faults.conftest import ChaosFactory
    from tests.support import PgCluster

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# A service whose PSS grows more than this over a few seconds' run leaks.
MEMORY_GROWTH_KB = 32 * 1024


def assert_memory_bounded(figures: Figures) -> None:
    for name, (first, last, _peak, _restarts) in figures.memory_kb.items():
        assert last - first < MEMORY_GROWTH_KB, f"{name}: {first} -> {last} kB\n{figures.render()}"


def test_link_faults(chaos: ChaosFactory) -> None:
    run = chaos()
    for kind in FAULT_KINDS:
        run.link_fault(kind, hold_s=1.0)
    figures = run.finish()
    assert_promises_held(figures)
    assert all(held > 0 for held in run.held), f"an outage buffered nothing: {run.held}"
    assert_memory_bounded(figures)


def test_service_kills_and_hub_restarts(chaos: ChaosFactory) -> None:
    run = chaos()
    for name in SERVICES:
        run.kill_service(name)
    run.restart_hub(signal.SIGTERM, hold_s=1.0)
    run.restart_hub(signal.SIGKILL, hold_s=1.0)
    figures = run.finish()
    assert_promises_held(figures, hub_stopped=True)
    assert all(restarts == 1 for *_, restarts in figures.memory_kb.values()), figures.render()
    assert all(held > 0 for held in run.held), f"a hub outage buffered nothing: {run.held}"


def test_postgresql_stops_and_starts(chaos: ChaosFactory, pg_cluster: PgCluster) -> None:
    run = chaos(store_url=pg_cluster.create_database(), pg=pg_cluster)
    run.database_outage(hold_s=2.0)
    run.link_fault("reset", hold_s=0.5)
    run.database_outage(hold_s=1.0)
    figures = run.finish()
    assert_promises_held(figures)


def test_sqlite_disk_full(chaos: ChaosFactory, small_disk: Path) -> None:
    run = chaos(store_url=f"sqlite:///{small_disk / 'buffer.db'}")
    run.disk_full(small_disk, hold_s=2.0)
    run.link_fault("refuse", hold_s=0.5)
    run.disk_full(small_disk, hold_s=1.0)
    figures = run.finish()
    assert_promises_held(figures)
