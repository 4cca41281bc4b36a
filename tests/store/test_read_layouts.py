"""The read path: rows and columns layouts agree, and ``collect`` cuts where it should."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leafnode.ipc import decode_read_columns, open_trio_client
from services.store.reads import MAX_SCAN_ROWS, collect

from .helpers import append, msg, read

if TYPE_CHECKING:
    from leafnode.ipc import Frame, StoredMsg, TrioIpcClient
    from services.store.repo import ReadRow

    from .conftest import StoreFactory

CENTRAL = {"central": 'subjects: ["t.>"], retain: "1h"', "edge": 'subjects: ["e.>"]'}


def from_columns(frame: Frame, remote: str | None = None) -> list[tuple[object, ...]]:
    """The columns answer as rows in the ``msgs`` layout, by ``decode_read_columns``.

    ``remote``: the remote the read named (the answer's remote column is null then).
    """
    rows = decode_read_columns(frame.fields, remote)
    return [(*row[:6], list(row[6]), row[7]) for row in rows]  # type: ignore[call-overload]


def as_rows(msgs: list[StoredMsg]) -> list[tuple[object, ...]]:
    return [
        (
            m.seq,
            m.remote,
            m.subject,
            m.reply,
            m.hdr_len,
            m.received_at_us,
            list(m.queues),
            m.acked_at_us,
        )
        for m in msgs
    ]


async def both(client: TrioIpcClient, **fields: object) -> tuple[list[StoredMsg], Frame]:
    rows = await read(client, **fields)
    fields.setdefault("remote", "central")
    columns = await client.request("read", {**fields, "columns": True})
    assert "msgs" not in columns.fields
    assert (columns.fields["next"], columns.fields["more"]) == (rows.next, rows.more)
    assert columns.blobs == [m.data for m in rows.msgs]
    return rows.msgs, columns


@pytest.mark.trio
async def test_columns_carry_what_rows_carry(store_factory: StoreFactory) -> None:
    store = store_factory.start(buffers=CENTRAL)
    headers = b"NATS/1.0\r\nA: b\r\n\r\n"
    async with open_trio_client(store.socket_path) as client:
        await append(
            client,
            [
                msg("t.a", b"one", headers=headers, reply="_INBOX.x", queues=("q1", "q2")),
                msg("t.b", b""),
                msg("e.a", b"edge", remote="edge"),
                msg("t.c", b"\x00\xff" * 1000),
                msg("t.d", b"four"),
            ],
        )
        await client.request("ack", {"remote": "central", "upto": 2})

        # Plain small messages: the optional columns are null, remote too.
        msgs, plain = await both(client)
        assert [m.seq for m in msgs] == [4, 5]
        for key in ("reply", "hdr_len", "queues", "acked_at_us", "remote"):
            assert plain.fields[key] is None, key
        assert from_columns(plain, "central") == as_rows(msgs)

        # Retained rows with headers, reply, queues and acked_at: every column filled.
        msgs, full = await both(client, acked=True)
        assert [m.seq for m in msgs] == [1, 2, 4, 5]
        assert isinstance(full.fields["acked_at_us"], list)
        assert full.fields["queues"] == [["q1", "q2"], [], [], []]
        assert full.blobs[0] == headers + b"one"
        assert from_columns(full, "central") == as_rows(msgs)

        # Every remote: remote is a column; a wildcard filter skips rows.
        msgs, everyone = await both(client, remote=None, subjects=["*.a"], acked=True)
        assert [(m.remote, m.subject) for m in msgs] == [("central", "t.a"), ("edge", "e.a")]
        assert everyone.fields["remote"] == ["central", "edge"]
        assert from_columns(everyone) == as_rows(msgs)

        # Nothing to read: empty columns.
        msgs, empty = await both(client, after=5)
        assert msgs == []
        assert empty.fields["seq"] == []
        assert empty.blobs == []


@pytest.mark.trio
async def test_a_large_read_crosses_chunks_and_stops_at_max_bytes(
    store_factory: StoreFactory,
) -> None:
    store = store_factory.start(buffers=CENTRAL)
    async with open_trio_client(store.socket_path) as client:
        await append(client, [msg(f"t.{i % 7}", b"p" * 20) for i in range(2500)])
        size = 3 + 20  # subject + payload
        page = await read(client, limit=2400)
        assert [m.seq for m in page.msgs] == list(range(1, 2401))
        assert page.more
        # The message that reaches max_bytes is the last one returned.
        page = await read(client, limit=5000, max_bytes=1500 * size)
        assert [m.seq for m in page.msgs] == list(range(1, 1501))
        assert (page.next, page.more) == (1500, True)
        page = await read(client, after=1500, limit=5000)
        assert [m.seq for m in page.msgs] == list(range(1501, 2501))
        assert (page.next, page.more) == (2500, False)


# -- collect against the straightforward loop it replaced ------------------------------


def reference(
    rows: list[ReadRow], *, after: int, limit: int, max_bytes: int, pattern: str | None
) -> tuple[list[int], int, bool]:
    """One row at a time: take matching rows until limit or max_bytes is reached."""
    out: list[int] = []
    total = scanned = 0
    cursor = after
    for row in rows:
        if row[0] <= after:
            continue
        cursor = row[0]
        scanned += 1
        if pattern is None or row[2] == pattern:
            out.append(row[0])
            total += row[10]
            if len(out) >= limit or total >= max_bytes:
                return out, cursor, True
        if pattern is not None and scanned >= MAX_SCAN_ROWS:
            return out, cursor, True
    return out, cursor, False


def table(sizes: list[int], subjects: list[str]) -> list[ReadRow]:
    return [
        (i + 1, "r", subjects[i % len(subjects)], None, 0, 0, None, None, None, b"", size)
        for i, size in enumerate(sizes)
    ]


@given(
    sizes=st.lists(st.integers(1, 5000), max_size=3000),
    subjects=st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=3),
    after=st.integers(0, 50),
    limit=st.integers(1, 3000),
    max_bytes=st.integers(1, 10**7),
    filtered=st.booleans(),
)
def test_collect_matches_the_row_by_row_loop(
    sizes: list[int],
    subjects: list[str],
    after: int,
    limit: int,
    max_bytes: int,
    filtered: bool,
) -> None:
    rows = table(sizes, subjects)
    queries: list[int] = []

    def fetch(cursor: int, n: int) -> list[ReadRow]:
        assert n >= 1
        queries.append(n)
        return [r for r in rows if r[0] > cursor][:n]

    pattern = "a" if filtered else None
    got = collect(
        fetch,
        after=after,
        limit=limit,
        max_bytes=max_bytes,
        match=None if pattern is None else pattern.__eq__,
    )
    want = reference(rows, after=after, limit=limit, max_bytes=max_bytes, pattern=pattern)
    assert ([r[0] for r in got.rows], got.next, got.more) == want
