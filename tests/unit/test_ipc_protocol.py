"""Store-link helpers: typed append/read frames, headers, field checks, client state."""

from __future__ import annotations

import calendar
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leafnode.ipc import (
    AppendColumns,
    BufferedMsg,
    ClientState,
    Frame,
    FrameDecoder,
    IpcClosedError,
    RequestError,
    StoredMsg,
    decode_append,
    decode_append_columns,
    decode_append_reply,
    decode_read_columns,
    decode_read_reply,
    encode_append,
    encode_frame,
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


def decode_one(data: bytes) -> Frame:
    decoder = FrameDecoder()
    decoder.feed(data)
    frame = decoder.next_frame()
    assert frame is not None
    return frame


names = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=12)


@st.composite
def buffered(draw: st.DrawFn) -> BufferedMsg:
    headers = draw(st.sampled_from([b"", b"NATS/1.0\r\nA: b\r\n\r\n"]))
    return BufferedMsg(
        draw(names),
        draw(names),
        draw(st.none() | names),
        len(headers),
        headers + draw(st.binary(max_size=64)),
        draw(st.integers(0, 2**62)),
        tuple(draw(st.lists(names, max_size=3))),
    )


@given(st.lists(buffered(), max_size=20))
def test_append_round_trip(msgs: list[BufferedMsg]) -> None:
    frame = decode_one(encode_append(42, msgs))
    assert (frame.type, frame.id) == ("append", 42)
    assert decode_append(frame) == msgs


@given(st.lists(buffered(), max_size=20), st.integers(0, 2**40), st.booleans())
def test_read_reply_round_trip(msgs: list[BufferedMsg], nxt: int, more: bool) -> None:
    stored = [
        StoredMsg(
            i + 1,
            m.remote,
            m.subject,
            m.reply,
            m.hdr_len,
            m.data,
            m.received_at_us,
            m.queues,
            None if i % 2 else m.received_at_us + 1,
        )
        for i, m in enumerate(msgs)
    ]
    reply = decode_read_reply(decode_one(encode_read_reply(7, stored, next=nxt, more=more)))
    assert reply.msgs == stored
    assert (reply.next, reply.more) == (nxt, more)


def test_stored_msg_splits_headers_and_payload() -> None:
    m = StoredMsg(1, "r", "s", None, 4, b"HDRSpayload", 0)
    assert (m.headers, m.payload) == (b"HDRS", b"payload")


@pytest.mark.parametrize(
    ("rows", "blobs", "message"),
    [
        ("nope", [], "one blob per message"),
        ([["r", "s", None, 0, 1, []]], [], "one blob per message"),
        ([["r", "s", None, 0, 1]], [b""], "6 fields"),
        ([None], [b""], "6 fields"),
        ([["r", "", None, 0, 1, []]], [b""], "malformed"),
        ([[1, "s", None, 0, 1, []]], [b""], "malformed"),
        ([["r", "s", 5, 0, 1, []]], [b""], "malformed"),
        ([["r", "s", None, 3, 1, []]], [b"ab"], "malformed"),
        ([["r", "s", None, -1, 1, []]], [b"ab"], "malformed"),
        ([["r", "s", None, True, 1, []]], [b"ab"], "malformed"),
        ([["r", "s", None, 0, 1.5, []]], [b""], "malformed"),
        ([["r", "s", None, 0, 1, "q"]], [b""], "malformed"),
    ],
)
def test_decode_append_refuses_bad_rows(rows: object, blobs: list[bytes], message: str) -> None:
    frame = decode_one(encode_frame("append", 1, {"msgs": rows}, blobs))
    with pytest.raises(RequestError, match=message) as exc:
        decode_append(frame)
    assert exc.value.code == "bad_request"


def test_append_travels_as_columns() -> None:
    """One JSON value per field: the subjects joined by LF, a shared value once,
    and fields every message leaves empty are absent."""
    msgs = [BufferedMsg("r", f"s.{i}", None, 0, b"x", i) for i in range(3)]
    frame = decode_one(encode_append(1, msgs))
    assert frame.fields == {"subject": "s.0\ns.1\ns.2", "remote": "r", "received_at_us": [0, 1, 2]}
    assert decode_append(frame) == msgs
    same = [BufferedMsg("r", f"s.{i}", None, 0, b"x", 7) for i in range(3)]
    frame = decode_one(encode_append(1, same))
    assert frame.fields["received_at_us"] == 7
    assert decode_append(frame) == same


