"""PostgreSQL advisory locks that serialise the start-up steps of nodes sharing a store.

Nodes of a redundant site (DESIGN §9) share one PostgreSQL ``store.url``
and start together (docker-compose.cluster.yml starts three at once). Their
start-up steps are read-then-write sequences that two nodes can interleave:

* ``alembic upgrade head`` (``leafnode migrate`` run on every node): both
  find no ``alembic_version`` and both create the tables; the second fails
  with SQLSTATE 23505 (``pg_type``'s unique index) or 42P07.
* ``StoreService.open``: both find no ``leaf_id`` and each inserts its own
  (23505 for the second; without the constraint they would disagree on the
  store's ``Nats-Msg-Id`` prefix); the same for ``last_seq``; a node's first
  lease row; the adoption of rows and drop counters of a store from before
  nodes, which must go to exactly one node.

Each such step runs in one transaction that first takes a
*transaction-scoped* advisory lock (``pg_advisory_xact_lock``): the nodes
take turns, and each sees what the previous one committed (READ COMMITTED
takes a new snapshot per statement, after the lock). The lock is released
at commit or rollback, and by the server when a node's connection dies, so
a killed node never leaves it held. SQLite needs none: one store process
owns the file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from sqlalchemy import text

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = ["MIGRATE_LOCK", "START_LOCK", "lock"]

# Advisory lock keys share one bigint space per database with any other
# application's: fixed, unlikely values ("leaf" in ASCII, then a number).
MIGRATE_LOCK: Final = 0x6C656166_00000001
START_LOCK: Final = 0x6C656166_00000002

_LOCK: Final = text("SELECT pg_advisory_xact_lock(:key)")


def lock(conn: Connection, key: int) -> None:
    """Wait for the advisory lock ``key`` until ``conn``'s transaction ends (PostgreSQL only)."""
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK, {"key": key})
