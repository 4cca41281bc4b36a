"""Property tests of the ipc frame decoder: any input gives frames or FrameError.

``test_ipc_codec`` round-trips valid frames under random chunking; here the
input is hostile: random bytes, valid streams with bytes changed, and bodies
with every JSON shape. The decoder must return frames or raise ``FrameError`` (sticky),
never another exception, and never buffer more than ``max_frame`` plus the
length prefix and one read.
"""

from __future__ import annotations

import itertools
import json
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leafnode.ipc import Frame, FrameDecoder, FrameError, encode_frame

FUZZ = settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
MAX_FRAME = 512

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=5,
)
frames = st.builds(
    Frame,
    st.text(max_size=10),
    st.integers(0, 2**40),
    st.dictionaries(
        st.text(max_size=6).filter(lambda k: k not in ("type", "id", "blobs")),
        json_values,
        max_size=3,
    ),
    st.lists(st.binary(max_size=40), max_size=3),
)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def decode(chunks: list[bytes], max_frame: int = MAX_FRAME) -> tuple[list[Frame], str | None]:
    """Frames until the first error, and that error's reason (None: none)."""
    decoder = FrameDecoder(max_frame=max_frame)
    out: list[Frame] = []
    error: FrameError | None = None
    for chunk in chunks:
        try:
            decoder.feed(chunk)
            while (frame := decoder.next_frame()) is not None:
                out.append(frame)
        except FrameError as exc:
            error = exc
            break
        decoder.compact()
        # A length prefix over max_frame fails at once, so what waits is one
        # frame at most: its prefix, a body under the limit, and the rest of the read.
        assert decoder.buffered <= 4 + max_frame + len(chunk)
    if error is None:
        return out, None
    with pytest.raises(FrameError) as again:
        decoder.next_frame()
    assert again.value is error  # the decoder stays broken
    assert len(error.snippet) <= 32
    return out, error.args[0]  # the reason; the snippet is what had arrived


def encoded(sent: list[Frame]) -> bytes:
    return b"".join(encode_frame(f.type, f.id, f.fields, f.blobs) for f in sent)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid stream with a few bytes overwritten, inserted or deleted."""
    data = bytearray(encoded(draw(st.lists(frames, min_size=1, max_size=4))))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        match draw(st.sampled_from(["set", "insert", "delete"])):
            case "set" if at < len(data):
                data[at] = draw(st.integers(0, 255))
            case "insert":
                data[at:at] = draw(st.binary(min_size=1, max_size=6))
            case _:
                del data[at : at + draw(st.integers(1, 6))]
    return bytes(data)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """A well-framed body whose JSON and blob lengths are anything."""
    header = draw(
        json_values | st.dictionaries(st.sampled_from(["type", "id", "blobs"]), json_values)
    )
    text = json.dumps(header).encode()
    blobs = draw(st.binary(max_size=20))
    body = struct.pack("!I", len(text)) + text + blobs
    return struct.pack("!I", len(body)) + body


@FUZZ
@given(st.binary(max_size=600) | mutated() | bodies(), st.lists(st.integers(0, 10**6), max_size=6))
def test_any_input_gives_frames_or_a_frame_error(data: bytes, cuts: list[int]) -> None:
    whole = decode([data])
    split = decode(chunked(data, cuts))
    assert split == whole  # the outcome never depends on how the bytes arrived


@FUZZ
@given(st.lists(frames, min_size=1, max_size=3), st.binary(min_size=1, max_size=40))
def test_frames_before_garbage_are_delivered(sent: list[Frame], junk: bytes) -> None:
    out, _error = decode([encoded(sent) + junk], max_frame=1 << 20)
    assert out[: len(sent)] == sent


@pytest.mark.parametrize("depth", [1000, 100_000])
def test_deeply_nested_json_is_a_frame_error(depth: int) -> None:
    # Regression: json.loads raised RecursionError out of next_frame().
    text = b'{"type":"x","id":1,"a":' + b"[" * depth + b"]" * depth + b"}"
    data = struct.pack("!II", 4 + len(text), len(text)) + text
    frames_out, error = decode([data], max_frame=1 << 20)
    assert frames_out == []
    assert error is not None
    assert "JSON" in error
