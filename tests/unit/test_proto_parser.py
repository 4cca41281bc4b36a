"""Parser behaviour per kind: corpora under every split, limits, errors (STYLE §3.8)."""

from __future__ import annotations

import pytest

from leafnode.proto import (
    Connect,
    Err,
    Event,
    HMsg,
    HPub,
    Info,
    Kind,
    LHMsg,
    LMsg,
    LSub,
    LUnsub,
    Msg,
    Ok,
    Parser,
    Ping,
    Pong,
    Pub,
    RemoteProtocolError,
    Sub,
    Unsub,
)
from leafnode.proto._limits import MAX_CONTROL_LINE, MAX_CONTROL_LINE_LEAF, ZERO_COPY_MIN
from leafnode.proto._parser import BUFFER_SLACK

UNKNOWN = "Unknown Protocol Operation"
MAX_LINE = "maximum control line exceeded"
MAX_PAYLOAD = "Maximum Payload Violation"


def drain(parser: Parser) -> list[Event]:
    events = []
    while (event := parser.next_event()) is not None:
        events.append(event)
    return events


def parse(kind: Kind, data: bytes, **limits: int) -> list[Event]:
    parser = Parser(kind, **limits)
    parser.feed(data)
    events = drain(parser)
    assert parser.buffered == 0
    return events


def parse_error(kind: Kind, data: bytes, **limits: int) -> RemoteProtocolError:
    parser = Parser(kind, **limits)

    def feed_and_drain() -> None:
        parser.feed(data)
        drain(parser)

    with pytest.raises(RemoteProtocolError) as info:
        feed_and_drain()
    return info.value


# -- corpora: every verb of every kind, payloads with CRLF, empty payloads, headers

CLIENT_CORPUS = (
    b'CONNECT {"verbose":false,"pedantic":false,"name":"a b","headers":true}\r\n'
    b"PING\r\n"
    b"PUB foo 5\r\nhello\r\n"
    b"PUB foo.bar _INBOX.1 0\r\n\r\n"
    b"pub\tfoo  reply\t\t4\r\n\r\n\r\n\r\n"
    b"HPUB h 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
    b"hpub h r 18 21\r\nNATS/1.0\r\nK: v\r\n\r\nabc\r\n"
    b"SUB foo 1\r\nSUB foo.* q 2\r\nUNSUB 1\r\nunsub 2 10\r\n"
    b"PONG\r\n"
    b"PING\n"
)
CLIENT_EVENTS: list[Event] = [
    Connect({"verbose": False, "pedantic": False, "name": "a b", "headers": True}),
    Ping(),
    Pub(b"foo", None, b"hello"),
    Pub(b"foo.bar", b"_INBOX.1", b""),
    Pub(b"foo", b"reply", b"\r\n\r\n"),
    HPub(b"h", None, 12, b"NATS/1.0\r\n\r\nhi"),
    HPub(b"h", b"r", 18, b"NATS/1.0\r\nK: v\r\n\r\nabc"),
    Sub(b"foo", None, b"1"),
    Sub(b"foo.*", b"q", b"2"),
    Unsub(b"1"),
    Unsub(b"2", 10),
    Pong(),
    Ping(),
]

SERVER_CORPUS = (
    b'INFO {"server_id":"N1","headers":true,"max_payload":1048576} \r\n'
    b"+OK\r\n"
    b"MSG foo 1 5\r\nhello\r\n"
    b"MSG foo 1 reply.1 0\r\n\r\n"
    b"msg foo 1 6\r\na\r\nb\r\n\r\n"
    b"HMSG bar 2 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
    b"HMSG bar 2 r.2 18 21\r\nNATS/1.0\r\nK: v\r\n\r\nabc\r\n"
    b"PING\r\nPONG\r\n"
    b"-ERR 'Invalid Subject'\r\n"
)
SERVER_EVENTS: list[Event] = [
    Info({"server_id": "N1", "headers": True, "max_payload": 1048576}),
    Ok(),
    Msg(b"foo", b"1", None, b"hello"),
    Msg(b"foo", b"1", b"reply.1", b""),
    Msg(b"foo", b"1", None, b"a\r\nb\r\n"),
    HMsg(b"bar", b"2", None, 12, b"NATS/1.0\r\n\r\nhi"),
    HMsg(b"bar", b"2", b"r.2", 18, b"NATS/1.0\r\nK: v\r\n\r\nabc"),
    Ping(),
    Pong(),
    Err("Invalid Subject"),
]

