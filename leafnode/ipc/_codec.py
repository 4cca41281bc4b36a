"""Sans-IO frame codec for the store and control links (STYLE §3.1, §3.3).

Theory of operation
-------------------
A frame is a ``struct "!I"`` body length followed by the body::

    frame  = u32 body_len | body
    body   = u32 json_len | json | blob_0 | blob_1 | ...

``json`` is one UTF-8 JSON object with at least ``type`` (a string) and ``id``
(a non-negative integer). Binary data travels as *blobs*, raw bytes after the
JSON, never base64: their lengths are listed, in order, under the JSON key
``blobs`` (absent when there are none), and they must fill the body exactly.
So a batch of 1000 messages costs one JSON document plus 1000 raw slices.

``FrameDecoder`` has the parser's shape: ``feed(data)`` appends bytes,
``next_frame()`` returns the next complete ``Frame`` or ``None`` when more data
is needed, ``compact()`` (once per receive) drops consumed bytes. The body is
copied once out of the receive buffer (through a memoryview), each blob is
one slice of the body.

Limits. ``max_frame`` bounds ``body_len``; it is checked as soon as the four
length bytes are there, before waiting for the body, so a peer cannot make us
buffer more than ``max_frame`` plus one read. Any violation raises
``FrameError``; the decoder then stays broken and raises it again on every
call (h11): the connection must be closed.
"""

from __future__ import annotations

import itertools
import json
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "DEFAULT_MAX_FRAME",
    "Frame",
    "FrameDecoder",
    "FrameError",
    "IpcError",
    "encode_frame",
]

# Room for one message at nats-server's hard max_payload ceiling (64 MiB) plus
# its JSON description; batches are kept far below this by their senders.
DEFAULT_MAX_FRAME: Final = 72 * 1024 * 1024
_U32: Final = struct.Struct("!I")
_U32X2: Final = struct.Struct("!II")
_SNIPPET: Final = 32
# Keys the codec owns; callers' fields may not use them.
_RESERVED: Final = frozenset({"type", "id", "blobs"})
_INT_ONLY: Final = frozenset({int})


class IpcError(Exception):
    """Base class of every ipc error."""


class FrameError(IpcError):
    """The peer sent bytes that are not a valid frame (close the connection).

    Attributes:
        snippet: up to 32 bytes of the offending input.
    """

    def __init__(self, message: str, *, snippet: bytes = b"") -> None:
        super().__init__(message)
        self.snippet = bytes(snippet[:_SNIPPET])

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} {self.snippet!r}" if self.snippet else base


@dataclass(slots=True)
class Frame:
    """One decoded frame.

    Attributes:
        type: what the frame is (``"append"``, ``"ok"``, ``"appended"``, ...).
        id: the request id; a response carries the id of its request.
        fields: every other JSON key (``blobs`` removed).
        blobs: the binary parts, in order.
    """

    type: str
    id: int
    fields: dict[str, object] = field(default_factory=dict)
    blobs: list[bytes] = field(default_factory=list)


def encode_frame(
    type: str,
    id: int,
    fields: Mapping[str, object] | None = None,
    blobs: Sequence[bytes] = (),
    *,
    max_frame: int = DEFAULT_MAX_FRAME,
) -> bytes:
    """Encode one frame.

    Args:
        type: the frame type.
        id: the request id (0 or more).
        fields: extra JSON-serialisable fields; must not use ``type``, ``id``
            or ``blobs``.
        blobs: binary parts, sent raw after the JSON.
        max_frame: refuse to build a body larger than this.

    Returns:
        The frame bytes, ready for ``send_all``.

    Raises:
        ValueError: a reserved key in ``fields``, a negative id, or a frame
            larger than ``max_frame`` (a bug in the caller: batch smaller).
    """
    if id < 0:
        raise ValueError(f"negative frame id {id}")
    header: dict[str, object] = {"type": type, "id": id}
    if fields:
        if not _RESERVED.isdisjoint(fields):
            raise ValueError(f"reserved frame keys in fields: {sorted(_RESERVED & set(fields))}")
        header.update(fields)
    blob_total = 0
    if blobs:
        lengths = list(map(len, blobs))
        blob_total = sum(lengths)
        header["blobs"] = lengths
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    body_len = 4 + len(text) + blob_total
    if body_len > max_frame:
        raise ValueError(f"frame body of {body_len} bytes exceeds max_frame {max_frame}")
    return b"".join((_U32X2.pack(body_len, len(text)), text, *blobs))


