"""Encoders: exact wire bytes, and what the parser reads back."""

from __future__ import annotations

import pytest

from leafnode.proto import (
    OK,
    PING,
    PONG,
    Connect,
    Err,
    Event,
    HMsg,
    HPub,
    Info,
    Kind,
    LHMsg,
    LMsg,
    LocalProtocolError,
    LSub,
    LUnsub,
    Msg,
    Ok,
    Parser,
    Ping,
    Pong,
    Pub,
    Sub,
    Unsub,
    encode_connect,
    encode_err,
    encode_event,
    encode_hmsg,
    encode_hpub,
    encode_info,
    encode_lhmsg,
    encode_lmsg,
    encode_lsub,
    encode_lunsub,
    encode_msg,
    encode_pub,
    encode_sub,
    encode_unsub,
)


def parse_one(kind: Kind, data: bytes) -> Event:
    parser = Parser(kind)
    parser.feed(data)
    event = parser.next_event()
    assert event is not None
    assert parser.next_event() is None
    assert parser.buffered == 0
    return event


class TestConstants:
    def test_constants(self) -> None:
        assert (PING, PONG, OK) == (b"PING\r\n", b"PONG\r\n", b"+OK\r\n")


class TestControl:
    def test_info_has_compact_json_and_the_trailing_space(self) -> None:
        data = encode_info({"server_id": "N1", "headers": True, "max_payload": 1024})
        assert data == b'INFO {"server_id":"N1","headers":true,"max_payload":1024} \r\n'

    def test_connect_has_no_trailing_space(self) -> None:
        data = encode_connect({"verbose": False, "name": "a b"})
        assert data == b'CONNECT {"verbose":false,"name":"a b"}\r\n'

    def test_json_escapes_line_ends(self) -> None:
        data = encode_connect({"name": "a\r\nb"})
        assert data.count(b"\r\n") == 1
        assert parse_one(Kind.CLIENT, data) == Connect({"name": "a\r\nb"})

    def test_err(self) -> None:
        assert encode_err("Unknown Protocol Operation") == b"-ERR 'Unknown Protocol Operation'\r\n"
        assert encode_err("") == b"-ERR ''\r\n"

    @pytest.mark.parametrize("text", ["a\rb", "a\nb", "\r\n"])
    def test_err_refuses_line_ends(self, text: str) -> None:
        with pytest.raises(LocalProtocolError):
            encode_err(text)


class TestClientVerbs:
    def test_pub(self) -> None:
        assert encode_pub(b"foo", None, b"hello") == b"PUB foo 5\r\nhello\r\n"
        assert encode_pub(b"foo", b"r.1", b"") == b"PUB foo r.1 0\r\n\r\n"

    def test_pub_accepts_any_bytes_like_payload(self) -> None:
        assert encode_pub(b"a", None, memoryview(b"xy")) == b"PUB a 2\r\nxy\r\n"  # type: ignore[arg-type]

    def test_hpub(self) -> None:
        data = b"NATS/1.0\r\n\r\nhi"
        assert encode_hpub(b"h", None, 12, data) == b"HPUB h 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
        assert encode_hpub(b"h", b"r", 12, data) == b"HPUB h r 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"

    def test_sub_unsub(self) -> None:
        assert encode_sub(b"a.*", None, b"1") == b"SUB a.* 1\r\n"
        assert encode_sub(b"a.*", b"q", b"1") == b"SUB a.* q 1\r\n"
        assert encode_unsub(b"1") == b"UNSUB 1\r\n"
        assert encode_unsub(b"1", 5) == b"UNSUB 1 5\r\n"

    def test_msg_hmsg(self) -> None:
        assert encode_msg(b"foo", b"1", None, b"hi") == b"MSG foo 1 2\r\nhi\r\n"
        assert encode_msg(b"foo", b"1", b"r", b"hi") == b"MSG foo 1 r 2\r\nhi\r\n"
        assert encode_hmsg(b"a", b"2", None, 1, b"xy") == b"HMSG a 2 1 2\r\nxy\r\n"
        assert encode_hmsg(b"a", b"2", b"r", 1, b"xy") == b"HMSG a 2 r 1 2\r\nxy\r\n"


