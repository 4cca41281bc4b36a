"""What the site looks like right now, gathered from every service at once.

Several endpoints (``/healthz``, ``/buffer``, ``/replay``, ``/metrics``) need the
same answers: the router's ``varz`` and ``bufferz``, the store's ``stats`` and
the uplink's per-remote ``status`` (``uplink.ctl``; its ``buffer`` object is
the drain's progress). ``collect`` asks for them concurrently and keeps each
failure as a value, so every endpoint decides for itself whether a missing
answer is an error (the service is expected) or just absent (it is not
configured: ``leafnode run`` starts the store only when some remote buffers,
the uplink only when remotes exist).

The store answers ``stats`` while its database is down (from its counters,
with ``database.up`` false and an operator's sentence): the store is then
``unavailable`` with the error ``store database: <sentence>``, whatever the
backlog, so ``/healthz`` is 503 and ``leafnode_store_database_up`` 0.

Remote link state the uplink did not give is ``None`` ("unknown"), never
guessed. An uplink whose control socket does not answer still counts as up
when the router reports it attached to the data link.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Literal

from leafnode.ipc import rfc3339_us

from .deps import expects_store, expects_uplink
from .links import ServiceRefusedError, ServiceUnavailableError, gather
from .redact import redact_url

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from leafnode.config import RemoteSettings

    from .deps import ApiState

__all__ = ["DATABASE", "RemoteView", "SiteView", "collect"]

Failure = ServiceUnavailableError | ServiceRefusedError
# How a store database failure is named in /healthz's error.
DATABASE = "store database"


def _dict(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _add_counts(out: dict[str, int], counts: object) -> None:
    for reason, count in _dict(counts).items():
        if isinstance(count, int) and count:
            out[reason] = out.get(reason, 0) + count


@dataclasses.dataclass
class RemoteView:
    """One remote as the api reports it; ``None`` means unknown.

    Attributes:
        link: the uplink's ``status`` entry (None: the uplink did not answer).
        backlog: the store's ``stats`` entry (None: no store answer).
        router_drops: the router's buffering drops (``bufferz``) by reason.
    """

    name: str
    account: str | None
    urls: list[str]
    buffered: bool
    link: dict[str, object] | None = None
    backlog: dict[str, object] | None = None
    router_drops: dict[str, object] = dataclasses.field(default_factory=dict)
    # Messages waiting in router memory for the store ({msgs, bytes}), and
    # whether a ``discard: new`` buffer refuses new messages (store or router).
    held: dict[str, object] = dataclasses.field(default_factory=dict)
    router_refusing: bool = False
    # This node's name and the backlog it appends to (the store's; None: unknown).
    node: str | None = None
    backlog_id: str | None = None
    # Shared store: "held" (this node drains its own backlog) or "waiting"
    # (for its previous process's lease, after a store restart); None: SQLite.
    backlog_lease: Literal["held", "waiting"] | None = None
    # Backlogs of this remote taken over from dead nodes (a shared PostgreSQL
    # store, DESIGN §9): the store's counts, the uplink's drain of each.
    taken_over: list[dict[str, object]] = dataclasses.field(default_factory=list)

    @property
    def refusing(self) -> bool:
        """``discard: new`` and full: new messages are refused (in the store or in memory)."""
        return self.router_refusing or (self.backlog or {}).get("full") is True

    @property
    def connected(self) -> bool | None:
        value = (self.link or {}).get("connected")
        return value if isinstance(value, bool) else None

    @property
    def drain(self) -> dict[str, object] | None:
        """The uplink's drain progress (``buffer`` of its status), if known."""
        value = (self.link or {}).get("buffer")
        return value if isinstance(value, dict) else None

    def link_summary(self) -> dict[str, object]:
        """``connected``, ``url``, ``since``, ``reconnects``, ``last_error``."""
        link = self.link or {}
        return {
            "connected": self.connected,
            "url": _str(link.get("url")),
            "since": _str(link.get("since")),
            "reconnects": _int(link.get("reconnects")),
            "last_error": _str(link.get("last_error")),
        }

    def backlog_summary(self) -> dict[str, object]:
        """``msgs``, ``bytes``, ``oldest_age_s``, ``waiting_for_interest``."""
        backlog = self.backlog or {}
        return {
            "msgs": _int(backlog.get("msgs")) or 0,
            "bytes": _int(backlog.get("bytes")) or 0,
            "oldest_age_s": _float(backlog.get("oldest_age_s")),
            "waiting_for_interest": _int((self.drain or {}).get("waiting_for_interest")),
        }

    def buffer_drops(self) -> dict[str, int]:
        """Buffered messages dropped, by reason: by the store (limits, purges), the
        router (before the store: ``store_unavailable``, refusals) and the drain."""
        out: dict[str, int] = {}
        _add_counts(out, (self.backlog or {}).get("dropped"))
        _add_counts(out, self.router_drops)
        _add_counts(out, (self.drain or {}).get("dropped"))
        return out

    def held_summary(self, reason: str | None) -> dict[str, object]:
        """``msgs``, ``bytes`` waiting in router memory for the store, and ``reason``."""
        msgs = _int(self.held.get("msgs")) or 0
        return {
            "msgs": msgs,
            "bytes": _int(self.held.get("bytes")) or 0,
            "reason": reason if msgs else None,
        }

    def held_backlogs(self) -> list[dict[str, object]]:
        """``[{backlog, node, since, msgs, bytes, oldest_age_s, state, sent}]``: what this
        node drains for dead nodes, to this remote."""
        out: list[dict[str, object]] = []
        listed = (self.link or {}).get("held")
        drains = {
            _str(d.get("backlog")): d
            for d in (listed if isinstance(listed, list) else [])
            if isinstance(d, dict)
        }
        for entry in self.taken_over:
            backlog = _str(entry.get("backlog"))
            counts = _dict(_dict(entry.get("remotes")).get(self.name))
            claimed = _int(entry.get("claimed_at_us"))
            drain = drains.get(backlog) or {}
            out.append(
                {
                    "backlog": backlog,
                    "node": _str(entry.get("node")),
                    "since": rfc3339_us(claimed) if claimed else None,
                    "msgs": _int(counts.get("msgs")) or 0,
                    "bytes": _int(counts.get("bytes")) or 0,
                    "oldest_age_s": _float(counts.get("oldest_age_s")),
                    "state": _str(drain.get("state")),
                    "paused": drain.get("paused")
                    if isinstance(drain.get("paused"), bool)
                    else None,
                    "sent": _int(drain.get("sent")),
                }
            )
        return out

    def all_drops(self) -> dict[str, int]:
        """``buffer_drops`` plus the live (not buffered) messages the uplink dropped."""
        out = self.buffer_drops()
        _add_counts(out, (self.link or {}).get("dropped"))
        return out


