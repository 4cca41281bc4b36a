"""The store's SQLAlchemy engine: SQLite or PostgreSQL chosen by ``store.url``.

SQLite (STYLE §3.6): WAL, ``synchronous`` FULL or NORMAL per ``store.sync``,
a ``busy_timeout`` for the odd reader (an operator's ``sqlite3`` shell), all
set in a ``connect`` listener so every pooled connection has them. pysqlite's
own transaction handling is switched off and ``BEGIN`` is emitted by us, the
SQLAlchemy-documented recipe, so a unit of work really is one transaction.

PostgreSQL (psycopg 3): ``store.sync: normal`` sets ``synchronous_commit=off``
for our sessions, the same trade (the last commits may be lost on a server
crash, nothing is corrupted). ``pool_pre_ping`` replaces connections a
restarted server closed, so the store recovers by itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import create_engine, event
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.engine.interfaces import DBAPIConnection
    from sqlalchemy.pool import ConnectionPoolEntry

    from leafnode.config import StoreSettings

__all__ = ["BUSY_TIMEOUT_MS", "create_store_engine", "is_sqlite"]

# Long enough for an operator's read transaction; the store itself is the
# only writer, so it never waits on its own locks.
BUSY_TIMEOUT_MS = 5000


def is_sqlite(url: str) -> bool:
    """True when ``url`` names a SQLite database."""
    return make_url(url).get_backend_name() == "sqlite"


def create_store_engine(settings: StoreSettings) -> Engine:
    """An engine for ``settings.url`` with the durability settings applied.

    Raises:
        sqlalchemy.exc.ArgumentError: the URL is not a database URL.
        ModuleNotFoundError: the URL's driver is not installed.
    """
    url = make_url(settings.url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(settings)
    if url.get_backend_name() == "postgresql" and url.get_driver_name() in ("", "psycopg2"):
        # psycopg 3 is the driver we ship; a bare postgresql:// means it too.
        url = url.set(drivername="postgresql+psycopg")
    engine = create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2)
    if url.get_backend_name() == "postgresql":
        sync_off = settings.sync == "normal"

        @event.listens_for(engine, "connect")
        def _pg_connect(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
            if sync_off:
                cur = dbapi_conn.cursor()
                cur.execute("SET synchronous_commit TO off")
                cur.close()
                dbapi_conn.commit()

    return engine


def _sqlite_engine(settings: StoreSettings) -> Engine:
    synchronous = "FULL" if settings.sync == "full" else "NORMAL"
    # check_same_thread: the store runs SQL in trio's worker threads, one at a
    # time (CapacityLimiter(1)), not always the same thread.
    engine = create_engine(settings.url, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _sqlite_connect(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # Disable pysqlite's implicit BEGIN handling; "begin" below emits ours.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine
