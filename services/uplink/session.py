"""One established hub link, the protocol object of its shell (§4.4, §4.8).

A ``Session`` starts from a finished handshake (``HubLink``) and runs on a
``leafnode.link.Link`` until the link drops: the shell reads, writes and keeps
the link alive; ``data_received`` turns the hub's lines into calls on the
``Uplink`` (interest and messages); everything the uplink sends to this hub
goes through ``outbound``. It owns the permission filters of the link
(``filters.py``), built from the remote's deny lists and the hub's
``connect_info``.

Keepalive (§4.8, the shell's ``Keepalive`` policy): the first PING goes out
one second after the handshake, then one every ``ping_interval``; when
``ping_max`` PINGs are unanswered the hub is presumed dead ("Stale Leaf Node
Connection"). The hub's PINGs are answered at once.

Why the link ended is kept in ``close_reason`` (for the log) and the back-off
the hub asked for in ``backoff_s`` (loop, permission and cluster-name errors
mean 30 s, §4.7/§4.11).

PING/PONG barriers. The hub answers PINGs in order, so every PING we send
(keepalive, the initial-interest barrier, the drain's batch barriers) is a
``Barrier`` queued in ``_barriers`` and each PONG answers the oldest one.
Right after the handshake a PING goes out: the hub's ``LS+`` lines that
arrive before its PONG are its initial interest (DESIGN §3.4), so ``ready``
is set and the uplink told (``Uplink.hub_ready``) only then. When the link
drops, every waiting barrier is released unanswered.
"""

from __future__ import annotations

import collections
import itertools
import logging
import time
from typing import TYPE_CHECKING, Final

import trio

from leafnode.link import Expiry, Keepalive, Link, LinkPolicy, OutboundPolicy, Overflow
from leafnode.proto import (
    PING,
    PONG,
    Err,
    Info,
    LSub,
    LUnsub,
    Ping,
    Pong,
    RemoteProtocolError,
)
from leafnode.runtime import TRACE

from .filters import JS_DENIES, SubjectFilter, permission_lists
from .framing import LINK_MAX_PAYLOAD
from .handshake import backoff_for_error

if TYPE_CHECKING:
    from leafnode.config import RemoteSettings
    from leafnode.proto import Event, MessageFrame, Run

    from .handshake import HubLink
    from .interfaces import SessionOwner

__all__ = ["Barrier", "Session", "build_filters"]

log = logging.getLogger("leafnode.uplink")

# Bytes queued for a hub that does not drain before messages are dropped
# (control lines never are); no write deadline: PING/PONG finds a dead hub.
OUTBOUND_POLICY: Final = OutboundPolicy(
    max_pending=64 * 1024 * 1024, overflow=Overflow.DROP, stall=False
)
EOF_REASON: Final = "connection closed by the hub"
STALE: Final = Expiry("Stale Leaf Node Connection (no PONG from the hub)")
# A real leaf sends its first PING about one second after connecting (§4.8).
FIRST_PING_S: Final = 1.0
DEFAULT_MAX_PAYLOAD: Final = 1024 * 1024
# Connection ids for /leafz, as nats-server numbers its connections.
_session_ids = itertools.count(1)


def build_filters(
    remote: RemoteSettings, connect_info: dict[str, object]
) -> tuple[SubjectFilter, SubjectFilter]:
    """``(export, import)`` filters of a link (``filters.py`` explains them)."""
    export_allow, export_deny = permission_lists(connect_info.get("export"))
    import_allow, import_deny = permission_lists(connect_info.get("import"))
    export = SubjectFilter(
        (export_allow,) if export_allow is not None else (),
        (*JS_DENIES, *(s.encode() for s in remote.deny_exports), *export_deny),
    )
    import_ = SubjectFilter(
        (import_allow,) if import_allow is not None else (),
        (*JS_DENIES, *(s.encode() for s in remote.deny_imports), *import_deny),
    )
    return export, import_


class Barrier:
    """One PING we sent; ``event`` is set at its PONG, or when the link drops.

    Attributes:
        answered: True when the PONG came (False: the link dropped first).
        sent_at: ``time.monotonic()`` when the PING was queued.
        rtt: whether its round trip measures the link's RTT (nothing queued
            before it but control lines).
    """

    __slots__ = ("answered", "event", "rtt", "sent_at")

    def __init__(self, *, rtt: bool) -> None:
        self.event = trio.Event()
        self.answered = False
        self.sent_at = time.monotonic()
        self.rtt = rtt


