"""Backlog takeover on a shared PostgreSQL store, with real processes (DESIGN §9, issue 14).

Each node is a ``BufferSite`` (store, router, uplink) with its own
``server_name`` and its own hub remote ``central`` to one real nats-server
hub with JetStream; all nodes share one PostgreSQL database. The hub has a
stream on ``tele.>`` with a duplicate window: its subjects are the hub's
interest, and what it stores is what the hub received, once per
``Nats-Msg-Id``. A node dies by SIGKILL of all its processes while its
publisher is mid-stream; what the publisher's flushes confirmed must reach
the stream, in publish order, with the ids the store gave them.
"""

from __future__ import annotations

import base64
import collections
import itertools
import operator
import signal
import threading
from functools import partial
from typing import TYPE_CHECKING

import httpx
import nats
import psycopg
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from tests.buffer.conftest import HubCollector, Publisher, apoll, apoll_async, poll
from tests.support import ApiProcess

if TYPE_CHECKING:
    from nats.js import JetStreamContext

    from tests.buffer.conftest import BufferSite, Hub, Sites
    from tests.support import PgCluster

pytestmark = [pytest.mark.asyncio, pytest.mark.e2e, pytest.mark.slow]

_checks = itertools.count()
# Short for a test; long enough that a live node under load never looks dead.
TAKEOVER_S = 4


def node_config(name: str, takeover_after_s: float = TAKEOVER_S) -> str:
    return f'server_name: {name}\nbuffer {{ takeover_after: "{takeover_after_s}s" }}'


async def _stream_ready(hub: Hub, nodes: list[BufferSite]) -> None:
    """A stream on ``tele.>`` with a duplicate window, its interest at every node."""
    nc = await nats.connect(hub.url)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="TELE", subjects=["tele.>"], duplicate_window=600.0))
    finally:
        await nc.close()
    for node in nodes:
        node.wait_ready_link()
        await apoll(
            node.subscriptions,
            lambda subs: any(s.startswith("tele.>") for s in subs),
            timeout=20,
            what="the stream's interest at the leaf",
        )


def _hub_down(hub: Hub, nodes: list[BufferSite]) -> None:
    hub.stop()
    for node in nodes:
        poll(node.status, lambda s: s["connected"] is False, timeout=20, what="link down")


async def _stored(js: JetStreamContext) -> list[tuple[bytes, str | None]]:
    """Every message of the stream in stream order: ``(payload, Nats-Msg-Id)``."""
    total = (await js.stream_info("TELE")).state.messages
    sub = await js.pull_subscribe(
        "tele.>", durable=f"check{next(_checks)}", config=ConsumerConfig(ack_policy=AckPolicy.NONE)
    )
    out: list[tuple[bytes, str | None]] = []
    while len(out) < total:
        for msg in await sub.fetch(min(1000, total - len(out)), timeout=10):
            out.append((msg.data or b"", (msg.headers or {}).get("Nats-Msg-Id")))
    await sub.unsubscribe()
    return out


def _pending_ids(url: str, backlog: str) -> dict[bytes, str]:
    """payload -> the ``Nats-Msg-Id`` the store gives it (``<leaf id>-<seq>``), from the DB."""
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        leaf_id = conn.execute("SELECT value FROM store_meta WHERE key = 'leaf_id'").fetchone()
        assert leaf_id is not None
        rows = conn.execute(
            "SELECT seq, payload FROM buffered_messages WHERE node = %s AND acked_at_us IS NULL",
            (backlog,),
        ).fetchall()
    return {bytes(payload): f"{leaf_id[0]}-{seq}" for seq, payload in rows}


def _store_logs(node: BufferSite) -> str:
    return node.store.log_text()


def _held(node: BufferSite) -> list[dict[str, object]]:
    held = node.status()["held"]
    assert isinstance(held, list)
    return held


def _in_order(payloads: list[bytes], wanted: set[int]) -> list[int]:
    return [int(p) for p in payloads if p.isdigit() and int(p) in wanted]


