"""Frames for the store and control links: a sans-IO codec plus thin trio/anyio adapters.

``FrameDecoder``/``encode_frame`` are the framing (``_codec``); the store
link's frame types, fields and typed helpers are documented in ``_protocol``
(that docstring is the contract); ``ClientState`` is the client side without
I/O; ``open_trio_client`` / ``serve_unix_socket`` serve trio services and
``open_anyio_client`` asyncio code (the api).
"""

from __future__ import annotations

from ._anyio import AnyioIpcClient, open_anyio_client
from ._client import ClientState, IpcClosedError
from ._codec import DEFAULT_MAX_FRAME, Frame, FrameDecoder, FrameError, IpcError, encode_frame
from ._protocol import (
    DEFAULT_READ_LIMIT,
    DEFAULT_READ_MAX_BYTES,
    DROP_REASONS,
    MAX_READ_LIMIT,
    PROTOCOL_VERSION,
    STORE_SOCKET,
    AppendReply,
    BufferedMsg,
    ReadReply,
    RequestError,
    StoredMsg,
    decode_append,
    decode_append_reply,
    decode_read_reply,
    encode_append,
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
from ._trio import SOCKET_MODE, TrioIpcClient, open_trio_client, serve_unix_socket

__all__ = [
    "DEFAULT_MAX_FRAME",
    "DEFAULT_READ_LIMIT",
    "DEFAULT_READ_MAX_BYTES",
    "DROP_REASONS",
    "MAX_READ_LIMIT",
    "PROTOCOL_VERSION",
    "SOCKET_MODE",
    "STORE_SOCKET",
    "AnyioIpcClient",
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
    "TrioIpcClient",
    "decode_append",
    "decode_append_reply",
    "decode_read_reply",
    "encode_append",
    "encode_frame",
    "encode_read_reply",
    "field_bool",
    "field_int",
    "field_int_list",
    "field_str",
    "field_str_list",
    "msg_id",
    "open_anyio_client",
    "open_trio_client",
    "rfc3339_us",
    "serve_unix_socket",
    "stamp_headers",
]