def test_append_subject_with_a_line_feed_goes_as_a_list() -> None:
    """Joining would change the count: the list form keeps each subject whole."""
    msgs = [BufferedMsg("r", "a\nb", None, 0, b"x", 1), BufferedMsg("r", "c", None, 0, b"y", 1)]
    frame = decode_one(encode_append(1, msgs))
    assert frame.fields["subject"] == ["a\nb", "c"]
    assert decode_append(frame) == msgs


@given(st.lists(buffered(), max_size=20))
def test_append_rows_form_still_decodes(msgs: list[BufferedMsg]) -> None:
    rows = [
        [m.remote, m.subject, m.reply, m.hdr_len, m.received_at_us, list(m.queues)] for m in msgs
    ]
    frame = decode_one(encode_frame("append", 3, {"msgs": rows}, [m.data for m in msgs]))
    assert decode_append(frame) == msgs


@given(st.lists(buffered(), max_size=20), st.booleans())
def test_append_columns_match_the_messages(msgs: list[BufferedMsg], rows_form: bool) -> None:
    """The store's decoder gives the same messages, column by column, for both forms."""
    if rows_form:
        rows = [
            [m.remote, m.subject, m.reply, m.hdr_len, m.received_at_us, list(m.queues)]
            for m in msgs
        ]
        data = encode_frame("append", 3, {"msgs": rows}, [m.data for m in msgs])
    else:
        data = encode_append(3, msgs)
    cols = decode_append_columns(decode_one(data))
    assert cols == AppendColumns.of(msgs)
    assert len(cols) == len(msgs)


@pytest.mark.parametrize(
    ("fields", "blobs", "message"),
    [
        ({}, [b""], "'subject'"),
        ({"subject": ["s"], "remote": "r", "received_at_us": [1]}, [], "'subject'"),
        ({"subject": [""], "remote": "r", "received_at_us": [1]}, [b""], "non-empty"),
        ({"subject": [1], "remote": "r", "received_at_us": [1]}, [b""], "'subject'"),
        ({"subject": ["s"], "remote": 5, "received_at_us": [1]}, [b""], "'remote'"),
        ({"subject": ["s"], "remote": [None], "received_at_us": [1]}, [b""], "'remote'"),
        ({"subject": ["s"], "remote": "r"}, [b""], "'received_at_us'"),
        ({"subject": ["s"], "remote": "r", "received_at_us": [1.5]}, [b""], "'received_at_us'"),
        ({"subject": ["s"], "remote": "r", "received_at_us": [True]}, [b""], "'received_at_us'"),
        ({"subject": ["s"], "remote": "r", "received_at_us": [1], "reply": [5]}, [b""], "'reply'"),
        (
            {"subject": ["s"], "remote": "r", "received_at_us": [1], "hdr_len": [3]},
            [b"ab"],
            "within",
        ),
        (
            {"subject": ["s"], "remote": "r", "received_at_us": [1], "hdr_len": [-1]},
            [b"ab"],
            "within",
        ),
        (
            {"subject": ["s"], "remote": "r", "received_at_us": [1], "hdr_len": [True]},
            [b"ab"],
            "'hdr_len'",
        ),
        (
            {"subject": ["s"], "remote": "r", "received_at_us": [1], "queues": ["q"]},
            [b""],
            "'queues'",
        ),
        (
            {"subject": ["s"], "remote": "r", "received_at_us": [1], "queues": [[1]]},
            [b""],
            "'queues'",
        ),
        ({"subject": "a\nb", "remote": "r", "received_at_us": 1}, [b""], "'subject'"),
        ({"subject": "a\n", "remote": "r", "received_at_us": 1}, [b"", b""], "'subject'"),
        ({"subject": "a", "remote": "r", "received_at_us": True}, [b""], "'received_at_us'"),
    ],
)
def test_decode_append_refuses_bad_columns(
    fields: dict[str, object], blobs: list[bytes], message: str
) -> None:
    frame = decode_one(encode_frame("append", 1, fields, blobs))
    with pytest.raises(RequestError, match=message) as exc:
        decode_append(frame)
    assert exc.value.code == "bad_request"


