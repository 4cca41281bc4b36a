"""Driver errors on the store's raw-cursor paths surface as SQLAlchemy's ``DBAPIError``.

The server answers ``unavailable`` for a ``DBAPIError`` (and ``health.describe``
reads its ``.orig``); a bare ``sqlite3``/``psycopg`` error escaping the raw
cursor would end the store process instead.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import column, create_engine, select, table
from sqlalchemy.exc import DBAPIError

from services.store.repo import _driver_rows

if TYPE_CHECKING:
    from pathlib import Path


def test_a_failing_read_on_the_driver_cursor_raises_dbapi_error(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    missing = table("no_such_table", column("seq"))
    with engine.connect() as conn, pytest.raises(DBAPIError) as info:
        _driver_rows(conn, ("test-missing",), lambda: select(missing.c.seq), {})
    assert isinstance(info.value.orig, sqlite3.OperationalError)
    assert "no_such_table" in str(info.value.orig)
    engine.dispose()
