"""Seqs unique across the nodes of a shared PostgreSQL store (DESIGN §8, §9).

A seq is a message's identity (its ``Nats-Msg-Id`` is ``<leaf id>-<seq>``),
so it must never be handed out twice, whichever node appends. On SQLite one
store process owns the file and keeps ``last_seq`` in memory, persisting it
with every append (``service.py``). On PostgreSQL several store processes
append to the same table: each reserves a block of ``BLOCK`` seqs at a time
with one atomic ``UPDATE store_meta SET value = value + n ... RETURNING``
(the row lock orders concurrent reservations) in its own short transaction,
committed before any seq of it is used; a node then numbers its appends
from its block. Blocks only grow, so a node's seqs increase with time (its
backlog is read in seq order); seqs of a block left unused are skipped,
which nothing minds (discarded messages leave gaps too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from sqlalchemy import BigInteger, String, cast, update

from .models import store_meta

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = ["BLOCK", "SeqBlocks"]

# Seqs reserved at a time: one reservation per this many appended messages.
BLOCK: Final = 10_000


class SeqBlocks:
    """This node's reserved seqs: ``(last, limit]`` may be handed out without asking."""

    def __init__(self) -> None:
        self.limit = 0

    def room(self, last: int, n: int) -> bool:
        """Whether ``n`` seqs after ``last`` are within the reserved block."""
        return last + n <= self.limit

    def reserve(self, n: int, conn: Connection) -> int:
        """Reserve at least ``n`` seqs; returns the seq before the first of them.

        Runs in its own transaction, committed by the caller before the
        seqs are used.
        """
        size = max(n, BLOCK)
        value = store_meta.c.value
        top = conn.scalar(
            update(store_meta)
            .where(store_meta.c.key == "last_seq")
            .values(value=cast(cast(value, BigInteger) + size, String))
            .returning(value),
        )
        if top is None:
            raise RuntimeError("store_meta has no last_seq")  # open() writes it first
        self.limit = int(top)
        return self.limit - size
