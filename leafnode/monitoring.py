"""Query values of nats-server's monitoring endpoints, read alike by every service.

The router answers ``/connz``, ``/subsz`` and friends, the uplink ``/leafz``;
the api passes the query through. A bad value is a ``MonitorError``, which the
api answers with 400 and its text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["MonitorError", "query_flag"]


class MonitorError(ValueError):
    """A bad query value; the api answers 400 with this text."""


def query_flag(query: Mapping[str, str], key: str) -> bool:
    """A boolean query parameter as nats-server reads one (``subs=1``, ``subs=detail``)."""
    value = query.get(key, "")
    if value in ("", "0", "false"):
        return False
    if value in ("1", "true", "detail"):
        return True
    raise MonitorError(f"{key}: expected 1, true, 0 or false, got {value!r}")
