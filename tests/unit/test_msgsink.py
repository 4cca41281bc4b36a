"""``MsgSink``: a client's MSG/HMSG frames, queued on a real ``Outbound``.

The sink keeps the last plain MSG's control line and reuses it for the next
message with the same subject, sid and size; every byte it queues must still
be what ``encode_msg_frame`` formats for that delivery, in order, counted in
the outbound's ``pending`` and limited by its ``max_pending``. Runs on the
pure module and, in the compiled pass, on the mypyc-compiled one.
"""

from __future__ import annotations

import trio
import trio.testing

from leafnode.link import Flusher, Outbound, OutboundPolicy
from leafnode.proto import MsgSink, encode_msg_frame


def _outbound(max_pending: int = 1 << 20) -> tuple[Outbound, Flusher]:
    stream, _peer = trio.testing.memory_stream_pair()
    flusher = Flusher()
    return Outbound(stream, flusher, OutboundPolicy(max_pending=max_pending)), flusher


HDR = b"NATS/1.0\r\nA: b\r\n\r\n"
# (subject, sid, reply, hdr_len, data): repeats, then each of subject, sid
# and size changed alone (a stale control line would carry the old one).
DELIVERIES = [
    (b"a.b", b"1", None, 0, b"hello"),
    (b"a.b", b"1", None, 0, b"world"),
    (b"a.c", b"1", None, 0, b"world"),
    (b"a.c", b"2", None, 0, b"world"),
    (b"a.c", b"2", None, 0, b"worlds"),
    (b"a.c", b"2", b"_INBOX.x", 0, b"req"),
    (b"a.c", b"2", None, 0, b"worlds"),
    (b"a.c", b"2", None, len(HDR), HDR + b"hi"),
    (b"a.c", b"2", b"_INBOX.y", len(HDR), HDR + b"hi"),
    (b"a.c", b"2", None, 0, b""),
]


def test_the_frames_are_encode_msg_frame_in_order_with_headers() -> None:
    outbound, _ = _outbound()
    sink = MsgSink(outbound)
    sink.headers = True
    for delivery in DELIVERIES:
        sink.msg(*delivery)
    wire = b"".join(outbound.out)
    assert wire == b"".join(encode_msg_frame(*d) for d in DELIVERIES)
    assert outbound.pending == len(wire)
    assert sink.out_msgs == len(DELIVERIES)
    assert sink.out_bytes == sum(len(d[4]) for d in DELIVERIES)


def test_without_headers_an_hmsg_is_a_msg_of_the_payload() -> None:
    outbound, _ = _outbound()
    sink = MsgSink(outbound)
    for delivery in DELIVERIES:
        sink.msg(*delivery)
    expected = [
        encode_msg_frame(subject, sid, reply, 0, data[hdr_len:])
        for subject, sid, reply, hdr_len, data in DELIVERIES
    ]
    assert b"".join(outbound.out) == b"".join(expected)
    assert sink.out_bytes == sum(len(d[4]) - d[3] for d in DELIVERIES)


def test_the_first_message_marks_the_outbound_for_the_flusher() -> None:
    outbound, flusher = _outbound()
    sink = MsgSink(outbound)
    sink.msg(b"a", b"1", None, 0, b"x")
    sink.msg(b"a", b"1", None, 0, b"y")
    assert outbound.dirty
    assert flusher.dirty == [outbound]


def test_on_reply_sees_each_reply_subject() -> None:
    outbound, _ = _outbound()
    sink = MsgSink(outbound)
    seen: list[bytes] = []
    sink.on_reply = seen.append
    for delivery in DELIVERIES:
        sink.msg(*delivery)
    assert seen == [b"_INBOX.x", b"_INBOX.y"]


def test_past_max_pending_the_outbound_reports_a_slow_consumer() -> None:
    outbound, _ = _outbound(max_pending=100)
    reasons: list[str] = []
    outbound.on_slow_consumer = reasons.append
    sink = MsgSink(outbound)
    sink.msg(b"a", b"1", None, 0, b"x" * 60)
    assert reasons == []
    sink.msg(b"a", b"1", None, 0, b"x" * 60)
    assert reasons == ["pending bytes"]
