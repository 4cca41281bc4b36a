"""The drain: buffered messages from the store to the hub, in order (DESIGN §3.3-§3.4, §4).

Theory of operation
-------------------
The router appends every message on a buffered subject to the store (one
record per buffering remote), whatever the link state. For each remote with a
``buffer {}`` a ``Drain`` tails the store and sends the records to the hub:

* **Reading.** ``_fetcher`` reads pending records of the remote in seq order
  from ``_cursor`` (the store's ``read``; ``next`` is the last seq examined),
  up to ``READ_AHEAD`` batches ahead of the sender, so the store always has
  the next read queued, and waits at the tail for an ``appended`` event. It
  reads only while batches can be released.
* **Release.** A batch is released when the hub link is up *and* the hub's
  initial interest has arrived (``Session.ready``: the PONG of the PING sent
  after CONNECT), and the drain is not paused. Each record goes to the hub
  only when the hub has matching interest: plain interest, or queue groups
  that are not among the record's ``queues`` (the local groups that already
  got it: queue groups stay one group across site and hub). A record the
  hub has no interest in stays pending, remembered in ``_waiting``; later
  records with interest proceed. Nothing left to deliver (no plain interest
  and every matching group served locally): acked without sending.
* **Barrier.** ``_sender`` writes one batch as ``HMSG`` lines with the
  headers stamped (``wire.py``), then a PING, and waits for the PONG: the hub
  has then processed the batch. Only then are its seqs queued for ``_acker``.
  One batch is in flight at a time and batches are bounded in count and
  bytes, which paces the drain so the hub never sees a slow consumer or a
  stale link.
* **Acks.** Acking by seq costs the store an ``IN`` list per 500 seqs; a
  range is far cheaper. ``_frontier`` is a seq such that every pending
  record of the remote up to it has been decided (sent and answered by a
  PONG, or needing no delivery): a batch read from ``after`` to ``next`` in
  which no record was left waiting moves it to ``next`` when ``after`` was
  within it. Acks then say ``upto: frontier`` plus the seqs above it. Any
  reset pulls the frontier back to the new cursor. A redrive through
  ``redrive`` holds ``_op_lock``, so no ``upto`` ack can cross it.
* **Resets.** The cursor moves back (``_reset``), dropping a batch read
  ahead, when the hub link becomes ready (everything pending is read again
  from the oldest: what was sent but not acknowledged by a PONG is sent
  again, at least once), when the store connection is re-established, when
  the hub announces interest that can match a waiting record (back to the
  oldest waiting one), and on a ``rewind`` event (a redrive made acked
  records pending again).
* **No duplicates within a run.** Seqs written and not yet acked in the
  store are in ``_skip``, so a re-read does not send them twice. When the
  link drops, the batch awaiting its PONG leaves ``_skip`` (it must go again).

Only a crash of the uplink between a PONG and the ack sends a record twice
across runs; ``Nats-Msg-Id`` lets a hub stream drop the copy (DESIGN §4).

Backlogs (DESIGN §9). On a PostgreSQL store shared by several nodes each
node appends to its own backlog and the store holds a lease on each backlog
this node drains (services/store/leases.py). A remote's own drain reads the
node's backlog (its name comes with the store's ``subscribe`` answer; a new
one after a takeover of this node); the store's stats list the backlogs
this node took over from dead nodes, and the remote runs one more ``Drain``
per taken-over backlog that holds records of it (``Remote.held_backlogs``),
on the same hub link, with the records' own seqs, so their ``Nats-Msg-Id``s
are the ones the dead node would have sent. Every read and ack names its
backlog; an ack the store refuses with ``lease_lost`` (another node holds
the backlog now) ends the store connection and the drain starts over. A
read the store refuses with ``not_held`` (a restarted store holds its own
backlog only after its previous process's lease expired, seconds later) is
no outage: nothing was read, the drain says ``waiting_for_lease`` and asks
again. A redrive (``redrive``) covers the remote's own drain and those of
its taken-over backlogs in one store request, under all their op locks.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import logging
import time
from array import array
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol, cast

import trio

from leafnode.ipc import (
    STORE_START_GRACE_S,
    IpcClosedError,
    RequestError,
    decode_read_columns,
    open_trio_client,
    stamp_headers,
)
from leafnode.proto import encode_leaf_route

from .progress import Progress, Replay
from .storelink import StoreLink
from .wire import BatchEncoder

if TYPE_CHECKING:
    from leafnode.ipc import Frame, TrioIpcClient

    from .interest import HubInterest
    from .session import Session
    from .wire import BufferSubjects

__all__ = ["BATCH_BYTES", "BATCH_MSGS", "Drain", "DrainOwner", "redrive"]

# A record of a read answer: seq, remote, subject, reply, hdr_len,
# received_at_us, queues, acked_at_us (leafnode.ipc protocol docs).
Row = tuple[int, str, str, "str | None", int, int, list[str], "int | None"]

log = logging.getLogger("leafnode.uplink")

# One batch: at most this many records and about this many bytes (the store
# returns at least one record even when it alone is larger).
BATCH_MSGS: Final = 2000
BATCH_BYTES: Final = 1024 * 1024
# Batches read ahead of the sender.
READ_AHEAD: Final = 2
# Seqs per ack request; acks wait for this many seqs (or ACK_DELAY_S) so a
# fast drain commits acks in a few large transactions.
ACK_MAX: Final = 10_000
ACK_MIN: Final = 4000
ACK_DELAY_S: Final = 0.02
# Back-off while the store is unreachable or answers "unavailable".
RETRY_FIRST_S: Final = 0.05
RETRY_MAX_S: Final = 2.0
# How often the backlog is asked for (remaining, rate, progress lines).
STATS_INTERVAL_S: Final = 1.0
# Bytes the stamped headers may add; a record this close to the hub's
# max_payload is measured exactly before it is sent.
STAMP_ROOM: Final = 160


class DrainOwner(Protocol):
    """What a drain reads of its remote (``remote.Remote``, which builds it).

    A Protocol, so that this module does not import ``remote`` (which imports
    this one); services/uplink/interfaces.py says why.
    """

    name: str
    # The remote's buffered subjects; None once its ``buffer {}`` is gone.
    buffered: BufferSubjects | None
    # The live hub session, None between links.
    session: Session | None
    # The hub's interest (what the hub will accept).
    hub: HubInterest

    def held_backlogs(self, held: list[dict[str, object]]) -> None:
        """The store's list of backlogs taken over (its ``stats`` ``held``)."""