LEAF_CORPUS = (
    b'INFO {"server_id":"N1","leafnode_urls":["h:7422"]} \r\n'
    b'CONNECT {"headers":true}\r\n'
    b"LS+ a.>\r\nLS+ q.x grp 3\r\nLS- a.>\r\nls- q.x grp\r\n"
    b"LMSG a 2\r\n\r\n\r\n"
    b"LMSG a rr 0\r\n\r\n"
    b"LMSG to.leafq + rr grp 2\r\nq1\r\n"
    b"LMSG hub.q | g1 g2 4\r\nabcd\r\n"
    b"HMSG to.leafq + rr grp 18 20\r\nNATS/1.0\r\nH: v\r\n\r\nq1\r\n"
    b"HMSG h 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
    b"HMSG h r 12 12\r\nNATS/1.0\r\n\r\n\r\n"
    b"HMSG h | g 12 12\r\nNATS/1.0\r\n\r\n\r\n"
    b"PING\r\nPONG\r\n+OK\r\n-ERR 'Loop detected'\r\n"
)
LEAF_EVENTS: list[Event] = [
    Info({"server_id": "N1", "leafnode_urls": ["h:7422"]}),
    Connect({"headers": True}),
    LSub(b"a.>"),
    LSub(b"q.x", b"grp", 3),
    LUnsub(b"a.>"),
    LUnsub(b"q.x", b"grp"),
    LMsg(b"a", None, (), b"\r\n"),
    LMsg(b"a", b"rr", (), b""),
    LMsg(b"to.leafq", b"rr", (b"grp",), b"q1"),
    LMsg(b"hub.q", None, (b"g1", b"g2"), b"abcd"),
    LHMsg(b"to.leafq", b"rr", (b"grp",), 18, b"NATS/1.0\r\nH: v\r\n\r\nq1"),
    LHMsg(b"h", None, (), 12, b"NATS/1.0\r\n\r\nhi"),
    LHMsg(b"h", b"r", (), 12, b"NATS/1.0\r\n\r\n"),
    LHMsg(b"h", None, (b"g",), 12, b"NATS/1.0\r\n\r\n"),
    Ping(),
    Pong(),
    Ok(),
    Err("Loop detected"),
]

INTERNAL_CORPUS = (
    b'INFO {"service":"router"}\r\n'
    b"LS+ $G a.>\r\nLS+ ACC q.x grp 1\r\nLS- $G a.>\r\nLS- ACC q.x grp\r\n"
    b"PING\r\nPONG\r\n-ERR 'stop'\r\n"
)
INTERNAL_EVENTS: list[Event] = [
    Info({"service": "router"}),
    LSub(b"a.>", None, None, b"$G"),
    LSub(b"q.x", b"grp", 1, b"ACC"),
    LUnsub(b"a.>", None, b"$G"),
    LUnsub(b"q.x", b"grp", b"ACC"),
    Ping(),
    Pong(),
    Err("stop"),
]

CORPORA = [
    pytest.param(Kind.CLIENT, CLIENT_CORPUS, CLIENT_EVENTS, id="client"),
    pytest.param(Kind.SERVER, SERVER_CORPUS, SERVER_EVENTS, id="server"),
    pytest.param(Kind.LEAF, LEAF_CORPUS, LEAF_EVENTS, id="leaf"),
    pytest.param(Kind.INTERNAL, INTERNAL_CORPUS, INTERNAL_EVENTS, id="internal"),
]


class TestCorpora:
    @pytest.mark.parametrize(("kind", "data", "expected"), CORPORA)
    def test_whole(self, kind: Kind, data: bytes, expected: list[Event]) -> None:
        assert parse(kind, data) == expected

    @pytest.mark.parametrize(("kind", "data", "expected"), CORPORA)
    def test_split_at_every_byte_boundary(
        self, kind: Kind, data: bytes, expected: list[Event]
    ) -> None:
        for cut in range(len(data) + 1):
            parser = Parser(kind)
            parser.feed(data[:cut])
            events = drain(parser)
            parser.compact()
            parser.feed(data[cut:])
            events += drain(parser)
            assert events == expected, cut
            assert parser.buffered == 0

    @pytest.mark.parametrize(("kind", "data", "expected"), CORPORA)
    def test_one_byte_at_a_time(self, kind: Kind, data: bytes, expected: list[Event]) -> None:
        parser = Parser(kind)
        events: list[Event] = []
        for i in range(len(data)):
            parser.feed(data[i : i + 1])
            events += drain(parser)
            if i % 3:  # exercise both compacted and uncompacted buffers
                parser.compact()
        assert events == expected

    @pytest.mark.parametrize(("kind", "data", "expected"), CORPORA)
    def test_one_byte_at_a_time_without_draining_in_between(
        self, kind: Kind, data: bytes, expected: list[Event]
    ) -> None:
        parser = Parser(kind)
        for i in range(len(data)):
            parser.feed(data[i : i + 1])
        assert drain(parser) == expected

    @pytest.mark.parametrize(("kind", "data", "expected"), CORPORA)
    def test_bytearray_and_memoryview_input(
        self, kind: Kind, data: bytes, expected: list[Event]
    ) -> None:
        parser = Parser(kind)
        half = len(data) // 2
        parser.feed(bytearray(data[:half]))
        parser.feed(memoryview(data)[half:])
        assert drain(parser) == expected


