"""One configured remote: connect, serve, reconnect, forever (leafnode-protocol.md §7, §11).

Timing follows nats-server (§7): after a failed attempt the next URL is tried
after ``reconnect`` plus a random jitter of up to ``reconnect`` again (so many
leafs restarted together do not hit the hub in lock step); after an
established link drops, after ``reconnect``; after the hub reported a loop, a
permission violation or a clashing cluster name, after 30 s (§4.7, §4.11).
Every failure is logged with the remote's name and the URL (never its
credentials) and the reason; none of them ends the task.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING

import trio

from .dialer import WEBSOCKET_SCHEMES, UrlList
from .handshake import HandshakeError, open_hub_link
from .interest import HubInterest
from .session import Session

if TYPE_CHECKING:
    import ssl

    from leafnode.config import RemoteSettings

    from .handshake import Identity
    from .service import AccountState, Uplink

__all__ = ["Remote"]

log = logging.getLogger("leafnode.uplink")

# Connection failures logged at ERROR: the first few, then one in REPORT_EVERY.
REPORT_FIRST = 3
REPORT_EVERY = 100


class Remote:
    """A ``leafnodes.remotes`` entry and its current link, if any."""

    def __init__(
        self,
        index: int,
        settings: RemoteSettings,
        account: AccountState,
        uplink: Uplink,
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
        self.urls = UrlList(settings.urls, randomize=not settings.no_randomize)
        self.session: Session | None = None
        self.hub = HubInterest()
        self.connects = 0

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
        """Keep a link to the hub up; returns only when cancelled."""
        attempt = 0
        last_reason = ""
        while True:
            url = self.urls.next()
            attempt += 1
            try:
                link = await open_hub_link(url, self.settings, self.identity, self.tls_ctx)
            except HandshakeError as exc:
                delay = exc.backoff_s if exc.backoff_s is not None else self._retry_delay()
                # A hub that stays away must not flood the log: report the
                # first attempts, every change of reason, then one in 100.
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
