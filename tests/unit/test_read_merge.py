"""``reads.merge``: one page over several backlogs from one cursor (services/store/reads.py).

Seqs are unique across a shared store, so the api pages through every
backlog a node holds with one cursor. Each backlog is read from the cursor
with the page's limits; the merged page must give every row exactly once
across pages, in seq order, whatever the interleaving and the limits.
"""

from __future__ import annotations

import random

import pytest

from services.store.reads import ReadOutcome, merge
from services.store.repo import ReadRow as Row


def _row(seq: int, size: int) -> Row:
    # ReadRow's shape: seq, remote, subject, reply, hdr_len, received, queues,
    # acked, headers, payload, size.
    return (seq, "central", "t", None, 0, 0, None, None, None, b"x", size)


def _collect(rows: list[Row], after: int, limit: int, max_bytes: int) -> ReadOutcome:
    """What ``collect`` answers for one backlog (no subject filter)."""
    out: list[Row] = []
    total = 0
    for row in rows:
        if row[0] <= after:
            continue
        out.append(row)
        total += row[10]
        if len(out) >= limit or total >= max_bytes:
            return ReadOutcome(out, row[0], True)
    last = rows[-1][0] if rows else after
    return ReadOutcome(out, max(after, last), False)


@pytest.mark.parametrize("seed", range(100))
def test_paging_over_interleaved_backlogs_gives_every_row_once_in_order(seed: int) -> None:
    rnd = random.Random(seed)
    backlogs: dict[str, list[Row]] = {"own": [], "a": [], "b": []}
    for seq in range(1, rnd.randint(1, 120)):
        backlogs[rnd.choice(list(backlogs))].append(_row(seq, rnd.randint(1, 50)))
    limit, max_bytes = rnd.randint(1, 15), rnd.randint(1, 400)
    got: list[tuple[int, str]] = []
    after = 0
    for _page in range(1000):
        parts = [(b, _collect(rows, after, limit, max_bytes)) for b, rows in backlogs.items()]
        page, names = merge(parts, after=after, limit=limit, max_bytes=max_bytes)
        assert len(page.rows) == len(names) <= limit
        assert page.next >= after
        got += [(r[0], n) for r, n in zip(page.rows, names, strict=True)]
        if not page.more:
            break
        assert page.rows or page.next > after  # progress
        after = page.next
    want = sorted((r[0], b) for b, rows in backlogs.items() for r in rows)
    assert got == want