class TestVerbs:
    @pytest.mark.parametrize("verb", [b"pub", b"Pub", b"pUB", b"PUB"])
    def test_verbs_are_case_insensitive(self, verb: bytes) -> None:
        assert parse(Kind.CLIENT, verb + b" a 1\r\nx\r\n") == [Pub(b"a", None, b"x")]

    @pytest.mark.parametrize(
        ("kind", "line", "event"),
        [
            (Kind.CLIENT, b"cOnNeCt {}\r\n", Connect({})),
            (Kind.CLIENT, b"sUb a 1\r\n", Sub(b"a", None, b"1")),
            (Kind.CLIENT, b"UnSub 1\r\n", Unsub(b"1")),
            (Kind.CLIENT, b"pInG\r\n", Ping()),
            (Kind.CLIENT, b"pOnG\r\n", Pong()),
            (Kind.CLIENT, b"hPuB a 0 1\r\nx\r\n", HPub(b"a", None, 0, b"x")),
            (Kind.SERVER, b"iNfO {} \r\n", Info({})),
            (Kind.SERVER, b"mSg a 1 1\r\nx\r\n", Msg(b"a", b"1", None, b"x")),
            (Kind.SERVER, b"HmSg a 1 0 1\r\nx\r\n", HMsg(b"a", b"1", None, 0, b"x")),
            (Kind.SERVER, b"+ok\r\n", Ok()),
            (Kind.SERVER, b"-err 'x'\r\n", Err("x")),
            (Kind.LEAF, b"lS+ a\r\n", LSub(b"a")),
            (Kind.LEAF, b"Ls- a\r\n", LUnsub(b"a")),
            (Kind.LEAF, b"lmsg a 1\r\nx\r\n", LMsg(b"a", None, (), b"x")),
            (Kind.INTERNAL, b"ls- A a\r\n", LUnsub(b"a", None, b"A")),
        ],
    )
    def test_every_verb_in_mixed_case(self, kind: Kind, line: bytes, event: Event) -> None:
        assert parse(kind, line) == [event]

    def test_runs_of_spaces_and_tabs(self) -> None:
        data = b"PUB\t \tfoo \t r\t 2 \t\r\nhi\r\nSUB  \t a\t\tq  1\r\n"
        assert parse(Kind.CLIENT, data) == [Pub(b"foo", b"r", b"hi"), Sub(b"a", b"q", b"1")]

    def test_bare_lf_ends_a_control_line(self) -> None:
        # nats-server ends control lines at LF (golden: "PING with bare LF").
        assert parse(Kind.CLIENT, b"PING\nPUB a 1\nx\r\n") == [Ping(), Pub(b"a", None, b"x")]

    @pytest.mark.parametrize(
        ("kind", "line", "event"),
        [
            (Kind.CLIENT, b"CONNECT{}\r\n", Connect({})),
            (Kind.CLIENT, b"PINGX\r\n", Ping()),
            (Kind.CLIENT, b"PING x y\r\n", Ping()),
            (Kind.CLIENT, b"pongpong\r\n", Pong()),
            (Kind.SERVER, b'INFO{"a":1}\r\n', Info({"a": 1})),
            (Kind.SERVER, b"+OKAY\r\n", Ok()),
        ],
    )
    def test_verbs_nats_server_reads_without_a_blank(
        self, kind: Kind, line: bytes, event: Event
    ) -> None:
        assert parse(kind, line) == [event]

    @pytest.mark.parametrize(
        ("kind", "line"),
        [
            (Kind.CLIENT, b"INFO {}\r\n"),
            (Kind.CLIENT, b"MSG a 1 1\r\n"),
            (Kind.CLIENT, b"LS+ a\r\n"),
            (Kind.CLIENT, b"LMSG a 1\r\n"),
            (Kind.CLIENT, b"+OK\r\n"),
            (Kind.CLIENT, b"-ERR 'x'\r\n"),
            (Kind.SERVER, b"PUB a 1\r\n"),
            (Kind.SERVER, b"SUB a 1\r\n"),
            (Kind.SERVER, b"CONNECT {}\r\n"),
            (Kind.SERVER, b"LS+ a\r\n"),
            (Kind.LEAF, b"PUB a 1\r\n"),
            (Kind.LEAF, b"MSG a 1 1\r\n"),
            (Kind.LEAF, b"SUB a 1\r\n"),
            (Kind.INTERNAL, b"CONNECT {}\r\n"),
            (Kind.INTERNAL, b"+OK\r\n"),
            (Kind.INTERNAL, b"PUB a 1\r\n"),
            # The data link's messages are cut by MessageFramer under ACC lines.
            (Kind.INTERNAL, b"LMSG $G a 1\r\n"),
            (Kind.INTERNAL, b"HMSG $G a 0 1\r\n"),
            (Kind.CLIENT, b"\r\n"),
            (Kind.CLIENT, b"   \r\n"),
            (Kind.CLIENT, b"PUBX a 1\r\n"),
            (Kind.LEAF, b"LS* a\r\n"),
        ],
    )
    def test_verbs_outside_the_kind_are_unknown(self, kind: Kind, line: bytes) -> None:
        assert parse_error(kind, line).err_text == UNKNOWN

    @pytest.mark.parametrize("line", [b"PUB\r\n", b"SUB\r\n", b"UNSUB\r\n", b"HPUB\r\n"])
    def test_argument_verb_without_blank_is_unknown(self, line: bytes) -> None:
        assert parse_error(Kind.CLIENT, line).err_text == UNKNOWN

    @pytest.mark.parametrize(
        "line",
        [
            b"PUB \r\n",
            b"PUB a\r\n",
            b"PUB a b c 1\r\n",
            b"PUB a x\r\n",
            b"PUB a -1\r\n",
            b"PUB a +1\r\n",
            b"PUB a 0x1\r\n",
            b"PUB a 1_0\r\n",
            b"PUB a 0000000001\r\n",
            b"PUB a \xd9\xa1\r\n",
            b"SUB a\r\n",
            b"SUB a b c d\r\n",
            b"UNSUB \r\n",
            b"UNSUB 1 2 3\r\n",
            b"HPUB a 1\r\n",
            b"HPUB a 2 1\r\n",
            b"HPUB a x 1\r\n",
            b"HPUB a 1 x\r\n",
            b"HPUB a b c 1 2\r\n",
            b"CONNECT\r\n",
            b"CONNECT {bad\r\n",
            b"CONNECT {} x\r\n",
            b"CONNECT []\r\n",
            b'CONNECT "s"\r\n',
            b"CONNECT NaN\r\n",
            b'CONNECT {"a":Infinity}\r\n',
            b"CONNECT " + b"[" * 3000 + b"\r\n",
        ],
    )
    def test_malformed_arguments_close_without_err(self, line: bytes) -> None:
        error = parse_error(Kind.CLIENT, line)
        assert error.err_text == ""
        assert error.snippet == line[:-2][:32]

    def test_size_with_leading_zeros_and_nine_digits(self) -> None:
        assert parse(Kind.CLIENT, b"PUB a 0001\r\nx\r\n") == [Pub(b"a", None, b"x")]
        parser = Parser(Kind.CLIENT, max_payload=10**9)
        parser.feed(b"PUB a 000000001\r\nx\r\n")
        assert drain(parser) == [Pub(b"a", None, b"x")]

    @pytest.mark.parametrize(
        ("line", "max_msgs"),
        [(b"1", None), (b"1 5", 5), (b"1 0", None), (b"1 -1", None), (b"1 x", None)],
    )
    def test_unsub_max_that_is_not_positive_means_now(
        self, line: bytes, max_msgs: int | None
    ) -> None:
        assert parse(Kind.CLIENT, b"UNSUB " + line + b"\r\n") == [Unsub(b"1", max_msgs)]

    def test_json_null_is_an_empty_object(self) -> None:
        assert parse(Kind.CLIENT, b"CONNECT null\r\n") == [Connect({})]
        assert parse(Kind.SERVER, b"INFO null \r\n") == [Info({})]

    def test_json_with_invalid_utf8_is_decoded_with_replacement(self) -> None:
        assert parse(Kind.CLIENT, b'CONNECT {"name":"\xff"}\r\n') == [Connect({"name": "\ufffd"})]

    @pytest.mark.parametrize(
        ("line", "text"),
        [
            (b"-ERR 'Unknown Protocol Operation'", "Unknown Protocol Operation"),
            (b"-ERR\t 'a b' ", "a b"),
            (b"-ERR ''", ""),
            (b"-ERR 'it's'", "it's"),
            (b"-ERR unquoted text", "unquoted text"),
            (
                b"-ERR 'Permissions Violation for Publish to \"x\"'",
                'Permissions Violation for Publish to "x"',
            ),
        ],
    )
    def test_err_text_is_unquoted(self, line: bytes, text: str) -> None:
        assert parse(Kind.SERVER, line + b"\r\n") == [Err(text)]

    def test_err_without_blank_is_unknown(self) -> None:
        assert parse_error(Kind.SERVER, b"-ERR\r\n").err_text == UNKNOWN


