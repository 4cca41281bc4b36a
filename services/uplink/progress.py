"""Replay progress: the current replay's exact figures, rate, ETA, and when to log.

Theory of operation
-------------------
A *replay* is the drain sending a backlog: it begins when the drain is
about to send its first batch after being caught up (``begin``), with the
backlog the store counted just before that batch, so its figures start
exact: nothing of it has been sent yet. It ends when a sample finds nothing
deliverable left (``sample``: every pending message is waiting for interest,
or none is pending), or when it is cut short (the link dropped, the drain
was paused: ``interrupt``). Its figures are the messages and bytes sent
since it began; bytes are counted as the store counts them (subject, reply,
headers and payload: what ``max_bytes`` limits), so sent and remaining
bytes add up.

The rate is measured from the live counters to the oldest sample in the
last ``RATE_WINDOW_S`` seconds (never further back than the replay's start),
so it is known as soon as one batch has been confirmed, not only after two
samples. Samples are the drain's cumulative ``sent`` counters, taken once a
second by its stats task.

A long replay (a backlog of at least ``LOG_MIN_MSGS``) logs a line when its
first batch is confirmed, every ``LOG_EVERY_S`` seconds, and when it ends;
short ones stay quiet. No clock is read here: the caller passes ``now``
(``trio.current_time()``).
"""

from __future__ import annotations

import collections
import time
from typing import Final

__all__ = ["LOG_EVERY_S", "LOG_MIN_MSGS", "RATE_WINDOW_S", "Progress", "Replay"]

# The rate is averaged over about this long: long enough to smooth batch
# boundaries, short enough to follow a change of pace.
RATE_WINDOW_S: Final = 5.0
LOG_EVERY_S: Final = 5.0
# Smaller replays take well under a second at replay speed: not worth a line.
LOG_MIN_MSGS: Final = 10_000


class Replay:
    """One replay's figures (``status()`` gives them to the api).

    Attributes:
        started_at: epoch seconds when it began; ``ended_at`` when it ended.
        backlog_msgs, backlog_bytes: the store's pending backlog as it began.
        sent_msgs, sent_bytes: sent to the hub (confirmed by a PONG) since.
    """

    __slots__ = (
        "announced",
        "backlog_bytes",
        "backlog_msgs",
        "ended_at",
        "ended_how",
        "logging",
        "sent_bytes",
        "sent_msgs",
        "start",
        "start_bytes",
        "start_sent",
        "started_at",
    )

    def __init__(
        self, now: float, sent: int, sent_bytes: int, backlog_msgs: int, backlog_bytes: int
    ) -> None:
        self.start = now
        self.start_sent = sent
        self.start_bytes = sent_bytes
        self.started_at = time.time()
        self.ended_at: float | None = None
        self.ended_how: str | None = None
        self.backlog_msgs = backlog_msgs
        self.backlog_bytes = backlog_bytes
        self.sent_msgs = 0
        self.sent_bytes = 0
        self.logging = backlog_msgs >= LOG_MIN_MSGS
        self.announced = False

    def update(self, sent: int, sent_bytes: int) -> None:
        self.sent_msgs = sent - self.start_sent
        self.sent_bytes = sent_bytes - self.start_bytes

    def status(self) -> dict[str, object]:
        """``{started_at, ended_at, ended, backlog: {msgs, bytes}, sent: {msgs, bytes}}``."""
        return {
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "ended": self.ended_how,
            "backlog": {"msgs": self.backlog_msgs, "bytes": self.backlog_bytes},
            "sent": {"msgs": self.sent_msgs, "bytes": self.sent_bytes},
        }


