"""Backlog leases on a shared PostgreSQL store: who drains what (DESIGN §9).

Theory of operation
-------------------
Nodes that share one PostgreSQL ``store.url`` each append their hub-bound
messages to their own *backlog* (``buffered_messages.node``) and each
drains only the backlogs it holds a lease on (``buffer_leases``, one row per
backlog). A node is named by ``server_name`` (README, "Redundant site"); its
backlog id is that name, or ``name#<generation>`` after another node took
its backlog over (below). Seqs are unique across the store (``seqblocks``),
so a message's ``Nats-Msg-Id`` (``<leaf id>-<seq>``, the leaf id being the
store's) is the same whichever node sends it.

Every ``RENEW_INTERVAL_S`` the store runs ``tick`` (one transaction):

* **Renew.** ``renewed_at_us`` of each held lease is set to the database's
  clock (never a node's: their clocks may differ), conditional on our
  ``instance`` token and the ``epoch`` we claimed. A lease whose row no
  longer matches was taken by another node: it is *lost*, and its drain
  stops (acks are fenced, below). A lost primary backlog is replaced by a
  new generation (``name#2``...): the node appends there from then on, and
  never again to the backlog another node now drains.
* **Claim.** A lease not renewed for ``takeover_after`` (the holder is dead)
  is claimed by the first live node: ``SELECT ... FOR UPDATE SKIP LOCKED``
  of its row, then a conditional ``UPDATE ... SET holder = me, epoch =
  epoch + 1 WHERE backlog = b AND epoch = e AND renewed_at_us <= cutoff``.
  The row lock is held until the claim commits; a second node skips the
  locked row, or (once the first committed) reads the new epoch and fresh
  renewal and passes: exactly one node wins, and nobody waits. A node's own
  backlogs (``node`` is its name: its previous process, killed and
  restarted) are claimed after ``SELF_GRACE_S`` instead, so a restarted
  node drains its own backlog long before anyone else would.
* **Release.** A held backlog other than the primary that has no rows left
  is released (``holder`` ""), so an empty dead backlog is not renewed
  forever; a released lease with rows (a late append) is claimable again.

Fencing. ``check`` runs inside the ack's transaction: ``SELECT epoch,
instance ... FOR SHARE`` blocks a concurrent claim until the ack commits,
and refuses the ack (``LeaseLostError``) when the epoch or instance is no
longer ours, so a node that comes back after a takeover cannot delete what
the new holder is sending. An operator's purge and redrive (``service.py``)
are fenced the same way, for each backlog they change; one naming a backlog
this node does not hold, or its own before the self grace gave it the lease,
is refused up front (``NotHeldError``).

SQLite stores are one node's file: no leases, the backlog is "" (``None``
here; ``service.py`` does not build a ``Leases``).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from sqlalchemy import BigInteger, Select, exists, literal_column, select, update

from .models import buffer_leases, buffered_messages

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = [
    "RENEW_INTERVAL_S",
    "SELF_GRACE_S",
    "Held",
    "LeaseLostError",
    "Leases",
    "NotHeldError",
    "TickOutcome",
    "backlog_id",
]

log = logging.getLogger("leafnode.store")

# How often a live node renews its leases (and looks for dead ones).
RENEW_INTERVAL_S: Final = 1.0
# A node's own backlog, left by its previous process, is claimed once that
# process missed this many seconds of renewals (a killed store is restarted
# within a second or two; a live duplicate keeps renewing and is not taken).
SELF_GRACE_S: Final = 3.0

L = buffer_leases.c
# ORM-enabled UPDATEs without loading or syncing objects.

# The database's clock in microseconds (PostgreSQL: clock_timestamp moves
# within a transaction, now() would not).
_DB_NOW_US: Final[Select[tuple[int]]] = select(
    literal_column("CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)", BigInteger())
)


class LeaseLostError(Exception):
    """This node no longer holds the backlog: another node took it over."""

    def __init__(self, backlog: str) -> None:
        super().__init__(f"backlog {backlog!r} is held by another node now")
        self.backlog = backlog


class NotHeldError(Exception):
    """An operator's request names a backlog this node does not hold (now or yet)."""

    def __init__(self, backlog: str, *, waiting: bool = False) -> None:
        why = "not held by this node yet: it waits for the lease of its previous process"
        super().__init__(f"backlog {backlog!r} is " + (why if waiting else "not held by this node"))
        self.backlog = backlog
        self.waiting = waiting


@dataclass(slots=True)
class Held:
    """A lease this store process holds."""

    backlog: str
    node: str
    epoch: int
    claimed_at_us: int