class TestLeafVerbs:
    def test_lsub(self) -> None:
        assert encode_lsub(b"a.>") == b"LS+ a.>\r\n"
        assert encode_lsub(b"q.x", b"grp", 3) == b"LS+ q.x grp 3\r\n"
        assert encode_lsub(b"a", account=b"$G") == b"LS+ $G a\r\n"
        assert encode_lsub(b"a", b"q", 1, b"ACC") == b"LS+ ACC a q 1\r\n"

    @pytest.mark.parametrize(("queue", "weight"), [(b"q", None), (None, 1)])
    def test_lsub_needs_queue_and_weight_together(
        self, queue: bytes | None, weight: int | None
    ) -> None:
        with pytest.raises(LocalProtocolError):
            encode_lsub(b"a", queue, weight)

    def test_lunsub(self) -> None:
        assert encode_lunsub(b"a") == b"LS- a\r\n"
        assert encode_lunsub(b"a", b"q") == b"LS- a q\r\n"
        assert encode_lunsub(b"a", b"q", b"ACC") == b"LS- ACC a q\r\n"
        assert encode_lunsub(b"a", account=b"ACC") == b"LS- ACC a\r\n"

    @pytest.mark.parametrize(
        ("reply", "queues", "line"),
        [
            (None, (), b"LMSG s 2\r\n"),
            (b"r", (), b"LMSG s r 2\r\n"),
            (b"r", (b"q1", b"q2"), b"LMSG s + r q1 q2 2\r\n"),
            (None, (b"q1",), b"LMSG s | q1 2\r\n"),
        ],
    )
    def test_lmsg_forms(self, reply: bytes | None, queues: tuple[bytes, ...], line: bytes) -> None:
        data = encode_lmsg(b"s", reply, queues, b"hi")
        assert data == line + b"hi\r\n"
        assert parse_one(Kind.LEAF, data) == LMsg(b"s", reply, queues, b"hi")

    def test_lmsg_captured_from_a_real_hub(self) -> None:
        # leafnode-protocol.md §4.4 captures.
        assert (
            encode_lmsg(b"to.leafq", b"rr", [b"grp"], b"q1")
            == b"LMSG to.leafq + rr grp 2\r\nq1\r\n"
        )
        assert encode_lmsg(b"hub.q", None, [b"hq"], b"abcd") == b"LMSG hub.q | hq 4\r\nabcd\r\n"
        data = b"NATS/1.0\r\nH: v\r\n\r\nq1"
        assert encode_lhmsg(b"to.leafq", b"rr", (b"grp",), 18, data) == (
            b"HMSG to.leafq + rr grp 18 20\r\nNATS/1.0\r\nH: v\r\n\r\nq1\r\n"
        )

    @pytest.mark.parametrize(
        ("reply", "queues", "line"),
        [
            (None, (), b"HMSG s 1 2\r\n"),
            (b"r", (), b"HMSG s r 1 2\r\n"),
            (b"r", (b"q1", b"q2"), b"HMSG s + r q1 q2 1 2\r\n"),
            (None, (b"q1",), b"HMSG s | q1 1 2\r\n"),
        ],
    )
    def test_lhmsg_forms(self, reply: bytes | None, queues: tuple[bytes, ...], line: bytes) -> None:
        data = encode_lhmsg(b"s", reply, queues, 1, b"hi")
        assert data == line + b"hi\r\n"
        assert parse_one(Kind.LEAF, data) == LHMsg(b"s", reply, queues, 1, b"hi")


EVENTS = [
    pytest.param(
        Kind.CLIENT, Connect({"verbose": True}), b'CONNECT {"verbose":true}\r\n', id="connect"
    ),
    pytest.param(Kind.CLIENT, Pub(b"a", b"r", b"x"), b"PUB a r 1\r\nx\r\n", id="pub"),
    pytest.param(Kind.CLIENT, HPub(b"a", None, 1, b"xy"), b"HPUB a 1 2\r\nxy\r\n", id="hpub"),
    pytest.param(Kind.CLIENT, Sub(b"a", b"q", b"9"), b"SUB a q 9\r\n", id="sub"),
    pytest.param(Kind.CLIENT, Unsub(b"9", 2), b"UNSUB 9 2\r\n", id="unsub"),
    pytest.param(Kind.CLIENT, Ping(), b"PING\r\n", id="ping"),
    pytest.param(Kind.CLIENT, Pong(), b"PONG\r\n", id="pong"),
    pytest.param(Kind.SERVER, Info({"a": [1, None]}), b'INFO {"a":[1,null]} \r\n', id="info"),
    pytest.param(Kind.SERVER, Msg(b"a", b"1", None, b"x"), b"MSG a 1 1\r\nx\r\n", id="msg"),
    pytest.param(Kind.SERVER, HMsg(b"a", b"1", b"r", 0, b""), b"HMSG a 1 r 0 0\r\n\r\n", id="hmsg"),
    pytest.param(Kind.SERVER, Ok(), b"+OK\r\n", id="ok"),
    pytest.param(Kind.SERVER, Err("Stale Connection"), b"-ERR 'Stale Connection'\r\n", id="err"),
    pytest.param(Kind.LEAF, LSub(b"a", b"q", 2), b"LS+ a q 2\r\n", id="lsub"),
    pytest.param(Kind.LEAF, LUnsub(b"a", b"q"), b"LS- a q\r\n", id="lunsub"),
    pytest.param(Kind.LEAF, LMsg(b"a", None, (b"q",), b"x"), b"LMSG a | q 1\r\nx\r\n", id="lmsg"),
    pytest.param(Kind.LEAF, LHMsg(b"a", b"r", (), 0, b"x"), b"HMSG a r 0 1\r\nx\r\n", id="lhmsg"),
    pytest.param(Kind.INTERNAL, LSub(b"a", None, None, b"A"), b"LS+ A a\r\n", id="lsub-acc"),
    pytest.param(Kind.INTERNAL, LUnsub(b"a", None, b"A"), b"LS- A a\r\n", id="lunsub-acc"),
]


class TestEncodeEvent:
    @pytest.mark.parametrize(("kind", "event", "wire"), EVENTS)
    def test_encode_event(self, kind: Kind, event: Event, wire: bytes) -> None:
        assert encode_event(event) == wire
        assert parse_one(kind, wire) == event
