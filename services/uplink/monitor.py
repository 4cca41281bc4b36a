"""What ``uplink.ctl`` reports: per-remote status and nats-server's ``/leafz``.

Field names are part of the api's contract (``control.py`` lists them); the
``/leafz`` object has nats-server's shape as a leaf reports it (``is_spoke``
true, ``rtt`` a Go duration string, ``subscriptions_list`` what the hub sent
with ``LS+``, queue keys as the bare subject).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from leafnode.ipc import rfc3339_us
from leafnode.monitoring import MonitorError, query_flag

from .dialer import HubUrl

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .remote import Remote
    from .service import Uplink

__all__ = ["MonitorError", "go_duration", "leafz", "remote_status", "replay_status"]


def go_duration(seconds: float | None) -> str | None:
    """A duration as Go prints one (``189µs``, ``1.5ms``, ``2.1s``); None stays None."""
    if seconds is None:
        return None
    if seconds < 1e-6:
        return f"{seconds * 1e9:.0f}ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f}µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g}ms"
    return f"{seconds:.3g}s"


def _redact(url: str) -> str:
    return HubUrl.parse(url).redacted


def remote_status(remote: Remote) -> dict[str, object]:
    """One entry of ``status``'s ``remotes`` (see ``control.py``)."""
    session = remote.session
    in_msgs, in_bytes, out_msgs, out_bytes = remote.counters()
    info = session.link.info if session is not None else {}
    since = session.connected_at_us if session is not None else None
    subscriptions = sorted(
        s.decode() if q is None else f"{s.decode()} {q.decode()}" for s, q in remote.hub.entries
    )
    rtt = session.rtt_s if session is not None else None
    return {
        "name": remote.name,
        "account": remote.account.name,
        "urls": [_redact(u) for u in remote.settings.urls],
        "url": session.link.url.redacted if session is not None else None,
        "connected": session is not None,
        "ready": session is not None and session.ready.is_set(),
        "since": rfc3339_us(since) if since is not None else None,
        "since_us": since,
        "reconnects": max(0, remote.connects - 1),
        "last_error": remote.last_error,
        "server_id": info.get("server_id") if session is not None else None,
        "server_name": info.get("server_name") if session is not None else None,
        "hub_account": session.hub_account if session is not None else None,
        "rtt": go_duration(rtt),
        "rtt_s": rtt,
        "in_msgs": in_msgs,
        "out_msgs": out_msgs,
        "in_bytes": in_bytes,
        "out_bytes": out_bytes,
        "subscriptions": subscriptions,
        "dropped": dict(remote.dropped),
        "live_buffered": remote.live_buffered,
        "buffer": remote.drain.status() if remote.drain is not None else None,
        # Backlogs taken over from dead nodes, drained to this remote's hub.
        "held": [
            {"backlog": backlog, **drain.status()}
            for backlog, drain in sorted(remote.held_drains.items())
        ],
    }


def replay_status(remote: Remote) -> dict[str, object] | None:
    """One entry of ``replay``'s ``remotes`` (None for a remote that buffers nothing)."""
    drain = remote.drain
    if drain is None:
        return None
    out = drain.status()
    out["name"] = remote.name
    out["connected"] = remote.session is not None
    return out


def leafz(uplink: Uplink, query: Mapping[str, str]) -> dict[str, object]:
    """nats-server's ``/leafz`` from the leaf side (``subs``, ``acc`` as in its query)."""
    subs = query_flag(query, "subs")
    account = query.get("acc") or None
    leafs: list[dict[str, object]] = []
    for remote in uplink.remotes:
        session = remote.session
        if session is None or (account is not None and remote.account.name != account):
            continue
        url = session.link.url
        entry: dict[str, object] = {
            "id": session.id,
            "name": str(session.link.info.get("server_name") or ""),
            "is_spoke": True,
            "account": remote.account.name,
            "ip": url.host,
            "port": url.port,
            "rtt": go_duration(session.rtt_s) or "0s",
            "in_msgs": session.in_msgs,
            "out_msgs": session.out_msgs,
            "in_bytes": session.in_bytes,
            "out_bytes": session.out_bytes,
            "subscriptions": len(remote.hub.entries),
        }
        if subs:
            entry["subscriptions_list"] = [s.decode() for s, _q in remote.hub.entries]
        entry["compression"] = "off"
        leafs.append(entry)
    return {
        "server_id": uplink.identity.server_id,
        "now": rfc3339_us(time.time_ns() // 1000),
        "leafnodes": len(leafs),
        "leafs": leafs,
    }
