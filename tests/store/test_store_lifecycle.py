"""The store process: crashes, restarts, its socket, migrations, database outages."""

from __future__ import annotations

import os
import signal
import stat
from typing import TYPE_CHECKING

import pytest
import trio
from alembic import command
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from leafnode.config import StoreSettings
from leafnode.ipc import IpcClosedError, RequestError, open_trio_client
from services.store.engine import create_store_engine
from services.store.migrate import (
    SQLITE_HEAD,
    alembic_config,
    current_revision,
    ensure_schema,
    head_revision,
    sqlite_schema,
    sqlite_snapshot,
    upgrade,
)
from tests.support import free_port

from .conftest import StoreProcess, leaf_conf
from .helpers import append, msg, read, remote_stats

if TYPE_CHECKING:
    from pathlib import Path

    from leafnode.ipc import TrioIpcClient

    from .conftest import PgCluster, StoreFactory

CENTRAL = {"central": 'subjects: ["t.>"]'}


@pytest.mark.trio
@pytest.mark.parametrize("sync", ["full", "normal"])
async def test_kill9_loses_no_answered_append(store_factory: StoreFactory, sync: str) -> None:
    """Appends stream in from two connections; kill -9 right after one is answered."""
    store = store_factory.start(sync=sync, buffers=CENTRAL)
    answered: dict[int, bytes] = {}
    enough = trio.Event()

    async def producer(client: TrioIpcClient, tag: str) -> None:
        for i in range(10_000):
            batch = [msg("t.a", f"{tag}-{i}-{j}".encode()) for j in range(20)]
            try:
                reply = await append(client, batch)
            except IpcClosedError:
                return
            for k, seq in enumerate(range(reply.first_seq, reply.last_seq + 1)):
                answered[seq] = batch[k].data
            if len(answered) >= 2000 and not enough.is_set():
                # Kill while the other connection's append is still in flight.
                store.kill(signal.SIGKILL)
                enough.set()

    async with (
        open_trio_client(store.socket_path) as one,
        open_trio_client(store.socket_path) as two,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(producer, one, "a")
        nursery.start_soon(producer, two, "b")
    assert enough.is_set()
    assert store.socket_path.exists()  # the stale socket of the killed store

    store = store_factory.start(sync=sync, buffers=CENTRAL)
    async with open_trio_client(store.socket_path) as client:
        stored: dict[int, bytes] = {}
        after = 0
        while True:
            page = await read(client, after=after, limit=10_000)
            stored.update((m.seq, m.data) for m in page.msgs)
            after = page.next
            if not page.more:
                break
        assert len(stored) >= len(answered)
        missing = set(answered) - set(stored)
        assert not missing, f"{len(missing)} answered messages lost"
        assert all(stored[seq] == data for seq, data in answered.items())
        # Seqs go on after the highest one ever handed out.
        nxt = await append(client, [msg("t.after")])
        if store_factory.is_postgres:  # a new block (services/store/seqblocks.py)
            assert nxt.first_seq > max(stored)
        else:
            assert nxt.first_seq == max(stored) + 1


def test_a_live_socket_is_not_stolen(store_factory: StoreFactory) -> None:
    first = store_factory.start(buffers=CENTRAL)
    second = store_factory.start(buffers=CENTRAL, wait=False, workdir=first.workdir)
    assert second.wait_exit() == 1
    assert "another process is listening" in second.log_text()
    from .conftest import ping

    assert ping(first.socket_path)


def test_socket_mode_and_clean_stop(store_factory: StoreFactory) -> None:
    store = store_factory.start(buffers=CENTRAL)
    assert stat.S_IMODE(os.stat(store.socket_path).st_mode) == 0o660
    assert stat.S_ISSOCK(os.stat(store.socket_path).st_mode)
    store.proc.send_signal(signal.SIGTERM)
    assert store.wait_exit() == 0
    assert not store.socket_path.exists()
    assert "Trapped SIGTERM signal" in store.log_text()


def test_config_error_names_file_line_and_column(tmp_path: Path) -> None:
    store = StoreProcess(tmp_path, "store { url: 42, sync: sometimes }\n")
    assert store.wait_exit() == 1
    text = store.log_text()
    assert f"{store.conf}:1:" in text


def test_bad_store_url_exits_1(tmp_path: Path) -> None:
    store = StoreProcess(tmp_path, leaf_conf("nosuchdb://x/y"))
    assert store.wait_exit() == 1
    # The config loader refuses the scheme (so `leafnode check` does too).
    assert "store.url: unsupported database scheme 'nosuchdb://'" in store.log_text()


@pytest.mark.parametrize(
    "url",
    [
        "nosuchdb://u:pw-sentinel@x/y",
        "postgresql+nosuchdriver://u:pw-sentinel@x/y",
        "::pw-sentinel",
    ],
)
def test_bad_store_url_log_hides_the_password(tmp_path: Path, url: str) -> None:
    store = StoreProcess(tmp_path, leaf_conf(url))
    assert store.wait_exit() == 1
    text = store.log_text()
    assert "store.url: " in text
    assert "pw-sentinel" not in text


def test_bad_store_url_line_quotes_no_password() -> None:
    """The engine's refusal (behind the config loader's checks) is said without the URL."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    from services.store.__main__ import _url_problem

    quoting = ArgumentError("Could not parse SQLAlchemy URL from string 'x://u:pw-sentinel@h'")
    assert "pw-sentinel" not in _url_problem(quoting)
    assert "pw-sentinel" not in _url_problem(NoSuchModuleError("Can't load plugin: x"))
    missing = ModuleNotFoundError("No module named 'psycopg'", name="psycopg")
    assert _url_problem(missing) == "its driver is not installed (no module 'psycopg')"


def test_unreachable_database_at_start_is_an_operator_sentence(tmp_path: Path) -> None:
    """No driver text (``(psycopg.OperationalError) ...``) in the log, no login."""
    port = free_port()
    url = f"postgresql://leafnode:pw-sentinel@127.0.0.1:{port}/leaf"
    pg = StoreProcess(tmp_path / "pg", leaf_conf(url))
    sqlite = StoreProcess(tmp_path / "sqlite", leaf_conf("sqlite:////nonexistent/dir/x.db"))
    assert pg.wait_exit() == 1
    assert sqlite.wait_exit() == 1
    pg_text, sqlite_text = pg.log_text(), sqlite.log_text()
    assert (
        "[ERR] Cannot open the store database: "
        f"PostgreSQL at 127.0.0.1:{port}/leaf does not accept connections (stopped?)" in pg_text
    ), pg_text
    sentence = "cannot open the SQLite database /nonexistent/dir/x.db"
    assert f"[ERR] Cannot open the store database: {sentence}" in sqlite_text, sqlite_text
    for text in (pg_text, sqlite_text):
        assert "OperationalError" not in text
        assert "pw-sentinel" not in text


def test_migrate_is_idempotent_and_matches_the_models(store_url: str) -> None:
    from leafnode.config import Settings
    from services.store.migrate import upgrade

    settings = Settings(store=StoreSettings(url=store_url))
    upgrade(settings)
    upgrade(settings)
    engine = create_engine(store_url)
    try:
        assert current_revision(engine) == head_revision()
        with engine.begin() as conn:
            # `alembic check`: the migrations create exactly the models' schema.
            command.check(alembic_config(settings.store, conn))
    finally:
        engine.dispose()


def test_sqlite_store_migrates_itself(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    store = StoreProcess(tmp_path / "s", leaf_conf(url))
    try:
        store.wait_ready()
    finally:
        store.kill()
    engine = create_engine(url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
    # A fresh file gets the snapshot (migrations/sqlite_head.sql), not alembic's upgrades.
    assert "Created the store schema at the current revision" in store.log_text()


def test_sqlite_store_at_an_older_revision_upgrades_through_alembic(tmp_path: Path) -> None:
    """Only an empty file gets the snapshot: one at 0001 runs alembic's upgrade to head."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(StoreSettings(url=url)), "0001")
    store = StoreProcess(tmp_path / "s", leaf_conf(url))
    try:
        store.wait_ready()
    finally:
        store.kill()
    engine = create_engine(url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
    assert "Upgraded the store schema to the current revision" in store.log_text()


def test_fresh_sqlite_snapshot_is_the_migrations_schema(tmp_path: Path) -> None:
    """migrations/sqlite_head.sql is what `alembic upgrade head` leaves in an empty SQLite file.

    A fresh file gets its schema from that snapshot, without alembic
    (``services.store.migrate``); it must hold the same statements, verbatim,
    at the same revision. After a new migration, write the snapshot again
    with the text this test prints.
    """
    from leafnode.config import Settings

    by_alembic = f"sqlite:///{tmp_path / 'alembic.db'}"
    upgrade(Settings(store=StoreSettings(url=by_alembic)))
    engine = create_engine(by_alembic)
    try:
        with engine.connect() as conn:
            expected = sqlite_snapshot(sqlite_schema(conn), head_revision())
    finally:
        engine.dispose()
    assert SQLITE_HEAD.read_text() == expected, f"{SQLITE_HEAD} should read:\n{expected}"

    by_snapshot = f"sqlite:///{tmp_path / 'snapshot.db'}"
    store_settings = StoreSettings(url=by_snapshot)
    engine = create_store_engine(store_settings)
    try:
        assert ensure_schema(store_settings, engine) == "created"
        assert ensure_schema(store_settings, engine) is None  # at head now
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            assert sqlite_snapshot(sqlite_schema(conn), head_revision()) == expected
    finally:
        engine.dispose()


def test_postgres_without_migration_is_refused(pg_cluster: PgCluster, tmp_path: Path) -> None:
    url = pg_cluster.create_database()
    store = StoreProcess(tmp_path, leaf_conf(url))
    assert store.wait_exit() == 1
    text = store.log_text()
    assert "has no leafnode schema" in text
    assert "leafnode migrate -c FILE" in text


@pytest.mark.trio
async def test_postgres_outage_answers_unavailable_then_recovers(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    url = pg_cluster.create_database()
    dbname = make_url(url).database
    from .conftest import StoreFactory

    factory = StoreFactory(url, tmp_path)
    factory.migrate()
    store = factory.start(buffers=CENTRAL)
    try:
        async with open_trio_client(store.socket_path) as client:
            await append(client, [msg("t.before")])
            with pg_cluster.admin() as admin:
                admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (dbname,),
                )
            with pytest.raises(RequestError) as down:
                await append(client, [msg("t.lost")])
            assert down.value.code == "unavailable"
            # An operator's sentence, not the driver's text.
            assert str(down.value) == (
                f"store database: PostgreSQL at 127.0.0.1:{pg_cluster.port}/{dbname} "
                "does not accept connections"
            )
            with pg_cluster.admin() as admin:
                admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
            # No restart: the next request reconnects by itself.
            again = await append(client, [msg("t.after")])
            assert again.first_seq == 2
            got = await read(client)
            assert [m.subject for m in got.msgs] == ["t.before", "t.after"]
            assert (await remote_stats(client))["msgs"] == 2
        assert "Store database unavailable: PostgreSQL at" in store.log_text()
    finally:
        factory.close()


@pytest.mark.trio
async def test_unknown_remote_is_buffered_with_default_limits(
    store_factory: StoreFactory,
) -> None:
    store = store_factory.start(buffers=CENTRAL)
    async with open_trio_client(store.socket_path) as client:
        reply = await append(client, [msg("x.y", remote="ghost")])
        assert reply.refused == ()
        assert (await remote_stats(client, "ghost"))["msgs"] == 1
    assert "unknown remote 'ghost'" in store.log_text()


def test_log_and_pid_file_flags(tmp_path: Path) -> None:
    log_file, pid_file = tmp_path / "store-file.log", tmp_path / "store.pid"
    url = f"sqlite:///{tmp_path / 'b.db'}"
    store = StoreProcess(
        tmp_path / "s", leaf_conf(url), extra_args=("-l", str(log_file), "-P", str(pid_file), "-D")
    )
    try:
        store.wait_ready()
        assert pid_file.read_text() == str(store.proc.pid)
        assert "Listening for store clients" in log_file.read_text()
    finally:
        store.kill()
