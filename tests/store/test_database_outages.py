"""Every way the store's database fails, under a real store and router (issue 11 point 1).

Each test runs ``leafnode store`` and ``leafnode router`` sharing a run dir
(no hub: what matters is the store), breaks the database for real, and
checks the same promises:

- the store sees it with nothing buffered (its probe), and says so in its
  ``ping`` answer in an operator's words (no driver text, no login);
- a flushed buffered publish waits in router memory (``bufferz`` shows it
  and why) and its flush does not return;
- once the database is back the held messages are committed in publish
  order, once each, and the flush returns;
- the store logs one line when the outage starts and one when it ends.

PostgreSQL (the session's ``pg_cluster``): the server stopped and started
again; the role's login revoked (``NOLOGIN``, its sessions cut) and given
back; the store's connection cut in the middle of an append transaction
(``pg_terminate_backend`` while the append waits on a table lock the test
holds). SQLite: a read-only database file (opened ``mode=ro``), a second
connection holding the write lock, and a full disk (a small tmpfs, as in
``test_disk_full.py``, filled while nothing is buffered).
"""

from __future__ import annotations

import itertools
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from leafnode.ipc import STORE_SOCKET, Frame
from tests.conftest import poll
from tests.ipcclient import request_once
from tests.rawclient import RawClient
from tests.support import PG_USER, PgCluster, RouterProcess, ServiceProcess

from .test_disk_full import fill, small_disk

__all__ = ["small_disk"]  # a fixture, shared with test_disk_full

QUIET = b'CONNECT {"verbose":false,"pedantic":false}\r\n'
_ids = itertools.count()


def pubs(items: list[tuple[str, bytes]]) -> bytes:
    return b"".join(b"PUB %s %d\r\n%s\r\n" % (s.encode(), len(p), p) for s, p in items)


class Site:
    """A store on ``url`` and a router sharing its run dir; one buffered remote."""

    def __init__(self, base: Path, url: str, *, migrate: bool) -> None:
        base.mkdir(parents=True, exist_ok=True)
        self.run_dir = base / "run"
        self.conf = base / "leaf.conf"
        self.conf.write_text(
            f"""
            store {{ url: "{url}" }}
            leafnodes {{ remotes: [
              {{ name: central, url: "nats-leaf://127.0.0.1:1", buffer {{ subjects: ["tele.>"] }} }}
            ] }}
            """
        )
        if migrate:
            subprocess.run(
                [sys.executable, "-m", "leafnode", "migrate", "-c", str(self.conf)],
                check=True,
                capture_output=True,
            )
        self.store = ServiceProcess("store", self.conf, self.run_dir, workdir=base / "store")
        self.router: RouterProcess | None = None
        self.store.wait_socket(STORE_SOCKET)
        self.router = RouterProcess(
            self.conf.read_text(),
            workdir=base / "router",
            extra_args=("--run-dir", str(self.run_dir)),
        )
        self.router.wait_ready()

    def store_request(self, kind: str, **fields: object) -> Frame:
        return request_once(self.run_dir / STORE_SOCKET, kind, (), **fields)

    def database(self) -> dict[str, object]:
        database = self.store_request("ping").fields["database"]
        assert isinstance(database, dict)
        return database

    def wait_database(self, *, up: bool, error: str | None = None) -> dict[str, object]:
        return poll(
            self.database,
            lambda d: d["up"] is up and (error is None or d["error"] == error),
            what=f"the store's database up={up} {error or ''}",
        )

    def bufferz(self) -> dict[str, object]:
        data = request_once(self.run_dir / "router.ctl", "bufferz").fields["data"]
        assert isinstance(data, dict)
        return data

    def stored(self) -> list[tuple[str, bytes]]:
        frame = self.store_request("read", remote="central", limit=10_000)
        assert frame.type == "ok", frame
        rows = frame.fields["msgs"]
        assert isinstance(rows, list)
        return [(str(row[2]), blob[row[4] :]) for row, blob in zip(rows, frame.blobs, strict=True)]

    def publish(self, items: list[tuple[str, bytes]]) -> None:
        out, closed = RawClient(self.router_port).exchange(QUIET + pubs(items), timeout=30)
        assert (out, closed) == (b"PONG\r\n", False)

    @property
    def router_port(self) -> int:
        assert self.router is not None
        return self.router.port

    def start_held_publish(self, items: list[tuple[str, bytes]]) -> RawClient:
        """Publish and flush; the flush must not return while the database is down."""
        client = RawClient(self.router_port)
        client.send(QUIET + pubs(items) + b"PING\r\n")
        poll(
            self.bufferz,
            lambda b: b["held"] == {"central": {"msgs": len(items), "bytes": _size(items)}},
            what="the messages held in router memory",
        )
        with pytest.raises(AssertionError, match="not seen"):
            client.read_until(b"PONG\r\n", timeout=0.3)
        return client

    def assert_one_outage(self, *sentences: str) -> None:
        """One line when it started (with one of ``sentences``), one when it ended."""
        log = self.store.log_text()
        assert log.count("Store database unavailable: ") == 1, log
        assert any(f"Store database unavailable: {s};" in log for s in sentences), log
        assert log.count("Store database available again") == 1, log

    def stop(self) -> None:
        if self.router is not None:
            self.router.kill()
        self.store.kill()


