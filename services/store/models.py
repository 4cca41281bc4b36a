"""Typed SQLAlchemy 2 models of the durable buffer (STYLE §3.6).

The same models serve SQLite and PostgreSQL; migrations in ``migrations/``
create exactly this schema (``alembic check`` compares them).

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

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "BufferDrop", "BufferLease", "BufferedMessage", "StoreMeta"]

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


class Base(DeclarativeBase):
    """Declarative base with the naming convention and Python -> SQL type map."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {bytes: LargeBinary(), str: Text(), int: BigInteger()}


class BufferedMessage(Base):
    """One buffered message (DESIGN §3.3, §4)."""

    __tablename__ = "buffered_messages"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=False)
    # The backlog (see the module doc); "" for a node's only backlog on SQLite.
    node: Mapped[str] = mapped_column(String(255), server_default="")
    remote: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str]
    reply: Mapped[str | None]
    # The NATS header block as the client sent it; NULL when it sent none.
    headers: Mapped[bytes | None]
    payload: Mapped[bytes]
    # Microseconds since the Unix epoch: exact, and compared cheaply in SQL.
    received_at_us: Mapped[int]
    acked_at_us: Mapped[int | None]
    # Local queue groups that already got it, space separated (queue names
    # cannot contain whitespace); NULL for none.
    queues: Mapped[str | None]
    # subject + reply + headers + payload: what max_bytes counts.
    size: Mapped[int] = mapped_column(Integer())

    __table_args__ = (Index(None, "node", "remote", "acked_at_us", "seq"),)


class StoreMeta(Base):
    """Key/value facts about this store: ``leaf_id``, ``last_seq``, ``schema_version``."""

    __tablename__ = "store_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str]


class BufferDrop(Base):
    """Messages dropped per remote and reason, kept across restarts (DESIGN §4)."""

    __tablename__ = "buffer_drops"

    # The node that dropped them (a shared PostgreSQL store; "" on SQLite).
    node: Mapped[str] = mapped_column(String(255), primary_key=True, server_default="")
    remote: Mapped[str] = mapped_column(String(255), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32), primary_key=True)
    count: Mapped[int]


class BufferLease(Base):
    """Who drains one backlog on a shared PostgreSQL store (DESIGN §9, ``leases.py``).

    ``holder`` and ``instance`` (one store process's random token) hold it
    until ``renewed_at_us`` (the database's clock) is older than the
    takeover grace; every claim bumps ``epoch``, which acks check (fencing).
    ``holder`` "" is a released lease (its backlog was empty).
    """

    __tablename__ = "buffer_leases"

    backlog: Mapped[str] = mapped_column(String(255), primary_key=True)
    # The node that appends to it (its name; a backlog id is node[#generation]).
    node: Mapped[str] = mapped_column(String(255))
    generation: Mapped[int]
    holder: Mapped[str] = mapped_column(String(255))
    instance: Mapped[str] = mapped_column(String(32))
    epoch: Mapped[int]
    renewed_at_us: Mapped[int]
    claimed_at_us: Mapped[int]
