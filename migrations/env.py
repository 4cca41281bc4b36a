"""alembic environment for the store schema (alembic's generic template, STYLE §3.6).

Where the database comes from, first match wins:

1. ``config.attributes["connection"]``: ``services.store.migrate`` runs
   migrations on a connection it opened (``leafnode migrate``, store start-up);
2. ``-x config=FILE``: the ``store.url`` of a leafnode config file;
3. ``-x url=URL``;
4. ``sqlalchemy.url`` set programmatically.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context

from leafnode.config import StoreSettings, load
from services.store.engine import create_store_engine
from services.store.models import metadata

config = context.config
if config.config_file_name is not None and config.attributes.get("connection") is None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = metadata


def _store_settings() -> StoreSettings:
    given = config.attributes.get("store_settings")
    if isinstance(given, StoreSettings):
        return given
    xargs = context.get_x_argument(as_dictionary=True)
    if "config" in xargs:
        return load(xargs["config"]).store
    url = xargs.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("no database: pass -x config=LEAF.CONF or -x url=URL")
    return StoreSettings(url=url)


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        **kwargs,  # type: ignore[arg-type]
    )


def run_migrations_offline() -> None:
    settings = _store_settings()
    url = settings.url
    _configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_store_engine(_store_settings())
    try:
        with engine.connect() as conn:
            _configure(connection=conn, render_as_batch=conn.dialect.name == "sqlite")
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
