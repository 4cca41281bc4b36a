"""The encoders and parsers the services use for message lines and the data link.

Byte-exact against leafnode-protocol.md (§2 and the §4.4 captures), and read
back with the shared parser or framer.
"""

from __future__ import annotations

import json

import pytest

from leafnode.proto import (
    Hello,
    HMsg,
    HubInfo,
    Kind,
    LHMsg,
    MessageFrame,
    MessageFramer,
    Msg,
    Parser,
    RemoteProtocolError,
    Run,
    encode_acc,
    encode_hello,
    encode_hub_info,
    encode_hub_reset,
    encode_leaf_route,
    encode_lhmsg,
    encode_lmsg,
    encode_msg_frame,
    encode_routed_hmsg,
    hub_reset_account,
    parse_leaf_route,
)

ROUTES = [
    pytest.param(None, (), b"s", id="subject"),
    pytest.param(b"r", (), b"s r", id="reply"),
    pytest.param(b"rr", (b"grp",), b"s + rr grp", id="reply-and-queue"),
    pytest.param(b"r", (b"q1", b"q2"), b"s + r q1 q2", id="reply-and-queues"),
    pytest.param(None, (b"hq",), b"s | hq", id="queue"),
    pytest.param(None, (b"q1", b"q2"), b"s | q1 q2", id="queues"),
]


def parse(kind: Kind, data: bytes) -> object:
    parser = Parser(kind)
    parser.feed(data)
    event = parser.next_event()
    assert parser.next_event() is None
    return event


class TestLeafRoute:
    @pytest.mark.parametrize(("reply", "queues", "route"), ROUTES)
    def test_both_ways(self, reply: bytes | None, queues: tuple[bytes, ...], route: bytes) -> None:
        assert encode_leaf_route(b"s", reply, queues) == route
        args = [*route.split(), b"5"]
        assert parse_leaf_route(args, 0, len(args) - 1) == (b"s", reply, queues)
        # With an account and two sizes around it, as a caller may hold them.
        args = [b"acc", *route.split(), b"1", b"5"]
        assert parse_leaf_route(args, 1, len(args) - 2) == (b"s", reply, queues)

    @pytest.mark.parametrize(
        "args",
        [[b"5"], [b"s", b"r", b"q", b"5"], [b"s", b"x", b"r", b"q", b"5"]],
        ids=["no-subject", "three-without-marker", "bad-marker"],
    )
    def test_not_a_route(self, args: list[bytes]) -> None:
        assert parse_leaf_route(args, 0, len(args) - 1) is None

    def test_a_lone_marker_is_a_reply(self) -> None:
        # nats-server: two tokens before the size are subject and reply, whatever they are.
        assert parse_leaf_route([b"s", b"|", b"5"], 0, 2) == (b"s", b"|", ())

    def test_the_parser_reads_the_same_grammar(self) -> None:
        for param in ROUTES:
            reply, queues, route = param.values
            assert isinstance(route, bytes)
            event = parse(Kind.LEAF, b"HMSG %b 0 2\r\nhi\r\n" % route)
            assert isinstance(event, LHMsg)
            assert (event.subject, event.reply, event.queues) == (b"s", reply, queues)


class TestClientDelivery:
    @pytest.mark.parametrize(
        ("reply", "hdr_len", "data", "wire"),
        [
            (None, 0, b"hi", b"MSG a.b 5 2\r\nhi\r\n"),
            (b"rr", 0, b"hi", b"MSG a.b 5 rr 2\r\nhi\r\n"),
            (None, 12, b"NATS/1.0\r\n\r\nhi", b"HMSG a.b 5 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"),
            # leafnode-protocol.md §2, captured from nats-server.
            (b"rr", 12, b"NATS/1.0\r\n\r\nhi", b"HMSG a.b 5 rr 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"),
        ],
    )
    def test_msg_frame(self, reply: bytes | None, hdr_len: int, data: bytes, wire: bytes) -> None:
        assert encode_msg_frame(b"a.b", b"5", reply, hdr_len, data) == wire
        event = parse(Kind.SERVER, wire)
        if hdr_len:
            assert event == HMsg(b"a.b", b"5", reply, hdr_len, data)
        else:
            assert event == Msg(b"a.b", b"5", reply, data)


