"""The route protocol, sans-IO: typed events, byte-exact encoders, the handshake values.

Every line nats-server 2.15 sends on a route (``server/route.go``) parses
into its typed event and encodes back to the same bytes, with the account
from the line or, on a route dedicated to one account, from
``Parser.route_account``. The INFO and CONNECT lines below were captured
from nats-server 2.15.1 (tests/unit/test_proto_route_live.py captures them
live every run).
"""

from __future__ import annotations

import json

import pytest

from leafnode.proto import (
    COMPRESSION_OFF,
    Connect,
    Info,
    Kind,
    Parser,
    Ping,
    RemoteProtocolError,
    RHMsg,
    RLMsg,
    RLSub,
    RLUnsub,
    RMsg,
    RouteConnect,
    RouteInfo,
    RSub,
    RUnsub,
    encode_event,
    encode_rlunsub,
    encode_rmsg,
    encode_route_connect,
    encode_route_event,
    encode_route_info,
    encode_rsub,
    route_connect,
    route_info,
    route_pool_index,
)

CAPTURED_CONNECT = (
    b'CONNECT {"echo":true,"verbose":false,"pedantic":false,"tls_required":false,'
    b'"headers":true,"name":"NBLRRT2N6DAJ3WTY5PL73GEV34QX6KX4F66I737KDWWSLUAM6NKS4ZLW",'
    b'"cluster":"C","lnoc":true,"ln":true}\r\n'
)
CAPTURED_INFO = (
    b'INFO {"server_id":"NBLRRT2N6DAJ3WTY5PL73GEV34QX6KX4F66I737KDWWSLUAM6NKS4ZLW",'
    b'"server_name":"n1","version":"2.15.1","proto":3,"go":"go1.27.2","host":"127.0.0.1",'
    b'"port":33349,"headers":true,"max_payload":1048576,"nonce":"Pn8VX-ejp39JShY",'
    b'"cluster":"C","connect_urls":["192.0.2.2:49437","[fd00::2]:49437"],'
    b'"compression":"off","lnoc":true,"lnocu":true,"ln":true,"route_pool_size":3,'
    b'"route_account":"$SYS"} \r\n'
)

# (wire, event) pairs: each line parses into the event and encodes back to it.
LINES: list[tuple[bytes, object]] = [
    (b"RS+ $G foo\r\n", RSub(b"$G", b"foo")),
    (b"RS+ $G bar q 1\r\n", RSub(b"$G", b"bar", b"q", 1)),
    (b"RS+ ACC bar.* q 7\r\n", RSub(b"ACC", b"bar.*", b"q", 7)),
    (b"RS- $G foo\r\n", RUnsub(b"$G", b"foo")),
    (b"RS- $G bar q\r\n", RUnsub(b"$G", b"bar", b"q")),
    (b"LS+ LEAFC $G foo\r\n", RLSub(b"LEAFC", b"$G", b"foo")),
    (b"LS+ LEAFC $G foo q 2\r\n", RLSub(b"LEAFC", b"$G", b"foo", b"q", 2)),
    (b"LS- LEAFC $G foo\r\n", RLUnsub(b"LEAFC", b"$G", b"foo")),
    (b"LS- LEAFC $G foo q\r\n", RLUnsub(b"LEAFC", b"$G", b"foo", b"q")),
    (b"RMSG $G baz 5\r\nhello\r\n", RMsg(b"$G", b"baz", None, (), b"hello")),
    (b"RMSG $G baz r.1 5\r\nhello\r\n", RMsg(b"$G", b"baz", b"r.1", (), b"hello")),
    (b"RMSG $G qq + r.2 grp 1\r\nx\r\n", RMsg(b"$G", b"qq", b"r.2", (b"grp",), b"x")),
    (b"RMSG $G qq | g1 g2 1\r\ny\r\n", RMsg(b"$G", b"qq", None, (b"g1", b"g2"), b"y")),
    (b"RMSG $G empty 0\r\n\r\n", RMsg(b"$G", b"empty", None, (), b"")),
    (
        b"HMSG $G baz 18 20\r\nNATS/1.0\r\nA: b\r\n\r\nhi\r\n",
        RHMsg(b"$G", b"baz", None, (), 18, b"NATS/1.0\r\nA: b\r\n\r\nhi"),
    ),
    (
        b"HMSG $G baz + r.3 q 12 12\r\nNATS/1.0\r\n\r\n\r\n",
        RHMsg(b"$G", b"baz", b"r.3", (b"q",), 12, b"NATS/1.0\r\n\r\n"),
    ),
    (
        b"LMSG LEAFC $G foo r.4 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
        RLMsg(b"LEAFC", b"$G", b"foo", b"r.4", (), 12, b"NATS/1.0\r\n\r\nhi"),
    ),
    (
        b"LMSG LEAFC $G foo | q 12 12\r\nNATS/1.0\r\n\r\n\r\n",
        RLMsg(b"LEAFC", b"$G", b"foo", None, (b"q",), 12, b"NATS/1.0\r\n\r\n"),
    ),
]


