"""Backlog leases on one shared PostgreSQL store (services/store/leases.py, DESIGN §9).

Several ``StoreService``s in this process stand for the store processes of
several nodes: each has its own engine (its own connections) on one real
PostgreSQL database, as nodes on different machines would. A node is
"dead" here when it stops renewing (its ``lease_tick`` is not called), which
is all a killed process changes in the database; the kill -9 of real
processes is in tests/e2e/test_takeover.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text

from leafnode.config import BufferSettings, Settings, StoreSettings
from leafnode.ipc import AppendColumns, BufferedMsg
from services.store.engine import create_store_engine
from services.store.leases import LeaseLostError, NotHeldError
from services.store.migrate import upgrade
from services.store.service import StoreService

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.engine import Engine

    from tests.support import PgCluster

BUFFERS = {"central": BufferSettings(subjects=(">",))}
# Short enough for a test, long enough that a node ticking every 0.1 s
# under load is never taken for dead.
TAKEOVER_S = 1.5


def _msgs(n: int, tag: str) -> AppendColumns:
    return AppendColumns.of(
        [
            BufferedMsg("central", f"t.{tag}", None, 0, f"{tag}-{i}".encode(), 1, ())
            for i in range(n)
        ]
    )


class Site:
    """Nodes (store services) on one database; engines disposed at the end."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engines: list[Engine] = []

    def node(
        self,
        name: str,
        *,
        takeover_after_s: float = TAKEOVER_S,
        buffers: dict[str, BufferSettings] = BUFFERS,
    ) -> StoreService:
        engine = create_store_engine(StoreSettings(url=self.url))
        self.engines.append(engine)
        svc = StoreService(engine, buffers, node=name, takeover_after_s=takeover_after_s)
        svc.open()
        return svc

    def close(self) -> None:
        for engine in self.engines:
            engine.dispose()


@pytest.fixture
def site(pg_cluster: PgCluster) -> Iterator[Site]:
    url = pg_cluster.create_database()
    upgrade(Settings(store=StoreSettings(url=url)))
    s = Site(url)
    yield s
    s.close()


def _pending(svc: StoreService, backlog: str | None = None) -> list[bytes]:
    got = svc.read(remote="central", after=0, limit=10_000, max_bytes=1 << 30, backlog=backlog)
    return [bytes(row[9]) for row in got.rows]


def _seqs(svc: StoreService, backlog: str | None = None) -> list[int]:
    got = svc.read(remote="central", after=0, limit=10_000, max_bytes=1 << 30, backlog=backlog)
    return [int(row[0]) for row in got.rows]


def _nonempty_or_own(purged: dict[str, int]) -> dict[str, int]:
    """A purge answer without the empty backlogs of nodes other than a and b."""
    return {k: v for k, v in purged.items() if v or k in ("a", "b")}


def _tick_until(svc: StoreService, what: str, cond: object, timeout: float = 20.0) -> None:
    assert callable(cond)
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        svc.lease_tick()
        time.sleep(0.1)


def test_each_node_appends_and_reads_its_own_backlog_with_unique_seqs(site: Site) -> None:
    a, b = site.node("a"), site.node("b")
    a.append([_msgs(3, "a")])
    b.append([_msgs(2, "b")])
    a.append([_msgs(2, "a2")])
    assert _pending(a) == [b"a-0", b"a-1", b"a-2", b"a2-0", b"a2-1"]
    assert _pending(b) == [b"b-0", b"b-1"]
    seqs_a, seqs_b = _seqs(a), _seqs(b)
    assert not set(seqs_a) & set(seqs_b)  # one Nats-Msg-Id space: <store leaf id>-<seq>
    assert seqs_a == sorted(seqs_a)
    assert a.leaf_id == b.leaf_id
    # A's ack "up to" B's seqs acks nothing of B's backlog.
    assert a.ack("central", upto=max(seqs_a + seqs_b), seqs=None) == 5
    assert _pending(b) == [b"b-0", b"b-1"]
    stats = b.stats()
    assert stats["node"] == "b"
    assert stats["backlog"] == "b"
    assert stats["backlog_held"] is True
    assert stats["held"] == []