class TestLeafArguments:
    @pytest.mark.parametrize(
        ("args", "reply", "queues"),
        [
            (b"s 1", None, ()),
            (b"s r 1", b"r", ()),
            (b"s + r 1", b"r", ()),
            (b"s + r q1 q2 q3 1", b"r", (b"q1", b"q2", b"q3")),
            (b"s | q1 1", None, (b"q1",)),
            (b"s | q1 q2 1", None, (b"q1", b"q2")),
            # Three tokens: the middle one is the reply, whatever it is (leafnode.go).
            (b"s | 1", b"|", ()),
            (b"s + 1", b"+", ()),
        ],
    )
    def test_lmsg_reply_and_queue_forms(
        self, args: bytes, reply: bytes | None, queues: tuple[bytes, ...]
    ) -> None:
        events = parse(Kind.LEAF, b"LMSG " + args + b"\r\nx\r\n")
        assert events == [LMsg(b"s", reply, queues, b"x")]

    @pytest.mark.parametrize(
        ("args", "reply", "queues"),
        [
            (b"s 0 1", None, ()),
            (b"s r 0 1", b"r", ()),
            (b"s + r 0 1", b"r", ()),
            (b"s + r q1 q2 0 1", b"r", (b"q1", b"q2")),
            (b"s | q1 0 1", None, (b"q1",)),
        ],
    )
    def test_hmsg_reply_and_queue_forms(
        self, args: bytes, reply: bytes | None, queues: tuple[bytes, ...]
    ) -> None:
        assert parse(Kind.LEAF, b"HMSG " + args + b"\r\nx\r\n") == [
            LHMsg(b"s", reply, queues, 0, b"x")
        ]

    @pytest.mark.parametrize(
        ("kind", "line"),
        [
            (Kind.LEAF, b"LMSG s\r\n"),
            (Kind.LEAF, b"LMSG s x\r\n"),
            (Kind.LEAF, b"LMSG s * q 1\r\n"),
            (Kind.LEAF, b"LMSG s ++ r q 1\r\n"),
            (Kind.LEAF, b"HMSG s 1\r\n"),
            (Kind.LEAF, b"HMSG s 2 1\r\n"),
            (Kind.LEAF, b"HMSG s * q 0 1\r\n"),
            (Kind.LEAF, b"LS+ a q\r\n"),
            (Kind.LEAF, b"LS+ a q x\r\n"),
            (Kind.LEAF, b"LS+ a q 1 2\r\n"),
            (Kind.LEAF, b"LS- a q x\r\n"),
            (Kind.LEAF, b"LS+ \r\n"),
            (Kind.INTERNAL, b"LS+ \r\n"),
            (Kind.INTERNAL, b"LS- \r\n"),
            (Kind.INTERNAL, b"LS+ acc\r\n"),
            (Kind.INTERNAL, b"LS+ acc a q\r\n"),
            (Kind.INTERNAL, b"LS- acc\r\n"),
        ],
    )
    def test_malformed_leaf_lines_close_without_err(self, kind: Kind, line: bytes) -> None:
        assert parse_error(kind, line).err_text == ""

    def test_account_is_none_on_leaf_links(self) -> None:
        events = parse(Kind.LEAF, b"LS+ a q 2\r\nLS- a q\r\n")
        assert [e.account for e in events] == [None, None]  # type: ignore[union-attr]

    def test_queue_weight_zero_and_nine_digits(self) -> None:
        assert parse(Kind.LEAF, b"LS+ a q 0\r\nLS+ a q 999999999\r\n") == [
            LSub(b"a", b"q", 0),
            LSub(b"a", b"q", 999999999),
        ]


