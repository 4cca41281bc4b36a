"""The store's socket side: connections, the single DB worker, notifications.

Theory of operation
-------------------
Each connection has a reader task and a writer task (STYLE §3.5). The reader
decodes frames (``leafnode.ipc``), validates requests and queues them as
operations on one bounded channel; a full channel blocks the readers, which
is the back-pressure. ``ping``, ``subscribe`` and ``unsubscribe`` are
answered at once; everything touching the database goes through the channel.

One worker task takes operations in arrival order and runs each in trio's
worker thread under ``CapacityLimiter(1)``. Consecutive ``append`` requests
(from any connection) that are already queued are merged into one
transaction (group commit), so a commit's fsync is paid once per group and
every request is answered only after that commit. A database error answers
each request of the group with ``error``/``unavailable`` and an operator's
sentence (``health.describe``, never the driver's text); nothing was
committed and the store goes on (the next request tries again).

Whether the database works is ``health.DatabaseHealth``: every operation's
outcome feeds it, and so does a probe (a one-row write) queued every
``PROBE_INTERVAL_S`` while no other operation ran, so an outage shows with an
empty backlog too. ``ping`` and ``stats`` carry it as ``database``; while the
database is down ``stats`` is answered at once from the counters in memory
(its ``oldest_age_s`` null) instead of queueing behind failing operations.
The outage is logged once when it starts and once when it ends.

On a shared PostgreSQL store a lease tick (``leases.py``) is queued every
``RENEW_INTERVAL_S`` like any other operation: it renews this node's leases
and takes over dead nodes' backlogs. Drains name their backlog in ``read``,
``ack`` and ``subscribe``; an ack of a backlog this node no longer holds is
answered ``error`` with code ``lease_lost`` (fencing) and changes nothing;
a read of a backlog this node does not hold (yet) is answered ``error``
with code ``not_held``, never as empty. An operator's ``purge`` and
``redrive`` work on every backlog this node holds (or the one they name),
fenced as acks are; they are refused with ``not_held`` while the node's own
backlog waits for its lease, and with ``lease_lost`` when another node took
one meanwhile. The api's ``read`` with ``held`` reads them all at once.

``reload`` runs the re-read of the config file as one more operation in
the DB worker, so new limits apply from one operation to the next, never
in the middle of a transaction.

Answers and events are queued on the connection's outbox and written by its
writer task, coalesced into one ``send_all`` per wake-up; a client that
stops reading is closed once its outbox exceeds ``MAX_OUTBOX_BYTES``.
Notifications are coalesced per (subscription, remote) until written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import trio
from sqlalchemy.exc import SQLAlchemyError

from leafnode.ipc import (
    DEFAULT_READ_LIMIT,
    DEFAULT_READ_MAX_BYTES,
    MAX_READ_LIMIT,
    PROTOCOL_VERSION,
    FrameDecoder,
    FrameError,
    RequestError,
    decode_append_columns,
    encode_frame,
    field_bool,
    field_int,
    field_int_list,
    field_str,
    field_str_list,
)
from leafnode.ipc.trio import serve_unix_socket

from .health import DatabaseHealth, database_name
from .leases import RENEW_INTERVAL_S, LeaseLostError, NotHeldError
from .reads import encode_read

if TYPE_CHECKING:
    from pathlib import Path

    from leafnode.ipc import AppendColumns, Frame

    from .service import StoreService

__all__ = ["HOUSEKEEPING_INTERVAL_S", "PROBE_INTERVAL_S", "ReloadFn", "StoreServer"]

log = logging.getLogger("leafnode.store")

MAX_RECV: Final = 256 * 1024
# Operations waiting for the DB worker before readers stop reading.
MAX_QUEUED_OPS: Final = 256
# Appends merged into one transaction stop growing past this many messages.
MAX_GROUP_MSGS: Final = 20_000
# A client that does not read its answers is cut off past this.
MAX_OUTBOX_BYTES: Final = 256 * 1024 * 1024
# How often max_age and retain (and limits lowered by a reload) are enforced.
HOUSEKEEPING_INTERVAL_S: Final = 1.0
# How often an idle store checks that its database takes a write: an outage
# shows in /healthz within about this long even with nothing buffered.
PROBE_INTERVAL_S: Final = 1.0

# Re-reads and applies the config file: (error or None, changes).
ReloadFn = Callable[[bool], tuple[str | None, list[str]]]


class _Conn:
    """One client connection: its outbox and its subscriptions."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.out: list[bytes] = []
        self.out_bytes = 0
        self.wake = trio.Event()
        self.closed = False
        self.subs: dict[int, str | None] = {}
        # (sub id, remote) -> latest event fields; coalesced until written.
        self.notes: dict[tuple[int, str, str], int] = {}

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        self.out.append(data)
        self.out_bytes += len(data)
        if self.out_bytes > MAX_OUTBOX_BYTES:
            log.warning("Closing a store client that does not read its answers")
            self.close()
        self.wake.set()

    def note(self, kind: str, remote: str, seq: int) -> None:
        for sid, want in self.subs.items():
            if want is None or want == remote:
                key = (sid, kind, remote)
                old = self.notes.get(key)
                # appended: the newest last_seq; rewind: the lowest seq.
                if old is None or (seq > old if kind == "appended" else seq < old):
                    self.notes[key] = seq
                self.wake.set()

    def close(self) -> None:
        self.closed = True
        self.wake.set()

    async def writer(self) -> None:
        while not self.closed:
            await self.wake.wait()
            self.wake = trio.Event()
            for (sid, kind, remote), seq in self.notes.items():
                key = "last_seq" if kind == "appended" else "seq"
                self.out.append(encode_frame(kind, sid, {"remote": remote, key: seq}))
            self.notes.clear()
            if self.out and not self.closed:
                data = b"".join(self.out)
                self.out.clear()
                self.out_bytes = 0
                await self.stream.send_all(data)