def test_append_reply() -> None:
    frame = decode_one(
        encode_frame("ok", 1, {"first_seq": 3, "last_seq": 4, "refused": [[1, "max_msgs"]]})
    )
    reply = decode_append_reply(frame)
    assert (reply.first_seq, reply.last_seq, reply.refused) == (3, 4, ((1, "max_msgs"),))
    bad = decode_one(encode_frame("ok", 1, {"refused": [["x"]]}))
    with pytest.raises(RequestError):
        decode_append_reply(bad)


def test_read_reply_refuses_mismatched_blobs() -> None:
    frame = decode_one(encode_frame("ok", 1, {"msgs": [[1, "r", "s", None, 0, 0, [], None]]}))
    with pytest.raises(RequestError):
        decode_read_reply(frame)
    frame = decode_one(encode_frame("ok", 1, {"msgs": [[1, "r"]]}, [b""]))
    with pytest.raises(RequestError):
        decode_read_reply(frame)


def test_read_columns_fill_null_columns_and_refuse_bad_ones() -> None:
    full = {"seq": [3, 4], "subject": ["a", "b"], "received_at_us": [10, 11]}
    nulls = dict.fromkeys(("remote", "reply", "hdr_len", "queues", "acked_at_us"))
    assert decode_read_columns({**full, **nulls}, "hub") == [
        (3, "hub", "a", None, 0, 10, (), None),
        (4, "hub", "b", None, 0, 11, (), None),
    ]
    with pytest.raises(RequestError, match="bad column 'subject'"):
        decode_read_columns({**full, **nulls, "subject": None}, "hub")  # never null
    with pytest.raises(RequestError, match="different lengths"):
        decode_read_columns({**full, **nulls, "received_at_us": [10]}, "hub")


# -- headers (DESIGN §8) ---------------------------------------------------------------

T_US = calendar.timegm((2026, 11, 28, 1, 2, 3)) * 1_000_000 + 4


def test_rfc3339_is_utc_with_microseconds() -> None:
    assert rfc3339_us(T_US) == "2026-11-28T01:02:03.000004Z"
    assert rfc3339_us(0) == "1970-01-01T00:00:00.000000Z"
    assert time.strptime(rfc3339_us(T_US)[:19], "%Y-%m-%dT%H:%M:%S")


def test_stamp_headers_without_client_headers() -> None:
    block = stamp_headers(b"", msg_id=msg_id("LEAF", 7), buffered_at_us=T_US)
    assert block == (
        b"NATS/1.0\r\nNats-Msg-Id: LEAF-7\r\n"
        b"Leafnode-Buffered-At: 2026-11-28T01:02:03.000004Z\r\n\r\n"
    )


def test_stamp_headers_extends_client_headers() -> None:
    block = stamp_headers(b"NATS/1.0\r\nA: b\r\n\r\n", msg_id="L-1", buffered_at_us=T_US)
    assert block == (
        b"NATS/1.0\r\nA: b\r\nNats-Msg-Id: L-1\r\n"
        b"Leafnode-Buffered-At: 2026-11-28T01:02:03.000004Z\r\n\r\n"
    )


def test_stamp_headers_keeps_the_clients_msg_id() -> None:
    client = b"NATS/1.0\r\nnats-msg-id: mine\r\n\r\n"
    block = stamp_headers(client, msg_id="L-1", buffered_at_us=T_US)
    assert b"mine" in block
    assert b"L-1" not in block
    assert block.endswith(b"Leafnode-Buffered-At: 2026-11-28T01:02:03.000004Z\r\n\r\n")
    both = stamp_headers(block, msg_id="L-2", buffered_at_us=0)
    assert both == block  # already stamped: unchanged (a re-drive sends the same bytes)


def test_stamp_headers_leaves_a_block_it_cannot_extend() -> None:
    assert stamp_headers(b"NATS/1.0\r\nA: b", msg_id="x", buffered_at_us=0) == b"NATS/1.0\r\nA: b"
    # A value that merely contains the key is not the header.
    block = stamp_headers(b"NATS/1.0\r\nX: Nats-Msg-Id: no\r\n\r\n", msg_id="L-3", buffered_at_us=0)
    assert b"Nats-Msg-Id: L-3\r\n" in block