class TestRoutedHmsg:
    def test_capture_from_a_real_hub(self) -> None:
        # leafnode-protocol.md §4.4.
        route = encode_leaf_route(b"to.leafq", b"rr", (b"grp",))
        wire = encode_routed_hmsg(route, b"NATS/1.0\r\nH: v\r\n\r\n", b"q1")
        assert wire == b"HMSG to.leafq + rr grp 18 20\r\nNATS/1.0\r\nH: v\r\n\r\nq1\r\n"
        assert wire == encode_lhmsg(
            b"to.leafq", b"rr", (b"grp",), 18, b"NATS/1.0\r\nH: v\r\n\r\nq1"
        )


class TestDataLink:
    def test_acc(self) -> None:
        assert encode_acc(b"$G") == b"ACC $G\r\n"

    def test_hello(self) -> None:
        wire = encode_hello("NID", "site", ["B", "$G"])
        assert wire == b'INFO {"server_id":"NID","server_name":"site","accounts":["$G","B"]} \r\n'
        options = json.loads(wire[5:])
        assert Hello.is_hello(options)
        assert Hello.from_options(options) == Hello("NID", "site", ("$G", "B"))
        assert not Hello.is_hello({"hub_reset": "$G"})
        assert Hello.from_options({"accounts": ["A", 3], "server_name": 7}) == Hello("", "", ("A",))

    def test_hub_reset(self) -> None:
        wire = encode_hub_reset("$G")
        assert wire == b'INFO {"hub_reset":"$G"} \r\n'
        assert hub_reset_account(json.loads(wire[5:])) == "$G"
        assert hub_reset_account({"server_name": "x"}) is None
        assert hub_reset_account({"hub_reset": 1}) is None

    def test_hub_info(self) -> None:
        wire = encode_hub_info("$G", 3, "hub-a")
        assert wire == b'INFO {"hub":"$G","proto":3,"server_name":"hub-a"} \r\n'
        assert HubInfo.from_options(json.loads(wire[5:])) == HubInfo("$G", 3, "hub-a")
        assert HubInfo.from_options({"hub": "A", "proto": "3", "server_name": 1}) == HubInfo("A")
        assert HubInfo.from_options({"hub_reset": "$G"}) is None
        assert HubInfo.from_options(json.loads(encode_hello("N", "s", ["$G"])[5:])) is None

    def test_messages_cross_under_acc(self) -> None:
        """What the router writes (ACC + leaf form) is what the uplink's framer reads, both ways."""
        wire = (
            encode_acc(b"A")
            + encode_lmsg(b"s", b"r", (b"q",), b"hi")
            + encode_acc(b"B")
            + encode_lhmsg(b"t", None, (), 12, b"NATS/1.0\r\n\r\nho")
        )
        framer = MessageFramer(
            Kind.INTERNAL, max_payload=1024, max_control_line=4096, accounts=True
        )
        seen: list[object] = []

        def on_msg(msg: MessageFrame) -> bool:
            reply, queues = msg.route()
            seen.append((msg.account, msg.subject, reply, queues, msg.hdr_len, msg.data, msg.size))
            return True

        def on_run(run: Run) -> None:
            seen.append((run.account, run.data, run.msgs, run.size))

        framer.feed(wire)
        framer.drain(on_msg, seen.append, on_run)
        assert seen == [
            (b"A", b"s", b"r", (b"q",), 0, b"hi", 2),
            (b"A", b"LMSG s + r q 2\r\nhi\r\n", 1, 2),
            (b"B", b"t", None, (), 12, b"NATS/1.0\r\n\r\nho", 14),
            (b"B", b"HMSG t 12 14\r\nNATS/1.0\r\n\r\nho\r\n", 1, 14),
        ]

    def test_a_bad_route_is_a_protocol_error(self) -> None:
        framer = MessageFramer(
            Kind.INTERNAL, max_payload=1024, max_control_line=4096, accounts=True
        )
        framer.feed(b"ACC A\r\nLMSG s x r q 2\r\nhi\r\n")

        def on_msg(msg: MessageFrame) -> bool:
            msg.route()
            return False

        with pytest.raises(RemoteProtocolError):
            framer.drain(on_msg, lambda event: None)
