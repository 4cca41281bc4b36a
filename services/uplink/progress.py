"""Replay progress: rate over a sliding window, ETA, and when to log (issue 5 item 3).

``Progress`` is fed samples of the drain's cumulative ``sent`` counter and
the store's remaining backlog (once a second, by the drain's stats task). It
computes the rate over the last ``RATE_WINDOW_S`` seconds, and decides when a
progress line is due: a long replay (a backlog of at least
``LOG_MIN_MSGS`` while sending) logs every ``LOG_EVERY_S`` seconds, and once
more when it caught up. Short replays stay quiet. No clock is read here: the
caller passes ``now`` (``trio.current_time()`` or ``time.monotonic()``).
"""

from __future__ import annotations

import collections
from typing import Final

__all__ = ["LOG_EVERY_S", "LOG_MIN_MSGS", "RATE_WINDOW_S", "Progress"]

RATE_WINDOW_S: Final = 5.0
LOG_EVERY_S: Final = 5.0
LOG_MIN_MSGS: Final = 10_000


class Progress:
    """Rate, ETA and progress lines of one remote's drain."""

    __slots__ = ("_last_log", "_samples", "_start", "_start_sent", "remaining")

    def __init__(self) -> None:
        self._samples: collections.deque[tuple[float, int]] = collections.deque()
        self.remaining: int | None = None
        # While a long replay is being reported: when it started, and ``sent`` then.
        self._start: float | None = None
        self._start_sent = 0
        self._last_log = 0.0

    def rate(self) -> float | None:
        """Messages per second over the window (None before two samples)."""
        samples = self._samples
        if len(samples) < 2:
            return None
        (t0, s0), (t1, s1) = samples[0], samples[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 else None

    def eta_s(self) -> float | None:
        """Seconds until the backlog is sent at the current rate (0 when empty)."""
        if self.remaining == 0:
            return 0.0
        rate = self.rate()
        if not rate or self.remaining is None:
            return None
        return round(self.remaining / rate, 1)

    def sample(self, now: float, sent: int, remaining: int | None, sending: bool) -> str | None:
        """Record a sample; returns a progress line when one is due."""
        samples = self._samples
        samples.append((now, sent))
        while len(samples) > 2 and now - samples[0][0] > RATE_WINDOW_S:
            samples.popleft()
        self.remaining = remaining
        if self._start is None:
            if sending and remaining is not None and remaining >= LOG_MIN_MSGS:
                self._start, self._start_sent, self._last_log = now, sent, now
                return f"replaying {remaining} buffered messages"
            return None
        if not remaining:
            took = now - self._start
            done = sent - self._start_sent
            self._start = None
            rate = done / took if took > 0 else 0.0
            return f"replay caught up: sent {done} messages in {took:.1f}s ({rate:.0f} msg/s)"
        if now - self._last_log < LOG_EVERY_S:
            return None
        self._last_log = now
        current = self.rate() or 0.0
        eta = self.eta_s()
        return (
            f"replay: sent {sent - self._start_sent} ({current:.0f} msg/s), "
            f"remaining {remaining}, ETA {'?' if eta is None else f'{eta:.0f}s'}"
            + ("" if sending else " (not sending)")
        )
