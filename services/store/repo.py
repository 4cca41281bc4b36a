"""Repository functions: one SQL concern each, ``*, conn`` in, never commit.

``service.py`` owns the transaction (STYLE §3.6): it begins one on a Core
``Connection`` (``engine.begin()``; STYLE's ``session``, without the ORM:
``models.py``), calls these, and commits once. Every function here runs in the DB worker thread.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Table,
    and_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler

from .models import buffer_drops, buffered_messages, store_meta

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

    from psycopg import Connection as PgConnection
    from sqlalchemy.engine import Connection, Dialect
    from sqlalchemy.sql import ClauseElement
    from sqlalchemy.sql.dml import ReturningDelete, ReturningUpdate

__all__ = [
    "INSERT_COLUMNS",
    "MessageFilter",
    "add_drops",
    "add_meta",
    "adopt_drops",
    "chunked",
    "delete_matching",
    "get_meta",
    "insert_messages",
    "load_drops",
    "max_seq",
    "oldest_pending",
    "oldest_pending_received",
    "raise_meta_seq",
    "read_rows",
    "remove_counted",
    "select_matching",
    "set_acked",
    "set_meta",
    "totals",
]

M = buffered_messages.c
# Keep IN lists well below SQLite's bound-parameter limit (32766) and
# Postgres' statement sizes; 500 seqs per statement is plenty.
SEQ_CHUNK: Final = 500
# Column order of the tuples ``insert_messages`` takes.
INSERT_COLUMNS: Final = (
    "seq",
    "node",
    "remote",
    "subject",
    "reply",
    "headers",
    "payload",
    "received_at_us",
    "acked_at_us",
    "queues",
    "size",
)
InsertRow = tuple[
    int, str, str, str, str | None, bytes | None, bytes, int, int | None, str | None, int
]
# What ``read_rows`` returns, straight from the driver: seq, remote, subject,
# reply, hdr_len, received_at_us, queues, acked_at_us (the read answer's row
# order, ``leafnode.ipc``), then headers, payload, size.
ReadRow = tuple[
    int, str, str, str | None, int, int, str | None, int | None, bytes | None, bytes, int
]

# PostgreSQL types of INSERT_COLUMNS, for binary COPY.
_PG_COPY_TYPES: Final = (
    "int8",
    "varchar",
    "varchar",
    "text",
    "text",
    "bytea",
    "bytea",
    "int8",
    "int8",
    "text",
    "int4",
)
_insert_cache: dict[tuple[str, str], tuple[str, bool]] = {}
# Rows per multi-row INSERT on SQLite: 500 binds, below even the 999 of
# SQLite builds before 3.32; longer statements measured no faster.
MULTI_ROWS: Final = 50
# one-row INSERT SQL -> its MULTI_ROWS form.
_multi_cache: dict[str, str] = {}
# (dialect, statement kind, filter shape) -> (driver SQL, positional bind
# order or None, default bind values); see ``_driver_rows``.
_sql_cache: dict[tuple[object, ...], tuple[str, tuple[str, ...] | None, dict[str, object]]] = {}


# The order of a remote's pending rows, for queries whose WHERE fixes
# ``node``, ``remote`` and ``acked_at_us IS NULL``: the full key of the
# (node, remote, acked_at_us, seq) index, which under those conditions is seq
# order. PostgreSQL does not count ``IS NULL`` as fixing a column, so with
# ``ORDER BY seq`` alone it sorts every pending row of the remote before the
# LIMIT (26 ms instead of 0.3 ms for 1000 rows of a 50k backlog); SQLite
# walks the index either way.
_PENDING_ORDER: Final = (M.node, M.remote, M.acked_at_us, M.seq)


class MessageFilter:
    """Conditions on buffered messages, turned into one SQL ``WHERE``.

    Args:
        node: only this backlog (``models``: "" on SQLite).
        remote: only this remote.
        pending: True = not acked, False = retained (acked), None = both.
        upto: seq <= upto.
        since_us / until_us: received_at bounds, inclusive.
        subject: an exact subject (wildcard patterns are matched in Python).
        seqs: only these seqs (at most ``SEQ_CHUNK``; see ``chunked``).
        acked_before_us: retained rows acked before this time.
    """

    __slots__ = (
        "acked_before_us",
        "node",
        "pending",
        "remote",
        "seqs",
        "since_us",
        "subject",
        "until_us",
        "upto",
    )

    def __init__(
        self,
        *,
        node: str | None = None,
        remote: str | None = None,
        pending: bool | None = None,
        upto: int | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
        subject: str | None = None,
        seqs: Sequence[int] | None = None,
        acked_before_us: int | None = None,
    ) -> None:
        self.node = node
        self.remote = remote
        self.seqs = seqs
        self.acked_before_us = acked_before_us
        self.pending = pending
        self.upto = upto
        self.since_us = since_us
        self.until_us = until_us
        self.subject = subject

    def where(self) -> ColumnElement[bool]:
        """The conditions as one SQL expression.

        Values are named binds (``f_<field>``), so a statement compiled once
        per ``shape()`` serves every filter of that shape (``_driver_rows``).
        """
        conds: list[ColumnElement[bool]] = []
        if self.node is not None:
            conds.append(M.node == bindparam("f_node", self.node))
        if self.remote is not None:
            conds.append(M.remote == bindparam("f_remote", self.remote))
        if self.pending is True:
            conds.append(M.acked_at_us.is_(None))
        elif self.pending is False:
            conds.append(M.acked_at_us.is_not(None))
        if self.upto is not None:
            conds.append(M.seq <= bindparam("f_upto", self.upto))
        if self.since_us is not None:
            conds.append(M.received_at_us >= bindparam("f_since_us", self.since_us))
        if self.until_us is not None:
            conds.append(M.received_at_us <= bindparam("f_until_us", self.until_us))
        if self.subject is not None:
            conds.append(M.subject == bindparam("f_subject", self.subject))
        if self.seqs is not None:
            conds.append(M.seq.in_(self.seqs))
        if self.acked_before_us is not None:
            conds.append(M.acked_at_us < bindparam("f_acked_before_us", self.acked_before_us))
        return and_(*conds) if conds else M.seq.is_not(None)

    def shape(self) -> tuple[object, ...] | None:
        """Which conditions are set (a cache key), or None with a ``seqs`` list.

        An ``IN`` list renders one bind per seq, so its SQL is not reusable.
        """
        if self.seqs is not None:
            return None
        return (
            self.node is not None,
            self.remote is not None,
            self.pending,
            self.upto is not None,
            self.since_us is not None,
            self.until_us is not None,
            self.subject is not None,
            self.acked_before_us is not None,
        )

    def params(self) -> dict[str, object]:
        """The bind values of ``where()`` by name (without ``seqs``)."""
        out: dict[str, object] = {}
        for name in _BOUND_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out["f_" + name] = value
        return out


_BOUND_FIELDS: Final = (
    "node",
    "remote",
    "upto",
    "since_us",
    "until_us",
    "subject",
    "acked_before_us",
)


def _driver_rows(
    conn: Connection,
    key: tuple[object, ...],
    build: Callable[[], ClauseElement],
    params: Mapping[str, object],
) -> list[tuple[object, ...]]:
    """Run a statement on the raw DBAPI cursor and return its tuples.

    The statement is compiled once per dialect and ``key`` (``build`` is
    called only then); the driver's tuples are returned as they come.
    SQLAlchemy's result rows and per-column processing cost about 2 us per
    row on a read (twice the driver's own fetch), which is what bounds the
    replay rate; our columns need no processing on either backend
    (integers, text and bytes come back as such from sqlite3 and psycopg 3).
    """
    dialect = conn.dialect
    ck = (dialect.name, dialect.paramstyle, *key)
    cached = _sql_cache.get(ck)
    if cached is None:
        compiled = build().compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        order = tuple(compiled.positiontup or ()) if dialect.positional else None
        cached = _sql_cache[ck] = (compiled.string, order, dict(compiled.construct_params() or {}))
    sql, order, defaults = cached
    values = {**defaults, **params}
    driver = conn.connection.driver_connection
    assert driver is not None  # a checked-out connection always has one
    cur = driver.cursor()
    try:
        with _driver_errors(sql, dialect):
            cur.execute(sql, tuple(values[n] for n in order) if order is not None else values)
            return list(cur.fetchall()) if cur.description is not None else []
    finally:
        cur.close()


@contextlib.contextmanager
def _driver_errors(sql: str, dialect: Dialect) -> Iterator[None]:
    """Raise the driver's own errors as SQLAlchemy would have: ``DBAPIError``.

    The raw-cursor paths (``_driver_rows``, the insert paths) bypass
    SQLAlchemy's translation; the server answers ``unavailable`` for a
    ``DBAPIError`` and ``health.describe`` reads its ``.orig``, while a bare
    driver error would end the store.
    """
    try:
        yield
    except dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(
            sql, None, exc, dialect.loaded_dbapi.Error, dialect=dialect
        ) from exc


# -- meta and drop counters -------------------------------------------------------


def get_meta(key: str, *, conn: Connection) -> str | None:
    """The value stored under ``key`` in ``store_meta``, or None."""
    return conn.scalar(select(store_meta.c.value).where(store_meta.c.key == key))


def set_meta(key: str, value: str, *, conn: Connection) -> None:
    """Insert or replace ``key`` in ``store_meta`` (the store is the only writer).

    Core statements built once on the table, not ORM ones: every append
    transaction stores ``last_seq`` here, and the ORM-enabled UPDATE cost
    about 0.8 ms each (0.8 us per message of a 1000-message append).
    """
    params = {"k": key, "v": value}
    if conn.execute(_META_UPDATE, params).rowcount == 0:
        conn.execute(_META_INSERT, params)


def add_meta(key: str, value: str, *, conn: Connection) -> str:
    """Insert ``key`` unless present (``ON CONFLICT DO NOTHING``); returns the stored value.

    Idempotent when nodes sharing a store race to create the same fact
    (``leaf_id``): the first insert wins, and every node reads it back.
    """
    if conn.dialect.name == "postgresql":
        # Imported here: a SQLite store never loads the PostgreSQL dialect (~2 MB).
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        pg_stmt = pg_insert(store_meta).values(key=key, value=value)
        conn.execute(pg_stmt.on_conflict_do_nothing(index_elements=[store_meta.c.key]))
    else:
        stmt = sqlite_insert(store_meta).values(key=key, value=value)
        conn.execute(stmt.on_conflict_do_nothing(index_elements=[store_meta.c.key]))
    stored = get_meta(key, conn=conn)
    if stored is None:
        raise RuntimeError(f"store_meta has no {key} after inserting it")
    return stored


def adopt_drops(node: str, *, conn: Connection) -> None:
    """Drop counters from before nodes (node "") become ``node``'s, once."""
    mine = select(buffer_drops.c.remote).where(buffer_drops.c.node == node).exists()
    conn.execute(
        update(buffer_drops).where(buffer_drops.c.node == "", ~mine).values(node=node),
    )


def raise_meta_seq(seq: int, *, conn: Connection) -> None:
    """Set ``last_seq`` to ``seq`` only if it is lower (a shared store: others reserve too)."""
    conn.execute(
        update(store_meta)
        .where(store_meta.c.key == "last_seq", cast(store_meta.c.value, BigInteger) < seq)
        .values(value=str(seq)),
    )


_META_TABLE: Final = store_meta
assert isinstance(_META_TABLE, Table)
_META_UPDATE: Final = (
    update(_META_TABLE).where(_META_TABLE.c.key == bindparam("k")).values(value=bindparam("v"))
)
_META_INSERT: Final = insert(_META_TABLE).values(key=bindparam("k"), value=bindparam("v"))


def load_drops(*, node: str = "", conn: Connection) -> dict[str, dict[str, int]]:
    """Every drop counter of ``node``, as ``{remote: {reason: count}}``."""
    out: dict[str, dict[str, int]] = {}
    for remote, reason, count in conn.execute(
        select(buffer_drops.c.remote, buffer_drops.c.reason, buffer_drops.c.count).where(
            buffer_drops.c.node == node
        )
    ):
        out.setdefault(remote, {})[reason] = count
    return out


def add_drops(delta: Mapping[tuple[str, str], int], *, node: str = "", conn: Connection) -> None:
    """Add ``delta[(remote, reason)]`` to ``node``'s persistent drop counters."""
    for (remote, reason), n in delta.items():
        done = conn.execute(
            update(buffer_drops)
            .where(
                buffer_drops.c.node == node,
                buffer_drops.c.remote == remote,
                buffer_drops.c.reason == reason,
            )
            .values(count=buffer_drops.c.count + n),
        )
        if done.rowcount == 0:
            conn.execute(
                insert(buffer_drops).values(node=node, remote=remote, reason=reason, count=n)
            )


# -- totals ------------------------------------------------------------------------


def max_seq(*, conn: Connection) -> int:
    """The highest seq present (0 for an empty table)."""
    return conn.scalar(select(func.max(M.seq))) or 0


def totals(flt: MessageFilter, *, conn: Connection) -> list[tuple[str, bool, int, int]]:
    """``(remote, pending, count, bytes)`` of the rows matching ``flt``."""
    pending = M.acked_at_us.is_(None)
    stmt = (
        select(M.remote, pending, func.count(), func.coalesce(func.sum(M.size), 0))
        .where(flt.where())
        .group_by(M.remote, pending)
    )
    return [(r, bool(p), int(n), int(b)) for r, p, n, b in conn.execute(stmt)]


def oldest_pending_received(remote: str, *, node: str, conn: Connection) -> int | None:
    """``received_at_us`` of the oldest pending message of ``remote`` in backlog ``node``."""
    stmt = (
        select(M.received_at_us)
        .where(M.node == node, M.remote == remote, M.acked_at_us.is_(None))
        .order_by(*_PENDING_ORDER)
        .limit(1)
    )
    return conn.scalar(stmt)


def oldest_pending(
    remote: str, *, node: str, after: int, limit: int, conn: Connection
) -> list[tuple[int, int, int]]:
    """``(seq, size, received_at_us)`` of the oldest pending rows after ``after``."""
    stmt = (
        select(M.seq, M.size, M.received_at_us)
        .where(M.node == node, M.remote == remote, M.acked_at_us.is_(None), M.seq > after)
        .order_by(*_PENDING_ORDER)
        .limit(limit)
    )
    return [(s, z, t) for s, z, t in conn.execute(stmt)]


# -- writes --------------------------------------------------------------------------


def _compiled_insert(dialect: Dialect) -> tuple[str, bool]:
    """The INSERT statement as driver SQL, and whether it takes tuples.

    Compiled once per dialect from the model's table: executing driver SQL
    with plain tuples skips SQLAlchemy's per-row parameter processing, which
    measured at about 40% of the append cost (120k vs 220k rows/s on SQLite).
    """
    key = (dialect.name, str(dialect.paramstyle))
    cached = _insert_cache.get(key)
    if cached is None:
        table = buffered_messages
        assert isinstance(table, Table)
        compiled = insert(table).compile(dialect=dialect, column_keys=list(INSERT_COLUMNS))
        positional = bool(dialect.positional) and list(compiled.positiontup or ()) == list(
            INSERT_COLUMNS
        )
        cached = _insert_cache[key] = (compiled.string, positional)
    return cached


def _multi_row(sql: str, n: int) -> str:
    """``sql`` (a one-row positional ``INSERT ... VALUES (...)``) for ``n`` rows."""
    head, sep, values = sql.rpartition(" VALUES ")
    assert sep, sql
    return head + sep + ", ".join([values] * n)


def insert_messages(rows: Sequence[InsertRow], *, conn: Connection) -> None:
    """Insert rows given as tuples in ``INSERT_COLUMNS`` order.

    On PostgreSQL with psycopg 3 one ``COPY FROM STDIN`` inside the same
    transaction: one statement for the whole batch rather than a
    Bind/Execute round per row (measured 3-4x faster).

    On SQLite (positional binds) multi-row ``INSERT ... VALUES (...), (...)``
    statements of ``MULTI_ROWS`` rows on the driver's cursor: sqlite3's
    ``executemany`` steps the statement once per row, dropping and taking
    the GIL each time, and the store's event loop holds the GIL while it
    decodes the next batch; one step per ``MULTI_ROWS`` rows measured
    25-35% less time per row. Other drivers get one executemany.
    """
    if not rows:
        return
    dialect = conn.dialect
    sql, positional = _compiled_insert(dialect)
    pg_copy = dialect.name == "postgresql" and dialect.driver == "psycopg"
    if not pg_copy and not positional:
        conn.exec_driver_sql(sql, [dict(zip(INSERT_COLUMNS, row, strict=True)) for row in rows])
        return
    driver = conn.connection.driver_connection
    assert driver is not None  # a checked-out connection always has one
    with _driver_errors(sql, dialect):
        if pg_copy:
            _copy_rows(driver, rows)
        else:
            _insert_multi(driver, sql, rows)


def _insert_multi(driver: Any, sql: str, rows: Sequence[InsertRow]) -> None:
    """``rows`` as ``MULTI_ROWS``-row INSERTs (and one shorter) on a driver cursor."""
    n = len(rows)
    full = n - n % MULTI_ROWS
    chain = itertools.chain.from_iterable
    cur = driver.cursor()
    try:
        if full:
            stmt = _multi_cache.get(sql)
            if stmt is None:
                stmt = _multi_cache[sql] = _multi_row(sql, MULTI_ROWS)
            for i in range(0, full, MULTI_ROWS):
                cur.execute(stmt, tuple(chain(rows[i : i + MULTI_ROWS])))
        if full < n:
            cur.execute(_multi_row(sql, n - full), tuple(chain(rows[full:])))
    finally:
        cur.close()


def _copy_rows(pg: PgConnection[tuple[object, ...]], rows: Sequence[InsertRow]) -> None:
    """``COPY buffered_messages FROM STDIN`` with psycopg 3's row writer."""
    columns = ", ".join(INSERT_COLUMNS)
    with (
        pg.cursor() as cur,
        cur.copy(f"COPY {buffered_messages.name} ({columns}) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        # Binary COPY sends bytea as is (text COPY would hex-escape every byte).
        copy.set_types(_PG_COPY_TYPES)
        write = copy.write_row
        for row in rows:
            write(row)


def delete_matching(flt: MessageFilter, *, conn: Connection) -> int:
    """Delete every row matching ``flt``; returns how many."""
    done = conn.execute(delete(buffered_messages).where(flt.where()))
    return int(done.rowcount)


def set_acked(flt: MessageFilter, acked_at_us: int | None, *, conn: Connection) -> int:
    """Set ``acked_at_us`` (None: pending again) on the rows matching ``flt``."""
    done = conn.execute(
        update(buffered_messages).where(flt.where()).values(acked_at_us=acked_at_us),
    )
    return int(done.rowcount)


def remove_counted(
    flt: MessageFilter, acked_at_us: int | None, *, conn: Connection
) -> tuple[int, int]:
    """Delete the rows matching ``flt``, or mark them acked at ``acked_at_us``.

    On PostgreSQL one statement with ``RETURNING size`` visits the rows once.
    SQLite materialises ``RETURNING`` rows in a temporary table first, which
    measured twice as slow as a ``count``/``sum`` over the index followed by
    the change, so there it takes two statements.

    Returns:
        How many rows, and the sum of their sizes.
    """
    dialect = conn.dialect
    if dialect.name != "postgresql":
        n, nbytes = _sum_totals(totals(flt, conn=conn))
        if n:
            if acked_at_us is None:
                delete_matching(flt, conn=conn)
            else:
                set_acked(flt, acked_at_us, conn=conn)
        return n, nbytes
    stmt: ReturningDelete[tuple[int]] | ReturningUpdate[tuple[int]]
    if acked_at_us is None:
        stmt = delete(buffered_messages).where(flt.where()).returning(M.size)
    else:
        stmt = (
            update(buffered_messages)
            .where(flt.where())
            .values(acked_at_us=bindparam("acked_at", acked_at_us))
            .returning(M.size)
        )
    shape = flt.shape()
    sizes: Sequence[tuple[object, ...]]
    if shape is None:
        sizes = [tuple(row) for row in conn.execute(stmt)]
    else:
        key = ("delete" if acked_at_us is None else "ack", *shape)
        params = flt.params()
        if acked_at_us is not None:
            params["acked_at"] = acked_at_us
        sizes = _driver_rows(conn, key, lambda: stmt, params)
    return len(sizes), sum(int(row[0]) for row in sizes)  # type: ignore[call-overload]


def _sum_totals(rows: Sequence[tuple[str, bool, int, int]]) -> tuple[int, int]:
    return sum(r[2] for r in rows), sum(r[3] for r in rows)


# -- reads ---------------------------------------------------------------------------


def read_rows(flt: MessageFilter, *, after: int, limit: int, conn: Connection) -> list[ReadRow]:
    """Rows matching ``flt`` with seq > ``after``, in seq order, at most ``limit``.

    Driver tuples in ``ReadRow`` order (the replay's hot path: no per-row
    object is built here).
    """
    shape = flt.shape()
    if shape is None:
        raise ValueError("read_rows takes no seqs filter")
    pending_only = flt.node is not None and flt.remote is not None and flt.pending is True

    def build() -> ClauseElement:
        return (
            select(
                M.seq,
                M.remote,
                M.subject,
                M.reply,
                func.coalesce(func.length(M.headers), literal_column("0")),
                M.received_at_us,
                M.queues,
                M.acked_at_us,
                M.headers,
                M.payload,
                M.size,
            )
            .where(flt.where(), M.seq > bindparam("after", after))
            .order_by(*(_PENDING_ORDER if pending_only else (M.seq,)))
            .limit(bindparam("limit", limit))
        )

    params = flt.params()
    params["after"] = after
    params["limit"] = limit
    return _driver_rows(conn, ("read", *shape), build, params)  # type: ignore[return-value]


def select_matching(
    flt: MessageFilter, *, conn: Connection
) -> list[tuple[int, str, str, bool, int]]:
    """``(seq, remote, subject, pending, size)`` of every row matching ``flt``."""
    stmt = select(M.seq, M.remote, M.subject, M.acked_at_us.is_(None), M.size).where(flt.where())
    return [(s, r, subj, bool(p), z) for s, r, subj, p, z in conn.execute(stmt)]


def chunked(seqs: Iterable[int]) -> Iterable[list[int]]:
    """``seqs`` in lists of at most ``SEQ_CHUNK``, for ``MessageFilter(seqs=...)``."""
    chunk: list[int] = []
    for seq in seqs:
        chunk.append(seq)
        if len(chunk) >= SEQ_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
