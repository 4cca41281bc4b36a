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

When the store is unreachable (down, restarting, disk full) the router keeps
serving local traffic; buffered messages wait in memory, bounded per remote
by ``MEMORY_LIMIT_BYTES`` and the remote's ``max_bytes``; past the bound the
remote's ``discard`` policy applies (``old``: drop the oldest waiting one,
``new``: refuse the new one; a verbose publisher gets ``-ERR``), counted by
reason ``store_unavailable``. Waiting messages are appended as soon as the
store answers again.
"""

from __future__ import annotations

import collections
import functools
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

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
    from leafnode.config import BufferSettings, Settings
    from leafnode.ipc.trio import TrioIpcClient


__all__ = ["BUFFER_FULL", "BufferRule", "StoreLink", "build_buffer_rules"]

log = logging.getLogger("leafnode.router")

# What waits in router memory while the store cannot take it, per remote.
MEMORY_LIMIT_BYTES = 64 * 1024 * 1024
# Reconnect back-off to the store socket: first try, then doubling to the cap.
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 2.0
# The -ERR a verbose publisher gets when its buffered message was refused.
BUFFER_FULL = "Leafnode Buffer Full"


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

    def send_error(self, text: str) -> None: ...

    def send_pong(self) -> None: ...


class StoreLink:
    """The router's connection to ``store.sock``: batched appends, commit tracking."""

    def __init__(self, settings: Settings) -> None:
        self.path = Path(settings.run_dir) / STORE_SOCKET
        self.limits: dict[str, BufferSettings] = {
            r.name: r.buffer for r in settings.leafnodes.remotes if r.buffer is not None
        }
        self.pending: list[BufferedMsg] = []
        self.origins: list[BufferOrigin | None] = []
        self.waiting_bytes: collections.Counter[str] = collections.Counter()
        self.batch_no = 1  # the batch now accumulating
        self.committed = 0  # every batch up to this one is committed
        # (batch number, client) for each deferred PONG; one client's entries
        # are in increasing batch order, different clients' are not.
        self.waiters: list[tuple[int, BufferOrigin]] = []
        self.dropped: collections.Counter[tuple[str, str]] = collections.Counter()
        self.appended = 0
        self.available = False
        self._in_outage = False
        self._ever_connected = False
        self._waiting_logged = False
        self._delay = RETRY_FIRST_S
        self._wakeup = trio.Event()

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
        seen: set[str] = set()
        for rule in remotes:
            name = rule.remote
            if name in seen:
                continue
            seen.add(name)
            if not self._make_room(name, len(data), origin):
                continue
            self.pending.append(
                BufferedMsg(name, subject_s, reply_s, hdr_len, data, received_us, queues)
            )
            self.origins.append(origin)
            self.waiting_bytes[name] += len(data)
        if origin is not None:
            origin.buffer_batch = self.batch_no
        self._wakeup.set()

    def _make_room(self, remote: str, size: int, origin: BufferOrigin | None) -> bool:
        limit = MEMORY_LIMIT_BYTES
        settings = self.limits.get(remote)
        if settings is not None and settings.max_bytes is not None:
            limit = min(limit, settings.max_bytes)
        if self.waiting_bytes[remote] + size <= limit:
            return True
        if settings is not None and settings.discard == "new":
            self.dropped[(remote, "store_unavailable")] += 1
            if origin is not None and origin.verbose:
                origin.send_error(BUFFER_FULL)
            return False
        # discard old: drop the oldest waiting messages of this remote.
        i = 0
        while self.waiting_bytes[remote] + size > limit and i < len(self.pending):
            msg = self.pending[i]
            if msg.remote == remote:
                del self.pending[i]
                del self.origins[i]
                self.waiting_bytes[remote] -= len(msg.data)
                self.dropped[(remote, "store_unavailable")] += 1
            else:
                i += 1
        return True

    def pong_now(self, client: BufferOrigin) -> bool:
        """True when ``client`` may get its PONG now; else it is sent on commit."""
        if client.buffer_batch <= self.committed:
            return True
        self.waiters.append((client.buffer_batch, client))
        return False

    # -------------------------------------------------------------- the task

    async def run(self) -> None:
        """Keep a connection to the store and feed it batches, forever.

        Error handling: a store that cannot be reached, and a store that
        answers ``unavailable`` (its database is down or its disk is full),
        are retried with a doubling delay; each outage logs one line when it
        starts and one when it ends, not one per retry.
        """
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
        if not self._in_outage:
            self._in_outage = True
            log.error("Store unavailable: %s; buffered messages wait in memory", reason)

    def _recovered(self) -> None:
        self.available = True
        self._delay = RETRY_FIRST_S
        if self._in_outage:
            self._in_outage = False
            log.info("Store is back at %s; buffered appends resumed", self.path)
        elif not self._ever_connected:
            log.info("Connected to the store at %s", self.path)
        self._ever_connected = True

    async def _back_off(self) -> None:
        await trio.sleep(self._delay)
        self._delay = min(self._delay * 2, RETRY_MAX_S)

    async def _send_loop(self, client: TrioIpcClient) -> None:
        if not self.pending:
            self._recovered()
        while True:
            while not self.pending:
                await self._wakeup.wait()
                self._wakeup = trio.Event()
            batch, origins = self.pending, self.origins
            self.pending, self.origins = [], []
            number = self.batch_no
            self.batch_no += 1
            try:
                frame = await client.request_prepared(functools.partial(encode_append, msgs=batch))
            except RequestError as exc:
                self._put_back(batch, origins)
                if exc.code != "unavailable":
                    log.error("Store refused a batch of %d buffered messages: %s", len(batch), exc)
                    raise IpcClosedError(str(exc)) from exc
                # The database is down or full: same connection, later.
                self._outage(str(exc))
                await self._back_off()
                continue
            except IpcClosedError:
                self._put_back(batch, origins)
                raise
            self._recovered()
            reply = decode_append_reply(frame)
            for index, reason in reply.refused:
                self.dropped[(batch[index].remote, reason)] += 1
                origin = origins[index]
                if origin is not None and origin.verbose:
                    origin.send_error(BUFFER_FULL)
            for msg in batch:
                self.waiting_bytes[msg.remote] -= len(msg.data)
            self.appended += len(batch) - len(reply.refused)
            self.committed = number
            if self.waiters:
                ready = [origin for batch_no, origin in self.waiters if batch_no <= number]
                self.waiters = [w for w in self.waiters if w[0] > number]
                for origin in ready:
                    origin.send_pong()

    def _put_back(self, batch: list[BufferedMsg], origins: list[BufferOrigin | None]) -> None:
        """A batch whose commit is unknown goes first in line again (at least once)."""
        self.pending[:0] = batch
        self.origins[:0] = origins