class FrameDecoder:
    """Bytes in, ``Frame`` objects out (see the module docstring).

    Args:
        max_frame: the largest body accepted, in bytes.
    """

    def __init__(self, *, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        if max_frame < 8:
            raise ValueError("max_frame must leave room for a header")
        self.max_frame = max_frame
        self._buf = bytearray()
        self._pos = 0
        self._error: FrameError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as frames."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes | bytearray) -> None:
        """Append received bytes (``b""`` is allowed and does nothing)."""
        if self._error is not None:
            raise self._error
        self._buf += data

    def compact(self) -> None:
        """Drop consumed bytes; call once per receive, after draining frames."""
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0

    def next_frame(self) -> Frame | None:
        """The next complete frame, or ``None`` when more data is needed.

        Raises:
            FrameError: the peer broke the framing; the decoder stays broken.
        """
        if self._error is not None:
            raise self._error
        buf, pos = self._buf, self._pos
        if len(buf) - pos < 4:
            return None
        (body_len,) = _U32.unpack_from(buf, pos)
        if body_len > self.max_frame:
            self._fail("frame exceeds max_frame", pos)
        start = pos + 4
        end = start + body_len
        if len(buf) < end:
            return None
        with memoryview(buf) as view:
            body = bytes(view[start:end])
        self._pos = end
        try:
            return _decode_body(body)
        except FrameError as exc:
            self._error = exc
            raise

    def _fail(self, message: str, pos: int) -> None:
        self._error = FrameError(message, snippet=bytes(self._buf[pos : pos + _SNIPPET]))
        raise self._error


def _decode_body(body: bytes) -> Frame:
    """Split a body into its JSON header and blobs, validating both."""
    if len(body) < 4:
        raise FrameError("frame body shorter than its JSON length", snippet=body)
    (json_len,) = _U32.unpack_from(body, 0)
    json_end = 4 + json_len
    if json_end > len(body):
        raise FrameError("JSON length exceeds the frame body", snippet=body)
    try:
        header = json.loads(body[4:json_end])
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: [[[[...
        raise FrameError("frame JSON is not valid", snippet=body[4:json_end]) from None
    if not isinstance(header, dict):
        raise FrameError("frame JSON is not an object", snippet=body[4:json_end])
    ftype = header.pop("type", None)
    fid = header.pop("id", None)
    if not isinstance(ftype, str):
        raise FrameError("frame without a string 'type'", snippet=body[4:json_end])
    # bool is an int subclass; refuse it so ids stay plain integers.
    if not isinstance(fid, int) or isinstance(fid, bool) or fid < 0:
        raise FrameError("frame without a non-negative integer 'id'", snippet=body[4:json_end])
    lengths = header.pop("blobs", None)
    blobs: list[bytes] = []
    if lengths is None:
        if json_end != len(body):
            raise FrameError("bytes after the JSON but no 'blobs'", snippet=body[json_end:])
    else:
        if not isinstance(lengths, list):
            raise FrameError("'blobs' is not a list", snippet=body[4:json_end])
        # Checked and sliced without a Python test per blob (a batch of 1000
        # messages is 1000 blobs): exact int types (no bool), none negative.
        if not _INT_ONLY.issuperset(map(type, lengths)) or (lengths and min(lengths) < 0):
            raise FrameError("'blobs' holds a bad length", snippet=body[4:json_end])
        ends = list(itertools.accumulate(lengths, initial=json_end))
        if ends[-1] != len(body):
            raise FrameError("'blobs' lengths do not fill the frame body", snippet=body[4:json_end])
        blobs = [body[a:b] for a, b in itertools.pairwise(ends)]
    return Frame(ftype, fid, header, blobs)
