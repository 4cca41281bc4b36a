"""``services.store.health`` without a store process: sentences and the outage's state.

The errors are real driver errors (a read-only SQLite file, a locked one, a
PostgreSQL URL nobody listens on), wrapped by SQLAlchemy as the store sees
them; the clock is a counter the test advances.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from services.store.health import WRITE_FAILURE_HOLD_S, DatabaseHealth, database_name, describe
from tests.support import free_port


def _sqlite_error(url: str, statement: str) -> OperationalError:
    engine = create_engine(url, connect_args={"timeout": 0})
    try:
        with engine.begin() as conn:
            conn.execute(text(statement))
    except OperationalError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError("no error")


def test_sqlite_read_only_and_locked(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
    ro = _sqlite_error(f"sqlite:///file:{path}?mode=ro&uri=true", "INSERT INTO t VALUES (1)")
    assert describe(ro, str(path)) == f"the SQLite database {path} is read-only"
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        locked = _sqlite_error(f"sqlite:///{path}", "INSERT INTO t VALUES (1)")
    finally:
        holder.close()
    assert describe(locked, str(path)) == f"the SQLite database {path} is locked by another process"


def test_postgres_refused_names_host_not_login() -> None:
    port = free_port()
    url = f"postgresql+psycopg://user:s3cret-pw@127.0.0.1:{port}/buf"
    engine = create_engine(url)
    with pytest.raises(OperationalError) as caught:
        engine.connect()
    db = database_name(url)
    assert db == f"127.0.0.1:{port}/buf"
    sentence = describe(caught.value, db)
    assert sentence == f"PostgreSQL at {db} does not accept connections (stopped?)"
    assert "s3cret" not in sentence
    assert "user" not in sentence


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_line_each_way_and_probes_do_not_end_a_write_outage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "db.sqlite"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
    error = _sqlite_error(f"sqlite:///file:{path}?mode=ro&uri=true", "INSERT INTO t VALUES (1)")
    clock = Clock()
    health = DatabaseHealth(str(path), clock=clock)
    caplog.set_level(logging.DEBUG, logger="leafnode.store")

    health.failed(error, write=True, what="Append")
    for _ in range(50):
        health.failed(error, write=True, what="Append")
    assert health.as_fields()["up"] is False
    assert health.error == f"the SQLite database {path} is read-only"
    # A successful one-row probe right after a failed append proves little.
    clock.now += 1
    health.succeeded(write=True, probe=True)
    assert health.up is False
    # A read proves nothing either.
    health.succeeded(write=False)
    assert health.up is False
    # Nobody retried for a while: the probe is all there is to go by.
    clock.now += WRITE_FAILURE_HOLD_S
    health.succeeded(write=True, probe=True)
    assert health.as_fields() == {"up": True, "error": None, "down_since_us": None}

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith(f"Store database unavailable: the SQLite database {path}")
    assert warnings[1].startswith("Store database available again after 6.0 s (51 failed")
    # The driver's text is only ever a DEBUG line.
    assert all("attempt to write" not in w for w in warnings)
