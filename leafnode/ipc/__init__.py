"""Frames for the store and control links: a sans-IO codec plus thin event-loop adapters.

``FrameDecoder``/``encode_frame`` are the framing (``_codec``); the store
link's frame types, fields and typed helpers are documented in ``_protocol``
(that docstring is the contract); ``ClientState`` is the client side without
I/O. The adapters live in their own public modules, so a process loads only
the event loop it runs on: ``leafnode.ipc.trio`` (``open_trio_client``,
``serve_unix_socket``) for the trio services, ``leafnode.ipc.anyio``
(``open_anyio_client``) for the api, ``leafnode.ipc.asyncio`` (``request_once``,
``unix_server``) for bare asyncio code (the supervisor).

The adapter names are also importable from here, for code written before the
split; they are loaded on first use (PEP 562), so ``from leafnode.ipc import
open_trio_client`` still costs nothing until it runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Final

from ._client import ClientState, IpcClosedError
from ._codec import DEFAULT_MAX_FRAME, Frame, FrameDecoder, FrameError, IpcError, encode_frame
from ._protocol import (
    DEFAULT_READ_LIMIT,
    DEFAULT_READ_MAX_BYTES,
    DROP_REASONS,
    MAX_READ_LIMIT,
    PROTOCOL_VERSION,
    READ_COLUMNS,
    SOCKET_MODE,
    STORE_SOCKET,
    STORE_START_GRACE_S,
    AppendColumns,
    AppendReply,
    BufferedMsg,
    ReadReply,
    RequestError,
    StoredMsg,
    decode_append,
    decode_append_columns,
    decode_append_reply,
    decode_read_columns,
    decode_read_reply,
    encode_append,
    encode_append_columns,
    encode_read_reply,
    field_bool,
    field_int,
    field_int_list,
    field_str,
    field_str_list,
    msg_id,
    rfc3339_us,
    stamp_headers,
)

if TYPE_CHECKING:
    from .anyio import AnyioIpcClient as AnyioIpcClient
    from .anyio import open_anyio_client as open_anyio_client
    from .trio import TrioIpcClient as TrioIpcClient
    from .trio import open_trio_client as open_trio_client
    from .trio import serve_unix_socket as serve_unix_socket

__all__ = [
    "DEFAULT_MAX_FRAME",
    "DEFAULT_READ_LIMIT",
    "DEFAULT_READ_MAX_BYTES",
    "DROP_REASONS",
    "MAX_READ_LIMIT",
    "PROTOCOL_VERSION",
    "READ_COLUMNS",
    "SOCKET_MODE",
    "STORE_SOCKET",
    "STORE_START_GRACE_S",
    "AppendColumns",
    "AppendReply",
    "BufferedMsg",
    "ClientState",
    "Frame",
    "FrameDecoder",
    "FrameError",
    "IpcClosedError",
    "IpcError",
    "ReadReply",
    "RequestError",
    "StoredMsg",
    "decode_append",
    "decode_append_columns",
    "decode_append_reply",
    "decode_read_columns",
    "decode_read_reply",
    "encode_append",
    "encode_append_columns",
    "encode_frame",
    "encode_read_reply",
    "field_bool",
    "field_int",
    "field_int_list",
    "field_str",
    "field_str_list",
    "msg_id",
    "rfc3339_us",
    "stamp_headers",
]

# Adapter name -> its public module. Importing trio costs a process ~14 MB
# resident and anyio ~2 MB, so neither is imported until a name is used.
_ADAPTER_NAMES: Final = {
    "TrioIpcClient": "trio",
    "open_trio_client": "trio",
    "serve_unix_socket": "trio",
    "AnyioIpcClient": "anyio",
    "open_anyio_client": "anyio",
}

# Hidden from type checkers, which see the imports above instead: a visible
# module __getattr__ would make every misspelt name type-check as ``object``.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        """Load an adapter name on first use (``from leafnode.ipc import open_trio_client``)."""
        module = _ADAPTER_NAMES.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{__name__}.{module}"), name)
