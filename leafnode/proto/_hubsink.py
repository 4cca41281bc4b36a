"""The router's hub-bound messages onto the data link: the per-message half of the hub path.

Theory of operation. ``HubSink.write_msg`` encodes one hub-bound message in
the leaf link's own form (``LMSG``, leaf ``HMSG``: leafnode-protocol.md §3;
the data link's dialect: ``_datalink``), after an ``ACC <account>`` line when
the account changes, and queues it on the data link's ``Outbound`` (appended
to ``out``, counted in ``pending``, the outbound marked dirty so the batch's
end writes it). Consecutive messages whose subject does not start with ``$``
are held as a *run*; the run leaves behind one ``RUN`` line (``encode_run``)
when anything else is written or the outbound flushes (``end_run``, which the
sink installs as the outbound's ``before_flush``): the uplink then relays
the whole run to the hub without reading its messages one by one. A run of
one message (a request, a reply: most batches of a request/reply exchange)
goes without a ``RUN`` line: the uplink's framer keeps a bare line as a run
of one. Every write to the data link goes through here, so nothing
overtakes a held run.

Limits as ``Outbound.write``: past ``max_pending`` the outbound's ``queued``
runs its overflow policy.

This module is compiled by mypyc (pyproject ``[tool.leafnode.compile]``);
the source is the pure-Python fallback, so it keeps to precise types: the
outbound is reached through the ``HubQueue`` protocol.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

from ._route import encode_leaf_route

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["HubQueue", "HubSink"]

# The wire forms (leafnode-protocol.md §3; _writer's LMSG_FRAME, _datalink's ACC and RUN).
_LMSG_FRAME: Final = b"LMSG %b %d\r\n%b\r\n"
_LHMSG_FRAME: Final = b"HMSG %b %d %d\r\n%b\r\n"
_ACC_LINE: Final = b"ACC %b\r\n"
_RUN_LINE: Final = b"RUN %d %d %d %d\r\n"


class HubQueue(Protocol):
    """The part of ``leafnode.link.Outbound`` the hub path writes to."""

    out: list[bytes]
    pending: int
    max_pending: int
    dirty: bool
    before_flush: Callable[[], None] | None

    def queued(self) -> None: ...

    def write(self, data: bytes) -> None: ...

    def discard(self) -> None: ...


class HubSink:
    """The accounts' ``hub_sink``: hub-bound lines onto the data link (module doc)."""

    __slots__ = ("_acc", "_run", "_run_size", "outbound")

    def __init__(self, outbound: HubQueue) -> None:
        self.outbound = outbound
        # The account of the last ACC line written.
        self._acc = b""
        # The run being held: its message lines and their payload bytes.
        self._run: list[bytes] = []
        self._run_size = 0
        # A held run leaves before anything the outbound's flush writes.
        outbound.before_flush = self.end_run

    def write(self, data: bytes) -> None:
        """Queue a control line (interest, PING/PONG, -ERR), after any held run."""
        if self._run:
            self.end_run()
        self.outbound.write(data)

    def write_msg(
        self,
        account: bytes,
        subject: bytes,
        reply: bytes | None,
        queues: Sequence[bytes],
        hdr_len: int,
        data: bytes,
    ) -> None:
        """Queue one hub-bound message of ``account`` (the routing path, once per message)."""
        outbound = self.outbound
        if account != self._acc:
            if self._run:
                self.end_run()
            self._acc = account
            acc = _ACC_LINE % account
            outbound.out.append(acc)
            outbound.pending += len(acc)
        size = len(data)
        if reply is None and not queues:
            route = subject
        else:
            route = encode_leaf_route(subject, reply, queues)
        if hdr_len:
            line = _LHMSG_FRAME % (route, hdr_len, size, data)
        else:
            line = _LMSG_FRAME % (route, size, data)
        if subject[0] != 36:  # not "$": it joins the run
            self._run.append(line)
            self._run_size += size
        else:
            if self._run:
                self.end_run()
            outbound.out.append(line)
        # Outbound.write, inlined.
        pending = outbound.pending + len(line)
        outbound.pending = pending
        if pending > outbound.max_pending or not outbound.dirty:
            outbound.queued()

    def end_run(self) -> None:
        """Queue the held run, behind its ``RUN`` line when it holds more than one message."""
        run = self._run
        if not run:
            return
        outbound = self.outbound
        if len(run) == 1:
            outbound.out.append(run[0])
        else:
            size_bytes = 0
            largest = 0
            for line in run:
                n = len(line)
                size_bytes += n
                if n > largest:
                    largest = n
            # The longest line bounds the largest payload (the hint may be loose).
            header = _RUN_LINE % (size_bytes, len(run), self._run_size, largest)
            outbound.out.append(header)
            outbound.out.extend(run)
            outbound.pending += len(header)
        run.clear()
        self._run_size = 0

    def discard(self) -> None:
        """Drop everything queued, and with it what the last ``ACC`` line said."""
        self.outbound.discard()
        self._run.clear()
        self._run_size = 0
        self._acc = b""
