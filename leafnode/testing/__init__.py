"""Test and benchmark support: real processes on free ports, waiting with deadlines.

Used by ``tests/`` and ``bench/``; never by the services.
"""

from __future__ import annotations

from ._procs import (
    NatsServerProcess,
    RouterProcess,
    ServiceProcess,
    free_port,
    hub_binaries,
    nats_server_binary,
    wait_for_port,
)
from ._uplink import (
    HubProcess,
    OperatorKeys,
    TlsFiles,
    UplinkProcess,
    make_tls_files,
    restart_process,
    wait_for_log,
)

__all__ = [
    "HubProcess",
    "NatsServerProcess",
    "OperatorKeys",
    "RouterProcess",
    "ServiceProcess",
    "TlsFiles",
    "UplinkProcess",
    "free_port",
    "hub_binaries",
    "make_tls_files",
    "nats_server_binary",
    "restart_process",
    "wait_for_log",
    "wait_for_port",
]
