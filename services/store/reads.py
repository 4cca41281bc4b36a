"""The ``read`` request: collecting rows and encoding the answer (the replay's hot path).

Theory of operation
-------------------
A read returns the pending (or also retained) messages after a cursor, in
seq order, up to ``limit`` messages and about ``max_bytes``. The uplink's
drain reads 2000 small messages at a time, so everything here works on whole
batches of driver tuples (``repo.ReadRow``): no object is built per row
between the database cursor and the frame, the byte limit is found with
``accumulate`` and ``bisect`` over the sizes, and the answer's JSON rows are
built by one comprehension.

Chunks: the first query asks for at most ``SCAN_CHUNK`` rows (a bound on the
memory one query can take with large messages); the next ones are sized
from the bytes still allowed and the average size seen so far. A subject
filter with wildcards is applied here, in Python, and a scan stops after
``MAX_SCAN_ROWS`` rows examined with ``more`` set, so one read never pins
the single DB thread for long.

Several backlogs (the api's read of every backlog a node holds, DESIGN §9):
seqs are unique across a shared store, so one cursor pages through them all.
Each backlog is read as above from the same cursor, and ``merge`` keeps the
rows, in seq order, up to the lowest ``next`` of a backlog that stopped
early (a row above it could come before a row that backlog has not read
yet), then cuts at ``limit`` and ``max_bytes`` again.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from itertools import accumulate
from operator import itemgetter
from typing import TYPE_CHECKING, Final

from leafnode.ipc import encode_frame

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .repo import ReadRow

__all__ = ["MAX_SCAN_ROWS", "SCAN_CHUNK", "ReadOutcome", "collect", "encode_read", "merge"]

# Rows fetched by a read's first query, and per query with a subject filter.
SCAN_CHUNK: Final = 1000
# A filtered read stops after examining this many rows and answers with
# ``more``, so one read never pins the single DB thread for long.
MAX_SCAN_ROWS: Final = 100_000
# An unfiltered read's later queries fetch at most this many rows.
MAX_CHUNK: Final = 10_000

_HEADERS: Final = itemgetter(8)
_PAYLOAD: Final = itemgetter(9)
_SIZE: Final = itemgetter(10)
_NO_QUEUES: Final[tuple[str, ...]] = ()


@dataclass(slots=True)
class ReadOutcome:
    """A read's rows (``repo.ReadRow``), the next cursor and whether it stopped early."""

    rows: list[ReadRow]
    next: int
    more: bool