@dataclass(slots=True)
class TickOutcome:
    """What one ``tick`` changed."""

    gained: list[Held]
    lost: list[str]
    released: list[str]
    new_primary: str | None = None


def backlog_id(node: str, generation: int) -> str:
    """The backlog id of ``node``'s ``generation``-th backlog (0: the node's name)."""
    return node if generation == 0 else f"{node}#{generation + 1}"


class Leases:
    """One store process's leases on a shared PostgreSQL store (see the module doc).

    Every method runs in the store's DB thread with the caller's conn and
    never commits (``service.py`` owns the transaction).

    Args:
        node: this node's name (``server_name``, or the host name).
        takeover_after_s: how long a backlog's holder must have been silent
            before another node claims it.
    """

    def __init__(self, node: str, takeover_after_s: float) -> None:
        self.node = node
        self.takeover_after_s = takeover_after_s
        self.instance = secrets.token_hex(8)
        self.primary = node
        self.held: dict[str, Held] = {}
        self.takeovers = 0
        self._waiting_logged = False

    def _now(self, conn: Connection) -> int:
        return int(conn.scalar(_DB_NOW_US) or 0)

    @property
    def self_grace_s(self) -> float:
        return min(SELF_GRACE_S, self.takeover_after_s)

    def start(self, conn: Connection) -> None:
        """Pick the primary backlog (the one this node appends to) and claim it if free.

        Rows of a store from before backlogs ("" backlog) join the primary.
        """
        self._pick_primary(self._now(conn), conn)
        conn.execute(
            update(buffered_messages)
            .where(buffered_messages.c.node == "")
            .values(node=self.primary)
        )

    def _pick_primary(self, now: int, conn: Connection) -> None:
        rows = conn.execute(
            select(L.backlog, L.generation, L.holder, L.instance, L.epoch, L.renewed_at_us)
            .where(L.node == self.node)
            .order_by(L.generation.desc())
            .limit(1)
        ).first()
        if rows is None:
            created = self._create(backlog_id(self.node, 0), 0, now, conn)
        else:
            backlog, generation, holder, _instance, epoch, renewed = rows
            stale = renewed < now - int(self.self_grace_s * 1e6)
            if holder in ("", self.node) or stale:
                self.primary = backlog
                if holder == "" or stale:
                    self._claim(backlog, self.node, epoch, now, now, conn)
                return
            # another live node drains it: a new generation for our appends
            created = self._create(backlog_id(self.node, generation + 1), generation + 1, now, conn)
        if not created:  # another process of this node created it meanwhile: look again
            self._pick_primary(now, conn)

    def _create(self, backlog: str, generation: int, now: int, conn: Connection) -> bool:
        """Insert and hold a new backlog's lease row; False: the row exists already.

        ``ON CONFLICT DO NOTHING``: two processes of one node (a restart
        while the old one still runs) may create the same generation at
        once; the loser picks again rather than failing with 23505.
        """
        # Imported here: a SQLite store never loads the PostgreSQL dialect (~2 MB).
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        done = conn.scalar(
            pg_insert(buffer_leases)
            .values(
                backlog=backlog,
                node=self.node,
                generation=generation,
                holder=self.node,
                instance=self.instance,
                epoch=1,
                renewed_at_us=now,
                claimed_at_us=now,
            )
            .on_conflict_do_nothing(index_elements=[L.backlog])
            .returning(L.backlog)
        )
        if done is None:
            return False
        self.primary = backlog
        self.held[backlog] = Held(backlog, self.node, 1, now)
        return True

    def _claim(
        self, backlog: str, node: str, epoch: int, cutoff: int, now: int, conn: Connection
    ) -> Held | None:
        """The conditional UPDATE that takes a lease (see the module doc); None: lost the race.

        The row is locked first with ``SKIP LOCKED``: a row another
        transaction holds is being renewed (its holder lives) or claimed by
        another node, so we pass rather than wait, and two nodes ticking at
        once never wait on each other's rows (no deadlock).
        """
        row = conn.execute(
            select(L.epoch, L.renewed_at_us)
            .where(L.backlog == backlog)
            .with_for_update(skip_locked=True)
        ).first()
        if row is None or row[0] != epoch or row[1] > cutoff:
            return None
        done = conn.execute(
            update(buffer_leases)
            .where(L.backlog == backlog, L.epoch == epoch, L.renewed_at_us <= cutoff)
            .values(
                holder=self.node,
                instance=self.instance,
                epoch=L.epoch + 1,
                renewed_at_us=now,
                claimed_at_us=now,
            )
        )
        if done.rowcount != 1:
            return None
        held = self.held[backlog] = Held(backlog, node, epoch + 1, now)
        return held

    def tick(self, conn: Connection) -> TickOutcome:
        """Renew, notice losses, claim dead backlogs, release empty ones (module doc)."""
        now = self._now(conn)
        out = TickOutcome([], [], [])
        for backlog, held in list(self.held.items()):
            done = conn.execute(
                update(buffer_leases)
                .where(L.backlog == backlog, L.instance == self.instance, L.epoch == held.epoch)
                .values(renewed_at_us=now)
            )
            if done.rowcount != 1:
                del self.held[backlog]
                out.lost.append(backlog)
                log.warning(
                    "Lost the lease of backlog %r: another node took it over; its drain stops here",
                    backlog,
                )
        if self.primary in out.lost:
            self._new_generation(now, out, conn)
        self._claim_dead(now, out, conn)
        if self.primary not in self.held:
            # Still waiting for the lease of our previous process: another node
            # may have taken it meanwhile (takeover_after below the self grace).
            holder = conn.scalar(select(L.holder).where(L.backlog == self.primary))
            if holder not in (None, "", self.node):
                self._new_generation(now, out, conn)
        for backlog in list(self.held):
            if backlog == self.primary or backlog in [h.backlog for h in out.gained]:
                continue
            has_rows = conn.scalar(select(exists().where(buffered_messages.c.node == backlog)))
            if not has_rows:
                held = self.held.pop(backlog)
                conn.execute(
                    update(buffer_leases)
                    .where(L.backlog == backlog, L.epoch == held.epoch)
                    .values(holder="", instance="")
                )
                out.released.append(backlog)
                log.info("Released the lease of backlog %r: it is empty", backlog)
        return out

    def _new_generation(self, now: int, out: TickOutcome, conn: Connection) -> None:
        """Our primary backlog is another node's now: append to a new one from now on."""
        top = conn.scalar(
            select(L.generation).where(L.node == self.node).order_by(L.generation.desc()).limit(1)
        )
        generation = int(top or 0) + 1
        while not self._create(backlog_id(self.node, generation), generation, now, conn):
            generation += 1  # another process of this node took that one
        out.new_primary = self.primary
        log.warning("Appending to a new backlog %r from now on", self.primary)

    def _claim_dead(self, now: int, out: TickOutcome, conn: Connection) -> None:
        takeover_cutoff = now - int(self.takeover_after_s * 1e6)
        self_cutoff = now - int(self.self_grace_s * 1e6)
        candidates = conn.execute(
            select(L.backlog, L.node, L.holder, L.epoch, L.renewed_at_us).where(
                L.instance != self.instance,
                L.renewed_at_us <= max(takeover_cutoff, self_cutoff),
            )
        ).all()
        for backlog, node, holder, epoch, renewed in candidates:
            cutoff = self_cutoff if node == self.node else takeover_cutoff
            if renewed > cutoff:
                if node == self.node and holder == self.node and not self._waiting_logged:
                    self._waiting_logged = True
                    log.info("Waiting for the previous process's lease of backlog %r", backlog)
                continue
            if holder == "" and not conn.scalar(
                select(exists().where(buffered_messages.c.node == backlog))
            ):
                continue  # released and still empty
            held = self._claim(backlog, node, epoch, cutoff, now, conn)
            if held is None:
                continue
            out.gained.append(held)
            if node != self.node:
                self.takeovers += 1
                log.warning(
                    "Took over backlog %r of node %r (silent for %.1f s); draining it",
                    backlog,
                    node,
                    (now - renewed) / 1e6,
                )
            else:
                log.info("Claimed backlog %r of this node", backlog)

    def check(self, backlog: str, conn: Connection) -> None:
        """Fencing: raise ``LeaseLostError`` unless this process still holds ``backlog``.

        ``FOR SHARE`` keeps a concurrent claim waiting until our transaction ends.
        """
        held = self.held.get(backlog)
        if held is None:
            raise LeaseLostError(backlog)
        row = conn.execute(
            select(L.instance, L.epoch).where(L.backlog == backlog).with_for_update(read=True)
        ).first()
        if row is None or row[0] != self.instance or row[1] != held.epoch:
            raise LeaseLostError(backlog)

    def status(self) -> list[dict[str, object]]:
        """Held backlogs other than the primary: ``[{backlog, node, epoch, claimed_at_us}]``."""
        return [
            {
                "backlog": h.backlog,
                "node": h.node,
                "epoch": h.epoch,
                "claimed_at_us": h.claimed_at_us,
            }
            for b, h in sorted(self.held.items())
            if b != self.primary
        ]
