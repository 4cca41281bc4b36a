"""Test and benchmark support: real processes on free ports, waiting with deadlines.

Used by ``tests/`` and ``bench/``; never by ``leafnode`` or the services (an
import-linter contract forbids it). It lives under ``tests/`` so that the wheel,
which packages ``leafnode*`` and ``services*`` only, does not ship it
(``tests/unit/test_wheel_contents.py`` checks). It is imported as
``tests.support`` with the repo root on ``sys.path``: pytest puts it there
(``tests/`` is a package, rootdir-relative), and so do ``python -m bench.X`` and
``python -c`` run from the repo root.
"""

from __future__ import annotations

from ._chaos import SERVICES, ChaosRun, Figures
from ._cluster import ClusterNode, ClusterNodes
from ._postgres import PG_USER, PgCluster, pg_bin_dir
from ._procs import (
    NatsServerProcess,
    RouterProcess,
    ServiceProcess,
    free_port,
    hub_binaries,
    nats_server_binary,
    wait_for_port,
)
from ._proxy import FAULT_KINDS, FaultKind, FaultProxy
from ._route_gate import GatePair, RouteGate
from ._site import ApiProcess as ApiProcess
from ._site import SiteProcess as SiteProcess
from ._site import http_get as http_get
from ._site import pid_alive as pid_alive
from ._site import ping_socket as ping_socket
from ._site import site_processes as site_processes
from ._site import wait_for_socket as wait_for_socket
from ._site_chaos import SiteChaosRun
from ._tmpfs import TmpfsUnavailable, small_tmpfs
from ._traffic import CountingPublisher, HubSubscriber, LineSocket, ipc_request, memory_kb
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
    "FAULT_KINDS",
    "PG_USER",
    "SERVICES",
    "ChaosRun",
    "ClusterNode",
    "ClusterNodes",
    "CountingPublisher",
    "FaultKind",
    "FaultProxy",
    "Figures",
    "GatePair",
    "HubProcess",
    "HubSubscriber",
    "LineSocket",
    "NatsServerProcess",
    "OperatorKeys",
    "PgCluster",
    "RouteGate",
    "RouterProcess",
    "ServiceProcess",
    "SiteChaosRun",
    "TlsFiles",
    "TmpfsUnavailable",
    "UplinkProcess",
    "free_port",
    "hub_binaries",
    "ipc_request",
    "make_tls_files",
    "memory_kb",
    "nats_server_binary",
    "pg_bin_dir",
    "restart_process",
    "small_tmpfs",
    "wait_for_log",
    "wait_for_port",
]