def _size(items: list[tuple[str, bytes]]) -> int:
    return sum(len(p) for _, p in items)


@pytest.fixture
def sites(tmp_path: Path) -> Iterator[Callable[[str], Site]]:
    made: list[Site] = []

    def start(url: str) -> Site:
        site = Site(tmp_path / f"site{next(_ids)}", url, migrate=url.startswith("postgresql"))
        made.append(site)
        return site

    yield start
    for site in made:
        site.stop()


BEFORE = [(f"tele.before.{i}", b"b%d" % i) for i in range(3)]
DURING = [(f"tele.during.{i}", b"d%d" % i) for i in range(5)]


def _recovered(site: Site, client: RawClient) -> None:
    """The held messages are committed once each, in order, and the flush returned."""
    assert client.read_until(b"PONG\r\n", timeout=30) == b"PONG\r\n"
    assert site.stored() == BEFORE + DURING
    assert site.bufferz()["held"] == {}
    site.wait_database(up=True)


# -- PostgreSQL ---------------------------------------------------------------------


def test_postgres_stopped_and_started(pg_cluster: PgCluster, sites: Callable[[str], Site]) -> None:
    url = pg_cluster.create_database()
    site = sites(url)
    site.publish(BEFORE)
    where = f"127.0.0.1:{pg_cluster.port}/{make_url(url).database}"
    sentence = f"PostgreSQL at {where} does not accept connections (stopped?)"
    pg_cluster.shutdown("fast")
    try:
        # Nothing pending: the probe finds it.
        down = site.wait_database(up=False, error=sentence)
        assert "FATAL" not in str(down)
        client = site.start_held_publish(DURING)
        assert site.bufferz()["waiting_reason"] == f"store database: {sentence}"
    finally:
        pg_cluster.start()
    _recovered(site, client)
    # The first failure may be the server's goodbye to the open connection.
    site.assert_one_outage(
        sentence, f"PostgreSQL at {where} is shutting down or closed the store's connection"
    )