async def test_a_survivor_drains_a_killed_nodes_backlog_once_in_order_with_its_ids(
    sites: Sites, pg_cluster: PgCluster
) -> None:
    url = pg_cluster.create_database()
    hub = sites.hub(jetstream=True)
    a, b, c = (sites.site(hub, store_url=url, extra=node_config(n)) for n in "abc")
    await _stream_ready(hub, [a, b, c])
    _hub_down(hub, [a, b, c])
    pub_a = Publisher(a.router.port, start=0)
    pub_b = Publisher(b.router.port, start=1_000_000)
    pub_a.start()
    pub_b.start(limit=1_000_000 + 3000)
    pub_a.wait_flushed(3000)
    a.kill_all()  # kill -9 of node a while its client publishes
    pub_a.join()
    pub_b.join()
    from_a, from_b = pub_a.must_arrive(), pub_b.must_arrive()
    assert len(from_a) >= 3000
    ids_a = _pending_ids(url, "a")
    assert {b"%d" % i for i in from_a} <= set(ids_a)  # committed before the kill
    # Nobody takes a's backlog before takeover_after (the hub is down: it waits anyway).
    for node in (b, c):
        assert _held(node) == []
    hub.start()
    nc = await nats.connect(hub.url)
    js = nc.jetstream()
    try:

        async def count() -> int:
            return (await js.stream_info("TELE")).state.messages

        # a's backlog as committed (the batch in flight at the kill may be
        # committed without its PONG having reached the publisher): all of it goes.
        total = len(ids_a) + len(from_b)
        await apoll_async(count, lambda n: n >= total, timeout=90, what=f"{total} in the stream")
        stored = await _stored(js)
    finally:
        await nc.close()
    payloads = [p for p, _id in stored]
    assert len(payloads) == len(set(payloads)) == total  # nothing twice
    assert set(payloads) >= {b"%d" % i for i in from_a | from_b}  # nothing confirmed lost
    committed_a = {int(p) for p in ids_a}
    assert _in_order(payloads, committed_a) == sorted(committed_a)  # order kept per publisher
    assert _in_order(payloads, from_b) == sorted(from_b)
    got_ids = dict(stored)
    assert all(got_ids[p] == ids_a[p] for p in ids_a)  # the ids the store gave them
    # Exactly one survivor took a's backlog, and each message reached the hub
    # once (the stream's de-duplication would hide a second sender; the
    # hub's count of messages from its leafs does not).
    took = [n for n in (b, c) if "Took over backlog 'a' of node 'a'" in _store_logs(n)]
    assert len(took) == 1
    assert hub.leaf_in_msgs() == total


async def test_a_node_restarted_within_the_grace_drains_its_own_backlog(
    sites: Sites, pg_cluster: PgCluster
) -> None:
    url = pg_cluster.create_database()
    hub = sites.hub(jetstream=True)
    a, b = (sites.site(hub, store_url=url, extra=node_config(n, 120)) for n in "ab")
    await _stream_ready(hub, [a, b])
    _hub_down(hub, [a, b])
    pub = Publisher(a.router.port)
    pub.start()
    pub.wait_flushed(1000)
    a.kill_all()
    pub.join()
    # What a committed (the batch in flight at the kill may be committed
    # without its PONG having reached the publisher): all of it must go.
    committed = {int(p) for p in _pending_ids(url, "a")}
    assert committed >= pub.must_arrive()
    a.start_all()  # the same node, back long before takeover_after
    hub.start()
    nc = await nats.connect(hub.url)
    js = nc.jetstream()
    try:

        async def count() -> int:
            return (await js.stream_info("TELE")).state.messages

        await apoll_async(count, lambda n: n >= len(committed), timeout=60, what="a's backlog")
        payloads = [p for p, _id in await _stored(js)]
    finally:
        await nc.close()
    assert _in_order(payloads, committed) == sorted(committed)
    assert len(payloads) == len(committed)
    assert a.buffer()["backlog"] == "a"
    assert _held(b) == []  # b never took it
    assert "Took over" not in _store_logs(b)
    poll(a.buffer, lambda buf: buf["sent"] == len(committed), timeout=10, what="a sent it")