def test_a_dead_nodes_backlog_is_taken_over_after_the_grace_and_fenced(site: Site) -> None:
    a, b = site.node("a"), site.node("b")
    a.append([_msgs(4, "a")])
    seqs = _seqs(a)
    b.lease_tick()
    assert b.stats()["held"] == []  # a is alive: nothing to take
    # a stops renewing (dead); b takes its backlog only after takeover_after.
    started = time.monotonic()
    _tick_until(b, "the takeover", lambda: b.holds("a"))
    assert time.monotonic() - started >= TAKEOVER_S - 0.5
    held = b.stats()["held"]
    assert isinstance(held, list)
    assert [(h["backlog"], h["node"], h["remotes"]) for h in held] == [
        (
            "a",
            "a",
            {
                "central": {
                    "msgs": 4,
                    "bytes": len(b"a-0t.a") * 4,
                    "oldest_age_s": held[0]["remotes"]["central"]["oldest_age_s"],
                }
            },
        )
    ]
    assert b.stats()["takeovers"] == 1
    # Same rows, same seqs (so the same Nats-Msg-Ids), in order.
    assert _pending(b, "a") == [b"a-0", b"a-1", b"a-2", b"a-3"]
    assert _seqs(b, "a") == seqs
    # Fencing: the old holder's ack is refused and changes nothing.
    with pytest.raises(LeaseLostError):
        a.ack("central", upto=seqs[1], seqs=None, backlog="a")
    assert _seqs(b, "a") == seqs
    assert b.ack("central", upto=seqs[1], seqs=None, backlog="a") == 2
    assert _seqs(b, "a") == seqs[2:]
    assert b.ack("central", upto=None, seqs=seqs[2:], backlog="a") == 2
    # Empty: released at the next tick, no longer listed.
    b.lease_tick()
    assert not b.holds("a")
    assert b.stats()["held"] == []