# -- field accessors -------------------------------------------------------------------


def test_field_accessors() -> None:
    f: dict[str, object] = {"s": "x", "i": 3, "b": True, "li": [1, 2], "ls": ["a"], "n": None}
    assert field_str(f, "s") == "x"
    assert field_str(f, "n") is None
    assert field_int(f, "i") == 3
    assert field_int(f, "missing", default=9) == 9
    assert field_bool(f, "b") is True
    assert field_bool(f, "missing") is False
    assert field_int_list(f, "li") == [1, 2]
    assert field_str_list(f, "ls") == ["a"]
    assert field_str_list(f, "missing") is None
    for call in (
        lambda: field_str(f, "n", required=True),
        lambda: field_str(f, "i"),
        lambda: field_int(f, "s"),
        lambda: field_int(f, "b"),
        lambda: field_int({"i": 0}, "i", minimum=1),
        lambda: field_bool(f, "i"),
        lambda: field_int_list({"x": [1, -1]}, "x"),
        lambda: field_int_list({"x": [True]}, "x"),
        lambda: field_str_list({"x": [1]}, "x"),
        lambda: field_str_list({"x": "a"}, "x"),
    ):
        with pytest.raises(RequestError):
            call()


# -- ClientState -----------------------------------------------------------------------


def answer(rid: int, ftype: str = "ok", **fields: object) -> bytes:
    return encode_frame(ftype, rid, fields)


def test_client_matches_answers_by_id_in_any_order() -> None:
    state = ClientState()
    one, _ = state.start_request("ping")
    two, _ = state.start_request("stats")
    assert (one, two) == (1, 2)
    answered, events = state.receive_data(answer(two, n=2) + answer(one, "pong"))
    assert (answered, events) == ([two, one], False)
    assert state.take_response(one).type == "pong"
    assert state.take_response(two).fields == {"n": 2}


def test_client_error_answer_raises_with_code() -> None:
    state = ClientState()
    rid, _ = state.start_request("append")
    state.receive_data(answer(rid, "error", error="disk full", code="unavailable"))
    with pytest.raises(RequestError, match="disk full") as exc:
        state.take_response(rid)
    assert exc.value.code == "unavailable"


def test_client_drops_answers_to_abandoned_requests() -> None:
    state = ClientState()
    rid, _ = state.start_request("read")
    state.abandon(rid)
    answered, events = state.receive_data(answer(rid))
    # Unawaited: taken for an event, which nobody reads as an answer.
    assert answered == []
    assert events


def test_client_coalesces_events() -> None:
    state = ClientState()
    data = b"".join(
        [
            encode_frame("appended", 5, {"remote": "a", "last_seq": 1}),
            encode_frame("appended", 5, {"remote": "b", "last_seq": 2}),
            encode_frame("appended", 5, {"remote": "a", "last_seq": 3}),
            encode_frame("rewind", 5, {"remote": "a", "seq": 10}),
            encode_frame("rewind", 5, {"remote": "a", "seq": 4}),
            encode_frame("rewind", 5, {"remote": "a", "seq": 8}),
        ]
    )
    assert state.receive_data(data) == ([], True)
    events = state.take_events()
    assert [(e.type, e.fields) for e in events] == [
        ("appended", {"remote": "b", "last_seq": 2}),
        ("appended", {"remote": "a", "last_seq": 3}),
        ("rewind", {"remote": "a", "seq": 4}),
    ]
    assert state.take_events() == []


def test_client_close_fails_waiting_and_new_requests() -> None:
    state = ClientState()
    rid, _ = state.start_request("ping")
    state.receive_data(b"")
    assert state.closed is not None
    with pytest.raises(IpcClosedError):
        state.take_response(rid)
    with pytest.raises(IpcClosedError):
        state.start_request("ping")
    with pytest.raises(IpcClosedError):
        state.encode_prepared(lambda rid: encode_frame("ping", rid))
    assert state.close(IpcClosedError("again")) == []
