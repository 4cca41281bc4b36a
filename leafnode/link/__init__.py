"""One way to serve a byte stream: the shell, the outbound buffer, their policies.

Every connection kind (the router's clients and data link, the uplink's hub
sessions and router link, the control sockets) is a protocol object run by one ``Link`` shell
(``_shell.py``), writing through one ``Outbound`` (``_outbound.py``) whose
behaviour is an ``OutboundPolicy`` value. This package sits above the
sans-IO libraries (``leafnode.proto``) and below the services; it imports
no service and no runtime.
"""

from __future__ import annotations

from ._control import CONTROL_POLICY, ControlConnection, serve_control
from ._outbound import STALL_TOTAL_S, Flusher, Outbound, OutboundPolicy, Overflow, raw_socket_of
from ._shell import Expiry, Keepalive, Link, LinkPolicy, LinkProtocol

__all__ = [
    "CONTROL_POLICY",
    "STALL_TOTAL_S",
    "ControlConnection",
    "Expiry",
    "Flusher",
    "Keepalive",
    "Link",
    "LinkPolicy",
    "LinkProtocol",
    "Outbound",
    "OutboundPolicy",
    "Overflow",
    "raw_socket_of",
    "serve_control",
]