class Progress:
    """Rate, ETA and progress lines of one remote's drain (see the module doc)."""

    __slots__ = ("_last_log", "_samples", "current", "last", "remaining")

    def __init__(self) -> None:
        # (now, sent, sent_bytes), oldest first; the first is the rate's base.
        self._samples: collections.deque[tuple[float, int, int]] = collections.deque()
        self.remaining: int | None = None
        self.current: Replay | None = None
        self.last: Replay | None = None
        self._last_log = 0.0

    @property
    def active(self) -> bool:
        return self.current is not None

    def begin(
        self, now: float, sent: int, sent_bytes: int, backlog_msgs: int, backlog_bytes: int
    ) -> None:
        """A replay begins: no batch of it is sent yet; the backlog is the store's, just now."""
        replay = Replay(now, sent, sent_bytes, backlog_msgs, backlog_bytes)
        self.current = self.last = replay
        self.remaining = backlog_msgs
        # The rate of this replay, not an average with the idle time before it.
        self._samples.clear()
        self._samples.append((now, sent, sent_bytes))
        self._last_log = now

    def sent_batch(self) -> str | None:
        """A batch of the replay was confirmed: the line announcing a long replay, once.

        Announced at its first confirmed batch, not at ``begin``: a backlog
        that turns out to wait for interest sends nothing and says nothing.
        """
        replay = self.current
        if replay is None or replay.announced or not replay.logging:
            return None
        replay.announced = True
        return f"replaying {replay.backlog_msgs} buffered messages ({replay.backlog_bytes} bytes)"

    def interrupt(self, sent: int, sent_bytes: int, why: str) -> str | None:
        """The replay stops before the end (``why``: "link down", "paused")."""
        replay = self.current
        if replay is None:
            return None
        replay.update(sent, sent_bytes)
        replay.ended_at = time.time()
        replay.ended_how = why
        self.current = None
        if not replay.announced:
            return None
        return (
            f"replay interrupted ({why}): sent {replay.sent_msgs} of "
            f"{replay.backlog_msgs} buffered messages ({replay.sent_bytes} bytes)"
        )

    def rate(self, now: float, sent: int, sent_bytes: int) -> tuple[float, float] | None:
        """``(msgs/s, bytes/s)`` from the window's oldest sample to these counters.

        None before any sample, or when no time has passed since it.
        """
        if not self._samples:
            return None
        t0, s0, b0 = self._samples[0]
        if now <= t0:
            return None
        return (sent - s0) / (now - t0), (sent_bytes - b0) / (now - t0)

    def sample(
        self, now: float, sent: int, sent_bytes: int, remaining: int | None, waiting: int
    ) -> str | None:
        """Record a sample (``remaining``: the store's backlog; ``waiting``: how many of it
        wait for interest); returns a progress line when one is due."""
        samples = self._samples
        samples.append((now, sent, sent_bytes))
        # Keep one sample at least RATE_WINDOW_S old as the base.
        while len(samples) > 1 and now - samples[1][0] >= RATE_WINDOW_S:
            samples.popleft()
        self.remaining = remaining
        replay = self.current
        if replay is None:
            return None
        replay.update(sent, sent_bytes)
        if remaining is not None and remaining <= waiting:
            took = now - replay.start
            replay.ended_at = time.time()
            replay.ended_how = "caught up"
            self.current = None
            if not replay.announced:
                return None
            pace = replay.sent_msgs / took if took > 0 else 0.0
            line = (
                f"replay caught up: sent {replay.sent_msgs} messages ({replay.sent_bytes} bytes) "
                f"in {took:.1f}s ({pace:.0f} msg/s)"
            )
            return line + (f"; {waiting} wait for interest" if waiting else "")
        if not replay.announced or now - self._last_log < LOG_EVERY_S:
            return None
        self._last_log = now
        rates = self.rate(now, sent, sent_bytes)
        pace = rates[0] if rates is not None else 0.0
        eta = self.eta_s(now, sent, sent_bytes, waiting)
        return (
            f"replay: sent {replay.sent_msgs} ({pace:.0f} msg/s), "
            f"remaining {remaining}, ETA {'?' if eta is None else f'{eta:.0f}s'}"
        )

    def eta_s(self, now: float, sent: int, sent_bytes: int, waiting: int) -> float | None:
        """Seconds until the deliverable backlog is sent at the current rate.

        0 when nothing remains; None when unknown (no rate yet, nothing being
        sent, or everything left waits for interest).
        """
        remaining = self.remaining
        if remaining == 0:
            return 0.0
        rates = self.rate(now, sent, sent_bytes)
        if remaining is None or rates is None or not rates[0] or remaining <= waiting:
            return None
        return round((remaining - waiting) / rates[0], 1)