@dataclass(slots=True)
class _Batch:
    epoch: int
    after: int
    next: int
    rows: list[Row]
    blobs: list[bytes]


class Drain:
    """Sends one remote's buffered backlog to its hub (see the module doc).

    Args:
        remote: the remote whose records it drains.
        store_path: ``run_dir/store.sock``.
        held: a backlog taken over from another node (None: this node's own).
    """

    def __init__(self, remote: DrainOwner, store_path: str, held: str | None = None) -> None:
        self.remote = remote
        self.name = remote.name
        self.held = held
        # The backlog read and acked: a taken-over one, or this node's own
        # (the store's ``subscribe`` answer says which; None: not known yet).
        self.backlog = held
        self.node: str | None = None
        # How log lines name this drain.
        self.label = self.name if held is None else f"{self.name}, backlog {held}"
        self.store_path = store_path
        self.scope = trio.CancelScope()
        self.client: TrioIpcClient | None = None
        # The store's state, logged once per outage (storelink.py).
        self.store = StoreLink(self.label, trio.current_time)
        self.leaf_id: str | None = None
        self.encoder: BatchEncoder | None = None
        self.paused = False
        self._epoch = 0
        self._backlog_held: bool | None = None
        # The store refused a read with ``not_held``: it waits for the lease.
        self.lease_wait = False
        self._cursor = 0
        self._more = True
        self._store_last = 0
        self._prefetched: collections.deque[_Batch] = collections.deque()
        # Seqs of records the hub had no interest in, ascending.
        self._waiting = array("q")
        # Seqs of the batch awaiting its PONG; and every seq written or
        # decided but not yet acked in the store (not to be sent again).
        self._flying: list[int] = []
        self._skip: set[int] = set()
        self._to_ack: list[int] = []
        self._frontier = 0
        self._op_lock = trio.Lock()
        self._changed = trio.Event()
        self.progress = Progress()
        self.sending = False
        self.sent = 0
        self.sent_bytes = 0
        self.acked = 0
        self.remaining: int | None = None
        self.remaining_bytes: int | None = None
        self.dropped: collections.Counter[str] = collections.Counter()

    @property
    def store_error(self) -> str | None:
        """Why the store does not answer (None: it does)."""
        return self.store.error

    # -- state changes (synchronous, from any task) ---------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _wait(self) -> None:
        await self._changed.wait()

    def _reset(self, cursor: int) -> None:
        """Read again from ``cursor`` (dropping what was read ahead)."""
        self._epoch += 1
        self._cursor = min(self._cursor, cursor)
        self._frontier = min(self._frontier, self._cursor)
        self._more = True
        self._prefetched.clear()
        waiting = self._waiting
        del waiting[bisect.bisect_right(waiting, self._cursor) :]
        self._notify()

    def _reset_full(self) -> None:
        self._cursor = 0
        self._reset(0)

    def link_ready(self) -> None:
        """The hub link is up and its initial interest is known."""
        self._reset_full()

    def link_down(self) -> None:
        """The hub link dropped: the batch awaiting its PONG must go again."""
        self._skip.difference_update(self._flying)
        self._flying = []
        self._interrupt("link down")
        self._notify()

    def _interrupt(self, why: str) -> None:
        line = self.progress.interrupt(self.sent, self.sent_bytes, why)
        if line is not None:
            log.info('Leafnode remote "%s": %s', self.label, line)

    def interest_added(self, subject: bytes) -> None:
        """The hub announced interest: waiting records may be deliverable now."""
        buffered = self.remote.buffered
        if not self._waiting or buffered is None or not buffered.intersects(subject):
            return
        session = self.remote.session
        if session is not None and session.ready.is_set():
            self._reset(self._waiting[0] - 1)

    def rewind(self, seq: int) -> None:
        """Records from ``seq`` on are pending again (a redrive)."""
        self._reset(seq - 1)

    def pause(self) -> None:
        """Send nothing more after the batch in flight (the backlog keeps growing)."""
        self.paused = True
        self._interrupt("paused")
        self._notify()

    def resume(self) -> None:
        """Release the backlog again."""
        self.paused = False
        self._notify()

    def stop(self) -> None:
        """End the drain (the remote was removed or no longer buffers)."""
        self.scope.cancel()

    def _releasable(self, session: Session | None) -> bool:
        return (
            session is not None
            and not session.closed
            and session.ready.is_set()
            and not self.paused
            and self.encoder is not None
        )

    # -- status ---------------------------------------------------------------

    @property
    def waiting_for_interest(self) -> int:
        waiting = len(self._waiting)
        return waiting if self.remaining is None else min(waiting, self.remaining)

    def state(self) -> str:
        """One word for the drain: what it is doing, or what it waits for."""
        if self.paused:
            return "paused"
        if self.client is None:
            return "store_unavailable"
        if self.lease_wait or (self.held is None and self._backlog_held is False):
            # The own backlog: the store holds it once its previous process's
            # lease expired (seconds). A taken-over one: another node has it.
            return "waiting_for_lease" if self.held is None else "not_held"
        session = self.remote.session
        if session is None or not session.ready.is_set():
            return "no_link"
        if self.sending or self._prefetched:
            return "draining"
        if self.remaining and self.remaining > self.waiting_for_interest:
            return "draining"
        if self.waiting_for_interest:
            return "waiting_for_interest"
        return "idle"

    # -- tasks ----------------------------------------------------------------

    async def run(self) -> None:
        """Drain until cancelled: the sender, plus the store tasks while connected."""
        with self.scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._sender)
                await self._store_loop()

    async def _store_loop(self) -> None:
        delay = RETRY_FIRST_S
        grace_ends = trio.current_time() + STORE_START_GRACE_S
        while True:
            reason: str | None = None
            try:
                async with open_trio_client(self.store_path) as client:
                    await self._attach(client)
                    delay = RETRY_FIRST_S
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._events, client)
                        nursery.start_soon(self._fetcher, client)
                        nursery.start_soon(self._acker, client)
                        nursery.start_soon(self._stats, client)
            except* (OSError, IpcClosedError, RequestError) as group:
                reason = str(group.exceptions[0]) or type(group.exceptions[0]).__name__
            finally:
                self.client = None
            if reason is None:
                reason = "the store closed the connection"
            if self.leaf_id is None and trio.current_time() < grace_ends:
                self.store.waiting(reason)
            else:
                self.store.lost(reason)
            await trio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    async def _attach(self, client: TrioIpcClient) -> None:
        pong = await client.request("ping")
        leaf_id = pong.fields.get("leaf_id")
        if not isinstance(leaf_id, str) or not leaf_id:
            raise RequestError("the store's ping has no leaf_id")
        fields: dict[str, object] = {"remote": self.name}
        if self.held is not None:
            fields["backlog"] = self.held
        sub = await client.request("subscribe", fields)
        if self.held is None:
            backlog = sub.fields.get("backlog")
            self.backlog = backlog if isinstance(backlog, str) else None
        node = pong.fields.get("node")
        self.node = node if isinstance(node, str) else None
        last = sub.fields.get("last_seq")
        self._store_last = max(self._store_last, last if isinstance(last, int) else 0)
        database = pong.fields.get("database")
        down = isinstance(database, dict) and database.get("up") is False
        error = database.get("error") if isinstance(database, dict) else None
        self.store.attached((str(error) if error else "unavailable") if down else None)
        self.leaf_id = leaf_id
        self.encoder = BatchEncoder(leaf_id)
        self.client = client
        self._reset_full()

    async def _call(self, client: TrioIpcClient, kind: str, fields: dict[str, object]) -> Frame:
        """A store request, retried while the database is unavailable."""
        delay = RETRY_FIRST_S
        while True:
            try:
                frame = await client.request(kind, fields)
            except RequestError as exc:
                if exc.code == "not_held":
                    # Not an outage: the store waits for this backlog's lease
                    # (its previous process's, for the self grace), or another
                    # node holds it now (a taken-over one: this drain stops
                    # once the store's list says so). Nothing was read.
                    self.lease_wait = True
                    self.store.not_held(str(exc))
                elif exc.code != "unavailable":
                    raise
                else:
                    self.store.failed(kind, str(exc))
            else:
                if self.lease_wait and kind == "read":
                    self.lease_wait = False
                    self.store.held()
                self.store.succeeded(kind)
                return frame
            await trio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    async def _events(self, client: TrioIpcClient) -> None:
        while True:
            for event in await client.wait_events():
                if event.fields.get("remote") != self.name:
                    continue
                if event.type == "appended":
                    last = event.fields.get("last_seq")
                    if isinstance(last, int) and last > self._store_last:
                        self._store_last = last
                        self._notify()
                elif event.type == "rewind":
                    seq = event.fields.get("seq")
                    if isinstance(seq, int) and seq > 0:
                        self.rewind(seq)

    def _want_read(self) -> bool:
        return (
            len(self._prefetched) < READ_AHEAD
            and self._releasable(self.remote.session)
            and (self._more or self._cursor < self._store_last)
        )

    async def _fetcher(self, client: TrioIpcClient) -> None:
        while True:
            while not self._want_read():
                await self._wait()
            epoch, after, known_last = self._epoch, self._cursor, self._store_last
            fields: dict[str, object] = {
                "remote": self.name,
                "after": after,
                "limit": BATCH_MSGS,
                "max_bytes": BATCH_BYTES,
                "columns": True,
            }
            if self.backlog is not None:
                fields["backlog"] = self.backlog
            frame = await self._call(client, "read", fields)
            if epoch != self._epoch:
                continue  # reset meanwhile: read again from the new cursor
            rows = cast("list[Row]", decode_read_columns(frame.fields, self.name))
            nxt = frame.fields.get("next")
            more = frame.fields.get("more") is True
            if not isinstance(nxt, int):
                raise RequestError("malformed read answer")
            # Not stopped early: every pending record up to the last appended
            # seq known before the read was examined.
            self._cursor = max(nxt, after) if more else max(nxt, after, known_last)
            self._more = more
            batch = _Batch(epoch, after, self._cursor, rows, frame.blobs)
            if rows:
                self._prefetched.append(batch)
            else:
                self._advance(batch, clean=True)
            self._notify()

    def _advance(self, batch: _Batch, *, clean: bool) -> None:
        """Every record of ``batch`` is decided: move the frontier over its range."""
        if clean and batch.epoch == self._epoch and batch.after <= self._frontier:
            self._frontier = max(self._frontier, batch.next)

    async def _acker(self, client: TrioIpcClient) -> None:
        while True:
            while not self._to_ack:
                await self._wait()
            if len(self._to_ack) < ACK_MIN:
                # More PONGs come soon while draining: one commit for several batches.
                with trio.move_on_after(ACK_DELAY_S):
                    while len(self._to_ack) < ACK_MIN:
                        await self._wait()
            async with self._op_lock:
                frontier = self._frontier
                below = [s for s in self._to_ack if s <= frontier]
                above = [s for s in self._to_ack if s > frontier][:ACK_MAX]
                fields: dict[str, object] = {"remote": self.name}
                if self.backlog is not None:
                    fields["backlog"] = self.backlog
                if below:
                    fields["upto"] = frontier
                if above:
                    fields["seqs"] = above
                answer = await self._call(client, "ack", fields)
            done = set(below)
            done.update(above)
            self._to_ack = [s for s in self._to_ack if s not in done]
            self._skip.difference_update(done)
            # The store's count: what left the backlog (a purge meanwhile
            # may have removed some of these already).
            removed = answer.fields.get("acked")
            self.acked += removed if isinstance(removed, int) else len(done)
            self._notify()

    async def _stats(self, client: TrioIpcClient) -> None:
        while True:
            frame = await self._call(client, "stats", {})
            self._take_stats(frame)
            line = self.progress.sample(
                trio.current_time(),
                self.sent,
                self.sent_bytes,
                self.remaining,
                self.waiting_for_interest,
            )
            if line is not None:
                log.info('Leafnode remote "%s": %s', self.label, line)
            await trio.sleep(STATS_INTERVAL_S)

    def _take_stats(self, frame: Frame) -> None:
        """``remaining``/``remaining_bytes`` from a store ``stats`` answer.

        The own drain also hands the list of taken-over backlogs to its
        remote, and starts over when its backlog changed (a new generation
        after this node was taken over) or became its to drain (the lease
        of its previous process expired).
        """
        fields = frame.fields
        held = fields.get("held")
        held_list = [h for h in held if isinstance(h, dict)] if isinstance(held, list) else []
        if self.held is None:
            self.remote.held_backlogs(held_list)
            backlog, holds = fields.get("backlog"), fields.get("backlog_held")
            if isinstance(backlog, str) and self.backlog is not None and backlog != self.backlog:
                log.warning(
                    'Leafnode remote "%s": this node appends to backlog %r now', self.label, backlog
                )
                self.backlog = backlog
                self._reset_full()
            if isinstance(holds, bool) and holds != self._backlog_held:
                if holds and self._backlog_held is False:
                    self._reset_full()  # the store reads it now: read again
                self._backlog_held = holds
                if not holds:
                    self.store.not_held(f"backlog {self.backlog!r} is not held here (yet)")
            if holds is True:
                self.lease_wait = False
                self.store.held()
            remotes = fields.get("remotes")
        else:
            entry = next((h for h in held_list if h.get("backlog") == self.held), None)
            remotes = entry.get("remotes") if entry is not None else {}
        mine = remotes.get(self.name) if isinstance(remotes, dict) else None
        msgs = mine.get("msgs") if isinstance(mine, dict) else 0
        nbytes = mine.get("bytes") if isinstance(mine, dict) else 0
        self.remaining = msgs if isinstance(msgs, int) else None
        self.remaining_bytes = nbytes if isinstance(nbytes, int) else None

    async def _begin_replay(self) -> None:
        """Start a replay's figures from the store's backlog now, before its first batch.

        A store that does not answer leaves the last known backlog (the
        fetcher has just read from it, so that is rare).
        """
        client = self.client
        if client is not None:
            try:
                self._take_stats(await client.request("stats"))
            except (OSError, IpcClosedError, RequestError):
                pass
        self.progress.begin(
            trio.current_time(),
            self.sent,
            self.sent_bytes,
            self.remaining or 0,
            self.remaining_bytes or 0,
        )

    async def _sender(self) -> None:
        while True:
            while True:
                queue = self._prefetched
                while queue and queue[0].epoch != self._epoch:
                    queue.popleft()
                session = self.remote.session
                if queue and self._releasable(session):
                    if self.progress.active:
                        break
                    # A replay begins: count its backlog before anything of it
                    # goes, then look at the queue again (it may have changed).
                    await self._begin_replay()
                    continue
                await self._wait()
            assert session is not None
            batch = queue.popleft()
            self._notify()  # the fetcher may read the next batch meanwhile
            data, seqs, nbytes, stored, clean = self._encode(batch, session)
            if not seqs:
                self._advance(batch, clean=clean)
                continue
            self._flying = seqs
            self._skip.update(seqs)
            session.out_msgs += len(seqs)
            session.out_bytes += nbytes
            self.sending = True
            try:
                barrier = session.barrier(b"".join(data))
                await barrier.event.wait()
            finally:
                self.sending = False
            if not barrier.answered:
                # The link dropped: these go again after the reconnect.
                if self._flying is seqs:
                    self._skip.difference_update(seqs)
                    self._flying = []
                continue
            self._flying = []
            self.sent += len(seqs)
            self.sent_bytes += stored
            self._to_ack.extend(seqs)
            self._advance(batch, clean=clean)
            line = self.progress.sent_batch()
            if line is not None:
                log.info('Leafnode remote "%s": %s', self.label, line)
            self._notify()

    def _encode(
        self, batch: _Batch, session: Session
    ) -> tuple[list[bytes], list[int], int, int, bool]:
        """The batch's wire form: ``(lines, their seqs, payload bytes, stored bytes, clean)``
        (hot path).

        Payload bytes (headers and payload, before stamping) count for the
        link's ``out_bytes``, as nats-server counts them; stored bytes are
        the store's measure of the same records (subject, reply, headers,
        payload), so ``sent_bytes`` and the backlog's bytes add up.
        ``clean``: no record of the batch was left waiting.

        Records without matching interest are remembered as waiting; records
        with nothing left to deliver, or too large for the hub, go straight
        to the ack queue.
        """
        encoder = self.encoder
        assert encoder is not None
        encode = encoder.encode
        match = self.remote.hub.match
        allows = session.export_filter.allows
        max_payload = session.max_payload - STAMP_ROOM
        skip = self._skip
        waiting = self._waiting
        waiting_before = len(waiting)
        out: list[bytes] = []
        seqs: list[int] = []
        done: list[int] = []
        nbytes = stored = 0
        for row, data in zip(batch.rows, batch.blobs, strict=True):
            seq, _remote, subject, reply, hdr_len, received, queues, _acked = row
            if seq in skip:
                continue
            subj = subject.encode()
            found = match(subj)
            if not found or not allows(subj):
                waiting.append(seq)
                continue
            names: tuple[bytes, ...] = ()
            if found.qsubs:
                names = tuple(
                    q
                    for group in found.qsubs
                    if (q := group[0].queue) is not None and q.decode() not in queues
                )
            if not names and not found.psubs:
                done.append(seq)
                continue
            if len(data) > max_payload and self._too_large(seq, hdr_len, data, session):
                done.append(seq)
                continue
            if reply is None and not names:
                route = subj
            else:
                route = encode_leaf_route(subj, reply.encode() if reply else None, names)
            out.append(encode(route, seq, hdr_len, data, received))
            seqs.append(seq)
            nbytes += len(data)
            stored += len(data) + len(subject) + (len(reply) if reply else 0)
        if done:
            skip.update(done)
            self._to_ack.extend(done)
            self._notify()
        return out, seqs, nbytes, stored, len(waiting) == waiting_before

    def _too_large(self, seq: int, hdr_len: int, data: bytes, session: Session) -> bool:
        headers = stamp_headers(
            data[:hdr_len], msg_id=f"{self.leaf_id}-{seq}", buffered_at_us=time.time_ns() // 1000
        )
        if len(headers) + len(data) - hdr_len <= session.max_payload:
            return False
        self.dropped["max_payload"] += 1
        log.error(
            'Leafnode remote "%s": buffered message %d is larger than the hub\'s max_payload '
            "(%d bytes); dropped",
            self.label,
            seq,
            session.max_payload,
        )
        return True

    def _replay_status(self, replay: Replay) -> dict[str, object]:
        if replay is self.progress.current:
            replay.update(self.sent, self.sent_bytes)
        return replay.status()

    # -- operations (uplink.ctl) ----------------------------------------------

    def status(self) -> dict[str, object]:
        """The ``buffer`` object of ``uplink.ctl status`` (see ``control.py``)."""
        buffered = self.remote.buffered
        now = trio.current_time()
        rates = self.progress.rate(now, self.sent, self.sent_bytes)
        replay = self.progress.last
        return {
            "subjects": [p.decode() for p in buffered.patterns] if buffered is not None else [],
            "backlog": self.backlog,
            "node": self.node,
            "state": self.state(),
            "draining": self.state() == "draining",
            "paused": self.paused,
            "store_connected": self.client is not None,
            "store_error": self.store_error,
            "waiting_for_interest": self.waiting_for_interest,
            "sent": self.sent,
            "sent_bytes": self.sent_bytes,
            "acked": self.acked,
            "rate_msgs_s": None if rates is None else round(rates[0], 1),
            "rate_bytes_s": None if rates is None else round(rates[1], 1),
            "remaining": self.remaining,
            "remaining_bytes": self.remaining_bytes,
            "eta_s": self.progress.eta_s(
                now, self.sent, self.sent_bytes, self.waiting_for_interest
            ),
            "replay": None if replay is None else self._replay_status(replay),
            "dropped": dict(self.dropped),
        }


