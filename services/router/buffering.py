"""Hub-bound messages on buffered subjects go to the store (DESIGN §3.3, §4).

Theory of operation. A remote's ``buffer { subjects }`` names subjects whose
hub-bound messages must survive an outage. For each local publish on such a
subject the router appends one record per buffering remote to the store,
whatever the state of the hub link: there is a single path, so nothing can
overtake the backlog; the uplink tails the store and sends in order.

Appends are batched: everything routed while the previous ``append`` was
in flight is the next one, one transaction, cut into requests of at most
``APPEND_MAX_BYTES`` (the IPC frame has a ceiling; a backlog that waited in
memory through an outage can be far bigger). Batches are numbered; a client
that published a buffered message remembers the number of the batch it went
into, and its next PING is answered only once that batch is committed, which
makes ``flush()`` a durability barrier (DESIGN §4). Each waiting message
keeps its batch's number (``_BATCH``), so a request that took only part of a
batch commits the numbers before it and no more. Batch numbers only grow,
so a deferred PONG is never overtaken by a later one.

Back-pressure. While the store takes appends but more slowly than clients
publish, what waits for it grows; past ``PAUSE_BYTES`` (or half a remote's
memory bound) for a remote, a client that has just published on a buffered
subject stops being read (``hold_back``) until the store has brought that
back to half: TCP flow control paces the publisher at the store's speed,
nothing is dropped and nobody is disconnected. While the store is
unavailable nobody is held back (local traffic goes on; the memory bound
and the ``discard`` policy below apply).

When the store is unreachable (down, restarting) or answers ``unavailable``
(its database is down, full, locked, read-only) the router keeps serving
local traffic; buffered messages wait in memory, bounded per remote by
``MEMORY_LIMIT_BYTES`` and the remote's ``max_bytes``; past the bound the
remote's ``discard`` policy applies (``old``: drop the oldest waiting one,
``new``: refuse the new one), counted by reason ``store_unavailable`` (the
bound holds in flight too: one burst bigger than ``max_bytes`` in one pass is
refused there even while the store is up).
Waiting messages are appended, in publish order, as soon as the store
answers again; ``bufferz`` shows them per remote with the reason they wait.

Accounting: each message is counted once. The router counts what it drops
itself (``bufferz`` ``dropped``); what the store refuses (``discard: new`` at
a limit, a message above ``max_bytes``) the store counts, so the router only
logs it. Drops are logged at most once per ``DROP_LOG_INTERVAL_S`` per remote
and reason, with the count since the last line.

Verbose clients get one answer per PUB, in PUB order: for a PUB on a
buffered subject, ``+OK`` once every copy is committed, ``-ERR 'Leafnode
Buffer Full'`` when one was refused or dropped before its commit. Until then
the answers of that client's later PUBs, and its PONGs, wait behind it in
that order (``answers_pub``, ``pong_now``).
"""

from __future__ import annotations

import collections
import functools
import logging
import operator
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import trio

from leafnode.ipc import (
    STORE_SOCKET,
    STORE_START_GRACE_S,
    IpcClosedError,
    RequestError,
    decode_append_reply,
    encode_append_columns,
)
from leafnode.ipc.trio import open_trio_client
from leafnode.sublist import Sublist

if TYPE_CHECKING:
    from collections.abc import Awaitable, Sequence

    from leafnode.config import BufferSettings, Settings
    from leafnode.ipc.trio import TrioIpcClient


__all__ = ["BUFFER_FULL", "BufferRule", "StoreLink", "build_buffer_rules"]

log = logging.getLogger("leafnode.router")

