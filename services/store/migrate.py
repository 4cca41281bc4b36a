"""Schema migrations: ``leafnode migrate`` and the store's start-up check.

Policy (README, "Store migrations"): the store process upgrades a SQLite
database by itself at start (an embedded file that only this process ever
opens; a fresh install just works), but refuses to start on a PostgreSQL
database whose schema is not at the head revision and tells the operator to
run ``leafnode migrate -c FILE``: a shared server's schema changes when its
operator says so (the docker-compose ``migrate`` one-shot, STYLE §3.7). A
database *newer* than this code is refused on both, as a downgrade would be.

Start-up cost: alembic (with mako and pygments) adds ~11 MB to a process
that imports it, and the store runs for months. So the check reads the
database's revision with one plain SQL query and the scripts' revisions
from their ``revision``/``down_revision`` constants (parsed, not imported:
the scripts import alembic); a store at head never imports alembic. An
upgrade runs alembic in a forked child, so even a first start leaves the
long-lived store without it. ``leafnode migrate`` uses alembic directly.

A fresh SQLite file (no table at all) skips alembic altogether: it gets the
head schema from ``migrations/sqlite_head.sql``, the statements SQLite holds
(``sqlite_master``) after ``alembic upgrade head`` on an empty file, replayed
verbatim in one transaction, and the head revision recorded as alembic does
(alembic's import and its two batch migrations took ~0.4 s of every first
start). A test rebuilds that snapshot through alembic and compares it
(``tests/store/test_store_lifecycle.py``); a snapshot of another revision
than the scripts' head is not used.

Nodes sharing a PostgreSQL store may each run ``leafnode migrate`` at the
same moment: the upgrade's transaction first takes an advisory lock
(``advisory.py``), so one upgrades and the others, once it committed, find
the schema at head and do nothing.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

from sqlalchemy import inspect, make_url, text
from sqlalchemy.exc import SQLAlchemyError

from leafnode.config import ConfigError, load
from leafnode.redact import MASK, redact_url

from .advisory import MIGRATE_LOCK, lock
from .engine import create_store_engine, is_sqlite
from .health import database_name, describe

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection, Engine

    from leafnode.config import Settings, StoreSettings

__all__ = [
    "MIGRATIONS_DIR",
    "SchemaError",
    "alembic_config",
    "current_revision",
    "ensure_schema",
    "head_revision",
    "sqlite_schema",
    "sqlite_snapshot",
    "upgrade",
]

# The repository's top-level migrations/ (next to services/).
MIGRATIONS_DIR: Final = Path(__file__).resolve().parents[2] / "migrations"
VERSIONS_DIR: Final = MIGRATIONS_DIR / "versions"
# alembic's default; migrations/env.py does not change it.
VERSION_TABLE: Final = "alembic_version"
# The head schema of a fresh SQLite file (see the module docstring).
SQLITE_HEAD: Final = MIGRATIONS_DIR / "sqlite_head.sql"
SNAPSHOT_REVISION: Final = "-- revision: "


class SchemaError(Exception):
    """The database schema is not one this store can run on."""


@dataclasses.dataclass(frozen=True)
class ScriptRevisions:
    """The revisions in ``migrations/versions`` and the single head among them."""

    known: frozenset[str]
    head: str


def alembic_config(settings: StoreSettings, connection: Connection | None = None) -> Config:
    """An alembic ``Config`` for ``settings`` (``migrations/env.py`` reads it).

    Args:
        settings: the store settings; ``url`` is the database.
        connection: run the migrations on this connection instead of a new engine.
    """
    from alembic.config import Config  # lazy: see the module docstring

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Percent signs in passwords would be taken for interpolation by ConfigParser.
    cfg.set_main_option("sqlalchemy.url", settings.url.replace("%", "%%"))
    cfg.attributes["store_settings"] = settings
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def script_revisions(versions_dir: Path = VERSIONS_DIR) -> ScriptRevisions:
    """The revision scripts' ids and head, read without importing them (or alembic).

    A script is a ``*.py`` file with a module-level ``revision = "..."``;
    ``down_revision`` names its parent (a tuple for a merge). The head is the
    revision no other script names as its parent, as alembic computes it.

    Raises:
        SchemaError: no revision, or several heads (an unmerged branch).
    """
    known: set[str] = set()
    parents: set[str] = set()
    for path in sorted(versions_dir.glob("*.py")):
        constants = _literal_constants(path, ("revision", "down_revision"))
        revision = constants.get("revision")
        if not isinstance(revision, str):
            continue  # not a revision script
        known.add(revision)
        down = constants.get("down_revision")
        if isinstance(down, str):
            parents.add(down)
        elif isinstance(down, tuple | list):
            parents.update(str(d) for d in down)
    heads = known - parents
    if len(heads) != 1:
        found = ", ".join(sorted(heads)) or "none"
        raise SchemaError(f"{versions_dir} must have exactly one head revision, found: {found}")
    return ScriptRevisions(frozenset(known), heads.pop())


def _literal_constants(path: Path, names: tuple[str, ...]) -> dict[str, object]:
    """Module-level ``NAME = literal`` (or ``NAME: T = literal``) assignments of ``path``."""
    found: dict[str, object] = {}
    for node in ast.parse(path.read_bytes(), filename=str(path)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in names:
            try:
                found[target.id] = ast.literal_eval(value)
            except ValueError:
                continue  # not a literal: not something we can read
    return found


def head_revision() -> str:
    """The newest revision in ``migrations/versions``."""
    return script_revisions().head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated), by plain SQL.

    Raises:
        SchemaError: the database records several revisions (branches).
    """
    with engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    if len(rows) > 1:
        raise SchemaError(f"the database is at several revisions: {', '.join(sorted(rows))}")
    return str(rows[0]) if rows else None


