"""Schema migrations: ``leafnode migrate`` and the store's start-up check.

Policy (README, "Store migrations"): the store process upgrades a SQLite
database by itself at start (an embedded file that only this process ever
opens; a fresh install just works), but refuses to start on a PostgreSQL
database whose schema is not at the head revision and tells the operator to
run ``leafnode migrate -c FILE``: a shared server's schema changes when its
operator says so (the docker-compose ``migrate`` one-shot, STYLE §3.7). A
database *newer* than this code is refused on both, as a downgrade would be.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from leafnode.config import ConfigError, load

from .engine import create_store_engine, is_sqlite

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from leafnode.config import Settings, StoreSettings

__all__ = ["MIGRATIONS_DIR", "SchemaError", "alembic_config", "ensure_schema", "upgrade"]

# The repository's top-level migrations/ (next to services/).
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


class SchemaError(Exception):
    """The database schema is not one this store can run on."""


def alembic_config(settings: StoreSettings, connection: Connection | None = None) -> Config:
    """An alembic ``Config`` for ``settings`` (``migrations/env.py`` reads it).

    Args:
        settings: the store settings; ``url`` is the database.
        connection: run the migrations on this connection instead of a new engine.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Percent signs in passwords would be taken for interpolation by ConfigParser.
    cfg.set_main_option("sqlalchemy.url", settings.url.replace("%", "%%"))
    cfg.attributes["store_settings"] = settings
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision in ``migrations/versions``."""
    head = ScriptDirectory.from_config(_script_config()).get_current_head()
    if head is None:
        raise SchemaError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(settings: Settings) -> None:
    """``alembic upgrade head`` on the configured store (``leafnode migrate -c FILE``).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be reached.
        SchemaError: the database is at a revision this code does not know.
    """
    engine = create_store_engine(settings.store)
    try:
        _check_known(engine)
        with engine.begin() as conn:
            command.upgrade(alembic_config(settings.store, conn), "head")
    finally:
        engine.dispose()


def ensure_schema(settings: StoreSettings, engine: Engine) -> bool:
    """Make sure the schema is at head before the store serves.

    Returns:
        True when a SQLite database was upgraded now.

    Raises:
        SchemaError: PostgreSQL not at head (run ``leafnode migrate``), or a
            database newer than this code.
    """
    head = head_revision()
    current = _check_known(engine)
    if current == head:
        return False
    if not is_sqlite(settings.url):
        where = "has no leafnode schema" if current is None else f"is at revision {current}"
        raise SchemaError(
            f"the database {where}, this store needs revision {head}: "
            "run `leafnode migrate -c FILE` first"
        )
    with engine.begin() as conn:
        command.upgrade(alembic_config(settings, conn), "head")
    return True


def _check_known(engine: Engine) -> str | None:
    current = current_revision(engine)
    if current is not None:
        script = ScriptDirectory.from_config(_script_config())
        if current not in {rev.revision for rev in script.walk_revisions()}:
            raise SchemaError(
                f"the database is at revision {current}, unknown to this leafnode "
                "(written by a newer version?); refusing to touch it"
            )
    return current


def _script_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def main(argv: list[str] | None = None) -> int:
    """``leafnode migrate -c FILE``: ``alembic upgrade head`` on the configured store."""
    parser = argparse.ArgumentParser(prog="leafnode migrate")
    parser.add_argument("-c", "--config", required=True, metavar="FILE", help="config file")
    parser.add_argument("--store", dest="store_url", metavar="URL", help="database URL")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = load(args.config)
    except ConfigError as exc:
        print(f"leafnode migrate: {exc}", file=sys.stderr)
        return 1
    if args.store_url:
        settings = dataclasses.replace(
            settings, store=dataclasses.replace(settings.store, url=args.store_url)
        )
    try:
        upgrade(settings)
    except Exception as exc:
        print(f"leafnode migrate: {settings.store.url}: {exc}", file=sys.stderr)
        return 1
    print(f"leafnode migrate: {settings.store.url} is at revision {head_revision()}")
    return 0
