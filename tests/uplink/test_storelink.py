"""StoreLink: one warning when a store outage starts, one when it ends (issue 11 point 1)."""

from __future__ import annotations

import logging

import pytest

from services.uplink.storelink import StoreLink

DB_DOWN = "store database: PostgreSQL at 127.0.0.1:5432/leaf does not accept connections"


@pytest.fixture
def link() -> StoreLink:
    return StoreLink("central", clock=lambda: 0.0)


def down(link: StoreLink) -> bool:
    """``link.down`` (through a call: mypy would narrow the attribute between asserts)."""
    return link.down


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_every_task_failing_and_recovering_is_one_outage(
    link: StoreLink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "leafnode.uplink")
    for _ in range(3):
        for kind in ("read", "ack", "stats"):
            link.failed(kind, DB_DOWN)
    assert (down(link), link.error) == (True, DB_DOWN)
    for kind in ("stats", "read", "ack"):
        link.succeeded(kind)
    assert (down(link), link.error) == (False, None)
    assert warnings(caplog) == [
        f'Leafnode remote "central": store unavailable: {DB_DOWN}; the backlog waits',
        'Leafnode remote "central": store available again after 0.0 s (9 failed attempts '
        "meanwhile); resuming the drain",
    ]


def test_changing_reasons_of_a_lost_connection_are_one_outage(
    link: StoreLink, caplog: pytest.LogCaptureFixture
) -> None:
    link.lost("connection lost: reset by peer")
    link.lost("[Errno 111] Connection refused")
    link.lost("[Errno 2] No such file or directory")
    assert link.error == "[Errno 2] No such file or directory"
    link.succeeded("read")  # cannot happen without a connection; proves nothing
    assert down(link)
    link.attached(None)
    assert not down(link)
    assert len(warnings(caplog)) == 2


def test_a_read_does_not_end_a_failed_ack(
    link: StoreLink, caplog: pytest.LogCaptureFixture
) -> None:
    # A full SQLite disk: reads and stats still work, acks fail.
    link.failed("ack", "store database: the disk holding the SQLite database x is full")
    link.succeeded("stats")
    link.succeeded("read")
    link.failed("ack", "store database: the disk holding the SQLite database x is full")
    assert down(link)
    link.succeeded("ack")
    assert not down(link)
    assert len(warnings(caplog)) == 2


def test_reconnecting_to_a_store_whose_database_is_down(
    link: StoreLink, caplog: pytest.LogCaptureFixture
) -> None:
    link.lost("[Errno 111] Connection refused")
    link.attached("PostgreSQL at h:5432/leaf does not accept connections")
    assert down(link)
    assert link.error == "store database: PostgreSQL at h:5432/leaf does not accept connections"
    link.succeeded("stats")
    assert not down(link)
    assert len(warnings(caplog)) == 2


def test_waiting_at_start_is_no_outage(link: StoreLink, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "leafnode.uplink")
    link.waiting("[Errno 2] No such file or directory")
    link.waiting("[Errno 111] Connection refused")
    assert (down(link), link.error) == (False, "[Errno 111] Connection refused")
    link.attached(None)
    assert (down(link), link.error) == (False, None)
    assert [r.getMessage() for r in caplog.records] == [
        'Leafnode remote "central": waiting for the store',
        'Leafnode remote "central": connected to the store',
    ]
