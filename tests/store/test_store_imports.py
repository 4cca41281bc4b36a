"""What a SQLite store loads: no ORM, no PostgreSQL dialect (issue 16, the site's memory).

``sqlalchemy.orm`` (~6 MB) and the PostgreSQL dialect (~2 MB) are private
memory of the long-lived store process; a SQLite store uses neither. Run in a
fresh interpreter: the test process itself imports both.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

_OPEN_A_SQLITE_STORE = """
import json, sys
import services.store.__main__
from leafnode.config import StoreSettings
from services.store.engine import create_store_engine
from services.store.migrate import ensure_schema
from services.store.service import StoreService

settings = StoreSettings(url={url!r})
engine = create_store_engine(settings)
assert ensure_schema(settings, engine) == "created"
service = StoreService(engine, {{}})
service.open()
assert service.leaf_id
print(json.dumps(sorted(sys.modules)))
"""


def test_a_sqlite_store_loads_neither_the_orm_nor_the_postgresql_dialect(tmp_path: Path) -> None:
    code = _OPEN_A_SQLITE_STORE.format(url=f"sqlite:///{tmp_path / 'buffer.db'}")
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.splitlines()[-1])
    assert "sqlalchemy" in loaded
    unwanted = [
        m for m in loaded if m.startswith(("sqlalchemy.orm", "sqlalchemy.dialects.postgresql"))
    ]
    assert unwanted == []
