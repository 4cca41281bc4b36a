"""Two nodes that dial each other at once end with one full pool, and a lost route comes back.

Issue 14's duplicate-route gap (services/router/cluster.py, "Lost routes and
duplicates"). Every route between the two nodes passes a ``RouteGate``, so
the test sees each route connection (its pool index) and can cut one.

- Both nodes list each other, and the gates let the first two dials go only
  together: each node has placed the route it dialed before the other's
  arrives for the same slot, so each closes the other's as a duplicate, the
  collision that left a site partitioned. Afterwards the pair has exactly
  one full pool (pool size routes, open and stable), each pool index
  carries its accounts both ways; on two leafnode nodes and on a leafnode
  node with a nats-server 2.15 node. Three rounds, fresh processes each.
- A single route of a full pool that is lost (the gate closes it) is dialed
  again by the leafnode node that dialed the pool (it alone lists the
  other), so the accounts at its pool index cross again: before the fix,
  only a pool's first route was ever dialed again.

Accounts ``A``, ``C`` and ``ACC1`` are at pool indexes 0, 1 and 2 of a pool
of 3 (nats-server's FNV-1a of the name, ``route_pool_index``).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import nats
import pytest
import pytest_asyncio

from leafnode.proto import route_pool_index
from tests.conftest import wait_until
from tests.support import GatePair, NatsServerProcess, RouteGate, RouterProcess, free_port

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from nats.aio.msg import Msg

pytestmark = [pytest.mark.e2e]

POOL = 3
ACCOUNTS = {"A": 0, "C": 1, "ACC1": 2}
ROUNDS = 3
KINDS = {
    "leafnode-x2": ("leafnode", "leafnode"),
    "mixed-2.15": ("leafnode", "nats-server"),
}

_ACCOUNTS_CONF = (
    "accounts {\n"
    + "".join(f"  {a}: {{ users: [ {{ user: {a.lower()}, password: pw }} ] }}\n" for a in ACCOUNTS)
    + "}\n"
)


def test_the_accounts_cover_every_pool_index() -> None:
    assert {a: route_pool_index(POOL, a) for a in ACCOUNTS} == ACCOUNTS


class Pair:
    """Two nodes, each listing the other through a gate (module doc).

    ``one_way``: only node 0 lists node 1, so node 0 dials every route.
    """

    def __init__(
        self, kinds: tuple[str, str], workdir: Path, *, collide: bool, one_way: bool = False
    ) -> None:
        self.kinds = kinds
        self.one_way = one_way
        self.workdir = workdir
        self.route_ports = [free_port(), free_port()]
        self.gate_pair = GatePair()
        pair = self.gate_pair if collide else None
        # gates[i] leads to node i.
        self.gates = [RouteGate(port, pair) for port in self.route_ports]
        self.procs: list[RouterProcess | NatsServerProcess] = []

    async def start(self) -> None:
        for gate in self.gates:
            await gate.start()
        for i, kind in enumerate(self.kinds):
            other = self.gates[1 - i]
            routes = "" if self.one_way and i else f'"{other.url}"'
            text = (
                f"server_name: n{i}\n{_ACCOUNTS_CONF}"
                f'cluster {{ name: C, listen: "127.0.0.1:{self.route_ports[i]}",'
                f" routes: [{routes}] }}\n"
            )
            node_dir = self.workdir / f"n{i}"
            if kind == "nats-server":
                self.procs.append(NatsServerProcess(text, workdir=node_dir))
            else:
                self.procs.append(RouterProcess(text, workdir=node_dir))
        for proc in self.procs:
            await asyncio.to_thread(proc.wait_ready, 60)

    async def stop(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(Exception):
                proc.kill()
        for gate in self.gates:
            await gate.close()

    def pooled_links(self) -> list[int | None]:
        return sorted(
            (link.pool_idx for g in self.gates for link in g.open_links() if not link.account),
            key=lambda idx: -1 if idx is None else idx,
        )

    async def account_crosses(self, account: str, timeout: float = 30.0) -> None:
        """Until a message on ``account`` goes from each node to the other."""
        user = account.lower()
        conns = [
            await nats.connect(f"nats://{user}:pw@127.0.0.1:{proc.port}") for proc in self.procs
        ]
        try:
            seen: set[tuple[int, int]] = set()
            for j, nc in enumerate(conns):

                async def got(msg: Msg, receiver: int = j) -> None:
                    seen.add((int(msg.data), receiver))

                await nc.subscribe("probe", cb=got)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while not {(0, 1), (1, 0)} <= seen:
                if loop.time() > deadline:
                    raise AssertionError(f"account {account} does not cross: {sorted(seen)}")
                for j, nc in enumerate(conns):
                    await nc.publish("probe", str(j).encode())
                await asyncio.sleep(0.1)
        finally:
            for nc in conns:
                await nc.close()


@pytest_asyncio.fixture
async def pair_factory(tmp_path: Path) -> AsyncIterator[list[Pair]]:
    pairs: list[Pair] = []
    yield pairs
    for pair in pairs:
        await pair.stop()


async def _one_full_pool(pair: Pair) -> None:
    """Exactly one route per pool index, still so a moment later, each carrying its accounts."""

    def full() -> bool:
        return pair.pooled_links() == list(range(POOL))

    await wait_until(full, timeout=30, what=f"one full pool, got {pair.pooled_links()}")
    for account in ACCOUNTS:
        await pair.account_crosses(account)
    # Still one full pool once every account crossed: no late redial added a route.
    assert pair.pooled_links() == list(range(POOL))


@pytest.mark.asyncio
@pytest.mark.parametrize("kinds", sorted(KINDS))
async def test_dials_that_collide_end_in_one_full_pool(
    kinds: str, tmp_path: Path, pair_factory: list[Pair]
) -> None:
    for round_ in range(ROUNDS):
        pair = Pair(KINDS[kinds], tmp_path / f"r{round_}", collide=True)
        pair_factory.append(pair)
        await pair.start()
        await wait_until(
            pair.gate_pair.release.is_set, timeout=30, what="both first dials held together"
        )
        await _one_full_pool(pair)
        await pair.stop()


@pytest.mark.asyncio
@pytest.mark.parametrize("kinds", sorted(KINDS))
@pytest.mark.parametrize("lost", [1, 2])
async def test_a_lost_route_of_a_full_pool_is_dialed_again(
    kinds: str, lost: int, tmp_path: Path, pair_factory: list[Pair]
) -> None:
    pair = Pair(KINDS[kinds], tmp_path, collide=False, one_way=True)
    pair_factory.append(pair)
    await pair.start()
    await _one_full_pool(pair)
    assert sum(gate.cut(lost) for gate in pair.gates) == 1
    await _one_full_pool(pair)