async def test_a_node_back_after_a_takeover_does_not_drain_what_was_taken(
    sites: Sites, pg_cluster: PgCluster
) -> None:
    url = pg_cluster.create_database()
    hub = sites.hub(jetstream=True)
    a, b = (sites.site(hub, store_url=url, extra=node_config(n)) for n in "ab")
    await _stream_ready(hub, [a, b])
    _hub_down(hub, [a, b])
    a.publish([(f"tele.{i % 3}", b"%d" % i) for i in range(500)])
    a.kill_all()
    poll(lambda: _held(b), operator.truth, timeout=TAKEOVER_S + 30, what="b takes a's backlog")
    a.start_all()  # a comes back: "a" is b's now, a appends to a new backlog
    poll(a.buffer, lambda buf: buf["backlog"] == "a#2", timeout=20, what="a's new backlog")
    a.publish([(f"tele.{i % 3}", b"%d" % i) for i in range(500, 600)])
    hub.start()
    nc = await nats.connect(hub.url)
    js = nc.jetstream()
    try:

        async def count() -> int:
            return (await js.stream_info("TELE")).state.messages

        await apoll_async(count, lambda n: n >= 600, timeout=60, what="600 in the stream")
        payloads = [p for p, _id in await _stored(js)]
    finally:
        await nc.close()
    assert sorted(int(p) for p in payloads) == list(range(600))
    assert _in_order(payloads, set(range(500))) == list(range(500))
    poll(a.buffer, lambda buf: buf["sent"] == 100, timeout=10, what="a sent its new 100")
    assert _held(a) == []  # a never drains "a" again
    assert "Took over" not in _store_logs(a)
    assert hub.leaf_in_msgs() == 600  # b sent the 500, a the 100: nothing twice


async def test_status_shows_which_node_holds_which_backlog(
    sites: Sites, pg_cluster: PgCluster
) -> None:
    url = pg_cluster.create_database()
    hub = sites.hub()
    hub.stop()  # everything stays buffered
    a, b = (sites.site(hub, store_url=url, extra=node_config(n)) for n in "ab")
    api = ApiProcess(b.conf, b.run_dir, workdir=b.base / "api")
    try:
        api.wait_ready()
        http = httpx.Client(base_url=api.base_url, timeout=15)
        a.publish([(f"tele.{i % 3}", b"%d" % i) for i in range(50)])

        def central(path: str) -> dict[str, object]:
            remotes = http.get(path).json()["remotes"]
            (entry,) = [r for r in remotes if r["name"] == "central"]
            assert isinstance(entry, dict)
            return entry

        def metric(name: str) -> str:
            return "\n".join(
                line for line in http.get("/metrics").text.splitlines() if line.startswith(name)
            )

        # Before: b holds its own backlog only.
        for path in ("/buffer", "/healthz"):
            entry = central(path)
            assert (entry["node"], entry["backlog_id"], entry["held"]) == ("b", "b", [])
        assert metric("leafnode_buffer_takeovers_total") == "leafnode_buffer_takeovers_total 0.0"
        assert metric("leafnode_buffer_taken_over_msgs{") == ""
        a.kill_all()
        poll(
            lambda: central("/buffer")["held"],
            operator.truth,
            timeout=TAKEOVER_S + 30,
            what="b's /buffer lists a's backlog",
        )
        for path in ("/buffer", "/healthz"):
            entry = central(path)
            assert (entry["node"], entry["backlog_id"]) == ("b", "b")
            listed = entry["held"]
            assert isinstance(listed, list)
            (taken,) = listed
            assert (taken["backlog"], taken["node"], taken["msgs"]) == ("a", "a", 50)
            assert isinstance(taken["since"], str)
        poll(
            lambda: central("/buffer")["held"][0]["state"],  # type: ignore[index]
            lambda state: state == "no_link",
            what="the drain of a's backlog waits for the hub",
        )
        # POST /replay pause and resume apply to what b took over too.
        assert http.post("/replay", json={"action": "pause"}).status_code == 200
        poll(
            lambda: central("/buffer")["held"][0]["state"],  # type: ignore[index]
            lambda state: state == "paused",
            what="the drain of a's backlog paused",
        )
        assert http.post("/replay", json={"action": "resume"}).status_code == 200
        poll(
            lambda: central("/buffer")["held"][0]["state"],  # type: ignore[index]
            lambda state: state == "no_link",
            what="the drain of a's backlog resumed",
        )
        assert metric("leafnode_buffer_takeovers_total") == "leafnode_buffer_takeovers_total 1.0"
        assert metric("leafnode_buffer_taken_over_msgs{") == (
            'leafnode_buffer_taken_over_msgs{backlog="a",node="a",remote="central"} 50.0'
        )
    finally:
        api.kill()


