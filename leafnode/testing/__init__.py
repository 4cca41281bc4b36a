"""Test and benchmark support: real processes on free ports, waiting with deadlines.

Used by ``tests/`` and ``bench/``; never by the services.
"""

from __future__ import annotations

from ._procs import (
    NatsServerProcess,
    RouterProcess,
    free_port,
    hub_binaries,
    nats_server_binary,
    wait_for_port,
)

__all__ = [
    "NatsServerProcess",
    "RouterProcess",
    "free_port",
    "hub_binaries",
    "nats_server_binary",
    "wait_for_port",
]
