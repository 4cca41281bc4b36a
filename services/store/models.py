"""The durable buffer's tables, as SQLAlchemy Core ``Table`` objects.

The same tables serve SQLite and PostgreSQL; migrations in ``migrations/``
create exactly this schema (``alembic check`` compares them).

Core, not declarative ORM models (STYLE §3.6 asks for those): the store runs
every statement on a ``Connection`` and never loads an ORM object, and
``sqlalchemy.orm`` alone is ~6 MB of the store's private memory and ~0.1 s
of its start (issue 16, ``bench/site_bench``). Columns keep the types the
declarative type map gave them: ``str`` is ``TEXT``, ``bytes`` ``BLOB``/
``BYTEA``, ``int`` ``BIGINT``, and a column is ``NOT NULL`` unless it says
``nullable=True``.

``buffered_messages`` holds every message on a buffered subject until its
remote's uplink acked it (then it is deleted, or kept as *retained* with
``acked_at_us`` set while the remote's ``retain`` period lasts). ``seq`` is
assigned by the store process (the only writer, DESIGN §2) from
``store_meta.last_seq``, so a seq is never handed out twice even after every
row was deleted. One composite index ``(node, remote, acked_at_us, seq)``
serves the hot paths: reading a backlog's pending rows of a remote in seq
order (``acked_at_us IS NULL``), acking a seq range, expiring the oldest
pending rows, and purging retained rows by ack time.

``node`` names the *backlog* a row belongs to (DESIGN §9): ``""`` on SQLite
(one node per file), the appending node's backlog id on PostgreSQL, where
several nodes share the tables. ``buffer_leases`` says which node drains
each backlog (``leases.py``).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = ["buffer_drops", "buffer_leases", "buffered_messages", "metadata", "store_meta"]

# alembic's recommended names (docs/build/naming.rst), so constraints have
# stable names on every backend and migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite makes only ``INTEGER PRIMARY KEY`` the rowid; ``BIGINT PRIMARY KEY``
# would add a second b-tree to every insert. Postgres gets a real BIGINT.
SeqType = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(naming_convention=NAMING_CONVENTION)


# One buffered message (DESIGN §3.3, §4).
buffered_messages = Table(
    "buffered_messages",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=False),
    # The backlog (see the module doc); "" for a node's only backlog on SQLite.
    Column("node", String(255), nullable=False, server_default=""),
    Column("remote", String(255), nullable=False),
    Column("subject", Text(), nullable=False),
    Column("reply", Text(), nullable=True),
    # The NATS header block as the client sent it; NULL when it sent none.
    Column("headers", LargeBinary(), nullable=True),
    Column("payload", LargeBinary(), nullable=False),
    # Microseconds since the Unix epoch: exact, and compared cheaply in SQL.
    Column("received_at_us", BigInteger(), nullable=False),
    Column("acked_at_us", BigInteger(), nullable=True),
    # Local queue groups that already got it, space separated (queue names
    # cannot contain whitespace); NULL for none.
    Column("queues", Text(), nullable=True),
    # subject + reply + headers + payload: what max_bytes counts.
    Column("size", Integer(), nullable=False),
    Index(None, "node", "remote", "acked_at_us", "seq"),
)

# Key/value facts about this store: ``leaf_id``, ``last_seq``, ``schema_version``.
store_meta = Table(
    "store_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text(), nullable=False),
)

# Messages dropped per remote and reason, kept across restarts (DESIGN §4).
buffer_drops = Table(
    "buffer_drops",
    metadata,
    # The node that dropped them (a shared PostgreSQL store; "" on SQLite).
    Column("node", String(255), primary_key=True, server_default=""),
    Column("remote", String(255), primary_key=True),
    Column("reason", String(32), primary_key=True),
    Column("count", BigInteger(), nullable=False),
)

# Who drains one backlog on a shared PostgreSQL store (DESIGN §9, ``leases.py``).
# ``holder`` and ``instance`` (one store process's random token) hold it
# until ``renewed_at_us`` (the database's clock) is older than the takeover
# grace; every claim bumps ``epoch``, which acks check (fencing). ``holder``
# "" is a released lease (its backlog was empty).
buffer_leases = Table(
    "buffer_leases",
    metadata,
    Column("backlog", String(255), primary_key=True),
    # The node that appends to it (its name; a backlog id is node[#generation]).
    Column("node", String(255), nullable=False),
    Column("generation", BigInteger(), nullable=False),
    Column("holder", String(255), nullable=False),
    Column("instance", String(32), nullable=False),
    Column("epoch", BigInteger(), nullable=False),
    Column("renewed_at_us", BigInteger(), nullable=False),
    Column("claimed_at_us", BigInteger(), nullable=False),
)