def parse(data: bytes, *, route_account: bytes | None = None) -> list[object]:
    parser = Parser(Kind.ROUTE)
    parser.route_account = route_account
    parser.feed(data)
    return list(parser.drain())


@pytest.mark.parametrize(("wire", "event"), LINES)
def test_each_line_parses_and_encodes_back(wire: bytes, event: object) -> None:
    assert parse(wire) == [event]
    assert encode_route_event(event) == wire  # type: ignore[arg-type]
    assert encode_event(event) == wire  # type: ignore[arg-type]


@pytest.mark.parametrize(("wire", "event"), LINES)
def test_byte_by_byte(wire: bytes, event: object) -> None:
    parser = Parser(Kind.ROUTE)
    events = []
    for i in range(len(wire)):
        parser.feed(wire[i : i + 1])
        events += parser.drain()
    assert events == [event]


@pytest.mark.parametrize(
    ("wire", "event"),
    [
        (b"RS+ $SYS.REQ.SERVER.PING\r\n", RSub(b"$SYS", b"$SYS.REQ.SERVER.PING")),
        (b"RS+ foo q 1\r\n", RSub(b"$SYS", b"foo", b"q", 1)),
        (b"RS- foo q\r\n", RUnsub(b"$SYS", b"foo", b"q")),
        (b"LS+ LEAFC foo\r\n", RLSub(b"LEAFC", b"$SYS", b"foo")),
        (b"RMSG a.b r 1\r\nx\r\n", RMsg(b"$SYS", b"a.b", b"r", (), b"x")),
        (b"RMSG a.b 1\r\nx\r\n", RMsg(b"$SYS", b"a.b", None, (), b"x")),
        (
            b"HMSG a.b 12 12\r\nNATS/1.0\r\n\r\n\r\n",
            RHMsg(b"$SYS", b"a.b", None, (), 12, b"NATS/1.0\r\n\r\n"),
        ),
    ],
)
def test_a_dedicated_route_leaves_the_account_out(wire: bytes, event: object) -> None:
    assert parse(wire, route_account=b"$SYS") == [event]
    assert encode_route_event(event, pinned=True) == wire  # type: ignore[arg-type]


def test_control_verbs_and_the_handshake_lines() -> None:
    events = parse(CAPTURED_CONNECT + CAPTURED_INFO + b"PING\r\n")
    assert [type(e) for e in events] == [Connect, Info, Ping]


