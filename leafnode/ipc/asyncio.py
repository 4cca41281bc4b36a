"""The asyncio adapters of the ipc links, for code on bare asyncio (the supervisor).

A one-shot ``request_once`` and the ``unix_server`` context manager; code
that already runs anyio (the api) uses ``leafnode.ipc.anyio`` instead.
"""

from __future__ import annotations

from ._asyncio import request_once, unix_server

__all__ = ["request_once", "unix_server"]
