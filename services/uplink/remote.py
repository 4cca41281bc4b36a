"""One configured remote: connect, serve, reconnect, forever (leafnode-protocol.md §7, §11).

Timing follows nats-server (§7): after a failed attempt the next URL is tried
after ``reconnect`` plus a random jitter of up to ``reconnect`` again (so many
leafs restarted together do not hit the hub in lock step); after an
established link drops, after ``reconnect``; after the hub reported a loop, a
permission violation or a clashing cluster name, after 30 s (§4.7, §4.11).
Every failure is logged with the remote's name and the URL (never its
credentials) and the reason; none of them ends the task.

A remote with a ``buffer {}`` also runs its ``Drain`` (``replay.py``) beside
the link task; both live under the remote's cancel scope, which a config
reload cancels when the remote is removed or changed. On a PostgreSQL store
shared by several nodes it runs one more drain per backlog this node took
over from a dead node (``held_drains``, kept in step with the store's list
by ``held_backlogs``): that backlog's records of this remote go to this
remote's hub, as the dead node's own remote of the same name would have sent them.

``AccountState`` is the local account one or more remotes serve; it lives here,
beside ``Remote``, because each names the other (``service.Uplink`` keeps them).
"""

from __future__ import annotations

import collections
import logging
import random
import secrets
import string
from typing import TYPE_CHECKING, Final

import trio

from .dialer import WEBSOCKET_SCHEMES, UrlList
from .handshake import HandshakeError, open_hub_link
from .interest import AccountHubInterest, HubInterest, LocalInterest
from .replay import Drain
from .session import Session
from .wire import BufferSubjects

if TYPE_CHECKING:
    import ssl
    from collections.abc import Awaitable, Callable

    from leafnode.config import RemoteSettings

    from .dialer import HubUrl
    from .handshake import HubLink, Identity

    OpenLink = Callable[[HubUrl, RemoteSettings, Identity, ssl.SSLContext], Awaitable[HubLink]]
    from .interfaces import HubHost

__all__ = ["LDS_PREFIX", "AccountState", "Remote"]

log = logging.getLogger("leafnode.uplink")

# Connection failures logged at ERROR: the first few, then one in REPORT_EVERY.
REPORT_FIRST = 3
REPORT_EVERY = 100

# Loop detection: each account subscribes its hubs to $LDS.<random id>; a hub
# that sends it back to us closes a loop (leafnode-protocol.md §4.7).
LDS_PREFIX: Final = b"$LDS."
_ID_ALPHABET: Final = string.ascii_letters + string.digits


def _random_id(length: int = 22) -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


class AccountState:
    """Everything the uplink keeps for one local account."""

    __slots__ = ("hub", "lds", "local", "name", "name_bytes", "remotes", "single")

    def __init__(self, name: str) -> None:
        self.name = name
        self.name_bytes = name.encode()
        self.lds = LDS_PREFIX + _random_id().encode()
        self.local = LocalInterest()
        self.hub = AccountHubInterest(self.name_bytes)
        self.remotes: list[Remote] = []
        # The only remote of the account, when there is exactly one (hot path).
        self.single: Remote | None = None

    def connected(self) -> list[Session]:
        return [r.session for r in self.remotes if r.session is not None]