async def test_a_batch_the_dead_node_sent_but_never_acked_is_kept_once_by_the_stream(
    sites: Sites, pg_cluster: PgCluster
) -> None:
    """The hub confirmed a batch of the dead node, whose ack never reached the store.

    a's store is frozen (SIGSTOP) mid-replay until its uplink has batches the
    hub confirmed and the store did not ack, then every process of a is
    killed; b takes a's backlog over and sends those again, under the same
    ``Nats-Msg-Id``s: the stream keeps each message once.
    """
    count = 40_000
    url = pg_cluster.create_database()
    hub = sites.hub(jetstream=True)
    a, b = (sites.site(hub, store_url=url, extra=node_config(n)) for n in "ab")
    await _stream_ready(hub, [a, b])
    _hub_down(hub, [a, b])
    a.publish([(f"tele.{i % 5}", b"%d" % i) for i in range(count)])
    hub.start()
    nc = await nats.connect(hub.url)
    js = nc.jetstream()
    try:

        async def stored() -> int:
            return (await js.stream_info("TELE")).state.messages

        await apoll_async(stored, lambda n: n > 0, timeout=60, what="a's replay under way")
        for _attempt in range(20):
            store = a.store.proc
            store.send_signal(signal.SIGSTOP)
            try:
                status = poll(
                    a.buffer,
                    lambda buf: int(buf["sent"]) > int(buf["acked"]),  # type: ignore[call-overload]
                    timeout=1.5,
                    what="a batch confirmed and not acked",
                )
            except AssertionError:
                store.send_signal(signal.SIGCONT)
                progress = await stored()
                assert progress < count, "a's replay finished before a batch was caught"
                await apoll_async(
                    stored, partial(operator.lt, progress), timeout=30, what="more replay"
                )
                continue
            break
        else:
            pytest.fail("never caught a confirmed batch before its ack")
        sent_by_a = int(status["sent"])  # type: ignore[call-overload]
        a.kill_all()  # the frozen store dies with the ack it never wrote
        pending = len(_pending_ids(url, "a"))
        assert sent_by_a + pending > count  # some of the pending ones reached the hub already

        await apoll_async(stored, lambda n: n >= count, timeout=120, what="the whole backlog")
        # b sent everything that was pending, the copies included.
        await apoll_async(
            lambda: _async(hub.leaf_in_msgs()),
            lambda n: n >= pending,
            timeout=60,
            what="b sent a's pending backlog",
        )
        info = await js.stream_info("TELE")
        assert info.state.messages == count  # the copies were dropped as duplicates
        payloads = [p for p, _id in await _stored(js)]
    finally:
        await nc.close()
    assert payloads == [b"%d" % i for i in range(count)]


async def _async(value: int) -> int:
    return value


def _central(http: httpx.Client, path: str) -> dict[str, object]:
    remotes = http.get(path).json()["remotes"]
    (entry,) = [r for r in remotes if r["name"] == "central"]
    assert isinstance(entry, dict)
    return entry


def _all_messages(http: httpx.Client) -> list[dict[str, object]]:
    """Every page of ``/buffer/messages`` (7 a page, so pages cross backlogs)."""
    out: list[dict[str, object]] = []
    after = 0
    while True:
        page = http.get(
            "/buffer/messages", params={"remote": "central", "limit": 7, "after": after}
        ).json()
        out += page["messages"]
        assert page["next"] >= after
        after = page["next"]
        if not page["more"]:
            return out