def test_two_survivors_racing_for_one_lease_only_one_wins(site: Site) -> None:
    dead = [site.node(f"dead{i}") for i in range(4)]
    for i, svc in enumerate(dead):
        svc.append([_msgs(2, f"d{i}")])
    b, c = site.node("b"), site.node("c")
    # The dead nodes went silent long ago (as if killed 10 s back); b and c live.
    with site.engines[0].begin() as conn:
        conn.execute(
            text(
                "UPDATE buffer_leases SET renewed_at_us = renewed_at_us - 10000000 "
                "WHERE backlog LIKE 'dead%'"
            )
        )
    # Both tick at once, repeatedly, until every dead backlog has a holder.
    gained: dict[str, list[str]] = {"b": [], "c": []}
    for _ in range(20):
        barrier = threading.Barrier(2)

        def race(svc: StoreService, name: str, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            out = svc.lease_tick()
            assert out is not None
            gained[name] += [h.backlog for h in out.gained]

        threads = [threading.Thread(target=race, args=(s, n)) for s, n in ((b, "b"), (c, "c"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        if len(gained["b"]) + len(gained["c"]) >= 4:
            break
    everything = sorted(gained["b"] + gained["c"])
    assert everything == ["dead0", "dead1", "dead2", "dead3"]  # each exactly once
    for name in everything:
        holders = [svc for svc in (b, c) if svc.holds(name)]
        assert len(holders) == 1
        assert _pending(holders[0], name)
        other = c if holders[0] is b else b
        assert _pending(other, name) == []  # not held: reads nothing
    with site.engines[0].connect() as conn:
        epochs = conn.execute(
            text("SELECT backlog, epoch FROM buffer_leases WHERE backlog LIKE 'dead%'")
        ).all()
    assert sorted(epochs) == [(f"dead{i}", 2) for i in range(4)]  # one claim each


def test_a_node_back_after_a_takeover_does_not_drain_what_was_taken(site: Site) -> None:
    a, b = site.node("a"), site.node("b")
    a.append([_msgs(3, "old")])
    _tick_until(b, "the takeover", lambda: b.holds("a"))
    # a's process restarts (a new instance of node "a").
    a2 = site.node("a")
    assert a2.backlog == "a#2"  # a new generation: "a" is b's now
    a2.append([_msgs(2, "new")])
    assert _pending(a2) == [b"new-0", b"new-1"]
    assert _pending(a2, "a") == []
    with pytest.raises(LeaseLostError):
        a2.ack("central", upto=10**9, seqs=None, backlog="a")
    assert _pending(b, "a") == [b"old-0", b"old-1", b"old-2"]
    a2.lease_tick()
    assert not a2.holds("a")
    # The same for a node that was only cut off (no restart): it notices the
    # loss at its next renewal and appends to a new backlog from then on.
    a.lease_tick()
    assert a.backlog.startswith("a#")
    assert a.backlog != "a"
    a.append([_msgs(1, "late")])
    assert _pending(b, "a") == [b"old-0", b"old-1", b"old-2"]


def test_a_node_restarted_before_the_grace_drains_its_own_backlog(site: Site) -> None:
    a = site.node("a", takeover_after_s=30.0)
    b = site.node("b", takeover_after_s=30.0)
    a.append([_msgs(3, "a")])
    # kill -9 of a's store; a new one starts a moment later.
    a2 = site.node("a", takeover_after_s=30.0)
    assert a2.backlog == "a"
    assert not a2.holds("a")  # its predecessor's lease is still fresh
    a2.append([_msgs(1, "after")])
    started = time.monotonic()
    _tick_until(a2, "the own lease", lambda: a2.holds("a"))
    assert time.monotonic() - started < 15  # the self grace, far below takeover_after
    assert _pending(a2) == [b"a-0", b"a-1", b"a-2", b"after-0"]
    b.lease_tick()
    assert not b.holds("a")
    assert b.stats()["takeovers"] == 0


def test_sqlite_stores_have_no_leases(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'buffer.db'}"
    engine = create_store_engine(StoreSettings(url=url))
    upgrade(Settings(store=StoreSettings(url=url)))
    try:
        svc = StoreService(engine, BUFFERS, node="a", takeover_after_s=0.1)
        svc.open()
        svc.append([_msgs(2, "a")])
        assert svc.leases is None
        assert svc.lease_tick() is None
        stats = svc.stats()
        assert (stats["backlog"], stats["shared"], stats["held"]) == ("", False, [])
        assert _pending(svc) == [b"a-0", b"a-1"]
    finally:
        engine.dispose()


def test_a_restarted_node_whose_backlog_another_node_took_meanwhile_starts_a_new_one(
    site: Site,
) -> None:
    a = site.node("a")
    a.append([_msgs(2, "old")])
    a2 = site.node("a")  # a's process restarted: it waits for the old lease
    b = site.node("b")
    assert a2.backlog == "a"
    assert not a2.holds("a")
    # b's takeover comes first (a takeover_after below the self grace allows it).
    with site.engines[0].begin() as conn:
        conn.execute(
            text(
                "UPDATE buffer_leases SET renewed_at_us = renewed_at_us - 10000000 "
                "WHERE backlog = 'a'"
            )
        )
    b.lease_tick()
    assert b.holds("a")
    a2.lease_tick()
    assert a2.backlog == "a#2"  # not b's backlog: its own new one
    assert a2.holds("a#2")
    a2.append([_msgs(1, "new")])
    assert _pending(a2) == [b"new-0"]
    assert _pending(b, "a") == [b"old-0", b"old-1"]
    assert a2.stats()["remotes"]["central"]["msgs"] == 1  # type: ignore[index]


def test_each_node_counts_its_own_drops(site: Site) -> None:
    a, b = site.node("a"), site.node("b")
    a.append([_msgs(3, "a")])
    b.append([_msgs(2, "b")])
    assert a.purge(remote="central") == {"a": 3}  # a's own backlog only
    assert _pending(b) == [b"b-0", b"b-1"]
    assert a.stats()["remotes"]["central"]["dropped"] == {"purged": 3}  # type: ignore[index]
    assert b.stats()["remotes"]["central"]["dropped"] == {}  # type: ignore[index]
    b2 = site.node("b")  # restarted: its counters come back, a's stay a's
    assert b2.stats()["remotes"]["central"]["dropped"] == {}  # type: ignore[index]
    a2 = site.node("a")
    assert a2.stats()["remotes"]["central"]["dropped"] == {"purged": 3}  # type: ignore[index]


def _held_msgs(svc: StoreService, backlog: str) -> int:
    held = svc.stats()["held"]
    assert isinstance(held, list)
    (entry,) = [h for h in held if h["backlog"] == backlog]
    return int(entry["remotes"].get("central", {"msgs": 0})["msgs"])


def _read_all(svc: StoreService, limit: int) -> list[tuple[int, str, bytes]]:
    """Page through ``read_held`` with ``limit``: ``(seq, backlog, payload)`` once each."""
    out: list[tuple[int, str, bytes]] = []
    after = 0
    while True:
        got, backlogs = svc.read_held(remote="central", after=after, limit=limit, max_bytes=1 << 30)
        assert len(got.rows) <= limit
        out += [(int(r[0]), b, bytes(r[9])) for r, b in zip(got.rows, backlogs, strict=True)]
        assert got.next >= after
        after = got.next
        if not got.more:
            return out


def test_purge_and_read_cover_the_backlogs_a_node_took_over_fenced_by_the_lease(
    site: Site,
) -> None:
    a, b, c = site.node("a"), site.node("b"), site.node("c")
    b.append([_msgs(2, "b")])
    a.append([_msgs(3, "a"), _msgs(2, "x")])
    b.append([_msgs(1, "b2")])
    _tick_until(b, "the takeover", lambda: b.holds("a"))
    c.lease_tick()
    # The api's read: b's own rows and a's, in seq order (each node numbers
    # from its own block of seqs: b's came first), each naming its backlog,
    # whatever the page size.
    everything = _read_all(b, 10_000)
    assert [(bk, p) for _s, bk, p in everything] == [
        ("b", b"b-0"),
        ("b", b"b-1"),
        ("b", b"b2-0"),
        ("a", b"a-0"),
        ("a", b"a-1"),
        ("a", b"a-2"),
        ("a", b"x-0"),
        ("a", b"x-1"),
    ]
    assert [seq for seq, _b, _p in everything] == sorted(seq for seq, _b, _p in everything)
    for limit in (1, 2, 3, 5):
        assert _read_all(b, limit) == everything
    # A node must not purge what it does not hold: c names a's backlog, and
    # a (taken over, not yet aware of it) purges "everything it holds".
    with pytest.raises(NotHeldError):
        c.purge(backlog="a")
    with pytest.raises(LeaseLostError):
        a.purge()
    assert _pending(b, "a") == [b"a-0", b"a-1", b"a-2", b"x-0", b"x-1"]
    # b's purge reaches a's backlog too, counted per backlog, and the
    # counters stay exact.
    # (On a loaded machine b may also have taken c's empty backlog over.)
    assert _nonempty_or_own(b.purge(subject="t.a")) == {"b": 0, "a": 3}
    assert _pending(b, "a") == [b"x-0", b"x-1"]
    assert _held_msgs(b, "a") == 2
    assert _nonempty_or_own(b.purge(remote="central")) == {"b": 3, "a": 2}
    assert _pending(b) == []
    assert _held_msgs(b, "a") == 0
    stats = b.stats()
    assert stats["remotes"]["central"]["msgs"] == 0  # type: ignore[index]
    assert stats["remotes"]["central"]["dropped"] == {"purged": 8}  # type: ignore[index]
    b.lease_tick()  # empty now: released
    assert not b.holds("a")


def test_redrive_covers_the_backlogs_a_node_took_over_fenced_by_the_lease(site: Site) -> None:
    buffers = {"central": BufferSettings(subjects=(">",), retain_s=3600.0)}
    a = site.node("a", buffers=buffers)
    b = site.node("b", buffers=buffers)
    a.append([_msgs(3, "a")])
    b.append([_msgs(1, "b")])
    seqs_a, seqs_b = _seqs(a), _seqs(b)
    _tick_until(b, "the takeover", lambda: b.holds("a"))
    assert b.ack("central", upto=max(seqs_a), seqs=None, backlog="a") == 3
    assert b.ack("central", upto=max(seqs_b), seqs=None) == 1
    assert _held_msgs(b, "a") == 0
    with pytest.raises(LeaseLostError):
        a.redrive("central")  # a lost "a": it must not make b's rows pending
    assert _pending(b, "a") == []
    assert b.redrive("central") == {"b": (1, seqs_b[0]), "a": (3, seqs_a[0])}
    assert _pending(b, "a") == [b"a-0", b"a-1", b"a-2"]
    assert _pending(b) == [b"b-0"]
    assert _held_msgs(b, "a") == 3
    assert b.stats()["remotes"]["central"]["msgs"] == 1  # type: ignore[index]
    assert b.redrive("central", backlog="a") == {"a": (0, 0)}  # nothing retained left


def test_an_operators_purge_waits_for_the_own_lease_after_a_restart(site: Site) -> None:
    a = site.node("a", takeover_after_s=30.0)
    a.append([_msgs(2, "a")])
    a2 = site.node("a", takeover_after_s=30.0)  # restarted: the old lease is fresh
    assert not a2.holds("a")
    with pytest.raises(NotHeldError) as refused:
        a2.purge()
    assert refused.value.waiting
    assert "waits for the lease" in str(refused.value)
    assert [p for _s, _b, p in _read_all(a2, 100)] == [b"a-0", b"a-1"]  # reading is fine
    assert _pending(a2) == [b"a-0", b"a-1"]  # nothing purged
    _tick_until(a2, "the own lease", lambda: a2.holds("a"))
    assert a2.purge() == {"a": 2}
