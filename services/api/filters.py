"""Query filters shared by ``/buffer*`` and ``/replay``: times and subjects.

A time is RFC 3339 (``2026-11-28T01:02:03Z``; no zone means UTC), Unix
seconds (``1764291723.5``), or a duration ago in Go's syntax (``90s``,
``1h30m``: an operator asking for "the last hour" should not have to do date
arithmetic). Everything becomes integer microseconds, the store's unit.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Final

from leafnode.proto import is_valid_subject

from .errors import ApiError

__all__ = ["check_subject", "parse_time_us"]

_UNIT_S: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)")
_DURATION: Final = re.compile(rf"(?:{_DURATION_PART.pattern})+")
# Beyond this a time means nothing to the store (year ~2255).
_MAX_US: Final = 2**63 // 1000


def _duration_s(text: str) -> float | None:
    if not _DURATION.fullmatch(text):
        return None
    return sum(float(n) * _UNIT_S[u] for n, u in _DURATION_PART.findall(text))


def parse_time_us(value: str | None, *, now: float, name: str) -> int | None:
    """``value`` as microseconds since the epoch (None stays None).

    Raises:
        ApiError: 400 naming ``name`` when the value is none of the forms.
    """
    if value is None:
        return None
    text = value.strip()
    seconds: float | None = None
    try:
        seconds = float(text)
    except ValueError:
        ago = _duration_s(text)
        if ago is not None:
            seconds = now - ago
        else:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                moment = None
            if moment is not None:
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=UTC)
                try:
                    seconds = moment.timestamp()
                except (OverflowError, OSError, ValueError):
                    seconds = None
    if seconds is None or not math.isfinite(seconds):
        raise ApiError(
            400,
            f"{name}: expected an RFC 3339 time, Unix seconds or a duration ago (1h), "
            f"got {value[:64]!r}",
        )
    micros = int(seconds * 1_000_000)
    return min(max(micros, 0), _MAX_US)


def check_subject(value: str | None, *, name: str = "subject") -> str | None:
    """A subject filter (wildcards allowed), or 400."""
    if value is None:
        return None
    if not is_valid_subject(value.encode()):
        raise ApiError(400, f"{name}: not a valid subject: {value[:64]!r}")
    return value