# What waits in router memory while the store cannot take it, per remote.
MEMORY_LIMIT_BYTES = 64 * 1024 * 1024
# The most one ``append`` request carries (its frame's estimated size):
# well under the IPC frame ceiling (72 MiB), yet tens of thousands of small
# messages per transaction. A single message always goes, whatever its size.
APPEND_MAX_BYTES: Final = 16 * 1024 * 1024
# Per message, what the estimates count besides payload, subject and reply:
# the frame's JSON columns and the router's Python objects holding it.
MSG_COST_BYTES: Final = 256
# Past this much waiting for the store per remote (payloads + MSG_COST_BYTES
# each) its publishers are held back, until half of it is left. Enough for the
# store to always have the next transaction ready; little memory.
PAUSE_BYTES: Final = 16 * 1024 * 1024
# Reconnect back-off to the store socket: first try, then doubling to the cap.
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 2.0
# While the store's database is down, how often to ask it (``ping``) whether
# it is back, so waiting messages go as soon as it is, not at the next retry.
DATABASE_POLL_S: Final = 0.2
# At most one drop line per remote and reason this often (with the count).
DROP_LOG_INTERVAL_S: Final = 10.0
# The -ERR a verbose publisher gets when its buffered message was refused.
BUFFER_FULL = "Leafnode Buffer Full"
# Why each drop reason happened, for the log line.
_DROP_WHY: Final = {
    "store_unavailable": "the router's memory queue is full while the store is unavailable",
    "max_msgs": "the buffer is at max_msgs",
    "max_bytes": "the buffer is at max_bytes (or the message is larger)",
}


class BufferRule:
    """One ``buffer.subjects`` entry of one remote (a sublist member)."""

    __slots__ = ("queue", "remote", "subject")

    def __init__(self, subject: bytes, remote: str) -> None:
        self.subject = subject
        self.queue: bytes | None = None
        self.remote = remote


def build_buffer_rules(settings: Settings) -> dict[str, Sublist[BufferRule]]:
    """Per local account: which subjects are buffered, for which remotes."""
    rules: dict[str, Sublist[BufferRule]] = {}
    for remote in settings.leafnodes.remotes:
        if remote.buffer is None or not remote.buffer.subjects:
            continue
        sublist = rules.setdefault(remote.account, Sublist())
        for subject in remote.buffer.subjects:
            sublist.insert(BufferRule(subject.encode(), remote.name))
    return rules


class BufferOrigin(Protocol):
    """The publishing client, as the store link sees it."""

    buffer_batch: int
    verbose: bool

    def send_ok(self) -> None: ...

    def send_error(self, text: str) -> None: ...

    def send_pong(self) -> None: ...


class _Answer:
    """A verbose PUB's answer: owed until each of its copies is committed or dropped.

    With ``pong`` set it is a PING's PONG instead, in turn after the answers
    of the PUBs before it.
    """

    __slots__ = ("client", "left", "pong", "refused")

    def __init__(self, client: BufferOrigin, *, pong: bool = False) -> None:
        self.client = client
        self.left = 0
        self.pong = pong
        self.refused = False


# One message waiting for the store: the ``append`` columns in their order
# (remote, subject, reply, hdr_len, data, received_at_us, queues), then the
# verbose PUB's answer it counts in, and the number of the batch it went
# into (``_BATCH``). A tuple per message, not an object: a
# batch becomes the frame's columns in C (``_columns``). Subject
# and reply stay the parser's bytes: a batch's subjects are decoded as one
# string (``_encode_batch``), not one by one.
_Row = tuple[str, bytes, bytes | None, int, bytes, int, tuple[str, ...], "_Answer | None", int]
_REMOTE: Final = 0
_SUBJECT: Final = 1
_REPLY: Final = 2
_DATA: Final = 4
_QUEUES: Final = 6
_ANSWER: Final = 7
_BATCH: Final = 8


class _Held:
    """One remote's messages in router memory (waiting or in flight), and their bound."""

    __slots__ = ("bytes", "discard_new", "limit", "msgs", "refusing")

    def __init__(self, settings: BufferSettings | None) -> None:
        self.bytes = 0
        self.msgs = 0
        # ``discard: new`` refused the last message for want of room.
        self.refusing = False
        self.limit = MEMORY_LIMIT_BYTES
        self.discard_new = False
        self.configure(settings)

    def configure(self, settings: BufferSettings | None) -> None:
        """The bound: ``MEMORY_LIMIT_BYTES`` or the remote's ``max_bytes``, the smaller."""
        limit = MEMORY_LIMIT_BYTES
        if settings is not None and settings.max_bytes is not None:
            limit = min(limit, settings.max_bytes)
        self.limit = limit
        self.discard_new = settings is not None and settings.discard == "new"


