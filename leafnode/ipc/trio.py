"""The trio adapters of the ipc links: a client and the Unix-socket server helpers.

Import them from here (not from ``leafnode.ipc``) in trio code: the package
itself stays free of any event loop.
"""

from __future__ import annotations

from ._trio import TrioIpcClient, open_trio_client, serve_unix_socket

__all__ = ["TrioIpcClient", "open_trio_client", "serve_unix_socket"]
