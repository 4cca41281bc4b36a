"""The anyio adapter of the ipc links: the client for code running on anyio (the api).

Import it from here (not from ``leafnode.ipc``): the package itself stays
free of any event loop.
"""

from __future__ import annotations

from ._anyio import AnyioIpcClient, open_anyio_client

__all__ = ["AnyioIpcClient", "open_anyio_client"]