class StoreLink:
    """The router's connection to ``store.sock``: batched appends, commit tracking."""

    def __init__(self, settings: Settings) -> None:
        self.path = Path(settings.run_dir) / STORE_SOCKET
        self._held: dict[str, _Held] = {}
        self._limits: dict[str, BufferSettings] = {}
        self.limits = {r.name: r.buffer for r in settings.leafnodes.remotes if r.buffer is not None}
        # Messages not yet sent to the store, in publish order.
        self.pending: list[_Row] = []
        self.batch_no = 1  # the batch now accumulating
        self.committed = 0  # every batch up to this one is committed
        # (batch number, client) for each deferred PONG; one client's entries
        # are in increasing batch order, different clients' are not.
        self.waiters: list[tuple[int, BufferOrigin]] = []
        # Verbose answers not yet sent, per client, in PUB order.
        self.owed: dict[BufferOrigin, collections.deque[_Answer]] = {}
        # Messages the router dropped itself (before the store saw them).
        self.dropped: collections.Counter[tuple[str, str]] = collections.Counter()
        self.appended = 0
        self.available = False
        # Why messages wait in memory (None while the store takes them).
        self.reason: str | None = None
        self._in_outage = False
        self._ever_connected = False
        self._waiting_logged = False
        self._delay = RETRY_FIRST_S
        # While a client's read is routed: when the router received it, in
        # microseconds since the epoch (each message's ``received_at_us``;
        # one clock read per read, not per message). 0: read the clock.
        self.read_at_us = 0
        self._wakeup = trio.Event()
        # The send loop waits on ``_wakeup``: the next append sets it (once).
        self._idle = False
        # Set (and renewed) when held-back publishers may be read again.
        self._room = trio.Event()
        self.holding = False
        # (remote, reason) -> drops not logged yet, and when the last line was.
        self._unlogged: collections.Counter[tuple[str, str]] = collections.Counter()
        self._logged_at: dict[tuple[str, str], float] = {}

    @property
    def limits(self) -> dict[str, BufferSettings]:
        """Each buffering remote's ``buffer`` settings (replaced on reload)."""
        return self._limits

    @limits.setter
    def limits(self, limits: dict[str, BufferSettings]) -> None:
        self._limits = limits
        for name, held in self._held.items():
            held.configure(limits.get(name))

    def held(self) -> dict[str, tuple[int, int]]:
        """``(msgs, bytes)`` in router memory per remote that has any (``bufferz``)."""
        return {name: (h.msgs, h.bytes) for name, h in self._held.items() if h.msgs}

    @property
    def refusing(self) -> set[str]:
        """Remotes with ``discard: new`` whose memory queue refused the last message."""
        return {name for name, h in self._held.items() if h.refusing}

    def _held_of(self, remote: str) -> _Held:
        held = self._held.get(remote)
        if held is None:
            held = self._held[remote] = _Held(self._limits.get(remote))
        return held

    # ------------------------------------------------------------ routing side

    def append(
        self,
        origin: BufferOrigin | None,
        remotes: tuple[BufferRule, ...],
        subject: bytes,
        reply: bytes | None,
        hdr_len: int,
        data: bytes,
        queues: tuple[str, ...],
    ) -> None:
        """Queue one message for each remote buffering ``subject`` (synchronous).

        The hot path of a buffered PUB: one tuple per remote and two counter
        updates; the bound is only looked at closely when it is reached.
        """
        received_us = self.read_at_us or time.time_ns() // 1000
        answer = _Answer(origin) if origin is not None and origin.verbose else None
        size = len(data)
        pending = self.pending
        for name in (remotes[0].remote,) if len(remotes) == 1 else _names(remotes):
            held = self._held.get(name)
            if held is None:
                held = self._held_of(name)
            if held.bytes + size > held.limit:
                if not self._make_room(name, held, size):
                    if answer is not None:
                        answer.refused = True
                    continue
            elif held.refusing:
                held.refusing = False
            pending.append(
                (name, subject, reply, hdr_len, data, received_us, queues, answer, self.batch_no)
            )
            held.bytes += size
            held.msgs += 1
            if answer is not None:
                answer.left += 1
        if origin is not None and (answer is None or answer.left):
            origin.buffer_batch = self.batch_no
        if answer is not None and origin is not None:
            self._owe(origin, answer)
        if self._idle:
            self._idle = False
            self._wakeup.set()

    def answers_pub(
        self, client: BufferOrigin, rules: Sublist[BufferRule] | None, subject: bytes
    ) -> bool:
        """Before routing a verbose client's PUB: True when the link sends its answer.

        The link answers a PUB on a buffered subject (``append`` is about to
        take it: +OK once committed) and, to keep the answers in PUB order,
        any PUB of a client that still has answers owed.
        """
        if rules is not None and rules.match(subject).psubs:
            return True
        queue = self.owed.get(client)
        if not queue:
            return False
        queue.append(_Answer(client))  # nothing to wait for: +OK in turn
        return True

    def _owe(self, client: BufferOrigin, answer: _Answer) -> None:
        queue = self.owed.get(client)
        if queue is None:
            if answer.left == 0:  # refused at once, nothing ahead of it
                client.send_error(BUFFER_FULL)
                return
            queue = self.owed[client] = collections.deque()
        queue.append(answer)

    def _settle(self, client: BufferOrigin) -> None:
        """Send the client's answers that are decided, in order."""
        queue = self.owed.get(client)
        while queue and queue[0].left == 0:
            answer = queue.popleft()
            if answer.pong:
                client.send_pong()
            elif answer.refused:
                client.send_error(BUFFER_FULL)
            else:
                client.send_ok()
        if not queue:
            self.owed.pop(client, None)

    def hold_back(self, client: BufferOrigin) -> Awaitable[None] | None:
        """After one read of ``client``: what to await before reading it again, or None.

        Only a client that published into the batch now accumulating is held
        back, and only while the store takes appends (see the module doc).
        """
        if client.buffer_batch != self.batch_no or not self.available or not self._over(1):
            return None
        if not self.holding:
            self.holding = True
            log.debug("Store is behind: holding back buffered publishers")
        return self._room.wait()

    def _over(self, divisor: int) -> bool:
        """True when some remote has more than its pause mark / ``divisor`` waiting."""
        for held in self._held.values():
            mark = min(PAUSE_BYTES, held.limit // 2) // divisor
            if held.bytes + held.msgs * MSG_COST_BYTES > mark:
                return True
        return False

    def _release(self) -> None:
        """Read the held-back publishers again."""
        self.holding = False
        self._room.set()
        self._room = trio.Event()

    def _make_room(self, remote: str, held: _Held, size: int) -> bool:
        """``remote``'s memory bound is reached: refuse the message, or drop old ones."""
        reason = "store_unavailable"
        if held.discard_new:
            held.refusing = True
            self._count_drop(remote, reason, 1)
            return False
        # discard old: drop the oldest waiting messages of this remote.
        pending = self.pending
        i = 0
        settled: set[BufferOrigin] = set()
        while held.bytes + size > held.limit and i < len(pending):
            row = pending[i]
            if row[_REMOTE] == remote:
                del pending[i]
                answer = row[_ANSWER]
                if answer is not None:
                    answer.left -= 1
                    answer.refused = True
                    settled.add(answer.client)
                held.bytes -= len(row[_DATA])
                held.msgs -= 1
                self._count_drop(remote, reason, 1)
            else:
                i += 1
        for client in settled:
            self._settle(client)
        return True

    def _count_drop(self, remote: str, reason: str, n: int, *, by_store: bool = False) -> None:
        if not by_store:
            self.dropped[(remote, reason)] += n
        key = (remote, reason)
        self._unlogged[key] += n
        now = time.monotonic()
        if now - self._logged_at.get(key, -DROP_LOG_INTERVAL_S) >= DROP_LOG_INTERVAL_S:
            self._log_drops(key, now)

    def _log_drops(self, key: tuple[str, str], now: float) -> None:
        remote, reason = key
        n = self._unlogged.pop(key, 0)
        if not n:
            return
        self._logged_at[key] = now
        verb = "Refused" if reason != "store_unavailable" else "Dropped"
        log.warning(
            "%s %d buffered message(s) for %s: %s (%s)",
            verb,
            n,
            remote,
            reason,
            _DROP_WHY.get(reason, reason),
        )

    def flush_drop_log(self) -> None:
        """Log the drops counted since their reason's last line (once its interval is over)."""
        now = time.monotonic()
        for key in list(self._unlogged):
            if now - self._logged_at.get(key, -DROP_LOG_INTERVAL_S) >= DROP_LOG_INTERVAL_S:
                self._log_drops(key, now)

    def pong_now(self, client: BufferOrigin) -> bool:
        """True when ``client`` may get its PONG now; else it is sent on commit.

        A verbose client's PONG waits behind its owed answers: those are the
        buffered messages it published before the PING.
        """
        queue = self.owed.get(client)
        if queue:
            queue.append(_Answer(client, pong=True))
            return False
        if client.buffer_batch <= self.committed:
            return True
        self.waiters.append((client.buffer_batch, client))
        return False

    # -------------------------------------------------------------- the task

    async def run(self) -> None:
        """Keep a connection to the store and feed it batches, forever.

        Error handling: a store that cannot be reached, and a store that
        answers ``unavailable`` (its database is down or its disk is full),
        are retried with a doubling delay (and, for the database, as soon as
        the store says it is back); each outage logs one line when it
        starts and one when it ends, not one per retry.
        """
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._drop_logger)
            await self._connect_loop()

    async def _drop_logger(self) -> None:
        while True:
            await trio.sleep(DROP_LOG_INTERVAL_S / 2)
            self.flush_drop_log()

    async def _connect_loop(self) -> None:
        self._delay = RETRY_FIRST_S
        grace_ends = trio.current_time() + STORE_START_GRACE_S
        while True:
            try:
                async with open_trio_client(self.path) as client:
                    await client.request("ping")
                    await self._send_loop(client)
            except (OSError, IpcClosedError) as exc:
                reason = f"cannot reach the store at {self.path} ({exc})"
                if self._ever_connected or trio.current_time() >= grace_ends:
                    self._outage(reason)
                elif not self._waiting_logged:
                    self._waiting_logged = True
                    log.info("Waiting for the store at %s", self.path)
            await self._back_off()

    def _outage(self, reason: str) -> None:
        self.available = False
        self.reason = reason
        if self.holding:
            self._release()  # memory bound and discard policy from now on
        if not self._in_outage:
            self._in_outage = True
            log.warning("Store unavailable: %s; buffered messages wait in memory", reason)

    def _recovered(self) -> None:
        self.available = True
        self.reason = None
        self._delay = RETRY_FIRST_S
        if self._in_outage:
            self._in_outage = False
            log.warning(
                "Store is back at %s; buffered appends resumed (%d messages were waiting)",
                self.path,
                len(self.pending),
            )
        elif not self._ever_connected:
            log.info("Connected to the store at %s", self.path)
        self._ever_connected = True

    async def _back_off(self) -> None:
        await trio.sleep(self._delay)
        self._delay = min(self._delay * 2, RETRY_MAX_S)

    async def _wait_database(self, client: TrioIpcClient) -> None:
        """Until the back-off delay is over, or sooner when the store says its database is up."""
        deadline = trio.current_time() + self._delay
        self._delay = min(self._delay * 2, RETRY_MAX_S)
        while trio.current_time() < deadline:
            await trio.sleep(min(DATABASE_POLL_S, max(0.0, deadline - trio.current_time())))
            pong = await client.request("ping")
            database = pong.fields.get("database")
            if isinstance(database, dict) and database.get("up") is True:
                return

    async def _send_loop(self, client: TrioIpcClient) -> None:
        if not self.pending:
            self._recovered()
        while True:
            while not self.pending:
                self._idle = True
                await self._wakeup.wait()
                self._wakeup = trio.Event()
            batch = self._take()
            number = self.batch_no
            self.batch_no += 1
            cols = _columns(batch)
            try:
                frame = await client.request_prepared(functools.partial(_encode_batch, cols=cols))
            except RequestError as exc:
                self._put_back(batch)
                if exc.code != "unavailable":
                    log.error("Store refused a batch of %d buffered messages: %s", len(batch), exc)
                    raise IpcClosedError(str(exc)) from exc
                # The database is down or full: same connection, later.
                self._outage(str(exc))
                await self._wait_database(client)
                continue
            except IpcClosedError:
                self._put_back(batch)
                raise
            self._recovered()
            self._committed(number, batch, cols, decode_append_reply(frame).refused)

    def _take(self) -> list[_Row]:
        """The next request's messages: the first pending ones, up to ``APPEND_MAX_BYTES``.

        Usually all of them, told by sums in C; only a bigger backlog (after
        an outage) is measured row by row.
        """
        pending = self.pending
        n = len(pending)
        size = sum(held.bytes for held in self._held.values()) + n * MSG_COST_BYTES
        size += sum(map(len, map(_GET_SUBJECT, pending)))
        size += sum(map(len, filter(None, map(_GET_REPLY, pending))))
        if size <= APPEND_MAX_BYTES and not any(map(_GET_QUEUES, pending)):
            self.pending = []
            return pending
        size = count = 0
        for row in pending:
            size += len(row[_DATA]) + len(row[_SUBJECT]) + len(row[_REPLY] or b"")
            size += sum(map(len, row[_QUEUES])) + MSG_COST_BYTES
            if size > APPEND_MAX_BYTES and count:
                break
            count += 1
        batch = pending[:count]
        del pending[:count]
        return batch

    def _committed(
        self,
        number: int,
        batch: list[_Row],
        cols: tuple[list[Any], ...],
        refused: Sequence[tuple[int, str]],
    ) -> None:
        """A batch is committed: counters, verbose answers, then deferred PONGs."""
        for index, reason in refused:
            row = batch[index]
            # The store counts these drops; the router only logs them.
            self._count_drop(row[_REMOTE], reason, 1, by_store=True)
            answer = row[_ANSWER]
            if answer is not None:
                answer.refused = True
        n = len(batch)
        names, datas, answers = cols[_REMOTE], cols[_DATA], cols[_ANSWER]
        first = names[0]
        if names.count(first) == n:  # one remote (the usual case): no step per message
            held = self._held[first]
            held.bytes -= sum(map(len, datas))
            held.msgs -= n
            held.refusing = False  # room again in memory
        else:
            for name, data in zip(names, datas, strict=True):
                held = self._held[name]
                held.bytes -= len(data)
                held.msgs -= 1
                held.refusing = False
        self.appended += n - len(refused)
        if answers.count(None) != n:
            settled: dict[BufferOrigin, None] = {}
            for answer in answers:
                if answer is not None:
                    answer.left -= 1
                    settled[answer.client] = None
            for client in settled:
                self._settle(client)
        if self.holding and not self._over(2):
            self._release()
        # A batch split over several requests: the rest of it still waits.
        if self.pending:
            number = min(number, self.pending[0][_BATCH] - 1)
        if number <= self.committed:
            return
        self.committed = number
        if self.waiters:
            ready = [origin for batch_no, origin in self.waiters if batch_no <= number]
            self.waiters = [w for w in self.waiters if w[0] > number]
            for origin in ready:
                origin.send_pong()

    def _put_back(self, batch: list[_Row]) -> None:
        """A batch whose commit is unknown goes first in line again (at least once)."""
        self.pending[:0] = batch