@dataclasses.dataclass
class SiteView:
    """The answers of one ``collect``; a failure is kept as its exception."""

    state: ApiState
    varz: dict[str, object] | Failure
    stats: dict[str, object] | Failure | None = None
    links: list[dict[str, object]] | Failure | None = None
    bufferz: dict[str, object] | Failure | None = None
    taken_at: float = dataclasses.field(default_factory=time.time)

    def service_status(self) -> dict[str, dict[str, object]]:
        """``{service: {"status": "ok" | "unavailable" | "not running", ...}}``."""
        settings = self.state.settings
        store = _status(self.stats, expected=expects_store(settings))
        database = self.database()
        if database is not None and database.get("up") is False:
            store["status"] = "unavailable"
            store["error"] = f"{DATABASE}: {database.get('error') or 'unavailable'}"
            store["database"] = database
        out: dict[str, dict[str, object]] = {
            "router": _status(self.varz, expected=True),
            "store": store,
        }
        uplink = _status(self.links, expected=expects_uplink(settings))
        if uplink["status"] != "ok" and self.uplink_attached():
            uplink = {
                "status": "ok",
                "detail": "attached to the router; its control socket did not answer "
                f"({uplink.get('error', 'no answer')}), remote state unknown",
            }
        out["uplink"] = uplink
        return out

    def uplink_attached(self) -> bool:
        """The router reports an uplink on its data link."""
        return isinstance(self.varz, dict) and (_int(self.varz.get("leafnodes")) or 0) > 0

    def database(self) -> dict[str, object] | None:
        """The store's ``database`` state ({up, error, down_since_us}); None: unknown.

        From ``stats``, or from an ``unavailable`` answer naming the database.
        """
        if isinstance(self.stats, dict):
            found = self.stats.get("database")
            return found if isinstance(found, dict) else None
        if isinstance(self.stats, ServiceUnavailableError):
            prefix = f"{DATABASE}: "
            if self.stats.reason.startswith(prefix):
                return {"up": False, "error": self.stats.reason[len(prefix) :]}
        return None

    def held_reason(self) -> str | None:
        """Why messages wait in router memory: the database, or the store link."""
        database = self.database()
        if database is not None and database.get("up") is False:
            return f"{DATABASE}: {database.get('error') or 'unavailable'}"
        if isinstance(self.bufferz, dict):
            return _str(self.bufferz.get("waiting_reason"))
        return None

    def down(self) -> list[tuple[str, str]]:
        """``(what, error)`` for every expected service that is unavailable.

        A store whose database is down is ``("store database", sentence)``.
        """
        out = []
        for name, entry in self.service_status().items():
            if entry["status"] != "unavailable":
                continue
            error = str(entry.get("error", ""))
            if name == "store" and error.startswith(f"{DATABASE}: "):
                name, error = DATABASE, error[len(DATABASE) + 2 :]
            out.append((name, error))
        return out

    def remotes(self) -> list[RemoteView]:
        """Configured remotes, then remotes only the store still knows (old backlog)."""
        links = {str(r.get("name")): r for r in self.links} if isinstance(self.links, list) else {}
        stats = _dict(self.stats.get("remotes")) if isinstance(self.stats, dict) else {}
        bufferz = self.bufferz if isinstance(self.bufferz, dict) else {}
        drops = _dict(bufferz.get("dropped"))
        held = _dict(bufferz.get("held"))
        refusing = bufferz.get("refusing")
        refusing = refusing if isinstance(refusing, list) else []
        views = [self._view(r, stats) for r in self.state.settings.leafnodes.remotes]
        known = {v.name for v in views}
        views += [
            RemoteView(name, None, [], True, backlog=_dict(backlog))
            for name, backlog in stats.items()
            if name not in known
        ]
        info = self.stats if isinstance(self.stats, dict) else {}
        taken = info.get("held")
        taken_over = [h for h in taken if isinstance(h, dict)] if isinstance(taken, list) else []
        for view in views:
            view.node = _str(info.get("node"))
            view.backlog_id = _str(info.get("backlog"))
            view.backlog_lease = _lease(info)
            view.taken_over = [h for h in taken_over if view.name in _dict(h.get("remotes"))]
            view.link = links.get(view.name)
            view.router_drops = _dict(drops.get(view.name))
            view.held = _dict(held.get(view.name))
            view.router_refusing = view.name in refusing
        return views

    def _view(self, remote: RemoteSettings, stats: dict[str, object]) -> RemoteView:
        backlog = stats.get(remote.name)
        if backlog is None and remote.buffer is not None and isinstance(self.stats, dict):
            backlog = {"msgs": 0, "bytes": 0, "oldest_age_s": None}
        return RemoteView(
            name=remote.name,
            account=remote.account,
            urls=[redact_url(u) for u in remote.urls],
            buffered=remote.buffer is not None,
            backlog=_dict(backlog) if backlog is not None else None,
        )