class Remote:
    """A ``leafnodes.remotes`` entry and its current link, if any."""

    def __init__(
        self,
        index: int,
        settings: RemoteSettings,
        account: AccountState,
        uplink: HubHost[Remote],
        identity: Identity,
        tls_ctx: ssl.SSLContext,
    ) -> None:
        self.index = index
        self.settings = settings
        self.name = settings.name
        self.account = account
        self.uplink = uplink
        self.identity = identity
        self.tls_ctx = tls_ctx
        # Dials a URL and runs the handshake; in-process tests hand in their
        # own to run the reconnect loop in virtual time (tests/link).
        self.open_link: OpenLink = open_hub_link
        self.urls = UrlList(settings.urls, randomize=not settings.no_randomize)
        self.session: Session | None = None
        self.hub = HubInterest()
        self.connects = 0
        self.last_error: str | None = None
        self.scope = trio.CancelScope()
        # Cumulative counters of the links that ended (the live one adds its own).
        self.past_in_msgs = 0
        self.past_in_bytes = 0
        self.past_out_msgs = 0
        self.past_out_bytes = 0
        # Live messages for the hub that could not go, by reason (core NATS drops).
        self.dropped: collections.Counter[str] = collections.Counter()
        # Live copies of buffered messages, skipped: they go through the store.
        self.live_buffered = 0
        self.buffered: BufferSubjects | None = None
        self.drain: Drain | None = None
        # Backlog id -> the drain of a backlog taken over from another node.
        self.held_drains: dict[str, Drain] = {}
        self.configure_buffer(settings, start=False)

    def configure_buffer(self, settings: RemoteSettings, *, start: bool = True) -> None:
        """Apply the remote's ``buffer {}``; a new drain is started when ``start``.

        At construction ``start`` is False: ``Uplink`` starts the remote's
        tasks, the drain included.
        """
        self.settings = settings
        buffer = settings.buffer
        if buffer is None or not buffer.subjects:
            self.buffered = None
            if self.drain is not None:
                self.drain.stop()
                self.drain = None
            self.held_backlogs([])
            return
        self.buffered = BufferSubjects(buffer.subjects)
        if self.drain is None:
            self.drain = Drain(self, self.uplink.store_path)
            if start and self.uplink.nursery is not None:
                self.uplink.nursery.start_soon(self.drain.run)

    def drains(self) -> list[Drain]:
        """The own drain (if the remote buffers) and the drains of taken-over backlogs."""
        own = [self.drain] if self.drain is not None else []
        return [*own, *self.held_drains.values()]

    def held_backlogs(self, held: list[dict[str, object]]) -> None:
        """Run a drain for each taken-over backlog with records of this remote, and no other.

        ``held``: the store's ``stats`` ``held`` list (``[{backlog, node,
        remotes: {name: {msgs, ...}}, ...}]``).
        """
        wanted: set[str] = set()
        if self.buffered is not None:
            for entry in held:
                backlog, remotes = entry.get("backlog"), entry.get("remotes")
                if isinstance(backlog, str) and isinstance(remotes, dict) and self.name in remotes:
                    wanted.add(backlog)
        for backlog in list(self.held_drains):
            if backlog not in wanted:
                log.info(
                    'Leafnode remote "%s": backlog %s is no longer held here', self.name, backlog
                )
                self.held_drains.pop(backlog).stop()
        nursery = self.uplink.nursery
        for backlog in sorted(wanted - set(self.held_drains)):
            if nursery is None:
                break
            log.warning(
                'Leafnode remote "%s": draining backlog %s, taken over from a dead node',
                self.name,
                backlog,
            )
            drain = self.held_drains[backlog] = Drain(self, self.uplink.store_path, held=backlog)
            if self.drain is not None and self.drain.paused:
                drain.pause()  # a paused replay stays paused for what was taken over too
            session = self.session
            nursery.start_soon(drain.run)
            if session is not None and session.ready.is_set():
                drain.link_ready()

    def counters(self) -> tuple[int, int, int, int]:
        """``(in_msgs, in_bytes, out_msgs, out_bytes)`` over every link so far."""
        session = self.session
        if session is None:
            return self.past_in_msgs, self.past_in_bytes, self.past_out_msgs, self.past_out_bytes
        return (
            self.past_in_msgs + session.in_msgs,
            self.past_in_bytes + session.in_bytes,
            self.past_out_msgs + session.out_msgs,
            self.past_out_bytes + session.out_bytes,
        )

    def stop(self) -> None:
        """End the link and the drain (the remote was removed or replaced)."""
        self.scope.cancel()
        for drain in self.drains():
            drain.stop()

    def learn_urls(self, addresses: object, scheme: str) -> None:
        """Add the hub's ``leafnode_urls`` to the places to dial (§4.12).

        Not for WebSocket remotes: the advertised addresses are the hubs'
        leafnode ports, which do not speak WebSocket.
        """
        if isinstance(addresses, list) and scheme not in WEBSOCKET_SCHEMES:
            for url in self.urls.add_discovered(addresses, scheme):
                log.info('Leafnode remote "%s": hub advertised %s', self.name, url.redacted)

    def _retry_delay(self) -> float:
        delay = self.uplink.reconnect_s
        return delay + random.uniform(0, delay)

    async def run(self) -> None:
        """Keep a link to the hub up until cancelled or ``stop``-ped."""
        with self.scope:
            await self._run()

    async def _run(self) -> None:
        attempt = 0
        last_reason = ""
        while True:
            url = self.urls.next()
            attempt += 1
            try:
                link = await self.open_link(url, self.settings, self.identity, self.tls_ctx)
            except HandshakeError as exc:
                delay = exc.backoff_s if exc.backoff_s is not None else self._retry_delay()
                # A hub that stays away must not flood the log: report the
                # first attempts, every change of reason, then one in 100.
                self.last_error = exc.reason
                quiet = attempt > REPORT_FIRST and exc.reason == last_reason
                last_reason = exc.reason
                log.log(
                    logging.DEBUG if quiet and attempt % REPORT_EVERY else logging.ERROR,
                    'Leafnode remote "%s": error connecting to %s (attempt %d): %s; '
                    "retrying in %.1fs",
                    self.name,
                    url.redacted,
                    attempt,
                    exc.reason,
                    delay,
                )
                await trio.sleep(delay)
                continue
            attempt = 0
            last_reason = ""
            self.connects += 1
            session = Session(self, link)
            self.learn_urls(link.info.get("leafnode_urls"), url.scheme)
            log.info(
                'Leafnode remote "%s": connected to %s (hub %s, hub account %s, local account %s)',
                self.name,
                url.redacted,
                session.hub_server,
                session.hub_account,
                self.account.name,
            )
            self.session = session
            try:
                self.uplink.hub_up(self)
                await session.run(
                    ping_interval_s=self.uplink.ping_interval_s, ping_max=self.uplink.ping_max
                )
            finally:
                self.session = None
                self.past_in_msgs += session.in_msgs
                self.past_in_bytes += session.in_bytes
                self.past_out_msgs += session.out_msgs
                self.past_out_bytes += session.out_bytes
                self.last_error = session.close_reason
                self.uplink.hub_down(self)
            delay = session.backoff_s if session.backoff_s is not None else self.uplink.reconnect_s
            log.warning(
                'Leafnode remote "%s": disconnected from %s: %s; reconnecting in %.1fs',
                self.name,
                url.redacted,
                session.close_reason,
                delay,
            )
            await trio.sleep(delay)
