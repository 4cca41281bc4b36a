"""Nodes opening one shared PostgreSQL store at the same moment all start (issue 14, point 4).

Three nodes of a redundant site (docker-compose.cluster.yml) start together
on one fresh database: each runs the schema upgrade, then opens its store
(creates or reads the store's leaf id and ``last_seq``, registers its lease
row, adopts the counters and rows of a store from before nodes). Each of
those steps is a read-then-write that two nodes can interleave; a node
whose write lost came down with SQLSTATE 23505 (unique violation) once.

Here each "node" is a ``StoreService`` with its own engine (its own
connections, as a process on another machine), started in a thread; a
barrier releases them at the same instant, several rounds on fresh
databases. psycopg releases the GIL while it waits on the server, so the
nodes' statements really interleave in PostgreSQL.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, TypeVar

import pytest
from sqlalchemy import text

from leafnode.config import BufferSettings, Settings, StoreSettings
from services.store.engine import create_store_engine
from services.store.migrate import current_revision, head_revision, upgrade
from services.store.service import StoreService

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier as BarrierType

    from sqlalchemy.engine import Engine

    from tests.support import PgCluster

BUFFERS = {"central": BufferSettings(subjects=(">",))}
NODES = 3
# Rounds on fresh databases: one race window per round, a few to be sure.
ROUNDS = 5
# Each migration round spawns NODES interpreters: fewer rounds.
MIGRATE_ROUNDS = 3
# A thread stuck on a lock is a failure, not a hang of the suite.
JOIN_TIMEOUT_S = 60.0

T = TypeVar("T")


def _together(work: list[Callable[[], T]]) -> list[T | BaseException]:
    """Run each callable in its own thread, released at once by a barrier; results or errors."""
    barrier = threading.Barrier(len(work))
    out: list[T | BaseException] = [RuntimeError("did not finish")] * len(work)

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = work[i]()
        except BaseException as exc:  # reported by the test
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(work))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_TIMEOUT_S)
    return out


def _errors(results: Sequence[object]) -> list[str]:
    return [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]


class Engines:
    """Engines of one test, disposed at the end."""

    def __init__(self) -> None:
        self.all: list[Engine] = []

    def new(self, url: str) -> Engine:
        engine = create_store_engine(StoreSettings(url=url))
        self.all.append(engine)
        # Connected before the barrier: the race starts at the first statement.
        engine.connect().close()
        return engine


@pytest.fixture
def engines() -> Iterator[Engines]:
    e = Engines()
    yield e
    for engine in e.all:
        engine.dispose()


def _start(engine: Engine, node: str) -> Callable[[], StoreService]:
    def go() -> StoreService:
        svc = StoreService(engine, BUFFERS, node=node, takeover_after_s=30.0)
        svc.open()
        return svc

    return go


def _migrate(url: str, barrier: BarrierType, errors: Queue[str]) -> None:
    """A node's ``leafnode migrate`` (in a child process: alembic's ``op`` is process-global)."""
    barrier.wait(JOIN_TIMEOUT_S)
    try:
        upgrade(Settings(store=StoreSettings(url=url)))
    except BaseException as exc:
        errors.put(f"{type(exc).__name__}: {exc}")
        raise


def test_migrations_run_together_all_succeed(pg_cluster: PgCluster, engines: Engines) -> None:
    """``leafnode migrate`` on every node at once: one upgrades, the others find it done."""
    ctx = multiprocessing.get_context("spawn")
    for _ in range(MIGRATE_ROUNDS):
        url = pg_cluster.create_database()
        barrier, errors = ctx.Barrier(NODES), ctx.Queue()
        procs = [ctx.Process(target=_migrate, args=(url, barrier, errors)) for _ in range(NODES)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(JOIN_TIMEOUT_S)
        found = []
        while not errors.empty():
            found.append(errors.get())
        assert found == []
        assert [p.exitcode for p in procs] == [0] * NODES
        assert current_revision(engines.new(url)) == head_revision()


def test_nodes_opening_a_fresh_store_together_all_start_and_agree(
    pg_cluster: PgCluster, engines: Engines
) -> None:
    for _ in range(ROUNDS):
        url = pg_cluster.create_database()
        upgrade(Settings(store=StoreSettings(url=url)))
        names = [f"node{i}" for i in range(NODES)]
        results = _together([_start(engines.new(url), n) for n in names])
        assert _errors(results) == []
        svcs = [r for r in results if isinstance(r, StoreService)]
        # One leaf id, the one in the database: every node's Nats-Msg-Ids share it.
        with engines.new(url).connect() as conn:
            meta = {k: v for k, v in conn.execute(text("SELECT key, value FROM store_meta"))}
            leases = conn.execute(
                text("SELECT backlog, node, holder, epoch FROM buffer_leases ORDER BY backlog")
            ).all()
        assert {svc.leaf_id for svc in svcs} == {meta["leaf_id"]}
        assert "last_seq" in meta
        # One lease row per node, its own, held by it.
        assert [tuple(r) for r in leases] == [(n, n, n, 1) for n in names]
        assert [svc.backlog for svc in svcs] == names
        assert all(svc.holds(svc.backlog) for svc in svcs)
        # Seq blocks reserved together never overlap.
        seqs = _together([lambda svc=svc: _append_one(svc) for svc in svcs])  # type: ignore[misc]
        assert _errors(seqs) == []
        assert len(set(seqs)) == NODES


def _append_one(svc: StoreService) -> int:
    from leafnode.ipc import AppendColumns, BufferedMsg

    cols = AppendColumns.of([BufferedMsg("central", "t.x", None, 0, b"x", 1, ())])
    return svc.append([cols])[0].last_seq


def test_old_rows_and_counters_are_adopted_by_exactly_one_of_the_starting_nodes(
    pg_cluster: PgCluster, engines: Engines
) -> None:
    """A store from before nodes ("" backlog, "" counters) opened by three nodes at once."""
    for _ in range(ROUNDS):
        url = pg_cluster.create_database()
        upgrade(Settings(store=StoreSettings(url=url)))
        with engines.new(url).begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO store_meta (key, value) VALUES ('leaf_id', 'old'), "
                    "('last_seq', '5')"
                )
            )
            for seq in range(1, 6):
                conn.execute(
                    text(
                        "INSERT INTO buffered_messages (seq, node, remote, subject, payload,"
                        " received_at_us, size) VALUES (:s, '', 'central', 't.old', 'p', 1, 6)"
                    ),
                    {"s": seq},
                )
            conn.execute(
                text(
                    "INSERT INTO buffer_drops (node, remote, reason, count) VALUES"
                    " ('', 'central', 'max_msgs', 7), ('', 'central', 'max_age', 3)"
                )
            )
        names = [f"node{i}" for i in range(NODES)]
        results = _together([_start(engines.new(url), n) for n in names])
        assert _errors(results) == []
        svcs = [r for r in results if isinstance(r, StoreService)]
        assert {svc.leaf_id for svc in svcs} == {"old"}
        with engines.new(url).connect() as conn:
            rows = conn.execute(text("SELECT DISTINCT node FROM buffered_messages")).all()
            drops = conn.execute(text("SELECT DISTINCT node FROM buffer_drops")).all()
        # All the old rows went to one node's backlog, the counters to one node.
        assert len(rows) == 1
        assert rows[0][0] in names
        assert len(drops) == 1
        assert drops[0][0] in names
        adopter = next(svc for svc in svcs if svc.backlog == rows[0][0])
        assert adopter.stats()["remotes"]["central"]["msgs"] == 5  # type: ignore[index]


def test_two_processes_of_one_node_starting_together_share_its_single_lease_row(
    pg_cluster: PgCluster, engines: Engines
) -> None:
    """A node restarted while its old process still runs: one lease row, held by one of them."""
    for _ in range(ROUNDS):
        url = pg_cluster.create_database()
        upgrade(Settings(store=StoreSettings(url=url)))
        with engines.new(url).begin() as conn:  # the store exists: only the lease rows race
            conn.execute(
                text(
                    "INSERT INTO store_meta (key, value) VALUES ('leaf_id', 'x'), ('last_seq', '0')"
                )
            )
        results = _together([_start(engines.new(url), n) for n in ("a", "a", "b")])
        assert _errors(results) == []
        svcs = [r for r in results if isinstance(r, StoreService)]
        with engines.new(url).connect() as conn:
            leases = conn.execute(
                text("SELECT backlog, node, holder FROM buffer_leases ORDER BY backlog")
            ).all()
        assert [tuple(r) for r in leases] == [("a", "a", "a"), ("b", "b", "b")]
        # Both "a" processes append to backlog "a"; the first holds it, the
        # other waits for it (SELF_GRACE_S) rather than taking it.
        assert [svc.backlog for svc in svcs] == ["a", "a", "b"]
        assert sorted(svc.holds("a") for svc in svcs[:2]) == [False, True]


def test_two_processes_of_one_node_losing_its_backlog_together_each_get_a_new_one(
    pg_cluster: PgCluster, engines: Engines
) -> None:
    """Both processes of node "a" see "a" taken over and start a new generation at once."""
    for _ in range(ROUNDS):
        url = pg_cluster.create_database()
        upgrade(Settings(store=StoreSettings(url=url)))
        a1, a2, b = (
            StoreService(engines.new(url), BUFFERS, node=n, takeover_after_s=1.5)
            for n in ("a", "a", "b")
        )
        for svc in (a1, a2, b):
            svc.open()
        with engines.new(url).begin() as conn:  # "a" went silent 10 s ago
            conn.execute(
                text(
                    "UPDATE buffer_leases SET renewed_at_us = renewed_at_us - 10000000"
                    " WHERE backlog = 'a'"
                )
            )
        b.lease_tick()
        assert b.holds("a")
        results = _together([a1.lease_tick, a2.lease_tick])
        assert _errors(results) == []
        assert sorted([a1.backlog, a2.backlog]) == ["a#2", "a#3"]
        with engines.new(url).connect() as conn:
            rows = conn.execute(
                text("SELECT backlog, holder FROM buffer_leases WHERE node = 'a' ORDER BY backlog")
            ).all()
        assert [tuple(r) for r in rows] == [("a", "b"), ("a#2", "a"), ("a#3", "a")]
