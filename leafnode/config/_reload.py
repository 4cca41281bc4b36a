"""Which settings a reload may change, and which need a restart (DESIGN §6).

Theory of operation
-------------------
A reload (SIGHUP, ``POST /config/reload``, ``PUT /config``) compares the
running ``Settings`` with the re-read ones. As nats-server's ``diffOptions``
does, a change to anything that cannot change at run time refuses the
reload *as a whole*: nothing is applied, the running config stays, and each
such key is named with its old and new value (``config reload not supported
for port: old=4222, new=4223``). Every process that reloads (the supervisor,
the api, and each service reloading itself under docker-compose) asks
``restart_needed`` the same question about the same whole ``Settings``, so
they all refuse or all apply.

The walk goes through the settings dataclasses field by field, by dotted
path (``router.port``). A path in ``RELOADABLE`` may change (its whole
subtree: ``router.users`` covers every user); a path in ``RESTART`` may not
and is reported under the config key an operator writes. A changed field in
neither list is refused too, named by its path: a new setting is safe until
someone decides it can be applied live (``tests/unit/test_reload_keys.py``
makes sure each one is decided). Values are shown with secrets masked.
``store { url, sync }`` may change while no remote buffers: no store runs
then, and the one a reload starts opens the new database.

Pure: no I/O, no logging; callers log and answer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from leafnode.redact import redact_url

if TYPE_CHECKING:
    from ._settings import Settings

__all__ = ["IGNORED", "RELOADABLE", "RESTART", "RestartNeeded", "refusal", "restart_needed"]

RELOADABLE: Final = frozenset(
    {
        # The router applies these to new connections and rechecks connected
        # clients' credentials (services/router/server.py ``reload``).
        "router.max_payload",
        "router.max_control_line",
        "router.max_pending",
        "router.max_connections",
        "router.max_subscriptions",
        "router.ping_interval_s",
        "router.ping_max",
        "router.write_deadline_s",
        "router.auth_timeout_s",
        "router.users",
        "router.token",
        "router.default_permissions",
        "router.accounts",
        "router.no_auth_user",
        "router.operator",
        "router.tls",
        "router.lame_duck_duration_s",
        "router.lame_duck_grace_period_s",
        "router.max_closed_clients",  # the closed-connections list is resized
        # The uplink adds, removes and restarts remotes; the store takes new
        # buffer limits; the router new buffered subjects.
        "leafnodes.remotes",
        "leafnodes.reconnect_s",
        # The store's lease tick reads it at every renewal (services/store/leases.py).
        "store.takeover_after_s",
        # The api reads its token on every request.
        "api.token",
        # Placement reads it at every sample (leafnode.affinity).
        "data_path_cpu",
        # Every process sets its logging up again (leafnode.runtime.reapply_logging).
        "log.debug",
        "log.trace",
        "log.logtime",
        "log.log_file",
    }
)
"""Settings paths a reload applies; each covers its whole subtree."""

RESTART: Final = {
    "router.server_name": "server_name",
    "router.host": "host",
    "router.port": "port",
    "router.websocket": "websocket",  # its port opens once, at start
    # Not served yet (issue 14); nats-server reloads routes and permissions,
    # not the listen address, name or pool size: decide per key when served.
    "cluster": "cluster",
    # The accepting side of `leafnodes`: its port opens once, at start, and
    # nats-server refuses a reload that changes any of these too (reload.go
    # getLeafNodeOptionsChanges: only remotes, TLS and compression may change).
    "leafnodes.accept.host": "leafnodes.host",  # listen's host
    "leafnodes.accept.port": "leafnodes.port",  # listen's port
    "leafnodes.accept.advertise": "leafnodes.advertise",
    "leafnodes.accept.no_advertise": "leafnodes.no_advertise",
    "leafnodes.accept.user": "leafnodes.authorization",
    "leafnodes.accept.password": "leafnodes.authorization",
    "leafnodes.accept.nkey": "leafnodes.authorization",
    "leafnodes.accept.account": "leafnodes.authorization",
    "leafnodes.accept.users": "leafnodes.authorization",
    "leafnodes.accept.auth_timeout_s": "leafnodes.authorization",
    "leafnodes.accept.tls": "leafnodes.tls",
    "store.url": "store.url",
    "store.sync": "store.sync",
    "api.host": "http",
    "api.port": "http_port",
    "log.pid_file": "pid_file",
    "run_dir": "run_dir",
    "ports_file_dir": "ports_file_dir",
}
"""Settings paths that need a restart -> the config key shown to the operator."""

_STORE_KEYS: Final = frozenset({RESTART["store.url"], RESTART["store.sync"]})

# Config keys whose values may hold a secret (a password, a users list): a
# refusal names them, never shows them.
_HIDDEN: Final = frozenset({"leafnodes.authorization"})

IGNORED: Final = frozenset({"source", "warnings"})
"""Where the settings came from, not what they say."""


@dataclass(frozen=True)
class RestartNeeded:
    """One change a reload cannot apply: the config key, old and new value (secrets masked)."""

    key: str
    old: str
    new: str

    def __str__(self) -> str:
        return f"config reload not supported for {self.key}: old={self.old}, new={self.new}"

    def as_dict(self) -> dict[str, str]:
        return {"key": self.key, "old": self.old, "new": self.new}


def restart_needed(old: Settings, new: Settings) -> tuple[RestartNeeded, ...]:
    """The changes from ``old`` to ``new`` that cannot be applied at run time, in field order.

    Empty when a reload may go ahead.
    """
    found: list[RestartNeeded] = []
    _walk(old, new, "", found)
    if not any(r.buffer is not None for r in old.leafnodes.remotes):
        # No store runs yet: the one this reload may start opens the new database.
        found = [c for c in found if c.key not in _STORE_KEYS]
    return tuple(found)


def refusal(changes: tuple[RestartNeeded, ...]) -> str:
    """One sentence for an error answer: what needs a restart and that nothing was applied."""
    keys = ", ".join(c.key for c in changes)
    return f"config reload refused: {keys} cannot change without a restart; nothing was applied"


def _walk(old: object, new: object, prefix: str, found: list[RestartNeeded]) -> None:
    assert dataclasses.is_dataclass(old)
    assert not isinstance(old, type)
    for f in dataclasses.fields(old):
        path = f"{prefix}{f.name}"
        before, after = getattr(old, f.name), getattr(new, f.name)
        if path in IGNORED or path in RELOADABLE or before == after:
            continue
        if (
            path not in RESTART
            and dataclasses.is_dataclass(before)
            and dataclasses.is_dataclass(after)
        ):
            _walk(before, after, f"{path}.", found)
            continue
        key = RESTART.get(path, path)
        if key in _HIDDEN:
            if all(c.key != key for c in found):  # one line for the whole block
                found.append(RestartNeeded(key, "(changed)", "(changed)"))
        else:
            found.append(RestartNeeded(key, _show(before), _show(after)))


def _show(value: object) -> str:
    """A value as the log line shows it: URLs without their secrets, ``none`` for unset."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return redact_url(value) if "://" in value or "@" in value else value
    if dataclasses.is_dataclass(value):
        return "(changed)"  # a block no path above decided: never print what it may hold
    return str(value)