async def redrive(
    drains: list[Drain],
    *,
    subject: str | None,
    since_us: int | None,
    until_us: int | None,
) -> dict[str, object]:
    """Make retained records of a remote pending again, in every backlog the store holds.

    ``drains``: the remote's own drain first, then those of the backlogs it
    took over. One store ``redrive`` (every backlog this node holds, each
    fenced by its lease) runs while every drain's ``_op_lock`` is held, so no
    ``upto`` ack can cross it; each drain then rewinds to the lowest seq made
    pending in its backlog. A backlog taken over with no drain yet gets one
    later, which reads it from the start.

    Raises:
        RequestError: the store refused it or is unavailable.
    """
    own = drains[0]
    client = own.client
    if client is None:
        raise RequestError(f"store unavailable: {own.store_error}", code="unavailable")
    fields: dict[str, object] = {"remote": own.name}
    for key, value in (("subject", subject), ("since_us", since_us), ("until_us", until_us)):
        if value is not None:
            fields[key] = value
    try:
        async with contextlib.AsyncExitStack() as stack:
            for drain in drains:  # always in this order: two redrives never deadlock
                await stack.enter_async_context(drain._op_lock)
            frame = await client.request("redrive", fields)
            per = frame.fields.get("backlogs")
            per = per if isinstance(per, dict) else {}
            lowest = frame.fields.get("first_seq")
            for drain in drains:
                # The own drain: the lowest seq over every backlog (at or
                # below its own), should its backlog have just changed.
                entry = per.get(drain.backlog) if drain.held is not None else None
                first = entry.get("first_seq") if isinstance(entry, dict) else lowest
                if isinstance(first, int) and first > 0:
                    drain.rewind(first)
    except IpcClosedError as exc:
        raise RequestError(f"store unavailable: {exc}", code="unavailable") from None
    redriven, first = frame.fields.get("redriven"), frame.fields.get("first_seq")
    return {
        "redriven": redriven if isinstance(redriven, int) else 0,
        "first_seq": first if isinstance(first, int) else 0,
        "backlogs": {
            str(b): e.get("redriven", 0) if isinstance(e, dict) else 0 for b, e in per.items()
        },
    }