@pytest.mark.parametrize(
    "wire",
    [
        b"RS+ $G\r\n",  # no subject
        b"RS+ $G foo q\r\n",  # a queue without its weight
        b"RS+ $G foo q x\r\n",  # a weight that is no number
        b"RS- $G foo q extra\r\n",
        b"LS+ LEAFC\r\n",
        b"RMSG $G 5\r\n",
        b"RMSG $G foo x\r\n",
        b"RMSG $G foo a b 1\r\n",  # three tokens without + or |
        b"HMSG $G foo 5 4\r\n",  # header larger than the total
        b"LMSG LEAFC $G foo 1\r\n",  # LMSG on a route has headers
    ],
)
def test_malformed_lines_close_without_err(wire: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse(wire)
    assert info.value.err_text == ""


def test_oversized_payload_is_max_payload_violation() -> None:
    parser = Parser(Kind.ROUTE, max_payload=4)
    parser.feed(b"RMSG $G foo 5\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        parser.drain()
    assert info.value.err_text == "Maximum Payload Violation"


def test_route_verbs_only_on_routes() -> None:
    for kind in (Kind.CLIENT, Kind.SERVER, Kind.LEAF):
        parser = Parser(kind)
        parser.feed(b"RS+ $G foo\r\n")
        with pytest.raises(RemoteProtocolError):
            parser.drain()


def test_encoders_write_what_nats_server_writes() -> None:
    assert encode_rsub(b"$G", b"foo", b"q") == b"RS+ $G foo q 1\r\n"
    assert encode_rsub(None, b"foo") == b"RS+ foo\r\n"
    assert encode_rmsg(None, b"foo", None, (b"q",), b"x") == b"RMSG foo | q 1\r\nx\r\n"


def test_captured_info_and_connect_round_trip() -> None:
    (connect, info) = parse(CAPTURED_CONNECT + CAPTURED_INFO)
    assert isinstance(connect, Connect)
    assert isinstance(info, Info)
    typed_connect = route_connect(connect.options)
    assert typed_connect.name.startswith("NBLRRT")
    assert (typed_connect.cluster, typed_connect.lnoc, typed_connect.echo) == ("C", True, True)
    assert typed_connect.extra == {"ln": True}
    assert encode_route_connect(typed_connect) == CAPTURED_CONNECT
    typed_info = route_info(info.options)
    assert (typed_info.route_pool_size, typed_info.route_pool_idx) == (3, 0)
    assert (typed_info.route_account, typed_info.compression) == ("$SYS", "off")
    assert typed_info.connect_urls == ("192.0.2.2:49437", "[fd00::2]:49437")
    assert encode_route_info(typed_info) == CAPTURED_INFO


def test_our_info_says_what_a_2_15_cluster_needs() -> None:
    ours = RouteInfo(
        server_id="NOURS",
        server_name="leaf-a",
        version="0.1.0",
        host="127.0.0.1",
        port=6222,
        max_payload=1048576,
        cluster="C",
        compression=COMPRESSION_OFF,
        lnoc=True,
        lnocu=True,
        route_pool_size=3,
        route_pool_idx=2,
    )
    wire = encode_route_info(ours)
    assert wire == (
        b'INFO {"server_id":"NOURS","server_name":"leaf-a","version":"0.1.0","proto":1,'
        b'"go":"","host":"127.0.0.1","port":6222,"headers":true,"max_payload":1048576,'
        b'"cluster":"C","compression":"off","lnoc":true,"lnocu":true,"route_pool_size":3,'
        b'"route_pool_idx":2} \r\n'
    )
    assert route_info(json.loads(wire[5:-3])) == ours


def test_connect_with_credentials_keeps_nats_server_order() -> None:
    connect = RouteConnect(name="NOURS", cluster="C", user="r", password="p<&>", lnoc=True)
    assert encode_route_connect(connect) == (
        b'CONNECT {"echo":true,"verbose":false,"pedantic":false,"user":"r",'
        b'"pass":"p\\u003c\\u0026\\u003e","tls_required":false,"headers":true,"name":"NOURS",'
        b'"cluster":"C","lnoc":true}\r\n'
    )
    assert "p<&>" not in repr(connect)
    assert route_connect(json.loads(encode_route_connect(connect)[8:-2])) == connect


@pytest.mark.parametrize(
    "options",
    [{}, {"server_id": 5}, {"server_id": "N", "port": "1"}, {"server_id": "N", "lnoc": 1}],
)
def test_bad_info_is_a_value_error(options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"."):
        route_info(options)


def test_pool_index_is_nats_servers() -> None:
    # nats-server 2.15.1 put $G's interest on route_pool_idx 2 of 3 (seen live).
    assert route_pool_index(3, "$G") == 2
    assert route_pool_index(1, "$G") == 0
    assert route_pool_index(-1, "ACC") == 0
    assert {route_pool_index(3, a) for a in ("A", "B", "C", "D", "E", "F")} <= {0, 1, 2}


def test_an_ls_minus_names_its_origin_only_when_given_one() -> None:
    assert encode_rlunsub(b"LC", b"$G", b"a", b"q") == b"LS- LC $G a q\r\n"
    # For a peer that said lnoc but not lnocu (nats-server's addRouteSubOrUnsubProtoToBuf).
    assert encode_rlunsub(b"", b"$G", b"a") == b"LS- $G a\r\n"
