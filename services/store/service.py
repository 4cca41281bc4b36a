"""The unit of work of the durable buffer (DESIGN §4, STYLE §3.6).

Theory of operation
-------------------
``StoreService`` is synchronous: every public method is one transaction and
runs in trio's worker thread, one at a time (``server.py`` holds
``CapacityLimiter(1)``). It keeps, per remote, the pending backlog (msgs and
bytes, what the limits bound), the retained rows, and the drop counters in
memory, loaded once by ``open()``. Each method works on a copy of the counters
it changes and installs the copy only after ``commit()`` returned, so a
failed transaction (disk full, Postgres down) leaves memory and database
agreeing and the store keeps serving.

Seqs come from ``last_seq`` in memory, persisted in ``store_meta`` within
each append transaction, so they are never reused (a reused seq would give a
new message an old ``Nats-Msg-Id``, and the hub's de-duplication would drop it).
On PostgreSQL, which several nodes may share, they come from blocks reserved
in ``store_meta`` instead (``seqblocks.py``), and every row carries its
backlog (``node``): the counters, limits and housekeeping are the primary
backlog's (the one this node appends to); backlogs taken over from dead nodes
(``leases.py``) are read and acked, with their own counters, and purged.

Limits (per remote ``buffer`` block; unknown remotes get the defaults):
a message larger than ``max_bytes`` is refused. ``discard: new`` refuses
messages that would push the backlog past ``max_msgs``/``max_bytes``.
``discard: old`` accepts them and deletes the oldest pending messages, older
rows first and then the batch's own earliest rows if the batch alone is too
big. ``max_age`` expires the head of the backlog in ``housekeep()``, as
JetStream does, whatever ``discard`` says. Retained (acked) rows do not count
against the limits; they live ``retain`` seconds. ``reload()`` swaps the
limits between two operations; ``housekeep()`` then trims a ``discard: old``
backlog that is over lowered limits.
"""

from __future__ import annotations

import itertools
import logging
import operator
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from leafnode.config import BufferSettings
from leafnode.proto import is_literal, subject_matches

from . import repo
from .advisory import START_LOCK, lock
from .leases import Leases, NotHeldError, TickOutcome
from .reads import ReadOutcome, collect, merge
from .repo import MessageFilter
from .seqblocks import SeqBlocks

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from sqlalchemy.engine import Connection, Engine

    from leafnode.ipc import AppendColumns

__all__ = ["AppendOutcome", "ReadOutcome", "StoreService", "subject_filter"]

log = logging.getLogger("leafnode.store")

# Rows fetched per query when limits drop old rows or expire them.
SCAN_CHUNK: Final = 1000
DEFAULT_BUFFER: Final = BufferSettings()


@dataclass
class _Counts:
    """Per-remote counters: the pending backlog and the retained rows."""

    msgs: int = 0
    bytes: int = 0
    retained_msgs: int = 0
    retained_bytes: int = 0

    def copy(self) -> _Counts:
        return _Counts(self.msgs, self.bytes, self.retained_msgs, self.retained_bytes)


@dataclass(slots=True)
class AppendOutcome:
    """What one append request got: its seqs, refusals, and drops it caused."""

    first_seq: int = 0
    last_seq: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)
    # remote -> the highest seq this request stored for it (for ``appended``).
    remotes: dict[str, int] = field(default_factory=dict)


def subject_filter(patterns: Sequence[str] | None) -> Callable[[str], bool] | None:
    """A predicate for NATS subject patterns (None = everything matches)."""
    if not patterns:
        return None
    literals = frozenset(p for p in patterns if is_literal(p.encode()))
    wild = [p.encode() for p in patterns if p not in literals]
    if not wild:
        return literals.__contains__

    def match(subject: str) -> bool:
        if subject in literals:
            return True
        raw = subject.encode()
        return any(subject_matches(p, raw) for p in wild)

    return match


