"""leafnode: a NATS leaf node that buffers hub-bound traffic through outages."""

from __future__ import annotations

__all__ = ["SERVER_VERSION", "__version__", "version_line"]

__version__ = "0.1.0"
# The version we claim on the wire (INFO to clients, CONNECT to the hub): hubs
# compare it with `leafnodes.min_version`, so it must look like a recent
# nats-server release (leafnode-protocol.md §4.3).
SERVER_VERSION = "2.15.1"


def version_line() -> str:
    """What ``-v``/``--version`` prints (nats-server prints ``nats-server: vX.Y.Z``)."""
    return f"leafnode: v{__version__} (nats-server v{SERVER_VERSION} protocol)"
