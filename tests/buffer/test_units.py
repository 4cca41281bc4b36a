"""The drain's pure pieces: wire form of buffered messages, subject rules, progress."""

from __future__ import annotations

import pytest

from leafnode.ipc import rfc3339_us, stamp_headers
from leafnode.proto import Kind, LHMsg, Parser
from services.uplink.monitor import go_duration
from services.uplink.progress import LOG_MIN_MSGS, Progress
from services.uplink.wire import BatchEncoder, BufferSubjects, hmsg_route


def parse_one(data: bytes) -> LHMsg:
    parser = Parser(Kind.LEAF)
    parser.feed(data)
    event = parser.next_event()
    assert isinstance(event, LHMsg)
    assert parser.next_event() is None
    return event


class TestBatchEncoder:
    def test_plain_message_gets_both_headers(self) -> None:
        at = 1_795_000_000_123_456
        line = BatchEncoder("leaf7").encode(b"tele.a", 42, 0, b"payload", at)
        event = parse_one(line)
        assert (event.subject, event.reply, event.queues) == (b"tele.a", None, ())
        expected = stamp_headers(b"", msg_id="leaf7-42", buffered_at_us=at)
        assert event.data == expected + b"payload"
        assert event.hdr_len == len(expected)

    def test_client_headers_and_msg_id_are_kept(self) -> None:
        own = b"NATS/1.0\r\nNats-Msg-Id: mine\r\nX: 1\r\n\r\n"
        line = BatchEncoder("leaf7").encode(b"s", 3, len(own), own + b"p", 5_000_000)
        event = parse_one(line)
        headers = event.data[: event.hdr_len]
        assert headers.startswith(b"NATS/1.0\r\nNats-Msg-Id: mine\r\nX: 1\r\n")
        assert b"Leafnode-Buffered-At: 1970-01-01T00:00:05.000000Z\r\n" in headers
        assert headers.count(b"Nats-Msg-Id") == 1
        assert event.data[event.hdr_len :] == b"p"

    @pytest.mark.parametrize("at", [0, 999_999, 1_000_000, 1_795_000_000_999_999])
    def test_timestamp_matches_rfc3339_us_across_seconds(self, at: int) -> None:
        encoder = BatchEncoder("x")
        for t in (at, at + 1, at + 1_000_000):
            event = parse_one(encoder.encode(b"s", 1, 0, b"", t))
            assert f"Leafnode-Buffered-At: {rfc3339_us(t)}\r\n".encode() in event.data

    @pytest.mark.parametrize(
        ("reply", "queues", "route"),
        [
            (None, (), b"s"),
            (b"r", (), b"s r"),
            (None, (b"q1", b"q2"), b"s | q1 q2"),
            (b"r", (b"q1",), b"s + r q1"),
        ],
    )
    def test_routes(self, reply: bytes | None, queues: tuple[bytes, ...], route: bytes) -> None:
        assert hmsg_route(b"s", reply, queues) == route
        event = parse_one(BatchEncoder("x").encode(route, 1, 0, b"d", 0))
        assert (event.subject, event.reply, event.queues) == (b"s", reply, queues)


class TestBufferSubjects:
    def test_literals_and_wildcards(self) -> None:
        rules = BufferSubjects(["tele.>", "metrics.*.cpu", "exact"])
        assert b"tele.a.b" in rules
        assert b"metrics.h1.cpu" in rules
        assert b"exact" in rules
        assert b"tele" not in rules
        assert b"metrics.h1.mem" not in rules
        assert b"other" not in rules

    def test_interest_that_can_release_waiting_messages(self) -> None:
        rules = BufferSubjects(["tele.>"])
        assert rules.intersects(b"tele.x")
        assert rules.intersects(b"*.x")
        assert rules.intersects(b">")
        assert not rules.intersects(b"_INBOX.abc.*")
        assert not rules.intersects(b"tele")


class TestProgress:
    def test_rate_eta_and_log_lines_of_a_long_replay(self) -> None:
        progress = Progress()
        backlog = 5 * LOG_MIN_MSGS
        first = progress.sample(0.0, 0, backlog, sending=True)
        assert first == f"replaying {backlog} buffered messages"
        assert progress.sample(1.0, 10_000, backlog - 10_000, sending=True) is None
        assert progress.rate() == 10_000
        assert progress.eta_s() == 4.0
        line = progress.sample(5.0, 50_000, 10_000, sending=True)
        assert line is not None
        assert line.startswith("replay: sent 50000 (10000 msg/s), remaining 10000, ETA 1s")
        done = progress.sample(6.0, 60_000, 0, sending=False)
        assert done == "replay caught up: sent 60000 messages in 6.0s (10000 msg/s)"
        assert progress.eta_s() == 0.0

    def test_short_replays_stay_quiet(self) -> None:
        progress = Progress()
        assert progress.sample(0.0, 0, LOG_MIN_MSGS - 1, sending=True) is None
        assert progress.sample(1.0, LOG_MIN_MSGS - 1, 0, sending=True) is None
        assert progress.rate() is not None


def test_go_durations() -> None:
    assert go_duration(None) is None
    assert go_duration(0.000189) == "189µs"
    assert go_duration(0.0015) == "1.5ms"
    assert go_duration(2.5) == "2.5s"