def collect(
    fetch: Callable[[int, int], list[ReadRow]],
    *,
    after: int,
    limit: int,
    max_bytes: int,
    match: Callable[[str], bool] | None,
) -> ReadOutcome:
    """Run a read's queries and cut the answer at ``limit`` and ``max_bytes``.

    Args:
        fetch: ``fetch(cursor, n)``: at most ``n`` rows with seq > ``cursor``,
            in seq order (``repo.read_rows`` with the read's filter).
        after: the request's cursor.
        limit: at most this many messages (>= 1).
        max_bytes: stop once the messages' sizes reach this (>= 1); the row
            that reaches it is included, so at least one message is returned.
        match: a subject predicate (wildcard patterns), or None.

    Returns:
        The rows, the cursor for the next read (the last seq examined) and
        whether the scan stopped before the end of the matching rows.
    """
    out: list[ReadRow] = []
    total = scanned = 0
    cursor = after
    chunk = min(limit, SCAN_CHUNK)
    while True:
        rows = fetch(cursor, chunk)
        if not rows:
            return ReadOutcome(out, cursor, False)
        scanned += len(rows)
        got = rows if match is None else [r for r in rows if match(r[2])]
        if got:
            # sums[j] = bytes after taking got[:j]; sums[0] is what came before.
            sums = list(accumulate(map(_SIZE, got), initial=total))
            room = limit - len(out)
            if len(got) >= room or sums[-1] >= max_bytes:
                stop = min(room, bisect_left(sums, max_bytes, 1))
                out += got[:stop]
                return ReadOutcome(out, out[-1][0], True)
            out += got
            total = sums[-1]
        cursor = rows[-1][0]
        if scanned >= MAX_SCAN_ROWS:
            return ReadOutcome(out, cursor, True)
        if len(rows) < chunk:
            return ReadOutcome(out, cursor, False)
        if match is None:
            # Enough rows to reach max_bytes at the average size so far.
            average = max(1, total // len(out))
            chunk = min(limit - len(out), MAX_CHUNK, (max_bytes - total) // average + 1)
        else:
            chunk = SCAN_CHUNK


def merge(
    parts: Sequence[tuple[str, ReadOutcome]], *, after: int, limit: int, max_bytes: int
) -> tuple[ReadOutcome, list[str]]:
    """One read's answer over several backlogs, each read by ``collect`` from ``after``.

    Returns:
        The merged outcome (rows in seq order; ``next`` such that no row of
        any backlog at or below it was left out), and each row's backlog.
    """
    stopped = [part.next for _b, part in parts if part.more]
    cutoff = min(stopped) if stopped else None
    tagged = sorted(
        (row[0], backlog, row)
        for backlog, part in parts
        for row in part.rows
        if cutoff is None or row[0] <= cutoff
    )
    out: list[ReadRow] = []
    names: list[str] = []
    total = 0
    for _seq, backlog, row in tagged:
        if len(out) >= limit or total >= max_bytes:
            return ReadOutcome(out, out[-1][0], True), names
        out.append(row)
        names.append(backlog)
        total += _SIZE(row)
    if cutoff is not None:
        return ReadOutcome(out, cutoff, True), names
    return ReadOutcome(out, max((p.next for _b, p in parts), default=after), False), names


def encode_read(
    rid: int,
    outcome: ReadOutcome,
    *,
    columns: bool = False,
    one_remote: bool = False,
    backlogs: Sequence[str] | None = None,
) -> bytes:
    """The ``ok`` answer to a read (layouts in ``leafnode.ipc``'s protocol docs).

    Rows: what ``leafnode.ipc.encode_read_reply`` sends, without a
    ``StoredMsg`` per row: the JSON rows come from the driver tuples in one
    comprehension. Columns: one transposition (``zip``) of the tuples, and a
    column that is empty throughout (reply, hdr_len, queues, acked_at_us) is
    sent as ``null``; a third of the JSON to encode (and for the uplink to
    decode) and no list per row. Each blob is the payload itself unless the
    message has headers.

    Args:
        rid: the request's id.
        outcome: what ``collect`` returned.
        columns: the request asked for the columns layout.
        one_remote: the request named a remote; the columns layout then
            sends ``remote`` as ``null`` (every message is that remote's).
        backlogs: each message's backlog (a read of several: ``merge``),
            sent as ``backlogs``, a list parallel to the messages.
    """
    rows = outcome.rows
    if any(map(_HEADERS, rows)):
        blobs: Sequence[bytes] = [h + p if h else p for *_, h, p, _z in rows]
    else:
        blobs = list(map(_PAYLOAD, rows))
    fields: dict[str, object] = {"next": outcome.next, "more": outcome.more}
    if backlogs is not None:
        fields["backlogs"] = list(backlogs)
    if not columns:
        fields["msgs"] = [
            (seq, remote, subject, reply, hdr_len, received, q.split() if q else _NO_QUEUES, acked)
            for seq, remote, subject, reply, hdr_len, received, q, acked, _h, _p, _z in rows
        ]
        return encode_frame("ok", rid, fields, blobs)
    n = len(rows)
    seq, remote, subject, reply, hdr_len, received, queues, acked = (
        list(zip(*rows, strict=True))[:8] if n else ((),) * 8
    )
    fields["seq"] = seq
    fields["remote"] = None if one_remote else remote
    fields["subject"] = subject
    fields["reply"] = reply if reply.count(None) != n else None
    fields["hdr_len"] = hdr_len if any(hdr_len) else None
    fields["received_at_us"] = received
    fields["queues"] = (
        [q.split() if q else _NO_QUEUES for q in queues] if queues.count(None) != n else None
    )
    fields["acked_at_us"] = acked if acked.count(None) != n else None
    return encode_frame("ok", rid, fields, blobs)