@dataclass(slots=True)
class _Append:
    conn: _Conn | None
    rid: int
    msgs: AppendColumns


@dataclass(slots=True)
class _Call:
    conn: _Conn | None
    rid: int
    # Runs in the DB thread; returns the answer's fields (and blobs via frame).
    run: Callable[[int], bytes]
    after: Callable[[], None] | None = None
    # The answer when the database failed, instead of ``unavailable``.
    fallback: Callable[[int], bytes] | None = None
    # Whether success proves the database takes writes again (ends an
    # outage): a read or an empty housekeeping pass succeeds on a full disk.
    writes: bool = False
    # The periodic probe (weaker evidence than a real write: health.py).
    probe: bool = False


class StoreServer:
    """Serve a ``StoreService`` on ``run_dir/store.sock``.

    Args:
        service: the opened service.
        path: the socket path.
        housekeeping_interval_s: period of max_age/retain enforcement.
        reload: re-reads the config file and applies it to ``service``
            (only validates it when given True); returns ``(error or None,
            changes)``. Runs in the DB thread,
            between two operations (``reload`` request, SIGHUP).
    """

    def __init__(
        self,
        service: StoreService,
        path: Path,
        *,
        housekeeping_interval_s: float = HOUSEKEEPING_INTERVAL_S,
        probe_interval_s: float = PROBE_INTERVAL_S,
        reload: ReloadFn | None = None,
    ) -> None:
        self.service = service
        self.path = path
        self.housekeeping_interval_s = housekeeping_interval_s
        self.probe_interval_s = probe_interval_s
        self._reload = reload
        self.limiter = trio.CapacityLimiter(1)
        self._send_op, self._recv_op = trio.open_memory_channel[_Append | _Call](MAX_QUEUED_OPS)
        self._conns: set[_Conn] = set()
        self.health = DatabaseHealth(database_name(service.engine.url.render_as_string()))
        # trio time of the last operation that touched the database, and
        # whether a probe is queued (never two at once: a locked database
        # holds each one for the busy timeout).
        self._last_op_at = 0.0
        self._probe_queued = False

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; ``started()`` once the socket accepts."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._worker)
            nursery.start_soon(self._housekeeper)
            nursery.start_soon(self._prober)
            if self.service.leases is not None:
                nursery.start_soon(self._leaser)
            await nursery.start(serve_unix_socket, self.path, self._handle)
            log.info("Listening for store clients on %s", self.path)
            task_status.started()

    # -- connections ---------------------------------------------------------------

    async def _handle(self, stream: trio.SocketStream) -> None:
        conn = _Conn(stream)
        self._conns.add(conn)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer, conn, nursery.cancel_scope)
                await self._reader(conn)
                # EOF or a broken frame: the client is gone, so is its outbox.
                nursery.cancel_scope.cancel()
        finally:
            self._conns.discard(conn)
            conn.closed = True

    async def _writer(self, conn: _Conn, scope: trio.CancelScope) -> None:
        try:
            await conn.writer()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()

    async def _reader(self, conn: _Conn) -> None:
        decoder = FrameDecoder()
        while not conn.closed:
            try:
                data = await conn.stream.receive_some(MAX_RECV)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if not data:
                return
            decoder.feed(data)
            while True:
                try:
                    frame = decoder.next_frame()
                except FrameError as exc:
                    log.warning("Closing a store client: %s", exc)
                    return
                if frame is None:
                    break
                try:
                    await self._dispatch(conn, frame)
                except RequestError as exc:
                    conn.send(
                        encode_frame("error", frame.id, {"error": str(exc), "code": exc.code})
                    )
            decoder.compact()

    async def _dispatch(self, conn: _Conn, frame: Frame) -> None:
        kind, rid, f = frame.type, frame.id, frame.fields
        svc = self.service
        if kind == "append":
            await self._send_op.send(_Append(conn, rid, decode_append_columns(frame)))
        elif kind == "ping":
            conn.send(
                encode_frame(
                    "pong",
                    rid,
                    {
                        "leaf_id": svc.leaf_id,
                        "last_seq": svc.last_seq,
                        "node": svc.node,
                        "backlog": svc.backlog,
                        "version": PROTOCOL_VERSION,
                        "database": self.health.as_fields(),
                    },
                )
            )
        elif kind == "subscribe":
            backlog = field_str(f, "backlog")
            if backlog is None or backlog == svc.backlog:
                conn.subs[rid] = field_str(f, "remote")
                last = svc.last_seq
            else:  # a backlog taken over: nobody appends to it here, no events
                last = 0
            conn.send(encode_frame("ok", rid, {"last_seq": last, "backlog": svc.backlog}))
        elif kind == "unsubscribe":
            sid = field_int(f, "sub")
            conn.subs.pop(sid or 0, None)
            conn.send(encode_frame("ok", rid))
        elif kind == "read":
            await self._send_op.send(_Call(conn, rid, self._read_call(f)))
        elif kind == "ack":
            ack_remote = _required_str(f, "remote")
            upto = field_int(f, "upto")
            seqs = field_int_list(f, "seqs")
            ack_backlog = field_str(f, "backlog")

            def ack(rid: int) -> bytes:
                try:
                    n = svc.ack(ack_remote, upto=upto, seqs=seqs, backlog=ack_backlog)
                except LeaseLostError as exc:
                    return encode_frame("error", rid, {"error": str(exc), "code": "lease_lost"})
                return encode_frame("ok", rid, {"acked": n})

            await self._send_op.send(_Call(conn, rid, ack, writes=True))
        elif kind == "purge":
            remote, subject = field_str(f, "remote"), field_str(f, "subject")
            until_us, upto = field_int(f, "until_us"), field_int(f, "upto")
            purge_backlog = field_str(f, "backlog")

            def purge(rid: int) -> bytes:
                try:
                    per = svc.purge(
                        remote=remote,
                        subject=subject,
                        until_us=until_us,
                        upto=upto,
                        backlog=purge_backlog,
                    )
                except (NotHeldError, LeaseLostError) as exc:
                    return _not_held(rid, exc)
                return encode_frame("ok", rid, {"purged": sum(per.values()), "backlogs": per})

            await self._send_op.send(_Call(conn, rid, purge, writes=True))
        elif kind == "redrive":
            await self._send_op.send(self._redrive_call(conn, rid, f))
        elif kind == "reload":
            await self._send_op.send(self._reload_call(conn, rid, f.get("check") is True))
        elif kind == "stats":
            if not self.health.up:
                conn.send(self._stats_from_memory(rid))
                return

            def stats(rid: int) -> bytes:
                return encode_frame("ok", rid, {**svc.stats(), "database": {"up": True}})

            await self._send_op.send(_Call(conn, rid, stats, fallback=self._stats_from_memory))
        else:
            raise RequestError(f"unknown request type {kind!r}", code="unknown_type")

    def _read_call(self, f: dict[str, object]) -> Callable[[int], bytes]:
        remote = field_str(f, "remote")
        after = field_int(f, "after", default=0) or 0
        limit = min(
            field_int(f, "limit", default=DEFAULT_READ_LIMIT, minimum=1) or 1, MAX_READ_LIMIT
        )
        max_bytes = field_int(f, "max_bytes", default=DEFAULT_READ_MAX_BYTES, minimum=1) or 1
        subjects = field_str_list(f, "subjects")
        acked = field_bool(f, "acked")
        since_us, until_us = field_int(f, "since_us"), field_int(f, "until_us")
        columns = field_bool(f, "columns")
        backlog = field_str(f, "backlog")
        held = field_bool(f, "held") and backlog is None
        svc = self.service

        def read(rid: int) -> bytes:
            if held:
                got, backlogs = svc.read_held(
                    remote=remote,
                    after=after,
                    limit=limit,
                    max_bytes=max_bytes,
                    subjects=subjects,
                    acked=acked,
                    since_us=since_us,
                    until_us=until_us,
                )
                return encode_read(rid, got, one_remote=remote is not None, backlogs=backlogs)
            if backlog is not None and not svc.holds(backlog):
                # Not "empty": a drain takes an empty answer as every pending
                # record up to the last appended seq examined, and would pass
                # them (a restarted store holds its own backlog only after the
                # lease's self grace). The drain starts over and asks again.
                return encode_frame(
                    "error",
                    rid,
                    {"error": f"backlog {backlog!r} is not held here (yet)", "code": "not_held"},
                )
            got = svc.read(
                remote=remote,
                after=after,
                limit=limit,
                max_bytes=max_bytes,
                subjects=subjects,
                acked=acked,
                since_us=since_us,
                until_us=until_us,
                backlog=backlog,
            )
            return encode_read(rid, got, columns=columns, one_remote=remote is not None)

        return read

    def _redrive_call(self, conn: _Conn, rid: int, f: dict[str, object]) -> _Call:
        remote = _required_str(f, "remote")
        subject = field_str(f, "subject")
        since_us, until_us = field_int(f, "since_us"), field_int(f, "until_us")
        backlog = field_str(f, "backlog")
        result: list[int] = []
        svc = self.service

        def redrive(rid: int) -> bytes:
            try:
                per = svc.redrive(
                    remote, subject=subject, since_us=since_us, until_us=until_us, backlog=backlog
                )
            except (NotHeldError, LeaseLostError) as exc:
                return _not_held(rid, exc)
            # Only the own backlog's subscribers get the rewind event: a drain
            # of a taken-over backlog has none (the uplink rewinds it itself).
            result.append(per.get(svc.backlog, (0, 0))[1])
            firsts = [first for _n, first in per.values() if first]
            fields = {
                "redriven": sum(n for n, _first in per.values()),
                "first_seq": min(firsts, default=0),
                "backlogs": {
                    b: {"redriven": n, "first_seq": first} for b, (n, first) in per.items()
                },
            }
            return encode_frame("ok", rid, fields)

        def after() -> None:
            if result and result[0]:
                self._notify("rewind", remote, result[0])

        return _Call(conn, rid, redrive, after, writes=True)

    def _reload_call(self, conn: _Conn | None, rid: int, check: bool = False) -> _Call:
        reload = self._reload

        def run(rid: int) -> bytes:
            # In the DB thread, between operations: appends queued before
            # the reload use the old limits, those after it the new ones.
            error, changes = reload(check) if reload is not None else (None, [])
            fields: dict[str, object] = {"reloaded": error is None, "changes": changes}
            if error is not None:
                fields["error"] = error
            return encode_frame("ok", rid, fields)

        return _Call(conn, rid, run)

    async def reload(self) -> None:
        """Re-read the config file (SIGHUP), in turn with the queued operations."""
        await self._send_op.send(self._reload_call(None, 0))

    def _notify(self, kind: str, remote: str, seq: int) -> None:
        for conn in self._conns:
            if conn.subs:
                conn.note(kind, remote, seq)

    # -- the DB worker -------------------------------------------------------------

    async def _worker(self) -> None:
        carry: _Append | _Call | None = None
        while True:
            op = carry if carry is not None else await self._recv_op.receive()
            carry = None
            if isinstance(op, _Call):
                await self._run_call(op)
                continue
            group = [op]
            count = len(op.msgs)
            while count < MAX_GROUP_MSGS:
                try:
                    nxt = self._recv_op.receive_nowait()
                except trio.WouldBlock:
                    break
                if isinstance(nxt, _Call):
                    carry = nxt
                    break
                group.append(nxt)
                count += len(nxt.msgs)
            await self._run_appends(group)

    async def _run_call(self, op: _Call) -> None:
        try:
            answer = await trio.to_thread.run_sync(op.run, op.rid, limiter=self.limiter)
        except SQLAlchemyError as exc:
            sentence = self.health.failed(exc, write=op.writes, what="Store operation")
            if op.fallback is not None:
                answer = op.fallback(op.rid)
            else:
                answer = _unavailable(op.rid, sentence)
        else:
            self.health.succeeded(write=op.writes, probe=op.probe)
            if op.after is not None:
                op.after()
        finally:
            if op.writes:
                self._last_op_at = trio.current_time()
        if op.conn is not None:
            op.conn.send(answer)

    async def _run_appends(self, group: list[_Append]) -> None:
        svc = self.service
        try:
            outcomes = await trio.to_thread.run_sync(
                svc.append, [op.msgs for op in group], limiter=self.limiter
            )
        except SQLAlchemyError as exc:
            count = sum(len(op.msgs) for op in group)
            sentence = self.health.failed(exc, write=True, what=f"Append of {count} messages")
            for op in group:
                if op.conn is not None:
                    op.conn.send(_unavailable(op.rid, sentence))
            return
        finally:
            self._last_op_at = trio.current_time()
        self.health.succeeded(write=True)
        touched: dict[str, int] = {}
        for op, out in zip(group, outcomes, strict=True):
            if op.conn is not None:
                op.conn.send(
                    encode_frame(
                        "ok",
                        op.rid,
                        {
                            "first_seq": out.first_seq,
                            "last_seq": out.last_seq,
                            "refused": [list(r) for r in out.refused],
                        },
                    )
                )
            for remote, seq in out.remotes.items():
                touched[remote] = max(touched.get(remote, 0), seq)
        for remote, seq in touched.items():
            self._notify("appended", remote, seq)

    def _stats_from_memory(self, rid: int) -> bytes:
        fields = self.service.stats_from_memory()
        fields["database"] = self.health.as_fields()
        return encode_frame("ok", rid, fields)

    async def _prober(self) -> None:
        """Queue a probe when no write ran for an interval, or the database is down."""

        def probe(rid: int) -> bytes:
            self.service.probe()
            return b""

        def done() -> None:
            self._probe_queued = False

        while True:
            await trio.sleep(self.probe_interval_s)
            idle = trio.current_time() - self._last_op_at >= self.probe_interval_s
            if self._probe_queued or not (idle or not self.health.up):
                continue
            self._probe_queued = True
            # ``after`` runs on success only; a failed probe clears the flag here.
            call = _Call(None, 0, probe, done, writes=True, probe=True, fallback=_no_answer(done))
            await self._send_op.send(call)

    async def _leaser(self) -> None:
        """Queue a lease tick every ``RENEW_INTERVAL_S`` (never two at once)."""
        svc = self.service
        done = trio.Event()

        def tick(rid: int) -> bytes:
            svc.lease_tick()
            return b""

        def finished() -> None:
            done.set()

        while True:
            done = trio.Event()
            await self._send_op.send(
                _Call(None, 0, tick, finished, writes=True, fallback=_no_answer(finished))
            )
            await done.wait()
            await trio.sleep(RENEW_INTERVAL_S)

    async def _housekeeper(self) -> None:
        svc = self.service

        def housekeep(rid: int) -> bytes:
            dropped = svc.housekeep()
            for (remote, reason), n in dropped.items():
                verb = "Expired" if reason == "max_age" else "Dropped"
                log.info("%s %d buffered messages of %s (%s)", verb, n, remote, reason)
            return b""

        while True:
            await trio.sleep(self.housekeeping_interval_s)
            await self._send_op.send(_Call(None, 0, housekeep))


def _required_str(fields: dict[str, object], key: str) -> str:
    value = field_str(fields, key, required=True)
    assert value is not None  # field_str raised otherwise
    return value


def _no_answer(then: Callable[[], None]) -> Callable[[int], bytes]:
    def answer(rid: int) -> bytes:
        then()
        return b""

    return answer


def _not_held(rid: int, exc: NotHeldError | LeaseLostError) -> bytes:
    """The refusal of an operator's purge or redrive of a backlog not held here."""
    code = "lease_lost" if isinstance(exc, LeaseLostError) else "not_held"
    return encode_frame("error", rid, {"error": str(exc), "code": code})


def _unavailable(rid: int, sentence: str) -> bytes:
    return encode_frame(
        "error", rid, {"error": f"store database: {sentence}", "code": "unavailable"}
    )