class Session:
    """A live link to one hub."""

    def __init__(self, remote: SessionOwner, link: HubLink) -> None:
        self.remote = remote
        self.link = link
        self.id = next(_session_ids)
        self.stream = link.stream
        self.framer = link.framer
        account = remote.account.name_bytes
        self._account = account
        self._router = remote.uplink.router
        # The shell: its policy's keepalive is set in ``run``.
        self.shell = Link(
            link.stream,
            remote.uplink.flusher,
            LinkPolicy(outbound=OUTBOUND_POLICY, eof_reason=EOF_REASON, close_grace_s=0),
        )
        self.outbound = self.shell.outbound
        max_payload = link.info.get("max_payload")
        self.max_payload = (
            max_payload if isinstance(max_payload, int) and max_payload > 0 else DEFAULT_MAX_PAYLOAD
        )
        self.export_filter, self.import_filter = build_filters(remote.settings, link.connect_info)
        self.close_reason = EOF_REASON
        # What the hub's -ERR said: the reason, when the hub then closes.
        self._hub_err: str | None = None
        self.backoff_s: float | None = None
        self.hub_account = str(link.connect_info.get("remote_account", "?"))
        self.hub_server = str(link.info.get("server_name") or link.info.get("server_id", "?"))
        self._barriers: collections.deque[Barrier] = collections.deque()
        self._initial: Barrier | None = None
        # Set once the hub's initial interest has arrived (module doc).
        self.ready = trio.Event()
        self.closed = False
        self.connected_at_us = time.time_ns() // 1000
        self.rtt_s: float | None = None
        # nats-server's per-connection counters (/leafz): in = from the hub.
        self.in_msgs = 0
        self.in_bytes = 0
        self.out_msgs = 0
        self.out_bytes = 0

    def barrier(self, data: bytes = b"", *, rtt: bool = False) -> Barrier:
        """Queue ``data`` then a PING; the returned barrier is released at its PONG."""
        barrier = Barrier(rtt=rtt)
        if self.closed:
            barrier.event.set()
            return barrier
        self._barriers.append(barrier)
        if data:
            self.outbound.write(data)
        self.outbound.write(PING)
        return barrier

    def _release_barriers(self) -> None:
        self.closed = True
        while self._barriers:
            self._barriers.popleft().event.set()

    def close(self, reason: str, backoff_s: float | None = None) -> None:
        """End the session (from any task): the reason is logged by the remote."""
        if backoff_s is not None:
            self.backoff_s = backoff_s
        self.shell.close(reason)

    async def run(self, *, ping_interval_s: float, ping_max: int) -> None:
        """Serve the link until it drops; always closes the stream."""
        shell = self.shell
        shell.policy = LinkPolicy(
            outbound=OUTBOUND_POLICY,
            eof_reason=EOF_REASON,
            close_grace_s=0,
            keepalive=Keepalive(
                interval_s=ping_interval_s,
                ping_max=ping_max,
                stale=STALE,
                first_s=min(FIRST_PING_S, ping_interval_s),
            ),
        )
        try:
            self._initial = self.barrier(rtt=True)
            # Lines that came right behind the handshake wait in the framer.
            self._drain_batch()
            reason = await shell.run(self)
        finally:
            self._release_barriers()
        if reason == EOF_REASON and self._hub_err is not None:
            reason = self._hub_err
        self.close_reason = reason

    def _drain_batch(self) -> None:
        flusher = self.shell.flusher
        flusher.batching = True
        try:
            self._drain()
        except RemoteProtocolError as exc:
            self.close(f"protocol error from the hub: {exc}")
        finally:
            flusher.batching = False
            flusher.flush()

    def _drain(self) -> None:
        # Messages that pass go on to the router in runs, each read as one
        # piece under our account's ACC line.
        self.framer.drain(self._keep, self._on_event, self._on_run, self._keep_rule)

    # ------------------------------------------------------------ LinkProtocol

    def data_received(self, data: bytes) -> None:
        framer = self.framer
        framer.feed(data)
        try:
            # _drain, inlined: one call less per read.
            framer.drain(self._keep, self._on_event, self._on_run, self._keep_rule)
        except RemoteProtocolError as exc:
            self.close(f"protocol error from the hub: {exc}")

    def send_ping(self) -> None:
        self.barrier(rtt=True)

    # ------------------------------------------------------------------ events

    def _keep(self, msg: MessageFrame) -> bool:
        """A hub message: may it go on to the router as it is? (hot path)"""
        subject = msg.args[0]
        filter_ = self.import_filter
        return (filter_.plain_ok and subject[0] != 36) or filter_.allows(subject)

    def _keep_rule(self, account: bytes | None) -> int:
        """Messages the framer may keep without asking ``_keep`` (see ``drain``)."""
        return LINK_MAX_PAYLOAD if self.import_filter.plain_ok else -1

    def _on_run(self, run: Run) -> None:
        """Hub messages that passed, as read: on to the router under our account."""
        self.in_msgs += run.msgs
        self.in_bytes += run.size
        self._router.write_run(self._account, run.data)

    def _on_event(self, event: Event) -> None:
        remote = self.remote
        if log.isEnabledFor(TRACE):
            log.log(TRACE, 'Leafnode remote "%s": <<- %r', remote.name, event)
        if isinstance(event, LSub):
            remote.uplink.hub_sub(remote, event.subject, event.queue, event.weight)
        elif isinstance(event, LUnsub):
            remote.uplink.hub_unsub(remote, event.subject, event.queue)
        elif isinstance(event, Ping):
            self.outbound.write(PONG)
        elif isinstance(event, Pong):
            self.shell.pong()
            self._pong()
        elif isinstance(event, Info):
            self._async_info(event.options)
        elif isinstance(event, Err):
            self._hub_error(event.text)

    def _pong(self) -> None:
        if not self._barriers:
            return  # A PONG we did not ask for; nothing waits on it.
        barrier = self._barriers.popleft()
        barrier.answered = True
        if barrier.rtt:
            self.rtt_s = time.monotonic() - barrier.sent_at
        barrier.event.set()
        if barrier is self._initial:
            self._initial = None
            self.ready.set()
            self.remote.uplink.hub_ready(self.remote)

    def _hub_error(self, text: str) -> None:
        backoff_s = backoff_for_error(text)
        if backoff_s is not None:
            self.backoff_s = backoff_s
        self._hub_err = f"hub answered -ERR '{text}'"
        log.error(
            'Leafnode remote "%s" (%s): hub error: %s',
            self.remote.name,
            self.link.url.redacted,
            text,
        )

    def _async_info(self, options: dict[str, object]) -> None:
        """Later INFOs update URLs and permissions; no new handshake (§4.12)."""
        self.remote.learn_urls(options.get("leafnode_urls"), self.link.url.scheme)
        if "import" in options or "export" in options:
            merged = dict(self.link.connect_info)
            for key in ("import", "export"):
                if key in options:
                    merged[key] = options[key]
            self.link.connect_info = merged
            self.export_filter, self.import_filter = build_filters(self.remote.settings, merged)