def upgrade(settings: Settings) -> None:
    """``alembic upgrade head`` on the configured store (``leafnode migrate -c FILE``).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be reached.
        SchemaError: the database is at a revision this code does not know.
    """
    engine = create_store_engine(settings.store)
    try:
        _check_known(engine, script_revisions())
        _alembic_upgrade(settings.store, engine)
    finally:
        engine.dispose()


def ensure_schema(settings: StoreSettings, engine: Engine) -> str | None:
    """Make sure the schema is at head before the store serves.

    Returns:
        What was done to a SQLite database now: ``"created"`` (an empty
        file, from the snapshot), ``"upgraded"`` (by alembic), or None.

    Raises:
        SchemaError: PostgreSQL not at head (run ``leafnode migrate``), a
            database newer than this code, or a failed upgrade.
    """
    scripts = script_revisions()
    current = _check_known(engine, scripts)
    if current == scripts.head:
        return None
    if not is_sqlite(settings.url):
        where = "has no leafnode schema" if current is None else f"is at revision {current}"
        raise SchemaError(
            f"the database {where}, this store needs revision {scripts.head}: "
            "run `leafnode migrate -c FILE` first"
        )
    if current is None and _create_fresh_sqlite(engine, scripts.head):
        return "created"
    _upgrade_in_child(settings, engine)
    return "upgraded"


def sqlite_schema(conn: Connection) -> list[str]:
    """The statements that create a SQLite database's schema, in creation order."""
    rows = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid"
    )
    return [str(sql) for (sql,) in rows]


def sqlite_snapshot(statements: list[str], revision: str) -> str:
    """The text of ``migrations/sqlite_head.sql`` for ``statements`` at ``revision``."""
    return "".join(
        [f"{SNAPSHOT_REVISION}{revision}\n", *(f"{statement};\n" for statement in statements)]
    )


def _read_snapshot(path: Path) -> tuple[str, list[str]] | None:
    """(revision, statements) of the snapshot at ``path``; None when it is missing."""
    try:
        text = path.read_text()
    except OSError:
        return None
    first, _, body = text.partition("\n")
    if not first.startswith(SNAPSHOT_REVISION):
        return None
    statements = [s.strip() for s in body.split(";\n") if s.strip()]
    return first.removeprefix(SNAPSHOT_REVISION).strip(), statements


def _create_fresh_sqlite(engine: Engine, head: str, snapshot: Path = SQLITE_HEAD) -> bool:
    """Give an empty SQLite database the head schema from ``snapshot``, without alembic.

    Returns:
        False (nothing done) when the database holds a table already or the
        snapshot is not of revision ``head``: alembic upgrades it then.
    """
    found = _read_snapshot(snapshot)
    if found is None or found[0] != head:
        return False
    statements = found[1]
    with engine.begin() as conn:
        if sqlite_schema(conn):
            return False
        for statement in statements:
            conn.exec_driver_sql(statement)
        conn.execute(
            text(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES (:head)"), {"head": head}
        )
    return True


def _check_known(engine: Engine, scripts: ScriptRevisions) -> str | None:
    current = current_revision(engine)
    if current is not None and current not in scripts.known:
        raise SchemaError(
            f"the database is at revision {current}, unknown to this leafnode "
            "(written by a newer version?); refusing to touch it"
        )
    return current


def _alembic_upgrade(settings: StoreSettings, engine: Engine) -> None:
    from alembic import command  # lazy: see the module docstring

    with engine.begin() as conn:
        # Several nodes running `leafnode migrate` at once take turns; the
        # later ones find the schema at head and do nothing (advisory.py).
        lock(conn, MIGRATE_LOCK)
        command.upgrade(alembic_config(settings, conn), "head")


def _upgrade_in_child(settings: StoreSettings, engine: Engine) -> None:
    """``_alembic_upgrade`` in a forked child; its error comes back through a pipe.

    Called before the store starts any thread. No pooled connection may cross
    the fork (a SQLite or libpq handle used by two processes corrupts state),
    so the pool is emptied first; the child opens its own connection.

    Raises:
        SchemaError: the upgrade failed (the message says why).
    """
    engine.dispose()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: upgrade, report, never return into the store
        os.close(read_fd)
        status = 0
        try:
            _alembic_upgrade(settings, engine)
        except BaseException as exc:  # reported to the parent, whatever it is
            if isinstance(exc, SQLAlchemyError):  # no driver text: it can quote SQL or a login
                text = describe(exc, database_name(settings.url))
            else:
                text = (str(exc).splitlines() or [type(exc).__name__])[0]
            os.write(write_fd, text.encode())
            status = 1
        finally:
            for handler in logging.getLogger().handlers:
                handler.flush()
            os._exit(status)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        message = pipe.read().decode(errors="replace")
    _, wait_status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(wait_status) != 0:
        raise SchemaError(f"upgrading the schema failed: {message or 'the upgrade process died'}")


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
    shown = redact_url(settings.store.url)  # DESIGN §5: never the password
    try:
        upgrade(settings)
    except Exception as exc:
        reason = _without_password(str(exc), settings.store.url)
        print(f"leafnode migrate: {shown}: {reason}", file=sys.stderr)
        return 1
    print(f"leafnode migrate: {shown} is at revision {head_revision()}")
    return 0


def _without_password(text: str, url: str) -> str:
    """``text`` (a driver's error) with the URL's password masked, should the driver quote it."""
    try:
        password = make_url(url).password
    except Exception:  # an unparsable URL: its error names no password of ours
        return text
    if password:
        text = text.replace(str(password), MASK)
    return text