class TestPayload:
    def test_wrong_bytes_after_payload(self) -> None:
        error = parse_error(Kind.CLIENT, b"PUB a 2\r\nabXY")
        assert error.err_text == UNKNOWN
        assert parse_error(Kind.CLIENT, b"PUB a 2\r\nab\rX").err_text == UNKNOWN
        assert parse_error(Kind.CLIENT, b"PUB a 2\r\nabc\r\n").err_text == UNKNOWN

    def test_wrong_byte_where_cr_belongs_fails_without_waiting(self) -> None:
        parser = Parser(Kind.CLIENT)
        parser.feed(b"PUB a 2\r\nab\n")
        with pytest.raises(RemoteProtocolError) as info:
            parser.next_event()
        assert info.value.err_text == UNKNOWN

    def test_wrong_crlf_after_payload_split_over_chunks(self) -> None:
        parser = Parser(Kind.CLIENT)
        parser.feed(b"PUB a 3\r\na")
        assert parser.next_event() is None
        parser.feed(b"b")
        parser.feed(b"c\rX")
        with pytest.raises(RemoteProtocolError) as info:
            parser.next_event()
        assert info.value.err_text == UNKNOWN

    @pytest.mark.parametrize("size", [ZERO_COPY_MIN - 1, ZERO_COPY_MIN, 3 * ZERO_COPY_MIN + 7])
    @pytest.mark.parametrize("chunk", [1000, 4096, 65536])
    def test_large_payload_over_many_chunks(self, size: int, chunk: int) -> None:
        payload = bytes(range(256)) * (size // 256) + b"\r\n" * ((size % 256) // 2)
        payload += b"z" * (size - len(payload))
        data = b"PUB big 7 %d\r\n%b\r\nPING\r\n" % (len(payload), payload)
        parser = Parser(Kind.CLIENT)
        events: list[Event] = []
        for i in range(0, len(data), chunk):
            parser.feed(data[i : i + chunk])
            events += drain(parser)
            parser.compact()
        assert events == [Pub(b"big", b"7", payload), Ping()]
        assert type(events[0].payload) is bytes  # type: ignore[union-attr]

    def test_buffered_counts_unconsumed_bytes(self) -> None:
        parser = Parser(Kind.CLIENT)
        parser.feed(b"PUB a 5\r\nhel")
        assert parser.buffered == 12
        assert parser.next_event() is None
        assert parser.buffered == 3  # the line is consumed, the payload is not
        parser.compact()
        assert parser.buffered == 3
        parser.feed(b"lo\r\nPI")
        assert parser.buffered == 9
        assert parser.next_event() == Pub(b"a", None, b"hello")
        assert parser.buffered == 2
        assert parser.next_event() is None
        parser.compact()
        parser.feed(b"NG\r\n")
        assert parser.next_event() == Ping()
        assert parser.buffered == 0


class TestLimits:
    def test_control_line_at_limit_with_crlf(self) -> None:
        # nats-server counts the arguments after "PUB ": 4094 + " 0" = 4096.
        line = b"PUB " + b"a" * 4094 + b" 0\r\n\r\n"
        assert parse(Kind.CLIENT, line) == [Pub(b"a" * 4094, None, b"")]

    def test_control_line_over_limit_with_crlf(self) -> None:
        line = b"PUB " + b"a" * 4095 + b" 0\r\n\r\n"
        assert parse_error(Kind.CLIENT, line).err_text == MAX_LINE

    def test_control_line_at_limit_without_crlf(self) -> None:
        parser = Parser(Kind.CLIENT)
        parser.feed(b"PUB \t " + b"a" * MAX_CONTROL_LINE)
        assert parser.next_event() is None
        parser.feed(b"\r")  # a CR waiting for its LF is not an argument byte
        assert parser.next_event() is None

    def test_control_line_over_limit_without_crlf(self) -> None:
        parser = Parser(Kind.CLIENT)
        parser.feed(b"PUB " + b"a" * MAX_CONTROL_LINE)
        assert parser.next_event() is None
        parser.feed(b"a")
        with pytest.raises(RemoteProtocolError) as info:
            parser.next_event()
        assert info.value.err_text == MAX_LINE

    def test_long_unknown_verb_without_crlf_is_unknown(self) -> None:
        parser = Parser(Kind.CLIENT)
        parser.feed(b"x" * (MAX_CONTROL_LINE + 1))
        with pytest.raises(RemoteProtocolError) as info:
            parser.next_event()
        assert info.value.err_text == UNKNOWN

    @pytest.mark.parametrize(
        ("kind", "verb", "account", "size", "payload"),
        [(Kind.LEAF, b"LMSG ", b"", b" 0", b"\r\n"), (Kind.INTERNAL, b"LS+ ", b"A ", b"", b"")],
    )
    def test_leaf_control_line_limit_is_sixteen_times(
        self, kind: Kind, verb: bytes, account: bytes, size: bytes, payload: bytes
    ) -> None:
        subject = b"s" * (MAX_CONTROL_LINE_LEAF - len(account) - len(size))
        arg = account + subject + size
        assert len(arg) == MAX_CONTROL_LINE_LEAF
        assert len(parse(kind, verb + arg + b"\r\n" + payload)) == 1
        error = parse_error(kind, verb + b"s" + arg + b"\r\n" + payload)
        assert error.err_text == MAX_LINE

    @pytest.mark.parametrize("kind", [Kind.CLIENT, Kind.SERVER])
    def test_client_and_server_control_line_limit(self, kind: Kind) -> None:
        body = b'{"k":"' + b"v" * (MAX_CONTROL_LINE - 8) + b'"}'
        assert len(body) == MAX_CONTROL_LINE
        verb = b"CONNECT " if kind is Kind.CLIENT else b"INFO "
        assert len(parse(kind, verb + body + b"\r\n")) == 1
        assert parse_error(kind, verb + body + b" \r\n").err_text == MAX_LINE

    def test_custom_control_line_limit_glued_verb(self) -> None:
        assert parse(Kind.CLIENT, b"CONNECT{}  \r\n", max_control_line=4) == [Connect({})]
        error = parse_error(Kind.CLIENT, b"CONNECT{}   \r\n", max_control_line=4)
        assert error.err_text == MAX_LINE

    @pytest.mark.parametrize(
        ("kind", "template"),
        [
            (Kind.CLIENT, b"PUB a %d\r\n"),
            (Kind.CLIENT, b"HPUB a 0 %d\r\n"),
            (Kind.SERVER, b"MSG a 1 %d\r\n"),
            (Kind.SERVER, b"HMSG a 1 r 0 %d\r\n"),
            (Kind.LEAF, b"LMSG a | q %d\r\n"),
            (Kind.LEAF, b"HMSG a 0 %d\r\n"),
        ],
    )
    def test_max_payload(self, kind: Kind, template: bytes) -> None:
        at_limit = template % 100 + b"x" * 100 + b"\r\n"
        assert len(parse(kind, at_limit, max_payload=100)) == 1
        error = parse_error(kind, template % 101, max_payload=100)
        assert error.err_text == MAX_PAYLOAD

    def test_max_payload_is_settable(self) -> None:
        parser = Parser(Kind.CLIENT)
        parser.max_payload = 3
        parser.feed(b"PUB a 3\r\nabc\r\nPUB a 4\r\n")
        assert parser.next_event() == Pub(b"a", None, b"abc")
        with pytest.raises(RemoteProtocolError) as info:
            parser.next_event()
        assert info.value.err_text == MAX_PAYLOAD

    def test_header_size_checked_before_max_payload(self) -> None:
        # nats-server reports hdr_len > total_len (silently) before the payload size.
        assert parse_error(Kind.CLIENT, b"HPUB a 9 5\r\n", max_payload=4).err_text == ""

    def test_max_buffer_at_limit_and_over(self) -> None:
        parser = Parser(Kind.CLIENT, max_buffer=20)
        parser.feed(b"PUB a 30\r\n")
        parser.feed(b"x" * 10)
        assert parser.buffered == 20
        assert parser.next_event() is None
        assert parser.buffered == 10
        parser.feed(b"y" * 10)
        with pytest.raises(RemoteProtocolError) as info:
            parser.feed(b"z")
        assert info.value.err_text == ""

    def test_max_buffer_counts_only_unconsumed_bytes(self) -> None:
        parser = Parser(Kind.CLIENT, max_buffer=10)
        for _ in range(5):
            parser.feed(b"PING\r\nPONG")
            assert parser.next_event() == Ping()
            assert parser.next_event() is None
            parser.feed(b"\r\n")
            assert parser.next_event() == Pong()

    def test_default_max_buffer_follows_max_payload(self) -> None:
        parser = Parser(Kind.CLIENT, max_payload=1000)
        limit = MAX_CONTROL_LINE + 1000 + 2 + BUFFER_SLACK
        parser.feed(b"x" * limit)
        with pytest.raises(RemoteProtocolError):
            parser.feed(b"x")
        parser = Parser(Kind.CLIENT, max_payload=1000)
        parser.max_payload = 2000
        parser.feed(b"x" * (limit + 1000))
        with pytest.raises(RemoteProtocolError):
            parser.feed(b"x")


class TestErrorState:
    def test_error_is_sticky(self) -> None:
        parser = Parser(Kind.CLIENT)
        parser.feed(b"FOO\r\nPING\r\n")
        with pytest.raises(RemoteProtocolError) as first:
            parser.next_event()
        for _ in range(3):
            with pytest.raises(RemoteProtocolError) as again:
                parser.next_event()
            assert again.value is first.value
        with pytest.raises(RemoteProtocolError) as on_feed:
            parser.feed(b"PING\r\n")
        assert on_feed.value is first.value

    def test_feed_error_is_sticky(self) -> None:
        parser = Parser(Kind.CLIENT, max_buffer=4)
        with pytest.raises(RemoteProtocolError) as first:
            parser.feed(b"PING\r\n")
        with pytest.raises(RemoteProtocolError) as again:
            parser.next_event()
        assert again.value is first.value

    def test_error_carries_snippet_and_message(self) -> None:
        error = parse_error(Kind.CLIENT, b"FOO " + b"x" * 100 + b"\r\n")
        assert error.snippet == b"FOO " + b"x" * 28
        assert "client" in str(error)

    def test_events_before_the_error_are_delivered(self) -> None:
        parser = Parser(Kind.CLIENT)
        parser.feed(b"PING\r\nPUB a 1\r\nx\r\nBAD\r\n")
        assert parser.next_event() == Ping()
        assert parser.next_event() == Pub(b"a", None, b"x")
        with pytest.raises(RemoteProtocolError):
            parser.next_event()


def batch_drain(parser: Parser) -> list[Event]:
    """``Parser.drain`` until it returns nothing (the routers' batch form)."""
    events: list[Event] = []
    while batch := parser.drain():
        events += batch
    return events


# Runs of PUB in every form the fast path must accept, or hand back.
HOT_CLIENT = (
    b"PUB a 1\r\nx\r\nPUB a r 2\r\nyy\r\nPUB  a\t3\r\nzzz\r\npub a 1\r\nq\r\n"
    b"PUB a 1\nw\r\nPUB a 0\r\n\r\nSUB a 1\r\nPUB b 4\r\n\r\n\r\n\r\nPING\r\n"
)


class TestBatchDrain:
    @pytest.mark.parametrize(
        ("kind", "data"),
        [
            *[pytest.param(p.values[0], p.values[1], id=p.id) for p in CORPORA],
            pytest.param(Kind.CLIENT, HOT_CLIENT, id="hot-client"),
        ],
    )
    def test_same_events_as_next_event_at_every_split(self, kind: Kind, data: bytes) -> None:
        reference = parse(kind, data)
        for cut in range(len(data) + 1):
            parser = Parser(kind)
            parser.feed(data[:cut])
            events = batch_drain(parser)
            parser.compact()
            parser.feed(data[cut:])
            events += batch_drain(parser)
            assert events == reference, cut

    @pytest.mark.parametrize(
        ("kind", "good", "bad"),
        [
            (Kind.CLIENT, b"PUB a 1\r\nx\r\nPUB b 1\r\ny\r\n", b"PUB c 1\r\nzz\r\n"),
            (Kind.INTERNAL, b"LS+ $G a\r\nPING\r\n", b"LS+ $G\r\n"),
        ],
    )
    def test_events_before_a_violation_come_first(
        self, kind: Kind, good: bytes, bad: bytes
    ) -> None:
        parser = Parser(kind)
        parser.feed(good + bad)
        assert parser.drain() == parse(kind, good)
        with pytest.raises(RemoteProtocolError):
            parser.drain()


def test_drain_on_pub_takes_the_leading_pubs_and_keeps_order() -> None:
    """``drain(on_pub)``: plain PUBs before any other event go to ``on_pub``
    (a PUB completed from the payload state too); a PUB behind another event
    comes back as an event, behind it."""
    p = Parser(Kind.CLIENT)
    seen: list[tuple[bytes, bytes | None, bytes]] = []

    def on_pub(subject: bytes, reply: bytes | None, hdr_len: int, payload: bytes) -> None:
        seen.append((subject, reply, payload))

    p.feed(b"PUB a 1\r\n1\r\nPUB b r 2\r\n2")
    assert p.drain(on_pub) == []
    assert seen == [(b"a", None, b"1")]
    p.feed(b"2\r\nPUB c 1\r\n3\r\nPING\r\nPUB d 1\r\n4\r\n")
    assert p.drain(on_pub) == [Ping(), Pub(b"d", None, b"4")]
    assert seen == [(b"a", None, b"1"), (b"b", b"r", b"22"), (b"c", None, b"3")]
    # Counted: the PUBs on_pub took and their payload bytes, not those returned.
    assert (p.pubs, p.pub_bytes) == (3, 4)
    p.feed(b"PUB e 1\r\n5\r\n")
    assert p.drain() == [Pub(b"e", None, b"5")]
    assert (p.pubs, p.pub_bytes) == (3, 4)