class StoreService:
    """The buffer's operations, each one transaction (run them in the DB thread).

    Args:
        engine: the store's engine (``engine.create_store_engine``).
        buffers: ``BufferSettings`` per remote name.
        clock_us: the wall clock in microseconds (tests may pass another).
        node: this node's name (``server_name``, else the host name).
        takeover_after_s: ``buffer { takeover_after }``: on PostgreSQL, how
            long another node's backlog must have been unattended before
            this node takes it over.
    """

    def __init__(
        self,
        engine: Engine,
        buffers: Mapping[str, BufferSettings],
        *,
        clock_us: Callable[[], int] | None = None,
        node: str = "",
        takeover_after_s: float = 30.0,
    ) -> None:
        self.engine = engine
        self.buffers = dict(buffers)
        self._clock_us = clock_us or (lambda: time.time_ns() // 1000)
        self.leaf_id = ""
        self.last_seq = 0
        self.node = node
        shared = engine.dialect.name == "postgresql"
        # Shared (PostgreSQL) stores only: leases and seq blocks.
        self.leases = Leases(node, takeover_after_s) if shared else None
        self._seqs = SeqBlocks() if shared else None
        # Whose drop counters these are: each node counts its own ("" on SQLite).
        self._drops_node = node if shared else ""
        # The backlog this node appends to ("" on SQLite).
        self.backlog = ""
        # Backlogs taken over: backlog -> remote -> counters.
        self._held_counts: dict[str, dict[str, _Counts]] = {}
        self._counts: dict[str, _Counts] = {name: _Counts() for name in self.buffers}
        self._drops: dict[str, dict[str, int]] = {}
        self._warned: set[str] = set()
        # Held while committed counters are installed, so ``stats_from_memory``
        # (the trio thread, while the database is down) sees them whole.
        self._counters_lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------

    def open(self) -> None:
        """Load the leaf id, the seq high-water mark and the counters (once, at start)."""
        with self.engine.begin() as conn:
            # Nodes sharing a PostgreSQL store start one after the other
            # (advisory.py): each step below reads, then writes.
            lock(conn, START_LOCK)
            leaf_id = repo.get_meta("leaf_id", conn=conn)
            if leaf_id is None:
                created = secrets.token_hex(10)
                leaf_id = repo.add_meta("leaf_id", created, conn=conn)
                if leaf_id == created:
                    log.info("Created store leaf id %s", leaf_id)
            meta = repo.get_meta("last_seq", conn=conn)
            last_seq = max(int(meta or 0), repo.max_seq(conn=conn))
            if self.leases is not None:
                # Other nodes may have reserved beyond it: only ever raise it.
                if meta is None:
                    repo.add_meta("last_seq", str(last_seq), conn=conn)
                repo.raise_meta_seq(last_seq, conn=conn)
                # The store-wide high-water mark; the first append reserves a
                # block above it (seqblocks.py).
                self.leases.start(conn)
                self.backlog = self.leases.primary
            totals = repo.totals(MessageFilter(node=self.backlog), conn=conn)
            if self.leases is not None:
                # Counters of a store from before nodes ("") are this node's.
                repo.adopt_drops(self.node, conn=conn)
            drops = repo.load_drops(node=self._drops_node, conn=conn)
        self.leaf_id, self.last_seq, self._drops = leaf_id, last_seq, drops
        for remote, pending, n, nbytes in totals:
            c = self._counts.setdefault(remote, _Counts())
            if pending:
                c.msgs, c.bytes = n, nbytes
            else:
                c.retained_msgs, c.retained_bytes = n, nbytes

    def reload(self, buffers: Mapping[str, BufferSettings]) -> list[str]:
        """Use new buffer settings from now on (the config was re-read).

        The next append and the next ``housekeep`` apply them; nothing stored
        changes here. A remote no longer configured keeps its backlog, under
        the default limits.

        Returns:
            One line per remote whose limits changed, for the log and the answer.
        """
        changes: list[str] = []
        for name in sorted(set(self.buffers) | set(buffers)):
            old, new = self.buffers.get(name), buffers.get(name)
            if old == new:
                continue
            if new is None:
                changes.append(f"remote {name!r}: no buffer any more (default limits)")
                continue
            before = old or DEFAULT_BUFFER
            diffs = [
                f"{key} {_limit(getattr(before, key))} -> {_limit(getattr(new, key))}"
                for key in _LIMIT_KEYS
                if getattr(before, key) != getattr(new, key)
            ]
            if old is None or diffs:  # a change of subjects only is not the store's
                what = "buffered" if old is None else "limits"
                changes.append(f"remote {name!r}: {what}" + "".join(f", {d}" for d in diffs))
        self.buffers = dict(buffers)
        with self._counters_lock:
            for name in self.buffers:
                self._counts.setdefault(name, _Counts())
        self._warned.difference_update(self.buffers)
        return changes

    def limits(self, remote: str) -> BufferSettings:
        """The buffer settings of ``remote`` (the defaults for an unknown one)."""
        found = self.buffers.get(remote)
        if found is None:
            if remote not in self._warned:
                self._warned.add(remote)
                log.warning("Buffering for unknown remote %r with default limits", remote)
            return DEFAULT_BUFFER
        return found

    # -- append --------------------------------------------------------------------

    def append(self, batches: Sequence[AppendColumns]) -> list[AppendOutcome]:
        """Store several append requests in one transaction.

        Returns:
            One ``AppendOutcome`` per request, in order.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: nothing was stored; state unchanged.
        """
        counts: dict[str, _Counts] = {}
        drops: Counter[tuple[str, str]] = Counter()
        rows: list[repo.InsertRow | None] = []
        # remote -> (counters, max_bytes, max_msgs if discard new else None, discard new)
        per_remote: dict[str, tuple[_Counts, int | None, int | None, bool]] = {}
        seq = self.last_seq
        if self._seqs is not None:
            total = sum(len(batch) for batch in batches)
            if not self._seqs.room(seq, total):
                with self.engine.begin() as conn:
                    seq = self._seqs.reserve(total, conn)
                self.last_seq = seq  # committed: the seqs before the block are never used
        node = self.backlog
        outcomes: list[AppendOutcome] = []
        for batch in batches:
            out = AppendOutcome()
            outcomes.append(out)
            last_by_remote = out.remotes
            fast = self._plain_rows(batch, seq, node, counts, per_remote)
            if fast is not None:
                rows.extend(fast)
                seq += len(fast)
                if fast:
                    last_by_remote[batch.remote[0]] = seq
                    out.last_seq = seq
                    out.first_seq = seq - len(fast) + 1
                continue
            for index, (remote, subject, reply, hdr_len, data, received_at_us, queues) in enumerate(
                zip(
                    batch.remote,
                    batch.subject,
                    batch.reply,
                    batch.hdr_len,
                    batch.data,
                    batch.received_at_us,
                    batch.queues,
                    strict=True,
                )
            ):
                known = per_remote.get(remote)
                if known is None:
                    lim = self.limits(remote)
                    c = counts[remote] = self._counts.get(remote, _Counts()).copy()
                    new = lim.discard == "new"
                    known = per_remote[remote] = (c, lim.max_bytes, lim.max_msgs, new)
                c, max_bytes, max_msgs, discard_new = known
                size = len(data) + len(subject) + (len(reply) if reply else 0)
                if max_bytes is not None and (
                    size > max_bytes or (discard_new and c.bytes + size > max_bytes)
                ):
                    out.refused.append((index, "max_bytes"))
                    drops[remote, "max_bytes"] += 1
                    continue
                if discard_new and max_msgs is not None and c.msgs >= max_msgs:
                    out.refused.append((index, "max_msgs"))
                    drops[remote, "max_msgs"] += 1
                    continue
                seq += 1
                last_by_remote[remote] = seq
                c.msgs += 1
                c.bytes += size
                rows.append(
                    (
                        seq,
                        node,
                        remote,
                        subject,
                        reply,
                        data[:hdr_len] if hdr_len else None,
                        data[hdr_len:] if hdr_len else data,
                        received_at_us,
                        None,
                        " ".join(queues) if queues else None,
                        size,
                    )
                )
            if last_by_remote:
                out.last_seq = seq
                out.first_seq = seq - (len(batch) - len(out.refused)) + 1
        with self.engine.begin() as conn:
            for remote, (c, _mb, _mm, discard_new) in per_remote.items():
                if not discard_new:
                    self._discard_old(remote, self.limits(remote), c, rows, drops, conn)
            # Only _discard_old leaves holes (None): skip the filtering copy without.
            kept = rows if None not in rows else [r for r in rows if r is not None]
            repo.insert_messages(kept, conn=conn)  # type: ignore[arg-type]
            if seq != self.last_seq and self._seqs is None:
                repo.set_meta("last_seq", str(seq), conn=conn)
            if drops:
                repo.add_drops(drops, node=self._drops_node, conn=conn)
        self._install(counts, drops)
        self.last_seq = seq
        return outcomes

    def _plain_rows(
        self,
        batch: AppendColumns,
        seq: int,
        node: str,
        counts: dict[str, _Counts],
        per_remote: dict[str, tuple[_Counts, int | None, int | None, bool]],
    ) -> list[repo.InsertRow] | None:
        """The rows of a plain batch, built in C; None when it needs the per-message loop.

        Plain: one remote, no headers, no queues, and no message refused by
        the limits (none above ``max_bytes``; with ``discard: new`` the
        whole batch fits). That is the router's usual batch, and then the
        rows are ``zip`` over the columns with no Python step per message:
        the same rows, seqs and counters the loop gives.
        """
        n = len(batch)
        remotes = batch.remote
        if not n or remotes.count(remotes[0]) != n or any(batch.hdr_len) or any(batch.queues):
            return None
        remote = remotes[0]
        subjects, replies, data = batch.subject, batch.reply, batch.data
        sizes = list(map(operator.add, map(len, data), map(len, subjects)))
        if replies.count(None) != n:
            sizes = list(map(operator.add, sizes, (len(r) if r else 0 for r in replies)))
        known = per_remote.get(remote)
        if known is None:
            lim = self.limits(remote)
            c = self._counts.get(remote, _Counts()).copy()
            known = (c, lim.max_bytes, lim.max_msgs, lim.discard == "new")
        c, max_bytes, max_msgs, discard_new = known
        total = sum(sizes)
        if max_bytes is not None and (
            max(sizes) > max_bytes or (discard_new and c.bytes + total > max_bytes)
        ):
            return None
        if discard_new and max_msgs is not None and c.msgs + n > max_msgs:
            return None
        if remote not in per_remote:
            counts[remote] = c
            per_remote[remote] = known
        c.msgs += n
        c.bytes += total
        none = itertools.repeat(None)
        return list(
            zip(
                range(seq + 1, seq + n + 1),
                itertools.repeat(node),
                itertools.repeat(remote),
                subjects,
                replies,
                none,
                data,
                batch.received_at_us,
                none,
                none,
                sizes,
            )
        )

    def _discard_old(
        self,
        remote: str,
        lim: BufferSettings,
        c: _Counts,
        rows: list[repo.InsertRow | None],
        drops: Counter[tuple[str, str]],
        conn: Connection,
    ) -> None:
        """Delete the oldest pending messages until ``remote`` is within its limits."""
        need_msgs = c.msgs - lim.max_msgs if lim.max_msgs is not None else 0
        need_bytes = c.bytes - lim.max_bytes if lim.max_bytes is not None else 0
        if need_msgs <= 0 and need_bytes <= 0:
            return
        cutoff = 0
        while need_msgs > 0 or need_bytes > 0:
            oldest = repo.oldest_pending(
                remote, node=self.backlog, after=cutoff, limit=SCAN_CHUNK, conn=conn
            )
            for seq, size, _received in oldest:
                if need_msgs <= 0 and need_bytes <= 0:
                    break
                drops[remote, "max_msgs" if need_msgs > 0 else "max_bytes"] += 1
                need_msgs -= 1
                need_bytes -= size
                c.msgs -= 1
                c.bytes -= size
                cutoff = seq
            if len(oldest) < SCAN_CHUNK:
                break
        if cutoff:
            repo.delete_matching(
                MessageFilter(node=self.backlog, remote=remote, pending=True, upto=cutoff),
                conn=conn,
            )
        # The batch alone is over the limit: its earliest messages go too.
        for index, row in enumerate(rows):
            if need_msgs <= 0 and need_bytes <= 0:
                break
            if row is None or row[2] != remote:
                continue
            size = row[10]
            drops[remote, "max_msgs" if need_msgs > 0 else "max_bytes"] += 1
            need_msgs -= 1
            need_bytes -= size
            c.msgs -= 1
            c.bytes -= size
            rows[index] = None

    # -- read ----------------------------------------------------------------------

    def read(
        self,
        *,
        remote: str | None,
        after: int,
        limit: int,
        max_bytes: int,
        subjects: Sequence[str] | None = None,
        acked: bool = False,
        since_us: int | None = None,
        until_us: int | None = None,
        backlog: str | None = None,
    ) -> ReadOutcome:
        """Messages after the cursor ``after``, in seq order (see the protocol docs).

        Rows come back as driver tuples (``repo.ReadRow``); ``reads.encode_read``
        turns them into the answer. ``backlog``: a drain's backlog (the
        primary when None); one this node does not hold reads as empty here (the
        server answers a drain's read of it ``not_held`` instead).
        """
        match = subject_filter(subjects)
        literal = subjects[0] if subjects and len(subjects) == 1 and match else None
        if literal is not None and not is_literal(literal.encode()):
            literal = None
        if literal is not None:
            match = None  # the SQL condition is the whole filter
        if backlog is not None and not self.holds(backlog):
            return collect(
                lambda _c, _n: [], after=after, limit=limit, max_bytes=max_bytes, match=None
            )
        flt = MessageFilter(
            node=self.backlog if backlog is None else backlog,
            remote=remote,
            pending=None if acked else True,
            since_us=since_us,
            until_us=until_us,
            subject=literal,
        )
        with self.engine.begin() as conn:

            def fetch(cursor: int, n: int) -> list[repo.ReadRow]:
                return repo.read_rows(flt, after=cursor, limit=n, conn=conn)

            return collect(fetch, after=after, limit=limit, max_bytes=max_bytes, match=match)

    def read_held(
        self,
        *,
        remote: str | None,
        after: int,
        limit: int,
        max_bytes: int,
        subjects: Sequence[str] | None = None,
        acked: bool = False,
        since_us: int | None = None,
        until_us: int | None = None,
    ) -> tuple[ReadOutcome, list[str]]:
        """``read`` over this node's own backlog and every backlog it took over.

        One transaction; the rows in seq order with each row's backlog
        (``reads.merge``). The own backlog is read even while its lease is
        not held yet (reading changes nothing; those rows are this node's).
        """
        match = subject_filter(subjects)
        literal = subjects[0] if subjects and len(subjects) == 1 and match else None
        if literal is not None and not is_literal(literal.encode()):
            literal = None
        if literal is not None:
            match = None
        leases = self.leases
        backlogs = [self.backlog]
        if leases is not None:
            backlogs += sorted(b for b in leases.held if b != self.backlog)
        parts: list[tuple[str, ReadOutcome]] = []
        with self.engine.begin() as conn:
            for node in backlogs:
                flt = MessageFilter(
                    node=node,
                    remote=remote,
                    pending=None if acked else True,
                    since_us=since_us,
                    until_us=until_us,
                    subject=literal,
                )

                def fetch(cursor: int, n: int, flt: MessageFilter = flt) -> list[repo.ReadRow]:
                    return repo.read_rows(flt, after=cursor, limit=n, conn=conn)

                got = collect(fetch, after=after, limit=limit, max_bytes=max_bytes, match=match)
                parts.append((node, got))
        return merge(parts, after=after, limit=limit, max_bytes=max_bytes)

    # -- ack, purge, redrive -----------------------------------------------------------

    def holds(self, backlog: str) -> bool:
        """Whether this node drains ``backlog`` now (always its own on SQLite)."""
        return backlog in self.leases.held if self.leases is not None else backlog == self.backlog

    def ack(
        self,
        remote: str,
        *,
        upto: int | None,
        seqs: Sequence[int] | None,
        backlog: str | None = None,
    ) -> int:
        """Acknowledge pending messages of ``remote``; returns how many were pending.

        They are deleted, or marked acked (retained) when the remote has ``retain``.
        ``backlog``: whose (the primary when None).

        Raises:
            LeaseLostError: another node holds ``backlog`` now (nothing changed).
        """
        node = self.backlog if backlog is None else backlog
        parts: list[MessageFilter] = []
        if upto is not None:
            parts.append(MessageFilter(node=node, remote=remote, pending=True, upto=upto))
        for chunk in repo.chunked(sorted(set(seqs or ()))):
            parts.append(MessageFilter(node=node, remote=remote, pending=True, seqs=chunk))
        if not parts:
            return 0
        retain = self.limits(remote).retain_s > 0
        now = self._clock_us()
        own = node == self.backlog
        counts = self._counts if own else self._held_counts.get(node, {})
        c = counts.get(remote, _Counts()).copy()
        acked = 0
        with self.engine.begin() as conn:
            if self.leases is not None:
                self.leases.check(node, conn)
            # Parts run in order, so a seq both <= upto and listed counts once.
            for flt in parts:
                n, nbytes = repo.remove_counted(flt, now if retain else None, conn=conn)
                if retain:
                    c.retained_msgs += n
                    c.retained_bytes += nbytes
                c.msgs -= n
                c.bytes -= nbytes
                acked += n
        if own:
            self._install({remote: c}, Counter())
        elif node in self._held_counts:
            with self._counters_lock:
                self._held_counts[node][remote] = c
        return acked

    def operated(self, backlog: str | None = None) -> list[str]:
        """The backlogs an operator's purge or redrive changes: ``backlog``, or every
        backlog this node holds (its own first, then those taken over, by id).

        Raises:
            NotHeldError: ``backlog`` is not held here, or (none named) this
                node's own backlog is not held yet: its previous process's
                lease has not expired (``leases.py``, the self grace).
        """
        leases = self.leases
        if backlog is not None:
            if not self.holds(backlog):
                waiting = leases is not None and backlog == self.backlog
                raise NotHeldError(backlog, waiting=waiting)
            return [backlog]
        if leases is None:
            return [self.backlog]
        if not self.holds(self.backlog):
            raise NotHeldError(self.backlog, waiting=True)
        return [self.backlog, *sorted(b for b in leases.held if b != self.backlog)]

    def _counts_of(self, backlog: str) -> dict[str, _Counts]:
        """The counters of ``backlog``: this node's own, or those of one taken over."""
        return self._counts if backlog == self.backlog else self._held_counts.get(backlog, {})

    def _install_held(self, counts: Mapping[str, Mapping[str, _Counts]]) -> None:
        """Make committed counter changes of taken-over backlogs visible."""
        with self._counters_lock:
            for backlog, per in counts.items():
                if backlog != self.backlog and backlog in self._held_counts:
                    self._held_counts[backlog].update(per)

    def purge(
        self,
        *,
        remote: str | None = None,
        subject: str | None = None,
        until_us: int | None = None,
        upto: int | None = None,
        backlog: str | None = None,
    ) -> dict[str, int]:
        """Delete pending and retained messages matching every filter.

        In ``backlog``, or in every backlog this node holds (``operated``):
        its own and those it took over, each fenced by its lease in the
        transaction (``leases.check``), so a purge never deletes what
        another node drains now. Pending ones count as dropped with reason
        ``purged``, in this node's drop counters. A drain reading a purged
        backlog meanwhile is safe: its acks count only the rows they remove,
        and a purge makes no row pending, so no ``upto`` ack can pass a
        message that was not sent.

        Returns:
            How many were deleted, per backlog (every backlog operated on).

        Raises:
            NotHeldError: see ``operated`` (nothing changed).
            LeaseLostError: another node took a backlog meanwhile (nothing changed).
        """
        backlogs = self.operated(backlog)
        wild = subject is not None and not is_literal(subject.encode())
        counts: dict[str, dict[str, _Counts]] = {}
        drops: Counter[tuple[str, str]] = Counter()
        purged = dict.fromkeys(backlogs, 0)

        def account(node: str, rem: str, pending: bool, n: int, nbytes: int) -> None:
            per = counts.setdefault(node, {})
            c = per.get(rem)
            if c is None:
                c = per[rem] = self._counts_of(node).get(rem, _Counts()).copy()
            if pending:
                c.msgs -= n
                c.bytes -= nbytes
                drops[rem, "purged"] += n
            else:
                c.retained_msgs -= n
                c.retained_bytes -= nbytes
            purged[node] += n

        with self.engine.begin() as conn:
            if self.leases is not None:
                for node in backlogs:
                    self.leases.check(node, conn)
            for node in backlogs:
                flt = MessageFilter(
                    node=node,
                    remote=remote,
                    until_us=until_us,
                    upto=upto,
                    subject=None if wild else subject,
                )
                if not wild:
                    for rem, pending, n, nbytes in repo.totals(flt, conn=conn):
                        account(node, rem, pending, n, nbytes)
                    repo.delete_matching(flt, conn=conn)
                    continue
                assert subject is not None
                pattern = subject.encode()
                picked: list[int] = []
                for seq, rem, subj, pending, size in repo.select_matching(flt, conn=conn):
                    if subject_matches(pattern, subj.encode()):
                        picked.append(seq)
                        account(node, rem, pending, 1, size)
                for chunk in repo.chunked(picked):
                    repo.delete_matching(MessageFilter(seqs=chunk), conn=conn)
            if drops:
                repo.add_drops(drops, node=self._drops_node, conn=conn)
        self._install(counts.pop(self.backlog, {}), drops)
        self._install_held(counts)
        return purged

    def redrive(
        self,
        remote: str,
        *,
        subject: str | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
        backlog: str | None = None,
    ) -> dict[str, tuple[int, int]]:
        """Make retained messages of ``remote`` pending again.

        In ``backlog``, or in every backlog this node holds (``operated``),
        each fenced by its lease in the transaction, as ``purge``.

        Returns:
            Per backlog: how many, and the lowest seq among them (0 when none).

        Raises:
            NotHeldError: see ``operated`` (nothing changed).
            LeaseLostError: another node took a backlog meanwhile (nothing changed).
        """
        backlogs = self.operated(backlog)
        match = subject_filter([subject] if subject else None)
        counts: dict[str, dict[str, _Counts]] = {}
        out: dict[str, tuple[int, int]] = {}
        with self.engine.begin() as conn:
            if self.leases is not None:
                for node in backlogs:
                    self.leases.check(node, conn)
            for node in backlogs:
                flt = MessageFilter(
                    node=node,
                    remote=remote,
                    pending=False,
                    since_us=since_us,
                    until_us=until_us,
                )
                c = self._counts_of(node).get(remote, _Counts()).copy()
                picked: list[int] = []
                for seq, _rem, subj, _pending, size in repo.select_matching(flt, conn=conn):
                    if match is None or match(subj):
                        picked.append(seq)
                        c.retained_msgs -= 1
                        c.retained_bytes -= size
                        c.msgs += 1
                        c.bytes += size
                for chunk in repo.chunked(picked):
                    repo.set_acked(MessageFilter(seqs=chunk), None, conn=conn)
                counts[node] = {remote: c}
                out[node] = (len(picked), min(picked, default=0))
        self._install(counts.pop(self.backlog, {}), Counter())
        self._install_held(counts)
        return out

    # -- housekeeping and stats ------------------------------------------------------

    def housekeep(self) -> dict[tuple[str, str], int]:
        """Expire pending messages older than ``max_age`` and retained ones past ``retain``.

        Also brings a ``discard: old`` backlog back within ``max_msgs`` and
        ``max_bytes`` after a reload lowered them (dropping the oldest, as an
        append would); a ``discard: new`` backlog keeps what it holds and
        refuses appends until it is below the limits.

        Returns:
            Pending messages dropped, per ``(remote, reason)`` (only non-zero).
        """
        now = self._clock_us()
        counts: dict[str, _Counts] = {}
        drops: Counter[tuple[str, str]] = Counter()
        with self.engine.begin() as conn:
            for remote, current in self._counts.items():
                lim = self.limits(remote) if remote in self.buffers else DEFAULT_BUFFER
                c = current.copy()
                if lim.discard != "new" and (
                    (lim.max_msgs is not None and c.msgs > lim.max_msgs)
                    or (lim.max_bytes is not None and c.bytes > lim.max_bytes)
                ):
                    self._discard_old(remote, lim, c, [], drops, conn)
                    counts[remote] = c
                if lim.max_age_s is not None and c.msgs:
                    cutoff_us = now - int(lim.max_age_s * 1_000_000)
                    n, nbytes, last = self._expired_head(remote, cutoff_us, conn)
                    if n:
                        repo.delete_matching(
                            MessageFilter(
                                node=self.backlog, remote=remote, pending=True, upto=last
                            ),
                            conn=conn,
                        )
                        c.msgs -= n
                        c.bytes -= nbytes
                        drops[remote, "max_age"] += n
                        counts[remote] = c
                if c.retained_msgs:
                    flt = MessageFilter(
                        node=self.backlog,
                        remote=remote,
                        pending=False,
                        acked_before_us=now - int(lim.retain_s * 1_000_000),
                    )
                    n, nbytes = _sum(repo.totals(flt, conn=conn))
                    if n:
                        repo.delete_matching(flt, conn=conn)
                        c.retained_msgs -= n
                        c.retained_bytes -= nbytes
                        counts[remote] = c
            if drops:
                repo.add_drops(drops, node=self._drops_node, conn=conn)
        self._install(counts, drops)
        return {key: n for key, n in drops.items() if n}

    def _expired_head(self, remote: str, cutoff_us: int, conn: Connection) -> tuple[int, int, int]:
        """Count the oldest pending rows received before ``cutoff_us`` (head expiry)."""
        n = nbytes = last = 0
        while True:
            rows = repo.oldest_pending(
                remote, node=self.backlog, after=last, limit=SCAN_CHUNK, conn=conn
            )
            for seq, size, received in rows:
                if received >= cutoff_us:
                    return n, nbytes, last
                n += 1
                nbytes += size
                last = seq
            if len(rows) < SCAN_CHUNK:
                return n, nbytes, last

    def probe(self) -> None:
        """A one-row write (``store_meta`` heartbeat): does the database take writes?

        Raises:
            sqlalchemy.exc.SQLAlchemyError: it does not (see ``health.py``).
        """
        with self.engine.begin() as conn:
            repo.set_meta("heartbeat_us", str(self._clock_us()), conn=conn)

    def stats(self) -> dict[str, object]:
        """The ``stats`` answer: backlog, retained rows and drops per remote."""
        now = self._clock_us()
        with self.engine.begin() as conn:
            oldest = {
                (self.backlog, remote): repo.oldest_pending_received(
                    remote, node=self.backlog, conn=conn
                )
                for remote, c in sorted(self._counts.items())
                if c.msgs
            }
            for backlog, counts in self._held_counts.items():
                for remote, c in counts.items():
                    if c.msgs:
                        oldest[backlog, remote] = repo.oldest_pending_received(
                            remote, node=backlog, conn=conn
                        )
        return self._stats(
            {
                key: None if received is None else max(0, now - received) / 1e6
                for key, received in oldest.items()
            }
        )

    def stats_from_memory(self) -> dict[str, object]:
        """``stats`` without the database (it is down): ``oldest_age_s`` is null.

        Safe to call from another thread than the DB worker's.
        """
        return self._stats({})

    def _stats(self, ages: Mapping[tuple[str, str], float | None]) -> dict[str, object]:
        with self._counters_lock:
            counts = {remote: c.copy() for remote, c in self._counts.items()}
            drops = {remote: dict(reasons) for remote, reasons in self._drops.items()}
            held_counts = {
                b: {r: c.copy() for r, c in per.items()} for b, per in self._held_counts.items()
            }
        remotes: dict[str, object] = {}
        total_msgs = total_bytes = 0
        for remote, c in sorted(counts.items()):
            lim = self.buffers.get(remote)
            remotes[remote] = {
                "msgs": c.msgs,
                "bytes": c.bytes,
                "oldest_age_s": ages.get((self.backlog, remote)),
                "retained_msgs": c.retained_msgs,
                "retained_bytes": c.retained_bytes,
                "dropped": drops.get(remote, {}),
                # discard: new at a limit: new messages are refused.
                "full": lim is not None
                and lim.discard == "new"
                and (
                    (lim.max_msgs is not None and c.msgs >= lim.max_msgs)
                    or (lim.max_bytes is not None and c.bytes >= lim.max_bytes)
                ),
            }
            total_msgs += c.msgs
            total_bytes += c.bytes
        for remote, reasons in drops.items():
            if remote not in remotes:
                remotes[remote] = {
                    "msgs": 0,
                    "bytes": 0,
                    "oldest_age_s": None,
                    "retained_msgs": 0,
                    "retained_bytes": 0,
                    "dropped": reasons,
                    "full": False,
                }
        held: list[dict[str, object]] = []
        leases = self.leases
        for lease in leases.status() if leases is not None else []:
            backlog = str(lease["backlog"])
            per = held_counts.get(backlog, {})
            held.append(
                {
                    **lease,
                    "remotes": {
                        remote: {
                            "msgs": c.msgs,
                            "bytes": c.bytes,
                            "oldest_age_s": ages.get((backlog, remote)),
                        }
                        for remote, c in sorted(per.items())
                    },
                }
            )
        return {
            "leaf_id": self.leaf_id,
            "last_seq": self.last_seq,
            "node": self.node,
            "backlog": self.backlog,
            # Whether this node drains its own backlog now (False while it
            # waits for its previous process's lease; always on SQLite).
            "backlog_held": self.holds(self.backlog),
            "shared": leases is not None,
            "held": held,
            "takeovers": leases.takeovers if leases is not None else 0,
            "remotes": remotes,
            "total": {"msgs": total_msgs, "bytes": total_bytes},
        }

    # -- leases (shared PostgreSQL stores) --------------------------------------------

    def lease_tick(self) -> TickOutcome | None:
        """Renew this node's leases, take over dead nodes' backlogs (``leases.py``).

        None on SQLite (nothing to do). A lost primary backlog starts a new
        one, empty: the counters (and limits) start from zero there.
        """
        leases = self.leases
        if leases is None:
            return None
        loaded: dict[str, dict[str, _Counts]] = {}
        with self.engine.begin() as conn:
            out = leases.tick(conn)
            for held in out.gained:
                if held.backlog == self.backlog:
                    continue
                per = loaded[held.backlog] = {}
                for remote, pending, n, nbytes in repo.totals(
                    MessageFilter(node=held.backlog), conn=conn
                ):
                    c = per.setdefault(remote, _Counts())
                    if pending:
                        c.msgs, c.bytes = n, nbytes
                    else:
                        c.retained_msgs, c.retained_bytes = n, nbytes
        with self._counters_lock:
            for backlog in (*out.lost, *out.released):
                self._held_counts.pop(backlog, None)
            self._held_counts.update(loaded)
            if out.new_primary is not None:
                self.backlog = out.new_primary
                self._counts = {name: _Counts() for name in self.buffers}
        return out

    def _install(self, counts: Mapping[str, _Counts], drops: Counter[tuple[str, str]]) -> None:
        """Make committed counter changes visible (only after the commit)."""
        with self._counters_lock:
            self._counts.update(counts)
            for (remote, reason), n in drops.items():
                per = self._drops.setdefault(remote, {})
                per[reason] = per.get(reason, 0) + n


_LIMIT_KEYS: Final = ("max_msgs", "max_bytes", "max_age_s", "discard", "retain_s")


def _limit(value: object) -> str:
    return "unlimited" if value is None else str(value)


def _sum(rows: Sequence[tuple[str, bool, int, int]]) -> tuple[int, int]:
    """Total count and bytes over ``repo.totals`` rows."""
    return sum(r[2] for r in rows), sum(r[3] for r in rows)
