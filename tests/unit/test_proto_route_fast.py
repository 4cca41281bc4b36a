"""``Parser.next_route_event``: plain RMSGs without events, everything else as before.

The route's hot path hands each plain ``RMSG`` (no queue list) to a callback
instead of building an ``RMsg``; a stream cut anywhere must give the same
messages, in the same order relative to the other events, as ``next_event``
gives, on a pooled route (account in every line) and on one dedicated to an
account (``route_account``: no account token).
"""

from __future__ import annotations

import pytest

from leafnode.proto import Kind, Parser, Ping, RemoteProtocolError, RHMsg, RMsg, RSub

STREAM = (
    b"RS+ $G foo\r\n"
    b"RMSG $G foo 5\r\nhello\r\n"
    b"RMSG $G foo r.1 2\r\nhi\r\n"
    b"RMSG $G foo | q 1\r\nx\r\n"
    b"HMSG $G foo 12 14\r\nNATS/1.0\r\n\r\nab\r\n"
    b"PING\r\n"
    b"RMSG ACC2 bar 0\r\n\r\n"
)
PINNED = b"RMSG foo 5\r\nhello\r\nRMSG foo r.1 2\r\nhi\r\nRMSG foo + r q 1\r\nz\r\nPING\r\n"


def _events(parser: Parser, data: bytes, cut: int) -> list[object]:
    out: list[object] = []

    def on_msg(account: bytes, subject: bytes, reply: bytes | None, payload: bytes) -> None:
        out.append(RMsg(account, subject, reply, (), payload))

    for chunk in (data[:cut], data[cut:]):
        parser.feed(chunk)
        while (event := parser.next_route_event(on_msg)) is not None:
            out.append(event)
        parser.compact()
    return out


def _reference(parser: Parser, data: bytes) -> list[object]:
    parser.feed(data)
    out: list[object] = []
    while (event := parser.next_event()) is not None:
        out.append(event)
    return out


@pytest.mark.parametrize("cut", range(0, len(STREAM) + 1, 7))
def test_pooled_route_stream_cut_anywhere(cut: int) -> None:
    got = _events(Parser(Kind.ROUTE), STREAM, cut)
    assert got == _reference(Parser(Kind.ROUTE), STREAM)
    assert got[0] == RSub(b"$G", b"foo")
    assert got[1:3] == [
        RMsg(b"$G", b"foo", None, (), b"hello"),
        RMsg(b"$G", b"foo", b"r.1", (), b"hi"),
    ]
    assert got[3] == RMsg(b"$G", b"foo", None, (b"q",), b"x")
    assert isinstance(got[4], RHMsg)
    assert got[5] == Ping()
    assert got[6] == RMsg(b"ACC2", b"bar", None, (), b"")


@pytest.mark.parametrize("cut", range(0, len(PINNED) + 1, 5))
def test_dedicated_route_has_no_account_token(cut: int) -> None:
    parser = Parser(Kind.ROUTE)
    parser.route_account = b"$SYS"
    reference = Parser(Kind.ROUTE)
    reference.route_account = b"$SYS"
    got = _events(parser, PINNED, cut)
    assert got == _reference(reference, PINNED)
    assert got[:3] == [
        RMsg(b"$SYS", b"foo", None, (), b"hello"),
        RMsg(b"$SYS", b"foo", b"r.1", (), b"hi"),
        RMsg(b"$SYS", b"foo", b"r", (b"q",), b"z"),
    ]


def test_an_oversized_payload_is_left_to_next_event() -> None:
    parser = Parser(Kind.ROUTE, max_payload=4)
    parser.feed(b"RMSG $G foo 5\r\nhello\r\n")
    with pytest.raises(RemoteProtocolError, match="payload of 5 bytes over 4") as raised:
        parser.next_route_event(lambda *args: None)
    assert raised.value.err_text == "Maximum Payload Violation"
