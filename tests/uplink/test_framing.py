"""The uplink's message framer: same framing as the shared parser, at every split."""

from __future__ import annotations

import pytest

from leafnode.proto import Info, Kind, LSub, Ping, RemoteProtocolError
from services.uplink.framing import MessageFramer

CORPUS = (
    b'INFO {"server_id":"X"} \r\n'
    b"LS+ a.b\r\n"
    b"LMSG a.b 5\r\nhello\r\n"
    b"LMSG a.b + r.1 q1 q2 0\r\n\r\n"
    b"PING\r\n"
    b"HMSG a.c | g 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
    b"lmsg\ta.d 2\r\nok\r\n"
    b"LMSG big 3\r\n\r\n\r\r\n"
)

Item = tuple[object, ...]


def frame(chunks: list[bytes]) -> list[Item]:
    framer = MessageFramer(Kind.LEAF, max_payload=1 << 20, max_control_line=4096)
    seen: list[Item] = []

    def on_msg(verb: bytes, args: list[bytes], buf: bytes, start: int, body: int, end: int) -> None:
        seen.append((verb, tuple(args), buf[body:end], buf[start : end + 2]))

    for chunk in chunks:
        framer.feed(chunk)
        framer.drain(on_msg, lambda event: seen.append((event,)))
    return seen


def test_messages_and_events_in_order() -> None:
    items = frame([CORPUS])
    assert items[0] == (Info({"server_id": "X"}),)
    assert items[1] == (LSub(b"a.b"),)
    assert items[2] == (b"LMSG ", (b"a.b", b"5"), b"hello", b"a.b 5\r\nhello\r\n")
    assert items[3][:3] == (b"LMSG ", (b"a.b", b"+", b"r.1", b"q1", b"q2", b"0"), b"")
    assert items[4] == (Ping(),)
    assert items[5][:3] == (b"HMSG ", (b"a.c", b"|", b"g", b"12", b"14"), b"NATS/1.0\r\n\r\nhi")
    # nats-server also accepts a lower-case verb and a tab.
    assert items[6][:3] == (b"LMSG ", (b"a.d", b"2"), b"ok")
    # A payload may contain CR and LF.
    assert items[7][2] == b"\r\n\r"
    assert len(items) == 8


def test_every_split_gives_the_same_result() -> None:
    whole = frame([CORPUS])
    for cut in range(1, len(CORPUS)):
        assert frame([CORPUS[:cut], CORPUS[cut:]]) == whole, cut
    assert frame([CORPUS[i : i + 1] for i in range(len(CORPUS))]) == whole


def test_large_message_in_many_pieces() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    data = b"LMSG big %d\r\n%b\r\nPING\r\n" % (len(payload), payload)
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    items = frame(chunks)
    assert items[0][2] == payload
    assert items[1] == (Ping(),)


@pytest.mark.parametrize(
    "data",
    [
        b"LMSG a.b 5\r\nhelloXX",  # no CRLF after the payload
        b"LMSG a.b x\r\n",  # size is not a number
        b"LMSG a.b 2000000\r\n",  # over max_payload
        b"BOGUS\r\n",  # unknown verb, through the shared parser
        b"x" * 5000,  # a control line that never ends
    ],
)
def test_framing_errors(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        frame([data])


def test_handshake_reads_control_lines_one_at_a_time() -> None:
    framer = MessageFramer(Kind.LEAF, max_payload=1024, max_control_line=4096)
    framer.feed(b'INFO {"a":1} \r\nLS+ x\r\nLMSG x 1\r\n')
    assert framer.next_event() == Info({"a": 1})
    # What follows stays in the framer for the session.
    seen: list[object] = []
    framer.feed(b"y\r\n")
    framer.drain(lambda *args: seen.append(args[2][args[4] : args[5]]), seen.append)
    assert seen == [LSub(b"x"), b"y"]


def test_a_message_during_the_handshake_is_an_error() -> None:
    framer = MessageFramer(Kind.LEAF, max_payload=1024, max_control_line=4096)
    framer.feed(b"LMSG x 1\r\ny\r\n")
    with pytest.raises(RemoteProtocolError):
        framer.next_event()
