"""The store's database as the api reports it (issue 11 point 1).

A real site (hub, router, store, uplink, api) on a SQLite file. A
second connection from the test takes the database's write lock
(``BEGIN EXCLUSIVE``), as an operator's ``sqlite3`` shell or a backup tool
can: the store cannot write, with nothing buffered yet. While it lasts
``/healthz`` is 503 naming the store database in an operator's words,
``leafnode_store_database_up`` is 0, and a buffered publish waits in router
memory, which ``/buffer`` shows with the reason; once the lock is gone the
message is committed, the flush returns, and everything says so.
"""

from __future__ import annotations

import re
import sqlite3

from tests.conftest import poll
from tests.rawclient import RawClient

from .conftest import ApiSite, SiteFactory

QUIET = b'CONNECT {"verbose":false,"pedantic":false}\r\n'


def metric(text: str, name: str) -> float | None:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def test_a_locked_database_is_unhealthy_with_nothing_buffered(site_factory: SiteFactory) -> None:
    site: ApiSite = site_factory(uplink=True, buffer='subjects: ["tele.>"]')
    http = site.http()
    path = site.workdir / "buffer.db"
    assert http.get("/healthz").status_code == 200
    assert metric(http.get("/metrics").text, "leafnode_store_database_up") == 1.0

    lock = sqlite3.connect(path, isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        sentence = f"the SQLite database {path} is locked by another process"
        health = poll(
            lambda: http.get("/healthz"),
            lambda r: r.json().get("error") == f"store database: {sentence}",
            what="/healthz naming the locked database",
        )
        assert health.status_code == 503
        body = health.json()
        assert body["status"] == "unavailable"
        assert body["services"]["store"]["status"] == "unavailable"
        assert body["remotes"][0]["backlog"]["msgs"] == 0
        metrics = http.get("/metrics").text
        assert metric(metrics, "leafnode_store_database_up") == 0.0
        assert metric(metrics, 'leafnode_service_up{service="store"}') == 0.0

        # A buffered publish waits in router memory; the flush does not return.
        client = RawClient(site.router.port)
        client.send(QUIET + b"PUB tele.held 4\r\nheld\r\nPING\r\n")
        buffer = poll(
            lambda: http.get("/buffer").json(),
            lambda b: b["remotes"][0]["held_in_router"]["msgs"] == 1,
            what="the message held in router memory",
        )
        assert buffer["remotes"][0]["held_in_router"] == {
            "msgs": 1,
            "bytes": 4,
            "reason": f"store database: {sentence}",
        }
        assert buffer["database"] == {"up": False, "error": sentence}
        metrics = http.get("/metrics").text
        assert metric(metrics, 'leafnode_buffer_held_messages{remote="central"}') == 1.0
        assert b"PONG" not in client.buf
    finally:
        lock.close()  # rolls the exclusive transaction back

    # The lock is gone: the held message is committed and the flush returns.
    assert client.read_until(b"PONG\r\n", timeout=30) == b"PONG\r\n"
    poll(lambda: http.get("/healthz").status_code, lambda c: c == 200, what="/healthz 200")
    buffer = http.get("/buffer").json()
    assert buffer["database"] == {"up": True, "error": None}
    assert buffer["remotes"][0]["held_in_router"] == {"msgs": 0, "bytes": 0, "reason": None}
    assert buffer["remotes"][0]["backlog"]["msgs"] == 1
    assert metric(http.get("/metrics").text, "leafnode_store_database_up") == 1.0
    # One line when the outage started, one when it ended.
    assert site.store is not None
    log = site.store.log_text()
    assert log.count("Store database unavailable: ") == 1, log
    assert log.count("Store database available again") == 1, log
