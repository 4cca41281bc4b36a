"""The ipc frame codec: every split point, random round trips, every limit and error."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leafnode.ipc import Frame, FrameDecoder, FrameError, encode_frame

CORPUS: list[Frame] = [
    Frame("ping", 1),
    Frame("pong", 1, {"leaf_id": "abc", "last_seq": 0, "version": 1}),
    Frame("append", 2, {"msgs": [["central", "t.a", None, 0, 5, []]]}, [b"hello"]),
    Frame("ok", 3, {"msgs": [], "next": 0, "more": False}),
    Frame("read", 4, {"subjects": ["ä.*", "t.>"], "acked": True}),
    Frame("ok", 5, {"x": [1, 2]}, [b"", b"\r\n\x00\xff" * 10, b""]),
    Frame("appended", 0, {"remote": "r", "last_seq": 2**40}),
]


def encoded(frames: list[Frame]) -> bytes:
    return b"".join(encode_frame(f.type, f.id, f.fields, f.blobs) for f in frames)


def drain(decoder: FrameDecoder) -> list[Frame]:
    out = []
    while (frame := decoder.next_frame()) is not None:
        out.append(frame)
    decoder.compact()
    return out


def test_layout_is_length_json_length_json_blobs() -> None:
    data = encode_frame("ok", 9, {"a": 1}, [b"xy", b"z"])
    text = b'{"type":"ok","id":9,"a":1,"blobs":[2,1]}'
    assert data == struct.pack("!II", 4 + len(text) + 3, len(text)) + text + b"xyz"


def test_corpus_split_at_every_byte_boundary() -> None:
    stream = encoded(CORPUS)
    for cut in range(len(stream) + 1):
        decoder = FrameDecoder()
        decoder.feed(stream[:cut])
        got = drain(decoder)
        decoder.feed(stream[cut:])
        got += drain(decoder)
        assert got == CORPUS, f"split at {cut}"
        assert decoder.buffered == 0


def test_corpus_one_byte_at_a_time() -> None:
    stream = encoded(CORPUS)
    decoder = FrameDecoder()
    got: list[Frame] = []
    for i in range(len(stream)):
        decoder.feed(stream[i : i + 1])
        got += drain(decoder)
    assert got == CORPUS


def test_compact_keeps_a_partial_frame() -> None:
    stream = encoded(CORPUS[:2])
    decoder = FrameDecoder()
    first_len = len(encoded(CORPUS[:1]))
    decoder.feed(stream[: first_len + 3])
    assert drain(decoder) == CORPUS[:1]
    assert decoder.buffered == 3
    decoder.feed(stream[first_len + 3 :])
    assert drain(decoder) == CORPUS[1:2]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
frames = st.builds(
    Frame,
    st.text(min_size=1, max_size=12),
    st.integers(0, 2**53),
    st.dictionaries(
        st.text(max_size=10).filter(lambda k: k not in ("type", "id", "blobs")),
        json_values,
        max_size=5,
    ),
    st.lists(st.binary(max_size=300), max_size=5),
)


@given(st.lists(frames, min_size=1, max_size=6), st.data())
def test_round_trip_under_random_chunking(sent: list[Frame], data: st.DataObject) -> None:
    stream = encoded(sent)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    decoder = FrameDecoder()
    got: list[Frame] = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        decoder.feed(stream[prev:cut])
        got += drain(decoder)
        prev = cut
    assert got == sent


def test_max_frame_exactly_fits() -> None:
    data = encode_frame("ok", 1, None, [b"x" * 100])
    body_len = len(data) - 4
    decoder = FrameDecoder(max_frame=body_len)
    decoder.feed(data)
    assert drain(decoder)[0].blobs == [b"x" * 100]


def test_max_frame_plus_one_fails_before_the_body_arrives() -> None:
    data = encode_frame("ok", 1, None, [b"x" * 100])
    decoder = FrameDecoder(max_frame=len(data) - 5)
    decoder.feed(data[:4])  # only the length: refused at once
    with pytest.raises(FrameError, match="max_frame"):
        decoder.next_frame()
    # The decoder stays broken.
    with pytest.raises(FrameError, match="max_frame"):
        decoder.feed(b"more")
    with pytest.raises(FrameError, match="max_frame"):
        decoder.next_frame()


def test_encoder_refuses_what_the_decoder_would() -> None:
    with pytest.raises(ValueError, match="max_frame"):
        encode_frame("ok", 1, None, [b"x" * 100], max_frame=100)
    with pytest.raises(ValueError, match="reserved"):
        encode_frame("ok", 1, {"blobs": []})
    with pytest.raises(ValueError, match="negative"):
        encode_frame("ok", -1)
    with pytest.raises(ValueError, match="max_frame"):
        FrameDecoder(max_frame=4)


def raw(header: bytes, tail: bytes = b"", *, json_len: int | None = None) -> bytes:
    jl = len(header) if json_len is None else json_len
    body = struct.pack("!I", jl) + header + tail
    return struct.pack("!I", len(body)) + body


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (struct.pack("!I", 2) + b"ab", "shorter than its JSON length"),
        (raw(b"{}", json_len=99), "JSON length exceeds"),
        (raw(b"{nope"), "not valid"),
        (raw(b'"\xff"'), "not valid"),
        (raw(b"[1]"), "not an object"),
        (raw(b'{"id":1}'), "'type'"),
        (raw(b'{"type":1,"id":1}'), "'type'"),
        (raw(b'{"type":"x"}'), "'id'"),
        (raw(b'{"type":"x","id":-1}'), "'id'"),
        (raw(b'{"type":"x","id":true}'), "'id'"),
        (raw(b'{"type":"x","id":1.5}'), "'id'"),
        (raw(b'{"type":"x","id":1}', b"junk"), "no 'blobs'"),
        (raw(b'{"type":"x","id":1,"blobs":3}', b"abc"), "not a list"),
        (raw(b'{"type":"x","id":1,"blobs":[-1]}'), "bad length"),
        (raw(b'{"type":"x","id":1,"blobs":[true]}', b"a"), "bad length"),
        (raw(b'{"type":"x","id":1,"blobs":[2]}', b"abc"), "do not fill"),
        (raw(b'{"type":"x","id":1,"blobs":[4]}', b"abc"), "do not fill"),
    ],
)
def test_malformed_bodies(data: bytes, message: str) -> None:
    decoder = FrameDecoder()
    decoder.feed(data)
    with pytest.raises(FrameError, match=message) as first:
        decoder.next_frame()
    assert len(first.value.snippet) <= 32
    with pytest.raises(FrameError) as again:
        decoder.next_frame()
    assert again.value is first.value


def test_frames_before_an_error_are_delivered() -> None:
    decoder = FrameDecoder()
    decoder.feed(encode_frame("ping", 1) + raw(b"[]"))
    assert decoder.next_frame() == Frame("ping", 1)
    with pytest.raises(FrameError):
        decoder.next_frame()


def test_unicode_fields_survive() -> None:
    decoder = FrameDecoder()
    decoder.feed(encode_frame("x", 1, {"s": "ünï\u2028cödé"}))
    frame = decoder.next_frame()
    assert frame is not None
    assert frame.fields == {"s": "ünï\u2028cödé"}
    assert json.loads(json.dumps(frame.fields)) == frame.fields
