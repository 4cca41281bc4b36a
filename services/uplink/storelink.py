"""Whether a drain's store answers, and one log line per change (issue 11 point 1).

Theory of operation
-------------------
A ``Drain`` (``replay.py``) reaches the store over one connection and asks
it from several tasks at once (reads, acks, stats), each retrying with its
own back-off, and reconnects when the connection fails. Each of those
failures used to log its own line, and each task's first success its own
"available again": two or three lines per outage, more when the reasons
differ (a connection reset, then refused reconnects). ``StoreLink`` is the
drain's single view of the store instead:

* ``lost`` (the connection failed or could not be made) and ``failed`` (an
  answer ``unavailable``: the store's database is down or full) start an
  outage: one WARNING line with the first reason; later failures, whatever
  their reason, are DEBUG lines. ``error`` always holds the latest reason
  (for ``uplink.ctl status``).
* The outage ends, with one WARNING line, when the store proves it works
  again: for a database outage, a success of a request kind that failed (on
  a full disk reads still succeed while acks fail: a read proves nothing);
  after a lost connection, the reconnect, unless the store's ``ping`` says
  its database is down (then it is a database outage, which any success
  ends).
* While the store is not up yet at start (``waiting``, within the start
  grace) there is no outage: one INFO line, and one when it connects.
* A store that answers but does not hold the drain's backlog (``not_held``:
  a restarted store waits a few seconds for its previous process's lease,
  DESIGN §9) is no outage either: one INFO line when the wait starts and
  one when it ends (``held``); ``error`` stays None, for nothing failed.

The sentences come from the store (its ``describe``: no driver text, no
login) or from the socket (an ``OSError``); nothing here quotes a database.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ANY_KIND", "StoreLink"]

log = logging.getLogger("leafnode.uplink")

# In ``StoreLink.failed_kinds``: any successful request ends the outage.
ANY_KIND: Final = "*"


class StoreLink:
    """One remote's drain's view of the store (see the module doc).

    Args:
        name: the remote, for log lines.
        clock: seconds (``trio.current_time`` in the drain).
    """

    def __init__(self, name: str, clock: Callable[[], float]) -> None:
        self.name = name
        self.error: str | None = None
        self.down = False
        # Request kinds whose success ends the outage (ANY_KIND: any).
        self.failed_kinds: set[str] = set()
        self._clock = clock
        self._down_at = 0.0
        self._failures = 0
        self._waiting_logged = False
        self._lease_logged = False

    def waiting(self, reason: str) -> None:
        """The store is not up yet at start: no outage, one INFO line."""
        if not self._waiting_logged:
            self._waiting_logged = True
            log.info('Leafnode remote "%s": waiting for the store', self.name)
        self.error = reason

    def not_held(self, reason: str) -> None:
        """The store answers but does not hold the backlog (yet): no outage."""
        if not self._lease_logged:
            self._lease_logged = True
            log.info('Leafnode remote "%s": waiting for the lease: %s', self.name, reason)

    def held(self) -> None:
        """The store reads the backlog again after ``not_held``."""
        if self._lease_logged:
            self._lease_logged = False
            log.info('Leafnode remote "%s": the store holds the backlog now', self.name)

    def lost(self, reason: str) -> None:
        """The connection to the store failed, or a reconnect did."""
        self._fail(reason)

    def failed(self, kind: str, reason: str) -> None:
        """The store answered ``unavailable`` to a ``kind`` request."""
        self._fail(reason)
        self.failed_kinds.add(kind)

    def attached(self, database_error: str | None) -> None:
        """Connected (the store answered ``ping``); ``database_error`` if its database is down."""
        if database_error is not None:
            self._fail(f"store database: {database_error}")
            self.failed_kinds.add(ANY_KIND)
            return
        if self.down:
            self._end()
        elif self._waiting_logged and self.error is not None:
            log.info('Leafnode remote "%s": connected to the store', self.name)
        self.error = None

    def succeeded(self, kind: str) -> None:
        """A ``kind`` request was answered."""
        if self.down and (kind in self.failed_kinds or ANY_KIND in self.failed_kinds):
            self._end()

    def _fail(self, reason: str) -> None:
        self._failures += 1
        if not self.down:
            self.down = True
            self._down_at = self._clock()
            self._failures = 1
            self.failed_kinds.clear()
            log.warning(
                'Leafnode remote "%s": store unavailable: %s; the backlog waits',
                self.name,
                reason,
            )
        else:
            log.debug('Leafnode remote "%s": store still unavailable: %s', self.name, reason)
        self.error = reason

    def _end(self) -> None:
        log.warning(
            'Leafnode remote "%s": store available again after %.1f s '
            "(%d failed attempts meanwhile); resuming the drain",
            self.name,
            self._clock() - self._down_at,
            self._failures,
        )
        self.down = False
        self.error = None
        self.failed_kinds.clear()
        self._failures = 0