def _columns(batch: list[_Row]) -> tuple[list[Any], ...]:
    """The batch as columns: remote, subject, reply, hdr_len, data,
    received_at_us, queues (what the frame carries), answers.

    One ``map(itemgetter)`` per column: a third of ``zip(*batch)``'s cost,
    which builds a tuple per step.
    """
    return tuple(list(map(get, batch)) for get in _GETTERS)


_GETTERS: Final = tuple(operator.itemgetter(i) for i in range(_ANSWER + 1))
_GET_SUBJECT: Final = _GETTERS[_SUBJECT]
_GET_REPLY: Final = _GETTERS[_REPLY]
_GET_QUEUES: Final = _GETTERS[_QUEUES]


def _names(remotes: tuple[BufferRule, ...]) -> tuple[str, ...]:
    """The remotes of several matching rules, each once, in rule order."""
    return tuple(dict.fromkeys(rule.remote for rule in remotes))


def _encode_batch(id: int, cols: tuple[list[Any], ...]) -> bytes:
    """The ``append`` frame of a batch's columns (``_Row`` order; answers left out).

    The subjects go as one string, joined by ``"\\n"`` and decoded once;
    a subject the parser took is whitespace-free, but should one hold a
    line feed, the list form keeps the batch intact. Bytes that are not
    UTF-8 become U+FFFD rather than failing the whole batch.
    """
    remote, subject_b, reply_b, hdr_len, data, received_at_us, queues = cols[:_ANSWER]
    n = len(data)
    joined = b"\n".join(subject_b)
    subject: str | list[str]
    if joined.count(b"\n") == n - 1:
        subject = joined.decode(errors="replace")
    else:
        subject = [s.decode(errors="replace") for s in subject_b]
    reply = reply_b
    if reply_b.count(None) != n:
        reply = [r.decode(errors="replace") if r is not None else None for r in reply_b]
    return encode_append_columns(id, remote, subject, reply, hdr_len, data, received_at_us, queues)