def _lease(stats: dict[str, object]) -> Literal["held", "waiting"] | None:
    """``backlog_lease`` from the store's ``stats``: None unless the store is shared."""
    held = stats.get("backlog_held")
    if stats.get("shared") is not True or not isinstance(held, bool):
        return None
    return "held" if held else "waiting"


def _status(value: object, *, expected: bool) -> dict[str, object]:
    if not isinstance(value, ServiceUnavailableError | ServiceRefusedError):
        return {"status": "ok"} if value is not None else {"status": "not running"}
    if expected:
        return {"status": "unavailable", "error": str(value)}
    return {"status": "not running"}


async def collect(state: ApiState, *, store: bool = True, uplink: bool = True) -> SiteView:
    """Ask the services concurrently (see the module docstring)."""
    links = state.links
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "varz": lambda: links.data("router", "varz"),
    }
    if store:

        async def stats() -> object:
            return (await links.request("store", "stats")).fields

        calls["stats"] = stats
        calls["bufferz"] = lambda: links.data("router", "bufferz")
    if uplink:

        async def status() -> object:
            remotes = (await links.request("uplink", "status")).fields.get("remotes")
            return [r for r in remotes if isinstance(r, dict)] if isinstance(remotes, list) else []

        calls["links"] = status
    results = await gather(calls)
    view = SiteView(state=state, varz=ServiceUnavailableError("router", "no answer"))
    for key, value in results.items():
        setattr(view, key, value)
    return view