async def test_the_api_lists_purges_pauses_and_redrives_the_backlogs_a_node_took_over(
    sites: Sites, pg_cluster: PgCluster
) -> None:
    """Every call of the api does what it says for every backlog the node holds."""
    url = pg_cluster.create_database()
    hub = sites.hub()
    hub.stop()  # everything stays buffered until the end
    buffer = 'subjects: ["tele.>"], retain: "1h"'
    a, b = (sites.site(hub, store_url=url, buffer=buffer, extra=node_config(n)) for n in "ab")
    api = ApiProcess(b.conf, b.run_dir, workdir=b.base / "api")
    collector: HubCollector | None = None
    try:
        api.wait_ready()
        http = httpx.Client(base_url=api.base_url, timeout=15)
        kinds = ("k", "p")
        a.publish([(f"tele.{kinds[i % 2]}", b"a%d" % i) for i in range(40)])
        b.publish([(f"tele.{kinds[i % 2]}", b"b%d" % i) for i in range(10)])
        a.kill_all()
        # The store lists a takeover as soon as it is claimed; the uplink
        # starts its drain a moment later, and only then has the entry a
        # state (null before: "the uplink did not say"). The pause below
        # expects the drain.
        poll(
            lambda: _central(http, "/buffer")["held"],
            lambda held: bool(held) and held[0]["state"] is not None,  # type: ignore[index]
            timeout=TAKEOVER_S + 30,
            what="b's /buffer lists a's backlog, drained by b's uplink",
        )
        # Messages: both backlogs, each message naming its own, in seq order.
        listed = _all_messages(http)
        payloads = {base64.b64decode(str(m["payload"])): m for m in listed}
        assert sorted(payloads) == sorted(
            [b"a%d" % i for i in range(40)] + [b"b%d" % i for i in range(10)]
        )
        assert {str(m["backlog_id"]) for p, m in payloads.items() if p.startswith(b"a")} == {"a"}
        assert {str(m["backlog_id"]) for p, m in payloads.items() if p.startswith(b"b")} == {"b"}
        seqs = [int(str(m["seq"])) for m in listed]
        assert seqs == sorted(set(seqs))
        ids = _pending_ids(url, "a")
        assert all(payloads[p]["msg_id"] == i for p, i in ids.items())  # what the hub will get
        # Purge: half of each backlog, counted per backlog, and the counts follow.
        purged = http.delete("/buffer", params={"remote": "central", "subject": "tele.p"})
        assert purged.status_code == 200, purged.text
        assert purged.json() == {"purged": 25, "backlogs": {"b": 5, "a": 20}}
        entry = _central(http, "/buffer")
        assert entry["backlog"]["msgs"] == 5  # type: ignore[index]
        assert entry["held"][0]["msgs"] == 20  # type: ignore[index]
        assert len(_all_messages(http)) == 25
        # Pause and resume: the answer shows the drain of a's backlog too.
        paused = http.post("/replay", json={"action": "pause", "remote": "central"}).json()
        (held,) = paused["remotes"][0]["held"]
        assert (held["backlog"], held["paused"], held["state"]) == ("a", True, "paused")
        resumed = http.post("/replay", json={"action": "resume", "remote": "central"}).json()
        assert resumed["remotes"][0]["held"][0]["paused"] is False
        # The hub back: b drains both (each message once), kept as retained.
        hub.start()
        collector = HubCollector(hub.proc.port)
        want = sorted([b"a%d" % i for i in range(0, 40, 2)] + [b"b%d" % i for i in range(0, 10, 2)])
        poll(collector.snapshot, lambda got: len(got) >= 25, timeout=60, what="25 at the hub")
        poll(
            lambda: _central(http, "/buffer"),
            lambda e: e["backlog"]["msgs"] == 0 and e["held"][0]["msgs"] == 0,  # type: ignore[index]
            timeout=30,
            what="both backlogs acked",
        )
        assert sorted(collector.snapshot()) == want
        # Redrive: the retained messages of both backlogs go again.
        redriven = http.post("/replay", json={"action": "redrive", "remote": "central"})
        assert redriven.status_code == 200, redriven.text
        assert redriven.json() == {
            "action": "redrive",
            "redriven": 25,
            "remotes": {"central": 25},
            "backlogs": {"b": 5, "a": 20},
        }
        poll(collector.snapshot, lambda got: len(got) >= 50, timeout=60, what="50 at the hub")
        assert sorted(collector.snapshot()) == sorted(want * 2)
    finally:
        if collector is not None:
            collector.close()
        api.kill()


