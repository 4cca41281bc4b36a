"""Hub-bound messages on buffered subjects go to the store (DESIGN §3.3, §4).

Theory of operation. A remote's ``buffer { subjects }`` names subjects whose
hub-bound messages must survive an outage. For each local publish on such a
subject the router appends one record per buffering remote to the store,
whatever the state of the hub link: there is a single path, so nothing can
overtake the backlog; the uplink tails the store and sends in order.

Appends are batched: everything routed during one scheduler pass is one
``append`` request, one transaction. Batches are numbered; a client that
published a buffered message remembers the number of the batch it went into,
and its next PING is answered only once that batch is committed, which makes
``flush()`` a durability barrier (DESIGN §4). Batch numbers only grow, so a
deferred PONG is never overtaken by a later one.

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
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

import trio

from leafnode.ipc import (
    STORE_SOCKET,
    STORE_START_GRACE_S,
    BufferedMsg,
    IpcClosedError,
    RequestError,
    decode_append_reply,
    encode_append,
)
from leafnode.ipc.trio import open_trio_client
from leafnode.sublist import Sublist

if TYPE_CHECKING:
    from collections.abc import Sequence

    from leafnode.config import BufferSettings, Settings
    from leafnode.ipc.trio import TrioIpcClient


__all__ = ["BUFFER_FULL", "BufferRule", "StoreLink", "build_buffer_rules"]

log = logging.getLogger("leafnode.router")

# What waits in router memory while the store cannot take it, per remote.
MEMORY_LIMIT_BYTES = 64 * 1024 * 1024
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


class StoreLink:
    """The router's connection to ``store.sock``: batched appends, commit tracking."""

    def __init__(self, settings: Settings) -> None:
        self.path = Path(settings.run_dir) / STORE_SOCKET
        self.limits: dict[str, BufferSettings] = {
            r.name: r.buffer for r in settings.leafnodes.remotes if r.buffer is not None
        }
        self.pending: list[BufferedMsg] = []
        # Parallel to ``pending``: the verbose PUB's answer each message counts in.
        self.answers: list[_Answer | None] = []
        self.waiting_bytes: collections.Counter[str] = collections.Counter()
        self.waiting_msgs: collections.Counter[str] = collections.Counter()
        self.batch_no = 1  # the batch now accumulating
        self.committed = 0  # every batch up to this one is committed
        # (batch number, client) for each deferred PONG; one client's entries
        # are in increasing batch order, different clients' are not.
        self.waiters: list[tuple[int, BufferOrigin]] = []
        # Verbose answers not yet sent, per client, in PUB order.
        self.owed: dict[BufferOrigin, collections.deque[_Answer]] = {}
        # Messages the router dropped itself (before the store saw them).
        self.dropped: collections.Counter[tuple[str, str]] = collections.Counter()
        # Remotes with ``discard: new`` whose memory queue refused the last message.
        self.refusing: set[str] = set()
        self.appended = 0
        self.available = False
        # Why messages wait in memory (None while the store takes them).
        self.reason: str | None = None
        self._in_outage = False
        self._ever_connected = False
        self._waiting_logged = False
        self._delay = RETRY_FIRST_S
        self._wakeup = trio.Event()
        # (remote, reason) -> drops not logged yet, and when the last line was.
        self._unlogged: collections.Counter[tuple[str, str]] = collections.Counter()
        self._logged_at: dict[tuple[str, str], float] = {}

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
        """Queue one message for each remote buffering ``subject`` (synchronous)."""
        received_us = time.time_ns() // 1000
        subject_s = subject.decode()
        reply_s = reply.decode() if reply is not None else None
        answer = _Answer(origin) if origin is not None and origin.verbose else None
        seen: set[str] = set()
        for rule in remotes:
            name = rule.remote
            if name in seen:
                continue
            seen.add(name)
            if not self._make_room(name, len(data)):
                if answer is not None:
                    answer.refused = True
                continue
            self.pending.append(
                BufferedMsg(name, subject_s, reply_s, hdr_len, data, received_us, queues)
            )
            self.answers.append(answer)
            if answer is not None:
                answer.left += 1
            self.waiting_bytes[name] += len(data)
            self.waiting_msgs[name] += 1
        if origin is not None and (answer is None or answer.left):
            origin.buffer_batch = self.batch_no
        if answer is not None and origin is not None:
            self._owe(origin, answer)
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

    def _make_room(self, remote: str, size: int) -> bool:
        limit = MEMORY_LIMIT_BYTES
        settings = self.limits.get(remote)
        if settings is not None and settings.max_bytes is not None:
            limit = min(limit, settings.max_bytes)
        if self.waiting_bytes[remote] + size <= limit:
            self.refusing.discard(remote)
            return True
        reason = "store_unavailable"
        if settings is not None and settings.discard == "new":
            self.refusing.add(remote)
            self._count_drop(remote, reason, 1)
            return False
        # discard old: drop the oldest waiting messages of this remote.
        i = 0
        settled: set[BufferOrigin] = set()
        while self.waiting_bytes[remote] + size > limit and i < len(self.pending):
            msg = self.pending[i]
            if msg.remote == remote:
                del self.pending[i]
                answer = self.answers.pop(i)
                if answer is not None:
                    answer.left -= 1
                    answer.refused = True
                    settled.add(answer.client)
                self.waiting_bytes[remote] -= len(msg.data)
                self.waiting_msgs[remote] -= 1
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
                await self._wakeup.wait()
                self._wakeup = trio.Event()
            batch, answers = self.pending, self.answers
            self.pending, self.answers = [], []
            number = self.batch_no
            self.batch_no += 1
            try:
                frame = await client.request_prepared(functools.partial(encode_append, msgs=batch))
            except RequestError as exc:
                self._put_back(batch, answers)
                if exc.code != "unavailable":
                    log.error("Store refused a batch of %d buffered messages: %s", len(batch), exc)
                    raise IpcClosedError(str(exc)) from exc
                # The database is down or full: same connection, later.
                self._outage(str(exc))
                await self._wait_database(client)
                continue
            except IpcClosedError:
                self._put_back(batch, answers)
                raise
            self._recovered()
            self._committed(number, batch, answers, decode_append_reply(frame).refused)

    def _committed(
        self,
        number: int,
        batch: list[BufferedMsg],
        answers: list[_Answer | None],
        refused: Sequence[tuple[int, str]],
    ) -> None:
        """A batch is committed: counters, verbose answers, then deferred PONGs."""
        for index, reason in refused:
            # The store counts these drops; the router only logs them.
            self._count_drop(batch[index].remote, reason, 1, by_store=True)
            answer = answers[index]
            if answer is not None:
                answer.refused = True
        for msg in batch:
            self.waiting_bytes[msg.remote] -= len(msg.data)
            self.waiting_msgs[msg.remote] -= 1
            self.refusing.discard(msg.remote)  # room again in memory
        self.appended += len(batch) - len(refused)
        settled: dict[BufferOrigin, None] = {}
        for answer in answers:
            if answer is not None:
                answer.left -= 1
                settled[answer.client] = None
        for client in settled:
            self._settle(client)
        self.committed = number
        if self.waiters:
            ready = [origin for batch_no, origin in self.waiters if batch_no <= number]
            self.waiters = [w for w in self.waiters if w[0] > number]
            for origin in ready:
                origin.send_pong()

    def _put_back(self, batch: list[BufferedMsg], answers: list[_Answer | None]) -> None:
        """A batch whose commit is unknown goes first in line again (at least once)."""
        self.pending[:0] = batch
        self.answers[:0] = answers