def test_postgres_login_revoked_and_restored(
    pg_cluster: PgCluster, sites: Callable[[str], Site]
) -> None:
    url = pg_cluster.create_database()
    dbname = make_url(url).database
    role = f"store_{dbname}"
    with pg_cluster.admin() as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
        admin.execute(f'ALTER DATABASE "{dbname}" OWNER TO "{role}"')
    own_url = url.replace("leafnode@", f"{role}@")
    site = sites(own_url)
    site.publish(BEFORE)
    sentence = (
        f"PostgreSQL at 127.0.0.1:{pg_cluster.port}/{dbname} refused the store's login "
        "(password or role revoked?)"
    )
    with pg_cluster.admin() as admin:
        admin.execute(f'ALTER ROLE "{role}" NOLOGIN')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,)
        )
    try:
        site.wait_database(up=False, error=sentence)
        client = site.start_held_publish(DURING)
    finally:
        with pg_cluster.admin() as admin:
            admin.execute(f'ALTER ROLE "{role}" LOGIN')
    _recovered(site, client)
    site.assert_one_outage(sentence)
    assert role not in site.store.log_text().split("Store database unavailable")[1]


def test_postgres_connection_cut_mid_transaction(
    pg_cluster: PgCluster, sites: Callable[[str], Site]
) -> None:
    url = pg_cluster.create_database()
    dbname = make_url(url).database
    assert dbname is not None
    site = sites(url)
    site.publish(BEFORE)
    # The test holds the table: the store's next append waits inside its
    # transaction, and its connection is cut right there.
    holder = psycopg.connect(host="127.0.0.1", port=pg_cluster.port, user=PG_USER, dbname=dbname)
    try:
        holder.execute("LOCK TABLE buffered_messages IN ACCESS EXCLUSIVE MODE")
        client = RawClient(site.router_port)
        client.send(QUIET + pubs(DURING) + b"PING\r\n")
        with pg_cluster.admin() as admin:
            waiting = poll(
                lambda: admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s"
                    " AND wait_event_type = 'Lock' AND pid <> %s",
                    (dbname, holder.info.backend_pid),
                ).fetchall(),
                lambda rows: len(rows) == 1,
                what="the store's append waiting on the lock",
            )
            admin.execute("SELECT pg_terminate_backend(%s)", (waiting[0][0],))
    finally:
        holder.rollback()
        holder.close()
    _recovered(site, client)
    site.assert_one_outage(
        f"the connection to PostgreSQL at 127.0.0.1:{pg_cluster.port}/{dbname} was cut"
    )


# -- SQLite -------------------------------------------------------------------------


def test_sqlite_locked_by_another_connection(tmp_path: Path, sites: Callable[[str], Site]) -> None:
    path = tmp_path / "buffer.db"
    site = sites(f"sqlite:///{path}")
    site.publish(BEFORE)
    sentence = f"the SQLite database {path} is locked by another process"
    lock = sqlite3.connect(path, isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        site.wait_database(up=False, error=sentence)
        client = site.start_held_publish(DURING)
    finally:
        lock.close()
    _recovered(site, client)
    site.assert_one_outage(sentence)


def test_sqlite_read_only_file(tmp_path: Path, sites: Callable[[str], Site]) -> None:
    path = tmp_path / "buffer.db"
    first = sites(f"sqlite:///{path}")
    first.publish(BEFORE)
    first.stop()
    # The same file opened read-only: reads work, no write can.
    site = sites(f"sqlite:///file:{path}?mode=ro&uri=true")
    sentence = f"the SQLite database file:{path} is read-only"
    down = site.wait_database(up=False, error=sentence)
    assert down["down_since_us"] is not None
    assert site.stored() == BEFORE
    site.start_held_publish(DURING)
    stats = site.store_request("stats").fields
    assert stats["database"] == site.database()
    log = site.store.log_text()
    assert log.count("Store database unavailable: ") == 1, log


def test_sqlite_disk_full_with_nothing_buffered(
    small_disk: Path, sites: Callable[[str], Site]
) -> None:
    path = small_disk / "buffer.db"
    site = sites(f"sqlite:///{path}")
    site.publish(BEFORE)
    filler = fill(small_disk)
    sentence = f"the disk holding the SQLite database {path} is full"
    try:
        site.wait_database(up=False, error=sentence)
        client = site.start_held_publish(DURING)
    finally:
        filler.unlink()
    _recovered(site, client)
    site.assert_one_outage(sentence)