async def test_a_restarted_store_says_it_waits_for_its_lease_not_that_it_is_lost(
    sites: Sites, pg_cluster: PgCluster
) -> None:
    """For the self grace after a store restart the node's own backlog is not held
    yet: the drain, /replay, /buffer and /healthz say so ("waiting"), no outage."""
    url = pg_cluster.create_database()
    hub = sites.hub()
    a = sites.site(hub, store_url=url, extra=node_config("a", 120))
    api = ApiProcess(a.conf, a.run_dir, workdir=a.base / "api")
    stop = threading.Event()
    collector = HubCollector(hub.proc.port)
    pg = url.replace("postgresql+psycopg://", "postgresql://")

    def keep_the_old_lease_fresh() -> None:
        # As the old store process would, were it still alive: the new one waits.
        with psycopg.connect(pg, autocommit=True) as conn:
            while not stop.wait(0.2):
                conn.execute(
                    "UPDATE buffer_leases SET renewed_at_us ="
                    " CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)"
                    " WHERE backlog = 'a'"
                )

    bumper = threading.Thread(target=keep_the_old_lease_fresh, daemon=True)
    try:
        api.wait_ready()
        http = httpx.Client(base_url=api.base_url, timeout=15)
        a.wait_ready_link()
        a.store.kill()
        bumper.start()
        a.store = a._new_store()
        # The store answers, its own backlog waits for the lease: new messages
        # are stored and wait with it.
        a.publish([(f"tele.{i}", b"%d" % i) for i in range(20)])
        status = poll(
            a.buffer,
            lambda buf: buf["state"] == "waiting_for_lease",
            timeout=20,
            what="the drain waits for the lease",
        )
        assert (status["store_connected"], status["store_error"]) == (True, None)
        healthz = http.get("/healthz")
        assert healthz.status_code == 200, healthz.text
        assert healthz.json()["services"]["store"]["status"] == "ok"
        entry = _central(http, "/healthz")
        assert (entry["backlog_id"], entry["backlog_lease"]) == ("a", "waiting")
        assert _central(http, "/buffer")["backlog_lease"] == "waiting"
        assert _central(http, "/replay")["state"] == "waiting_for_lease"
        refused = http.delete("/buffer", params={"remote": "central"})
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "not_held"
        assert collector.snapshot() == []
        stop.set()
        bumper.join(10)
        # The old lease expires: the store holds the backlog, the drain sends it.
        poll(collector.snapshot, lambda got: len(got) == 20, timeout=30, what="20 at the hub")
        poll(
            lambda: _central(http, "/healthz")["backlog_lease"],
            lambda lease: lease == "held",
            what="the lease held",
        )
        assert a.buffer()["state"] != "waiting_for_lease"
        # Waiting is no outage: the uplink logged no store loss for it.
        logs = a.uplink.log_text()
        assert "not held" not in "\n".join(
            line for line in logs.splitlines() if "store unavailable" in line
        )
        assert "waiting for the lease" in logs
    finally:
        stop.set()
        collector.close()
        api.kill()


async def test_a_purge_of_a_taken_over_backlog_while_it_drains_acks_nothing_unsent(
    sites: Sites, pg_cluster: PgCluster
) -> None:
    """b drains a's backlog; the operator pauses mid-drain (batches already read
    stay in b's drain), purges one subject of it, and resumes. Every message
    not purged reaches the hub, and each row of a's backlog left it exactly
    once: acked by the drain or purged (the counts add up to what a stored)."""
    count = 40_000
    url = pg_cluster.create_database()
    hub = sites.hub()
    hub.stop()
    buffer = 'subjects: ["tele.>", "other.>"]'
    a, b = (sites.site(hub, store_url=url, buffer=buffer, extra=node_config(n)) for n in "ab")
    api = ApiProcess(b.conf, b.run_dir, workdir=b.base / "api")
    collector: HubCollector | None = None
    try:
        api.wait_ready()
        http = httpx.Client(base_url=api.base_url, timeout=15)
        a.publish([("tele.k" if i % 2 else "tele.p", b"%d" % i) for i in range(count)])
        a.publish([("other.x", b"nobody wants it")])  # keeps a's backlog (and its drain) alive
        a.kill_all()
        poll(lambda: _held(b), operator.truth, timeout=TAKEOVER_S + 30, what="b takes a's backlog")
        hub.start()
        collector = HubCollector(hub.proc.port)
        poll(collector.snapshot, operator.truth, timeout=60, what="a's backlog draining")
        assert http.post("/replay", json={"action": "pause"}).status_code == 200
        purged = http.delete("/buffer", params={"subject": "tele.p"})
        assert purged.status_code == 200, purged.text
        purged_a = purged.json()["backlogs"]["a"]
        assert http.post("/replay", json={"action": "resume"}).status_code == 200
        wanted = {b"%d" % i for i in range(1, count, 2)}
        poll(
            collector.snapshot,
            lambda got: wanted <= set(got),
            timeout=90,
            what="every message not purged at the hub",
        )

        def drain_of_a() -> dict[str, object]:
            (drain,) = [d for d in _held(b) if d["backlog"] == "a"]
            return drain

        drain = poll(
            drain_of_a,
            lambda d: d["remaining"] == 1 and not d["draining"],
            timeout=30,
            what="a's backlog down to the message nobody wants",
        )
        assert int(drain["acked"]) + purged_a == count  # type: ignore[call-overload]
        assert _central(http, "/buffer")["held"][0]["msgs"] == 1  # type: ignore[index]
        assert len(_pending_ids(url, "a")) == 1
        arrived = collections.Counter(collector.snapshot())
        assert max(arrived[p] for p in wanted) == 1  # each once
    finally:
        if collector is not None:
            collector.close()
        api.kill()
