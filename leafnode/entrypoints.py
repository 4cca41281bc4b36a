"""Each service's ``main(argv) -> int``, by name: what the CLI runs and the fork server forks.

The shared library never imports a service package statically (the import
contracts in pyproject.toml); it names them here and imports one by name when
it is first run. ``leafnode.cli`` runs a service in its own process
(``leafnode router``), the supervisor preloads them into its fork server
(``leafnode.forkserver``), which calls their ``main``; all three read this
table, so neither the supervisor nor the fork server imports the CLI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["SERVICE_GROUP", "SERVICE_MAINS", "service_main", "service_module"]

# Also declared as entry points of the ``leafnode.services`` group in
# pyproject.toml (a test keeps the two equal); the table spares every process
# importlib.metadata's scan (~1.5 MB each).
SERVICE_GROUP = "leafnode.services"
SERVICE_MAINS = {
    "router": "services.router.__main__:main",
    "uplink": "services.uplink.__main__:main",
    "store": "services.store.__main__:main",
    "api": "services.api.__main__:main",
    "migrate": "services.store.migrate:main",
}


def service_module(name: str) -> str:
    """The module that holds service ``name``'s ``main`` (for ``import_module``)."""
    return SERVICE_MAINS[name].partition(":")[0]


def service_main(name: str) -> Callable[[list[str]], int]:
    """Service ``name``'s ``main(argv) -> int`` (imported on first use)."""
    attr = SERVICE_MAINS[name].partition(":")[2]
    func: Callable[[list[str]], int] = getattr(importlib.import_module(service_module(name)), attr)
    return func
