"""Who dials a route again after two nodes' dials collided: services/router/cluster.py's decisions.

Two nodes A and B dial each other at the same instant through gossip
(implicit routes, dialed once). Each places the route it dialed, then the
other's arrives for the same slot and is closed as a duplicate; each node's
kept route is the one the other just closed. Before the fix nobody dialed
again (an implicit route never was) and the two nodes had no route. Now
each side's kept route is dialed again once lost, the node with the smaller
server id first; and when the kept route is one we *accepted* while we had
dialed the duplicate, the kept one takes the duplicate's URL (nats-server's
handleDuplicateRoute), so it is dialed again too.

Real ``Cluster`` and ``RouteConnection`` objects, the first INFOs given by
hand (the socket tests are tests/e2e/test_cluster_route_collisions.py).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING

import trio.testing

from leafnode.config import ClusterSettings, RouterSettings
from leafnode.link import Flusher
from leafnode.proto import RouteInfo
from services.router.cluster import ROUTE_DEFER_S, ROUTE_JITTER_S, Cluster
from services.router.route_conn import RouteConnection

if TYPE_CHECKING:
    from services.router.interfaces import ClusterServer

A_ID, B_ID = "NAAAA", "NBBBB"
URL_OF = {A_ID: "nats-route://127.0.0.1:1001/", B_ID: "nats-route://127.0.0.1:1002/"}


def _node(server_id: str, pool_size: int = 3) -> Cluster:
    server = SimpleNamespace(
        server_id=server_id,
        server_name=server_id,
        settings=RouterSettings(host="127.0.0.1"),
        flusher=Flusher(),
        accounts={},
        accounts_by_bytes={},
        port=4222,
        has_remotes=False,
        cluster_urls_changed=lambda: None,
    )
    cluster_server: ClusterServer = server
    return Cluster(cluster_server, ClusterSettings(name="C", pool_size=pool_size))


def _conn(node: Cluster, *, dial: str | None, implicit: bool = True) -> RouteConnection:
    stream, _ = trio.testing.memory_stream_pair()
    conn = RouteConnection(node, stream, 1, "127.0.0.1", 1, url=dial, implicit=implicit)
    conn.got_connect = True
    return conn


def _info(server_id: str, pool_idx: int = 0) -> RouteInfo:
    return RouteInfo(server_id=server_id, cluster="C", route_pool_size=3, route_pool_idx=pool_idx)


def _first_info(node: Cluster, conn: RouteConnection, peer_id: str, pool_idx: int = 0) -> None:
    info = _info(peer_id, pool_idx)
    conn.info, conn.remote_id = info, peer_id
    node.first_info(conn, info)


def _lose(node: Cluster, conn: RouteConnection) -> None:
    """The route closed (the end of ``Cluster._run``, without its redial task)."""
    conn.close("Client Closed")
    node.unregister(conn)


def _collide(node: Cluster, peer_id: str, *, own_first: bool) -> tuple[RouteConnection, ...]:
    """Our dial and the peer's, for slot 0; returns (kept, duplicate).

    With a pool, a route we dial takes any free slot, so the duplicate is
    the peer's (its INFO names the slot ours took): ``own_first``. Without
    one (``pool_size: -1``, or a pre-2.10 peer) either may come first.
    """
    dialed = _conn(node, dial=URL_OF[peer_id])
    accepted = _conn(node, dial=None)
    order = [(dialed, True), (accepted, False)]
    for conn, _ in order if own_first else reversed(order):
        _first_info(node, conn, peer_id)
    kept, dup = (dialed, accepted) if own_first else (accepted, dialed)
    assert node.peers[peer_id].slots[0] is kept
    assert dup.link.closing
    assert dup.link.reason == "Duplicate Route"
    return kept, dup


def test_each_side_dials_its_kept_route_again_after_an_implicit_collision() -> None:
    a, b = _node(A_ID), _node(B_ID)
    a_kept, a_dup = _collide(a, B_ID, own_first=True)
    b_kept, b_dup = _collide(b, A_ID, own_first=True)
    assert a.redial_plan(a_dup) is None  # a duplicate is never dialed again
    assert b.redial_plan(b_dup) is None
    # Each side's kept route is the duplicate the other closed: both are lost.
    _lose(a, a_kept)
    _lose(b, b_kept)
    assert not a.peers
    assert not b.peers
    plan_a, plan_b = a.redial_plan(a_kept), b.redial_plan(b_kept)
    assert plan_a is not None
    assert plan_b is not None
    assert plan_a[:2] == (URL_OF[B_ID], False)
    assert plan_b[:2] == (URL_OF[A_ID], False)
    # The smaller server id dials first, the other once it would find the pool full.
    assert plan_a[2] < ROUTE_JITTER_S <= ROUTE_DEFER_S <= plan_b[2]


def test_a_kept_accepted_route_takes_the_url_of_our_duplicate() -> None:
    """No pool: the peer's route came first, ours is the duplicate."""
    a = _node(A_ID, pool_size=-1)
    kept, dup = _collide(a, B_ID, own_first=False)
    assert kept.url is None
    assert kept.redial_url == URL_OF[B_ID]
    _lose(a, kept)
    plan = a.redial_plan(kept)
    assert plan is not None
    assert plan[:2] == (URL_OF[B_ID], False)
    assert a.redial_plan(dup) is None


def test_an_explicit_duplicate_makes_the_kept_route_explicit() -> None:
    a = _node(A_ID)
    gossiped = _conn(a, dial="nats-route://10.0.0.2:1002/", implicit=True)
    _first_info(a, gossiped, B_ID)
    configured = _conn(a, dial=URL_OF[B_ID], implicit=False)
    # A second route we dial picks the pool's next free slot: place it in a full pool.
    for idx in (1, 2):
        _first_info(a, _conn(a, dial=None), B_ID, idx)
    _first_info(a, configured, B_ID)
    assert configured.link.reason == "Duplicate Route"
    assert (gossiped.redial_url, gossiped.redial_explicit) == (URL_OF[B_ID], True)


def test_a_pool_we_dialed_is_ours_to_refill_even_at_a_slot_we_accepted() -> None:
    a = _node(A_ID)
    dialed = _conn(a, dial=URL_OF[B_ID])
    _first_info(a, dialed, B_ID)
    accepted = _conn(a, dial=None)
    _first_info(a, accepted, B_ID, 1)
    assert a.peers[B_ID].slots[1] is accepted
    _lose(a, accepted)
    assert a.has_free_slot(B_ID)
    plan = a.redial_plan(accepted)
    assert plan is not None
    assert plan[0] == URL_OF[B_ID]


def test_a_route_we_neither_dialed_nor_were_left_a_url_for_is_not_dialed() -> None:
    a = _node(A_ID)
    accepted = _conn(a, dial=None)
    _first_info(a, accepted, B_ID)
    _lose(a, accepted)
    assert a.redial_plan(accepted) is None


def test_an_implicit_route_the_peer_refused_is_not_dialed_again() -> None:
    a = _node(A_ID)
    dialed = _conn(a, dial=URL_OF[B_ID])
    _first_info(a, dialed, B_ID)
    dialed.data_received(b"-ERR 'Authorization Violation'\r\n")
    _lose(a, dialed)
    assert a.redial_plan(dialed) is None
    explicit = _conn(a, dial=URL_OF[B_ID], implicit=False)
    _first_info(a, explicit, B_ID)
    explicit.data_received(b"-ERR 'Authorization Violation'\r\n")
    _lose(a, explicit)
    plan = a.redial_plan(explicit)
    assert plan is not None
    assert plan[:2] == (URL_OF[B_ID], True)  # an explicit one: each second, as before
